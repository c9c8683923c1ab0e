//! Timeslices (`IO_TSL0`, `IO_TSL1`, `IO_TSL2`, `IO_TSSN`, spec §5): all
//! hits a DOM sent in one 100 ms timeslice, one super-frame per DOM.
//!
//! [`TimesliceView`] reads a frame in place (the hot path for L0 data);
//! [`Timeslice`] is the owned form, built on the view, for consumers that
//! keep or ship the data, and for encoding.

mod view;

pub use view::{HitsView, SuperFrameView, SuperFrames, TimesliceView};

use crate::frame::{
    begin_frame, finish_frame, put_count, DaqHeader, DataType, FrameStatus, HEADER_LEN,
};
use crate::DecodeError;

/// Bytes of one hit record.
pub const HIT_LEN: usize = 6;
/// Bytes of a super-frame before its hits: preamble, header, DOM id, five
/// status words, hit count.
pub const SUPER_FRAME_HEADER_LEN: usize = 8 + HEADER_LEN + 4 + 5 * 4 + 4;

/// One timeslice, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timeslice {
    /// `Some(1)` for versioned frames, `None` for legacy ones.
    pub version: Option<i16>,
    /// 1001–1005; says nothing reliable about the level (legacy data uses
    /// 1001 for all), use the ControlHost tag for that.
    pub data_type: DataType,
    pub header: DaqHeader,
    pub frames: Vec<SuperFrame>,
}

/// One DOM's hits of the timeslice.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SuperFrame {
    /// The super-frame's own header (equal to the timeslice's in all
    /// samples, but carried separately on the wire).
    pub header: DaqHeader,
    pub dom_id: u32,
    /// Bit 31 of `status.status` is the time-sync flag (§5.4).
    pub status: FrameStatus,
    pub hits: Vec<Hit>,
}

/// A timeslice hit; the DOM is the super-frame's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Hit {
    pub channel_id: u8,
    /// Nanoseconds since the start of the timeslice (big-endian on the wire).
    pub time: u32,
    /// Time over threshold in ns.
    pub tot: u8,
}

impl From<SuperFrameView<'_>> for SuperFrame {
    fn from(view: SuperFrameView<'_>) -> SuperFrame {
        SuperFrame {
            header: *view.header(),
            dom_id: view.dom_id(),
            status: *view.status(),
            hits: view.hits().iter().collect(),
        }
    }
}

impl Timeslice {
    /// Version of the versioned layout.
    pub const VERSION: i16 = 1;

    /// Decode one complete timeslice frame (preamble included).
    pub fn decode(bytes: &[u8]) -> Result<Timeslice, DecodeError> {
        TimesliceView::new(bytes).map(|view| view.to_timeslice())
    }

    /// Size of the encoded frame in bytes.
    pub fn encoded_len(&self) -> usize {
        let frames: usize = self.frames.iter().map(SuperFrame::encoded_len).sum();
        8 + self.version.map_or(0, |_| 2) + HEADER_LEN + 4 + frames
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Append the frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = begin_frame(out, self.data_type);
        if let Some(v) = self.version {
            out.extend_from_slice(&v.to_le_bytes());
        }
        self.header.write(out);
        put_count(out, self.frames.len());
        for frame in &self.frames {
            frame.encode_into(out);
        }
        finish_frame(out, start);
    }

    /// Hits of all super-frames together.
    pub fn n_hits(&self) -> usize {
        self.frames.iter().map(|f| f.hits.len()).sum()
    }
}

impl SuperFrame {
    pub fn encoded_len(&self) -> usize {
        SUPER_FRAME_HEADER_LEN + HIT_LEN * self.hits.len()
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        let start = begin_frame(out, DataType::SuperFrame);
        self.header.write(out);
        out.extend_from_slice(&self.dom_id.to_le_bytes());
        let s = &self.status;
        for word in [s.daq, s.status, s.fifo, s.status_3, s.status_4] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        put_count(out, self.hits.len());
        for h in &self.hits {
            out.push(h.channel_id);
            out.extend_from_slice(&h.time.to_be_bytes());
            out.push(h.tot);
        }
        finish_frame(out, start);
    }
}

pub(crate) use view::layout;
