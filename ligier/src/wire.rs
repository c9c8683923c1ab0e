//! Reading whole ControlHost messages off a byte stream.
//!
//! The reader is incremental: a read timeout in the middle of a message
//! keeps what has arrived so far, so callers can poll a shutdown flag
//! between reads without ever losing stream synchronisation.

use std::io::{self, Read, Write};

use daq::controlhost::{encode_message, Prefix, PrefixError, Tag, PREFIX_LEN};

/// Default cap on one payload: far above any DAQ frame, far below what
/// would hurt if a hundred clients lied about their lengths at once.
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 64 << 20;

/// Largest buffer allocated up front for a payload. Bigger payloads grow as
/// their bytes actually arrive, so a prefix that merely *claims* a large
/// length costs nothing until the data is there.
const INITIAL_PAYLOAD_CAPACITY: usize = 1 << 20;

/// One ControlHost message, held in its wire form: the 16 prefix bytes
/// exactly as received (reserved bytes included) followed by the payload.
/// One contiguous buffer means recordings, mirrors and the dispatcher's
/// fan-out write it with a single copy-free slice.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    tag: Tag,
    wire: Vec<u8>,
}

impl Message {
    /// A message with a freshly encoded prefix (reserved bytes zero).
    pub fn new(tag: Tag, payload: &[u8]) -> Message {
        Message {
            tag,
            wire: encode_message(tag, payload),
        }
    }

    pub fn tag(&self) -> Tag {
        self.tag
    }

    pub fn payload(&self) -> &[u8] {
        &self.wire[PREFIX_LEN..]
    }

    /// The payload as an owned buffer (moves the bytes down by 16).
    pub fn into_payload(mut self) -> Vec<u8> {
        self.wire.drain(..PREFIX_LEN);
        self.wire
    }

    /// The 16 prefix bytes as received.
    pub fn prefix(&self) -> &[u8] {
        &self.wire[..PREFIX_LEN]
    }

