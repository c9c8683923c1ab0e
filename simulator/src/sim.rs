//! The simulator proper: a timeslice clock driving the DOM models, the
//! trigger and the log, applying run changes and faults, and handing out
//! the messages in data-time order.

use std::collections::{HashMap, VecDeque};

use daq::controlhost::Tag;
use daq::frame::{DaqHeader, DataType};
use daq::summary::Summaryslice;
use daq::timeslice::{SuperFrame, Timeslice};

use crate::config::{SimConfig, SLICE_NS};
use crate::dom::DomModel;
use crate::event::EventGenerator;
use crate::fault::{self, Fault, FaultKind, ResolvedTarget};
use crate::msg::{LogContext, LogModel, Role};
use crate::rng::Rng;
use crate::units::NS;
use crate::{corrupt, SimError};

/// One message of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMessage {
    pub tag: Tag,
    pub payload: Vec<u8>,
    /// Start of the timeslice the message belongs to (ns since the epoch):
    /// the DAQ header time of frames, the packet time of TMCH packets.
    /// Non-decreasing along the stream.
    pub time_ns: u64,
}

/// The tags the simulator publishes.
pub struct Tags {
    pub sum: Tag,
    pub monit: Tag,
    pub evt: Tag,
    pub tssn: Tag,
    pub msg: Tag,
}

impl Tags {
    pub fn new() -> Tags {
        let t = |s| Tag::new(s).expect("valid tag");
        Tags {
            sum: t("IO_SUM"),
            monit: t("IO_MONIT"),
            evt: t("IO_EVT"),
            tssn: t("IO_TSSN"),
            msg: t("MSG"),
        }
    }
}

impl Default for Tags {
    fn default() -> Tags {
        Tags::new()
    }
}

/// A seeded, reproducible DAQ stream; iterate it for the messages.
pub struct Simulator {
    config: SimConfig,
    tags: Tags,
    start_ns: u64,
    /// Timeslices to produce; `None` = endless.
    n_slices: Option<u64>,
    slices_per_run: Option<u64>,
    slice: u64,
    run: u32,
    run_first_slice: u64,
    trigger_counter: u64,
    events_in_run: u64,
    /// Optical DOMs and base modules, in detector order.
    doms: Vec<DomModel>,
    dom_ids: Vec<u32>,
    /// DOM id → index into `doms`.
    dom_index: HashMap<u32, usize>,
    events: EventGenerator,
    log: LogModel,
    faults: Vec<Fault>,
    announced: Vec<bool>,
    corrupt_rng: Rng,
    queue: VecDeque<SimMessage>,
    /// Scratch super-frames, reused between timeslices.
    sn_frames: Vec<SuperFrame>,
    /// Payload buffers handed back by the consumer ([`Simulator::recycle`]):
    /// allocating one per CLB packet was a tenth of the run time.
    spare: Vec<Vec<u8>>,
    pub(crate) corrupted: u64,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Result<Simulator, SimError> {
        let detector = config.detector.clone();
        if detector.n_optical_modules() == 0 {
            return Err(SimError::Config(
                "the detector has no optical module".into(),
            ));
        }
        if !(config.trigger_rate_hz.is_finite() && config.trigger_rate_hz >= 0.0) {
            return Err(SimError::Config("the trigger rate must be ≥ 0 Hz".into()));
        }
        let start_ns = config.start.resolve();
        let faults = fault::resolve(&config.faults, &detector, config.seed, start_ns)
            .map_err(SimError::Config)?;
        let burst_chance = 0.1 / config.burst_interval.as_secs_f64().max(0.1);
        let doms: Vec<DomModel> = detector
            .modules()
            .iter()
            .enumerate()
            .map(|(i, m)| DomModel::new(m, config.seed, i as u64, burst_chance))
            .collect();
        let slices = |d: std::time::Duration| (d.as_nanos() as u64).div_ceil(SLICE_NS);
        Ok(Simulator {
            tags: Tags::new(),
            start_ns,
            n_slices: config.duration.map(slices),
            slices_per_run: config.run_length.map(slices).filter(|&n| n > 0),
            slice: 0,
            run: config.run,
            run_first_slice: 0,
            trigger_counter: 0,
            events_in_run: 0,
            dom_index: doms
                .iter()
                .enumerate()
                .map(|(i, d)| (d.dom_id, i))
                .collect(),
            dom_ids: detector.optical_modules().map(|m| m.dom_id).collect(),
            events: EventGenerator::new(&detector, config.seed),
            log: LogModel::new(
                config.seed,
                detector.dus().len(),
                config.msg_interval.as_secs_f64(),
            ),
            corrupt_rng: Rng::new(config.seed, crate::STREAM_CORRUPTION),
            announced: vec![false; faults.len()],
            faults,
            doms,
            queue: VecDeque::new(),
            sn_frames: Vec::new(),
            spare: Vec::new(),
            corrupted: 0,
            config,
        })
    }

