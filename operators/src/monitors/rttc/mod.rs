//! `type = "rttc"`: the cable round-trip time of every DU's base CLB from
//! the Detector Manager (spec monitors.md §3.8, integrations.md §2):
//! `RTTC = wr_mu − Σ wr_delta[0..3]` (ps), polled every `poll` seconds,
//! judged against the DU's baseline of the last 24 hours; the alert
//! `rttc:<du>` when a DU stays outside its band for `alert_after` seconds
//! of data time, resolved when it is back; `rttc.png` + `.json`; every
//! sample as a row (`data/rttc.csv` through a `csv` sink).
//!
//! A source: the DM client runs on the node's I/O thread and feeds the
//! graph through the bounded ingress queue (full → dropped and counted);
//! the capability follows the wall clock on the heartbeat, so the alert's
//! event-time timer fires while the DM is silent too. A replay has no DM:
//! the node produces nothing there.
//!
//! The baseline: per DU, 24 hourly hdrhistograms and their sum, the
//! expired hour subtracted ([`baseline`]); median and half the 16–84 %
//! range; when the state has none, the first one comes from the DB
//! ([`dbbase`]). Only samples within the band join it: a jump cannot widen its
//! own band. Samples outside it collect in a candidate baseline; when the
//! new level has stayed within its own band for `adopt_after` (6 h) it
//! becomes the DU's baseline (a White Rabbit re-calibration or a fibre
//! change moves the RTTC for good): `rttc:<du>` resolves with "new
//! baseline … ps (±… ps from the old)" and a warning in the log, so the
//! shift is acknowledged once instead of alerting until the state is
//! reset. `adopt_after = 0` keeps the old baseline (alerting, with
//! reminders) until the node's state is deleted. Saved in the node's
//! state, so a restart keeps it.
//!
//! Fixes of the original: the session is defined again after any error
//! (the original ended when the definition failed and died on a bad
//! body); the spread is a quantile range, not std(wr_mu) − Σ std(δ);
//! `rttc.png` keeps one panel per DU but at a fixed pixel size in a grid
//! of at most six columns (the original's 16 × 4·n_DU inches were 920
//! inches on ARCA-230), a DU off its band framed in red ([`draw`]).

pub mod baseline;
pub mod client;
pub mod dbbase;
mod draw;
pub mod reset;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use pipeline::item::{Item, Row, Time, TICKS_PER_SECOND, TICK_NS};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::runtime::source::{channel_source, wall_ticks, Feed};
use pipeline::runtime::state::StateStore;
use pipeline::runtime::Mode;
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};

use crate::shell::alerting::AlertKind;
use crate::shell::alerting::{tick_at_or_after, AlertBook};
use crate::shell::MapWindow;
use crate::shell::{ordered_items, Monitor, Out};
use baseline::Baseline;
use client::{DmClient, WrValues};
pub use reset::{reset_du, reset_row, RESET_TABLE};

/// The alerts this monitor raises, in words (docs/alerts.md).
pub const ALERTS: &[AlertKind] = &[AlertKind {
    key: "rttc:<du>",
    firing: "base-CLB cable round-trip time off its 24 h baseline",
    resolved: "base-CLB cable round-trip time back on its baseline",
}];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rttc {
    /// The Detector Manager, `host[:port]` (port 1302 by default).
    pub detector_manager: String,
    /// Seconds between polls.
    #[serde(default = "default_poll", deserialize_with = "timespan::de::secs")]
    pub poll: u64,
    /// Samples of the baseline before a DU is judged.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
    /// The band: median ± max(`band_sigmas` × spread, `min_band` ps).
    #[serde(default = "default_sigmas")]
    pub band_sigmas: f64,
    #[serde(default = "default_min_band")]
    pub min_band: f64,
    /// Seconds outside the band before `rttc:<du>` fires.
    #[serde(
        default = "default_alert_after",
        deserialize_with = "timespan::de::secs"
    )]
    pub alert_after: u64,
    /// Seconds between reminders of a firing alert (0 = none).
    #[serde(default, deserialize_with = "timespan::de::secs")]
    pub reminder_interval: u64,
    /// Seconds a new level must stay stable outside the old band before
    /// it becomes the baseline (0 = never; at most 24 h).
    #[serde(
        default = "default_adopt_after",
        deserialize_with = "timespan::de::secs"
    )]
    pub adopt_after: u64,
    /// Hours of samples on the plot (the original kept 1000 ≈ 2.8 h).
    #[serde(
        default = "default_plot_hours",
        deserialize_with = "timespan::de::hours"
    )]
    pub plot_hours: u64,
    /// Fetch the first baseline from the KM3NeT DB (`datalognumbers` of
    /// the last 24 h) when the node's state has none.
    #[serde(default = "yes")]
    pub db: bool,
    /// The detector for the DB (default `DETECTOR_ID`, else the DETX's).
    #[serde(default)]
    pub detector_id: Option<String>,
    /// Plot (`NAME.png`, `.json`) and table name.
    #[serde(default = "default_name")]
    pub name: String,
}

