//! `type = "alerts_notify"`: alerts to people — the `[Alerts]` routes of
//! the site config (grouping, throttle, reminders, resolved, silences; see
//! `messaging::route`) and delivery to chat, e-mail and the log.
//!
//! ```toml
//! [nodes.notify]
//! type = "alerts_notify"
//! inputs = ["dom_activity", "trigger_rates", "timesync", "log_stats", "detector_state"]
//! alerts = "@config.Alerts"        # the whole section
//! path = "data/alerts_routing.jsonl"  # where routing lines go (default)
//! in_replay = false                # deliver in a replay too (default: no)
//! ```
//!
//! The router runs on the monitor shell (worker 0), alerts in data-time
//! order: its clock is **data time**, live and in a replay alike. A group
//! window, throttle or reminder ends with a shell timer at its data time,
//! so a window closes whether or not another alert arrives (live, the
//! heartbeat moves the frontier; a replay fires timers up to its last data
//! time and flushes what is still collected at the end). Only delivery
//! (retries and their back-off) is on the wall clock, on an I/O thread.
//! In a replay nothing is delivered unless `in_replay = true` (replaying
//! archived data must not page the shift): routing still runs and every
//! message is written as not sent.
//!
//! With `detector_state` among its inputs (its `health` stream: the
//! detector-state table at each data time it changes, in time order with
//! the alerts), the messages place DOMs by the table's DU and floor and
//! carry its counts for the DUs they name (`Now (data time …): DU 5: 30
//! DOMs inactive; all DUs: …`; `messaging::route`): the text, `km3mon ctl
//! health` and the gauges show one table, whatever the worker count.
//!
//! Every message a route makes lands in `path` (default
//! `data/alerts_routing.jsonl`; one line per sink, after delivery:
//! `delivered`, `attempts`, `error`), and so does every alert a route did
//! not send (`decision`: throttled, silenced, transient, unannounced).
//! The file has one writer, this node (`data/alerts.jsonl` belongs to
//! `alerts_jsonl`); lines are appended whole (one write per batch).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ::messaging::config::{AlertsConfig, Shifters as ConfigShifters};
use ::messaging::deliver::{Delivery, RetryPolicy};
use ::messaging::email::LogTransport;
use ::messaging::message::{Outcome, Outgoing, Transport};
use ::messaging::route::{Note, Notice, Output, Router, RouterState};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use pipeline::item::{Item, Time};
use pipeline::operator::{
    check_relative_file, BuildContext, ItemStream, Mode, Node, NodeConfig, Resource, Role,
};
use pipeline::runtime::metrics::{DropReason, NodeMetrics};
use pipeline::runtime::queue::WriterQueue;
use pipeline::runtime::state::StateStore;
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};

use super::alerts::AlertsTo;
use crate::shell::alerting::tick_at_or_after;
use crate::shell::{iso_ns, ns_of};
use crate::shell::{ordered_sink, Monitor, Out};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsNotify {
    /// The `[Alerts]` section: `alerts = "@config.Alerts"`.
    pub alerts: AlertsConfig,
    /// JSON Lines file the routing lines are appended to (under --out; its
    /// one writer is this node).
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// Also deliver when replaying files (default: only live).
    #[serde(default)]
    pub in_replay: bool,
}

fn default_path() -> PathBuf {
    PathBuf::from("data/alerts_routing.jsonl")
}

impl NodeConfig for AlertsNotify {
    const TYPE: &'static str = "alerts_notify";
    const ROLE: Role = Role::Sink;
    const ABOUT: &'static str =
        "routes alerts to people ([Alerts] routes: grouping, throttle, silences) via chat, e-mail, log";
    const EXAMPLE: &'static str = r#"inputs = ["dom_activity_example"]
alerts = { enabled = false, group_window = 10 }"#;
}

