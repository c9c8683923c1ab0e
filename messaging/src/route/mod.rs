//! Alert routing: which alerts reach people, when, grouped how.
//!
//! [`Router`] is a pure state machine driven by explicit time (`now_ns`):
//! the `alerts_notify` node feeds it wall-clock time live and data time in
//! a replay, and tests feed it scripted sequences.
//!
//! For every alert and every route it matches (key patterns, minimum
//! severity):
//!
//! * **firing** — collected for `group_window` s, then sent in one message
//!   per condition (the key before `:`, e.g. `dom_inactive`) and kind
//!   (firing / reminder / resolved): 30 DOMs of one DU going silent are one
//!   message naming the DU. A key whose firing was sent on this route less
//!   than `throttle` s ago is not announced again (a flapping DOM);
//!   a silenced key is not announced at all.
//! * **reminder** (the monitors' AlertBook emits them at `[Alerts]
//!   reminder_interval`) — forwarded at most every route `reminder` s per
//!   key; a reminder of a key nobody was told about (silenced or throttled
//!   at the time) is announced as a firing.
//! * **resolved** — sent whenever its firing was announced on the route:
//!   never throttled, not held back by a silence (good news ends an alert
//!   people know about). A resolved whose firing was never announced
//!   (throttled, silenced) is not sent: nobody is waiting for it. A key
//!   that fires and resolves within one group window is dropped as
//!   transient.
//!
//! Everything not sent is reported as a [`Note`] (the node writes them to
//! `alerts.jsonl`) except skipped reminders, which are only counted.
//!
//! **The detector-state table.** Given the `detector_state` table
//! ([`Router::set_table`], in data time with the alerts: the node takes it
//! as its `health` input), a message places each DOM by the table's
//! detector (DU, floor: the run's, re-keyed when a run brings another
//! layout) and says what the table counts at the message's data time:
//! `Now (data time …): DU 5: 30 DOMs inactive; all DUs: 33 DOMs
//! inactive` — the numbers `km3mon ctl health` and the gauges show for
//! that data time. Without a table (no `detector_state` in the graph) the
//! monitors' own DU/floor labels are used and there is no `Now` line.

mod check;
mod state;
mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pipeline::health::HealthSnapshot;
use pipeline::item::{Alert, AlertState};

use crate::config::{glob_match, AlertsConfig, RouteConfig, SeverityRule};
use crate::message::{Outgoing, Severity};

pub use check::check;
pub use state::RouterState;
pub use text::{floor_ranges, group_of};

const NS: u64 = 1_000_000_000;

/// Sinks a route may name.
pub const SINKS: [&str; 3] = ["chat", "email", "log"];

/// Is this alert key silenced now? (The control interface's silences.)
pub type SilenceCheck = Box<dyn Fn(&str) -> bool + Send>;
/// The current shifters (the chatbot's state file, else `[Alerts] shifters`).
pub type ShiftersFn = Box<dyn Fn() -> Vec<String> + Send>;

/// What a route did with an alert instead of sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Decision {
    /// Its firing was announced on this route less than `throttle` s ago.
    Throttled,
    /// Silenced (from the chat or the control API).
    Silenced,
    /// Fired and resolved (or resolved and fired again) within one group
    /// window: people never hear of it.
    Transient,
    /// A resolved whose firing nobody was told about.
    Unannounced,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Throttled => "throttled",
            Decision::Silenced => "silenced",
            Decision::Transient => "transient",
            Decision::Unannounced => "unannounced",
        }
    }
}

/// What kind of notice a message is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Notice {
    Firing,
    Reminder,
    Resolved,
}

impl Notice {
    pub fn name(self) -> &'static str {
        match self {
            Notice::Firing => "firing",
            Notice::Reminder => "reminder",
            Notice::Resolved => "resolved",
        }
    }
    fn of(a: &Alert) -> Notice {
        match (a.state, a.reminder) {
            (AlertState::Resolved, _) => Notice::Resolved,
            (AlertState::Firing, true) => Notice::Reminder,
            (AlertState::Firing, false) => Notice::Firing,
        }
    }
}

