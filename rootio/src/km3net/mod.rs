//! The KM3NeT online trees: which tree is which stream, how to find the
//! branches of each layout, and reading entries as `daq` frames.

mod decode;
mod timeslice;
mod wire;

use std::sync::Arc;

use daq::event::Event;
use daq::frame::{DaqHeader, DataType};
use daq::summary::Summaryslice;
use daq::timeslice::Timeslice;

use crate::basket::BranchReader;
use crate::error::{Result, RootError};
use crate::file::RootFile;
use crate::tree::Tree;

use decode::{slice_header, Bytes};
use timeslice::{column, hit_buffer, memberwise, Columns};

/// One KM3NeT data stream, i.e. one tree of an online file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    Summaryslice,
    L0,
    L1,
    L2,
    Sn,
    /// The bare `KM3NET_TIMESLICE` tree (data-filter rejects).
    Ts,
    Event,
}

impl Stream {
    /// In the order a live run delivers a timeslice's data (its summary and
    /// timeslices before the events triggered in it): the tie-break when
    /// merging streams.
    pub const ALL: [Stream; 7] = [
        Stream::Summaryslice,
        Stream::L0,
        Stream::L1,
        Stream::L2,
        Stream::Sn,
        Stream::Ts,
        Stream::Event,
    ];

    pub fn tree(self) -> &'static str {
        match self {
            Stream::Event => "KM3NET_EVENT",
            Stream::Summaryslice => "KM3NET_SUMMARYSLICE",
            Stream::L0 => "KM3NET_TIMESLICE_L0",
            Stream::L1 => "KM3NET_TIMESLICE_L1",
            Stream::L2 => "KM3NET_TIMESLICE_L2",
            Stream::Sn => "KM3NET_TIMESLICE_SN",
            Stream::Ts => "KM3NET_TIMESLICE",
        }
    }

    pub fn from_tree(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.tree() == name)
    }

    /// The ControlHost tag the stream travels under live (`IO_TS` is Jpp's
    /// tag of the unlabelled timeslices).
    pub fn tag(self) -> &'static str {
        match self {
            Stream::Event => "IO_EVT",
            Stream::Summaryslice => "IO_SUM",
            Stream::L0 => "IO_TSL0",
            Stream::L1 => "IO_TSL1",
            Stream::L2 => "IO_TSL2",
            Stream::Sn => "IO_TSSN",
            Stream::Ts => "IO_TS",
        }
    }

    /// `L0`, `L1`, `L2`, `SN` or `TS` for timeslice streams.
    pub fn timeslice_label(self) -> Option<&'static str> {
        match self {
            Stream::L0 => Some("L0"),
            Stream::L1 => Some("L1"),
            Stream::L2 => Some("L2"),
            Stream::Sn => Some("SN"),
            Stream::Ts => Some("TS"),
            Stream::Event | Stream::Summaryslice => None,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Stream::Event => DataType::Event,
            Stream::Summaryslice => DataType::Summaryslice,
            Stream::L0 => DataType::TimesliceL0,
            Stream::L1 => DataType::TimesliceL1,
            Stream::L2 => DataType::TimesliceL2,
            Stream::Sn => DataType::TimesliceSn,
            Stream::Ts => DataType::Timeslice,
        }
    }
}

/// One decoded entry: the wire layer's own frame type.
pub use daq::frame::DaqFrame as Frame;

const SF: &str = "vector<KM3NETDAQ::JDAQSuperFrame>";

// One per stream and file: the size difference of the variants costs
// nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Event {
        header: BranchReader,
        triggered: BranchReader,
        snapshot: BranchReader,
    },
    Summary {
        header: BranchReader,
        frames: BranchReader,
    },
    Timeslice {
        header: TsHeader,
        frames: TsFrames,
    },
}

enum TsHeader {
    /// One 44-byte header object per entry.
    Object(BranchReader),
    /// Split leaves; the start time either one 14-byte object or two leaves.
    Leaves {
        ids: Box<[BranchReader; 3]>,
        start: Vec<BranchReader>,
    },
}

enum TsFrames {
    Blob(BranchReader),
    /// id, daq, status, fifo, status_3, status_4, numberOfHits, buffer, and
    /// optionally the five per-frame header columns.
    Split(Vec<BranchReader>, Option<Vec<BranchReader>>),
}

/// Reads the entries of one stream's tree. Holds at most two baskets per
/// branch it uses.
pub struct StreamReader {
    stream: Stream,
    entries: u64,
    /// Entries of the tree that no written or embedded basket holds.
    unreached: u64,
    kind: Kind,
}

