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

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender, TrySendError};
use daq::event::Event;
use notify::elog::{ElogConfig, ElogSender};
use pipeline::item::{Item, Time};
use pipeline::operator::{check_relative, BuildContext, ItemStream, Node, NodeConfig, Role};
use pipeline::runtime::context::Mode;
use pipeline::runtime::metrics::DropReason;
use pipeline::StreamKind;
use serde::Deserialize;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

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
    #[serde(default = "sixty")]
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
}

impl Node for ZtPlot {
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Events]
    }
    fn produces(&self) -> Option<StreamKind> {
        None
    }
    fn needs_detector(&self) -> bool {
        true
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
        let metrics = ctx.metrics.clone();
        let (min_dus, min_doms) = (self.min_dus, self.min_doms);
        let mut pending: BTreeMap<Time, Vec<Arc<Event>>> = BTreeMap::new();
        input.sink(
            Exchange::new(|_: &Item| 0),
            "ztplot",
            move |(input, frontier)| {
                input.for_each(|cap, data| {
                    let Some(&t) = cap.least() else { return };
                    let evs = pending.entry(t).or_default();
                    evs.extend(data.drain(..).filter_map(|i| match i {
                        Item::Event(e) => Some(e),
                        _ => None,
                    }));
                });
                let f = frontier.frontier().iter().min().copied();
                while let Some((&t, _)) = pending.first_key_value() {
                    if f.is_some_and(|f| f <= t) {
                        break;
                    }
                    let mut evs = pending.pop_first().expect("non-empty").1;
                    // Workers deliver in any order: sort for a deterministic top 10.
                    evs.sort_by_key(|e| (e.header.run, e.header.frame_index, e.trigger_counter));
                    let Some(tx) = &tx else { continue };
                    for ev in evs {
                        if !hits::passes_cuts(&det, &ev, min_dus, min_doms) {
                            continue;
                        }
                        if replay {
                            let _ = tx.send(ev);
                        } else if let Err(TrySendError::Full(_)) = tx.try_send(ev) {
                            metrics.drop_detail(DropReason::Overflow, "plot queue full", 1);
                        }
                    }
                }
                if f.is_none() {
                    tx = None;
                }
            },
        );
        Ok(None)
    }
}

/// The database row stores the PNG's absolute path (the original's
/// convention, which the web maps to a URL).
fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