/// An alert a route did not send, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub route: String,
    pub key: String,
    pub notice: Notice,
    pub decision: Decision,
    /// Data time of the alert.
    pub data_time_ns: u64,
}

/// A message with what the router knows about it beyond [`Outgoing`].
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub msg: Outgoing,
    pub notice: Notice,
}

/// What one call produced.
#[derive(Debug, Default)]
pub struct Output {
    pub messages: Vec<Routed>,
    pub notes: Vec<Note>,
}

/// Totals since start (for metrics and the benchmark).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub alerts: u64,
    /// Alerts no route matched.
    pub unrouted: u64,
    pub messages: u64,
    pub throttled: u64,
    pub silenced: u64,
    pub transient: u64,
    pub unannounced: u64,
    pub reminders_skipped: u64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pending {
    alert: Alert,
    severity: Severity,
    notice: Notice,
}

/// What a route remembers per key.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct KeyState {
    /// People were told it fires (and not yet that it resolved).
    announced: bool,
    /// When its firing was last sent on this route (throttle).
    fired_ns: Option<u64>,
    /// When its firing or a reminder was last sent (reminder interval).
    noticed_ns: u64,
}

struct Route {
    name: String,
    patterns: Vec<String>,
    min_severity: Severity,
    sinks: Vec<String>,
    throttle_ns: u64,
    reminder_ns: u64,
    send_resolved: bool,
    pending: BTreeMap<String, Pending>,
    /// When the collected alerts go out.
    due_ns: Option<u64>,
    keys: HashMap<String, KeyState>,
}

impl Route {
    fn new(c: &RouteConfig, enabled: bool, default_reminder: u64) -> Route {
        // Disabled: route and group as configured, but only into the log.
        let sinks = if enabled {
            let mut s = c.sinks.clone();
            s.dedup();
            s
        } else {
            vec!["log".to_string()]
        };
        Route {
            name: c.name.clone(),
            patterns: c.patterns.clone(),
            min_severity: c.min_severity,
            sinks,
            throttle_ns: c.throttle.saturating_mul(NS),
            reminder_ns: c.reminder.unwrap_or(default_reminder).saturating_mul(NS),
            send_resolved: c.resolved,
            pending: BTreeMap::new(),
            due_ns: None,
            keys: HashMap::new(),
        }
    }

    fn matches(&self, key: &str, severity: Severity) -> bool {
        severity >= self.min_severity
            && (self.patterns.is_empty() || self.patterns.iter().any(|p| glob_match(p, key)))
    }

    fn note(&self, a: &Alert, notice: Notice, decision: Decision, out: &mut Output) {
        out.notes.push(Note {
            route: self.name.clone(),
            key: a.key.clone(),
            notice,
            decision,
            data_time_ns: a.time_utc_ns,
        });
    }

    fn queue(&mut self, a: &Alert, severity: Severity, notice: Notice, now: u64, window: u64) {
        self.pending.insert(
            a.key.clone(),
            Pending {
                alert: a.clone(),
                severity,
                notice,
            },
        );
        self.due_ns.get_or_insert(now.saturating_add(window));
    }

