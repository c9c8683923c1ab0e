//! Dispatcher counters and the status report built from them.
//!
//! Counters are relaxed atomics bumped on the hot path; a report is a plain
//! serialisable snapshot, sent as JSON in reply to `_ShowSta` and printed
//! as a table by `km3mon ligier --status`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Message/byte/drop counters, shared by one tag or one connection.
#[derive(Debug, Default)]
pub struct Counters {
    pub msgs_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub msgs_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub drops: AtomicU64,
}

impl Counters {
    pub fn add_in_many(&self, msgs: u64, bytes: u64) {
        self.msgs_in.fetch_add(msgs, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_out(&self, msgs: u64, bytes: u64) {
        self.msgs_out.fetch_add(msgs, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn add_drop(&self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            msgs_in: self.msgs_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            msgs_out: self.msgs_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSnapshot {
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
    pub drops: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionStatus {
    pub id: u64,
    pub peer: String,
    /// `_MyId` nickname, if the client sent one.
    pub name: Option<String>,
    /// The current subscription as a `_Subscri` string (empty: publisher).
    pub subscription: String,
    /// `_Always` received (push mode) rather than request (`_Gime`) mode.
    pub push_mode: bool,
    pub connected_s: f64,
    pub queued_msgs: u64,
    pub queued_bytes: u64,
    #[serde(flatten)]
    pub counters: CounterSnapshot,
    /// Messages dropped for this connection, by tag.
    pub drops_by_tag: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TagStatus {
    pub tag: String,
    pub subscribers: u64,
    #[serde(flatten)]
    pub counters: CounterSnapshot,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: String,
    pub uptime_s: f64,
    pub connections_total: u64,
    /// Connections closed for a protocol error or a too-slow "all" reader.
    pub connections_refused: u64,
    /// Connections turned away because `--max-connections` were open.
    #[serde(default)]
    pub connections_over_limit: u64,
    pub connections: Vec<ConnectionStatus>,
    pub tags: Vec<TagStatus>,
}

impl fmt::Display for StatusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ligier {}  up {:.0} s  {} connections open, {} accepted, {} closed for errors",
            self.version,
            self.uptime_s,
            self.connections.len(),
            self.connections_total,
            self.connections_refused
        )?;
        if self.connections_over_limit > 0 {
            writeln!(
                f,
                "{} connections refused: --max-connections reached",
                self.connections_over_limit
            )?;
        }
        writeln!(
            f,
            "\n{:<9} {:>5} {:>12} {:>14} {:>12} {:>14} {:>10}",
            "TAG", "SUBS", "MSGS_IN", "BYTES_IN", "MSGS_OUT", "BYTES_OUT", "DROPS"
        )?;
        for t in &self.tags {
            let c = &t.counters;
            writeln!(
                f,
                "{:<9} {:>5} {:>12} {:>14} {:>12} {:>14} {:>10}",
                t.tag, t.subscribers, c.msgs_in, c.bytes_in, c.msgs_out, c.bytes_out, c.drops
            )?;
        }
        writeln!(
            f,
            "\n{:>5} {:<21} {:<12} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8}  SUBSCRIPTION",
            "ID", "PEER", "NAME", "MSGS_IN", "BYTES_IN", "MSGS_OUT", "BYTES_OUT", "DROPS", "QUEUED"
        )?;
        for c in &self.connections {
            let n = &c.counters;
            let mode = if c.subscription.is_empty() || c.push_mode {
                ""
            } else {
                " (request mode)"
            };
            writeln!(
                f,
                "{:>5} {:<21} {:<12} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8} {}{}",
                c.id,
                c.peer,
                c.name.as_deref().unwrap_or("-"),
                n.msgs_in,
                n.bytes_in,
                n.msgs_out,
                n.bytes_out,
                n.drops,
                c.queued_msgs,
                c.subscription.trim(),
                mode
            )?;
        }
        Ok(())
    }
}
