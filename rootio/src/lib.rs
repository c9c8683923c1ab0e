//! A pure-Rust reader of ROOT files, as far as the KM3NeT online files
//! (archived runs written by Jpp) need it, and the decoding of their trees
//! into the types of the `daq` wire layer.
//!
//! Layers, bottom up: [`file`] (header, keys, objects), [`compress`]
//! (ROOT's block framing over pure-Rust decompressors), [`streamer`]
//! (object-stream basics), [`tree`] (TTree/TBranch metadata), [`basket`]
//! (entries, one basket at a time), [`km3net`] (KM3NeT trees → `daq`
//! frames) and [`run`] (whole runs as `daq::dump::Record`s, in file or
//! time order). Nothing panics on bad input: every problem is a
//! [`RootError`].

pub mod basket;
mod buf;
pub mod compress;
pub mod error;
pub mod file;
pub mod streamer;
pub mod tree;

pub use error::RootError;
pub use file::RootFile;
pub use tree::Tree;
pub mod km3net;
pub mod records;
pub mod run;
#[cfg(feature = "write")]
pub mod write;

pub use records::{RecordError, RecordReader};
pub use run::{open_run, Entry, Order, RunReader};

/// True if `head` (the first bytes of a file) is a ROOT file's.
pub fn is_root(head: &[u8]) -> bool {
    head.starts_with(b"root")
}

/// True if the file at `path` starts like a ROOT file.
pub fn is_root_file(path: impl AsRef<std::path::Path>) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| is_root(&head))
}