    /// Queues the alert for the next message, or notes why not.
    fn take(
        &mut self,
        a: &Alert,
        severity: Severity,
        silenced: &mut dyn FnMut() -> bool,
        step: &mut Step<'_>,
    ) {
        let (now, window) = (step.now, step.window);
        let (stats, out) = (&mut *step.stats, &mut *step.out);
        let ks = self.keys.get(&a.key).copied().unwrap_or_default();
        let mut notice = Notice::of(a);
        if notice == Notice::Reminder && !ks.announced && !self.pending.contains_key(&a.key) {
            // Nobody was told (silenced or throttled then): tell now.
            notice = Notice::Firing;
        }
        match notice {
            Notice::Firing => {
                if let Some(p) = self.pending.get(&a.key) {
                    if p.notice == Notice::Resolved {
                        // Resolved and firing again before anyone was told
                        // it resolved: people still (rightly) think it fires.
                        self.pending.remove(&a.key);
                        stats.transient += 1;
                        self.note(a, notice, Decision::Transient, out);
                        return;
                    }
                }
                if silenced() {
                    stats.silenced += 1;
                    self.note(a, notice, Decision::Silenced, out);
                    return;
                }
                if ks
                    .fired_ns
                    .is_some_and(|t| now < t.saturating_add(self.throttle_ns))
                {
                    stats.throttled += 1;
                    self.note(a, notice, Decision::Throttled, out);
                    return;
                }
                self.queue(a, severity, Notice::Firing, now, window);
            }
            Notice::Reminder => {
                let due = ks.noticed_ns.saturating_add(self.reminder_ns);
                if self.reminder_ns == 0 || now < due || self.pending.contains_key(&a.key) {
                    stats.reminders_skipped += 1;
                    return;
                }
                if silenced() {
                    stats.silenced += 1;
                    self.note(a, notice, Decision::Silenced, out);
                    return;
                }
                self.queue(a, severity, Notice::Reminder, now, window);
            }
            Notice::Resolved => {
                if let Some(p) = self.pending.remove(&a.key) {
                    if p.notice == Notice::Firing {
                        stats.transient += 1;
                        self.note(a, notice, Decision::Transient, out);
                        return;
                    }
                }
                if !ks.announced {
                    stats.unannounced += 1;
                    self.note(a, notice, Decision::Unannounced, out);
                    return;
                }
                if !self.send_resolved {
                    self.keys.entry(a.key.clone()).or_default().announced = false;
                    return;
                }
                self.queue(a, severity, Notice::Resolved, now, window);
            }
        }
    }

    /// Sends what was collected: one message per (condition, notice).
    fn flush(&mut self, now: u64, ctx: &mut Flush<'_>, out: &mut Output) {
        self.due_ns = None;
        if self.pending.is_empty() {
            return;
        }
        let mut groups: BTreeMap<(Notice, String), Vec<Pending>> = BTreeMap::new();
        for (_, mut p) in std::mem::take(&mut self.pending) {
            if let Some(t) = &ctx.table {
                t.place(&mut p.alert);
            }
            groups
                .entry((p.notice, group_of(&p.alert.key).to_string()))
                .or_default()
                .push(p);
        }
        for ((notice, group), mut members) in groups {
            members.sort_by(|a, b| {
                let place = |p: &Pending| (p.alert.du, p.alert.floor);
                place(a)
                    .cmp(&place(b))
                    .then_with(|| a.alert.key.cmp(&b.alert.key))
            });
            for p in &members {
                let ks = self.keys.entry(p.alert.key.clone()).or_default();
                match notice {
                    Notice::Firing => {
                        ks.announced = true;
                        ks.fired_ns = Some(now);
                        ks.noticed_ns = now;
                    }
                    Notice::Reminder => ks.noticed_ns = now,
                    Notice::Resolved => ks.announced = false,
                }
            }
            let alerts: Vec<&Alert> = members.iter().map(|p| &p.alert).collect();
            let severity = members.iter().map(|p| p.severity).max().unwrap_or_default();
            let now_line = ctx
                .table
                .as_ref()
                .and_then(|t| t.now_line(now, &group, &alerts));
            let (subject, body) = text::render(notice, severity, &group, &alerts, now_line);
            let mention = text::mention(ctx.shifters);
            let keys: Vec<String> = alerts.iter().map(|a| a.key.clone()).collect();
            let data_time_ns = alerts.iter().map(|a| a.time_utc_ns).max().unwrap_or(0);
            for sink in &self.sinks {
                *ctx.next_id += 1;
                out.messages.push(Routed {
                    msg: Outgoing {
                        id: *ctx.next_id,
                        route: self.name.clone(),
                        sink: sink.clone(),
                        severity,
                        resolved: notice == Notice::Resolved,
                        keys: keys.clone(),
                        data_time_ns,
                        subject: subject.clone(),
                        text: format!("{mention}{body}"),
                    },
                    notice,
                });
                ctx.stats.messages += 1;
            }
        }
        // Forget keys nobody needs any more (resolved and out of throttle).
        if self.keys.len() > 1024 {
            let throttle = self.throttle_ns;
            self.keys.retain(|_, k| {
                k.announced || k.fired_ns.is_some_and(|t| now < t.saturating_add(throttle))
            });
        }
    }
}

