//! `type = "log_stats"`: daily statistics of the DAQ log (spec §3.13,
//! fixed) and the ERROR-rate alert.
//!
//! Per UTC day of data time, counts of every level per process token *and*
//! per msg_dumper category (the original claimed per process but counted
//! per category; both are useful). When the frontier passes midnight the
//! day is closed: `<dir>/<prefix>_<YYYY-MM-DD>.png` (grouped bars, errors
//! red, warnings blue, log scale 0.1…1e6, categories left, processes
//! right) and `.json` (all levels). Today's files are rewritten every
//! `interval` seconds of data time, so the running plot has the same name
//! as the final one. A replay closes its last day at the end of the input.
//!
//! Alert: a process logging more than `max_errors` ERROR lines within
//! `error_window` seconds fires `msg_errors:<process>`, resolved when the
//! window holds no more than that again (0 = no alert).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use crossbeam_channel::Receiver;
use pipeline::item::{Item, Time, TICKS_PER_SECOND};
use pipeline::operator::{
    check_relative, BuildContext, ItemStream, Mode, Node, NodeConfig, Resource, Role,
};
use pipeline::runtime::io::write_atomic;
use pipeline::runtime::queue::WriterQueue;
use pipeline::runtime::state::StateStore;
use pipeline::StreamKind;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

use crate::shell::alerting::AlertBook;
use crate::shell::alerting::AlertKind;
use crate::shell::msg::parse::{self, Line};
use crate::shell::msg::{date, day_of, day_start, text_of};
use crate::shell::ns_of;
use crate::shell::{ordered_items, Monitor, Out};
use crate::sinks::plot::{fonts, text, FONT};

/// The alerts this monitor raises, in words (docs/alerts.md).
pub const ALERTS: &[AlertKind] = &[AlertKind {
    key: "msg_errors:<process>",
    firing: "too many errors in the log",
    resolved: "log errors back to normal",
}];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogStats {
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Seconds of data time between two updates of today's plot.
    #[serde(default = "default_interval", deserialize_with = "timespan::de::secs")]
    pub interval: u64,
    /// ERROR lines of one process within `error_window` above which the
    /// alert fires; 0 = no alert.
    #[serde(default)]
    pub max_errors: u64,
    #[serde(default = "default_window", deserialize_with = "timespan::de::secs")]
    pub error_window: u64,
    /// Seconds between reminders of a firing alert; 0 = none.
    #[serde(default, deserialize_with = "timespan::de::secs")]
    pub reminder_interval: u64,
}

fn default_dir() -> PathBuf {
    PathBuf::from("logs")
}
fn default_prefix() -> String {
    "MSG".into()
}
fn default_interval() -> u64 {
    60
}
fn default_window() -> u64 {
    60
}

impl NodeConfig for LogStats {
    const TYPE: &'static str = "log_stats";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "daily MSG level counts per process and category → MSG_YYYY-MM-DD.png|json; ERROR-rate alert";
    const EXAMPLE: &'static str = r#"inputs = ["daq"]
max_errors = 5
error_window = 60"#;
}

/// The counts of one UTC day (also the JSON written beside the plot).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DayStats {
    pub date: String,
    pub lines: u64,
    /// Lines without the DAQ fields (alerts, free text), kept and counted.
    pub unstructured: u64,
    /// Process token (`-` for unstructured lines) → level → count.
    pub processes: BTreeMap<String, BTreeMap<String, u64>>,
    /// msg_dumper category → level → count.
    pub categories: BTreeMap<String, BTreeMap<String, u64>>,
}

impl DayStats {
    pub fn new(day: i64) -> DayStats {
        DayStats {
            date: date(day),
            ..DayStats::default()
        }
    }

    /// Counts one line; returns its level and process.
    pub fn add<'a>(&mut self, text: &'a str) -> Line<'a> {
        let line = parse::parse(text);
        self.lines += 1;
        if matches!(line, Line::Unstructured { .. }) {
            self.unstructured += 1;
        }
        let level = line.level();
        *bump(&mut self.processes, line.process())
            .entry(level.to_string())
            .or_default() += 1;
        *bump(&mut self.categories, parse::category(text))
            .entry(level.to_string())
            .or_default() += 1;
        line
    }

    pub fn count(map: &BTreeMap<String, BTreeMap<String, u64>>, key: &str, level: &str) -> u64 {
        map.get(key)
            .and_then(|l| l.get(level))
            .copied()
            .unwrap_or(0)
    }
}

fn bump<'m>(
    map: &'m mut BTreeMap<String, BTreeMap<String, u64>>,
    key: &str,
) -> &'m mut BTreeMap<String, u64> {
    if !map.contains_key(key) {
        map.insert(key.to_string(), BTreeMap::new());
    }
    map.get_mut(key).expect("inserted")
}

