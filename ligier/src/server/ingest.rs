//! The dispatcher's reading side: whole socket reads into shared chunks.
//!
//! One `read` typically brings many small messages. They are parsed in
//! place and handed out as ranges of one reference-counted chunk, so the
//! per-message cost is a few comparisons and a refcount, not an
//! allocation, and a subscriber that takes every message writes the chunk
//! back out nearly as it came in. A message too big to share a chunk
//! usefully gets an exact buffer of its own, filled as its bytes arrive.
//!
//! Buffers are sized to use: an idle connection holds none, the read
//! buffer starts small and doubles only while reads fill it, and every
//! buffer handed out is exactly as large as its contents, so that what the
//! queues count is what the process holds.

use std::io::{self, Read};
use std::sync::Arc;

use daq::controlhost::{Prefix, Tag, PREFIX_LEN};

use crate::wire::ReadError;

/// Largest read buffer (a busy publisher's reads fill it).
const CHUNK: usize = 256 << 10;
/// First read buffer of a connection: a control message or a few small
/// publications fit; a connection that never sends has none at all.
const FIRST_CHUNK: usize = 4 << 10;
/// Messages at least this big are read into a buffer of their own.
const LARGE: usize = 32 << 10;
/// Largest buffer allocated up front for one large message; it grows as
/// data arrives, so a lying prefix costs nothing.
const INITIAL_LARGE: usize = 1 << 20;

/// A message inside a chunk: `data[start..start + len]` is prefix + payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    pub start: usize,
    pub len: usize,
    pub tag: Tag,
}

pub(crate) struct Ingest {
    max_message_size: u32,
    /// `buf[..filled]` holds unparsed bytes; empty until the first read.
    buf: Vec<u8>,
    filled: usize,
    /// The last read filled the buffer: the peer sends faster than it
    /// holds, so the next read gets a bigger one.
    last_read_filled: bool,
}

impl Ingest {
    pub fn new(max_message_size: u32) -> Ingest {
        Ingest {
            max_message_size,
            buf: Vec::new(),
            filled: 0,
            last_read_filled: false,
        }
    }

    /// Block until at least one complete message is available; return the
    /// chunk holding it (and any others that arrived with it) and fill
    /// `frames` with their positions, in order.
    pub fn read_batch(
        &mut self,
        input: &mut impl Read,
        frames: &mut Vec<Frame>,
    ) -> Result<Arc<Vec<u8>>, ReadError> {
        frames.clear();
        loop {
            let mut pos = 0;
            let mut pending = None;
            while self.filled - pos >= PREFIX_LEN {
                let mut raw = [0u8; PREFIX_LEN];
                raw.copy_from_slice(&self.buf[pos..pos + PREFIX_LEN]);
                let prefix = match Prefix::decode_limited(&raw, self.max_message_size) {
                    Ok(prefix) => prefix,
                    // Deliver what came before the bad prefix first; the
                    // error comes with the next call.
                    Err(_) if !frames.is_empty() => break,
                    Err(source) => return Err(ReadError::Prefix { bytes: raw, source }),
                };
                let len = PREFIX_LEN + prefix.length as usize;
                if self.filled - pos < len {
                    pending = Some((prefix.tag, len));
                    break;
                }
                frames.push(Frame {
                    start: pos,
                    len,
                    tag: prefix.tag,
                });
                pos += len;
            }
            if !frames.is_empty() {
                return Ok(self.freeze(pos));
            }
            if let Some((tag, len)) = pending.filter(|&(_, len)| len >= LARGE) {
                let data = self.read_large(input, len)?;
                frames.push(Frame { start: 0, len, tag });
                return Ok(data);
            }
            let n = if self.buf.is_empty() {
                self.first_read(input)?
            } else {
                self.make_room();
                let n = loop {
                    match input.read(&mut self.buf[self.filled..]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other?,
                    }
                };
                self.last_read_filled = self.filled + n == self.buf.len();
                n
            };
            if n == 0 {
                return Err(match (self.filled, pending) {
                    (0, _) => ReadError::Closed,
                    (got, Some((_, expected))) => ReadError::Truncated { got, expected },
                    (got, None) => ReadError::Truncated {
                        got,
                        expected: PREFIX_LEN,
                    },
                });
            }
            self.filled += n;
        }
    }