fn default_poll() -> u64 {
    10
}
fn default_min_samples() -> u64 {
    30
}
fn default_sigmas() -> f64 {
    5.0
}
fn default_min_band() -> f64 {
    50.0
}
fn default_alert_after() -> u64 {
    60
}
fn default_adopt_after() -> u64 {
    6 * 3600
}
fn default_plot_hours() -> u64 {
    3
}
fn default_name() -> String {
    "rttc".into()
}
fn yes() -> bool {
    true
}

impl NodeConfig for Rttc {
    const TYPE: &'static str = "rttc";
    const ROLE: Role = Role::Source;
    const ABOUT: &'static str =
        "base-CLB cable round-trip time per DU from the Detector Manager, alert rttc:<du>";
    const EXAMPLE: &'static str = r#"detector_manager = "127.0.0.1:1302""#;
}

impl Node for Rttc {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            ("name".into(), Resource::Plot(self.name.clone())),
            (String::new(), Resource::Detector),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        Vec::new()
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Plots)
    }
    fn outputs(&self) -> Vec<StreamKind> {
        vec![StreamKind::Plots, StreamKind::Alerts, StreamKind::Table]
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if self.poll == 0 {
            e.push(("poll".into(), "must be at least 1 second".into()));
        }
        if self.detector_manager.trim().is_empty() {
            e.push((
                "detector_manager".into(),
                "the Detector Manager's address is required (DETECTOR_MANAGER_IP)".into(),
            ));
        }
        if self.adopt_after != 0
            && (self.adopt_after <= self.alert_after || self.adopt_after > 24 * 3600)
        {
            e.push((
                "adopt_after".into(),
                "must be 0 (never) or longer than alert_after and at most 24 h".into(),
            ));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        _input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let det = ctx.detector()?;
        let dus = det.dus();
        let live = matches!(ctx.env.mode, Mode::Live);
        let env = ctx.env.clone();
        let (addr, poll, table) = (
            self.detector_manager.clone(),
            Duration::from_secs(self.poll),
            self.name.clone(),
        );
        let dm_dus = dus.clone();
        // `km3mon ctl rttc-reset --du N`: taken by the DM thread into the
        // ingress, so the reset is a record at a data time.
        let control = ctx.node_control();
        if live && ctx.is_leader() {
            let known = dus.clone();
            control.accept_requests(move |key| match reset_du(key) {
                Some(du) if known.contains(&du) => Ok(()),
                _ => Err(format!(
                    "`{key}` is not a DU of the detector (DUs {}–{})",
                    known.first().unwrap_or(&0),
                    known.last().unwrap_or(&0)
                )),
            });
        }
        let saved = ctx.state().load_all::<Saved>().remove("rttc");
        let has_baseline = saved
            .as_ref()
            .is_some_and(|s| s.baselines.values().any(|b| !b.hours.is_empty()));
        // The first baseline from the DB, handed to the DM thread (the one
        // owner of the ingress).
        let (base_tx, base_rx) = crossbeam_channel::bounded::<Vec<(Time, Item)>>(1);
        if live && ctx.is_leader() && self.db && !has_baseline {
            let service =
                crate::monitors::ahrs::db_service(self.detector_id.clone(), ctx, det.det_id());
            let dus = dus.clone();
            ctx.spawn_io("rttc_baseline", move || match dbbase::fetch(&service, &dus) {
                Ok(samples) => {
                    tracing::info!("RTTC baseline: {} samples from the DB", samples.len());
                    let t = wall_ticks();
                    let rows = samples
                        .iter()
                        .map(|(s, du, v)| (t, Item::Row(Box::new(baseline_row(*s, *du, *v)))))
                        .collect();
                    let _ = base_tx.send(rows);
                }
                Err(e) => tracing::warn!(
                    "RTTC baseline from the DB: {e:#}; building it from the Detector Manager's samples"
                ),
            })?;
        }
        let stream = channel_source(ctx, live, move |ingress| {
            if !live {
                // No Detector Manager in a replay.
                return Ok(());
            }
            ctx.spawn_io("detector_manager", move || {
                let known = dm_dus.clone();
                let resets = move || -> Vec<(Time, Item)> {
                    let mut items = Vec::new();
                    for key in control.take_requests() {
                        match reset_du(&key).filter(|du| known.contains(du)) {
                            Some(du) => items.push((wall_ticks(), Item::Row(Box::new(reset_row(du))))),
                            None => tracing::warn!(
                                "rttc reset `{key}`: not a DU of the detector (e.g. `rttc-reset --du 5`)"
                            ),
                        }
                    }
                    items
                };
                let mut dm = DmClient::new(&addr, dm_dus, Duration::from_secs(5));
                let mut last_error = String::new();
                loop {
                    if let Ok(items) = base_rx.try_recv() {
                        if !ingress.offer(Feed { items, low: 0 }) {
                            return;
                        }
                    }
                    match dm.poll() {
                        Ok(values) => {
                            if !last_error.is_empty() {
                                tracing::info!("detector manager {addr}: polling again");
                                last_error.clear();
                            }
                            let t = wall_ticks();
                            let items = values
                                .iter()
                                .map(|v| (t, Item::Row(Box::new(sample_row(&table, t, v)))))
                                .collect();
                            if !ingress.offer(Feed { items, low: 0 }) {
                                return;
                            }
                        }
                        Err(e) => {
                            // Logged once per kind of failure, retried.
                            if e != last_error {
                                tracing::warn!(
                                    "detector manager {addr}: {e}; retrying every {} s",
                                    poll.as_secs()
                                );
                                last_error = e;
                            }
                        }
                    }
                    let until = std::time::Instant::now() + poll;
                    while std::time::Instant::now() < until {
                        if env.shutdown_requested() {
                            return;
                        }
                        let items = resets();
                        if !items.is_empty() && !ingress.offer(Feed { items, low: 0 }) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            })
        })?;
        let mut monitor = RttcMonitor::new(self, det.det_id(), &dus, &ctx.node);
        if let Some(saved) = saved {
            monitor.restore(saved);
        }
        Ok(Some(ordered_items(ctx, stream, "rttc", monitor)))
    }
}

pub const HEADER: [&str; 8] = [
    "time_utc",
    "du",
    "wr_mu",
    "wr_delta_0",
    "wr_delta_1",
    "wr_delta_2",
    "wr_delta_3",
    "rttc",
];

/// A DM sample as a table row (UTC of the poll, values in ps).
pub fn sample_row(table: &str, t: Time, v: &WrValues) -> Row {
    let mut cells = vec![
        crate::shell::iso((t / TICKS_PER_SECOND) as i64),
        v.du.to_string(),
    ];
    cells.push(format!("{}", v.wr_mu));
    cells.extend(v.wr_delta.iter().map(|d| format!("{d}")));
    cells.push(format!("{}", v.rttc()));
    Row {
        table: table.to_string(),
        header: HEADER.map(String::from).to_vec(),
        cells,
    }
}

/// The table of the DB's baseline samples (never written to the CSV).
pub const BASELINE_TABLE: &str = "rttc_baseline";

/// A baseline sample from the DB as a row: (UTC s, DU, RTTC ps).
pub fn baseline_row(time_s: u64, du: u32, rttc: f64) -> Row {
    Row {
        table: BASELINE_TABLE.into(),
        header: ["time_s", "du", "rttc"].map(String::from).to_vec(),
        cells: vec![time_s.to_string(), du.to_string(), rttc.to_string()],
    }
}

/// What survives a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saved {
    pub baselines: BTreeMap<u32, baseline::Saved>,
    pub alerts: AlertBook,
    /// Per DU, a new level outside the band: (since UTC s, its baseline).
    #[serde(default)]
    pub candidates: BTreeMap<u32, (u64, baseline::Saved)>,
}

/// A level outside the DU's band since `since_s`, becoming the baseline
/// once stable for `adopt_after`.
struct Candidate {
    since_s: u64,
    baseline: Baseline,
}

struct DuState {
    baseline: Baseline,
    candidate: Option<Candidate>,
    /// (UTC s, RTTC ps).
    samples: VecDeque<(u64, f64)>,
    /// Outside the band since (ns).
    out_since: Option<u64>,
    last: Option<(f64, Option<baseline::Band>)>,
}

pub struct RttcMonitor {
    det_id: i32,
    name: String,
    min_samples: u64,
    sigmas: f64,
    min_band: f64,
    after_ns: u64,
    adopt_s: u64,
    keep_s: u64,
    dus: BTreeMap<u32, DuState>,
    alerts: AlertBook,
    schedule: MapWindow,
    last_ns: u64,
}

impl RttcMonitor {
    pub fn new(c: &Rttc, det_id: i32, dus: &[u32], node: &str) -> RttcMonitor {
        RttcMonitor {
            det_id,
            name: c.name.clone(),
            min_samples: c.min_samples,
            sigmas: c.band_sigmas,
            min_band: c.min_band,
            after_ns: c.alert_after * 1_000_000_000,
            adopt_s: c.adopt_after,
            keep_s: c.plot_hours * 3600,
            dus: dus
                .iter()
                .map(|&du| {
                    (
                        du,
                        DuState {
                            baseline: Baseline::new(24),
                            candidate: None,
                            samples: VecDeque::new(),
                            out_since: None,
                            last: None,
                        },
                    )
                })
                .collect(),
            alerts: AlertBook::new(node, c.reminder_interval).with_kinds(ALERTS),
            schedule: MapWindow::new(c.poll.max(1) * TICKS_PER_SECOND),
            last_ns: 0,
        }
    }

    pub fn restore(&mut self, s: Saved) {
        for (du, b) in &s.baselines {
            if let Some(d) = self.dus.get_mut(du) {
                d.baseline = Baseline::restore(24, b);
            }
        }
        for (du, (since_s, b)) in &s.candidates {
            if let Some(d) = self.dus.get_mut(du) {
                d.candidate = Some(Candidate {
                    since_s: *since_s,
                    baseline: Baseline::restore(24, b),
                });
            }
        }
        self.alerts.restore(s.alerts);
    }

    pub fn saved(&self) -> Saved {
        Saved {
            baselines: self
                .dus
                .iter()
                .map(|(du, d)| (*du, d.baseline.save()))
                .collect(),
            alerts: self.alerts.clone(),
            candidates: self
                .dus
                .iter()
                .filter_map(|(du, d)| {
                    let c = d.candidate.as_ref()?;
                    Some((*du, (c.since_s, c.baseline.save())))
                })
                .collect(),
        }
    }

    /// The band's half width around the median.
    fn half_width(&self, b: &baseline::Band) -> f64 {
        (self.sigmas * b.spread).max(self.min_band)
    }

    fn sample(&mut self, t: Time, row: &Row, out: &mut Out) {
        let num = |i: usize| row.cells.get(i).and_then(|c| c.parse::<f64>().ok());
        let (Some(du), Some(rttc)) = (row.cells.get(1).and_then(|c| c.parse::<u32>().ok()), num(7))
        else {
            return;
        };
        let now_ns = t * TICK_NS;
        self.last_ns = self.last_ns.max(now_ns);
        let (min_samples, after_ns, keep_s) = (self.min_samples, self.after_ns, self.keep_s);
        let (sigmas, min_band, adopt_s) = (self.sigmas, self.min_band, self.adopt_s);
        let half_of = |b: &baseline::Band| (sigmas * b.spread).max(min_band);
        let Some(d) = self.dus.get_mut(&du) else {
            return;
        };
        // Judged against the past; only a sample within the band joins it
        // (a jump must not widen its own band until it looks normal).
        let band = d.baseline.band().filter(|b| b.samples >= min_samples);
        let mut outside = band.is_some_and(|b| (rttc - b.median).abs() > half_of(&b));
        let now_s = now_ns / 1_000_000_000;
        let mut adopted = None;
        if outside {
            // The new level must be as steady as the old one was: a
            // sample further from the candidate's median than the old
            // band's half width starts it again.
            let c = d.candidate.get_or_insert_with(|| Candidate {
                since_s: now_s,
                baseline: Baseline::new(24),
            });
            let own = c.baseline.band();
            if own
                .zip(band)
                .is_some_and(|(new, old)| (rttc - new.median).abs() > half_of(&old))
            {
                *c = Candidate {
                    since_s: now_s,
                    baseline: Baseline::new(24),
                };
            }
            c.baseline.add(now_s, rttc);
            let ready = c.baseline.band().filter(|b| b.samples >= min_samples);
            if adopt_s > 0 && now_s >= c.since_s + adopt_s {
                if let (Some(new), Some(old)) = (ready, band) {
                    let stable = match now_s - c.since_s {
                        s if s < 120 => format!("{s} s"),
                        s if s < 7200 => format!("{} min", s / 60),
                        s => format!("{:.1} h", s as f64 / 3600.0),
                    };
                    adopted = Some((new.median, new.median - old.median, stable));
                    d.baseline = std::mem::replace(&mut c.baseline, Baseline::new(24));
                    d.candidate = None;
                    outside = false;
                }
            }
        } else {
            d.candidate = None;
            d.baseline.add(now_s, rttc);
        }
        d.samples.push_back((now_s, rttc));
        while d.samples.front().is_some_and(|(s, _)| *s + keep_s < now_s) {
            d.samples.pop_front();
        }
        d.last = Some((rttc, band));
        if outside {
            if d.out_since.is_none() {
                d.out_since = Some(now_ns);
                out.timer(tick_at_or_after(now_ns + after_ns));
            }
        } else {
            d.out_since = None;
            let message = match adopted {
                Some((median, shift, stable)) => {
                    tracing::warn!(
                        "RTTC of DU{du}: new baseline {median:.0} ps ({shift:+.0} ps from the old one), stable for {stable}"
                    );
                    format!(
                        "RTTC of DU{du}'s base CLB: new baseline {median:.0} ps ({shift:+.0} ps from the old one), stable for {stable}; check the DU's time calibration"
                    )
                }
                None => {
                    format!("RTTC of DU{du}'s base CLB is back within its band ({rttc:.0} ps)")
                }
            };
            if let Some(a) = self.alerts.clear(&format!("rttc:{du}"), now_ns, || message) {
                out.give(t, Item::Alert(Box::new(a)));
            }
        }
        self.schedule.touch(t, out);
    }

    fn baseline_sample(&mut self, row: &Row) {
        let cell = |i: usize| row.cells.get(i).map(String::as_str).unwrap_or_default();
        let (Ok(s), Ok(du), Ok(v)) = (
            cell(0).parse::<u64>(),
            cell(1).parse::<u32>(),
            cell(2).parse::<f64>(),
        ) else {
            return;
        };
        if let Some(d) = self.dus.get_mut(&du) {
            d.baseline.add(s, v);
        }
    }

    fn check_timers(&mut self, t: Time, out: &mut Out) {
        let now_ns = t * TICK_NS;
        let due: Vec<u32> = self
            .dus
            .iter()
            .filter(|(_, d)| d.out_since.is_some_and(|s| now_ns >= s + self.after_ns))
            .map(|(du, _)| *du)
            .collect();
        for du in due {
            let d = &self.dus[&du];
            let Some((rttc, Some(b))) = d.last else {
                continue;
            };
            let half = self.half_width(&b);
            let secs = self.after_ns / 1_000_000_000;
            let alert = self.alerts.raise_at(&format!("rttc:{du}"), now_ns, Some((du, 0)), || {
                format!(
                    "RTTC of DU{du}'s base CLB is {:+.0} ps off its 24-h median {:.0} ps (band ±{half:.0} ps) for {secs} s",
                    rttc - b.median,
                    b.median
                )
            });
            if let Some(a) = alert {
                out.give(t, Item::Alert(Box::new(a)));
            }
        }
    }
}

impl Monitor<Item> for RttcMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        for item in data {
            let Item::Row(row) = item else { continue };
            if row.table == BASELINE_TABLE {
                self.baseline_sample(&row);
                continue;
            }
            if row.table == RESET_TABLE {
                if let Some(du) = row.cells.first().and_then(|c| c.parse().ok()) {
                    self.reset(t, du, out);
                }
                continue;
            }
            self.sample(t, &row, out);
            out.give(t, Item::Row(row));
        }
        self.alerts.remind(t, out);
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        self.check_timers(t, out);
        self.alerts.remind(t, out);
        if self.schedule.due(t) {
            self.draw(t, out);
        }
    }

    fn on_end(&mut self, _last: Option<Time>, out: &mut Out) {
        if self.schedule.at_end() {
            self.draw(out.now(), out);
        }
    }

    fn save(&mut self, store: &StateStore) {
        store.save(&BTreeMap::from([("rttc".to_string(), self.saved())]));
    }
}
