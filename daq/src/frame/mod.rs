//! What every DAQ frame shares (spec §2): the 8-byte preamble, the optional
//! version field, the 20-byte DAQ header and the DOM status words; plus the
//! entry points that decode any frame by its data type.

mod cursor;
mod status;

pub(crate) use cursor::{field, fixed, Cursor};
pub use status::{Channels, FrameStatus, CHANNEL_BITS};

use crate::event::Event;
use crate::summary::Summaryslice;
use crate::timeslice::Timeslice;
use crate::DecodeError;

/// Bytes of the preamble (`length`, `data_type`).
pub const PREAMBLE_LEN: usize = 8;
/// Bytes of the DAQ header (chronometer).
pub const HEADER_LEN: usize = 20;
/// Bytes of the version field of versioned top-level frames.
pub const VERSION_LEN: usize = 2;

/// Bit 31 of the raw seconds word: a White Rabbit flag, not time (§2.4).
const WR_BIT: u32 = 0x8000_0000;

/// The preamble's object type (spec §2.1). Unknown values are kept so that
/// a caller can report them; no decoder accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DataType {
    /// 101: one DOM's part of a timeslice.
    SuperFrame,
    /// 201: summary frame (never seen as a frame of its own).
    SummaryFrame,
    /// 1001: timeslice of unspecified level; legacy data uses it for all levels.
    Timeslice,
    /// 1002
    TimesliceL0,
    /// 1003
    TimesliceL1,
    /// 1004
    TimesliceL2,
    /// 1005: supernova stream.
    TimesliceSn,
    /// 2001
    Summaryslice,
    /// 10001
    Event,
    Unknown(i32),
}

impl DataType {
    pub fn from_i32(value: i32) -> DataType {
        match value {
            101 => DataType::SuperFrame,
            201 => DataType::SummaryFrame,
            1001 => DataType::Timeslice,
            1002 => DataType::TimesliceL0,
            1003 => DataType::TimesliceL1,
            1004 => DataType::TimesliceL2,
            1005 => DataType::TimesliceSn,
            2001 => DataType::Summaryslice,
            10001 => DataType::Event,
            other => DataType::Unknown(other),
        }
    }

    pub fn as_i32(self) -> i32 {
        match self {
            DataType::SuperFrame => 101,
            DataType::SummaryFrame => 201,
            DataType::Timeslice => 1001,
            DataType::TimesliceL0 => 1002,
            DataType::TimesliceL1 => 1003,
            DataType::TimesliceL2 => 1004,
            DataType::TimesliceSn => 1005,
            DataType::Summaryslice => 2001,
            DataType::Event => 10001,
            DataType::Unknown(value) => value,
        }
    }

    /// Any of the timeslice types 1001–1005. Which level a timeslice has is
    /// told by the ControlHost tag, not by this type (legacy data uses 1001
    /// for every level).
    pub fn is_timeslice(self) -> bool {
        matches!(
            self,
            DataType::Timeslice
                | DataType::TimesliceL0
                | DataType::TimesliceL1
                | DataType::TimesliceL2
                | DataType::TimesliceSn
        )
    }

    /// The types that travel as a whole ControlHost payload: events,
    /// summaryslices and timeslices.
    pub fn is_top_level(self) -> bool {
        matches!(self, DataType::Event | DataType::Summaryslice) || self.is_timeslice()
    }

    /// The ControlHost tag that carries this type, where it is unambiguous.
    pub fn tag_name(self) -> Option<&'static str> {
        match self {
            DataType::Event => Some("IO_EVT"),
            DataType::Summaryslice => Some("IO_SUM"),
            DataType::TimesliceL0 => Some("IO_TSL0"),
            DataType::TimesliceL1 => Some("IO_TSL1"),
            DataType::TimesliceL2 => Some("IO_TSL2"),
            DataType::TimesliceSn => Some("IO_TSSN"),
            _ => None,
        }
    }
}

/// The first 8 bytes of every DAQ frame and super-frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Preamble {
    /// Size of the whole frame, these 8 bytes included.
    pub length: u32,
    pub data_type: DataType,
}

impl Preamble {
    /// Decode the preamble at the start of `bytes`. A length below 8 cannot
    /// describe any frame and is refused here, so callers can subtract 8.
    pub fn decode(bytes: &[u8]) -> Result<Preamble, DecodeError> {
        Preamble::read(&mut Cursor::new(bytes))
    }

    pub(crate) fn read(cur: &mut Cursor<'_>) -> Result<Preamble, DecodeError> {
        let offset = cur.pos();
        let length = cur.i32_le("preamble")?;
        let data_type = DataType::from_i32(cur.i32_le("preamble")?);
        match u32::try_from(length) {
            Ok(length) if length as usize >= PREAMBLE_LEN => Ok(Preamble { length, data_type }),
            _ => Err(DecodeError::BadLength {
                what: "preamble",
                offset,
                length: i64::from(length),
            }),
        }
    }

