//! The control plane of a running graph — the `supervisorctl` of km3mon.
//!
//! One [`Control`] per run, shared (`Arc<Control>`) by the runtime, the
//! control socket (`km3mon ctl`), the web server (`POST /api/control`) and
//! the chatbot. All of them speak the same textual commands, parsed by
//! [`Command::parse`] and executed by [`Control::execute`]:
//!
//! ```text
//! status [TARGET…]                 stop|start|restart TARGET…
//! silence PATTERN DURATION [why…]  unsilence PATTERN   silences   help
//! TARGET = NODE | GROUP:NODE | GROUP:* | all
//! ```
//!
//! API for other parts of the program:
//!
//! * `Control::new(out_dir, state_dir)` — `out_dir` receives the audit lines
//!   (`<out>/data/control_audit.jsonl`, written by nobody else), `state_dir` the silences
//!   (`<state>/silences.json`, loaded here, so a restart keeps them).
//!   `runtime::run` creates one when `RunOptions::control` is `None` and
//!   registers every node of the graph ([`Control::register`]).
//! * [`Control::execute`]`(command_line, user) -> Reply`: parse + apply;
//!   never panics, a bad command is `Reply { ok: false, error, text }`.
//!   [`Reply::text`] is the supervisorctl-like rendering; the other fields
//!   are structured (serde) for programs.
//! * [`Control::apply`] for an already parsed [`Command`].
//! * [`Control::is_silenced`]`(alert_key)`: true while an unexpired silence
//!   pattern (glob, `*` and `?`) matches the key — for the alert router.
//! * [`Control::nodes`]: the status rows without the text.
//! * For nodes: [`NodeControl::fail`] (via `BuildContext::fail` or a clone
//!   of `BuildContext::node_control()` on an I/O thread) reports a failure;
//!   the runtime's gate reads [`NodeControl::is_stopped`].
//!
//! States: `RUNNING`; `STOPPED` — the gates in front of the node and
//! behind it drop every batch and count it as `DropReason::Stopped`
//! (`records_in` stays put), while timestamps and frontiers pass on, so the
//! other nodes' windows keep closing; `FAILED (reason)` — reported by the
//! node (a sink whose writes fail); data still flows (the node keeps
//! trying) until an operator stops it or `start`/`restart` clears the
//! failure. `restart` = stop + start, `restarts` + 1, uptime from zero; the
//! node's window state is kept (there is no reset signal).
//!
//! Every stop/start/restart/silence/unsilence is audited: a tracing line
//! and a JSON line appended to `<out>/data/control_audit.jsonl` (its own
//! file: the audit happens at wall-clock moments, and `data/alerts.jsonl`
//! must be the same bytes in every replay):
//! `{"time_utc", "monitor": "control", "key", "state", "message"}`.

pub mod command;
mod render;
pub mod socket;

/// The audit file under `<out>/data/` (one writer: the control plane).
pub const AUDIT_FILE: &str = "control_audit.jsonl";

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use command::{glob_match, parse_duration, Action, Command, ParseError, Target, HELP};
pub use render::{format_hms, NodeStatus, Reply};

use crate::operator::Role;
use crate::runtime::metrics::NodeMetrics;

/// Who issued a command, when nobody said.
const UNKNOWN_USER: &str = "unknown";

/// A node's life as the operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    Running,
    Stopped,
    Failed(String),
}

impl NodeState {
    pub fn name(&self) -> &'static str {
        match self {
            NodeState::Running => "RUNNING",
            NodeState::Stopped => "STOPPED",
            NodeState::Failed(_) => "FAILED",
        }
    }
}

struct Life {
    state: NodeState,
    since: Instant,
    since_wall: SystemTime,
    restarts: u64,
}

/// One node's control block: read by its gate on every batch (one atomic
/// load), written by commands and failure reports.
pub struct NodeControl {
    pub name: String,
    pub type_name: String,
    pub group: String,
    pub role: Role,
    pub metrics: Arc<NodeMetrics>,
    stopped: AtomicBool,
    life: Mutex<Life>,
    /// Set while writes fail ([`NodeControl::write_failed`]): the one
    /// atomic load of [`NodeControl::write_ok`] on every good write.
    write_failing: AtomicBool,
    /// The files that failed since the last good write, each logged once.
    failing_files: Mutex<BTreeMap<PathBuf, u64>>,
    /// `reset` requests not yet taken by the node, and the node's check
    /// of a key; `None`: the node takes none.
    requests: Mutex<Option<(Vec<String>, KeyCheck)>>,
}

