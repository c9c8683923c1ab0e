//! `type = "ahrs_calibration"`: the calibrated compass orientation (yaw,
//! pitch, roll) of every DOM from the A and H vectors of its CLB
//! monitoring packets (IO_MONIT) and its compass's calibration constants
//! (spec monitors.md §3.9, integrations.md §3): averaged per DOM per
//! `interval` of data time, one row per DOM and window for
//! `data/ahrs_calibration.csv`, and per DU the plots
//! `yaw_calib_du<N>`, `pitch_calib_du<N>`, `roll_calib_du<N>` (one dot
//! series per floor over the last `time_range` hours) with their JSON.
//!
//! Constants: from the KM3NeT DB (`[DB]` of the site config, the detector
//! id from `detector_id`, `DETECTOR_ID` or the detector file) — the CLB
//! map, each CLB's compass (`integration`) and the `ahrscalib` table, all
//! cached per day under the state dir — and from a constants file for
//! whatever the DB cannot give. They are fetched on the node's I/O thread
//! (live: again every `refresh` hours); a replay's worker waits for the
//! first set, so the outputs do not depend on the network's speed; live,
//! packets that come before it are counted and skipped.
//!
//! Fixes of the original: every packet is used (not every 29th of the
//! whole stream), averaged per event-time window with circular means (a
//! yaw around 0°/360° or a roll around ±180° would average to nonsense);
//! DOMs without constants are counted and named on the plots instead of
//! crashing or vanishing; no `times` plot; the constants are cached per
//! day (not refetched with ≥ 4 requests per CLB every hour).

pub mod constants;
pub mod math;
mod plots;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, TryRecvError};
use pipeline::item::{Item, Row, Time, TICKS_PER_SECOND, TICK_NS};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::runtime::metrics::{DropReason, NodeMetrics};
use pipeline::runtime::Mode;
use pipeline::StreamKind;
use serde::Deserialize;

use crate::shell::{ordered_items, Monitor, Out, Tumbling};
use constants::ConstantSet;
use daq::detector::IdMap;
use math::{orientation, AngleMean, Constants};
/// Evenly spaced hues (floors of a DU, DUs of a detector).
pub use plots::palette;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AhrsCalibration {
    /// Seconds of data time per average (one CSV row per DOM per window).
    #[serde(default = "default_interval", deserialize_with = "timespan::de::secs")]
    pub interval: u64,
    /// Hours of history on the plots (`[CalibrateAHRS] time_range`).
    #[serde(
        default = "default_time_range",
        deserialize_with = "timespan::de::hours"
    )]
    pub time_range: u64,
    /// Ask the KM3NeT DB for the constants.
    #[serde(default = "yes")]
    pub db: bool,
    /// The detector for the DB (serial number or OID); default
    /// `DETECTOR_ID`, else the det_id of the detector file.
    #[serde(default)]
    pub detector_id: Option<String>,
    /// Constants file (TAB separated: `DOMID` and the `ahrscalib` columns
    /// `ACC_OFFSET_X` … `MAG_ROT_ZZ`): used for DOMs the DB cannot give
    /// ("" = none).
    #[serde(default)]
    pub constants: Option<PathBuf>,
    /// Hours between fetches of the constants in a live run.
    #[serde(default = "default_refresh", deserialize_with = "timespan::de::hours")]
    pub refresh: u64,
    /// Table name of the rows (`csv` sink: `data/<table>.csv`).
    #[serde(default = "default_table")]
    pub table: String,
}

fn default_interval() -> u64 {
    600
}
fn default_time_range() -> u64 {
    72
}
fn default_refresh() -> u64 {
    24
}
fn yes() -> bool {
    true
}
fn default_table() -> String {
    "ahrs_calibration".into()
}

/// The three plotted quantities, in the original's file names.
pub const PARAMETERS: [&str; 3] = ["yaw", "pitch", "roll"];

impl NodeConfig for AhrsCalibration {
    const TYPE: &'static str = "ahrs_calibration";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "calibrated compass yaw/pitch/roll per DOM from IO_MONIT and the DB's AHRS constants";
    const EXAMPLE: &'static str = r#"inputs = ["monitoring"]
db = false
interval = 60"#;
}

