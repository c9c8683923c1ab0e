//! Zero-copy access to a timeslice. An L0 timeslice carries every hit of
//! the detector for 100 ms; most consumers only count hits per DOM or per
//! channel, so the frame is validated once and then read in place.

use crate::frame::{
    check_frame, detect_layout, field, fixed, Cursor, DaqHeader, DataType, FrameStatus, Preamble,
    HEADER_LEN,
};
use crate::DecodeError;

use super::{Hit, HIT_LEN, SUPER_FRAME_HEADER_LEN};

/// A validated timeslice frame, borrowed. Construction checks every length
/// and count, so iteration cannot fail afterwards.
#[derive(Debug, Clone, Copy)]
pub struct TimesliceView<'a> {
    bytes: &'a [u8],
    version: Option<i16>,
    data_type: DataType,
    header: DaqHeader,
    n_frames: usize,
    frames_at: usize,
}

impl<'a> TimesliceView<'a> {
    /// Validate one complete timeslice frame (preamble included).
    pub fn new(bytes: &'a [u8]) -> Result<TimesliceView<'a>, DecodeError> {
        let preamble = check_frame(bytes, DataType::is_timeslice, "timeslice")?;
        let (version, header_at) = layout(bytes)?;
        let mut cur = Cursor::at(bytes, header_at);
        let header = DaqHeader::read(&mut cur)?;
        let n_frames = usize::try_from(cur.i32_le("super-frame count")?).unwrap_or(0);
        Ok(TimesliceView {
            bytes,
            version,
            data_type: preamble.data_type,
            header,
            n_frames,
            frames_at: cur.pos(),
        })
    }

    /// `Some(1)` for versioned frames, `None` for legacy ones.
    pub fn version(&self) -> Option<i16> {
        self.version
    }

    pub fn data_type(&self) -> DataType {
        self.data_type
    }

    pub fn header(&self) -> &DaqHeader {
        &self.header
    }

    /// Number of super-frames (DOMs that sent data).
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }

    /// The frame's bytes, preamble included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The super-frames in wire order.
    pub fn frames(&self) -> SuperFrames<'a> {
        SuperFrames {
            bytes: self.bytes,
            pos: self.frames_at,
            left: self.n_frames,
        }
    }

    /// Hits of all super-frames together.
    pub fn n_hits(&self) -> usize {
        self.frames().map(|f| f.hits().len()).sum()
    }

    /// The owned form.
    pub fn to_timeslice(&self) -> super::Timeslice {
        super::Timeslice {
            version: self.version,
            data_type: self.data_type,
            header: self.header,
            frames: self.frames().map(super::SuperFrame::from).collect(),
        }
    }
}

/// Iterator over the super-frames of a [`TimesliceView`].
#[derive(Debug, Clone)]
pub struct SuperFrames<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Iterator for SuperFrames<'a> {
    type Item = SuperFrameView<'a>;

    fn next(&mut self) -> Option<SuperFrameView<'a>> {
        if self.left == 0 {
            return None;
        }
        // Validated by TimesliceView::new; an error here cannot happen and
        // simply ends the iteration.
        let frame = super_frame_at(self.bytes, self.pos).ok()?;
        self.pos += frame.length;
        self.left -= 1;
        Some(frame)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for SuperFrames<'_> {}

/// One DOM's data of a timeslice, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SuperFrameView<'a> {
    offset: usize,
    length: usize,
    header: DaqHeader,
    dom_id: u32,
    status: FrameStatus,
    hits: HitsView<'a>,
}

impl<'a> SuperFrameView<'a> {
    /// Position of the super-frame's first byte in the timeslice frame.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The super-frame's preamble length (56 + 6 per hit).
    pub fn length(&self) -> usize {
        self.length
    }

    pub fn header(&self) -> &DaqHeader {
        &self.header
    }

    pub fn dom_id(&self) -> u32 {
        self.dom_id
    }

    pub fn status(&self) -> &FrameStatus {
        &self.status
    }

    pub fn hits(&self) -> HitsView<'a> {
        self.hits
    }
}

/// The hit records of one super-frame, read in place (6 bytes each).
#[derive(Debug, Clone, Copy)]
pub struct HitsView<'a> {
    raw: &'a [u8],
}