/// A node's check of a `reset` key: `Err` says why it is refused.
pub type KeyCheck = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Pending `reset` requests per node at most (the node takes them within
/// a poll; more means it is stuck).
const MAX_REQUESTS: usize = 64;

/// Distinct failing files logged per node before the log only counts.
const LOGGED_FILES: usize = 20;

impl NodeControl {
    /// The node takes `reset` requests ([`NodeControl::take_requests`])
    /// whose key passes `check` (the command is refused with its error
    /// otherwise, before anything is queued).
    pub fn accept_requests(
        &self,
        check: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    ) {
        let mut r = self.requests.lock().expect("control lock");
        *r = Some((Vec::new(), Arc::new(check)));
    }

    /// The `reset` keys requested since the last call, oldest first.
    pub fn take_requests(&self) -> Vec<String> {
        let mut r = self.requests.lock().expect("control lock");
        r.as_mut()
            .map(|(v, _)| std::mem::take(v))
            .unwrap_or_default()
    }

    /// `reset` requests not yet taken.
    pub fn pending_requests(&self) -> usize {
        let r = self.requests.lock().expect("control lock");
        r.as_ref().map_or(0, |(v, _)| v.len())
    }

    fn request(&self, key: &str) -> Result<(), String> {
        let mut r = self.requests.lock().expect("control lock");
        match r.as_mut() {
            None => Err(format!("node `{}` takes no reset", self.name)),
            Some((v, _)) if v.len() >= MAX_REQUESTS => Err(format!(
                "node `{}` has {MAX_REQUESTS} reset requests pending",
                self.name
            )),
            Some((v, check)) => {
                check(key).map_err(|e| format!("{}: {e}", self.name))?;
                v.push(key.to_string());
                Ok(())
            }
        }
    }

    fn new(
        name: &str,
        type_name: &str,
        group: &str,
        role: Role,
        metrics: Arc<NodeMetrics>,
    ) -> Self {
        NodeControl {
            name: name.into(),
            type_name: type_name.into(),
            group: group.into(),
            role,
            metrics,
            stopped: AtomicBool::new(false),
            write_failing: AtomicBool::new(false),
            failing_files: Mutex::new(BTreeMap::new()),
            requests: Mutex::new(None),
            life: Mutex::new(Life {
                state: NodeState::Running,
                since: Instant::now(),
                since_wall: SystemTime::now(),
                restarts: 0,
            }),
        }
    }

    /// The gate's question, per batch.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> NodeState {
        self.life.lock().expect("control lock").state.clone()
    }

    /// Reports a failure (from any thread). A running node becomes
    /// `FAILED (reason)` until `start`/`restart`; logged once per change.
    pub fn fail(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut l = self.life.lock().expect("control lock");
        if l.state == NodeState::Running {
            tracing::error!("node `{}` failed: {reason}", self.name);
            l.state = NodeState::Failed(reason);
            l.since = Instant::now();
            l.since_wall = SystemTime::now();
        }
    }

    /// A file could not be written (disk full, …): the node turns
    /// `FAILED (cannot write FILE: …)` once; each further file that fails
    /// is logged once (the first [`LOGGED_FILES`]), repeats of a file are
    /// only counted. The writer decides whether to retry (live, with
    /// back-off) or to give up on that output (a replay).
    pub fn write_failed(&self, file: &Path, e: impl std::fmt::Display) {
        let reason = format!("cannot write {}: {e}", file.display());
        self.write_failing.store(true, Ordering::SeqCst);
        let mut files = self.failing_files.lock().expect("control lock");
        let n = files.len();
        let count = files.entry(file.to_path_buf()).or_default();
        *count += 1;
        let first_of_file = *count == 1;
        drop(files);
        if self.state() == NodeState::Running {
            self.fail(reason);
        } else if first_of_file && n < LOGGED_FILES {
            tracing::error!("node `{}`: {reason}", self.name);
        } else if first_of_file && n == LOGGED_FILES {
            tracing::error!(
                "node `{}`: more files cannot be written; only counted from now on",
                self.name
            );
        }
    }

    /// A write succeeded: a node FAILED by [`NodeControl::write_failed`]
    /// runs again (logged once, with what failed meanwhile). Cheap when
    /// nothing failed. `Some(file)`: only that file works again, and the
    /// node runs again once none of its files fails (a node writing
    /// several files from several threads: a good line in one must not
    /// hide a failing plot in another); `None`: every file of the node.
    pub fn write_ok(&self, file: Option<&Path>) {
        if !self.write_failing.load(Ordering::Relaxed) {
            return;
        }
        let files = {
            let mut failing = self.failing_files.lock().expect("control lock");
            if let Some(f) = file {
                if !failing.contains_key(f) || failing.len() > 1 {
                    failing.remove(f);
                    return;
                }
            }
            if !self.write_failing.swap(false, Ordering::SeqCst) {
                return;
            }
            std::mem::take(&mut *failing)
        };
        let mut l = self.life.lock().expect("control lock");
        if matches!(&l.state, NodeState::Failed(r) if r.starts_with("cannot write ")) {
            let failures: u64 = files.values().sum();
            tracing::info!(
                "node `{}` writes again (after {failures} failed write(s) of {} file(s))",
                self.name,
                files.len()
            );
            l.state = NodeState::Running;
            (l.since, l.since_wall) = (Instant::now(), SystemTime::now());
        }
    }

    /// Whether a write failed since the last good one.
    pub fn write_failing(&self) -> bool {
        self.write_failing.load(Ordering::Relaxed)
    }

    /// `group:node`, as supervisorctl names a program.
    pub fn full_name(&self) -> String {
        format!("{}:{}", self.group, self.name)
    }

    fn set(&self, action: Action) -> &'static str {
        let mut l = self.life.lock().expect("control lock");
        let now = (Instant::now(), SystemTime::now());
        let outcome = match (action, &l.state) {
            (Action::Stop, NodeState::Stopped) => return "already stopped",
            (Action::Stop, _) => {
                self.stopped.store(true, Ordering::SeqCst);
                l.state = NodeState::Stopped;
                "stopped"
            }
            (Action::Start, NodeState::Running) => return "already running",
            (Action::Start, _) => {
                self.stopped.store(false, Ordering::SeqCst);
                l.state = NodeState::Running;
                "started"
            }
            (Action::Restart, _) => {
                self.stopped.store(false, Ordering::SeqCst);
                l.state = NodeState::Running;
                l.restarts += 1;
                "restarted"
            }
        };
        (l.since, l.since_wall) = now;
        outcome
    }

    pub fn status(&self) -> NodeStatus {
        use std::sync::atomic::Ordering::Relaxed;
        let l = self.life.lock().expect("control lock");
        let m = &self.metrics;
        let drops_by_reason: BTreeMap<String, u64> = crate::runtime::metrics::DropReason::ALL
            .iter()
            .map(|r| (r.name().to_string(), m.drops(*r)))
            .filter(|(_, n)| *n > 0)
            .collect();
        NodeStatus {
            name: self.name.clone(),
            type_name: self.type_name.clone(),
            group: self.group.clone(),
            role: self.role.name().to_string(),
            state: l.state.name().to_string(),
            reason: match &l.state {
                NodeState::Failed(r) => Some(r.clone()),
                _ => None,
            },
            since_utc: unix_secs(l.since_wall),
            uptime_seconds: l.since.elapsed().as_secs_f64(),
            restarts: l.restarts,
            records_in: m.records_in.load(Relaxed),
            records_out: m.records_out.load(Relaxed),
            drops: drops_by_reason.values().sum(),
            drops_by_reason,
            last_output_utc: m.last_output_utc(),
            lag_seconds: m.lag_seconds(),
            busy_seconds: m.busy_ns.load(Relaxed) as f64 / 1e9,
        }
    }
}

