//! `type = "ztplot"`: the z-t event display and the event selection
//! (spec `monitors.md` §3.6).
//!
//! Split in two because plotting is slow and events are not: the worker
//! (leader) applies the cheap selection cuts in data-time order and hands
//! the survivors to a bounded queue; one I/O thread calibrates, applies
//! the top-10 rule against the SQLite table, plots and archives. Live, a
//! full queue skips the event (counted as `overflow`) so intake never
//! waits; in a replay the worker waits instead, so a replay's files and
//! rows do not depend on how fast the machine is.
//!
//! Outputs under `--out`: `{dir}/ztplot.png` (at most one routine plot per
//! `plot_every` s of data time; candidates always plotted),
//! `{dir}/event_selection/ztplot_{det:08}_{run:08}_FI{fi}_TC{tc}.png|.dat`
//! and the table in `db`.

pub mod calib_source;
pub mod draw;
pub mod hits;
pub mod selection;
#[cfg(test)]
mod tests;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender, TrySendError};
use daq::event::Event;
use messaging::elog::{ElogConfig, ElogSender};
use pipeline::item::{Item, Time};
use pipeline::operator::{
    check_relative, BuildContext, ItemStream, Node, NodeConfig, Resource, Role,
};
use pipeline::runtime::context::Mode;
use pipeline::runtime::metrics::DropReason;
use pipeline::StreamKind;
use serde::Deserialize;

use crate::shell::{ordered_sink, Monitor, Out};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZtPlot {
    /// Minimum number of DUs with triggered hits.
    #[serde(default = "one")]
    pub min_dus: usize,
    /// Minimum number of DOMs with triggered hits.
    #[serde(default = "four")]
    pub min_doms: usize,
    /// Major y ticks, m.
    #[serde(default = "ytick")]
    pub ytick_distance: f64,
    /// The SQLite file (`[LocalDBService] filename`), relative to `--out`.
    pub db: PathBuf,
    /// Table (`[ZTPlot] event_selection_table`).
    #[serde(default = "table")]
    pub table: String,
    /// Plot directory under `--out`.
    #[serde(default = "plots")]
    pub dir: PathBuf,
    /// Seconds of data time between routine plots.
    #[serde(default = "sixty", deserialize_with = "timespan::de::secs")]
    pub plot_every: u64,
    /// Events waiting for the plot thread.
    #[serde(default = "queue")]
    pub queue: usize,
    /// Post each new top-10 event to the ELOG (`[ZTPlot] elog`).
    #[serde(default)]
    pub elog: bool,
    /// The logbook, `+` for spaces (`[ZTPlot] logbook`).
    #[serde(default = "logbook")]
    pub logbook: String,
    /// `[ELOGService]`: url, username, password (and the entries' author).
    #[serde(default)]
    pub elog_service: Option<ElogService>,
}

/// `[ELOGService]` of the site config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElogService {
    #[serde(default = "elog_url")]
    pub url: String,
    #[serde(default = "elog_user")]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// Must be an existing ELOG author (the original hard-coded one).
    #[serde(default = "elog_author")]
    pub author: String,
}

fn logbook() -> String {
    "Individual+Logbooks".into()
}
fn elog_url() -> String {
    "https://elog.km3net.de/".into()
}
fn elog_user() -> String {
    "km3net".into()
}
fn elog_author() -> String {
    "km3mon".into()
}

/// ELOG entries waiting to be posted; beyond, dropped and counted.
const ELOG_QUEUE: usize = 100;

fn one() -> usize {
    1
}
fn four() -> usize {
    4
}
fn ytick() -> f64 {
    200.0
}
fn table() -> String {
    "event_selection".into()
}
fn plots() -> PathBuf {
    PathBuf::from("plots")
}
fn sixty() -> u64 {
    60
}
fn queue() -> usize {
    300
}

impl NodeConfig for ZtPlot {
    const TYPE: &'static str = "ztplot";
    const ROLE: Role = Role::Sink;
    const ABOUT: &'static str =
        "z-t event display (ztplot.png) and the top-10 event selection (SQLite + PNG + raw frame)";
    const EXAMPLE: &'static str = r#"inputs = ["events"]
db = "data/monitoring.sqlite3""#;
}

