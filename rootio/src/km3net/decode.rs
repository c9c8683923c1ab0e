//! The per-entry byte layouts of the KM3NeT trees (spec `root-files.md`
//! §1), decoded into the `daq` types. Everything is big-endian except the
//! hit TDC, which Jpp keeps in network order in memory and ROOT then swaps:
//! little-endian on disk. ROOT's object and vector headers are checked (the
//! byte-count bit must be set), which catches most corrupt entries early.

use daq::event::{SnapshotHit, TriggeredHit};
use daq::frame::{DaqHeader, FrameStatus};
use daq::summary::{SummaryFrame, N_RATES};
use daq::timeslice::Hit;

/// A problem inside one entry; the caller adds tree and entry number.
pub type EntryResult<T> = Result<T, String>;

const BYTECOUNT_BIT: u32 = 0x4000_0000;
const WR_BIT: u32 = 0x8000_0000;
const SNAPSHOT_HIT: usize = 10;
const TRIGGERED_HIT: usize = 24;
const SUMMARY_FRAME: usize = 4 + 5 * 4 + N_RATES;
const TS_HIT: usize = 6;

/// A bounds-checked reader over one entry.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { data, pos: 0 }
    }

    pub fn take(&mut self, n: usize, what: &str) -> EntryResult<&'a [u8]> {
        let rest = self.data.len() - self.pos;
        if n > rest {
            return Err(format!(
                "{what} at byte {}: {n} bytes needed, {rest} left",
                self.pos
            ));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u32(&mut self, what: &str) -> EntryResult<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i32(&mut self, what: &str) -> EntryResult<i32> {
        self.u32(what).map(|v| v as i32)
    }

    pub fn u64(&mut self, what: &str) -> EntryResult<u64> {
        Ok(u64::from(self.u32(what)?) << 32 | u64::from(self.u32(what)?))
    }

    /// An object header: byte count with its marker bit, then a version.
    pub fn object_header(&mut self, what: &str) -> EntryResult<u16> {
        let at = self.pos;
        let count = self.u32(what)?;
        let b = self.take(2, what)?;
        if count & BYTECOUNT_BIT == 0 {
            return Err(format!("{what} at byte {at}: no object header"));
        }
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector header; returns the element count, refused if the rest of
    /// the entry cannot hold that many elements of `size` bytes.
    pub fn vector(&mut self, what: &str, size: usize) -> EntryResult<usize> {
        self.object_header(what)?;
        let n = self.i32(what)?;
        let n = usize::try_from(n).map_err(|_| format!("{what}: negative count {n}"))?;
        if n > self.remaining() / size.max(1) {
            return Err(format!(
                "{what}: {n} elements of {size} bytes in {} bytes",
                self.remaining()
            ));
        }
        Ok(n)
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// The whole entry must have been used: a layout that leaves bytes
    /// over is the wrong layout.
    pub fn end(&self, what: &str) -> EntryResult<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(format!("{what}: {n} bytes left over")),
        }
    }
}

/// `JDAQChronometer` fields after their object headers: ids, then the
/// 6-byte header and two words of `JDAQUTCExtended`.
fn chronometer(b: &mut Bytes<'_>) -> EntryResult<DaqHeader> {
    let det_id = b.i32("detector id")?;
    let run = b.i32("run")?;
    let frame_index = b.i32("frame index")?;
    b.object_header("timeslice start")?;
    let seconds = b.u32("UTC seconds")?;
    let ticks = b.u32("UTC 16 ns cycles")?;
    Ok(header(det_id, run, frame_index, seconds, ticks))
}

pub fn header(det_id: i32, run: i32, frame_index: i32, seconds: u32, ticks: u32) -> DaqHeader {
    DaqHeader {
        det_id,
        run,
        frame_index,
        utc_seconds: seconds & !WR_BIT,
        wr_status_msb: seconds & WR_BIT != 0,
        utc_16ns_ticks: ticks,
    }
}

/// The 44-byte summaryslice / timeslice header object.
pub fn slice_header(entry: &[u8]) -> EntryResult<DaqHeader> {
    let mut b = Bytes::new(entry);
    for what in ["slice header", "DAQ header", "chronometer"] {
        b.object_header(what)?;
    }
    let h = chronometer(&mut b)?;
    b.end("slice header")?;
    Ok(h)
}

