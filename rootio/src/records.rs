//! One record source for the replay and publish paths: a `.dat` dump or
//! recording (through `daq::dump::DumpReader`) or a ROOT run file (through
//! [`RunReader`], in time order), told apart by the file's first bytes.

use std::io::Read;
use std::path::Path;

use daq::dump::{DumpError, DumpReader, Record};

use crate::error::RootError;
use crate::run::{Order, RunReader};

/// An error of either reader.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error(transparent)]
    Root(#[from] RootError),
}

/// Records of a dump, a recording or a ROOT run. A dump reader configured
/// by the caller (forced tag or container) goes in as
/// `RecordReader::Dump(DumpReader::new(Box::new(input) as Box<dyn Read + Send>)…)`.
pub enum RecordReader {
    Dump(DumpReader<Box<dyn Read + Send>>),
    Root(Box<RunReader>),
}

impl RecordReader {
    /// Open `path`: a ROOT file if it starts with ROOT's magic (records in
    /// time order), else a dump whose container is recognised from its
    /// content.
    pub fn open(path: impl AsRef<Path>) -> Result<RecordReader, RecordError> {
        RecordReader::open_tags(path, &[])
    }

    /// Like [`RecordReader::open`], for a reader that wants only `tags`
    /// (empty: all): a ROOT file's other streams are not read at all, and a
    /// dump's records of other tags are skipped without copying their
    /// payload (a log source wants 2 tags of a recording that holds 8).
    pub fn open_tags(path: impl AsRef<Path>, tags: &[String]) -> Result<RecordReader, RecordError> {
        let path = path.as_ref();
        let input = match crate::open_input(path)
            .map_err(|e| RecordError::Root(RootError::Io(e)))?
        {
            crate::Input::Root => {
                let keep =
                    |s: crate::km3net::Stream| tags.is_empty() || tags.iter().any(|t| t == s.tag());
                return Ok(RecordReader::Root(Box::new(RunReader::open_streams(
                    path,
                    Order::Time,
                    keep,
                )?)));
            }
            crate::Input::Stream(input) => input,
        };
        let only = tags
            .iter()
            .filter_map(|t| daq::controlhost::Tag::new(t).ok())
            .collect();
        Ok(RecordReader::Dump(
            DumpReader::new(input).with_only_tags(only),
        ))
    }

    /// For a ROOT file still being written: which entries will not be
    /// read (see [`RunReader::incomplete`]).
    pub fn warning(&self) -> Option<String> {
        match self {
            RecordReader::Dump(_) => None,
            RecordReader::Root(r) => r.incomplete(),
        }
    }

    /// True for a ROOT run with no entries this reader will read (e.g. none
    /// of the wanted tags): its bytes do not count towards progress.
    pub fn reads_nothing(&self) -> bool {
        matches!(self, RecordReader::Root(r) if r.is_empty())
    }

    /// Bytes of the file consumed so far (estimated for ROOT files).
    pub fn position(&self) -> u64 {
        match self {
            RecordReader::Dump(r) => r.position(),
            RecordReader::Root(r) => RunReader::position(r),
        }
    }
}

impl Iterator for RecordReader {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RecordReader::Dump(r) => r.next().map(|x| x.map_err(RecordError::from)),
            RecordReader::Root(r) => r.next().map(|x| x.map_err(RecordError::from)),
        }
    }
}
