//! Reading dump files as a stream of records.
//!
//! Three containers occur (spec §7): DAQ frames back to back (the `IO_EVT`,
//! `IO_SUM`, `IO_TS*` dumps, each frame's preamble giving the next offset),
//! length-prefixed packets (`IO_MONIT` dumps: u32 LE N, then N bytes), and
//! ControlHost recordings (16-byte prefix + payload, back to back, as
//! `km3mon record` writes them). The container is recognised from the
//! first bytes or implied by a forced tag.
//!
//! The reader works on any [`Read`] with a bounded buffer, and never trusts
//! a length field beyond a configurable maximum record size. After a bad
//! record header it scans forward byte by byte for the next plausible one
//! and reports how far it skipped; a record running past the end of the
//! data is reported the same way (its length may be the corrupt part). A
//! record whose framing is sound but whose content is bad is still handed
//! out: decoding it ([`Record::decode`]) reports the error, and the next
//! record follows by its length.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::controlhost::{Prefix, Tag, PREFIX_LEN};
use crate::frame::{DataType, Preamble};
use crate::tmch::MAGIC;

mod error;
mod record;

pub use error::{DumpError, DumpErrorKind, HeaderProblem};
pub use record::{Payload, PayloadKind, Record};

/// Default bound on one record: far above any real DAQ frame.
pub const DEFAULT_MAX_RECORD: usize = 64 << 20;
/// The smallest top-level DAQ frame: a legacy summaryslice or timeslice
/// with no frames (preamble, header, count).
pub(crate) const MIN_DAQ_FRAME: usize = 32;
/// Read granularity; the buffer grows with the data actually read, not
/// with a declared length.
const CHUNK: usize = 64 << 10;

/// How records are laid out in a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// DAQ frames back to back, delimited by their preambles.
    DaqFrames,
    /// u32 LE byte count N, then N bytes (CLB packets of `IO_MONIT` dumps).
    LengthPrefixed,
    /// ControlHost messages: 16-byte prefix, then the payload.
    ControlHost,
}

impl Container {
    /// The container of a dump of `tag`, for the tags whose dumps have a
    /// known layout.
    pub fn for_tag(tag: &str) -> Option<Container> {
        match tag {
            "IO_MONIT" => Some(Container::LengthPrefixed),
            "IO_EVT" | "IO_SUM" => Some(Container::DaqFrames),
            t if t.starts_with("IO_TS") => Some(Container::DaqFrames),
            _ => None,
        }
    }

    /// Bytes needed to read a record header.
    fn header_len(self) -> usize {
        match self {
            Container::DaqFrames => 8,
            Container::LengthPrefixed => 4,
            Container::ControlHost => PREFIX_LEN,
        }
    }

    /// Bytes the strict check of a resynchronisation scan looks at.
    fn scan_len(self) -> usize {
        match self {
            Container::LengthPrefixed => 8,
            other => other.header_len(),
        }
    }

    /// Bytes before the payload within a record. DAQ frames are their own
    /// payload (the preamble belongs to the frame).
    fn payload_skip(self) -> usize {
        match self {
            Container::DaqFrames => 0,
            other => other.header_len(),
        }
    }
}

/// Recognise the container from the first bytes of a dump (16 suffice).
pub fn detect(first_bytes: &[u8]) -> Option<Container> {
    // A DAQ frame never parses as a ControlHost prefix (its length bytes
    // put a NUL and then non-NUL bytes into the tag field), so the order of
    // these checks does not matter for real data.
    if strict_controlhost(first_bytes, u32::MAX as usize) {
        return Some(Container::ControlHost);
    }
    if daq_preamble(first_bytes, usize::MAX).is_ok() {
        return Some(Container::DaqFrames);
    }
    if strict_length_prefixed(first_bytes, usize::MAX) {
        return Some(Container::LengthPrefixed);
    }
    None
}

/// Streaming reader of a dump: an iterator of records and errors. It goes
/// on after an error wherever the framing allows, and ends at the end of
/// the data (or after an unrecognised container or a read error).
pub struct DumpReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// First unconsumed byte of `buf`.
    start: usize,
    /// End of the data read into `buf`.
    end: usize,
    /// File offset of `buf[start]`.
    pos: u64,
    eof: bool,
    done: bool,
    container: Option<Container>,
    tag: Option<Tag>,
    max_record: usize,
    /// Tags to return (empty = all); others are skipped unread.
    only: Vec<Tag>,
}

/// One step of the reader.
enum Step {
    Record(Record),
    /// A record of a tag not asked for, passed over without a copy.
    Skipped,
    End,
}

impl DumpReader<File> {
    pub fn open(path: impl AsRef<Path>) -> io::Result<DumpReader<File>> {
        File::open(path).map(DumpReader::new)
    }
}