/// The event header: the DAQ header, trigger counter, mask and overlays.
pub struct EventHeader {
    pub header: DaqHeader,
    pub trigger_counter: u64,
    pub trigger_mask: u64,
    pub overlays: u32,
}

pub fn event_header(entry: &[u8]) -> EntryResult<EventHeader> {
    let mut b = Bytes::new(entry);
    for what in ["event header", "DAQ header", "chronometer"] {
        b.object_header(what)?;
    }
    let header = chronometer(&mut b)?;
    b.object_header("trigger counter")?;
    let trigger_counter = b.u64("trigger counter")?;
    b.object_header("trigger mask")?;
    let trigger_mask = b.u64("trigger mask")?;
    let overlays = b.u32("overlays")?;
    b.end("event header")?;
    Ok(EventHeader {
        header,
        trigger_counter,
        trigger_mask,
        overlays,
    })
}

/// DOM id (BE), PMT, TDC (LE), ToT: the 10 bytes every event hit starts with.
fn hit10(r: &[u8]) -> (u32, u8, u32, u8) {
    (
        u32::from_be_bytes([r[0], r[1], r[2], r[3]]),
        r[4],
        u32::from_le_bytes([r[5], r[6], r[7], r[8]]),
        r[9],
    )
}

pub fn snapshot_hits(entry: &[u8]) -> EntryResult<Vec<SnapshotHit>> {
    let mut b = Bytes::new(entry);
    let n = b.vector("snapshot hits", SNAPSHOT_HIT)?;
    let raw = b.take(n * SNAPSHOT_HIT, "snapshot hits")?;
    b.end("snapshot hits")?;
    Ok(raw
        .chunks_exact(SNAPSHOT_HIT)
        .map(|r| {
            let (dom_id, channel_id, time, tot) = hit10(r);
            SnapshotHit {
                dom_id,
                channel_id,
                time,
                tot,
            }
        })
        .collect())
}

pub fn triggered_hits(entry: &[u8]) -> EntryResult<Vec<TriggeredHit>> {
    let mut b = Bytes::new(entry);
    let n = b.vector("triggered hits", TRIGGERED_HIT)?;
    let mut hits = Vec::with_capacity(n);
    for _ in 0..n {
        let (dom_id, channel_id, time, tot) = hit10(b.take(SNAPSHOT_HIT, "triggered hit")?);
        b.object_header("trigger mask")?;
        let trigger_mask = b.u64("trigger mask")?;
        hits.push(TriggeredHit {
            dom_id,
            channel_id,
            time,
            tot,
            trigger_mask,
        });
    }
    b.end("triggered hits")?;
    Ok(hits)
}

pub fn summary_frames(entry: &[u8]) -> EntryResult<Vec<SummaryFrame>> {
    let mut b = Bytes::new(entry);
    let n = b.vector("summary frames", SUMMARY_FRAME)?;
    let raw = b.take(n * SUMMARY_FRAME, "summary frames")?;
    b.end("summary frames")?;
    Ok(raw
        .chunks_exact(SUMMARY_FRAME)
        .map(|r| {
            let w =
                |k: usize| u32::from_be_bytes([r[4 * k], r[4 * k + 1], r[4 * k + 2], r[4 * k + 3]]);
            let mut rates = [0u8; N_RATES];
            rates.copy_from_slice(&r[24..]);
            SummaryFrame {
                dom_id: w(0),
                status: FrameStatus {
                    daq: w(1),
                    status: w(2),
                    fifo: w(3),
                    status_3: w(4),
                    status_4: w(5),
                },
                rates,
            }
        })
        .collect())
}

/// Timeslice hits: PMT, TDC (LE), ToT.
pub fn ts_hits(raw: &[u8]) -> Vec<Hit> {
    raw.chunks_exact(TS_HIT)
        .map(|r| Hit {
            channel_id: r[0],
            time: u32::from_le_bytes([r[1], r[2], r[3], r[4]]),
            tot: r[5],
        })
        .collect()
}

pub const TS_HIT_LEN: usize = TS_HIT;

/// `n` big-endian words (one column of a split or member-wise layout).
pub fn words(b: &mut Bytes<'_>, n: usize, what: &str) -> EntryResult<Vec<u32>> {
    let raw = b.take(n * 4, what)?;
    Ok(raw
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .collect())
}