/// An alert silence: alerts whose key matches `pattern` are not sent to
/// people until `until_utc` (Unix s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub pattern: String,
    pub until_utc: f64,
    pub created_utc: f64,
    pub user: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Serialize, Deserialize, Default)]
struct SilenceFile {
    silences: Vec<Silence>,
}

/// The control plane of one run (see the module docs).
pub struct Control {
    nodes: RwLock<Vec<Arc<NodeControl>>>,
    /// The detector's table, when the graph has a `detector_state` node.
    health: std::sync::OnceLock<Arc<crate::health::DetectorHealth>>,
    silences: Mutex<Vec<Silence>>,
    silence_file: Option<PathBuf>,
    audit_file: Option<PathBuf>,
}

impl Default for Control {
    fn default() -> Self {
        Control::new(None, None)
    }
}

impl Control {
    /// `out_dir`: audit lines go to `<out>/data/control_audit.jsonl`; `state_dir`:
    /// silences persist in `<state>/silences.json` (loaded now; a bad file
    /// is logged and ignored rather than stopping the monitoring).
    pub fn new(out_dir: Option<&Path>, state_dir: Option<&Path>) -> Control {
        let silence_file = state_dir.map(|d| d.join("silences.json"));
        let mut silences = Vec::new();
        if let Some(f) = &silence_file {
            match std::fs::read_to_string(f) {
                Ok(text) => match serde_json::from_str::<SilenceFile>(&text) {
                    Ok(s) => silences = s.silences,
                    Err(e) => tracing::warn!("ignoring {}: {e}", f.display()),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot read {}: {e}", f.display()),
            }
        }
        let now = now_utc();
        silences.retain(|s| s.until_utc > now);
        Control {
            nodes: RwLock::new(Vec::new()),
            health: std::sync::OnceLock::new(),
            silences: Mutex::new(silences),
            silence_file,
            audit_file: out_dir.map(|d| d.join("data").join(AUDIT_FILE)),
        }
    }

    /// Adds a node (the runtime does this for every node of the graph);
    /// registering a name again returns the existing block.
    pub fn register(
        &self,
        name: &str,
        type_name: &str,
        group: &str,
        role: Role,
        metrics: Arc<NodeMetrics>,
    ) -> Arc<NodeControl> {
        let mut nodes = self.nodes.write().expect("control lock");
        if let Some(n) = nodes.iter().find(|n| n.name == name) {
            return n.clone();
        }
        let n = Arc::new(NodeControl::new(name, type_name, group, role, metrics));
        nodes.push(n.clone());
        n
    }

    pub fn node(&self, name: &str) -> Option<Arc<NodeControl>> {
        let nodes = self.nodes.read().expect("control lock");
        nodes.iter().find(|n| n.name == name).cloned()
    }

    /// Every node's status, in graph order.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        let nodes = self.nodes.read().expect("control lock");
        nodes.iter().map(|n| n.status()).collect()
    }