impl<R: Read> DumpReader<R> {
    /// A reader that recognises the container from the first bytes.
    pub fn new(inner: R) -> DumpReader<R> {
        DumpReader {
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
            pos: 0,
            eof: false,
            done: false,
            container: None,
            tag: None,
            max_record: DEFAULT_MAX_RECORD,
            only: Vec::new(),
        }
    }

    /// Give every record this tag (unless it has a ControlHost prefix), and
    /// use the container of the tag's dumps (`IO_MONIT` → length-prefixed,
    /// `IO_EVT`/`IO_SUM`/`IO_TS*` → DAQ frames) instead of recognising it.
    pub fn with_tag(mut self, tag: Tag) -> DumpReader<R> {
        if let Some(c) = Container::for_tag(tag.as_str()) {
            self.container = Some(c);
        }
        self.tag = Some(tag);
        self
    }

    pub fn with_container(mut self, container: Container) -> DumpReader<R> {
        self.container = Some(container);
        self
    }

    /// Refuse (and resynchronise past) records larger than `bytes`; also
    /// bounds the reader's buffer.
    pub fn with_max_record(mut self, bytes: usize) -> DumpReader<R> {
        self.max_record = bytes;
        self
    }

    /// Return only records of these tags (empty = all): records whose
    /// ControlHost prefix (or forced tag) names another tag are skipped
    /// without copying their payload. Records without a known tag are
    /// returned.
    pub fn with_only_tags(mut self, tags: Vec<Tag>) -> DumpReader<R> {
        self.only = tags;
        self
    }

    /// The container, once known (forced, or after the first record).
    pub fn container(&self) -> Option<Container> {
        self.container
    }

    /// File offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn avail(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Make at least `n` bytes available unless the data ends first;
    /// returns how many are available. The buffer grows with the data
    /// actually read, never to a declared length ahead of it, and is
    /// zeroed only when it grows, so small reads (pipes) stay cheap.
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        while self.end - self.start < n && !self.eof {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let missing = n - self.end;
            if self.buf.len() - self.end < missing.min(CHUNK) {
                // Geometric in the data held, so that a length field far
                // beyond the data costs one chunk, not 16: fuzzing showed
                // every short garbage record claiming megabytes zeroing
                // 1 MiB.
                let step = self.end.clamp(CHUNK, 16 * CHUNK);
                let grow = missing.clamp(CHUNK, step);
                // A fresh zeroed allocation (calloc: fresh pages come zeroed
                // for free) plus a copy of the data held, rather than
                // `resize`, which writes every zero.
                let mut bigger = vec![0u8; self.end + grow];
                bigger[..self.end].copy_from_slice(&self.buf[..self.end]);
                self.buf = bigger;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.start)
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.pos += n as u64;
    }

    fn error(&self, offset: u64, kind: DumpErrorKind) -> DumpError {
        DumpError { offset, kind }
    }

    fn next_record(&mut self) -> Result<Step, DumpError> {
        let at = self.pos;
        let io_error = |e: io::Error| DumpError {
            offset: at,
            kind: DumpErrorKind::Io(e),
        };
        let container = match self.container {
            Some(c) => c,
            None => {
                if self.fill(PREFIX_LEN).map_err(io_error)? == 0 {
                    return Ok(Step::End);
                }
                match detect(self.avail()) {
                    Some(c) => {
                        self.container = Some(c);
                        c
                    }
                    None => {
                        self.done = true;
                        return Err(self.error(at, DumpErrorKind::UnknownContainer));
                    }
                }
            }
        };
        let header_len = container.header_len();
        let available = self.fill(header_len).map_err(io_error)?;
        if available == 0 {
            return Ok(Step::End);
        }
        if available < header_len {
            self.consume(available);
            return Err(self.error(
                at,
                DumpErrorKind::TruncatedHeader {
                    needed: header_len,
                    available,
                },
            ));
        }
        let (total, tag) = match self.record_header(container) {
            Ok(found) => found,
            Err(problem) => {
                let resumed_at = self.resync(container).map_err(io_error)?;
                return Err(self.error(
                    at,
                    DumpErrorKind::BadRecordHeader {
                        problem,
                        resumed_at,
                    },
                ));
            }
        };
        let available = self.fill(total).map_err(io_error)?;
        if available < total {
            let resumed_at = self.resync(container).map_err(io_error)?;
            return Err(self.error(
                at,
                DumpErrorKind::TruncatedRecord {
                    declared: total as u64,
                    available: available as u64,
                    resumed_at,
                },
            ));
        }
        let skip = container.payload_skip();
        if let Some(t) = tag.or(self.tag) {
            if !self.only.is_empty() && !self.only.contains(&t) {
                self.consume(total);
                return Ok(Step::Skipped);
            }
        }
        let payload = self.avail().get(skip..total).unwrap_or_default().to_vec();
        let tag = tag.or(self.tag).or_else(|| infer_tag(container, &payload));
        self.consume(total);
        Ok(Step::Record(Record {
            offset: at,
            payload_offset: at + skip as u64,
            tag,
            payload,
        }))
    }

