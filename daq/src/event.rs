//! `JDAQEvent` (`IO_EVT`, spec §3): one triggered event with its triggered
//! hits (each with the trigger bits it satisfied) and the snapshot of all
//! hits in the event's time window.
//!
//! [`EventView`] validates a frame once and reads the hits in place: most
//! consumers (trigger rates, hit counts per DOM) never need the hits as
//! owned values. [`Event`] is the owned form, built on the view.

use crate::frame::{
    begin_frame, check_frame, detect_layout, field, finish_frame, fixed, put_count, Cursor,
    DaqHeader, DataType, HEADER_LEN,
};
use crate::DecodeError;

/// Bytes of a triggered hit record.
pub const TRIGGERED_HIT_LEN: usize = 18;
/// Bytes of a snapshot hit record.
pub const SNAPSHOT_HIT_LEN: usize = 10;

/// Trigger-mask bits (spec §3.4), as km3mon's trigger-rate monitor tests them.
pub mod trigger {
    /// 3D shower trigger (`JTRIGGER3DSHOWER`).
    pub const SHOWER_3D: u64 = 1 << 1;
    /// MX shower trigger, L0/L1 based (`JTRIGGERMXSHOWER`).
    pub const SHOWER_MX: u64 = 1 << 2;
    /// 3D muon trigger (`JTRIGGER3DMUON`).
    pub const MUON_3D: u64 = 1 << 4;
    /// Nano-beacon trigger (`JTRIGGERNB`).
    pub const NANOBEACON: u64 = 1 << 5;
    /// Hit limit reached while building the trigger (`FACTORY_LIMIT`).
    pub const FACTORY_LIMIT: u64 = 1 << 31;
}

/// One triggered event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Event {
    /// `Some(4)` for versioned frames, `None` for legacy ones; encoding
    /// writes the field only when present.
    pub version: Option<i16>,
    pub header: DaqHeader,
    /// Running event number of the trigger.
    pub trigger_counter: u64,
    /// Event-level trigger bits ([`trigger`]).
    pub trigger_mask: u64,
    /// Number of merged overlapping triggers.
    pub overlays: u32,
    pub triggered_hits: Vec<TriggeredHit>,
    pub snapshot_hits: Vec<SnapshotHit>,
}

/// A hit that satisfied a trigger. It also appears, without the mask, in
/// the snapshot list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TriggeredHit {
    pub dom_id: u32,
    /// PMT channel of the DOM.
    pub channel_id: u8,
    /// Nanoseconds since the start of the timeslice (big-endian on the wire).
    pub time: u32,
    /// Time over threshold in ns.
    pub tot: u8,
    pub trigger_mask: u64,
}

/// A hit of the event's time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SnapshotHit {
    pub dom_id: u32,
    pub channel_id: u8,
    pub time: u32,
    pub tot: u8,
}

impl TriggeredHit {
    /// The same hit as it appears in the snapshot list.
    pub fn snapshot(&self) -> SnapshotHit {
        SnapshotHit {
            dom_id: self.dom_id,
            channel_id: self.channel_id,
            time: self.time,
            tot: self.tot,
        }
    }
}

impl Event {
    /// Version of the versioned layout.
    pub const VERSION: i16 = 4;

    /// Decode one complete event frame (preamble included).
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        EventView::new(bytes).map(|view| view.to_event())
    }

    /// Size of the encoded frame in bytes.
    pub fn encoded_len(&self) -> usize {
        let fixed = 8 + HEADER_LEN + 8 + 8 + 4 + 4 + 4;
        fixed
            + self.version.map_or(0, |_| 2)
            + TRIGGERED_HIT_LEN * self.triggered_hits.len()
            + SNAPSHOT_HIT_LEN * self.snapshot_hits.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Append the frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = begin_frame(out, DataType::Event);
        if let Some(v) = self.version {
            out.extend_from_slice(&v.to_le_bytes());
        }
        self.header.write(out);
        out.extend_from_slice(&self.trigger_counter.to_le_bytes());
        out.extend_from_slice(&self.trigger_mask.to_le_bytes());
        out.extend_from_slice(&self.overlays.to_le_bytes());
        put_count(out, self.triggered_hits.len());
        for h in &self.triggered_hits {
            out.extend_from_slice(&h.dom_id.to_le_bytes());
            out.push(h.channel_id);
            out.extend_from_slice(&h.time.to_be_bytes());
            out.push(h.tot);
            out.extend_from_slice(&h.trigger_mask.to_le_bytes());
        }
        put_count(out, self.snapshot_hits.len());
        for h in &self.snapshot_hits {
            out.extend_from_slice(&h.dom_id.to_le_bytes());
            out.push(h.channel_id);
            out.extend_from_slice(&h.time.to_be_bytes());
            out.push(h.tot);
        }
        finish_frame(out, start);
    }

    pub fn is_3d_shower(&self) -> bool {
        self.trigger_mask & trigger::SHOWER_3D != 0
    }

    pub fn is_mx_shower(&self) -> bool {
        self.trigger_mask & trigger::SHOWER_MX != 0
    }

    pub fn is_3d_muon(&self) -> bool {
        self.trigger_mask & trigger::MUON_3D != 0
    }

    pub fn is_nanobeacon(&self) -> bool {
        self.trigger_mask & trigger::NANOBEACON != 0
    }

    pub fn hit_factory_limit(&self) -> bool {
        self.trigger_mask & trigger::FACTORY_LIMIT != 0
    }
}