    /// The detector's table (created by the first caller: the
    /// `detector_state` node when it is built).
    pub fn attach_health(&self) -> Arc<crate::health::DetectorHealth> {
        self.health.get_or_init(Default::default).clone()
    }

    /// The detector's table, if the graph maintains one.
    pub fn health(&self) -> Option<Arc<crate::health::DetectorHealth>> {
        self.health.get().cloned()
    }

    /// Every node's control block, in graph order.
    pub fn node_controls(&self) -> Vec<Arc<NodeControl>> {
        self.nodes.read().expect("control lock").clone()
    }

    /// Every node's status with its metrics (for views that show more,
    /// like the web's event-time lag and busy time).
    pub fn nodes_with_metrics(&self) -> Vec<(NodeStatus, Arc<NodeMetrics>)> {
        let nodes = self.nodes.read().expect("control lock");
        nodes
            .iter()
            .map(|n| (n.status(), n.metrics.clone()))
            .collect()
    }

    /// Every node's lag distribution, then the process-wide ones.
    pub fn latencies(&self) -> Vec<latency::Row> {
        let nodes = self.nodes.read().expect("control lock").clone();
        crate::runtime::metrics::node_latencies(
            nodes.iter().map(|n| (n.name.as_str(), &*n.metrics)),
        )
    }

    /// Whether an unexpired silence matches the alert key.
    pub fn is_silenced(&self, key: &str) -> bool {
        let now = now_utc();
        let s = self.silences.lock().expect("control lock");
        s.iter()
            .any(|s| s.until_utc > now && glob_match(&s.pattern, key))
    }