    pub fn encode(&self) -> [u8; PREAMBLE_LEN] {
        let mut out = [0u8; PREAMBLE_LEN];
        out[..4].copy_from_slice(&self.length.to_le_bytes());
        out[4..].copy_from_slice(&self.data_type.as_i32().to_le_bytes());
        out
    }
}

/// `JDAQHeader` (spec §2.3): which detector, run and 100 ms timeslice a
/// frame belongs to, and when that timeslice started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DaqHeader {
    pub det_id: i32,
    pub run: i32,
    /// Timeslice counter within the run.
    pub frame_index: i32,
    /// Seconds since 1970-01-01 UTC, bit 31 removed (31 bits).
    pub utc_seconds: u32,
    /// Bit 31 of the raw seconds word, kept apart because its polarity is
    /// unclear between sources (§2.4).
    pub wr_status_msb: bool,
    /// Sub-second part in 16 ns units.
    pub utc_16ns_ticks: u32,
}

impl DaqHeader {
    /// Sub-second part in nanoseconds.
    pub fn utc_nanoseconds(&self) -> u64 {
        u64::from(self.utc_16ns_ticks) * 16
    }

    /// Start of the timeslice in nanoseconds since the epoch, for pacing and
    /// ordering by data time.
    pub fn utc_ns(&self) -> u64 {
        u64::from(self.utc_seconds) * 1_000_000_000 + self.utc_nanoseconds()
    }

    pub(crate) fn read(cur: &mut Cursor<'_>) -> Result<DaqHeader, DecodeError> {
        let raw: [u8; HEADER_LEN] = cur.array("DAQ header")?;
        let seconds = u32::from_le_bytes(field(&raw, 12));
        Ok(DaqHeader {
            det_id: i32::from_le_bytes(field(&raw, 0)),
            run: i32::from_le_bytes(field(&raw, 4)),
            frame_index: i32::from_le_bytes(field(&raw, 8)),
            utc_seconds: seconds & !WR_BIT,
            wr_status_msb: seconds & WR_BIT != 0,
            utc_16ns_ticks: u32::from_le_bytes(field(&raw, 16)),
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let seconds = (self.utc_seconds & !WR_BIT) | if self.wr_status_msb { WR_BIT } else { 0 };
        out.extend_from_slice(&self.det_id.to_le_bytes());
        out.extend_from_slice(&self.run.to_le_bytes());
        out.extend_from_slice(&self.frame_index.to_le_bytes());
        out.extend_from_slice(&seconds.to_le_bytes());
        out.extend_from_slice(&self.utc_16ns_ticks.to_le_bytes());
    }
}

/// Any top-level DAQ frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DaqFrame {
    Event(Event),
    Summaryslice(Summaryslice),
    Timeslice(Timeslice),
}

impl DaqFrame {
    pub fn header(&self) -> &DaqHeader {
        match self {
            DaqFrame::Event(e) => &e.header,
            DaqFrame::Summaryslice(s) => &s.header,
            DaqFrame::Timeslice(t) => &t.header,
        }
    }

    /// `None` for legacy (pre-Jpp v13) frames.
    pub fn version(&self) -> Option<i16> {
        match self {
            DaqFrame::Event(e) => e.version,
            DaqFrame::Summaryslice(s) => s.version,
            DaqFrame::Timeslice(t) => t.version,
        }
    }