impl StreamReader {
    /// The reader of `tree`, or `None` if the tree is empty.
    pub fn new(file: &Arc<RootFile>, stream: Stream, tree: &Tree) -> Result<Option<StreamReader>> {
        if tree.entries == 0 {
            return Ok(None);
        }
        let branch = |name: &str| -> Result<BranchReader> {
            tree.branch(name)
                .map(|b| BranchReader::new(file.clone(), b))
                .ok_or_else(|| RootError::Missing(format!("branch {name} in tree {}", tree.name)))
        };
        let has = |name: &str| tree.branch(name).is_some_and(|b| b.readable_entries() > 0);
        let kind = match stream {
            Stream::Event => Kind::Event {
                header: branch("KM3NETDAQ::JDAQEventHeader")?,
                triggered: branch("triggeredHits")?,
                snapshot: branch("snapshotHits")?,
            },
            Stream::Summaryslice => Kind::Summary {
                header: branch("KM3NETDAQ::JDAQSummarysliceHeader")?,
                frames: branch("vector<KM3NETDAQ::JDAQSummaryFrame>")?,
            },
            _ => {
                let header = if has("KM3NETDAQ::JDAQTimesliceHeader") {
                    TsHeader::Object(branch("KM3NETDAQ::JDAQTimesliceHeader")?)
                } else {
                    let start = if has("timeslice_start") {
                        vec![branch("timeslice_start")?]
                    } else {
                        vec![
                            branch("timeslice_start.UTC_seconds")?,
                            branch("timeslice_start.UTC_16nanosecondcycles")?,
                        ]
                    };
                    TsHeader::Leaves {
                        ids: Box::new([
                            branch("detector_id")?,
                            branch("run")?,
                            branch("frame_index")?,
                        ]),
                        start,
                    }
                };
                let frames = if has(&format!("{SF}.buffer")) {
                    let cols = ["id", "daq", "status", "fifo", "status_3", "status_4"]
                        .into_iter()
                        .chain(["numberOfHits", "buffer"])
                        .map(|m| branch(&format!("{SF}.{m}")))
                        .collect::<Result<Vec<_>>>()?;
                    let headers = [
                        "detector_id",
                        "run",
                        "frame_index",
                        "timeslice_start.UTC_seconds",
                        "timeslice_start.UTC_16nanosecondcycles",
                    ]
                    .into_iter()
                    .map(|m| branch(&format!("{SF}.{m}")))
                    .collect::<Result<Vec<_>>>()
                    .ok();
                    TsFrames::Split(cols, headers)
                } else {
                    TsFrames::Blob(branch(SF)?)
                };
                Kind::Timeslice { header, frames }
            }
        };
        let mut r = StreamReader {
            stream,
            entries: tree.entries,
            unreached: 0,
            kind,
        };
        // Entries the metadata counts but no basket holds (a file being
        // written) cannot be read: stop before them, and say how many.
        r.entries = r
            .readers()
            .map(|b| b.entries())
            .fold(tree.entries, u64::min);
        r.unreached = tree.entries - r.entries;
        Ok(Some(r))
    }

