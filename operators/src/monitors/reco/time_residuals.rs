//! `type = "time_residuals"`: the distributions of the ROyFit time
//! residuals of the last `window` s of data time, per floor and DU
//! (`time_residuals.png|json`, spec `reco.md` §5), and the alert
//! `time_residuals:<du>` when a DU's median — or the median of one of its
//! floors — leaves ±`median_band` ns. Reads the `reco_timeres` rows of
//! `royfit`, not the CSV. Every decision is taken from data time: the
//! window is cut and the plot redrawn when rows of a later time arrive.
//!
//! A t0 offset common to a whole DU cannot show here: each DU is fitted
//! alone, and its fitted t₀ absorbs the offset. What shows is a jump of
//! some DOMs against the rest of their DU (docs/reco.md).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender, TrySendError};
use hdrhistogram::Histogram;
use pipeline::item::{seconds_of, Item, Time};
use pipeline::operator::{
    check_relative, BuildContext, ItemStream, Node, NodeConfig, Resource, Role,
};
use pipeline::runtime::context::Mode;
use pipeline::runtime::metrics::{DropReason, NodeMetrics};
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};

use super::output::TABLE;
use crate::shell::alerting::AlertBook;
use crate::shell::alerting::AlertKind;
use crate::shell::{ordered_items, Monitor, Out};

/// The alerts this monitor raises, in words (docs/alerts.md).
pub const ALERTS: &[AlertKind] = &[AlertKind {
    key: "time_residuals:<du>",
    firing: "time residual median out of its band",
    resolved: "time residual median back in its band",
}];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeResiduals {
    /// Seconds of data time shown (the original: the last 2 h).
    #[serde(default = "window", deserialize_with = "timespan::de::secs")]
    pub window: u64,
    /// Seconds of data time between two plots (the original: 60 s).
    #[serde(default = "sixty", deserialize_with = "timespan::de::secs")]
    pub plot_interval: u64,
    /// |median| above this (ns) raises `time_residuals:<du>`.
    #[serde(default = "band")]
    pub median_band: f64,
    /// Residuals a DU (or floor) needs before its median is judged.
    #[serde(default = "min_count")]
    pub min_count: u64,
    /// Seconds of data time between reminders of a firing alert (0 = never).
    #[serde(default, deserialize_with = "timespan::de::secs")]
    pub reminder_interval: u64,
    /// Plot directory under `--out`.
    #[serde(default = "plots")]
    pub dir: PathBuf,
}

fn window() -> u64 {
    7200
}
fn sixty() -> u64 {
    60
}
fn band() -> f64 {
    10.0
}
fn min_count() -> u64 {
    100
}
fn plots() -> PathBuf {
    PathBuf::from("plots")
}

impl NodeConfig for TimeResiduals {
    const TYPE: &'static str = "time_residuals";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "ROyFit time residuals per floor and DU (time_residuals.png|json) and their median alert";
    const EXAMPLE: &'static str = r#"inputs = ["royfit_example"]
window = 600
plot_interval = 10
min_count = 10"#;
}

impl Node for TimeResiduals {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            (
                "dir".into(),
                Resource::file(&self.dir.join("time_residuals.png")),
            ),
            (
                "dir".into(),
                Resource::file(&self.dir.join("time_residuals.json")),
            ),
            (String::new(), Resource::Detector),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Table]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Alerts)
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e: Vec<_> = check_relative("dir", &self.dir).into_iter().collect();
        if self.window == 0 {
            e.push(("window".into(), "must be at least 1 s".into()));
        }
        if self.median_band.is_nan() || self.median_band <= 0.0 {
            e.push(("median_band".into(), "must be positive".into()));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("time_residuals needs an input"))?;
        let det = ctx.detector()?;
        let n_floors = det
            .optical_modules()
            .map(|m| m.floor)
            .max()
            .unwrap_or(0)
            .max(1);
        let mut m = ResidualMonitor::new(&ctx.node, self.clone(), n_floors);
        m.replay = matches!(ctx.env.mode, Mode::Replay { .. });
        m.metrics = Some(ctx.metrics.clone());
        if ctx.is_leader() {
            if let Some(saved) = ctx.state().load_all::<Saved>().remove("state") {
                m.restore(saved);
            }
            let (s, r) = bounded::<Arc<Figure>>(2);
            let dir = ctx.out_path(&self.dir);
            let control = ctx.node_control();
            ctx.spawn_io("plotter", move || {
                for p in r {
                    // Logged once per file; the next plot is the retry.
                    match super::residual_draw::write(&dir, &p) {
                        Ok(()) => control.write_ok(Some(&dir.join("time_residuals.png"))),
                        Err(e) => {
                            control.write_failed(&dir.join("time_residuals.png"), format!("{e:#}"))
                        }
                    }
                }
            })?;
            m.plot = Some(s);
        }
        Ok(Some(ordered_items(ctx, input, "time_residuals", m)))
    }
}

