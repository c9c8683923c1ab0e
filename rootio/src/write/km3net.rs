//! KM3NeT entries in the layout of the 2025 online files (ROOT 6, spec
//! `root-files.md` §1): `KM3NET_SUMMARYSLICE` with its 44-byte header
//! object and the 55-byte summary frames, and the timeslice trees with
//! split header leaves and the member-wise super-frame blob.

use daq::frame::DaqHeader;
use daq::summary::Summaryslice;
use daq::timeslice::Timeslice;

use super::{BranchW, RootWriter};
use crate::km3net::Stream;

const BYTECOUNT_BIT: u32 = 0x4000_0000;
const WR_BIT: u32 = 0x8000_0000;
const MEMBERWISE_BIT: u16 = 0x4000;
const SF: &str = "vector<KM3NETDAQ::JDAQSuperFrame>";
const CHRONOMETER: &str = "KM3NETDAQ::JDAQChronometer";
const TIMESLICE: &str = "KM3NETDAQ::JDAQTimeslice";
const SUMMARYSLICE: &str = "KM3NETDAQ::JDAQSummaryslice";
/// `DataType` code of a super-frame, in the preamble column.
const SUPER_FRAME_TYPE: u32 = 101;

fn obj_header(out: &mut Vec<u8>, count: usize, version: u16) {
    out.extend_from_slice(&(count as u32 | BYTECOUNT_BIT).to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
}

fn be(out: &mut Vec<u8>, words: impl IntoIterator<Item = u32>) {
    for w in words {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

fn seconds(h: &DaqHeader) -> u32 {
    h.utc_seconds | if h.wr_status_msb { WR_BIT } else { 0 }
}

/// `JDAQUTCExtended`: object header and two words (14 bytes).
fn utc(out: &mut Vec<u8>, h: &DaqHeader) {
    obj_header(out, 10, 1);
    be(out, [seconds(h), h.utc_16ns_ticks]);
}

/// The 44-byte summaryslice / timeslice header object.
fn slice_header(out: &mut Vec<u8>, h: &DaqHeader) {
    obj_header(out, 40, 2);
    obj_header(out, 34, 2);
    obj_header(out, 28, 3);
    be(out, [h.det_id as u32, h.run as u32, h.frame_index as u32]);
    utc(out, h);
}

impl RootWriter {
    /// Append a summaryslice to `KM3NET_SUMMARYSLICE`.
    pub fn summaryslice(&mut self, s: &Summaryslice) -> std::io::Result<()> {
        let t = self.tree(Stream::Summaryslice.tree(), SUMMARYSLICE, || {
            vec![
                BranchW::new("KM3NETDAQ::JDAQSummarysliceHeader", SUMMARYSLICE, None),
                BranchW::new("vector<KM3NETDAQ::JDAQSummaryFrame>", SUMMARYSLICE, None),
            ]
        });
        let mut head = Vec::with_capacity(44);
        slice_header(&mut head, &s.header);
        let n = s.frames.len();
        let mut frames = Vec::with_capacity(10 + 55 * n);
        obj_header(&mut frames, 2 + 4 + 55 * n, 9);
        be(&mut frames, [n as u32]);
        for f in &s.frames {
            let st = &f.status;
            be(
                &mut frames,
                [
                    f.dom_id,
                    st.daq,
                    st.status,
                    st.fifo,
                    st.status_3,
                    st.status_4,
                ],
            );
            frames.extend_from_slice(&f.rates);
        }
        self.fill(t, &[&head, &frames])
    }

    /// Append a timeslice to the tree of `stream` (a timeslice stream).
    pub fn timeslice(&mut self, stream: Stream, ts: &Timeslice) -> std::io::Result<()> {
        let t = self.tree(stream.tree(), TIMESLICE, || {
            vec![
                BranchW::new("detector_id", CHRONOMETER, Some(4)),
                BranchW::new("run", CHRONOMETER, Some(4)),
                BranchW::new("frame_index", CHRONOMETER, Some(4)),
                BranchW::new("timeslice_start", CHRONOMETER, None),
                BranchW::new(SF, TIMESLICE, None),
            ]
        });
        let h = &ts.header;
        let mut start = Vec::with_capacity(14);
        utc(&mut start, h);
        let blob = memberwise(ts);
        self.fill(
            t,
            &[
                &(h.det_id as u32).to_be_bytes(),
                &(h.run as u32).to_be_bytes(),
                &(h.frame_index as u32).to_be_bytes(),
                &start,
                &blob,
            ],
        )
    }
}

/// The super-frames as one member-wise vector: column by column, then
/// the hits of all frames (TDC little-endian).
fn memberwise(ts: &Timeslice) -> Vec<u8> {
    let f = &ts.frames;
    let n_hits: usize = f.iter().map(|x| x.hits.len()).sum();
    let mut out = Vec::with_capacity(16 + 86 * f.len() + 6 + 6 * n_hits);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(9 | MEMBERWISE_BIT).to_be_bytes());
    out.extend_from_slice(&3u16.to_be_bytes());
    be(&mut out, [f.len() as u32]);
    be(&mut out, f.iter().map(|x| x.encoded_len() as u32));
    be(&mut out, f.iter().map(|_| SUPER_FRAME_TYPE));
    for _ in f {
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0x03, 0, 0, 0]);
    }
    be(&mut out, f.iter().map(|x| x.header.det_id as u32));
    be(&mut out, f.iter().map(|x| x.header.run as u32));
    be(&mut out, f.iter().map(|x| x.header.frame_index as u32));
    for x in f {
        utc(&mut out, &x.header);
    }
    be(&mut out, f.iter().map(|x| x.dom_id));
    be(&mut out, f.iter().map(|x| x.status.daq));
    be(&mut out, f.iter().map(|x| x.status.status));
    be(&mut out, f.iter().map(|x| x.status.fifo));
    be(&mut out, f.iter().map(|x| x.status.status_3));
    be(&mut out, f.iter().map(|x| x.status.status_4));
    be(&mut out, f.iter().map(|x| x.hits.len() as u32));
    if !f.is_empty() {
        obj_header(&mut out, 2 + 6 * n_hits, 1);
        for x in f {
            for h in &x.hits {
                out.push(h.channel_id);
                out.extend_from_slice(&h.time.to_le_bytes());
                out.push(h.tot);
            }
        }
    }
    let count = (out.len() - 4) as u32 | BYTECOUNT_BIT;
    out[..4].copy_from_slice(&count.to_be_bytes());
    out
}
