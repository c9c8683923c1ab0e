//! Delivery: one thread per sink, a bounded queue in front of each, retries
//! with exponential back-off, counters for `/status`.
//!
//! [`Delivery::submit`] never blocks: when a sink's queue is full the
//! message is dropped and counted, so an unreachable chat server can slow
//! nothing but its own delivery thread. Messages of one sink go out in
//! order (a `resolved` never overtakes its `firing`); while one is being
//! retried the others wait in the queue.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use serde::Serialize;

use crate::chat::{rest::RestClient, webhook::WebhookClient};
use crate::config::{AlertsConfig, ChatMode};
use crate::email::{EmailTransport, LogTransport};
use crate::message::{Outcome, Outgoing, SendError, Transport};

/// When to try again and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failure; doubles after each further one.
    pub first_wait: Duration,
    pub max_wait: Duration,
    /// Attempts per message, the first included.
    pub max_attempts: u32,
    /// A message older than this (since submit) is not tried again.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
            max_attempts: 12,
            max_age: Duration::from_secs(30 * 60),
        }
    }
}

impl RetryPolicy {
    /// Wait before attempt `attempt + 1`, after `attempt` failures (≥ 1).
    pub fn wait(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.first_wait.saturating_mul(factor).min(self.max_wait)
    }
}

/// Counters of one sink, for `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    pub sink: String,
    /// Waiting now (queue + the one being tried).
    pub queued: u64,
    /// Accepted by [`Delivery::submit`] since start.
    pub accepted: u64,
    pub delivered: u64,
    /// Given up (permanent error, too many attempts, too old, shutdown).
    pub failed: u64,
    /// Refused at submit because the queue was full.
    pub dropped: u64,
    /// Attempts after the first.
    pub retries: u64,
    pub last_error: Option<String>,
    #[serde(skip)]
    in_flight: bool,
}

/// Why [`Delivery::submit`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("no sink named {0:?}")]
    UnknownSink(String),
    #[error("queue of sink {0:?} full: message dropped")]
    QueueFull(String),
    #[error("delivery is shutting down")]
    Closed,
}

struct Sink {
    tx: Option<Sender<(Outgoing, Instant)>>,
    stats: Arc<Mutex<SinkStats>>,
    thread: Option<JoinHandle<()>>,
}

/// The delivery threads of all sinks.
pub struct Delivery {
    sinks: BTreeMap<String, Sink>,
    outcomes: (Sender<Outcome>, Receiver<Outcome>),
    /// Set by shutdown: retries waiting past it give up.
    deadline: Arc<Mutex<Option<Instant>>>,
}

/// Outcomes not read by anyone are kept up to this many, then dropped.
const OUTCOME_BACKLOG: usize = 10_000;

impl Delivery {
    /// One thread per transport; `queue` = messages that may wait for it.
    pub fn new(transports: Vec<(Box<dyn Transport>, usize)>, policy: RetryPolicy) -> Self {
        let outcomes = bounded(OUTCOME_BACKLOG);
        let deadline = Arc::new(Mutex::new(None));
        let mut sinks = BTreeMap::new();
        for (transport, queue) in transports {
            let name = transport.name().to_string();
            let (tx, rx) = bounded(queue.max(1));
            let stats = Arc::new(Mutex::new(SinkStats {
                sink: name.clone(),
                ..SinkStats::default()
            }));
            let worker = Worker {
                transport,
                rx,
                stats: stats.clone(),
                outcomes: outcomes.0.clone(),
                policy,
                deadline: deadline.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("messaging-{name}"))
                .spawn(move || worker.run())
                .expect("spawning a delivery thread");
            sinks.insert(
                name,
                Sink {
                    tx: Some(tx),
                    stats,
                    thread: Some(thread),
                },
            );
        }
        Delivery {
            sinks,
            outcomes,
            deadline,
        }
    }

    /// Transports for every configured sink: `chat` (by `[Alerts.chat]
    /// mode`), `email` (when enabled), `log` (always).
    pub fn from_config(alerts: &AlertsConfig, policy: RetryPolicy) -> anyhow::Result<Self> {
        Ok(Self::new(transports_from_config(alerts)?, policy))
    }

