//! The client's counters: atomics bumped by the I/O thread, readable as a
//! snapshot from any other thread (the pipeline's metrics, a status log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Counters readable from other threads while the client runs.
#[derive(Debug, Default)]
pub struct ClientCounters {
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    /// Connections re-established after a loss.
    pub reconnects: AtomicU64,
    /// Time spent without a connection after having had one (completed gaps).
    pub disconnected_ns: AtomicU64,
    /// Wall-clock start of the current gap (ns since the epoch), 0 if none.
    pub gap_started_unix_ns: AtomicU64,
    pub msgs_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub msgs_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Incoming messages cut short by a lost connection.
    pub partial_discarded: AtomicU64,
    /// Outgoing messages sent again on a new connection because the old
    /// one broke while they were being written.
    pub resent: AtomicU64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClientStats {
    pub connects: u64,
    pub disconnects: u64,
    pub reconnects: u64,
    /// Completed gaps plus the current one, if disconnected now.
    pub disconnected_s: f64,
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
    pub partial_discarded: u64,
    pub resent: u64,
}

impl ClientCounters {
    pub fn snapshot(&self) -> ClientStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut gap_ns = get(&self.disconnected_ns);
        let started = get(&self.gap_started_unix_ns);
        if started > 0 {
            gap_ns += unix_ns().saturating_sub(started);
        }
        ClientStats {
            connects: get(&self.connects),
            disconnects: get(&self.disconnects),
            reconnects: get(&self.reconnects),
            disconnected_s: gap_ns as f64 * 1e-9,
            msgs_in: get(&self.msgs_in),
            bytes_in: get(&self.bytes_in),
            msgs_out: get(&self.msgs_out),
            bytes_out: get(&self.bytes_out),
            partial_discarded: get(&self.partial_discarded),
            resent: get(&self.resent),
        }
    }
}

pub(super) fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}