    /// Total record size (header included) and the prefix tag, if the
    /// header at the read position is believable.
    fn record_header(&self, container: Container) -> Result<(usize, Option<Tag>), HeaderProblem> {
        let bytes = self.avail();
        match container {
            Container::DaqFrames => daq_preamble(bytes, self.max_record).map(|n| (n, None)),
            Container::LengthPrefixed => {
                let n = u64::from(u32::from_le_bytes(word(bytes)));
                match usize::try_from(n) {
                    Ok(n) if n <= self.max_record => Ok((4 + n, None)),
                    _ => Err(HeaderProblem::PacketLength {
                        length: n,
                        max: self.max_record,
                    }),
                }
            }
            Container::ControlHost => {
                let mut raw = [0u8; PREFIX_LEN];
                raw.copy_from_slice(bytes.get(..PREFIX_LEN).unwrap_or(&[0; PREFIX_LEN]));
                let limit = u32::try_from(self.max_record).unwrap_or(u32::MAX);
                let prefix = Prefix::decode_limited(&raw, limit).map_err(HeaderProblem::Prefix)?;
                Ok((PREFIX_LEN + prefix.length as usize, Some(prefix.tag)))
            }
        }
    }

    /// Skip forward from the current (bad) record start to the next
    /// position that looks like a record header; `None` at the end of data.
    fn resync(&mut self, container: Container) -> io::Result<Option<u64>> {
        let scan_len = container.scan_len();
        self.consume(1);
        loop {
            let available = self.fill(scan_len)?;
            if available < scan_len {
                self.consume(available);
                return Ok(None);
            }
            let bytes = self.avail();
            let plausible = match container {
                Container::DaqFrames => daq_preamble(bytes, self.max_record).is_ok(),
                Container::LengthPrefixed => strict_length_prefixed(bytes, self.max_record),
                Container::ControlHost => strict_controlhost(bytes, self.max_record),
            };
            if plausible {
                return Ok(Some(self.pos));
            }
            self.consume(1);
        }
    }
}

impl<R: Read> Iterator for DumpReader<R> {
    type Item = Result<Record, DumpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            return match self.next_record() {
                Ok(Step::Record(record)) => Some(Ok(record)),
                Ok(Step::Skipped) => continue,
                Ok(Step::End) => {
                    self.done = true;
                    None
                }
                Err(e) => {
                    if matches!(e.kind, DumpErrorKind::Io(_)) {
                        self.done = true;
                    }
                    Some(Err(e))
                }
            };
        }
    }
}

fn word(bytes: &[u8]) -> [u8; 4] {
    let mut out = [0u8; 4];
    if let Some(b) = bytes.get(..4) {
        out.copy_from_slice(b);
    }
    out
}

/// A DAQ preamble that can start a top-level frame; returns its length.
fn daq_preamble(bytes: &[u8], max: usize) -> Result<usize, HeaderProblem> {
    let length = i32::from_le_bytes(word(bytes));
    let data_type = i32::from_le_bytes(word(bytes.get(4..).unwrap_or_default()));
    let ok = bytes.len() >= 8 && DataType::from_i32(data_type).is_top_level();
    match usize::try_from(length) {
        Ok(n) if ok && (MIN_DAQ_FRAME..=max).contains(&n) => Ok(n),
        _ => Err(HeaderProblem::DaqPreamble {
            length: i64::from(length),
            data_type,
            max,
        }),
    }
}

/// Length word plus a 4-letter packet marker (`TMCH`, `TTDC`): the check a
/// scan needs, since any 4 bytes make a length.
fn strict_length_prefixed(bytes: &[u8], max: usize) -> bool {
    let n = u32::from_le_bytes(word(bytes)) as usize;
    let magic = bytes.get(4..8).unwrap_or_default();
    (4..=max).contains(&n)
        && magic.len() == 4
        && magic
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A prefix as KM3NeT clients write it: a tag of letters, digits and
/// underscores, zero reserved bytes, a length within bounds.
fn strict_controlhost(bytes: &[u8], max: usize) -> bool {
    let Some(raw) = bytes.get(..PREFIX_LEN) else {
        return false;
    };
    let mut prefix = [0u8; PREFIX_LEN];
    prefix.copy_from_slice(raw);
    let limit = u32::try_from(max).unwrap_or(u32::MAX);
    match Prefix::decode_limited(&prefix, limit) {
        Ok(p) => {
            p.tag
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && prefix[12..].iter().all(|&b| b == 0)
        }
        Err(_) => false,
    }
}

fn infer_tag(container: Container, payload: &[u8]) -> Option<Tag> {
    let name = match container {
        Container::DaqFrames => Preamble::decode(payload).ok()?.data_type.tag_name()?,
        Container::LengthPrefixed if payload.starts_with(&MAGIC) => "IO_MONIT",
        _ => return None,
    };
    Tag::new(name).ok()
}
