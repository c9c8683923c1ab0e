//! Where log lines go and what they look like: stderr, colour only on a
//! terminal (journald and `docker logs` get plain text), or one JSON object
//! per line (`--log-format json`, `KM3MON_LOG_FORMAT=json`) for journald's
//! structured fields and Loki. Lines from a node carry its `node` and
//! `group` (the runtime's spans); they are also kept per node in a ring
//! buffer for `km3mon ctl logs NODE`.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colour only when stderr is a terminal).
    Text,
    /// One JSON object per line, with the node's fields.
    Json,
}

/// The format from the flag, else from `KM3MON_LOG_FORMAT`, else text.
pub fn format(flag: Option<LogFormat>) -> Result<LogFormat, String> {
    if let Some(f) = flag {
        return Ok(f);
    }
    match std::env::var("KM3MON_LOG_FORMAT") {
        Err(_) => Ok(LogFormat::Text),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "KM3MON_LOG_FORMAT={other:?}: expected text or json"
            )),
        },
    }
}

/// Installs the global subscriber. Level from `KM3MON_LOG` (default info).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("KM3MON_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(pipeline::runtime::progress::log_writer)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(pipeline::runtime::progress::log_writer)
            .boxed(),
    };
    // One filter for both: the ring keeps what the log shows, and events
    // below the level are not even built.
    let ring = pipeline::logring::RingLayer::global();
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(ring)
        .init();
}