    /// Queues `msg` for `msg.sink`; never blocks. A refused message is
    /// also reported as an undelivered [`Outcome`].
    pub fn submit(&self, msg: Outgoing) -> Result<(), SubmitError> {
        let refuse = |err: SubmitError, msg: &Outgoing| {
            self.report(Outcome {
                id: msg.id,
                sink: msg.sink.clone(),
                delivered: false,
                attempts: 0,
                error: Some(err.to_string()),
            });
            Err(err)
        };
        let Some(sink) = self.sinks.get(&msg.sink) else {
            return refuse(SubmitError::UnknownSink(msg.sink.clone()), &msg);
        };
        let Some(tx) = &sink.tx else {
            return refuse(SubmitError::Closed, &msg);
        };
        match tx.try_send((msg, Instant::now())) {
            Ok(()) => {
                lock(&sink.stats).accepted += 1;
                Ok(())
            }
            Err(TrySendError::Full((msg, _))) => {
                let mut s = lock(&sink.stats);
                s.dropped += 1;
                s.last_error = Some("queue full: message dropped".into());
                drop(s);
                refuse(SubmitError::QueueFull(msg.sink.clone()), &msg)
            }
            Err(TrySendError::Disconnected((msg, _))) => refuse(SubmitError::Closed, &msg),
        }
    }

    fn report(&self, outcome: Outcome) {
        // Nobody reading outcomes must not stall delivery.
        let _ = self.outcomes.0.try_send(outcome);
    }

    /// What happened to each message (delivered, given up, dropped).
    pub fn outcomes(&self) -> Receiver<Outcome> {
        self.outcomes.1.clone()
    }

    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.keys().cloned().collect()
    }

    /// Counters of every sink, by name.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.sinks
            .values()
            .map(|sink| {
                let mut s = lock(&sink.stats).clone();
                let waiting = sink.tx.as_ref().map_or(0, |tx| tx.len()) as u64;
                s.queued = waiting + u64::from(s.in_flight);
                s
            })
            .collect()
    }

    /// Stops taking messages, lets each sink deliver what it holds until
    /// `deadline` from now (retries that would wait past it give up), then
    /// returns the final counters. A transport stuck in a request is left
    /// behind after the deadline (its own timeout ends it).
    pub fn shutdown(mut self, within: Duration) -> Vec<SinkStats> {
        let end = Instant::now() + within;
        *lock(&self.deadline) = Some(end);
        for sink in self.sinks.values_mut() {
            sink.tx = None;
        }
        for sink in self.sinks.values_mut() {
            if let Some(t) = sink.thread.take() {
                while !t.is_finished() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if t.is_finished() {
                    let _ = t.join();
                } else {
                    tracing::warn!(target: "messaging", sink = %lock(&sink.stats).sink,
                        "delivery still busy at the shutdown deadline; leaving it");
                }
            }
        }
        self.stats()
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        // Without an explicit shutdown: stop at once, never wait.
        let mut d = lock(&self.deadline);
        if d.is_none() {
            *d = Some(Instant::now());
        }
        drop(d);
        for sink in self.sinks.values_mut() {
            sink.tx = None;
        }
    }
}

/// The sinks a config makes available (`chat`, `email`, `log`), or why one
/// of them is misconfigured — for `km3mon check`: reads no environment
/// variable and opens no connection.
pub fn check_sinks(alerts: &AlertsConfig) -> anyhow::Result<Vec<String>> {
    let chat = alerts.chat();
    let http = |what: &str, url: &str| {
        if url.starts_with("http://") || url.starts_with("https://") {
            Ok(())
        } else {
            Err(anyhow::anyhow!(
                "[Alerts.chat] {what} must start with http:// or https://"
            ))
        }
    };
    let mut names = Vec::new();
    match chat.mode {
        ChatMode::Off => {}
        ChatMode::Rest => {
            let url = chat
                .url
                .as_deref()
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("[Alerts.chat] url is required in REST mode"))?;
            http("url", url)?;
            match (&chat.token_env, &chat.user_id_env) {
                (Some(_), Some(_)) => {}
                (None, None) if chat.password_env.is_some() || alerts.password.is_some() => {}
                (None, None) => anyhow::bail!(
                    "REST mode needs [Alerts.chat] password_env, [Alerts] password, or token_env + user_id_env"
                ),
                _ => anyhow::bail!("[Alerts.chat] token_env and user_id_env go together"),
            }
            names.push("chat".to_string());
        }
        ChatMode::Webhook => {
            match (&chat.webhook_url_env, &chat.webhook_url) {
                (Some(_), _) => {}
                (None, Some(u)) => http("webhook_url", u)?,
                (None, None) => {
                    anyhow::bail!("webhook mode needs [Alerts.chat] webhook_url_env or webhook_url")
                }
            }
            names.push("chat".to_string());
        }
    }
    if alerts.email.enabled {
        crate::email::check(&alerts.email)?;
        names.push("email".to_string());
    }
    names.push("log".to_string());
    Ok(names)
}

