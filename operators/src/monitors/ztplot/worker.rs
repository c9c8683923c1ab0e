//! ztplot's plot thread: calibration per run, the top-10 rule, the
//! display and the archive. Runs off the dataflow workers; every failure
//! is logged and the event dropped, the thread carries on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Receiver;
use daq::detector::Detector;
use daq::event::Event;
use pipeline::runtime::io::write_atomic;
use pipeline::runtime::metrics::NodeMetrics;

use super::calib_source::CalibrationSource;
use super::draw::{self, ZtFigure};
use super::hits::{self, ZtHit};
use super::selection::{Limits, Row, SelectionDb, Sizes};
use super::ZtPlot;
use crate::shell::human;

pub struct Setup {
    pub cfg: ZtPlot,
    /// Absolute paths.
    pub db: PathBuf,
    pub dir: PathBuf,
    pub source: Box<dyn CalibrationSource>,
    pub metrics: Arc<NodeMetrics>,
    /// Output failures mark the node FAILED here (and are logged once).
    pub control: Arc<pipeline::control::NodeControl>,
    /// Posts each new top-10 event to the ELOG (`[ZTPlot] elog`).
    pub elog: Option<messaging::elog::ElogSender>,
}

pub fn run(setup: Setup, rx: Receiver<Arc<Event>>) {
    let mut st = State::new(setup);
    for ev in rx {
        let m = st.setup.metrics.clone();
        m.busy(|| st.event(&ev));
    }
    if let Some(e) = &st.setup.elog {
        tracing::info!(
            "ztplot: {} ELOG entries queued, {} dropped (queue full)",
            st.elog_queued,
            e.counts.dropped.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

pub struct State {
    setup: Setup,
    det: Option<Arc<Detector>>,
    run: Option<(i32, i32)>,
    /// Shown on the plot while the calibration is not the run's own.
    note: Option<String>,
    max_z: Option<f64>,
    db: Option<SelectionDb>,
    limits: Limits,
    last_plot: Option<u32>,
    elog_queued: u64,
    /// After a failed write (full disk) candidates are not drawn at once
    /// but at the routine cadence until this back-off passes: with an
    /// empty top 10 every event is a candidate, and each one used to be
    /// drawn and fail again.
    hold: pipeline::runtime::io::Backoff,
    /// Pacing of the attempts to open a database that failed to open.
    db_retry: pipeline::runtime::io::Backoff,
}

impl State {
    pub fn new(setup: Setup) -> State {
        let mut st = State {
            setup,
            det: None,
            run: None,
            note: None,
            max_z: None,
            db: None,
            limits: Limits::default(),
            last_plot: None,
            elog_queued: 0,
            hold: Default::default(),
            db_retry: Default::default(),
        };
        st.open_db();
        st
    }

    /// Without a database there is no top 10, only routine plots: a
    /// database that cannot be opened (a full disk, a folder in its place,
    /// a permission) fails the node naming the file and is tried again
    /// with back-off, so the selection resumes once the cause is gone
    /// instead of staying off until a restart.
    fn open_db(&mut self) {
        let path = &self.setup.db;
        let opened = SelectionDb::open(path, &self.setup.cfg.table).and_then(|db| {
            let limits = db.limits()?;
            Ok((db, limits))
        });
        match opened {
            Ok((db, limits)) => {
                if self.db_retry.wait().is_some() {
                    tracing::info!(
                        "ztplot: database {} opened; event selection resumes",
                        path.display()
                    );
                    self.setup.control.write_ok(Some(path));
                }
                self.db_retry.succeeded();
                self.db = Some(db);
                self.limits = limits;
            }
            Err(e) => {
                // Logged there, once per file.
                self.setup.control.write_failed(path, e.root_cause());
                self.db_retry.failed();
            }
        }
    }

    /// On a run change: the run's detector, or the previous one with a note.
    fn reload(&mut self, det_id: i32, run: i32) {
        match self.setup.source.for_run(det_id, run) {
            Ok(d) => {
                let top = d
                    .optical_modules()
                    .flat_map(|m| m.pmts.iter().map(|p| p.pos[2]))
                    .fold(f64::NEG_INFINITY, f64::max);
                if top.is_finite() {
                    self.max_z = Some(((top + 10.0) / 10.0).round() * 10.0);
                }
                self.det = Some(d);
                self.note = None;
            }
            Err(e) => {
                tracing::warn!(
                    "ztplot: calibration for run {run}: {e:#}; keeping the previous one"
                );
                let previous = if self.det.is_some() {
                    "the previous one".to_string()
                } else if let Some((d, what)) = self.setup.source.fallback() {
                    self.det = Some(d);
                    what
                } else {
                    "none".to_string()
                };
                self.note = Some(format!(
                    "calibration for run {run} failed, using {previous}"
                ));
            }
        }
        self.run = Some((det_id, run));
    }

    pub fn event(&mut self, ev: &Event) {
        let h = &ev.header;
        if self.run != Some((h.det_id, h.run)) {
            self.reload(h.det_id, h.run);
        }
        let Some(det) = self.det.clone() else { return };
        if self.db.is_none() && self.db_retry.ready() {
            self.open_db();
        }
        let cal = hits::calibrate(&det, ev);
        let sizes = Sizes {
            overlays: ev.overlays as i64,
            n_hits: ev.snapshot_hits.len() as i64,
            n_triggered_hits: ev.triggered_hits.len() as i64,
        };
        let candidate = self.db.is_some() && self.hold.ready() && self.limits.is_candidate(&sizes);
        let every = self.setup.cfg.plot_every as u32;
        if !candidate
            && self
                .last_plot
                .is_some_and(|l| h.utc_seconds.saturating_sub(l) < every)
        {
            return;
        }
        let png = self.setup.dir.join("ztplot.png");
        // A failed attempt counts for the cadence too: on a full disk every
        // event used to be drawn (and fail) again.
        self.last_plot = Some(h.utc_seconds);
        // Failures go to the node's state, each file logged once: a full
        // disk used to print one identical line per event, naming no file.
        if let Err(e) = self.plot(&det, ev, &cal.hits, &png) {
            self.setup.control.write_failed(&png, e.root_cause());
            self.hold.failed();
            return;
        }
        // The next plot is the retry: a good one ends the FAILED state
        // (unless the database fails too).
        self.setup.control.write_ok(Some(&png));
        self.hold.succeeded();
        if candidate {
            match self.archive(ev, &cal.hits, sizes, &png) {
                Ok(Some(copy)) => {
                    self.setup.control.write_ok(Some(&self.setup.db));
                    self.post_elog(ev, &cal.hits, copy)
                }
                // Already in the table (a replay of the same data).
                Ok(None) => self.setup.control.write_ok(Some(&self.setup.db)),
                Err(e) => {
                    self.setup
                        .control
                        .write_failed(&self.setup.db, e.root_cause());
                    self.hold.failed();
                }
            }
        }
    }

    fn plot(&self, det: &Detector, ev: &Event, hits: &[ZtHit], png: &Path) -> anyhow::Result<()> {
        let h = &ev.header;
        let flags = hits::trigger_flags(ev.trigger_mask);
        let title = format!(
            "z-t-Plot for DetID-{} Run {}, FrameIndex {}, TriggerCounter {}, Overlays {}, Trigger: {}",
            h.det_id, h.run, h.frame_index, ev.trigger_counter, ev.overlays, flags
        );
        let n_trig = hits.iter().filter(|x| x.triggered).count();
        let mut subtitle = format!(
            "{}   —   {} hits, {} triggered",
            human(h.utc_seconds as i64),
            hits.len(),
            n_trig
        );
        if let Some(n) = &self.note {
            subtitle.push_str(&format!("   —   {n}"));
        }
        let floor_z = hits
            .iter()
            .map(|x| x.du)
            .min()
            .map(|du| {
                let mut ms: Vec<_> = det.modules_of_du(du).filter(|m| m.is_optical()).collect();
                ms.sort_by_key(|m| m.floor);
                ms.iter()
                    .filter_map(|m| m.pmt(0))
                    .map(|p| p.pos[2])
                    .collect()
            })
            .unwrap_or_default();
        let max_z = self.max_z.unwrap_or_else(|| {
            let top = hits.iter().map(|x| x.z).fold(0.0, f64::max);
            (top / 100.0).ceil().max(1.0) * 100.0 * 1.05
        });
        let fig = ZtFigure {
            title,
            subtitle,
            hits,
            floor_z,
            max_z,
            ytick_distance: self.setup.cfg.ytick_distance,
        };
        use anyhow::Context as _;
        std::fs::create_dir_all(&self.setup.dir)
            .with_context(|| format!("cannot create {}", self.setup.dir.display()))?;
        draw::render(png, &fig)
    }

    fn archive(
        &mut self,
        ev: &Event,
        hits: &[ZtHit],
        sizes: Sizes,
        png: &Path,
    ) -> anyhow::Result<Option<PathBuf>> {
        let h = &ev.header;
        let stem = file_stem(h.det_id, h.run, h.frame_index, ev.trigger_counter);
        let sel = self.setup.dir.join("event_selection");
        let copy = sel.join(format!("{stem}.png"));
        write_atomic(&copy, &std::fs::read(png)?)?;
        // The complete IO_EVT frame, preamble included: the encoder
        // reproduces the wire bytes of a decoded event.
        write_atomic(&sel.join(format!("{stem}.dat")), &ev.encode())?;
        let mut dus: Vec<u32> = hits.iter().map(|x| x.du).collect();
        dus.sort_unstable();
        dus.dedup();
        let row = Row {
            sizes,
            n_dus: dus.len() as i64,
            plot_filename: copy.display().to_string(),
            run_id: h.run as i64,
            det_id: h.det_id as i64,
            frame_index: h.frame_index as i64,
            trigger_counter: ev.trigger_counter as i64,
            utc_timestamp: h.utc_seconds as i64,
        };
        let db = self.db.as_mut().expect("candidates only with a database");
        let new = db.insert(&row)?;
        self.limits = db.limits()?;
        Ok(new.then_some(copy))
    }

    /// The ELOG entry of a new top-10 event (the original's subject; its
    /// one-line text with the event's numbers), queued for the ELOG thread.
    fn post_elog(&mut self, ev: &Event, hits: &[ZtHit], png: PathBuf) {
        let Some(elog) = &self.setup.elog else { return };
        let h = &ev.header;
        let n_trig = hits.iter().filter(|x| x.triggered).count();
        let text = format!(
            "A new event entered the top 10 of the event selection: DetID-{} Run {}, FrameIndex {}, TriggerCounter {}, {} hits ({} triggered), {} UTC.",
            h.det_id, h.run, h.frame_index, ev.trigger_counter, hits.len(), n_trig, human(h.utc_seconds as i64)
        );
        let queued = elog.send(messaging::elog::ElogEntry {
            subject: "New massive event!".into(),
            text,
            attachments: vec![png],
        });
        if queued {
            self.elog_queued += 1;
        } else {
            self.setup.metrics.drop_detail(
                pipeline::runtime::metrics::DropReason::Overflow,
                "ELOG queue full",
                1,
            );
        }
    }
}

/// `ztplot_{det:08}_{run:08}_FI{fi}_TC{tc}`.
pub fn file_stem(det: i32, run: i32, fi: i32, tc: u64) -> String {
    format!("ztplot_{det:08}_{run:08}_FI{fi}_TC{tc}")
}