impl Node for AhrsCalibration {
    fn resources(&self) -> Vec<(String, Resource)> {
        let mut r: Vec<(String, Resource)> = PARAMETERS
            .iter()
            .map(|p| (String::new(), Resource::Plot(format!("{p}_calib_du*"))))
            .collect();
        r.push((String::new(), Resource::Detector));
        r
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Tmch]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Plots)
    }
    fn outputs(&self) -> Vec<StreamKind> {
        vec![StreamKind::Plots, StreamKind::Table]
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if self.interval == 0 {
            e.push(("interval".into(), "must be at least 1 second".into()));
        }
        if self.time_range == 0 {
            e.push(("time_range".into(), "must be at least 1 hour".into()));
        }
        if self.refresh == 0 {
            e.push(("refresh".into(), "must be at least 1 hour".into()));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("ahrs_calibration needs an input"))?;
        let det = ctx.detector()?;
        let mut monitor = AhrsMonitor::new(self, det.det_id());
        monitor.metrics = Some(ctx.metrics.clone());
        // The monitor runs on worker 0 (`ordered_items`): only it fetches.
        if ctx.index() == 0 {
            let replay = matches!(ctx.env.mode, Mode::Replay { .. });
            let (tx, rx) = bounded(2);
            let (go, started) = bounded::<()>(1);
            monitor.updates = Some(rx);
            monitor.start = Some(go);
            monitor.wait = replay;
            let db = self
                .db
                .then(|| db_service(self.detector_id.clone(), ctx, det.det_id()));
            let file = self.constants.clone().filter(|p| !p.as_os_str().is_empty());
            let shutdown = ctx.env.shutdown.clone();
            let refresh = Duration::from_secs(self.refresh * 3600);
            let stop = move || shutdown.load(std::sync::atomic::Ordering::Relaxed);
            ctx.spawn_io("constants", move || {
                // Nothing is asked before the first IO_MONIT packet: a
                // graph without monitoring data costs the DB nothing.
                loop {
                    match started.recv_timeout(Duration::from_millis(500)) {
                        Ok(()) => break,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) if !stop() => {}
                        Err(_) => return,
                    }
                }
                loop {
                    let set = constants::load(db.as_ref(), file.as_deref(), Some(det.as_ref()));
                    tracing::info!(
                        "AHRS constants for {} of {} DOMs: {}",
                        set.with_constants(),
                        set.doms.len(),
                        set.source
                    );
                    if tx.send(Arc::new(set)).is_err() || replay {
                        return;
                    }
                    // Live: again every `refresh` hours (the DB client's
                    // day cache answers most of it without a request).
                    let until = std::time::Instant::now() + refresh;
                    while std::time::Instant::now() < until {
                        if stop() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            })?;
        }
        if ctx.index() == 0 {
            if let Some(saved) = ctx.state().load_all::<Saved>().remove("state") {
                monitor.restore(saved);
            }
        }
        Ok(Some(ordered_items(ctx, input, "ahrs_calibration", monitor)))
    }
}

/// The DB client of the site config (`[DB]`, `KM3NET_DB_URL`, the usual
/// session resolution) with the disk cache under the state dir.
pub(crate) fn db_service(
    detector_id: Option<String>,
    ctx: &BuildContext<'_>,
    det_id: i32,
) -> km3db::DetectorService {
    let cfg = ctx
        .env
        .site_config
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| km3db::DbConfig::from_site_text(&t).ok())
        .unwrap_or_else(|| {
            let mut c = km3db::DbConfig::default();
            c.apply_env();
            c
        });
    let det = detector_id
        .or_else(|| std::env::var("DETECTOR_ID").ok())
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| det_id.to_string());
    let state = ctx
        .env
        .state_dir
        .clone()
        .unwrap_or_else(|| ctx.env.out_dir.join("state"));
    km3db::DetectorService::new(
        km3db::Client::from_process(cfg),
        &det,
        Some(km3db::cache::Cache::new(state.join("db"))),
    )
}

/// One DOM's window: circular means of yaw, pitch, roll. (Looked up per
/// packet; its rows are sorted when the window closes.)
type DomMeans = IdMap<[AngleMean; 3]>;

/// What a DOM's packets do under the current constants, decided at its
/// first packet: then a packet costs one id lookup instead of a scan of
/// the base list and three map searches (5 M packets for 120 s of
/// ARCA-230, all on worker 0). Small, so the table stays in cache.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Base,
    Unknown,
    /// Its constants in `calibrated`; its history entry exists.
    Calibrated(u32),
    /// Named in `missing`, its DU in the history.
    Missing,
}

/// A DOM seen without constants: (DU, floor, why).
pub type Missing = BTreeMap<u32, (u32, i32, String)>;

/// A floor's history: (UTC s of the window end, yaw, pitch, roll).
pub type History = VecDeque<(u64, [f64; 3])>;

/// What a restart continues: the open windows, the history per floor,
/// the DOMs without constants and the latest packet time.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    windows: Tumbling<DomMeans>,
    history: BTreeMap<u32, BTreeMap<i32, (u32, History)>>,
    missing: Missing,
    last_ns: u64,
}

