//! ROOT entry bytes straight to the DAQ wire encoding, without building
//! the `daq` types in between: what replay and publish need (they carry
//! wire bytes), at the cost of a byte swap per word and per hit TDC.
//! Covers the bulk of a run: summaryslices and member-wise timeslices.
//! The output is byte-identical to `daq`'s encoders of the decoded frame
//! (asserted on every sample and on generated files).

use daq::frame::{DaqHeader, DataType};
use daq::summary::Summaryslice;
use daq::timeslice::Timeslice;

use super::decode::{Bytes, EntryResult};

const WR_BIT: u32 = 0x8000_0000;
const MEMBERWISE_BIT: u16 = 0x4000;
const SUMMARY_FRAME: usize = 55;
const HIT: usize = 6;
/// Bytes of a streamed `TObject` and of a streamed `JDAQUTCExtended`.
const TOBJECT_LEN: usize = 10;
const UTC_LEN: usize = 14;

fn le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn word(col: &[u8], k: usize) -> u32 {
    u32::from_be_bytes([col[4 * k], col[4 * k + 1], col[4 * k + 2], col[4 * k + 3]])
}

/// Frame preamble (length patched by [`finish`]) and optional version.
fn begin(out: &mut Vec<u8>, data_type: DataType, version: i16) -> usize {
    let start = out.len();
    le(out, 0);
    out.extend_from_slice(&data_type.as_i32().to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    start
}

fn finish(out: &mut [u8], start: usize) -> EntryResult<()> {
    let len = u32::try_from(out.len() - start)
        .ok()
        .filter(|&l| l <= i32::MAX as u32)
        .ok_or("frame larger than 2 GiB")?;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

fn header(out: &mut Vec<u8>, h: &DaqHeader) {
    let seconds = (h.utc_seconds & !WR_BIT) | if h.wr_status_msb { WR_BIT } else { 0 };
    for w in [
        h.det_id as u32,
        h.run as u32,
        h.frame_index as u32,
        seconds,
        h.utc_16ns_ticks,
    ] {
        le(out, w);
    }
}

/// A summaryslice: `header` and the frame vector entry.
pub fn summaryslice(h: &DaqHeader, entry: &[u8], out: &mut Vec<u8>) -> EntryResult<()> {
    let mut b = Bytes::new(entry);
    let n = b.vector("summary frames", SUMMARY_FRAME)?;
    let raw = b.take(n * SUMMARY_FRAME, "summary frames")?;
    b.end("summary frames")?;
    out.reserve(8 + 2 + 20 + 4 + n * SUMMARY_FRAME);
    let start = begin(out, DataType::Summaryslice, Summaryslice::VERSION);
    header(out, h);
    le(out, n as u32);
    for f in raw.chunks_exact(SUMMARY_FRAME) {
        for k in 0..6 {
            le(out, word(f, k));
        }
        out.extend_from_slice(&f[24..]);
    }
    finish(out, start)
}

/// A timeslice whose super-frame vector is one member-wise blob.
pub fn memberwise(
    data_type: DataType,
    h: &DaqHeader,
    entry: &[u8],
    out: &mut Vec<u8>,
) -> EntryResult<()> {
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
    b.take(8 * n, "preamble columns")?;
    b.take(TOBJECT_LEN * n, "TObject column")?;
    let det = b.take(4 * n, "detector ids")?;
    let run = b.take(4 * n, "runs")?;
    let fi = b.take(4 * n, "frame indices")?;
    let utc = b.take(UTC_LEN * n, "timeslice starts")?;
    let mut cols = [&[][..]; 7];
    for (col, what) in cols.iter_mut().zip([
        "module ids",
        "daq",
        "status",
        "fifo",
        "status_3",
        "status_4",
        "hit counts",
    ]) {
        *col = b.take(4 * n, what)?;
    }
    let total = (0..n).try_fold(0usize, |sum, k| {
        sum.checked_add(word(cols[6], k) as usize)
            .ok_or_else(|| "hit counts overflow".to_string())
    })?;
    let hits = if n == 0 && b.remaining() == 0 {
        &[][..]
    } else {
        b.object_header("hit buffer")?;
        b.take(total.checked_mul(HIT).ok_or("hit count overflows")?, "hits")?
    };
    b.end("hit buffer")?;
    for k in 0..n {
        // Each start time is an object: byte count with its marker bit.
        let u = &utc[UTC_LEN * k..UTC_LEN * (k + 1)];
        if word(u, 0) & 0x4000_0000 == 0 {
            return Err(format!("timeslice start of frame {k}: no object header"));
        }
    }
    out.reserve(8 + 2 + 20 + 4 + n * 60 + hits.len());
    let start = begin(out, data_type, Timeslice::VERSION);
    header(out, h);
    le(out, n as u32);
    let mut at = 0;
    for k in 0..n {
        let frame = out.len();
        le(out, 0);
        out.extend_from_slice(&DataType::SuperFrame.as_i32().to_le_bytes());
        let u = &utc[UTC_LEN * k + 6..UTC_LEN * (k + 1)];
        for w in [
            word(det, k),
            word(run, k),
            word(fi, k),
            word(u, 0),
            word(u, 1),
        ] {
            le(out, w);
        }
        for col in &cols {
            le(out, word(col, k));
        }
        let len = word(cols[6], k) as usize * HIT;
        let from = &hits[at..at + len];
        at += len;
        let base = out.len();
        out.extend_from_slice(from);
        for hit in out[base..].chunks_exact_mut(HIT) {
            // PMT, TDC little-endian on disk → big-endian on the wire, ToT.
            hit[1..5].reverse();
        }
        finish(out, frame)?;
    }
    finish(out, start)
}