    /// Record the true track of every muon event (see [`Simulator::take_truths`]).
    pub fn record_truth(&mut self) {
        self.events.record_truth();
    }

    /// The muon truths of the events generated since the last call.
    pub fn take_truths(&mut self) -> Vec<crate::event::MuonTruth> {
        self.events.take_truths()
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Data time of the first timeslice, ns since the epoch.
    pub fn start_ns(&self) -> u64 {
        self.start_ns
    }

    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// The `ligier-disconnect` windows (data time), for the publisher.
    pub fn disconnects(&self) -> Vec<(u64, u64)> {
        self.faults
            .iter()
            .filter(|f| f.kind == FaultKind::LigierDisconnect)
            .map(|f| (f.from_ns, f.until_ns))
            .collect()
    }

    /// Timeslices produced so far.
    pub fn slices_done(&self) -> u64 {
        self.slice
    }

    /// Give a message's payload back once it is written, to be reused.
    /// Only packet-sized buffers are kept: they are reused for the CLB
    /// packets, and a large one kept there would hold its memory forever.
    pub fn recycle(&mut self, mut payload: Vec<u8>) {
        if self.spare.len() < 1 << 16 && payload.capacity() <= 4096 {
            payload.clear();
            self.spare.push(payload);
        }
    }

    /// Current run number.
    pub fn run(&self) -> u32 {
        self.run
    }

    fn active(&self, kind: FaultKind, t_ns: u64) -> impl Iterator<Item = &Fault> {
        self.faults
            .iter()
            .filter(move |f| f.kind == kind && f.active(t_ns))
    }

    /// Produce the messages of the next timeslice into the queue. False at
    /// the end of the configured duration.
    fn next_slice(&mut self) -> bool {
        if self.n_slices.is_some_and(|n| self.slice >= n) {
            return false;
        }
        let t = self.start_ns + self.slice * SLICE_NS;
        let mut lines = Vec::new();
        if let Some(per_run) = self.slices_per_run {
            if self.slice > self.run_first_slice
                && (self.slice - self.run_first_slice).is_multiple_of(per_run)
            {
                self.new_run(t, &mut lines);
            }
        }
        self.announce_faults(t, &mut lines);
        let header = DaqHeader {
            det_id: self.config.detector.det_id(),
            run: self.run as i32,
            frame_index: (self.slice - self.run_first_slice + 1) as i32,
            utc_seconds: (t / NS) as u32,
            wr_status_msb: false,
            utc_16ns_ticks: ((t % NS) / 16) as u32,
        };
        let silent: Vec<u32> = self
            .active(FaultKind::DomSilent, t)
            .filter_map(|f| match f.target {
                ResolvedTarget::Dom { dom_id, .. } => Some(dom_id),
                _ => None,
            })
            .collect();
        let unsynced: Vec<u32> = self
            .active(FaultKind::DuTimesync, t)
            .filter_map(|f| match f.target {
                ResolvedTarget::Du(du) => Some(du),
                _ => None,
            })
            .collect();
        let drifting: Vec<(u32, f32)> = self
            .active(FaultKind::AhrsDrift, t)
            .filter_map(|f| match f.target {
                ResolvedTarget::Du(du) => {
                    let minutes = (t - f.from_ns) as f64 / 60e9;
                    Some((du, (minutes * crate::fault::AHRS_DRIFT_DEG_PER_MIN) as f32))
                }
                _ => None,
            })
            .collect();
        let disconnected = self.active(FaultKind::LigierDisconnect, t).next().is_some();
        let no_trigger = self.active(FaultKind::TriggerZero, t).next().is_some();

        // The DOMs advance whether or not they are heard: a DOM coming
        // back from a fault continues its own random stream.
        let mut summary = Summaryslice {
            version: Some(Summaryslice::VERSION),
            header,
            frames: Vec::with_capacity(self.dom_ids.len()),
        };
        let mut monit = Vec::with_capacity(self.doms.len());
        let (slice, run) = (self.slice, self.run);
        let advance = |doms: &mut [DomModel]| {
            for dom in doms {
                let synced = !unsynced.contains(&dom.du);
                dom.yaw_drift = drifting.iter().find(|d| d.0 == dom.du).map_or(0.0, |d| d.1);
                dom.advance(slice, run, &header, synced);
            }
        };
        // Every DOM has its own random stream, so splitting them over
        // threads changes nothing in the output.
        let threads = self.config.threads.max(1);
        if threads > 1 && self.doms.len() >= 64 {
            let chunk = self.doms.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let mut chunks = self.doms.chunks_mut(chunk);
                let mine = chunks.next();
                for c in chunks {
                    scope.spawn(move || advance(c));
                }
                if let Some(c) = mine {
                    advance(c);
                }
            });
        } else {
            advance(&mut self.doms);
        }
        let mut sn_frames = std::mem::take(&mut self.sn_frames);
        let mut sn_doms = Vec::with_capacity(self.dom_ids.len());
        for (i, dom) in self.doms.iter_mut().enumerate() {
            if silent.contains(&dom.dom_id) {
                continue;
            }
            let buffer = self.spare.pop().unwrap_or_default();
            monit.push(std::mem::replace(&mut dom.monit, buffer));
            if dom.is_base {
                continue;
            }
            summary.frames.push(dom.summary_frame(dom.synced));
            sn_frames.push(SuperFrame {
                header,
                dom_id: dom.dom_id,
                status: dom.frame_status(dom.synced),
                hits: std::mem::take(&mut dom.sn),
            });
            sn_doms.push(i);
        }
        let timeslice = Timeslice {
            version: Some(Timeslice::VERSION),
            data_type: DataType::TimesliceSn,
            header,
            frames: sn_frames,
        };
        let tssn = (!disconnected).then(|| timeslice.encode());
        // The hit buffers go back to their DOMs for the next timeslice.
        let mut sn_frames = timeslice.frames;
        for (frame, &i) in sn_frames.iter_mut().zip(&sn_doms) {
            self.doms[i].sn = std::mem::take(&mut frame.hits);
        }
        sn_frames.clear();
        self.sn_frames = sn_frames;