/// One push: the router's clock and where results go.
struct Step<'a> {
    now: u64,
    window: u64,
    stats: &'a mut Stats,
    out: &'a mut Output,
}

struct Flush<'a> {
    table: Option<&'a Table>,
    shifters: &'a [String],
    next_id: &'a mut u64,
    stats: &'a mut Stats,
}

/// See the module documentation.
pub struct Router {
    routes: Vec<Route>,
    severity: Vec<SeverityRule>,
    window_ns: u64,
    next_id: u64,
    shifters: ShiftersFn,
    silenced: SilenceCheck,
    stats: Stats,
    table: Option<Table>,
}

/// The detector-state table as of the router's clock, with its DOMs'
/// places by DOM id (rebuilt when a run brings another layout).
struct Table {
    snap: Arc<HealthSnapshot>,
    places: HashMap<u32, (u32, i32)>,
}

impl Table {
    fn new(snap: Arc<HealthSnapshot>) -> Table {
        let places = snap
            .layout
            .iter()
            .map(|&(du, floor, dom)| (dom, (du, floor)))
            .collect();
        Table { snap, places }
    }

    /// A DOM-level alert (`condition:dom_id`) takes the table's DU and
    /// floor; any other alert keeps the monitor's labels.
    fn place(&self, a: &mut Alert) {
        let dom = a
            .key
            .split_once(':')
            .and_then(|(_, d)| d.parse::<u32>().ok());
        if let Some(&(du, floor)) = dom.and_then(|d| self.places.get(&d)) {
            a.du = Some(du);
            a.floor = Some(floor);
        }
    }

    /// The table's counts for the DUs of a message about DOMs of the
    /// table's detector (`None` for any other message).
    fn now_line(&self, now_ns: u64, group: &str, alerts: &[&Alert]) -> Option<String> {
        let dom_of = |a: &&Alert| {
            a.key
                .split_once(':')
                .and_then(|(_, d)| d.parse::<u32>().ok())
        };
        let mut dus: Vec<u32> = alerts
            .iter()
            .filter(|a| dom_of(a).is_some_and(|d| self.places.contains_key(&d)))
            .filter_map(|a| a.du)
            .collect();
        // A condition the table does not count (its monitor does not feed
        // `detector_state`) would read 0: no line rather than a wrong one.
        if dus.is_empty() || !self.snap.conditions.iter().any(|c| c == group) {
            return None;
        }
        dus.sort_unstable();
        dus.dedup();
        let count = |du: u32| {
            self.snap
                .by_du
                .get(&du)
                .and_then(|r| r.get(group))
                .copied()
                .unwrap_or(0)
        };
        let total = self.snap.totals.get(group).copied().unwrap_or(0);
        Some(text::now_line(now_ns, group, alerts, &dus, count, total))
    }
}

impl Router {
    /// Without `[[Alerts.route]]`, one route `default` takes every alert to
    /// every configured sink (chat when a chat mode is set, e-mail when
    /// enabled) and the log, with a 300 s throttle. With `enabled = false`
    /// every route sends to the log only.
    pub fn new(cfg: &AlertsConfig) -> Router {
        let default_route;
        let routes: &[RouteConfig] = if cfg.routes.is_empty() {
            default_route = [default_route_of(cfg)];
            &default_route
        } else {
            &cfg.routes
        };
        let fallback = cfg.shifters.names();
        Router {
            routes: routes
                .iter()
                .map(|r| Route::new(r, cfg.enabled, cfg.reminder_interval))
                .collect(),
            severity: cfg.severity.clone(),
            window_ns: cfg.group_window.saturating_mul(NS),
            next_id: 0,
            shifters: Box::new(move || fallback.clone()),
            silenced: Box::new(|_| false),
            stats: Stats::default(),
            table: None,
        }
    }

