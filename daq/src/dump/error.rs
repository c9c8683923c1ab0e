//! Errors of the dump reader, located by file offset.

use std::fmt;
use std::io;

use crate::controlhost::PrefixError;
use crate::DecodeError;

use super::MIN_DAQ_FRAME;

/// A problem in a dump, at a file offset.
#[derive(Debug, thiserror::Error)]
#[error("byte {offset}: {kind}")]
pub struct DumpError {
    pub offset: u64,
    pub kind: DumpErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum DumpErrorKind {
    #[error("read error: {0}")]
    Io(#[from] io::Error),
    #[error("unrecognised content: not DAQ frames, length-prefixed CLB packets or a ControlHost recording")]
    UnknownContainer,
    #[error("{problem}{}", Resync(*resumed_at))]
    BadRecordHeader {
        problem: HeaderProblem,
        /// Where reading went on, `None` if no plausible record followed.
        resumed_at: Option<u64>,
    },
    #[error("record of {declared} bytes runs past the end of the data ({available} bytes left){}", Resync(*resumed_at))]
    TruncatedRecord {
        declared: u64,
        available: u64,
        resumed_at: Option<u64>,
    },
    #[error(
        "{available} stray bytes at the end of the data, too few for a record header ({needed})"
    )]
    TruncatedHeader { needed: usize, available: usize },
    #[error(transparent)]
    Decode(DecodeError),
}

/// Why a record header was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderProblem {
    #[error("implausible DAQ preamble: length {length}, data type {data_type} (expected an event, summaryslice or timeslice of {MIN_DAQ_FRAME}..={max} bytes)")]
    DaqPreamble {
        length: i64,
        data_type: i32,
        max: usize,
    },
    #[error("implausible packet length {length} (maximum {max})")]
    PacketLength { length: u64, max: usize },
    #[error("bad ControlHost prefix: {0}")]
    Prefix(PrefixError),
}

/// Formats the resynchronisation outcome after an error message.
struct Resync(Option<u64>);

impl fmt::Display for Resync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(at) => write!(f, "; resynchronised at byte {at}"),
            None => f.write_str("; no further record found"),
        }
    }
}