/// See [`Delivery::from_config`].
pub fn transports_from_config(
    alerts: &AlertsConfig,
) -> anyhow::Result<Vec<(Box<dyn Transport>, usize)>> {
    let mut out: Vec<(Box<dyn Transport>, usize)> = Vec::new();
    let chat = alerts.chat();
    match chat.mode {
        ChatMode::Off => {}
        ChatMode::Rest => out.push((Box::new(RestClient::new(alerts)?), chat.queue)),
        ChatMode::Webhook => out.push((Box::new(WebhookClient::new(alerts)?), chat.queue)),
    }
    if alerts.email.enabled {
        out.push((
            Box::new(EmailTransport::new(&alerts.email)?),
            alerts.email.queue,
        ));
    }
    out.push((Box::new(LogTransport), 1000));
    Ok(out)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The delivery families of docs/web.md ("Latency"), process-wide.
struct Families {
    delivery: Arc<latency::Family>,
    latency: Arc<latency::Family>,
    attempts: Arc<latency::Counts>,
}

fn families() -> &'static Families {
    static F: std::sync::OnceLock<Families> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let g = latency::global();
        Families {
            delivery: g.histogram_of(&latency::ALERT_DELIVERY),
            latency: g.histogram_of(&latency::ALERT_LATENCY),
            attempts: g.counter_of(&latency::ALERT_ATTEMPTS),
        }
    })
}

fn record_latency(msg: &Outgoing, submitted: Instant, delivered: bool, attempts: u32) {
    let f = families();
    let outcome = if delivered { "delivered" } else { "failed" };
    f.attempts.add(&[&msg.sink, outcome], attempts as u64);
    if !delivered {
        return;
    }
    f.delivery
        .get(&[&msg.sink])
        .record_duration(submitted.elapsed());
    // 0: a message about no data (a chat reply).
    if msg.data_time_ns > 0 {
        f.latency
            .get(&[&msg.sink])
            .record(latency::since_unix_ns(msg.data_time_ns));
    }
}

