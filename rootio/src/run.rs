//! Whole runs as `daq::dump::Record`s: every entry of every KM3NeT tree,
//! re-encoded as the wire frame it was live and tagged with its
//! ControlHost tag, so that replay and publish paths built for `.dat`
//! dumps take ROOT files unchanged.
//!
//! Entries are stored in data-filter processing order, not time order.
//! [`Order::Time`] reads the header branches of every stream first (small),
//! sorts each stream stably by frame index and merges the streams; the
//! payloads are then read in that order, at most two baskets per branch at
//! a time. The sort keeps 16 bytes per entry, nothing else grows with the
//! file.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use daq::controlhost::Tag;
use daq::dump::Record;

use crate::error::{Result, RootError};
use crate::file::RootFile;
use crate::km3net::{streams, Frame, Stream, StreamReader};

/// Keys looked at after a file's recorded end (a basket every few MB: this
/// covers far more than any gap between two autosaves).
const SCAN_LIMIT: usize = 100_000;

/// Entries per stream in baskets stored after the file's recorded end
/// (`fEND`, where the last autosave left it) that no tree lists: written
/// after the metadata was last saved, beyond what the metadata reaches.
/// Per tree, the branch with the most.
fn baskets_beyond_metadata(file: &RootFile, streams: &[StreamReader]) -> Vec<(Stream, u64)> {
    let listed: std::collections::HashSet<u64> =
        streams.iter().flat_map(|s| s.basket_seeks()).collect();
    let mut per_branch: Vec<(Stream, String, u64)> = Vec::new();
    for (key, entries) in file.scan_keys(file.header().end, SCAN_LIMIT) {
        let (Some(n), Some(stream)) = (entries, Stream::from_tree(&key.title)) else {
            continue;
        };
        if listed.contains(&key.seek_key) {
            continue;
        }
        match per_branch
            .iter_mut()
            .find(|(s, b, _)| *s == stream && *b == key.name)
        {
            Some((_, _, m)) => *m += n,
            None => per_branch.push((stream, key.name.clone(), n)),
        }
    }
    let mut out: Vec<(Stream, u64)> = Vec::new();
    for (stream, branch, n) in per_branch {
        // The first of these baskets starts where the listed ones end: it
        // holds the entries that were embedded at the autosave, and more.
        let (written, readable) = streams
            .iter()
            .filter(|s| s.stream() == stream)
            .flat_map(|s| s.branch_ends())
            .find(|(name, _, _)| *name == branch)
            .map_or((0, 0), |(_, w, r)| (w, r));
        let n = (written + n).saturating_sub(readable);
        match out.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, m)) => *m = (*m).max(n),
            None => out.push((stream, n)),
        }
    }
    out
}

/// In which order a run's entries come out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Tree by tree in key-list order, entries as stored.
    File,
    /// Sorted by frame index per stream, streams merged (ties: summary,
    /// timeslices, then events).
    Time,
}

/// One entry of a run.
#[derive(Debug, Clone)]
pub struct Entry {
    pub stream: Stream,
    /// Entry number in its tree.
    pub index: u64,
    /// File offset of the basket holding the entry's payload.
    pub offset: u64,
    pub frame: Frame,
}

impl Entry {
    /// The entry as a dump record: the frame in wire encoding, tagged.
    pub fn to_record(&self) -> Record {
        Record {
            offset: self.offset,
            payload_offset: self.offset,
            tag: Tag::new(self.stream.tag()).ok(),
            payload: self.frame.encode(),
        }
    }
}

/// Reads the KM3NeT entries of one ROOT file.
pub struct RunReader {
    file: Arc<RootFile>,
    /// Entries per stream in baskets after the file's recorded end.
    beyond: Vec<(Stream, u64)>,
    streams: Vec<StreamReader>,
    /// Time order: per stream, (frame index, entry) still to read.
    queues: Option<Vec<VecDeque<(i32, u64)>>>,
    /// File order: next stream and entry.
    cursor: (usize, u64),
    /// Errors met while sorting, handed out first.
    errors: VecDeque<RootError>,
    done: u64,
    total: u64,
}

impl RunReader {
    pub fn open(path: impl AsRef<Path>, order: Order) -> Result<RunReader> {
        RunReader::open_streams(path, order, |_| true)
    }