impl Node for AlertsNotify {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![("path".into(), Resource::file(&self.path))]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        // Health: the detector_state table the texts count from.
        vec![StreamKind::Alerts, StreamKind::Health]
    }
    fn produces(&self) -> Option<StreamKind> {
        None
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = ::messaging::route::check(&self.alerts)
            .into_iter()
            .map(|(p, m)| (format!("alerts.{p}"), m))
            .collect();
        out.extend(check_relative_file("path", &self.path));
        out
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("alerts_notify needs an input"))?;
        let live = matches!(ctx.env.mode, Mode::Live);
        let mut tx = None;
        if ctx.is_leader() {
            // Live, a chat or mail server that hangs fills it: then the
            // routed batch is dropped and counted, not kept without bound.
            let (s, rx) = ctx.writer_queue("alerts_notify delivery queue full");
            let delivery = if live || self.in_replay {
                Some(self.delivery(ctx))
            } else {
                None
            };
            let lines = ctx.out_path(&self.path);
            let metrics = ctx.metrics.clone();
            ctx.spawn_io("deliver", move || {
                let mut run = Run {
                    delivery,
                    sent: HashMap::new(),
                    lines: Lines::new(lines),
                    metrics,
                    live,
                };
                run.run(rx);
            })?;
            tx = Some(s);
        }
        // The router runs on the shell (worker 0): its clock is data time,
        // and a group window, throttle or reminder ends with a timer.
        let mut router = self.router(ctx);
        if let Some(saved) = ctx.state().load_all::<RouterState>().remove(STATE_KEY) {
            router.restore(saved);
        }
        let monitor = RouterMonitor { router, tx };
        ordered_sink(ctx, input, "alerts_notify", monitor);
        Ok(None)
    }
}

/// The router's key in the node's state files.
const STATE_KEY: &str = "router";

/// The router on the shell: alerts in data-time order, and a timer at the
/// next group window's end (`Router::next_due`), so a window closes at its
/// own data time whether or not another alert comes — in a replay and
/// live (where the heartbeat moves the frontier).
struct RouterMonitor {
    router: Router,
    tx: Option<WriterQueue<Output>>,
}

impl RouterMonitor {
    fn hand_on(&mut self, out: &mut Out, routed: Output) {
        if let Some(due) = self.router.next_due() {
            out.timer(tick_at_or_after(due));
        }
        if routed.notes.is_empty() && routed.messages.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            let n = (routed.notes.len() + routed.messages.len()) as u64;
            tx.send(routed, n);
        }
    }
}

impl Monitor<Item> for RouterMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        let now = ns_of(t);
        let mut routed = Output::default();
        // The table of this data time first: it already counts this
        // time's alerts (detector_state derives it from them).
        let table = data.iter().rev().find_map(|i| match i {
            Item::Health(h) => Some(h.clone()),
            _ => None,
        });
        if let Some(h) = table {
            self.router.set_table(h);
        }
        for a in &AlertsTo::sorted(data) {
            self.router.push(a, now, &mut routed);
        }
        // A window of 0 s is due right now: a timer at t, after this data.
        self.hand_on(out, routed);
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        let mut routed = Output::default();
        self.router.tick(ns_of(t), &mut routed);
        self.hand_on(out, routed);
    }

    /// A stop: what is collected stays for the next run (saved with the
    /// announced keys), which sends it when its window ends; the delivery
    /// thread finishes what it has.
    fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out) {
        self.tx = None;
    }

    fn save(&mut self, store: &StateStore) {
        store.save(&std::collections::BTreeMap::from([(
            STATE_KEY.to_string(),
            self.router.state(),
        )]));
    }

    /// End of a replay: what is still collected goes now, at the last data
    /// time (a window the data did not finish).
    fn on_end(&mut self, last: Option<Time>, _out: &mut Out) {
        let mut routed = Output::default();
        self.router.flush(ns_of(last.unwrap_or(0)), &mut routed);
        if let Some(tx) = &self.tx {
            let n = (routed.notes.len() + routed.messages.len()) as u64;
            tx.send(routed, n);
        }
        self.tx = None;
        let s = self.router.stats();
        tracing::info!(
            "alerts_notify: {} alerts, {} messages; throttled {}, silenced {}, transient {}, unannounced {}, reminders skipped {}",
            s.alerts, s.messages, s.throttled, s.silenced, s.transient, s.unannounced, s.reminders_skipped
        );
    }
}