/// A plot + JSON to write; `final_` for a closed day.
#[derive(Debug, Clone)]
pub struct Job {
    pub stats: DayStats,
    pub final_: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    day: Option<i64>,
    stats: DayStats,
    book: AlertBook,
    errors: BTreeMap<String, VecDeque<Time>>,
    #[serde(default)]
    last_plot: Option<Time>,
}

struct StatsMonitor {
    interval: Time,
    max_errors: u64,
    window: Time,
    close_at_end: bool,
    day: Option<i64>,
    stats: DayStats,
    last_plot: Option<Time>,
    book: AlertBook,
    /// ERROR times per process within the window.
    errors: BTreeMap<String, VecDeque<Time>>,
    tx: Option<WriterQueue<Job>>,
}

impl StatsMonitor {
    fn send(&self, final_: bool) {
        if let Some(tx) = &self.tx {
            let job = Job {
                stats: self.stats.clone(),
                final_,
            };
            tx.send(job, 1);
        }
    }

    fn close_day(&mut self) {
        if self.day.take().is_some() {
            self.send(true);
            self.last_plot = None;
        }
    }

    /// Drops ERROR times that left the window and resolves alerts.
    fn expire(&mut self, now: Time, out: &mut Out) {
        let start = now.saturating_sub(self.window);
        let mut resolved = Vec::new();
        for (p, times) in self.errors.iter_mut() {
            while times.front().is_some_and(|t| *t <= start) {
                times.pop_front();
            }
            if times.len() as u64 <= self.max_errors {
                resolved.push(p.clone());
            }
        }
        self.errors.retain(|_, times| !times.is_empty());
        for p in resolved {
            let key = format!("msg_errors:{p}");
            if let Some(a) = self.book.clear(&key, ns_of(now), || {
                format!("process {p} logs ERROR at a normal rate again")
            }) {
                out.give(now, Item::Alert(Box::new(a)));
            }
        }
    }
}

impl Monitor<Item> for StatsMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        let d = day_of(t);
        if self.day != Some(d) {
            self.close_day();
            self.day = Some(d);
            self.stats = DayStats::new(d);
        }
        // The day closes at its last tick, also when no line comes after.
        out.timer(day_start(d + 1) - 1);
        let window_s = self.window / TICKS_PER_SECOND;
        for item in &data {
            let Some(text) = text_of(item) else { continue };
            let line = self.stats.add(&text);
            if self.max_errors == 0 || line.level() != "ERROR" {
                continue;
            }
            let process = line.process().to_string();
            let times = self.errors.entry(process.clone()).or_default();
            times.push_back(t);
            // This line leaves the window at t + window: check then.
            out.timer(t + self.window);
            if times.len() as u64 > self.max_errors {
                let n = times.len();
                let key = format!("msg_errors:{process}");
                if let Some(a) = self.book.raise(&key, ns_of(t), || {
                    format!("process {process} logged {n} ERROR lines within {window_s} s")
                }) {
                    out.give(t, Item::Alert(Box::new(a)));
                }
            }
        }
        self.book.remind(t, out);
        if self.last_plot.is_none_or(|l| t >= l + self.interval) {
            self.last_plot = Some(t);
            self.send(false);
        }
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        if self.max_errors > 0 && !self.errors.is_empty() {
            self.expire(t, out);
        }
        self.book.remind(t, out);
        if self.day.is_some_and(|d| t >= day_start(d + 1) - 1) {
            self.close_day();
        }
    }

    fn on_end(&mut self, _last: Option<Time>, _out: &mut Out) {
        if self.close_at_end {
            self.close_day();
        } else if self.day.is_some() {
            self.send(false);
        }
    }

    /// Stopped: today stays open (saved); its running plot is brought up
    /// to date, as at the end of a live run.
    fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out) {
        if self.day.is_some() {
            self.send(false);
        }
    }

    fn save(&mut self, store: &StateStore) {
        let saved = Saved {
            day: self.day,
            stats: self.stats.clone(),
            book: self.book.clone(),
            errors: self.errors.clone(),
            last_plot: self.last_plot,
        };
        store.save(&BTreeMap::from([("state".to_string(), &saved)]));
    }
}

