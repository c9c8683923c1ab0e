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
    matches!(open_input(path.as_ref()), Ok(Input::Root))
}

/// An input opened once and recognised from its first bytes.
pub enum Input {
    /// A ROOT file (always a regular file: ROOT is read at offsets, and is
    /// opened again by path for that).
    Root,
    /// Anything else, from its first byte: a dump or recording, from a
    /// file, a FIFO or standard input.
    Stream(Box<dyn std::io::Read + Send>),
}

/// Opens `path` (`-`: standard input) and looks at its first bytes without
/// opening it again, so that FIFOs, pipes and `/dev/stdin` lose nothing:
/// the bytes read to recognise the content are handed back in front of the
/// rest. A directory is an error that says so.
pub fn open_input(path: &std::path::Path) -> std::io::Result<Input> {
    use std::io::{Error, ErrorKind, Read};
    let mut input: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(Error::new(ErrorKind::IsADirectory, "is a directory"));
        }
        if meta.is_file() {
            let mut head = [0u8; 4];
            let n = read_up_to(&mut &file, &mut head)?;
            if is_root(&head[..n]) {
                return Ok(Input::Root);
            }
            let mut file = file;
            std::io::Seek::rewind(&mut file)?;
            return Ok(Input::Stream(Box::new(file)));
        }
        Box::new(file)
    };
    let mut head = [0u8; 4];
    let n = read_up_to(&mut input, &mut head)?;
    if is_root(&head[..n]) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "a ROOT file must be a regular file (it is read at offsets), not a pipe",
        ));
    }
    Ok(Input::Stream(Box::new(
        std::io::Cursor::new(head[..n].to_vec()).chain(input),
    )))
}

/// Reads until `buf` is full or the input ends (a pipe hands out what
/// its writer wrote so far).
fn read_up_to(input: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
