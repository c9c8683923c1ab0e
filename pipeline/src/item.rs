//! What flows on the edges: one [`Item`] enum, tagged by [`StreamKind`].
//!
//! Timely streams carry a lifetime, so type-erased streams are awkward; one
//! enum on every edge keeps the compiler simple, crosses process boundaries
//! in cluster mode (it is serde) and is checked statically at validation:
//! every node declares the kinds it accepts and produces.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

use daq::event::Event;
use daq::summary::Summaryslice;
use daq::timeslice::Timeslice;
use daq::tmch::TmchPacket;

pub use crate::plot::Plot;

/// The timely timestamp: DAQ (event) time in 100 ms timeslice units since
/// the Unix epoch. Windows close when the frontier passes them, so live
/// and replay give the same results.
pub type Time = u64;

/// Nanoseconds per [`Time`] tick.
pub const TICK_NS: u64 = 100_000_000;
/// Ticks per second.
pub const TICKS_PER_SECOND: u64 = 10;

/// [`Time`] of a UTC time in nanoseconds.
pub fn time_of_ns(utc_ns: u64) -> Time {
    utc_ns / TICK_NS
}

/// The tick of a UTC time written as `timefmt` reads it (ISO 8601 and
/// the other forms it knows): command-line data times.
pub fn parse_time(text: &str) -> Result<Time, String> {
    timefmt::parse_ns(text)
        .map(time_of_ns)
        .map_err(|e| e.to_string())
}

/// UTC seconds at the start of a tick.
pub fn seconds_of(time: Time) -> u64 {
    time / TICKS_PER_SECOND
}

/// The data kinds a stream can carry. Adding a kind: a variant here, its
/// name in [`StreamKind::ALL`], and (if it carries new data) an [`Item`]
/// variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Raw ControlHost messages (tag + payload), straight from a Ligier or
    /// a file; decoders and `tag_rates` read these.
    Messages,
    /// Decoded IO_SUM summaryslices.
    Summaryslices,
    /// Decoded IO_EVT events.
    Events,
    /// Decoded IO_TS* timeslices.
    Timeslices,
    /// Decoded IO_MONIT CLB monitoring packets.
    Tmch,
    /// MSG log lines.
    Msg,
    /// Table rows for data sinks (CSV, SQLite, JSON).
    Table,
    /// Alert state changes (firing / resolved).
    Alerts,
    /// Plot requests for the plot sink.
    Plots,
    /// The detector-state table (`detector_state`) at each data time it
    /// changes: the alert router's counts and DU/floor placement.
    Health,
}

impl StreamKind {
    pub const ALL: [StreamKind; 10] = [
        StreamKind::Messages,
        StreamKind::Summaryslices,
        StreamKind::Events,
        StreamKind::Timeslices,
        StreamKind::Tmch,
        StreamKind::Msg,
        StreamKind::Table,
        StreamKind::Alerts,
        StreamKind::Plots,
        StreamKind::Health,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Messages => "messages",
            StreamKind::Summaryslices => "summaryslices",
            StreamKind::Events => "events",
            StreamKind::Timeslices => "timeslices",
            StreamKind::Tmch => "tmch",
            StreamKind::Msg => "msg",
            StreamKind::Table => "table",
            StreamKind::Alerts => "alerts",
            StreamKind::Plots => "plots",
            StreamKind::Health => "health",
        }
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One ControlHost message as received or read from a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub tag: String,
    /// Run number from the DAQ header or TMCH packet, if the payload has one.
    pub run: Option<u32>,
    /// UTC time of the payload in ns, if it has one (MSG lines do not).
    pub utc_ns: Option<u64>,
    pub payload: Vec<u8>,
}

/// One row for a table sink. Rows of one table share the header.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Row {
    /// Table (file stem) the row belongs to, e.g. `tag_rates`.
    pub table: String,
    pub header: Vec<String>,
    pub cells: Vec<String>,
}

/// Whether an alert condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// What a condition is, in the words of the monitor that raises it
/// ("inactive" / "sending data again"), so that the people-facing texts
/// say it as a shifter would without the router knowing every monitor.
/// Empty: the router falls back to the key.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Wording {
    pub firing: String,
    pub resolved: String,
}

/// An alert state change (or a reminder that a condition still holds).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Alert {
    /// Data time at which the condition was detected (for a reminder: the
    /// data time of the reminder), ns since the epoch.
    pub time_utc_ns: u64,
    /// The node that raised it.
    pub monitor: String,
    /// Stable key of the condition, e.g. `dom_inactive:806451572`.
    pub key: String,
    pub state: AlertState,
    /// True for a repeated notification of a condition still firing.
    pub reminder: bool,
    pub message: String,
    /// DU and floor of the DOM a DOM-level condition concerns, so that
    /// alert routing can group by DU without parsing `message`. (Always
    /// serialised: cluster exchanges use a format that is not
    /// self-describing.)
    #[serde(default)]
    pub du: Option<u32>,
    #[serde(default)]
    pub floor: Option<i32>,
    /// The condition in words (from the monitor's [`Wording`] of the key's
    /// condition), for the texts sent to people.
    #[serde(default)]
    pub wording: Wording,
}

