//! The contract between routing and delivery.

use serde::{Deserialize, Serialize};

/// How bad a condition is; routes select on it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One message for people, made by a route from one or more alerts
/// (grouped), addressed to one sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    /// Unique within the process; outcomes refer to it.
    pub id: u64,
    /// Name of the route that made it.
    pub route: String,
    /// Name of the sink it goes to (`chat`, `email`, …).
    pub sink: String,
    pub severity: Severity,
    /// True when every alert in it is `resolved`.
    pub resolved: bool,
    /// The alert keys it covers (one, or many when grouped).
    pub keys: Vec<String>,
    /// Data time of the newest alert in it, ns since the epoch.
    pub data_time_ns: u64,
    /// One line, e.g. an e-mail subject.
    pub subject: String,
    /// The full text (chat message, e-mail body); names the shifters.
    pub text: String,
}

/// What happened to one [`Outgoing`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: u64,
    pub sink: String,
    pub delivered: bool,
    pub attempts: u32,
    /// Why it failed (last error), or why it was dropped (queue full).
    pub error: Option<String>,
}

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (connection refused, timeout, HTTP 5xx, 429).
    #[error("{0}")]
    Retryable(String),
    /// Trying again will not help (HTTP 4xx other than 401/429, bad address).
    #[error("{0}")]
    Permanent(String),
}

/// A way to reach people: one attempt to deliver one message. Blocking;
/// called on a delivery thread of its own, never on a timely worker.
/// Retries, back-off and the bounded queue are the caller's business.
pub trait Transport: Send {
    /// `chat`, `email`, … (what routes name in `sinks = [...]`).
    fn name(&self) -> &str;
    fn send(&mut self, msg: &Outgoing) -> Result<(), SendError>;
}
