//! Errors of the ROOT reader. Every problem a file can have (truncation,
//! corrupt compressed data, unknown class versions, a file still being
//! written) is a value of [`RootError`]; nothing in this crate panics on
//! bad input.

use std::io;

/// A problem reading a ROOT file, located by file offset where one is known.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("read error: {0}")]
    Io(#[from] io::Error),
    #[error("not a ROOT file (no \"root\" magic)")]
    NotRoot,
    /// A structure runs past the end of the data it lives in: a truncated
    /// file, or a length field that was corrupted.
    #[error("byte {offset}: {what} runs past the end of the data ({needed} bytes needed, {available} available)")]
    Truncated {
        what: &'static str,
        offset: u64,
        needed: u64,
        available: u64,
    },
    /// A field holds a value no valid file has.
    #[error("byte {offset}: bad {what}: {detail}")]
    Corrupt {
        what: &'static str,
        offset: u64,
        detail: String,
    },
    /// A class version this reader does not know the layout of.
    #[error("byte {offset}: {class} version {version} is not supported")]
    UnsupportedVersion {
        class: &'static str,
        version: i32,
        offset: u64,
    },
    #[error("byte {offset}: {what}")]
    Unsupported { what: String, offset: u64 },
    /// A compressed block that does not decompress to what its header says.
    #[error("byte {offset}: {algorithm} block does not decompress: {detail}")]
    Decompress {
        algorithm: &'static str,
        offset: u64,
        detail: String,
    },
    /// The file was not closed: its key list or tree metadata are not (yet)
    /// written.
    #[error("file not closed (still being written, or its writer died): {0}")]
    Unclosed(String),
    #[error("no {0} in the file")]
    Missing(String),
    /// A KM3NeT entry whose bytes do not have the layout of its tree.
    #[error("{tree} entry {entry}: {detail}")]
    Entry {
        tree: String,
        entry: u64,
        detail: String,
    },
}

impl RootError {
    pub(crate) fn corrupt(what: &'static str, offset: u64, detail: impl Into<String>) -> RootError {
        RootError::Corrupt {
            what,
            offset,
            detail: detail.into(),
        }
    }

    /// The same error, its offset moved by `base` (errors found inside a
    /// buffer are reported at file offsets).
    pub(crate) fn shifted(self, base: u64) -> RootError {
        match self {
            RootError::Truncated {
                what,
                offset,
                needed,
                available,
            } => RootError::Truncated {
                what,
                offset: offset + base,
                needed,
                available,
            },
            RootError::Corrupt {
                what,
                offset,
                detail,
            } => RootError::Corrupt {
                what,
                offset: offset + base,
                detail,
            },
            RootError::UnsupportedVersion {
                class,
                version,
                offset,
            } => RootError::UnsupportedVersion {
                class,
                version,
                offset: offset + base,
            },
            RootError::Unsupported { what, offset } => RootError::Unsupported {
                what,
                offset: offset + base,
            },
            other => other,
        }
    }

    /// For an error found inside a decompressed object: its offsets count
    /// bytes of the decompressed data, which can lie past the end of the
    /// file. Report the object's place in the file instead (`object_at`),
    /// and the position inside the object in the text.
    pub(crate) fn in_decompressed(self, object_at: u64, object: &'static str) -> RootError {
        let position = match &self {
            RootError::Truncated { offset, .. }
            | RootError::Corrupt { offset, .. }
            | RootError::UnsupportedVersion { offset, .. }
            | RootError::Unsupported { offset, .. }
            | RootError::Decompress { offset, .. } => *offset,
            _ => return self,
        };
        let text = self.to_string();
        let text = text
            .strip_prefix(&format!("byte {position}: "))
            .unwrap_or(&text)
            .to_string();
        RootError::Corrupt {
            what: object,
            offset: object_at,
            detail: format!("{text} (at byte {position} of the decompressed data)"),
        }
    }
}

pub type Result<T, E = RootError> = std::result::Result<T, E>;