/// One residual: DU, floor, ns.
type Res = (u32, i32, f32);

/// Quantiles of one DU's (or one floor's) residuals within |t| < 500 ns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quantiles {
    pub n: u64,
    pub p16: f64,
    pub median: f64,
    pub p84: f64,
}

/// A step histogram of one DU on one floor: range and counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist {
    pub du: u32,
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u32>,
}

/// What the plot thread draws and writes.
#[derive(Debug, Clone)]
pub struct Figure {
    pub data_time_s: u64,
    pub window_s: u64,
    pub n_floors: i32,
    /// Floor → histograms by DU.
    pub panels: BTreeMap<i32, Vec<Hist>>,
    /// DU → (all floors, floor → quantiles).
    pub stats: BTreeMap<u32, (Quantiles, BTreeMap<i32, Quantiles>)>,
}

pub const BINS: usize = 100;
/// Residuals are kept in 0.1 ns units offset by 500 ns (hdrhistogram
/// takes positive integers).
const OFFSET_NS: f64 = 500.0;

fn hdr() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_002, 3).expect("valid bounds")
}

fn record(h: &mut Histogram<u64>, r: f64) {
    let v = ((r + OFFSET_NS) * 10.0).round() as u64 + 1;
    let _ = h.record(v);
}

fn quantiles(h: &Histogram<u64>) -> Quantiles {
    // The middle of the value's bucket: 3 significant digits are 0.4 ns
    // wide around 0 ns here, and the bucket's top would bias by +0.2 ns.
    let back =
        |q: f64| (h.median_equivalent(h.value_at_quantile(q)) as f64 - 1.0) / 10.0 - OFFSET_NS;
    Quantiles {
        n: h.len(),
        p16: back(0.16),
        median: back(0.5),
        p84: back(0.84),
    }
}

/// (DU, floor, residual as `f32` bits).
type SavedRes = (u32, i32, u32);

/// The residuals of the window and the schedule, saved when the run
/// ends or stops (the window holds up to hours of residuals: megabytes,
/// not rewritten at every state interval). Residuals as `f32` bits, so
/// the restored ones are the same numbers.
#[derive(Serialize, Deserialize)]
struct Saved {
    chunks: Vec<(u64, Vec<SavedRes>)>,
    newest: u64,
    last_plot: Option<u64>,
    alerts: AlertBook,
}

pub struct ResidualMonitor {
    cfg: TimeResiduals,
    /// The input ended or stopped: the next save is the last of the run.
    finished: bool,
    n_floors: i32,
    chunks: VecDeque<(u64, Vec<Res>)>,
    newest: u64,
    last_plot: Option<u64>,
    alerts: AlertBook,
    pub plot: Option<Sender<Arc<Figure>>>,
    pub replay: bool,
    pub metrics: Option<Arc<NodeMetrics>>,
    /// The last figure (for tests).
    pub last: Option<Arc<Figure>>,
}

impl ResidualMonitor {
    pub fn new(node: &str, cfg: TimeResiduals, n_floors: i32) -> ResidualMonitor {
        ResidualMonitor {
            alerts: AlertBook::new(node, cfg.reminder_interval).with_kinds(ALERTS),
            cfg,
            finished: false,
            n_floors,
            chunks: VecDeque::new(),
            newest: 0,
            last_plot: None,
            plot: None,
            replay: false,
            metrics: None,
            last: None,
        }
    }

    fn restore(&mut self, s: Saved) {
        self.chunks = s
            .chunks
            .into_iter()
            .map(|(t, c)| {
                let c = c.into_iter().map(|(du, f, r)| (du, f, f32::from_bits(r)));
                (t, c.collect())
            })
            .collect();
        self.newest = s.newest;
        self.last_plot = s.last_plot;
        self.alerts.restore(s.alerts);
    }