    fn readers(&self) -> Box<dyn Iterator<Item = &BranchReader> + '_> {
        match &self.kind {
            Kind::Event {
                header,
                triggered,
                snapshot,
            } => Box::new([header, triggered, snapshot].into_iter()),
            Kind::Summary { header, frames } => Box::new([header, frames].into_iter()),
            Kind::Timeslice { header, frames } => {
                let h: Vec<&BranchReader> = match header {
                    TsHeader::Object(b) => vec![b],
                    TsHeader::Leaves { ids, start } => ids.iter().chain(start).collect(),
                };
                let f: Vec<&BranchReader> = match frames {
                    TsFrames::Blob(b) => vec![b],
                    TsFrames::Split(c, h) => c.iter().chain(h.iter().flatten()).collect(),
                };
                Box::new(h.into_iter().chain(f))
            }
        }
    }

    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// Readable entries.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// File offsets of every basket the stream's branches list.
    pub fn basket_seeks(&self) -> Vec<u64> {
        self.readers()
            .flat_map(|r| r.branch().baskets.iter().map(|b| b.seek))
            .collect()
    }

    /// Per branch: name, end of the written baskets, readable entries.
    pub fn branch_ends(&self) -> Vec<(String, u64, u64)> {
        self.readers()
            .map(|r| {
                let b = r.branch();
                let written = b.baskets.last().map_or(0, |x| x.end_entry);
                (b.name.clone(), written, b.readable_entries())
            })
            .collect()
    }

    /// Entries the tree counts that cannot be read (see [`StreamReader::new`]).
    pub fn unreached(&self) -> u64 {
        self.unreached
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The DAQ header of entry `i`, reading only the header branches.
    pub fn header(&mut self, i: u64) -> Result<DaqHeader> {
        let stream = self.stream;
        let err = move |detail: String| RootError::Entry {
            tree: stream.tree().to_string(),
            entry: i,
            detail,
        };
        match &mut self.kind {
            Kind::Event { header, .. } => decode::event_header(header.entry(i)?.0)
                .map(|h| h.header)
                .map_err(err),
            Kind::Summary { header, .. } => slice_header(header.entry(i)?.0).map_err(err),
            Kind::Timeslice { header, .. } => ts_header(header, i).map_err(|e| match e {
                Ok(detail) => err(detail),
                Err(e) => e,
            }),
        }
    }

    /// Entry `i` in the DAQ wire encoding, appended to `out`, and the file
    /// offset of the basket holding its payload. Summaryslices and
    /// member-wise timeslices go straight from ROOT bytes to wire bytes;
    /// the rest is decoded and re-encoded.
    pub fn wire_into(&mut self, i: u64, out: &mut Vec<u8>) -> Result<u64> {
        let stream = self.stream;
        let fail = move |detail: String| RootError::Entry {
            tree: stream.tree().to_string(),
            entry: i,
            detail,
        };
        match &mut self.kind {
            Kind::Summary { header, frames } => {
                let h = slice_header(header.entry(i)?.0).map_err(fail)?;
                let (raw, at) = frames.entry(i)?;
                wire::summaryslice(&h, raw, out).map_err(fail)?;
                Ok(at)
            }
            Kind::Timeslice {
                header,
                frames: TsFrames::Blob(blob),
            } => {
                let h = ts_header(header, i).map_err(|e| match e {
                    Ok(detail) => fail(detail),
                    Err(e) => e,
                })?;
                let (raw, at) = blob.entry(i)?;
                wire::memberwise(stream.data_type(), &h, raw, out).map_err(fail)?;
                Ok(at)
            }
            _ => {
                let (frame, at) = self.frame(i)?;
                frame.encode_into(out);
                Ok(at)
            }
        }
    }

    /// Entry `i` decoded, and the file offset of the basket holding its
    /// payload.
    pub fn frame(&mut self, i: u64) -> Result<(Frame, u64)> {
        let stream = self.stream;
        let fail = move |detail: String| RootError::Entry {
            tree: stream.tree().to_string(),
            entry: i,
            detail,
        };
        match &mut self.kind {
            Kind::Event {
                header,
                triggered,
                snapshot,
            } => {
                let h = decode::event_header(header.entry(i)?.0).map_err(fail)?;
                let triggered_hits = decode::triggered_hits(triggered.entry(i)?.0).map_err(fail)?;
                let (raw, at) = snapshot.entry(i)?;
                let snapshot_hits = decode::snapshot_hits(raw).map_err(fail)?;
                let event = Event {
                    version: Some(Event::VERSION),
                    header: h.header,
                    trigger_counter: h.trigger_counter,
                    trigger_mask: h.trigger_mask,
                    overlays: h.overlays,
                    triggered_hits,
                    snapshot_hits,
                };
                Ok((Frame::Event(event), at))
            }
            Kind::Summary { header, frames } => {
                let h = slice_header(header.entry(i)?.0).map_err(fail)?;
                let (raw, at) = frames.entry(i)?;
                let frames = decode::summary_frames(raw).map_err(fail)?;
                let slice = Summaryslice {
                    version: Some(Summaryslice::VERSION),
                    header: h,
                    frames,
                };
                Ok((Frame::Summaryslice(slice), at))
            }
            Kind::Timeslice { header, frames } => {
                let h = ts_header(header, i).map_err(|e| match e {
                    Ok(detail) => fail(detail),
                    Err(e) => e,
                })?;
                let (frames, at) = match frames {
                    TsFrames::Blob(b) => {
                        let (raw, at) = b.entry(i)?;
                        (memberwise(raw, &h).map_err(fail)?, at)
                    }
                    TsFrames::Split(cols, headers) => {
                        split_frames(cols, headers, i, &h).map_err(|e| match e {
                            Ok(detail) => fail(detail),
                            Err(e) => e,
                        })?
                    }
                };
                let slice = Timeslice {
                    version: Some(Timeslice::VERSION),
                    data_type: stream.data_type(),
                    header: h,
                    frames,
                };
                Ok((Frame::Timeslice(slice), at))
            }
        }
    }
}