/// A MSG log line (UTF-8, lossily decoded).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MsgItem {
    pub text: String,
}

/// Every edge of the dataflow carries `Vec<Item>` at [`Time`]. Decoded
/// frames are shared (`Arc`): a stream read by several monitors is cloned
/// per consumer, and a clone must not copy a 4,000-DOM summaryslice.
///
/// Every variant is one pointer, so an `Item` is 16 bytes: timely's
/// containers hold 8 KiB, and items are moved at every exchange, tee and
/// sort. With `Row` and `Alert` inline (104 bytes) a container held 78
/// items and moving them was the largest cost on the workers (issue 18).
/// (A `Box` serialises as its content: the cluster format is unchanged.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// Shared: a stream feeding several nodes hands each a copy of every
    /// batch, and copying the payloads cost more than decoding them.
    Message(Arc<Message>),
    Row(Box<Row>),
    Alert(Box<Alert>),
    Summaryslice(Arc<Summaryslice>),
    Event(Arc<Event>),
    /// A timeslice; the decoder may have stripped the hits of its
    /// super-frames (the time-sync check needs only the status words).
    Timeslice(Arc<Timeslice>),
    Tmch(Arc<TmchPacket>),
    Msg(Box<MsgItem>),
    Plot(Arc<Plot>),
    /// The detector-state table after a data time's changes (shared with
    /// what `km3mon ctl health` and the gauges show).
    Health(Arc<crate::health::HealthSnapshot>),
}

impl Item {
    /// The kind a node producing this item must declare.
    pub fn kind(&self) -> StreamKind {
        match self {
            Item::Message(_) => StreamKind::Messages,
            Item::Row(_) => StreamKind::Table,
            Item::Alert(_) => StreamKind::Alerts,
            Item::Summaryslice(_) => StreamKind::Summaryslices,
            Item::Event(_) => StreamKind::Events,
            Item::Timeslice(_) => StreamKind::Timeslices,
            Item::Tmch(_) => StreamKind::Tmch,
            Item::Msg(_) => StreamKind::Msg,
            Item::Plot(_) => StreamKind::Plots,
            Item::Health(_) => StreamKind::Health,
        }
    }

    /// Detector id and run number of a DAQ frame (decoded, or a raw
    /// message from a Ligier that holds one).
    pub fn daq_run(&self) -> Option<(i32, i32)> {
        let h = match self {
            Item::Summaryslice(s) => s.header,
            Item::Event(e) => e.header,
            Item::Timeslice(t) => t.header,
            Item::Message(m) if m.run.is_some() => daq::frame::peek_header(&m.payload)?,
            _ => return None,
        };
        Some((h.det_id, h.run))
    }

    /// A key that orders the items of one timestamp the same way in every
    /// run: items reach a merging worker in an order that depends on the
    /// number of workers, so operators that care sort by this first.
    pub fn order_key(&self) -> (u8, u64, u64) {
        let daq = |h: &daq::frame::DaqHeader| {
            (u64::from(h.det_id as u32) << 32) | u64::from(h.frame_index as u32)
        };
        match self {
            Item::Message(m) => (0, m.utc_ns.unwrap_or(0), stable_hash(&m.payload)),
            Item::Row(r) => (1, 0, stable_hash(r.cells.join(",").as_bytes())),
            Item::Alert(a) => (2, a.time_utc_ns, stable_hash(a.key.as_bytes())),
            Item::Summaryslice(s) => (3, daq(&s.header), s.header.utc_ns()),
            Item::Event(e) => (4, daq(&e.header), e.trigger_counter),
            Item::Timeslice(t) => (5, daq(&t.header), t.data_type.as_i32() as u64),
            Item::Tmch(p) => (6, u64::from(p.dom_id), p.utc_ns()),
            Item::Msg(m) => (7, 0, stable_hash(m.text.as_bytes())),
            Item::Plot(p) => (8, 0, stable_hash(p.name.as_bytes())),
            // One per data time.
            Item::Health(h) => (9, h.doms.len() as u64, h.layout.len() as u64),
        }
    }
}

/// A stable 64-bit hash (FNV-1a) for exchanging by key: the same key goes
/// to the same worker in every process and every run.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_in_100ms_ticks() {
        assert_eq!(time_of_ns(1_574_432_873_300_000_000), 15_744_328_733);
        assert_eq!(seconds_of(15_744_328_733), 1_574_432_873);
    }

    #[test]
    fn an_item_is_two_words() {
        assert_eq!(std::mem::size_of::<Item>(), 16);
    }

    #[test]
    fn all_kinds_have_distinct_names() {
        let mut names: Vec<_> = StreamKind::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), StreamKind::ALL.len());
    }
}