    pub fn data_type(&self) -> DataType {
        match self {
            DaqFrame::Event(_) => DataType::Event,
            DaqFrame::Summaryslice(_) => DataType::Summaryslice,
            DaqFrame::Timeslice(t) => t.data_type,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            DaqFrame::Event(e) => e.encode_into(out),
            DaqFrame::Summaryslice(s) => s.encode_into(out),
            DaqFrame::Timeslice(t) => t.encode_into(out),
        }
    }
}

/// Decode one complete DAQ frame (exactly one ControlHost payload of
/// `IO_EVT`, `IO_SUM` or `IO_TS*`), dispatching on its data type.
pub fn decode_frame(bytes: &[u8]) -> Result<DaqFrame, DecodeError> {
    let preamble = Preamble::decode(bytes)?;
    match preamble.data_type {
        DataType::Event => Event::decode(bytes).map(DaqFrame::Event),
        DataType::Summaryslice => Summaryslice::decode(bytes).map(DaqFrame::Summaryslice),
        t if t.is_timeslice() => Timeslice::decode(bytes).map(DaqFrame::Timeslice),
        other => Err(unexpected_type(
            other,
            "an event, summaryslice or timeslice",
        )),
    }
}

/// The header of a frame without decoding its content: for pacing and
/// sorting by data time. `None` if the frame is not a valid DAQ frame (the
/// legacy/versioned decision needs the size check, which this still does,
/// but without allocating).
pub fn peek_header(bytes: &[u8]) -> Option<DaqHeader> {
    let preamble = Preamble::decode(bytes).ok()?;
    let bytes = bytes.get(..preamble.length as usize)?;
    let header_at = match preamble.data_type {
        DataType::Event => crate::event::layout(bytes).ok()?.1,
        DataType::Summaryslice => crate::summary::layout(bytes).ok()?.1,
        DataType::SuperFrame => PREAMBLE_LEN,
        t if t.is_timeslice() => crate::timeslice::layout(bytes).ok()?.1,
        _ => return None,
    };
    DaqHeader::read(&mut Cursor::at(bytes, header_at)).ok()
}

/// Size of the frame starting at `bytes` as its preamble declares, if the
/// preamble is readable. For splitting a buffer of frames back to back.
pub fn frame_len(bytes: &[u8]) -> Option<usize> {
    Preamble::decode(bytes).ok().map(|p| p.length as usize)
}

pub(crate) fn unexpected_type(found: DataType, expected: &'static str) -> DecodeError {
    DecodeError::UnknownDataType {
        offset: 4,
        data_type: found.as_i32(),
        expected,
    }
}

/// The checks every top-level decoder starts with: the preamble is readable,
/// has one of the `accepted` types, and its length is exactly the number of
/// bytes handed in (a frame is one ControlHost payload; more bytes would be
/// silently ignored data, fewer a truncated frame).
pub(crate) fn check_frame(
    bytes: &[u8],
    accepted: impl Fn(DataType) -> bool,
    expected: &'static str,
) -> Result<Preamble, DecodeError> {
    let preamble = Preamble::decode(bytes)?;
    if !accepted(preamble.data_type) {
        return Err(unexpected_type(preamble.data_type, expected));
    }
    let declared = preamble.length as usize;
    if declared > bytes.len() {
        return Err(DecodeError::Truncated {
            what: expected,
            offset: 0,
            needed: declared,
            available: bytes.len(),
        });
    }
    if declared < bytes.len() {
        return Err(DecodeError::LengthMismatch {
            what: expected,
            offset: 0,
            declared,
            actual: bytes.len(),
        });
    }
    Ok(preamble)
}

/// Spec §2.2: there is no flag telling a legacy frame from a versioned one.
/// Try the versioned layout if the i16 at offset 8 is the expected version
/// and keep it only if the size the content implies equals the preamble
/// length; otherwise try the legacy layout with the same check.
///
/// `size_from(header_offset)` walks the content assuming the header starts
/// there and returns the total frame size it implies. `bytes` is exactly
/// one frame (see [`check_frame`]). Returns the version (None = legacy) and
/// the header offset.
pub(crate) fn detect_layout(
    bytes: &[u8],
    expected_version: i16,
    what: &'static str,
    size_from: impl Fn(usize) -> Result<usize, DecodeError>,
) -> Result<(Option<i16>, usize), DecodeError> {
    const VERSIONED_HEADER: usize = PREAMBLE_LEN + VERSION_LEN;
    let declared = bytes.len();
    let fits = |header_at: usize| -> Result<(), DecodeError> {
        let actual = size_from(header_at)?;
        if actual == declared {
            Ok(())
        } else {
            Err(DecodeError::LengthMismatch {
                what,
                offset: 0,
                declared,
                actual,
            })
        }
    };
    let version = Cursor::at(bytes, PREAMBLE_LEN).i16_le("version").ok();
    let versioned = if version == Some(expected_version) {
        match fits(VERSIONED_HEADER) {
            Ok(()) => return Ok((version, VERSIONED_HEADER)),
            Err(e) => Some(e),
        }
    } else {
        None
    };
    let legacy = match fits(PREAMBLE_LEN) {
        Ok(()) => return Ok((None, PREAMBLE_LEN)),
        Err(e) => e,
    };
    // Neither layout fits. Name the error of the layout the bytes most
    // likely meant: versioned if the version matched; a bad version if the
    // versioned layout fits apart from the version; else legacy.
    if let Some(e) = versioned {
        return Err(e);
    }
    if let Some(found) = version {
        if fits(VERSIONED_HEADER).is_ok() {
            return Err(DecodeError::BadVersion {
                what,
                offset: PREAMBLE_LEN,
                found: i32::from(found),
                expected: version_text(expected_version),
            });
        }
    }
    Err(legacy)
}

fn version_text(version: i16) -> &'static str {
    match version {
        1 => "1",
        4 => "4",
        6 => "6",
        _ => "the current version",
    }
}

/// Start a frame in `out`: a preamble whose length [`finish_frame`] fills
/// in once the content is written. Returns the frame's start.
pub(crate) fn begin_frame(out: &mut Vec<u8>, data_type: DataType) -> usize {
    let start = out.len();
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&data_type.as_i32().to_le_bytes());
    start
}

/// Patch the preamble length of the frame begun at `start`.
///
/// # Panics
/// If the frame exceeds `i32::MAX` bytes, which the wire format cannot
/// express (only reachable by encoding a value built in memory, never by
/// re-encoding decoded bytes).
pub(crate) fn finish_frame(out: &mut [u8], start: usize) {
    let length = i32::try_from(out.len() - start).expect("DAQ frame larger than 2 GiB");
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
}

/// Append the i32 LE record count of `n` items.
pub(crate) fn put_count(out: &mut Vec<u8>, n: usize) {
    let n = i32::try_from(n).expect("more than 2^31 records in a DAQ frame");
    out.extend_from_slice(&n.to_le_bytes());
}