/// A validated event frame, borrowed. Construction checks the layout and
/// both hit counts against the frame length, so reading hits afterwards
/// cannot fail.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    bytes: &'a [u8],
    version: Option<i16>,
    header: DaqHeader,
    trigger_counter: u64,
    trigger_mask: u64,
    overlays: u32,
    triggered: TriggeredHitsView<'a>,
    snapshot: SnapshotHitsView<'a>,
}

impl<'a> EventView<'a> {
    /// Validate one complete event frame (preamble included).
    pub fn new(bytes: &'a [u8]) -> Result<EventView<'a>, DecodeError> {
        check_frame(bytes, |t| t == DataType::Event, "event")?;
        let (version, header_at) = layout(bytes)?;
        let mut cur = Cursor::at(bytes, header_at);
        let header = DaqHeader::read(&mut cur)?;
        let trigger_counter = cur.u64_le("trigger counter")?;
        let trigger_mask = cur.u64_le("trigger mask")?;
        let overlays = cur.u32_le("overlays")?;
        let (_, triggered) = cur.records("triggered hits", TRIGGERED_HIT_LEN)?;
        let (_, snapshot) = cur.records("snapshot hits", SNAPSHOT_HIT_LEN)?;
        Ok(EventView {
            bytes,
            version,
            header,
            trigger_counter,
            trigger_mask,
            overlays,
            triggered: TriggeredHitsView { raw: triggered },
            snapshot: SnapshotHitsView { raw: snapshot },
        })
    }

    /// `Some(4)` for versioned frames, `None` for legacy ones.
    pub fn version(&self) -> Option<i16> {
        self.version
    }

    pub fn header(&self) -> &DaqHeader {
        &self.header
    }

    pub fn trigger_counter(&self) -> u64 {
        self.trigger_counter
    }

    pub fn trigger_mask(&self) -> u64 {
        self.trigger_mask
    }

    pub fn overlays(&self) -> u32 {
        self.overlays
    }

    pub fn triggered_hits(&self) -> TriggeredHitsView<'a> {
        self.triggered
    }

    pub fn snapshot_hits(&self) -> SnapshotHitsView<'a> {
        self.snapshot
    }

    /// The frame's bytes, preamble included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The owned form.
    pub fn to_event(&self) -> Event {
        Event {
            version: self.version,
            header: self.header,
            trigger_counter: self.trigger_counter,
            trigger_mask: self.trigger_mask,
            overlays: self.overlays,
            triggered_hits: self.triggered.iter().collect(),
            snapshot_hits: self.snapshot.iter().collect(),
        }
    }
}

/// The triggered-hit records of an event, read in place (18 bytes each).
#[derive(Debug, Clone, Copy)]
pub struct TriggeredHitsView<'a> {
    raw: &'a [u8],
}

impl<'a> TriggeredHitsView<'a> {
    pub fn len(&self) -> usize {
        self.raw.len() / TRIGGERED_HIT_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.raw.len() < TRIGGERED_HIT_LEN
    }

    pub fn get(&self, i: usize) -> Option<TriggeredHit> {
        let start = i.checked_mul(TRIGGERED_HIT_LEN)?;
        let end = start.checked_add(TRIGGERED_HIT_LEN)?;
        self.raw.get(start..end).map(triggered_hit)
    }

    /// Hits in wire order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = TriggeredHit> + DoubleEndedIterator + 'a {
        self.raw.chunks_exact(TRIGGERED_HIT_LEN).map(triggered_hit)
    }

    /// The raw 18-byte records.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

/// The snapshot-hit records of an event, read in place (10 bytes each).
#[derive(Debug, Clone, Copy)]
pub struct SnapshotHitsView<'a> {
    raw: &'a [u8],
}

impl<'a> SnapshotHitsView<'a> {
    pub fn len(&self) -> usize {
        self.raw.len() / SNAPSHOT_HIT_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.raw.len() < SNAPSHOT_HIT_LEN
    }

    pub fn get(&self, i: usize) -> Option<SnapshotHit> {
        let start = i.checked_mul(SNAPSHOT_HIT_LEN)?;
        let end = start.checked_add(SNAPSHOT_HIT_LEN)?;
        self.raw.get(start..end).map(snapshot_hit)
    }

    /// Hits in wire order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = SnapshotHit> + DoubleEndedIterator + 'a {
        self.raw.chunks_exact(SNAPSHOT_HIT_LEN).map(snapshot_hit)
    }

    /// The raw 10-byte records.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

fn triggered_hit(record: &[u8]) -> TriggeredHit {
    let r: [u8; TRIGGERED_HIT_LEN] = fixed(record);
    TriggeredHit {
        dom_id: u32::from_le_bytes(field(&r, 0)),
        channel_id: r[4],
        time: u32::from_be_bytes(field(&r, 5)),
        tot: r[9],
        trigger_mask: u64::from_le_bytes(field(&r, 10)),
    }
}

fn snapshot_hit(record: &[u8]) -> SnapshotHit {
    let r: [u8; SNAPSHOT_HIT_LEN] = fixed(record);
    SnapshotHit {
        dom_id: u32::from_le_bytes(field(&r, 0)),
        channel_id: r[4],
        time: u32::from_be_bytes(field(&r, 5)),
        tot: r[9],
    }
}

/// Versioned or legacy, and where the header starts (spec §2.2, §3.1).
pub(crate) fn layout(bytes: &[u8]) -> Result<(Option<i16>, usize), DecodeError> {
    detect_layout(bytes, Event::VERSION, "event", |header_at| {
        let mut cur = Cursor::at(bytes, header_at);
        cur.take(HEADER_LEN + 8 + 8 + 4, "event header")?;
        cur.records("triggered hits", TRIGGERED_HIT_LEN)?;
        cur.records("snapshot hits", SNAPSHOT_HIT_LEN)?;
        Ok(cur.pos())
    })
}