struct Worker {
    transport: Box<dyn Transport>,
    rx: Receiver<(Outgoing, Instant)>,
    stats: Arc<Mutex<SinkStats>>,
    outcomes: Sender<Outcome>,
    policy: RetryPolicy,
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl Worker {
    fn run(mut self) {
        // Ends when every sender is gone and the queue is empty.
        while let Ok((msg, submitted)) = self.rx.recv() {
            lock(&self.stats).in_flight = true;
            let (delivered, attempts, error) = self.deliver(&msg, submitted);
            record_latency(&msg, submitted, delivered, attempts);
            {
                let mut s = lock(&self.stats);
                s.in_flight = false;
                if delivered {
                    s.delivered += 1;
                } else {
                    s.failed += 1;
                    s.last_error = error.clone();
                }
            }
            if let Some(e) = &error {
                if !delivered {
                    tracing::warn!(target: "messaging", sink = self.transport.name(), id = msg.id,
                        attempts, "message not delivered: {e}");
                }
            }
            let _ = self.outcomes.try_send(Outcome {
                id: msg.id,
                sink: msg.sink.clone(),
                delivered,
                attempts,
                error,
            });
        }
    }

    /// (delivered, attempts, last error).
    fn deliver(&mut self, msg: &Outgoing, submitted: Instant) -> (bool, u32, Option<String>) {
        let mut attempt = 0;
        loop {
            if let Some(d) = *lock(&self.deadline) {
                if Instant::now() >= d {
                    return (false, attempt, Some("not sent: shutting down".into()));
                }
            }
            attempt += 1;
            if attempt > 1 {
                lock(&self.stats).retries += 1;
            }
            // A transport that panics loses this message, not the sink.
            let sent =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.transport.send(msg)))
                    .unwrap_or_else(|_| Err(SendError::Permanent("the sink panicked".into())));
            let err = match sent {
                Ok(()) => return (true, attempt, None),
                Err(SendError::Permanent(e)) => return (false, attempt, Some(e)),
                Err(SendError::Retryable(e)) => e,
            };
            lock(&self.stats).last_error = Some(err.clone());
            let wait = self.policy.wait(attempt);
            let resume = Instant::now() + wait;
            let too_old = resume.duration_since(submitted) > self.policy.max_age;
            let past_deadline = lock(&self.deadline).is_some_and(|d| resume > d);
            if attempt >= self.policy.max_attempts || too_old || past_deadline {
                return (
                    false,
                    attempt,
                    Some(format!("gave up after {attempt} attempts: {err}")),
                );
            }
            tracing::debug!(target: "messaging", sink = self.transport.name(), attempt,
                ?wait, "delivery failed, retrying: {err}");
            self.sleep_until(resume);
        }
    }

    /// Sleeps, but wakes early when a shutdown deadline falls before `until`.
    fn sleep_until(&self, until: Instant) {
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            if lock(&self.deadline).is_some_and(|d| d <= now) {
                return;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(text: &str) -> AlertsConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn check_sinks_names_what_is_wrong() {
        let ok = |t: &str| check_sinks(&alerts(t)).unwrap();
        let err = |t: &str| check_sinks(&alerts(t)).unwrap_err().to_string();
        assert_eq!(ok(""), ["log"]);
        assert_eq!(
            ok("password = \"x\"\n[chat]\nmode = \"rest\"\nurl = \"https://c.org\"\n[email]\nenabled = true\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]"),
            ["chat", "email", "log"]
        );
        assert!(err("[chat]\nmode = \"rest\"").contains("url"));
        assert!(
            err("[chat]\nmode = \"rest\"\nurl = \"c.org\"\npassword_env = \"P\"").contains("http")
        );
        assert!(err("[chat]\nmode = \"rest\"\nurl = \"http://c\"").contains("password"));
        assert!(
            err("[chat]\nmode = \"rest\"\nurl = \"http://c\"\ntoken_env = \"T\"")
                .contains("user_id_env")
        );
        assert!(err("[chat]\nmode = \"webhook\"").contains("webhook_url"));
        assert_eq!(
            ok("[chat]\nmode = \"webhook\"\nwebhook_url_env = \"W\""),
            ["chat", "log"]
        );
        assert!(err("[email]\nenabled = true\nto = [\"c@d.org\"]").contains("from"));
        assert!(err("[email]\nenabled = true\nfrom = \"a@b.org\"").contains("recipient"));
    }

    struct Panicky;
    impl Transport for Panicky {
        fn name(&self) -> &str {
            "chat"
        }
        fn send(&mut self, msg: &Outgoing) -> Result<(), SendError> {
            if msg.id == 1 {
                panic!("boom");
            }
            Ok(())
        }
    }

    #[test]
    fn a_panicking_sink_loses_one_message_and_keeps_delivering() {
        let d = Delivery::new(vec![(Box::new(Panicky), 4)], RetryPolicy::default());
        for id in 1..=2 {
            let msg = Outgoing {
                id,
                route: "r".into(),
                sink: "chat".into(),
                severity: crate::message::Severity::Warning,
                resolved: false,
                keys: vec![],
                data_time_ns: 0,
                subject: String::new(),
                text: String::new(),
            };
            d.submit(msg).unwrap();
        }
        let s = d.shutdown(Duration::from_secs(30));
        assert_eq!((s[0].delivered, s[0].failed), (1, 1));
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let p = RetryPolicy::default();
        let waits: Vec<u64> = (1..=8).map(|a| p.wait(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.wait(100).as_secs(), 60);
    }
}