    /// The `detector_state` table as of the router's clock: give it in
    /// time order with the alerts, before the alerts of the same time.
    pub fn set_table(&mut self, snap: Arc<HealthSnapshot>) {
        match &mut self.table {
            Some(t) if t.snap.layout == snap.layout => t.snap = snap,
            _ => self.table = Some(Table::new(snap)),
        }
    }

    /// Where the current shifters come from (default: `[Alerts] shifters`).
    pub fn with_shifters(mut self, f: impl Fn() -> Vec<String> + Send + 'static) -> Router {
        self.shifters = Box::new(f);
        self
    }

    /// Which keys are silenced now (default: none).
    pub fn with_silences(mut self, f: impl Fn(&str) -> bool + Send + 'static) -> Router {
        self.silenced = Box::new(f);
        self
    }

    /// Message ids start after `first` (several routers in one process).
    pub fn with_first_id(mut self, first: u64) -> Router {
        self.next_id = first;
        self
    }

    /// First matching `[[Alerts.severity]]` rule, else warning.
    pub fn severity_of(&self, key: &str) -> Severity {
        self.severity
            .iter()
            .find(|r| glob_match(&r.pattern, key))
            .map_or(Severity::Warning, |r| r.severity)
    }

    /// The sinks some route sends to (each needs a transport).
    pub fn sinks(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .routes
            .iter()
            .flat_map(|r| r.sinks.iter().cloned())
            .collect();
        s.sort();
        s.dedup();
        s
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// One alert at `now_ns` (the router's clock, not the alert's data time).
    pub fn push(&mut self, alert: &Alert, now_ns: u64, out: &mut Output) {
        self.stats.alerts += 1;
        let severity = self.severity_of(&alert.key);
        let mut silenced_memo = None;
        let silence = &self.silenced;
        let mut silenced = || *silenced_memo.get_or_insert_with(|| silence(&alert.key));
        let mut routed = false;
        let mut step = Step {
            now: now_ns,
            window: self.window_ns,
            stats: &mut self.stats,
            out,
        };
        for r in &mut self.routes {
            if !r.matches(&alert.key, severity) {
                continue;
            }
            routed = true;
            r.take(alert, severity, &mut silenced, &mut step);
        }
        if !routed {
            self.stats.unrouted += 1;
        }
    }

    /// Sends the groups whose window closed by `now_ns`.
    pub fn tick(&mut self, now_ns: u64, out: &mut Output) {
        if !self
            .routes
            .iter()
            .any(|r| r.due_ns.is_some_and(|d| d <= now_ns))
        {
            return;
        }
        let shifters = (self.shifters)();
        let mut ctx = Flush {
            table: self.table.as_ref(),
            shifters: &shifters,
            next_id: &mut self.next_id,
            stats: &mut self.stats,
        };
        for r in &mut self.routes {
            if r.due_ns.is_some_and(|d| d <= now_ns) {
                r.flush(now_ns, &mut ctx, out);
            }
        }
    }

    /// Sends everything still collected (end of input, shutdown).
    pub fn flush(&mut self, now_ns: u64, out: &mut Output) {
        let shifters = (self.shifters)();
        let mut ctx = Flush {
            table: self.table.as_ref(),
            shifters: &shifters,
            next_id: &mut self.next_id,
            stats: &mut self.stats,
        };
        for r in &mut self.routes {
            r.flush(now_ns, &mut ctx, out);
        }
    }

    /// When [`Router::tick`] next has something to send.
    pub fn next_due(&self) -> Option<u64> {
        self.routes.iter().filter_map(|r| r.due_ns).min()
    }
}

fn default_route_of(cfg: &AlertsConfig) -> RouteConfig {
    let mut sinks = vec!["log".to_string()];
    if cfg.chat().mode != crate::config::ChatMode::Off {
        sinks.push("chat".into());
    }
    if cfg.email.enabled {
        sinks.push("email".into());
    }
    RouteConfig {
        name: "default".into(),
        patterns: Vec::new(),
        min_severity: Severity::Info,
        sinks,
        throttle: 300,
        reminder: None,
        resolved: true,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod table_tests;