    /// The unexpired silences.
    pub fn silences(&self) -> Vec<Silence> {
        let now = now_utc();
        let mut s = self.silences.lock().expect("control lock");
        s.retain(|s| s.until_utc > now);
        s.clone()
    }

    /// Parses and applies one command line on behalf of `user`.
    pub fn execute(&self, line: &str, user: &str) -> Reply {
        match Command::parse(line) {
            Ok(c) => self.apply(&c, user),
            Err(e) => Reply::error(e.0),
        }
    }

    /// Applies a parsed command on behalf of `user`.
    pub fn apply(&self, cmd: &Command, user: &str) -> Reply {
        let user = escape_controls(user.trim());
        let user = if user.is_empty() {
            UNKNOWN_USER
        } else {
            user.as_str()
        };
        match cmd {
            Command::Help => Reply::text(HELP.to_string()),
            Command::Health => match self.health() {
                Some(h) => {
                    let snap = h.snapshot();
                    let mut r = Reply::text(snap.text());
                    r.health = Some(snap);
                    r
                }
                None => Reply::error(
                    "this graph has no detector_state node (see docs/monitors.md)".into(),
                ),
            },
            Command::Latency => Reply::latency(self.latencies()),
            Command::Status(targets) => match self.resolve(targets) {
                Ok(nodes) => {
                    let rows: Vec<NodeStatus> = nodes.iter().map(|n| n.status()).collect();
                    Reply::status(rows)
                }
                Err(e) => Reply::error(e),
            },
            Command::Act(action, targets) => match self.resolve(targets) {
                Ok(nodes) => {
                    let mut lines = Vec::new();
                    let mut changed = Vec::new();
                    for n in &nodes {
                        let outcome = n.set(*action);
                        lines.push(format!("{}: {outcome}", n.full_name()));
                        if !outcome.starts_with("already") {
                            changed.push(n.name.clone());
                            self.audit(
                                &n.name,
                                outcome,
                                &format!("{} {} by {user}", action.verb(), n.full_name()),
                            );
                        }
                    }
                    let mut r = Reply::text(lines.join("\n"));
                    r.changed = changed;
                    r.nodes = nodes.iter().map(|n| n.status()).collect();
                    r
                }
                Err(e) => Reply::error(e),
            },
            Command::Silence {
                pattern,
                duration,
                reason,
            } => {
                let now = now_utc();
                let s = Silence {
                    pattern: pattern.clone(),
                    until_utc: now + duration.as_secs_f64(),
                    created_utc: now,
                    user: user.to_string(),
                    reason: reason.clone(),
                };
                let list = {
                    let mut all = self.silences.lock().expect("control lock");
                    all.retain(|x| x.until_utc > now && x.pattern != *pattern);
                    all.push(s.clone());
                    all.clone()
                };
                self.persist(&list);
                let until = render::iso_utc(s.until_utc);
                let why = if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                };
                self.audit(
                    pattern,
                    "silenced",
                    &format!("silence {pattern} until {until} by {user}{why}"),
                );
                let mut r = Reply::text(format!("silenced `{pattern}` until {until}"));
                r.silences = vec![s];
                r
            }
            Command::Unsilence(pattern) => {
                let (removed, list) = {
                    let mut all = self.silences.lock().expect("control lock");
                    let before = all.len();
                    all.retain(|x| x.pattern != *pattern);
                    (before - all.len(), all.clone())
                };
                if removed == 0 {
                    return Reply::error(format!(
                        "no silence with pattern `{pattern}` (see `silences`)"
                    ));
                }
                self.persist(&list);
                self.audit(
                    pattern,
                    "unsilenced",
                    &format!("unsilence {pattern} by {user}"),
                );
                Reply::text(format!("unsilenced `{pattern}`"))
            }
            Command::Silences => Reply::silences(self.silences()),
            Command::Reset { node, key } => {
                let Some(n) = self.node(node) else {
                    return Reply::error(format!("no such node `{node}` (see `status`)"));
                };
                if let Err(e) = n.request(key) {
                    return Reply::error(e);
                }
                let message = format!("{user}: reset {node} {key} requested");
                self.audit(node, "reset", &message);
                Reply::text(format!(
                    "{node}: reset {key} requested; the node applies it with its next data"
                ))
            }
            Command::Logs { node, tail, after } => {
                let known = self
                    .nodes
                    .read()
                    .expect("control lock")
                    .iter()
                    .any(|n| n.name == *node);
                if !known {
                    return Reply::error(format!("no such node `{node}` (see `status`)"));
                }
                let ring = crate::logring::LogRing::global();
                let lines = ring.lines(node, *tail, *after);
                let mut r = Reply::text(
                    lines
                        .iter()
                        .map(|l| l.text.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
                r.log_seq = Some(lines.last().map_or(*after, |l| l.seq));
                r
            }
        }
    }

    /// The nodes a list of targets names, in graph order, each once; an
    /// empty list is every node.
    fn resolve(&self, targets: &[Target]) -> Result<Vec<Arc<NodeControl>>, String> {
        let nodes = self.nodes.read().expect("control lock");
        if targets.is_empty() {
            return Ok(nodes.clone());
        }
        let mut pick = vec![false; nodes.len()];
        let groups = || {
            let mut g: Vec<&str> = nodes.iter().map(|n| n.group.as_str()).collect();
            g.sort_unstable();
            g.dedup();
            g.join(", ")
        };
        for t in targets {
            let hits: Vec<usize> = match t {
                Target::All => (0..nodes.len()).collect(),
                Target::Group(g) => {
                    let v: Vec<usize> =
                        (0..nodes.len()).filter(|&i| nodes[i].group == *g).collect();
                    if v.is_empty() {
                        return Err(format!("no such group `{g}` (groups: {})", groups()));
                    }
                    v
                }
                Target::Node { group, name } => match nodes.iter().position(|n| n.name == *name) {
                    Some(i) => {
                        if let Some(g) = group {
                            if nodes[i].group != *g {
                                return Err(format!(
                                    "node `{name}` is in group `{}`, not `{g}`",
                                    nodes[i].group
                                ));
                            }
                        }
                        vec![i]
                    }
                    None if group.is_none() && nodes.iter().any(|n| n.group == *name) => (0..nodes
                        .len())
                        .filter(|&i| nodes[i].group == *name)
                        .collect(),
                    None => {
                        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                        return Err(format!(
                            "no such node `{name}` (nodes: {}; groups: {})",
                            names.join(", "),
                            groups()
                        ));
                    }
                },
            };
            for i in hits {
                pick[i] = true;
            }
        }
        Ok(nodes
            .iter()
            .zip(pick)
            .filter(|(_, p)| *p)
            .map(|(n, _)| n.clone())
            .collect())
    }

    fn persist(&self, list: &[Silence]) {
        let Some(f) = &self.silence_file else { return };
        let body = serde_json::to_vec_pretty(&SilenceFile {
            silences: list.to_vec(),
        })
        .unwrap_or_default();
        if let Err(e) = crate::runtime::io::write_atomic(f, &body) {
            tracing::error!("cannot save silences to {}: {e}", f.display());
        }
    }

    /// A tracing line and a line of the audit file.
    fn audit(&self, key: &str, state: &str, message: &str) {
        // Everything in `message` may come from a request: a newline in it
        // would forge log lines.
        let message = &escape_controls(message);
        tracing::info!("control: {message}");
        let Some(f) = &self.audit_file else { return };
        let line = serde_json::json!({
            "time_utc": render::iso_utc(now_utc()),
            "monitor": "control",
            "key": key,
            "state": state,
            "message": message,
        });
        let res = (|| {
            let mut file = crate::runtime::io::open_append(f)?;
            // One write per line: O_APPEND keeps it whole beside the
            // alerts sink, which appends to the same file.
            file.write_all(format!("{line}\n").as_bytes())
        })();
        if let Err(e) = res {
            tracing::error!("cannot append the audit line to {}: {e}", f.display());
        }
    }
}

/// `s` with control characters (newlines, escape sequences, …) written as
/// `\n`, `\u{1b}`, so that text from a request cannot forge log lines or
/// steer a terminal.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn now_utc() -> f64 {
    unix_secs(SystemTime::now())
}

#[cfg(test)]
mod tests;