/// Errors of a multi-branch read: `Ok(detail)` for a bad entry (the caller
/// names tree and entry), `Err` for a container error.
type Split<T> = std::result::Result<T, std::result::Result<String, RootError>>;

fn ts_header(header: &mut TsHeader, i: u64) -> Split<DaqHeader> {
    match header {
        TsHeader::Object(b) => slice_header(b.entry(i).map_err(Err)?.0).map_err(Ok),
        TsHeader::Leaves { ids, start } => {
            let mut v = [0u32; 3];
            for (k, b) in ids.iter_mut().enumerate() {
                v[k] = one_word(b.entry(i).map_err(Err)?.0)?;
            }
            let (seconds, ticks) = if start.len() == 1 {
                let mut b = Bytes::new(start[0].entry(i).map_err(Err)?.0);
                b.object_header("timeslice start").map_err(Ok)?;
                let s = b.u32("UTC seconds").map_err(Ok)?;
                let t = b.u32("UTC 16 ns cycles").map_err(Ok)?;
                b.end("timeslice start").map_err(Ok)?;
                (s, t)
            } else {
                let s = one_word(start[0].entry(i).map_err(Err)?.0)?;
                (s, one_word(start[1].entry(i).map_err(Err)?.0)?)
            };
            Ok(decode::header(
                v[0] as i32,
                v[1] as i32,
                v[2] as i32,
                seconds,
                ticks,
            ))
        }
    }
}

fn one_word(raw: &[u8]) -> Split<u32> {
    match raw {
        [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(Ok(format!("header leaf of {} bytes, not 4", raw.len()))),
    }
}

fn split_frames(
    cols: &mut [BranchReader],
    headers: &mut Option<Vec<BranchReader>>,
    i: u64,
    slice: &DaqHeader,
) -> Split<(Vec<daq::timeslice::SuperFrame>, u64)> {
    const NAMES: [&str; 7] = [
        "id",
        "daq",
        "status",
        "fifo",
        "status_3",
        "status_4",
        "numberOfHits",
    ];
    let mut words = Vec::with_capacity(7);
    for (k, name) in NAMES.iter().enumerate() {
        words.push(column(cols[k].entry(i).map_err(Err)?.0, name).map_err(Ok)?);
    }
    let frame_headers = match headers {
        Some(hs) => {
            let mut c = Vec::with_capacity(5);
            for b in hs.iter_mut() {
                c.push(column(b.entry(i).map_err(Err)?.0, "frame header").map_err(Ok)?);
            }
            let n = words[0].len();
            if c.iter().any(|col| col.len() != n) {
                return Err(Ok(format!("frame header columns do not match {n} frames")));
            }
            Some(
                (0..n)
                    .map(|k| {
                        decode::header(
                            c[0][k] as i32,
                            c[1][k] as i32,
                            c[2][k] as i32,
                            c[3][k],
                            c[4][k],
                        )
                    })
                    .collect(),
            )
        }
        None => None,
    };
    let mut w = words.into_iter();
    let mut next = || w.next().unwrap_or_default();
    let columns = Columns {
        ids: next(),
        daq: next(),
        status: next(),
        fifo: next(),
        status_3: next(),
        status_4: next(),
        n_hits: next(),
        headers: frame_headers,
    };
    let total: usize = columns.n_hits.iter().map(|&n| n as usize).sum();
    let (raw, at) = cols[7].entry(i).map_err(Err)?;
    let mut b = Bytes::new(raw);
    let hits = hit_buffer(&mut b, total, columns.ids.len()).map_err(Ok)?;
    Ok((columns.frames(hits, slice).map_err(Ok)?, at))
}

/// The KM3NeT streams of one file, in the order of its key list.
pub fn streams(file: &Arc<RootFile>) -> Result<Vec<StreamReader>> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for key in file.keys() {
        let Some(stream) = Stream::from_tree(&key.name) else {
            continue;
        };
        if key.class_name != "TTree" || seen.contains(&stream) {
            continue;
        }
        seen.push(stream);
        let key = file.key(&key.name).unwrap_or(key);
        let tree = Tree::read(file, key)?;
        if let Some(r) = StreamReader::new(file, stream, &tree)? {
            out.push(r);
        }
    }
    Ok(out)
}