impl AlertsNotify {
    fn router(&self, ctx: &BuildContext<'_>) -> Router {
        let control = ctx.env.control.clone();
        let path = ::messaging::shifters::Shifters::path_for(
            ctx.env.site_config.as_deref(),
            ctx.env.state_dir.as_deref(),
        );
        let shifters = ShiftersFile::new(path, self.alerts.shifters.clone());
        Router::new(&self.alerts)
            .with_silences(move |key| control.is_silenced(key))
            .with_shifters(move || shifters.names())
    }

    /// One delivery thread per sink the routes name. A transport that
    /// cannot be set up (a missing secret in the environment) fails the
    /// node — visible on /status and `km3mon ctl status` — and its
    /// messages go to the log instead; the monitoring goes on.
    fn delivery(&self, ctx: &BuildContext<'_>) -> Delivery {
        let log_only = || vec![(Box::new(LogTransport) as Box<dyn Transport>, 1000)];
        let transports = if self.alerts.enabled {
            match ::messaging::deliver::transports_from_config(&self.alerts) {
                Ok(t) => t,
                Err(e) => {
                    let why = format!("alert delivery: {e:#}");
                    tracing::error!("{}: {why}; alerts go to the log only", ctx.node);
                    ctx.fail(why);
                    log_only()
                }
            }
        } else {
            log_only()
        };
        Delivery::new(transports, RetryPolicy::default())
    }
}

/// The shifters for alert texts: the chatbot's state file (re-read when it
/// changes), else `[Alerts] shifters`.
struct ShiftersFile {
    path: Option<PathBuf>,
    initial: ConfigShifters,
    cache: Mutex<(Option<SystemTime>, Vec<String>)>,
}

impl ShiftersFile {
    fn new(path: Option<PathBuf>, initial: ConfigShifters) -> ShiftersFile {
        let names = initial.names();
        ShiftersFile {
            path,
            initial,
            cache: Mutex::new((None, names)),
        }
    }

    fn names(&self) -> Vec<String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mtime = self
            .path
            .as_deref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| m.modified().ok());
        if mtime != cache.0 {
            let names =
                ::messaging::shifters::Shifters::open(self.path.clone(), &self.initial).names();
            *cache = (mtime, names);
        }
        cache.1.clone()
    }
}

/// A message sent and not yet reported on.
struct Sent {
    msg: Outgoing,
    notice: Notice,
}

struct Run {
    delivery: Option<Delivery>,
    sent: HashMap<u64, Sent>,
    lines: Lines,
    metrics: Arc<NodeMetrics>,
    live: bool,
}

impl Run {
    /// Routed messages to delivery and their lines to the file, until the
    /// router ends; outcomes are reported as they come back.
    fn run(&mut self, rx: Receiver<Output>) {
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(out) => self.hand_on(out),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.outcomes();
        }
        if let Some(d) = self.delivery.take() {
            let outcomes = d.outcomes();
            // Let queued messages out, but never hang on a dead server.
            let within = if self.live { 5 } else { 30 };
            d.shutdown(Duration::from_secs(within));
            let rest: Vec<Outcome> = outcomes.try_iter().collect();
            self.report(rest);
        }
        // Anything never reported (a sink still busy at the deadline).
        let mut left: Vec<Outcome> = self
            .sent
            .keys()
            .map(|&id| Outcome {
                id,
                sink: self.sent[&id].msg.sink.clone(),
                delivered: false,
                attempts: 0,
                error: Some("not sent: still queued at shutdown".into()),
            })
            .collect();
        left.sort_by_key(|o| o.id);
        self.report(left);
    }

    /// Messages to delivery (or straight to the file when not delivering),
    /// decisions to the file.
    fn hand_on(&mut self, out: Output) {
        let mut lines = Vec::new();
        for n in &out.notes {
            lines.push(decision_line(n));
        }
        for r in out.messages {
            match &self.delivery {
                Some(d) => {
                    let id = r.msg.id;
                    self.sent.insert(
                        id,
                        Sent {
                            msg: r.msg.clone(),
                            notice: r.notice,
                        },
                    );
                    self.metrics.add_out(1);
                    // A full queue comes back as an undelivered outcome,
                    // counted in `report`.
                    let _ = d.submit(r.msg);
                }
                None => lines.push(delivery_line(
                    &r.msg,
                    r.notice,
                    &Outcome {
                        id: r.msg.id,
                        sink: r.msg.sink.clone(),
                        delivered: false,
                        attempts: 0,
                        error: Some("not sent: replay (set in_replay = true to deliver)".into()),
                    },
                )),
            }
        }
        self.lines.append(&lines);
    }

    fn outcomes(&mut self) {
        let Some(d) = &self.delivery else { return };
        let got: Vec<Outcome> = d.outcomes().try_iter().collect();
        self.report(got);
    }

    fn report(&mut self, outcomes: Vec<Outcome>) {
        let mut lines = Vec::new();
        for o in outcomes {
            if !o.delivered {
                // Counted per sink so /status and the metrics show what
                // people did not get; the reason is in alerts.jsonl.
                self.metrics
                    .drop_detail(DropReason::Undelivered, &o.sink, 1);
            }
            if let Some(s) = self.sent.remove(&o.id) {
                lines.push(delivery_line(&s.msg, s.notice, &o));
            }
        }
        self.lines.append(&lines);
    }
}