    fn figure(&self) -> Figure {
        let mut groups: BTreeMap<(u32, i32), Vec<f32>> = BTreeMap::new();
        for (_, chunk) in &self.chunks {
            for &(du, floor, r) in chunk {
                if r.abs() < 500.0 {
                    groups.entry((du, floor)).or_default().push(r);
                }
            }
        }
        let mut panels: BTreeMap<i32, Vec<Hist>> = BTreeMap::new();
        let mut stats: BTreeMap<u32, (Histogram<u64>, BTreeMap<i32, Quantiles>)> = BTreeMap::new();
        for ((du, floor), v) in &groups {
            let mut h = hdr();
            for r in v {
                record(&mut h, f64::from(*r));
            }
            let entry = stats.entry(*du).or_insert_with(|| (hdr(), BTreeMap::new()));
            let _ = entry.0.add(&h);
            entry.1.insert(*floor, quantiles(&h));
            // Auto range per DU and floor, as matplotlib's hist.
            let lo = v.iter().copied().fold(f32::INFINITY, f32::min) as f64;
            let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let (lo, hi) = if hi > lo {
                (lo, hi)
            } else {
                (lo - 0.5, lo + 0.5)
            };
            let mut counts = vec![0u32; BINS];
            for r in v {
                let k = ((f64::from(*r) - lo) / (hi - lo) * BINS as f64) as usize;
                counts[k.min(BINS - 1)] += 1;
            }
            panels.entry(*floor).or_default().push(Hist {
                du: *du,
                lo,
                hi,
                counts,
            });
        }
        Figure {
            data_time_s: self.newest,
            window_s: self.cfg.window,
            n_floors: self.n_floors,
            panels,
            stats: stats
                .into_iter()
                .map(|(du, (h, floors))| (du, (quantiles(&h), floors)))
                .collect(),
        }
    }

    fn judge(&mut self, t: Time, fig: &Figure, out: &mut Out) {
        let band = self.cfg.median_band;
        let now_ns = fig.data_time_s * 1_000_000_000;
        for (du, (all, floors)) in &fig.stats {
            if all.n < self.cfg.min_count {
                continue;
            }
            let bad: Vec<(i32, f64)> = floors
                .iter()
                .filter(|(_, q)| q.n >= self.cfg.min_count && q.median.abs() > band)
                .map(|(f, q)| (*f, q.median))
                .collect();
            let holds = all.median.abs() > band || !bad.is_empty();
            let worst = bad
                .iter()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .map_or(0, |b| b.0);
            let key = format!("time_residuals:{du}");
            let msg = || {
                let floors: Vec<String> = bad
                    .iter()
                    .map(|(f, m)| format!("floor {f} {m:+.1} ns"))
                    .collect();
                format!(
                    "DU{du}: median time residual {:+.1} ns (band ±{band} ns){}{}",
                    all.median,
                    if floors.is_empty() { "" } else { "; " },
                    floors.join(", ")
                )
            };
            let back = || format!("DU{du}: time residual medians within ±{band} ns again");
            if let Some(a) = self
                .alerts
                .set_at(&key, holds, now_ns, Some((*du, worst)), msg, back)
            {
                out.give(t, Item::Alert(Box::new(a)));
            }
        }
        for a in self.alerts.reminders(now_ns) {
            out.give(t, Item::Alert(Box::new(a)));
        }
    }
}

/// (timestamp, DU, floor, t_res) of a residual row.
fn parse(row: &pipeline::item::Row) -> Option<(u64, Res)> {
    if row.table != TABLE {
        return None;
    }
    let c = &row.cells;
    Some((
        c.get(1)?.parse().ok()?,
        (
            c.get(2)?.parse().ok()?,
            c.get(3)?.parse().ok()?,
            c.get(5)?.parse().ok()?,
        ),
    ))
}

