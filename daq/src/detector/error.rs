//! Typed DETX reading errors.
//!
//! A wrong or damaged DETX file silently mis-calibrates every hit of a run,
//! so the reader stops at the first problem and says exactly where it is:
//! file, 1-based line, and which field of which kind of record.

use std::fmt;

/// The kind of DETX record a line was expected to be; names the line in
/// error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// The v1 header `det_id n_modules`.
    V1Header,
    /// The first line of a v2+ header, `det_id vN`.
    VersionHeader,
    /// `valid_from valid_until`.
    Validity,
    /// `UTM ellipsoid grid easting northing z`.
    Utm,
    /// The number of module records (last header line of v2+).
    ModuleCount,
    /// A module (DOM or base module) record line.
    Module,
    /// A PMT record line.
    Pmt,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Record::V1Header => "v1 header line",
            Record::VersionHeader => "header line",
            Record::Validity => "validity line",
            Record::Utm => "UTM line",
            Record::ModuleCount => "module count line",
            Record::Module => "module line",
            Record::Pmt => "PMT line",
        })
    }
}

/// What was wrong; see [`DetxError`] for where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DetxErrorKind {
    /// The file could not be read at all.
    #[error("cannot read: {0}")]
    Io(String),
    /// The bytes are not text (DETX is ASCII).
    #[error("not a text file (invalid UTF-8)")]
    NotText,
    /// A record line has the wrong number of fields for this DETX version.
    #[error("expected {expected} fields on {record}, found {found}")]
    FieldCount {
        record: Record,
        expected: usize,
        found: usize,
    },
    /// A field does not hold the value its position requires.
    #[error("{record} field {index} ({name}): expected {expected}, found \"{text}\"")]
    BadField {
        record: Record,
        /// 1-based field index on the line.
        index: usize,
        name: &'static str,
        expected: &'static str,
        text: String,
    },
    /// The version token is not one of v2–v5.
    #[error("unknown DETX version \"{0}\" (supported: v2 to v5, and v1 files whose header is `det_id n_modules`)")]
    UnknownVersion(String),
    /// The file ended inside the header.
    #[error("end of file, expected the {0}")]
    UnexpectedEof(Record),
    /// A module announces more PMT lines than follow it.
    #[error("module {dom_id} (line {module_line}) announces {announced} PMTs but only {found} PMT lines follow")]
    TooFewPmts {
        dom_id: u32,
        module_line: usize,
        announced: usize,
        found: usize,
    },
    /// The file ended before all announced modules were read.
    #[error("end of file after {found} modules, the header announces {announced}")]
    TooFewModules { announced: usize, found: usize },
    /// Data lines follow the last announced module.
    #[error("more module records than the {announced} the header announces")]
    TooManyModules { announced: usize },
    /// Two module records carry the same DOM id.
    #[error("DOM id {dom_id} already used by the module on line {first_line}")]
    DuplicateDomId { dom_id: u32, first_line: usize },
    /// The file ended inside a multi-line comment, which swallowed the data.
    #[error("end of file inside the multi-line comment opened on line {opened_at} (a line with exactly one '\"' closes it); {inner}")]
    UnterminatedComment {
        opened_at: usize,
        inner: Box<DetxErrorKind>,
    },
}

/// A DETX reading error: the file (as named by the caller), the 1-based line
/// and what was wrong. Displays as `detx_v4.detx:37: expected 9 fields on
/// PMT line, found 7`; `line` is 0 when the problem is the whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct DetxError {
    pub file: String,
    pub line: usize,
    pub kind: DetxErrorKind,
}

impl DetxError {
    pub(crate) fn new(file: &str, line: usize, kind: DetxErrorKind) -> DetxError {
        DetxError {
            file: file.to_owned(),
            line,
            kind,
        }
    }
}

impl fmt::Display for DetxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.kind)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.kind)
        }
    }
}

// The kind is part of the message already; exposing it as `source` too
// would print it twice in error chains.
impl std::error::Error for DetxError {}
