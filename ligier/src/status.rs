//! Asking a running Ligier for its counters (`_ShowSta`).
//!
//! The generic ControlHost library reserves `_ShowSta` for dispatcher
//! statistics; this dispatcher answers it on the same connection with one
//! `_ShowSta` message whose payload is the JSON [`StatusReport`].

use std::time::{Duration, Instant};

use crate::client::{Client, ClientConfig, ClientError};
use crate::stats::StatusReport;

fn show_stat() -> daq::controlhost::Tag {
    daq::controlhost::Tag::new("_ShowSta").expect("valid tag")
}

/// Query the Ligier at `addr` once (no reconnection).
pub fn query_status(addr: &str, timeout: Duration) -> Result<StatusReport, ClientError> {
    let mut config = ClientConfig::new(addr).name("km3mon-status");
    config.reconnect = false;
    config.connect_timeout = timeout;
    let mut client = Client::connect(config)?;
    client.publish(show_stat(), &[])?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let protocol = |detail: String| ClientError::Protocol {
            addr: addr.to_string(),
            detail,
        };
        match client.recv_timeout(left)? {
            Some(msg) if msg.tag() == show_stat() => {
                return serde_json::from_slice(msg.payload())
                    .map_err(|e| protocol(format!("status is not the expected JSON: {e}")));
            }
            Some(_) => continue,
            None => return Err(protocol(format!("no status reply within {timeout:?}"))),
        }
    }
}