pub struct AhrsMonitor {
    pub constants: Option<Arc<ConstantSet>>,
    updates: Option<Receiver<Arc<ConstantSet>>>,
    /// Tells the loader that IO_MONIT data came (dropped at the end).
    start: Option<crossbeam_channel::Sender<()>>,
    /// Replay: wait for the first set (results independent of the network).
    wait: bool,
    metrics: Option<Arc<NodeMetrics>>,
    det_id: i32,
    table: String,
    range_s: u64,
    windows: Tumbling<DomMeans>,
    /// Per DU and floor.
    history: BTreeMap<u32, BTreeMap<i32, (u32, History)>>,
    missing: Missing,
    /// Per DOM, for the constants in use (cleared with them).
    slots: IdMap<Slot>,
    calibrated: Vec<Constants>,
    /// Packets before any constants were known (live).
    pub early: u64,
    /// Packets of DOMs not in the CLB map / detector.
    pub unknown: u64,
    last_ns: u64,
    /// The input ended or stopped: the one save of the run (the history
    /// is megabytes for a large detector).
    finished: bool,
}

impl AhrsMonitor {
    pub fn new(c: &AhrsCalibration, det_id: i32) -> AhrsMonitor {
        AhrsMonitor {
            constants: None,
            updates: None,
            start: None,
            wait: false,
            metrics: None,
            det_id,
            table: c.table.clone(),
            range_s: c.time_range * 3600,
            windows: Tumbling::new(c.interval * TICKS_PER_SECOND),
            history: BTreeMap::new(),
            missing: Missing::new(),
            slots: IdMap::default(),
            calibrated: Vec::new(),
            early: 0,
            unknown: 0,
            last_ns: 0,
            finished: false,
        }
    }

    /// A monitor with its constants fed by `rx` (tests: a loader thread).
    pub fn with_updates(mut self, rx: Receiver<Arc<ConstantSet>>, wait: bool) -> AhrsMonitor {
        self.updates = Some(rx);
        self.wait = wait;
        self
    }

    fn restore(&mut self, s: Saved) {
        self.windows.restore(s.windows);
        self.history = s.history;
        self.missing = s.missing;
        self.last_ns = s.last_ns;
    }

