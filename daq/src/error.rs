//! Typed decode errors.
//!
//! Every error names the byte offset at which the problem was found,
//! counted from the first byte of the frame (or packet) handed to the
//! decoder. Callers that know where the frame sits in a file or a stream
//! add their own base offset (see [`DecodeError::offset`] and
//! [`crate::dump::DumpError`]), so that a message can point at the exact
//! byte of a corrupt dump.

/// Why a frame, packet or payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the layout requires.
    #[error(
        "truncated {what} at frame byte {offset}: {needed} bytes needed, {available} available"
    )]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// A length field disagrees with the size the content implies (or with
    /// the number of bytes handed to the decoder).
    #[error(
        "{what} at frame byte {offset}: length field says {declared} bytes, content makes {actual}"
    )]
    LengthMismatch {
        what: &'static str,
        offset: usize,
        declared: usize,
        actual: usize,
    },
    /// A length field that no valid object can have (negative, or smaller
    /// than the fixed part of the object).
    #[error("{what} at frame byte {offset}: impossible length {length}")]
    BadLength {
        what: &'static str,
        offset: usize,
        length: i64,
    },
    /// The preamble's data type is not the one this decoder reads.
    #[error("unknown data type {data_type} at frame byte {offset} (expected {expected})")]
    UnknownDataType {
        offset: usize,
        data_type: i32,
        expected: &'static str,
    },
    /// A version field (or TMCH structure-version code) this crate does not know.
    #[error("{what} at frame byte {offset}: unsupported version {found} (expected {expected})")]
    BadVersion {
        what: &'static str,
        offset: usize,
        found: i32,
        expected: &'static str,
    },
    /// The 4-byte ASCII marker of a CLB packet is not the expected one.
    #[error("bad magic {found:?} at frame byte {offset} (expected {expected:?})", found = String::from_utf8_lossy(found), expected = String::from_utf8_lossy(expected))]
    BadMagic {
        offset: usize,
        found: [u8; 4],
        expected: [u8; 4],
    },
    /// A count field is negative.
    #[error("{what} count at frame byte {offset} is negative ({count})")]
    NegativeCount {
        what: &'static str,
        offset: usize,
        count: i32,
    },
    /// A count field promises more records than the remaining bytes can
    /// hold; refused before anything is allocated from it.
    #[error("{what} count {count} at frame byte {offset} needs {count}×{item_size} bytes, only {available} remain")]
    TooManyItems {
        what: &'static str,
        offset: usize,
        count: u64,
        item_size: usize,
        available: usize,
    },
}

impl DecodeError {
    /// Byte offset of the problem, relative to the start of the decoded frame.
    pub fn offset(&self) -> usize {
        match *self {
            DecodeError::Truncated { offset, .. }
            | DecodeError::LengthMismatch { offset, .. }
            | DecodeError::BadLength { offset, .. }
            | DecodeError::UnknownDataType { offset, .. }
            | DecodeError::BadVersion { offset, .. }
            | DecodeError::BadMagic { offset, .. }
            | DecodeError::NegativeCount { offset, .. }
            | DecodeError::TooManyItems { offset, .. } => offset,
        }
    }
}
