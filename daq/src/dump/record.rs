//! Records of a dump and what their payloads are.

use crate::controlhost::Tag;
use crate::frame::{decode_frame, peek_header, DaqFrame, Preamble};
use crate::msg::MsgLine;
use crate::tmch::{TmchPacket, MAGIC};
use crate::DecodeError;

use super::{Container, DumpError, DumpErrorKind};

/// One record of a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// File offset of the record's first byte (the prefix or length word,
    /// or the frame's preamble).
    pub offset: u64,
    /// File offset of the payload's first byte.
    pub payload_offset: u64,
    /// From the ControlHost prefix, else the forced tag, else inferred from
    /// the content where unambiguous.
    pub tag: Option<Tag>,
    pub payload: Vec<u8>,
}

/// What a record's payload is, by its tag or else by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// A DAQ frame (event, summaryslice, timeslice).
    Daq,
    /// A CLB monitoring packet.
    Tmch,
    /// A log line.
    Msg,
    /// Anything else.
    Other,
}

/// A decoded record payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Frame(DaqFrame),
    Tmch(TmchPacket),
    Msg(MsgLine),
    /// A payload of an unknown tag that looks like nothing known.
    Other,
}

impl Record {
    pub fn kind(&self) -> PayloadKind {
        match self.tag.as_ref().map(Tag::as_str) {
            Some("IO_MONIT") => return PayloadKind::Tmch,
            Some("MSG") => return PayloadKind::Msg,
            Some(t) if Container::for_tag(t) == Some(Container::DaqFrames) => {
                return PayloadKind::Daq
            }
            _ => {}
        }
        if self.payload.starts_with(&MAGIC) {
            PayloadKind::Tmch
        } else if Preamble::decode(&self.payload).is_ok_and(|p| p.data_type.is_top_level()) {
            PayloadKind::Daq
        } else {
            PayloadKind::Other
        }
    }

    /// Data time in ns since the epoch: the DAQ header time or the TMCH
    /// packet time; `None` for log lines and anything unreadable. Cheap:
    /// nothing is decoded beyond the time fields.
    pub fn utc_ns(&self) -> Option<u64> {
        match self.kind() {
            PayloadKind::Daq => peek_header(&self.payload).map(|h| h.utc_ns()),
            PayloadKind::Tmch => {
                let word = |at: usize| -> Option<u64> {
                    let b = self.payload.get(at..at + 4)?;
                    Some(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
                };
                if !self.payload.starts_with(&MAGIC) {
                    return None;
                }
                Some(word(12)? * 1_000_000_000 + word(16)? * 16)
            }
            PayloadKind::Msg | PayloadKind::Other => None,
        }
    }

    /// Decode the payload by its kind. Errors carry the file offset of the
    /// offending byte.
    pub fn decode(&self) -> Result<Payload, DumpError> {
        let located = |e: DecodeError| DumpError {
            offset: self.payload_offset.saturating_add(e.offset() as u64),
            kind: DumpErrorKind::Decode(e),
        };
        match self.kind() {
            PayloadKind::Daq => decode_frame(&self.payload)
                .map(Payload::Frame)
                .map_err(located),
            PayloadKind::Tmch => TmchPacket::decode(&self.payload)
                .map(Payload::Tmch)
                .map_err(located),
            PayloadKind::Msg => Ok(Payload::Msg(MsgLine::decode(&self.payload))),
            PayloadKind::Other => Ok(Payload::Other),
        }
    }
}