impl Monitor<Item> for ResidualMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        let now = seconds_of(t);
        let mut chunk = Vec::new();
        for item in &data {
            if let Item::Row(r) = item {
                match parse(r) {
                    Some((_, res)) => chunk.push(res),
                    None => {
                        if let Some(m) = &self.metrics {
                            m.drop_detail(DropReason::Corrupt, "not a reco_timeres row", 1);
                        }
                    }
                }
            }
        }
        if chunk.is_empty() {
            return;
        }
        self.newest = self.newest.max(now);
        self.chunks.push_back((now, chunk));
        let oldest = self.newest.saturating_sub(self.cfg.window);
        while self.chunks.front().is_some_and(|(s, _)| *s < oldest) {
            self.chunks.pop_front();
        }
        let due = self
            .last_plot
            .is_none_or(|l| self.newest >= l + self.cfg.plot_interval);
        if !due {
            return;
        }
        self.last_plot = Some(self.newest);
        let fig = Arc::new(self.figure());
        self.judge(t, &fig, out);
        if let Some(tx) = &self.plot {
            if self.replay {
                let _ = tx.send(fig.clone());
            } else if let Err(TrySendError::Full(_)) = tx.try_send(fig.clone()) {
                if let Some(m) = &self.metrics {
                    m.drop_detail(DropReason::Overflow, "plot queue full", 1);
                }
            }
        }
        self.last = Some(fig);
    }

    /// End of the stream only: the last state is drawn, then the plot
    /// thread is let go.
    /// The input ended: the last state is drawn (if newer than the last
    /// plot) and the plot channel closed.
    fn on_end(&mut self, _last: Option<Time>, _out: &mut Out) {
        if !self.chunks.is_empty() && self.last_plot != Some(self.newest) {
            let fig = Arc::new(self.figure());
            if let Some(tx) = &self.plot {
                let _ = tx.send(fig.clone());
            }
            self.last = Some(fig);
        }
        self.plot = None;
        self.finished = true;
    }

    /// Stopped: no final figure (the window is saved and continues).
    fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out) {
        self.plot = None;
        self.finished = true;
    }

    fn save(&mut self, store: &pipeline::runtime::state::StateStore) {
        if !self.finished {
            return;
        }
        let chunks = self
            .chunks
            .iter()
            .map(|(t, c)| {
                let c = c.iter().map(|&(du, f, r)| (du, f, r.to_bits()));
                (*t, c.collect())
            })
            .collect();
        let saved = Saved {
            chunks,
            newest: self.newest,
            last_plot: self.last_plot,
            alerts: self.alerts.clone(),
        };
        store.save(&BTreeMap::from([("state".to_string(), saved)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::run_by_hand;
    use pipeline::item::{AlertState, Row, TICKS_PER_SECOND};

    fn row(ts: u64, du: u32, floor: i32, r: f64) -> Item {
        Item::Row(Box::new(Row {
            table: TABLE.into(),
            header: super::super::output::HEADER
                .iter()
                .map(|s| s.to_string())
                .collect(),
            cells: vec![
                "1".into(),
                ts.to_string(),
                du.to_string(),
                floor.to_string(),
                "808".into(),
                format!("{r:.3}"),
                "2.0".into(),
            ],
        }))
    }

    fn cfg() -> TimeResiduals {
        TimeResiduals {
            window: 100,
            plot_interval: 10,
            median_band: band(),
            min_count: 20,
            reminder_interval: 0,
            dir: plots(),
        }
    }

    /// Every second: 10 residuals per floor of DUs 1 and 2 around 0 ns;
    /// DU 2 floor 3 at +15 ns during `jump`.
    fn data(secs: std::ops::Range<u64>, jump: std::ops::Range<u64>) -> Vec<(Time, Vec<Item>)> {
        secs.map(|s| {
            let mut items = Vec::new();
            for du in [1, 2] {
                for floor in 1..=4 {
                    for k in 0..10 {
                        let noise = f64::from(k) - 4.5;
                        let shift = if du == 2 && floor == 3 && jump.contains(&s) {
                            15.0
                        } else {
                            0.0
                        };
                        items.push(row(1000 + s, du, floor, noise + shift));
                    }
                }
            }
            ((1000 + s) * TICKS_PER_SECOND, items)
        })
        .collect()
    }

    #[test]
    fn a_floor_jump_fires_for_its_du_and_resolves_once_out_of_the_window() {
        let mut m = ResidualMonitor::new("time_residuals", cfg(), 4);
        // The jump lasts 60 s, then 240 s of clean data.
        let out = run_by_hand(&mut m, data(0..320, 20..80));
        let alerts: Vec<_> = out
            .iter()
            .filter_map(|(_, i)| match i {
                Item::Alert(a) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!(alerts[0].key, "time_residuals:2");
        assert_eq!(alerts[0].state, AlertState::Firing);
        // A condition of the DU: the worst floor is named in the message only.
        assert_eq!((alerts[0].du, alerts[0].floor), (Some(2), None));
        assert!(
            alerts[0].message.contains("floor 3 +"),
            "{}",
            alerts[0].message
        );
        assert_eq!(alerts[1].state, AlertState::Resolved);
        // Resolved once the clean residuals are the majority of the 100 s
        // window: 50 s after the jump ended at 1080 s.
        assert_eq!(alerts[1].time_utc_ns, 1130 * 1_000_000_000);
        // Fired at the first judgement with enough jumped residuals.
        assert!(alerts[0].time_utc_ns <= 1040 * 1_000_000_000);
        let fig = m.last.as_ref().unwrap();
        let (all, floors) = &fig.stats[&2];
        assert!(all.median.abs() < 1.0, "{all:?}");
        assert!(floors[&3].median.abs() < 1.0);
        // The window holds 100-101 s of rows: 10 per floor per second.
        assert!((1000..=1010).contains(&floors[&3].n), "{}", floors[&3].n);
        assert_eq!(fig.panels.len(), 4);
        assert_eq!(fig.panels[&1].len(), 2);
    }

    #[test]
    fn too_few_residuals_are_not_judged() {
        let mut m = ResidualMonitor::new("time_residuals", cfg(), 4);
        let out = run_by_hand(&mut m, data(0..1, 0..1));
        assert!(out.is_empty(), "{out:?}");
    }
}