/// A routed message and what became of it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct DeliveryLine {
    /// Data time of the newest alert in the message.
    pub time_utc: String,
    pub route: String,
    pub sink: String,
    /// `firing`, `reminder` or `resolved`.
    pub notice: String,
    pub severity: String,
    pub keys: Vec<String>,
    pub subject: String,
    /// The message's text as sent (chat message, e-mail body).
    #[serde(default)]
    pub text: String,
    pub delivered: bool,
    pub attempts: u32,
    pub error: Option<String>,
}

/// An alert a route did not send, and why.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct DecisionLine {
    pub time_utc: String,
    pub route: String,
    pub key: String,
    pub notice: String,
    /// `throttled`, `silenced`, `transient` or `unannounced`.
    pub decision: String,
}

fn delivery_line(m: &Outgoing, notice: Notice, o: &Outcome) -> Vec<u8> {
    json_line(&DeliveryLine {
        time_utc: iso_ns(m.data_time_ns),
        route: m.route.clone(),
        sink: m.sink.clone(),
        notice: notice.name().into(),
        severity: m.severity.name().into(),
        keys: m.keys.clone(),
        subject: m.subject.clone(),
        text: m.text.clone(),
        delivered: o.delivered,
        attempts: o.attempts,
        error: o.error.clone(),
    })
}

fn decision_line(n: &Note) -> Vec<u8> {
    json_line(&DecisionLine {
        time_utc: iso_ns(n.data_time_ns),
        route: n.route.clone(),
        key: n.key.clone(),
        notice: n.notice.name().into(),
        decision: n.decision.name().into(),
    })
}

fn json_line(v: &impl Serialize) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b
}

/// The routing lines' file (this node is its one writer): opened for
/// appending, each batch of whole lines in one write.
struct Lines {
    path: PathBuf,
    file: Option<std::fs::File>,
    /// Failed writes since the last good one: logged once per streak.
    failing: u64,
}

impl Lines {
    fn new(path: PathBuf) -> Lines {
        Lines {
            path,
            file: None,
            failing: 0,
        }
    }

    fn open(path: &Path) -> std::io::Result<std::fs::File> {
        pipeline::runtime::io::open_append(path)
    }

    fn append(&mut self, lines: &[Vec<u8>]) {
        if lines.is_empty() {
            return;
        }
        let buf = lines.concat();
        let result = match &mut self.file {
            Some(f) => f.write_all(&buf),
            None => Lines::open(&self.path).and_then(|mut f| {
                let r = f.write_all(&buf);
                self.file = Some(f);
                r
            }),
        };
        match result {
            Err(e) => {
                if self.failing == 0 {
                    tracing::error!(
                        "alerts_notify: cannot write {}: {e} (routing lines are lost until it works; logged once)",
                        self.path.display()
                    );
                }
                self.failing += 1;
            }
            Ok(()) if self.failing > 0 => {
                tracing::info!(
                    "alerts_notify: {} written again after {} failed write(s)",
                    self.path.display(),
                    self.failing
                );
                self.failing = 0;
            }
            Ok(()) => {}
        }
    }
}
