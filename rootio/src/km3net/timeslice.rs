//! The two timeslice layouts of the super-frame vector: fully split into
//! one branch per member (ROOT 5 era files) and the member-wise blob of one
//! unsplit branch (2025 files and the bare `KM3NET_TIMESLICE` tree).

use daq::frame::{DaqHeader, FrameStatus};
use daq::timeslice::SuperFrame;

use super::decode::{header, ts_hits, words, Bytes, EntryResult, TS_HIT_LEN};

/// Bit of the vector version that marks member-wise streaming.
const MEMBERWISE_BIT: u16 = 0x4000;
/// Bytes of a streamed `TObject` (version, unique id, bits).
const TOBJECT_LEN: usize = 10;
/// Bytes of a streamed `JDAQUTCExtended` (object header, two words).
const UTC_LEN: usize = 14;

/// The member columns of one entry's super-frames.
pub struct Columns {
    pub ids: Vec<u32>,
    pub daq: Vec<u32>,
    pub status: Vec<u32>,
    pub fifo: Vec<u32>,
    pub status_3: Vec<u32>,
    pub status_4: Vec<u32>,
    pub n_hits: Vec<u32>,
    /// Per-frame DAQ headers, where the layout has them.
    pub headers: Option<Vec<DaqHeader>>,
}

impl Columns {
    fn total_hits(&self) -> EntryResult<usize> {
        self.n_hits.iter().try_fold(0usize, |sum, &n| {
            sum.checked_add(n as usize)
                .ok_or_else(|| "hit counts overflow".to_string())
        })
    }

    /// Build the super-frames, cutting `hits` (6 bytes each, all frames
    /// back to back) by the frames' hit counts.
    pub fn frames(&self, hits: &[u8], slice: &DaqHeader) -> EntryResult<Vec<SuperFrame>> {
        let n = self.ids.len();
        for (what, col) in [
            ("daq", &self.daq),
            ("status", &self.status),
            ("fifo", &self.fifo),
            ("status_3", &self.status_3),
            ("status_4", &self.status_4),
            ("numberOfHits", &self.n_hits),
        ] {
            if col.len() != n {
                return Err(format!("{what}: {} values for {n} frames", col.len()));
            }
        }
        if self.headers.as_ref().is_some_and(|h| h.len() != n) {
            return Err(format!("frame headers do not match {n} frames"));
        }
        let total = self.total_hits()?;
        if hits.len() != total * TS_HIT_LEN {
            return Err(format!(
                "{} hit bytes for {total} hits of {TS_HIT_LEN} bytes",
                hits.len()
            ));
        }
        let mut at = 0;
        let mut frames = Vec::with_capacity(n);
        for k in 0..n {
            let len = self.n_hits[k] as usize * TS_HIT_LEN;
            frames.push(SuperFrame {
                header: self.headers.as_ref().map_or(*slice, |h| h[k]),
                dom_id: self.ids[k],
                status: FrameStatus {
                    daq: self.daq[k],
                    status: self.status[k],
                    fifo: self.fifo[k],
                    status_3: self.status_3[k],
                    status_4: self.status_4[k],
                },
                hits: ts_hits(&hits[at..at + len]),
            });
            at += len;
        }
        Ok(frames)
    }
}

/// The hit buffer of the split layout or the tail of the blob: an object
/// header, then the hits; absent altogether when there are no frames.
pub fn hit_buffer<'a>(
    b: &mut Bytes<'a>,
    total_hits: usize,
    frames: usize,
) -> EntryResult<&'a [u8]> {
    if frames == 0 && b.remaining() == 0 {
        return Ok(&[]);
    }
    b.object_header("hit buffer")?;
    let hits = b.take(
        total_hits
            .checked_mul(TS_HIT_LEN)
            .ok_or("hit count overflows")?,
        "hits",
    )?;
    b.end("hit buffer")?;
    Ok(hits)
}

/// Decode one entry of the member-wise super-frame vector.
pub fn memberwise(entry: &[u8], slice: &DaqHeader) -> EntryResult<Vec<SuperFrame>> {
    let mut b = Bytes::new(entry);
    let count = b.u32("vector header")?;
    if count & 0x4000_0000 == 0 {
        return Err("super-frame vector without byte count".into());
    }
    let version = b.take(2, "vector version")?;
    if u16::from_be_bytes([version[0], version[1]]) & MEMBERWISE_BIT == 0 {
        return Err("object-wise super-frame vector: not supported (no sample has one)".into());
    }
    b.take(2, "super-frame class version")?;
    let n = b.i32("super-frame count")?;
    let n = usize::try_from(n).map_err(|_| format!("negative super-frame count {n}"))?;
    // Each frame takes at least 72 bytes of columns.
    if n > b.remaining() / 72 {
        return Err(format!("{n} super-frames in {} bytes", b.remaining()));
    }
    let _length = words(&mut b, n, "preamble lengths")?;
    let _type = words(&mut b, n, "preamble types")?;
    b.take(n * TOBJECT_LEN, "TObject column")?;
    let det = words(&mut b, n, "detector ids")?;
    let run = words(&mut b, n, "runs")?;
    let fi = words(&mut b, n, "frame indices")?;
    let mut headers = Vec::with_capacity(n);
    for k in 0..n {
        let mut utc = Bytes::new(b.take(UTC_LEN, "timeslice start")?);
        utc.object_header("timeslice start")?;
        let seconds = utc.u32("UTC seconds")?;
        let ticks = utc.u32("UTC 16 ns cycles")?;
        headers.push(header(
            det[k] as i32,
            run[k] as i32,
            fi[k] as i32,
            seconds,
            ticks,
        ));
    }
    let cols = Columns {
        ids: words(&mut b, n, "module ids")?,
        daq: words(&mut b, n, "daq")?,
        status: words(&mut b, n, "status")?,
        fifo: words(&mut b, n, "fifo")?,
        status_3: words(&mut b, n, "status_3")?,
        status_4: words(&mut b, n, "status_4")?,
        n_hits: words(&mut b, n, "hit counts")?,
        headers: Some(headers),
    };
    let hits = hit_buffer(&mut b, cols.total_hits()?, n)?;
    cols.frames(hits, slice)
}

/// One split column entry: `n` words, nothing else.
pub fn column(entry: &[u8], what: &str) -> EntryResult<Vec<u32>> {
    if !entry.len().is_multiple_of(4) {
        return Err(format!(
            "{what}: {} bytes is not a whole number of words",
            entry.len()
        ));
    }
    let mut b = Bytes::new(entry);
    words(&mut b, entry.len() / 4, what)
}