    /// Like [`RunReader::open`], reading only the streams `keep` wants:
    /// the others are never decompressed.
    pub fn open_streams(
        path: impl AsRef<Path>,
        order: Order,
        keep: impl Fn(Stream) -> bool,
    ) -> Result<RunReader> {
        let file = Arc::new(RootFile::open(path)?);
        let mut streams = streams(&file)?;
        streams.retain(|s| keep(s.stream()));
        let total = streams.iter().map(StreamReader::len).sum();
        let mut errors = VecDeque::new();
        let queues = match order {
            Order::File => None,
            Order::Time => Some(
                streams
                    .iter_mut()
                    .map(|s| {
                        let mut keys = Vec::with_capacity(s.len() as usize);
                        for i in 0..s.len() {
                            match s.header(i) {
                                Ok(h) => keys.push((h.frame_index, i)),
                                Err(e) => errors.push_back(e),
                            }
                        }
                        // Stable: equal frame indices keep file order.
                        keys.sort_by_key(|&(fi, _)| fi);
                        keys.into()
                    })
                    .collect(),
            ),
        };
        let beyond = baskets_beyond_metadata(&file, &streams);
        Ok(RunReader {
            file,
            beyond,
            streams,
            queues,
            cursor: (0, 0),
            errors,
            done: 0,
            total,
        })
    }

    /// Entries that cannot be read, per stream: counted by the tree
    /// metadata but in no basket it lists, or in baskets written after the
    /// metadata (a file still being written, or whose writer died: its
    /// trees were last saved at an autosave).
    pub fn unreached(&self) -> Vec<(Stream, u64)> {
        let mut out: Vec<(Stream, u64)> = self
            .streams
            .iter()
            .map(|s| (s.stream(), s.unreached()))
            .collect();
        for &(stream, n) in &self.beyond {
            match out.iter_mut().find(|(s, _)| *s == stream) {
                Some((_, m)) => *m += n,
                None => out.push((stream, n)),
            }
        }
        out.retain(|&(_, n)| n > 0);
        out
    }

    /// A warning naming the entries that will not be replayed, if any.
    pub fn incomplete(&self) -> Option<String> {
        let missing = self.unreached();
        if missing.is_empty() {
            return None;
        }
        let list: Vec<String> = missing
            .iter()
            .map(|(s, n)| format!("{n} {}", s.tree()))
            .collect();
        Some(format!(
            "{}: file not complete (still being written, or its writer stopped): {} entries not reached ({}); replaying the {} entries its metadata reaches",
            self.file.path().display(),
            missing.iter().map(|(_, n)| n).sum::<u64>(),
            list.join(", "),
            self.total
        ))
    }

    pub fn file(&self) -> &RootFile {
        &self.file
    }

    /// Entries of all streams.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Approximate bytes of the file consumed so far (entries read × mean
    /// entry share of the file), for progress bars.
    pub fn position(&self) -> u64 {
        if self.total == 0 {
            // Nothing to read (or nothing wanted): no progress to show.
            return 0;
        }
        (self.file.size() as u128 * u128::from(self.done) / u128::from(self.total)) as u64
    }

    /// The streams present (non-empty trees).
    pub fn streams(&self) -> impl Iterator<Item = (Stream, u64)> + '_ {
        self.streams.iter().map(|s| (s.stream(), s.len()))
    }

    fn next_position(&mut self) -> Option<(usize, u64)> {
        match &mut self.queues {
            Some(queues) => {
                let s = (0..queues.len())
                    .filter_map(|s| {
                        queues[s]
                            .front()
                            .map(|&(fi, _)| (fi, self.streams[s].stream(), s))
                    })
                    .min()?
                    .2;
                queues[s].pop_front().map(|(_, i)| (s, i))
            }
            None => {
                while let Some(s) = self.streams.get(self.cursor.0) {
                    if self.cursor.1 < s.len() {
                        let at = self.cursor;
                        self.cursor.1 += 1;
                        return Some(at);
                    }
                    self.cursor = (self.cursor.0 + 1, 0);
                }
                None
            }
        }
    }

    /// The next entry, decoded.
    pub fn next_entry(&mut self) -> Option<Result<Entry>> {
        if let Some(e) = self.errors.pop_front() {
            return Some(Err(e));
        }
        let (s, index) = self.next_position()?;
        self.done += 1;
        let reader = &mut self.streams[s];
        Some(reader.frame(index).map(|(frame, offset)| Entry {
            stream: reader.stream(),
            index,
            offset,
            frame,
        }))
    }

    /// The next entry as a tagged dump record in wire encoding, made
    /// straight from the ROOT bytes where the layout allows (the same
    /// bytes as `next_entry()?.to_record()`).
    pub fn next_record(&mut self) -> Option<Result<Record>> {
        if let Some(e) = self.errors.pop_front() {
            return Some(Err(e));
        }
        let (s, index) = self.next_position()?;
        self.done += 1;
        let reader = &mut self.streams[s];
        let mut payload = Vec::new();
        Some(reader.wire_into(index, &mut payload).map(|offset| Record {
            offset,
            payload_offset: offset,
            tag: Tag::new(reader.stream().tag()).ok(),
            payload,
        }))
    }
}

impl Iterator for RunReader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        self.next_record()
    }
}

/// A run file's records in time order (per stream sorted by frame index,
/// streams merged). Several files of consecutive runs are concatenated by
/// the caller.
pub fn open_run(path: impl AsRef<Path>) -> Result<RunReader> {
    RunReader::open(path, Order::Time)
}