    /// The wait of an idle connection: into a buffer on the stack, so that
    /// a peer that sends nothing costs no heap at all (a thread that never
    /// allocates gets no allocator heap either). What arrives moves into
    /// a first heap buffer.
    fn first_read(&mut self, input: &mut impl Read) -> io::Result<usize> {
        let mut first = [0u8; 512];
        let n = loop {
            match input.read(&mut first) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n > 0 {
            self.buf = vec![0; FIRST_CHUNK];
            self.buf[..n].copy_from_slice(&first[..n]);
        }
        self.last_read_filled = n == first.len();
        Ok(n)
    }

    /// Free space for the next read: a first buffer, or twice the current
    /// one (up to CHUNK) when it is full or the last read filled it.
    fn make_room(&mut self) {
        let grow = self.filled == self.buf.len() || self.last_read_filled;
        self.last_read_filled = false;
        if grow && self.buf.len() < CHUNK {
            let size = (self.buf.len() * 2).clamp(FIRST_CHUNK, CHUNK);
            self.buf.resize(size, 0);
        } else if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
    }

    /// Hand out `buf[..used]` and keep the unparsed tail for the next read.
    fn freeze(&mut self, used: usize) -> Arc<Vec<u8>> {
        let tail = self.filled - used;
        self.filled = tail;
        if used < self.buf.len() / 4 * 3 {
            // Copy the messages out exactly and keep the buffer, so that a
            // trickle of small messages never pins mostly-empty chunks.
            let data = self.buf[..used].to_vec();
            self.buf.copy_within(used..used + tail, 0);
            if tail == 0 && !self.last_read_filled && self.buf.len() <= FIRST_CHUNK {
                // Nothing pending and the peer paused: it holds no buffer
                // while it is quiet.
                self.buf = Vec::new();
            } else if used + tail < self.buf.len() / 8 && self.buf.len() > FIRST_CHUNK {
                // Traffic slowed down: give back half of the buffer.
                self.buf.truncate(self.buf.len() / 2);
                self.buf.shrink_to_fit();
            }
            Arc::new(data)
        } else {
            // A nearly full buffer is handed out whole (no copy); the next
            // one has the same size, since reads are filling it.
            let mut next = vec![0; self.buf.len()];
            next[..tail].copy_from_slice(&self.buf[used..used + tail]);
            let mut data = std::mem::replace(&mut self.buf, next);
            data.truncate(used);
            Arc::new(data)
        }
    }

    /// The rest of a large message, straight into its own buffer. The
    /// partial message is at the front of `buf` (everything before it was
    /// handed out already).
    ///
    /// The buffer grows by doubling but never beyond `len`, so it ends
    /// exactly `len` bytes large (`read_to_end` would leave up to twice
    /// that allocated, and the queue bounds would be half the memory).
    fn read_large(&mut self, input: &mut impl Read, len: usize) -> Result<Arc<Vec<u8>>, ReadError> {
        let mut data = vec![0; len.min(INITIAL_LARGE).max(self.filled)];
        data[..self.filled].copy_from_slice(&self.buf[..self.filled]);
        let mut got = self.filled;
        self.filled = 0;
        self.buf = Vec::new();
        while got < len {
            if got == data.len() {
                let size = (data.len() * 2).min(len);
                data.reserve_exact(size - data.len());
                data.resize(size, 0);
            }
            match input.read(&mut data[got..]) {
                Ok(0) => return Err(ReadError::Truncated { got, expected: len }),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Arc::new(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daq::controlhost::encode_message;

    /// Hands out the input in fixed-size reads.
    struct Slices<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Slices<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn messages_of_all_sizes_come_out_intact_and_in_order() {
        let tag = Tag::new("X").unwrap();
        let sizes = [0usize, 5, 100, 40_000, 3, 300_000, 7, 70_000, 1];
        let mut wire = Vec::new();
        for (i, &s) in sizes.iter().enumerate() {
            wire.extend(encode_message(tag, &vec![i as u8; s]));
        }
        for step in [1usize, 7, 1000, 65_536, usize::MAX] {
            let mut input = Slices { data: &wire, step };
            let mut ingest = Ingest::new(1 << 20);
            let mut frames = Vec::new();
            let mut got = Vec::new();
            loop {
                match ingest.read_batch(&mut input, &mut frames) {
                    Ok(data) => {
                        for f in &frames {
                            got.push(data[f.start + PREFIX_LEN..f.start + f.len].to_vec());
                        }
                    }
                    Err(ReadError::Closed) => break,
                    Err(e) => panic!("step {step}: {e}"),
                }
            }
            assert_eq!(got.len(), sizes.len(), "step {step}");
            for (i, payload) in got.iter().enumerate() {
                assert_eq!(payload, &vec![i as u8; sizes[i]], "step {step} message {i}");
            }
        }
    }

    #[test]
    fn buffers_are_sized_to_their_contents() {
        let tag = Tag::new("X").unwrap();
        // Large messages: exactly their size, not the doubled capacity of
        // a growing buffer (1 MiB payloads used to hold 2 MiB each).
        for size in [40_000usize, (1 << 20) + 5, 3 << 20] {
            let wire = encode_message(tag, &vec![7; size]);
            let mut input = Slices {
                data: &wire,
                step: 65_536,
            };
            let mut frames = Vec::new();
            let data = Ingest::new(64 << 20)
                .read_batch(&mut input, &mut frames)
                .unwrap();
            assert_eq!(data.len(), size + PREFIX_LEN);
            assert_eq!(data.capacity(), size + PREFIX_LEN, "payload {size}");
        }
        // A trickle of small messages: copied out exactly, and the
        // connection's read buffer stays small.
        let wire = encode_message(tag, b"hello");
        let mut ingest = Ingest::new(1 << 20);
        let mut frames = Vec::new();
        let data = ingest.read_batch(&mut &wire[..], &mut frames).unwrap();
        assert_eq!(data.capacity(), wire.len());
        assert!(ingest.buf.len() <= FIRST_CHUNK, "{}", ingest.buf.len());
    }

    #[test]
    fn truncation_and_bad_prefixes_are_errors() {
        let tag = Tag::new("X").unwrap();
        let wire = encode_message(tag, &[1; 100]);
        let mut frames = Vec::new();
        let err = Ingest::new(1000)
            .read_batch(&mut &wire[..50], &mut frames)
            .unwrap_err();
        assert!(matches!(
            err,
            ReadError::Truncated {
                got: 50,
                expected: 116
            }
        ));
        let big = encode_message(tag, &[1; 50_000]);
        let err = Ingest::new(1 << 20)
            .read_batch(&mut &big[..40_000], &mut frames)
            .unwrap_err();
        assert!(matches!(err, ReadError::Truncated { got: 40_000, .. }));
        let err = Ingest::new(10)
            .read_batch(&mut &wire[..], &mut frames)
            .unwrap_err();
        assert!(matches!(err, ReadError::Prefix { .. }));
    }
}