impl Node for ZtPlot {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            ("db".into(), Resource::file(&self.db)),
            ("dir".into(), Resource::file(&self.dir.join("ztplot.png"))),
            (
                "dir".into(),
                Resource::file(&self.dir.join("event_selection").join("*")),
            ),
            (String::new(), Resource::Detector),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Events]
    }
    fn produces(&self) -> Option<StreamKind> {
        None
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e: Vec<_> = check_relative("db", &self.db)
            .into_iter()
            .chain(check_relative("dir", &self.dir))
            .collect();
        if !selection::valid_table(&self.table) {
            e.push(("table".into(), "must be a plain SQL identifier".into()));
        }
        if self.ytick_distance <= 0.0 {
            e.push(("ytick_distance".into(), "must be positive".into()));
        }
        if self.queue == 0 {
            e.push(("queue".into(), "must be at least 1".into()));
        }
        if self.elog {
            match &self.elog_service {
                None => e.push((
                    "elog_service".into(),
                    "elog = true needs the [ELOGService] section (url, username, password)".into(),
                )),
                Some(s) => {
                    if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
                        e.push((
                            "elog_service.url".into(),
                            "must start with http:// or https://".into(),
                        ));
                    }
                    if s.password.is_empty() {
                        e.push((
                            "elog_service.password".into(),
                            "is required when elog = true".into(),
                        ));
                    }
                }
            }
            if self.logbook.trim().is_empty() || self.logbook.contains(['/', '?', '#', ' ']) {
                e.push((
                    "logbook".into(),
                    "must be a logbook name with `+` for spaces (e.g. Operations+FR)".into(),
                ));
            }
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("ztplot needs an input"))?;
        let det = ctx.detector()?;
        let mut tx: Option<Sender<Arc<Event>>> = None;
        if ctx.is_leader() {
            let (s, r) = bounded(self.queue);
            let elog = match (&self.elog_service, self.elog) {
                (Some(svc), true) => {
                    let (sender, deliver) = ElogSender::new(
                        ElogConfig {
                            url: svc.url.clone(),
                            logbook: self.logbook.clone(),
                            username: svc.username.clone(),
                            password: svc.password.clone(),
                            author: svc.author.clone(),
                            entry_type: "Monitoring".into(),
                            timeout: std::time::Duration::from_secs(30),
                            attempts: 3,
                            backoff: std::time::Duration::from_secs(2),
                        },
                        ELOG_QUEUE,
                    );
                    ctx.spawn_io("elog", deliver)?;
                    Some(sender)
                }
                _ => None,
            };
            let setup = worker::Setup {
                elog,
                cfg: self.clone(),
                db: absolute(&ctx.out_path(&self.db)),
                dir: absolute(&ctx.out_path(&self.dir)),
                source: calib_source::for_node(ctx, det.clone()),
                metrics: ctx.metrics.clone(),
                control: ctx.node_control(),
            };
            ctx.spawn_io("plotter", move || worker::run(setup, r))?;
            tx = Some(s);
        }
        let replay = matches!(ctx.env.mode, Mode::Replay { .. });
        let monitor = EventsTo {
            det,
            cuts: (self.min_dus, self.min_doms),
            replay,
            metrics: ctx.metrics.clone(),
            tx,
        };
        ordered_sink(ctx, input, "ztplot", monitor);
        Ok(None)
    }
}

/// Events that pass the cuts, in data-time order and sorted within a time
/// (a deterministic top 10), to the plotter thread.
struct EventsTo {
    det: Arc<daq::detector::Detector>,
    cuts: (usize, usize),
    replay: bool,
    metrics: Arc<pipeline::runtime::metrics::NodeMetrics>,
    tx: Option<Sender<Arc<Event>>>,
}

impl Monitor<Item> for EventsTo {
    fn on_data(&mut self, _t: Time, data: Vec<Item>, _out: &mut Out) {
        let Some(tx) = &self.tx else { return };
        let mut evs: Vec<Arc<Event>> = data
            .into_iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        evs.sort_by_key(|e| (e.header.run, e.header.frame_index, e.trigger_counter));
        for ev in evs {
            if !hits::passes_cuts(&self.det, &ev, self.cuts.0, self.cuts.1) {
                continue;
            }
            if self.replay {
                let _ = tx.send(ev);
            } else if let Err(TrySendError::Full(_)) = tx.try_send(ev) {
                self.metrics
                    .drop_detail(DropReason::Overflow, "plot queue full", 1);
            }
        }
    }
    fn on_end(&mut self, _last: Option<Time>, _out: &mut Out) {
        self.tx = None;
    }
}

/// The database row stores the PNG's absolute path (the original's
/// convention, which the web maps to a URL).
fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