impl<'a> HitsView<'a> {
    pub fn len(&self) -> usize {
        self.raw.len() / HIT_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.raw.len() < HIT_LEN
    }

    pub fn get(&self, i: usize) -> Option<Hit> {
        let start = i.checked_mul(HIT_LEN)?;
        self.raw.get(start..start.checked_add(HIT_LEN)?).map(hit)
    }

    /// Hits in wire order (not sorted by time).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Hit> + DoubleEndedIterator + 'a {
        self.raw.chunks_exact(HIT_LEN).map(hit)
    }

    /// The raw 6-byte records.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
}

fn hit(record: &[u8]) -> Hit {
    let r: [u8; HIT_LEN] = fixed(record);
    Hit {
        channel_id: r[0],
        time: u32::from_be_bytes(field(&r, 1)),
        tot: r[5],
    }
}

/// Parse and check the super-frame starting at `pos` of the timeslice
/// `bytes`; error offsets are positions in `bytes`.
fn super_frame_at(bytes: &[u8], pos: usize) -> Result<SuperFrameView<'_>, DecodeError> {
    let preamble = Preamble::read(&mut Cursor::at(bytes, pos))?;
    if preamble.data_type != DataType::SuperFrame {
        return Err(DecodeError::UnknownDataType {
            offset: pos + 4,
            data_type: preamble.data_type.as_i32(),
            expected: "a super-frame (101)",
        });
    }
    let length = preamble.length as usize;
    if length < SUPER_FRAME_HEADER_LEN {
        return Err(DecodeError::BadLength {
            what: "super-frame",
            offset: pos,
            length: i64::from(preamble.length),
        });
    }
    let available = bytes.len().saturating_sub(pos);
    let end = match pos.checked_add(length) {
        Some(end) if end <= bytes.len() => end,
        _ => {
            return Err(DecodeError::Truncated {
                what: "super-frame",
                offset: pos,
                needed: length,
                available,
            })
        }
    };
    // The cursor stops at the super-frame's end, so a hit count that runs
    // past it is caught as too many hits rather than read from the next DOM.
    let mut cur = Cursor::at(bytes.get(..end).unwrap_or_default(), pos + 8);
    let header = DaqHeader::read(&mut cur)?;
    let dom_id = cur.u32_le("DOM id")?;
    let status = FrameStatus {
        daq: cur.u32_le("status words")?,
        status: cur.u32_le("status words")?,
        fifo: cur.u32_le("status words")?,
        status_3: cur.u32_le("status words")?,
        status_4: cur.u32_le("status words")?,
    };
    let (_, raw) = cur.records("super-frame hits", HIT_LEN)?;
    if cur.pos() != end {
        return Err(DecodeError::LengthMismatch {
            what: "super-frame",
            offset: pos,
            declared: length,
            actual: cur.pos() - pos,
        });
    }
    Ok(SuperFrameView {
        offset: pos,
        length,
        header,
        dom_id,
        status,
        hits: HitsView { raw },
    })
}

/// Versioned or legacy, and where the header starts. The size check walks
/// the super-frames, which validates every one of them.
pub(crate) fn layout(bytes: &[u8]) -> Result<(Option<i16>, usize), DecodeError> {
    detect_layout(bytes, super::Timeslice::VERSION, "timeslice", |header_at| {
        let mut cur = Cursor::at(bytes, header_at);
        cur.take(HEADER_LEN, "DAQ header")?;
        let count_at = cur.pos();
        let count = cur.i32_le("super-frame count")?;
        let count = usize::try_from(count).map_err(|_| DecodeError::NegativeCount {
            what: "super-frame",
            offset: count_at,
            count,
        })?;
        let available = cur.remaining();
        if count.saturating_mul(SUPER_FRAME_HEADER_LEN) > available {
            return Err(DecodeError::TooManyItems {
                what: "super-frame",
                offset: count_at,
                count: count as u64,
                item_size: SUPER_FRAME_HEADER_LEN,
                available,
            });
        }
        let mut pos = cur.pos();
        for _ in 0..count {
            pos += super_frame_at(bytes, pos)?.length;
        }
        Ok(pos)
    })
}
