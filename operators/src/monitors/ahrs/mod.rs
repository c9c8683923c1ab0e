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
//! whatever the DB cannot give. They are fetched on an I/O thread, one per
//! process (live: again every `refresh` hours), and handed to every
//! worker ([`doms::Feed`]); a replay's workers wait for the first set, so
//! the outputs do not depend on the network's speed; live, packets that
//! come before it are counted and skipped.
//!
//! Two stages: the per-packet fit and the window means on the DOM's
//! worker ([`doms::AhrsDoms`]), the rows and plots on worker 0 from one
//! record per DOM and window ([`AhrsMonitor`]).
//!
//! Fixes of the original: every packet is used (not every 29th of the
//! whole stream), averaged per event-time window with circular means (a
//! yaw around 0°/360° or a roll around ±180° would average to nonsense);
//! DOMs without constants are counted and named on the plots instead of
//! crashing or vanishing; no `times` plot; the constants are cached per
//! day (not refetched with ≥ 4 requests per CLB every hour).

pub mod constants;
pub mod doms;
pub mod math;
mod plots;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pipeline::item::{Item, Row, Time, TICKS_PER_SECOND, TICK_NS};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::runtime::Mode;
use pipeline::StreamKind;
use serde::Deserialize;

use crate::shell::{Monitor, Out};
pub use doms::{AhrsDoms, DomWindow, WindowKind};
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
        let replay = matches!(ctx.env.mode, Mode::Replay { .. });
        // One loader per run and process; every worker's stage 1 subscribes.
        let (feed, started) = doms::Feed::of(&ctx.env, &ctx.node);
        if let Some(started) = started {
            let db = self
                .db
                .then(|| db_service(self.detector_id.clone(), ctx, det.det_id()));
            let file = self.constants.clone().filter(|p| !p.as_os_str().is_empty());
            let shutdown = ctx.env.shutdown.clone();
            let refresh = Duration::from_secs(self.refresh * 3600);
            let feed = feed.clone();
            let det = det.clone();
            ctx.spawn_io("constants", move || {
                let stop = || shutdown.load(std::sync::atomic::Ordering::Relaxed);
                // Nothing is asked before the first IO_MONIT packet: a
                // graph without monitoring data costs the DB nothing.
                loop {
                    match started.recv_timeout(Duration::from_millis(200)) {
                        Ok(()) => break,
                        Err(_) if stop() || feed.all_ended() => return,
                        Err(_) => {}
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
                    feed.publish(Arc::new(set));
                    if replay {
                        return;
                    }
                    // Live: again every `refresh` hours (the DB client's
                    // day cache answers most of it without a request).
                    let until = std::time::Instant::now() + refresh;
                    while std::time::Instant::now() < until {
                        if stop() || feed.all_ended() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            })?;
        }
        let (index, peers) = (ctx.index(), ctx.peers() as u64);
        let mut stage1 = doms::AhrsDoms::new(self.interval).with_feed(feed, replay);
        stage1.metrics = Some(ctx.metrics.clone());
        stage1.key = format!("w{index}");
        let saved = ctx.state().part("doms").load_all::<doms::SavedDoms>();
        stage1.restore(saved.into_values(), |dom| {
            crate::sources::decode::dom_route(dom) % peers == index as u64
        });
        let mut stage1 = Some(stage1);
        let windows = crate::shell::partitioned(
            ctx,
            input,
            "ahrs_calibration_dom",
            |i: &Item| match i {
                Item::Tmch(p) => crate::sources::decode::dom_route(p.dom_id),
                _ => 0,
            },
            Item::order_key,
            move || stage1.take(),
        );
        let mut monitor = AhrsMonitor::new(self, det.det_id());
        if ctx.index() == 0 {
            if let Some(saved) = ctx.state().load_all::<Saved>().remove("state") {
                monitor.restore(saved);
            }
        }
        Ok(Some(crate::shell::ordered(
            ctx,
            windows,
            "ahrs_calibration",
            |w: &doms::DomWindow| (w.window_end, w.dom),
            monitor,
        )))
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

/// A DOM seen without constants: (DU, floor, why).
pub type Missing = BTreeMap<u32, (u32, i32, String)>;

pub use doms::History;

/// What a restart continues: the history per floor, the DOMs without
/// constants and the latest packet time (the open windows are in each
/// worker's stage 1, the `doms` part).
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    history: BTreeMap<u32, BTreeMap<i32, (u32, History)>>,
    missing: Missing,
    last_ns: u64,
    #[serde(default)]
    generation: u64,
}

/// Stage 2, on worker 0: the DOMs' windows become CSV rows, history
/// and plots.
pub struct AhrsMonitor {
    det_id: i32,
    table: String,
    range_s: u64,
    /// Per DU and floor.
    history: BTreeMap<u32, BTreeMap<i32, (u32, History)>>,
    missing: Missing,
    generation: u64,
    last_ns: u64,
    /// The windows drained at the end of the input, by window end, until
    /// every worker's have come (they are written at the last data time
    /// of all of them).
    partial: BTreeMap<Time, Vec<DomWindow>>,
    /// The input ended or stopped: the one save of the run (the history
    /// is megabytes for a large detector).
    finished: bool,
}

impl AhrsMonitor {
    pub fn new(c: &AhrsCalibration, det_id: i32) -> AhrsMonitor {
        AhrsMonitor {
            det_id,
            table: c.table.clone(),
            range_s: c.time_range * 3600,
            history: BTreeMap::new(),
            missing: Missing::new(),
            generation: 0,
            last_ns: 0,
            partial: BTreeMap::new(),
            finished: false,
        }
    }

    fn restore(&mut self, s: Saved) {
        self.history = s.history;
        self.missing = s.missing;
        self.last_ns = s.last_ns;
        self.generation = s.generation;
    }

    /// Closes a window: CSV rows, history, plots. `end_s`: the window's
    /// end, or the last data time for the partial one at the end.
    fn emit(&mut self, stamp: Time, end_s: u64, dws: Vec<DomWindow>, partial: bool, out: &mut Out) {
        let Some(source) = dws.first().map(|w| w.source.clone()) else {
            return;
        };
        if let Some(g) = dws.iter().map(|w| w.generation).max() {
            if g > self.generation {
                // New constants: the DOMs without them are named anew.
                self.missing.clear();
                self.generation = g;
            }
        }
        let mut rows: Vec<(u32, i32, u32, [f64; 3])> = Vec::new();
        for w in dws {
            match w.what {
                WindowKind::Angles(v) => rows.push((w.du, w.floor, w.dom, v)),
                WindowKind::Missing(why) => {
                    self.history.entry(w.du).or_default();
                    if let std::collections::btree_map::Entry::Vacant(v) = self.missing.entry(w.dom)
                    {
                        // The loader logged the summary once; details here.
                        tracing::debug!(
                            "AHRS: DU{} floor {} (DOM {}) has no constants: {why}",
                            w.du,
                            w.floor,
                            w.dom
                        );
                        v.insert((w.du, w.floor, why));
                    }
                }
                WindowKind::Seen => {}
            }
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
            source: &source,
        };
        for (du, floors) in &self.history {
            for plot in plots::du_plots(&ctx, *du, floors, &self.missing) {
                out.give(stamp, Item::Plot(Arc::new(plot)));
            }
        }
    }
}

impl Monitor<DomWindow, Item> for AhrsMonitor {
    fn on_data(&mut self, t: Time, data: Vec<DomWindow>, out: &mut Out) {
        // Sorted by (window end, DOM): one closed window per run of ends.
        let mut closed: Vec<DomWindow> = Vec::new();
        for w in data {
            self.last_ns = self.last_ns.max(w.last_ns);
            if w.partial {
                if w.what != WindowKind::Seen {
                    self.partial.entry(w.window_end).or_default().push(w);
                }
                continue;
            }
            if closed.last().is_some_and(|c| c.window_end != w.window_end) {
                let end_s = closed[0].window_end / TICKS_PER_SECOND;
                self.emit(t, end_s, std::mem::take(&mut closed), false, out);
            }
            closed.push(w);
        }
        if let Some(first) = closed.first() {
            let end_s = first.window_end / TICKS_PER_SECOND;
            self.emit(t, end_s, closed, false, out);
        }
    }

    fn on_end(&mut self, _last: Option<Time>, out: &mut Out) {
        self.finished = true;
        let stamp = out.now();
        for (_, dws) in std::mem::take(&mut self.partial) {
            let end_s = (self.last_ns + TICK_NS) / 1_000_000_000;
            let mut dws = dws;
            dws.sort_by_key(|w| w.dom);
            self.emit(stamp, end_s, dws, true, out);
        }
    }

    fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out) {
        self.finished = true;
    }

    fn save(&mut self, store: &pipeline::runtime::state::StateStore) {
        if !self.finished {
            return;
        }
        let saved = Saved {
            history: self.history.clone(),
            missing: self.missing.clone(),
            last_ns: self.last_ns,
            generation: self.generation,
        };
        store.save(&BTreeMap::from([("state".to_string(), saved)]));
    }
}