    /// Prefix plus payload, as on the wire.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    pub fn into_wire(self) -> Vec<u8> {
        self.wire
    }

    pub fn wire_len(&self) -> usize {
        self.wire.len()
    }

    /// Write prefix and payload, e.g. into a recording.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.wire)
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("tag", &self.tag)
            .field("len", &self.payload().len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the stream cleanly between two messages.
    #[error("connection closed by peer")]
    Closed,
    #[error("connection closed mid-message after {got} of {expected} bytes")]
    Truncated { got: usize, expected: usize },
    #[error("malformed prefix {bytes:02x?}: {source}")]
    Prefix {
        bytes: [u8; PREFIX_LEN],
        source: PrefixError,
    },
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// True for the error kinds a socket read timeout produces.
pub fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Incremental message reader (see the module doc).
pub struct FrameReader {
    max_message_size: u32,
    prefix: [u8; PREFIX_LEN],
    prefix_filled: usize,
    /// The decoded prefix and the wire bytes (prefix first) received so far.
    current: Option<(Prefix, Vec<u8>)>,
}

impl FrameReader {
    pub fn new(max_message_size: u32) -> FrameReader {
        FrameReader {
            max_message_size,
            prefix: [0; PREFIX_LEN],
            prefix_filled: 0,
            current: None,
        }
    }

    /// Bytes of an unfinished message held so far (0 between messages).
    pub fn partial_len(&self) -> usize {
        match &self.current {
            Some((_, wire)) => wire.len(),
            None => self.prefix_filled,
        }
    }

    /// Forget an unfinished message, e.g. after a reconnect.
    pub fn reset(&mut self) {
        self.prefix_filled = 0;
        self.current = None;
    }

    /// Read until one message is complete. `Ok(None)` means the underlying
    /// read timed out; the partial message is kept for the next call.
    pub fn poll(&mut self, input: &mut impl Read) -> Result<Option<Message>, ReadError> {
        loop {
            if let Some((prefix, wire)) = &mut self.current {
                let expected = PREFIX_LEN + prefix.length as usize;
                let missing = (expected - wire.len()) as u64;
                if missing > 0 {
                    // `read_to_end` appends into spare capacity without
                    // zeroing it and keeps what it read when it times out.
                    match (&mut *input).take(missing).read_to_end(wire) {
                        Ok(_) => {}
                        Err(e) if is_timeout(&e) => return Ok(None),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(ReadError::Io(e)),
                    }
                    if wire.len() < expected {
                        let got = wire.len();
                        self.reset();
                        return Err(ReadError::Truncated { got, expected });
                    }
                }
                let (prefix, wire) = self.current.take().expect("message in progress");
                self.prefix_filled = 0;
                return Ok(Some(Message {
                    tag: prefix.tag,
                    wire,
                }));
            }
            match input.read(&mut self.prefix[self.prefix_filled..]) {
                Ok(0) => {
                    let got = self.prefix_filled;
                    self.reset();
                    return Err(if got == 0 {
                        ReadError::Closed
                    } else {
                        ReadError::Truncated {
                            got,
                            expected: PREFIX_LEN,
                        }
                    });
                }
                Ok(n) => self.prefix_filled += n,
                Err(e) if is_timeout(&e) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadError::Io(e)),
            }
            if self.prefix_filled == PREFIX_LEN {
                let prefix = Prefix::decode_limited(&self.prefix, self.max_message_size).map_err(
                    |source| {
                        let bytes = self.prefix;
                        self.reset();
                        ReadError::Prefix { bytes, source }
                    },
                )?;
                let capacity = (prefix.length as usize).min(INITIAL_PAYLOAD_CAPACITY);
                let mut wire = Vec::with_capacity(PREFIX_LEN + capacity);
                wire.extend_from_slice(&self.prefix);
                self.current = Some((prefix, wire));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daq::controlhost::encode_message;

    /// A reader that hands out bytes in fixed slices and times out between
    /// them, like a socket with a read timeout.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        step: usize,
        tick: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.tick = !self.tick;
            if self.tick {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.step).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn survives_timeouts_mid_message() {
        let tag = Tag::new("IO_EVT").unwrap();
        let payload: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let mut data = encode_message(tag, &payload);
        data.extend(encode_message(tag, b""));
        let mut input = Trickle {
            data,
            pos: 0,
            step: 7,
            tick: false,
        };
        let mut reader = FrameReader::new(1 << 20);
        let mut got = Vec::new();
        loop {
            match reader.poll(&mut input) {
                Ok(Some(m)) => got.push(m),
                Ok(None) => continue,
                Err(ReadError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload(), &payload[..]);
        assert_eq!(got[0].tag(), tag);
        assert!(got[1].payload().is_empty());
    }

    #[test]
    fn truncated_and_malformed_input_is_reported() {
        let tag = Tag::new("MSG").unwrap();
        let data = encode_message(tag, b"hello");
        let mut reader = FrameReader::new(1 << 20);
        let err = reader.poll(&mut &data[..10]).unwrap_err();
        assert!(matches!(err, ReadError::Truncated { got: 10, .. }));
        let err = reader.poll(&mut &data[..18]).unwrap_err();
        assert!(matches!(
            err,
            ReadError::Truncated {
                got: 18,
                expected: 21
            }
        ));
        let mut bad = data.clone();
        bad[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            reader.poll(&mut &bad[..]),
            Err(ReadError::Prefix { .. })
        ));
        let huge = Prefix::new(tag, 1 << 30).encode();
        assert!(matches!(
            reader.poll(&mut &huge[..]),
            Err(ReadError::Prefix { .. })
        ));
    }

    #[test]
    fn reserved_prefix_bytes_are_kept() {
        let tag = Tag::new("MSG").unwrap();
        let mut data = encode_message(tag, b"x");
        data[12..16].copy_from_slice(b"abcd");
        let msg = FrameReader::new(100).poll(&mut &data[..]).unwrap().unwrap();
        let mut out = Vec::new();
        msg.write_to(&mut out).unwrap();
        assert_eq!(out, data);
    }
}