impl Node for LogStats {
    fn resources(&self) -> Vec<(String, Resource)> {
        let f = |name: String| Resource::file(&self.dir.join(name));
        vec![
            ("dir".into(), f(format!("{}_*.png", self.prefix))),
            ("dir".into(), f(format!("{}_*.json", self.prefix))),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Msg, StreamKind::Messages]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Alerts)
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e: Vec<_> = check_relative("dir", &self.dir).into_iter().collect();
        if self.interval == 0 {
            e.push(("interval".into(), "at least 1 s".into()));
        }
        if self.max_errors > 0 && self.error_window == 0 {
            e.push(("error_window".into(), "at least 1 s".into()));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("log_stats needs an input"))?;
        let mut tx = None;
        if ctx.is_leader() {
            let (s, r) = ctx.writer_queue("log_stats plot queue full");
            let (dir, prefix) = (ctx.out_path(&self.dir), self.prefix.clone());
            let control = ctx.node_control();
            ctx.spawn_io("plotter", move || plotter(&dir, &prefix, r, &control))?;
            tx = Some(s);
        }
        let mut m = StatsMonitor {
            interval: self.interval * TICKS_PER_SECOND,
            max_errors: self.max_errors,
            window: self.error_window * TICKS_PER_SECOND,
            close_at_end: matches!(ctx.env.mode, Mode::Replay { .. }),
            day: None,
            stats: DayStats::default(),
            last_plot: None,
            book: AlertBook::new(&ctx.node, self.reminder_interval).with_kinds(ALERTS),
            errors: BTreeMap::new(),
            tx,
        };
        if let Some(saved) = ctx.state().load_all::<Saved>().remove("state") {
            m.day = saved.day;
            m.stats = saved.stats;
            m.book.restore(saved.book);
            m.errors = saved.errors;
            m.last_plot = saved.last_plot;
        }
        Ok(Some(ordered_items(
            ctx,
            crate::shell::msg::only_lines(input),
            "log_stats",
            m,
        )))
    }
}

/// The writer thread: renders the newest request of each day (older
/// running plots of a day that a newer request overwrites are skipped).
/// A file that cannot be written turns the node FAILED naming it (each
/// file logged once); the next request is the retry, and a good write
/// makes the node run again.
fn plotter(dir: &Path, prefix: &str, rx: Receiver<Job>, control: &pipeline::control::NodeControl) {
    while let Ok(first) = rx.recv() {
        let mut jobs: BTreeMap<String, Job> = BTreeMap::new();
        for job in std::iter::once(first).chain(rx.try_iter()) {
            jobs.insert(job.stats.date.clone(), job);
        }
        for job in jobs.values() {
            if let Err(e) = write_day(dir, prefix, &job.stats) {
                let png = dir.join(format!("{prefix}_{}.png", job.stats.date));
                control.write_failed(&png, e.root_cause());
            } else {
                control.write_ok(None);
                if job.final_ {
                    tracing::info!("log_stats: {prefix}_{}.png written", job.stats.date);
                }
            }
        }
    }
}

/// Writes `<prefix>_<date>.png` and `.json` atomically.
pub fn write_day(dir: &Path, prefix: &str, stats: &DayStats) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = format!("{prefix}_{}", stats.date);
    crate::sinks::plot::save_png(&dir.join(format!("{name}.png")), (1200, 520), |buf| {
        paint(buf, &name, stats)
    })?;
    write_atomic(
        &dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(stats)?.as_bytes(),
    )?;
    Ok(())
}

const ERR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const WARN: RGBColor = RGBColor(0x1f, 0x77, 0xb4);

/// Grouped bars of one key set (errors red, warnings blue beside them).
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    map: &BTreeMap<String, BTreeMap<String, u64>>,
) -> anyhow::Result<()> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| k.to_lowercase());
    let n = keys.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..n - 0.5, (0.1f64..1e6f64).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("Counts")
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        })
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 14))
        .draw()?;
    for (level, color, dx) in [("ERROR", ERR, -0.25), ("WARNING", WARN, 0.0)] {
        chart.draw_series(keys.iter().enumerate().filter_map(|(i, k)| {
            let v = DayStats::count(map, k, level) as f64;
            let x = i as f64 + dx;
            (v > 0.0).then(|| Rectangle::new([(x, 0.1), (x + 0.25, v)], color.filled()))
        }))?;
    }
    let style = text(11.0).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, k) in keys.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64, 0.1));
        root.draw(&Text::new(k.to_string(), (x, y + 6), style.clone()))?;
    }
    Ok(())
}

fn paint(buf: &mut [u8], title: &str, stats: &DayStats) -> anyhow::Result<()> {
    fonts();
    let root = BitMapBackend::with_buffer(buf, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, rest) = root.split_vertically(50);
    top.draw(&Text::new(
        format!(
            "{title}  ({} lines, {} without DAQ fields)",
            stats.lines, stats.unstructured
        ),
        (600, 25),
        text(18.0).pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    let (legend, rest) = rest.split_vertically(24);
    for (i, (label, c)) in [("errors", ERR), ("warnings", WARN)]
        .into_iter()
        .enumerate()
    {
        let x = 520 + i as i32 * 110;
        legend.draw(&Rectangle::new([(x, 6), (x + 14, 18)], c.filled()))?;
        legend.draw(&Text::new(label, (x + 20, 5), text(13.0)))?;
    }
    let halves = rest.split_evenly((1, 2));
    panel(&halves[0], &root, "per source category", &stats.categories)?;
    panel(&halves[1], &root, "per process", &stats.processes)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
#[path = "log_stats_tests.rs"]
mod tests;