        let events = if no_trigger {
            Vec::new()
        } else {
            let (doms, index) = (&self.doms, &self.dom_index);
            self.events.timeslice(
                header,
                self.config.trigger_rate_hz,
                &mut self.trigger_counter,
                &|id| index.get(&id).map_or(0.0, |&i| doms[i].state.rate_hz),
                &|id| silent.contains(&id),
            )
        };
        self.events_in_run += events.len() as u64;

        let ctx = LogContext {
            det_id: header.det_id,
            run: self.run,
            frame_index: header.frame_index as u32,
            n_doms: summary.frames.len(),
            events: self.events_in_run,
            dom_ids: &self.dom_ids,
        };
        lines.extend(self.log.timeslice(t, &ctx));

        if !disconnected {
            let tags = &self.tags;
            let mut push = |tag: Tag, payload: Vec<u8>| {
                self.queue.push_back(SimMessage {
                    tag,
                    payload,
                    time_ns: t,
                })
            };
            for packet in monit {
                push(tags.monit, packet);
            }
            for event in &events {
                push(tags.evt, event.encode());
            }
            push(tags.sum, summary.encode());
            if let Some(tssn) = tssn {
                push(tags.tssn, tssn);
            }
            lines.sort();
            for line in lines {
                push(tags.msg, line.into_bytes());
            }
            self.corrupt_queue(t);
        }
        self.slice += 1;
        true
    }

    fn new_run(&mut self, t: u64, lines: &mut Vec<String>) {
        let old = self.run;
        self.run += 1;
        self.run_first_slice = self.slice;
        self.trigger_counter = 0;
        self.events_in_run = 0;
        for dom in &mut self.doms {
            dom.new_run();
        }
        let det = self.config.detector.det_id();
        lines.push(self.log.announce(
            Role::DataWriter,
            t,
            "STATUS",
            &format!("Stop run {old}; closing KM3NeT_{det:08}_{old:08}.root"),
        ));
        lines.push(self.log.announce(
            Role::DataFilter,
            t,
            "NOTICE",
            &format!("Start run {}", self.run),
        ));
        lines.push(self.log.announce(
            Role::DataWriter,
            t + 1_000_000,
            "STATUS",
            &format!(
                "Start run {}; writing KM3NeT_{det:08}_{:08}.root",
                self.run, self.run
            ),
        ));
    }

    /// A log line at the start of a fault, as the DAQ would notice it.
    fn announce_faults(&mut self, t: u64, lines: &mut Vec<String>) {
        for (i, f) in self.faults.iter().enumerate() {
            if self.announced[i] || !f.active(t) {
                continue;
            }
            self.announced[i] = true;
            let line = match (&f.kind, &f.target) {
                (FaultKind::DomSilent, ResolvedTarget::Dom { dom_id, .. }) => self.log.announce(
                    Role::DataQueue,
                    t,
                    "WARNING",
                    &format!("No data from DOM {dom_id}"),
                ),
                (FaultKind::AhrsDrift, ResolvedTarget::Du(du)) => self.log.announce(
                    Role::DataFilter,
                    t,
                    "WARNING",
                    &format!("Compass headings of DU {du} drift"),
                ),
                (FaultKind::DuTimesync, ResolvedTarget::Du(du)) => self.log.announce(
                    Role::DataFilter,
                    t,
                    "WARNING",
                    &format!("DOMs of DU {du} report invalid time synchronisation"),
                ),
                (FaultKind::TriggerZero, _) => self.log.announce(
                    Role::DataFilter,
                    t,
                    "ERROR",
                    "Error \"trigger stalled\"; trigger ev_error.",
                ),
                (FaultKind::CorruptFrames, _) => self.log.announce(
                    Role::DataQueue,
                    t,
                    "ERROR",
                    "Corrupted data frames received",
                ),
                _ => continue,
            };
            lines.push(line);
        }
    }

    fn corrupt_queue(&mut self, t: u64) {
        let tags: Vec<Tag> = self
            .active(FaultKind::CorruptFrames, t)
            .flat_map(|f| match &f.target {
                ResolvedTarget::Tags(tags) => tags.clone(),
                _ => Vec::new(),
            })
            .collect();
        if tags.is_empty() {
            return;
        }
        for msg in self
            .queue
            .iter_mut()
            .filter(|m| m.time_ns == t && tags.contains(&m.tag))
        {
            if !self.corrupt_rng.chance(0.25) {
                continue;
            }
            if msg.tag == self.tags.monit {
                corrupt::tmch(&mut msg.payload, &mut self.corrupt_rng);
            } else if msg.tag != self.tags.msg {
                corrupt::daq_frame(
                    &mut msg.payload,
                    msg.tag == self.tags.evt,
                    &mut self.corrupt_rng,
                );
            } else {
                continue;
            }
            self.corrupted += 1;
        }
    }
}

impl Iterator for Simulator {
    type Item = SimMessage;

    fn next(&mut self) -> Option<SimMessage> {
        loop {
            if let Some(msg) = self.queue.pop_front() {
                return Some(msg);
            }
            if !self.next_slice() {
                return None;
            }
        }
    }
}
