//! JLigierMirror's job: subscribe upstream, republish downstream.
//!
//! Both sides are reconnecting clients. Messages are forwarded unchanged
//! (prefix bytes included) and flushed whenever the upstream read buffer
//! runs dry, so bursts travel in few syscalls and single messages are not
//! delayed. While the downstream Ligier is away the mirror stops reading;
//! the upstream Ligier then drops for us ("any" mode) rather than the
//! mirror growing without bound.

use std::time::{Duration, Instant};

use daq::controlhost::Subscription;
use serde::Serialize;
use tracing::info;

use crate::client::{Client, ClientConfig, ClientError, ClientStats};
use crate::shutdown::Shutdown;

#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub from: ClientConfig,
    pub to: ClientConfig,
    pub subscription: Subscription,
    /// Period of the progress log line (None: never).
    pub log_interval: Option<Duration>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MirrorStats {
    pub forwarded_msgs: u64,
    pub forwarded_bytes: u64,
    pub upstream: ClientStats,
    pub downstream: ClientStats,
}

/// Run until `stop` is triggered; returns what was done.
pub fn run_mirror(config: MirrorConfig, stop: Shutdown) -> Result<MirrorStats, ClientError> {
    let mut from = Client::new(config.from).with_shutdown(stop.clone());
    let mut to = Client::new(config.to).with_shutdown(stop.clone());
    let mut stats = MirrorStats::default();
    let mut last_log = Instant::now();
    let result = (|| {
        from.subscribe(config.subscription)?;
        loop {
            if let Some(msg) = from.recv_timeout(Duration::from_millis(500))? {
                to.send_message(&msg)?;
                stats.forwarded_msgs += 1;
                stats.forwarded_bytes += msg.wire_len() as u64;
                if !from.has_buffered_input() {
                    to.flush()?;
                }
            }
            if let Some(period) = config.log_interval {
                if last_log.elapsed() >= period {
                    last_log = Instant::now();
                    let (up, down) = (from.stats(), to.stats());
                    info!(
                        forwarded = stats.forwarded_msgs,
                        upstream_reconnects = up.reconnects,
                        upstream_disconnected_s = format_args!("{:.1}", up.disconnected_s),
                        downstream_reconnects = down.reconnects,
                        downstream_disconnected_s = format_args!("{:.1}", down.disconnected_s),
                        "mirror status"
                    );
                }
            }
        }
    })();
    stats.upstream = from.stats();
    stats.downstream = to.stats();
    match result {
        Err(ClientError::Stopped) | Ok(()) => Ok(stats),
        Err(e) => Err(e),
    }
}