    fn poll(&mut self) {
        if let Some(go) = self.start.take() {
            // The loader waits for this; it keeps its own copy of "go".
            let _ = go.try_send(());
        }
        let Some(rx) = self.updates.clone() else {
            return;
        };
        if self.wait && self.constants.is_none() {
            // Bounded by the DB client's timeouts and retries.
            match rx.recv() {
                Ok(set) => self.set_constants(set),
                Err(_) => self.updates = None,
            }
            return;
        }
        loop {
            match rx.try_recv() {
                Ok(set) => self.set_constants(set),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.updates = None;
                    return;
                }
            }
        }
    }

    pub fn set_constants(&mut self, set: Arc<ConstantSet>) {
        self.missing.clear();
        self.slots.clear();
        self.calibrated.clear();
        self.constants = Some(set);
    }

    fn count_drop(&self, detail: &str, n: u64) {
        if let Some(m) = &self.metrics {
            m.drop_detail(DropReason::UnknownDom, detail, n);
        }
    }

    fn packet(&mut self, t: Time, p: &daq::tmch::TmchPacket, out: &mut Out) {
        if self.constants.is_none() {
            self.early += 1;
            self.count_drop("AHRS constants not loaded yet", 1);
            return;
        }
        let slot = match self.slots.get(&p.dom_id) {
            Some(s) => *s,
            None => {
                let s = self.first_packet(p.dom_id);
                self.slots.insert(p.dom_id, s);
                s
            }
        };
        match slot {
            Slot::Base => {}
            Slot::Unknown => {
                self.unknown += 1;
                self.count_drop("not in the CLB map", 1);
            }
            Slot::Calibrated(i) => {
                let o = orientation(&self.calibrated[i as usize], p.a, p.h);
                let means = self.windows.at(t, out).entry(p.dom_id).or_default();
                for (m, v) in means.iter_mut().zip([o.yaw, o.pitch, o.roll]) {
                    m.add(v);
                }
            }
            // The window still closes, so the plots name the DOM.
            Slot::Missing => self.windows.open(t, out),
        }
    }

    /// A DOM's first packet under the current constants: its slot, and
    /// what the packets of its kind leave in `history` and `missing`.
    fn first_packet(&mut self, dom: u32) -> Slot {
        let Some(set) = &self.constants else {
            return Slot::Unknown;
        };
        if set.bases.contains(&dom) {
            return Slot::Base;
        }
        let Some(e) = set.doms.get(&dom) else {
            return Slot::Unknown;
        };
        match &e.constants {
            Ok(c) => {
                self.history
                    .entry(e.du)
                    .or_default()
                    .entry(e.floor)
                    .or_insert_with(|| (dom, VecDeque::new()));
                self.calibrated.push(*c);
                Slot::Calibrated(self.calibrated.len() as u32 - 1)
            }
            Err(why) => {
                if let std::collections::btree_map::Entry::Vacant(v) = self.missing.entry(dom) {
                    // The loader logged the summary once; details here.
                    tracing::debug!(
                        "AHRS: DU{} floor {} (DOM {dom}) has no constants: {why}",
                        e.du,
                        e.floor,
                    );
                    v.insert((e.du, e.floor, why.clone()));
                }
                self.history.entry(e.du).or_default();
                Slot::Missing
            }
        }
    }

    /// Closes a window: CSV rows, history, plots. `end_s`: the window's
    /// end, or the last data time for the partial one at the end.
    fn emit(&mut self, stamp: Time, end_s: u64, means: DomMeans, partial: bool, out: &mut Out) {
        let Some(set) = self.constants.clone() else {
            return;
        };
        let mut rows: Vec<(u32, i32, u32, [f64; 3])> = Vec::new();
        for (dom, m) in &means {
            let Some(e) = set.doms.get(dom) else { continue };
            let (Some(y), Some(p), Some(r)) = (m[0].mean(), m[1].mean(), m[2].mean()) else {
                continue;
            };
            rows.push((e.du, e.floor, *dom, [y.rem_euclid(360.0), p, r]));
        }
        rows.sort_by_key(|r| (r.0, r.1, r.2));
        let time = crate::shell::iso(end_s as i64);
        for (du, floor, dom, v) in &rows {
            out.give(
                stamp,
                Item::Row(Box::new(Row {
                    table: self.table.clone(),
                    header: ["time_utc", "du", "floor", "dom_id", "yaw", "pitch", "roll"]
                        .map(String::from)
                        .to_vec(),
                    cells: vec![
                        time.clone(),
                        du.to_string(),
                        floor.to_string(),
                        dom.to_string(),
                        format!("{:.4}", v[0]),
                        format!("{:.4}", v[1]),
                        format!("{:.4}", v[2]),
                    ],
                })),
            );
            let floors = self.history.entry(*du).or_default();
            let h = floors
                .entry(*floor)
                .or_insert_with(|| (*dom, VecDeque::new()));
            h.0 = *dom;
            h.1.push_back((end_s, *v));
        }
        let oldest = end_s.saturating_sub(self.range_s);
        for floors in self.history.values_mut() {
            for (_, h) in floors.values_mut() {
                while h.front().is_some_and(|(s, _)| *s < oldest) {
                    h.pop_front();
                }
            }
        }
        let ctx = plots::Context {
            det_id: self.det_id,
            end_s,
            range_s: self.range_s,
            partial,
            source: &set.source,
        };
        for (du, floors) in &self.history {
            for plot in plots::du_plots(&ctx, *du, floors, &self.missing) {
                out.give(stamp, Item::Plot(Arc::new(plot)));
            }
        }
    }
}

impl Monitor<Item> for AhrsMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        self.poll();
        for item in data {
            let Item::Tmch(p) = item else { continue };
            self.last_ns = self.last_ns.max(p.utc_ns());
            self.packet(t, &p, out);
        }
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        if let Some((w, means)) = self.windows.close(t) {
            self.emit(t, w.end / TICKS_PER_SECOND, means, false, out);
        }
    }

    fn on_end(&mut self, _last: Option<Time>, out: &mut Out) {
        // No IO_MONIT came: the loader ends without asking anything.
        self.start = None;
        self.finished = true;
        let stamp = out.now();
        for (_, means) in self.windows.drain() {
            let end_s = (self.last_ns + TICK_NS) / 1_000_000_000;
            self.emit(stamp, end_s, means, true, out);
        }
    }

    /// Stopped: the open window is saved, not written partial.
    fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out) {
        self.start = None;
        self.finished = true;
    }

    fn save(&mut self, store: &pipeline::runtime::state::StateStore) {
        if !self.finished {
            return;
        }
        let saved = Saved {
            windows: self.windows.clone(),
            history: self.history.clone(),
            missing: self.missing.clone(),
            last_ns: self.last_ns,
        };
        store.save(&BTreeMap::from([("state".to_string(), saved)]));
    }
}
