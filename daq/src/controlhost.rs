//! ControlHost messages: the 16-byte prefix, tags and the `_Subscri` string
//! (wire-formats spec §1). Pure codec: no sockets here, so the Ligier, the
//! client and the recorder all share one definition of the bytes.

use std::fmt;

/// Bytes of the message prefix: 8 tag bytes, i32 BE length, 4 reserved bytes.
pub const PREFIX_LEN: usize = 16;
/// Bytes of the tag field.
pub const TAG_LEN: usize = 8;

/// A ControlHost tag: 1–8 printable ASCII characters, NUL-padded on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    raw: [u8; TAG_LEN],
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("empty tag")]
    Empty,
    #[error("tag longer than 8 bytes: {0:?}")]
    TooLong(String),
    #[error("tag byte 0x{byte:02x} at position {position} is not printable ASCII")]
    BadByte { position: usize, byte: u8 },
}

impl Tag {
    /// Tag from text, e.g. `Tag::new("IO_EVT")`.
    pub fn new(name: &str) -> Result<Tag, TagError> {
        let bytes = name.as_bytes();
        if bytes.is_empty() {
            return Err(TagError::Empty);
        }
        if bytes.len() > TAG_LEN {
            return Err(TagError::TooLong(name.to_string()));
        }
        let mut raw = [0u8; TAG_LEN];
        raw[..bytes.len()].copy_from_slice(bytes);
        Tag::from_wire(raw)
    }

    /// Tag from the 8 wire bytes: printable ASCII, then only NUL padding.
    pub fn from_wire(raw: [u8; TAG_LEN]) -> Result<Tag, TagError> {
        let len = raw.iter().position(|&b| b == 0).unwrap_or(TAG_LEN);
        if len == 0 {
            return Err(TagError::Empty);
        }
        for (position, &byte) in raw.iter().enumerate() {
            let ok = if position < len {
                byte.is_ascii_graphic()
            } else {
                byte == 0
            };
            if !ok {
                return Err(TagError::BadByte { position, byte });
            }
        }
        Ok(Tag {
            raw,
            len: len as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Validated as ASCII on construction.
        std::str::from_utf8(&self.raw[..self.len as usize]).unwrap_or("")
    }

    /// The 8 NUL-padded bytes as sent on the wire.
    pub fn wire(&self) -> [u8; TAG_LEN] {
        self.raw
    }

    /// Control tags (`_Subscri`, `_Always`, …) start with an underscore.
    pub fn is_control(&self) -> bool {
        self.raw[0] == b'_'
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({:?})", self.as_str())
    }
}

impl std::str::FromStr for Tag {
    type Err = TagError;
    fn from_str(s: &str) -> Result<Tag, TagError> {
        Tag::new(s)
    }
}

/// Well-known tags. Functions rather than constants because `Tag::new`
/// validates; all of these are known-good.
pub mod tags {
    use super::Tag;
    fn known(name: &str) -> Tag {
        Tag::new(name).expect("built-in tag is valid")
    }
    pub fn subscribe() -> Tag {
        known("_Subscri")
    }
    pub fn always() -> Tag {
        known("_Always")
    }
    pub fn gime() -> Tag {
        known("_Gime")
    }
    pub fn my_id() -> Tag {
        known("_MyId")
    }
}

/// The 16-byte message prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub tag: Tag,
    /// Payload bytes following the prefix (the prefix itself not included).
    pub length: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("bad tag in prefix: {0}")]
    Tag(#[from] TagError),
    #[error("negative payload length {0}")]
    NegativeLength(i32),
    #[error("payload length {length} exceeds the limit of {limit} bytes")]
    TooLong { length: u32, limit: u32 },
}

impl Prefix {
    pub fn new(tag: Tag, length: usize) -> Prefix {
        Prefix {
            tag,
            length: u32::try_from(length).expect("ControlHost payloads are below 2 GiB"),
        }
    }

    pub fn encode(&self) -> [u8; PREFIX_LEN] {
        let mut out = [0u8; PREFIX_LEN];
        out[..TAG_LEN].copy_from_slice(&self.tag.wire());
        out[8..12].copy_from_slice(&(self.length as i32).to_be_bytes());
        out
    }

    /// Decode a prefix. The reserved bytes 12..16 are ignored, as every
    /// KM3NeT client does.
    pub fn decode(bytes: &[u8; PREFIX_LEN]) -> Result<Prefix, PrefixError> {
        let mut raw = [0u8; TAG_LEN];
        raw.copy_from_slice(&bytes[..TAG_LEN]);
        let tag = Tag::from_wire(raw)?;
        let length = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if length < 0 {
            return Err(PrefixError::NegativeLength(length));
        }
        Ok(Prefix {
            tag,
            length: length as u32,
        })
    }

    /// Decode and also refuse lengths above `limit`, so that a reader never
    /// allocates a buffer sized by an unchecked field.
    pub fn decode_limited(bytes: &[u8; PREFIX_LEN], limit: u32) -> Result<Prefix, PrefixError> {
        let prefix = Prefix::decode(bytes)?;
        if prefix.length > limit {
            return Err(PrefixError::TooLong {
                length: prefix.length,
                limit,
            });
        }
        Ok(prefix)
    }
}

/// A whole message: prefix followed by payload, ready to write.
pub fn encode_message(tag: Tag, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX_LEN + payload.len());
    out.extend_from_slice(&Prefix::new(tag, payload.len()).encode());
    out.extend_from_slice(payload);
    out
}

/// Delivery mode of one subscription entry (§1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `w`: best effort; the dispatcher may drop messages for a slow client.
    Any,
    /// `a`: every message is queued for this client.
    All,
}

impl Mode {
    pub fn letter(self) -> char {
        match self {
            Mode::Any => 'w',
            Mode::All => 'a',
        }
    }
}

/// The content of a `_Subscri` payload: the complete set of tags wanted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub entries: Vec<(Mode, Tag)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    #[error("subscription is not ASCII (byte {0})")]
    NotAscii(usize),
    #[error("unknown subscription mode {letter:?} at byte {offset} (expected 'w' or 'a')")]
    BadMode { letter: String, offset: usize },
    #[error("mode {letter:?} at byte {offset} has no tag after it")]
    MissingTag { letter: String, offset: usize },
    #[error("bad tag at byte {offset}: {source}")]
    BadTag { offset: usize, source: TagError },
}

impl Subscription {
    pub fn new() -> Subscription {
        Subscription::default()
    }

    pub fn with(mut self, mode: Mode, tag: Tag) -> Subscription {
        self.entries.push((mode, tag));
        self
    }

    /// Parse `" w IO_EVT a IO_SUM"`. Whitespace between tokens is free, so
    /// both km3pipe's and KM3io.jl's spellings are read.
    pub fn parse(payload: &[u8]) -> Result<Subscription, SubscriptionError> {
        if let Some(pos) = payload.iter().position(|b| !b.is_ascii()) {
            return Err(SubscriptionError::NotAscii(pos));
        }
        let mut entries = Vec::new();
        let mut tokens = tokens_with_offsets(payload);
        while let Some((offset, letter)) = tokens.next() {
            let mode = match letter {
                b"w" => Mode::Any,
                b"a" => Mode::All,
                _ => {
                    return Err(SubscriptionError::BadMode {
                        letter: String::from_utf8_lossy(letter).into_owned(),
                        offset,
                    })
                }
            };
            let (tag_offset, tag) = tokens.next().ok_or_else(|| SubscriptionError::MissingTag {
                letter: String::from_utf8_lossy(letter).into_owned(),
                offset,
            })?;
            let tag = std::str::from_utf8(tag)
                .map_err(|_| SubscriptionError::NotAscii(tag_offset))
                .and_then(|t| {
                    Tag::new(t).map_err(|source| SubscriptionError::BadTag {
                        offset: tag_offset,
                        source,
                    })
                })?;
            entries.push((mode, tag));
        }
        Ok(Subscription { entries })
    }

    /// The payload as km3pipe writes it: `" w TAG"` per entry.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (mode, tag) in &self.entries {
            out.push(b' ');
            out.push(mode.letter() as u8);
            out.push(b' ');
            out.extend_from_slice(tag.as_str().as_bytes());
        }
        out
    }

    /// The mode under which `tag` is delivered, if subscribed. "All" wins
    /// when a tag is listed twice, because that is the stronger promise.
    pub fn mode_for(&self, tag: &Tag) -> Option<Mode> {
        let mut found = None;
        for (mode, t) in &self.entries {
            if t == tag {
                if *mode == Mode::All {
                    return Some(Mode::All);
                }
                found = Some(*mode);
            }
        }
        found
    }
}

fn tokens_with_offsets(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if pos >= bytes.len() {
            return None;
        }
        let start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        Some((start, &bytes[start..pos]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_of_first_event_matches_spec_example() {
        let prefix = Prefix::new(Tag::new("IO_EVT").unwrap(), 5724);
        let bytes = prefix.encode();
        assert_eq!(
            bytes,
            [0x49, 0x4f, 0x5f, 0x45, 0x56, 0x54, 0, 0, 0, 0, 0x16, 0x5c, 0, 0, 0, 0]
        );
        assert_eq!(Prefix::decode(&bytes).unwrap(), prefix);
    }

    #[test]
    fn subscribe_bytes_match_spec_example() {
        let sub = Subscription::new().with(Mode::Any, Tag::new("IO_EVT").unwrap());
        let mut wire = encode_message(tags::subscribe(), &sub.to_payload());
        wire.extend(encode_message(tags::always(), &[]));
        assert_eq!(wire.len(), 41);
        assert_eq!(&wire[..8], b"_Subscri");
        assert_eq!(&wire[16..25], b" w IO_EVT");
        assert_eq!(&wire[25..33], b"_Always\0");
    }

    #[test]
    fn eight_char_tag_has_no_terminator() {
        let tag = Tag::new("_Subscri").unwrap();
        assert_eq!(&tag.wire(), b"_Subscri");
        assert_eq!(tag.as_str(), "_Subscri");
        assert!(tag.is_control());
    }

    #[test]
    fn bad_prefixes_are_refused() {
        let mut bytes = Prefix::new(Tag::new("MSG").unwrap(), 3).encode();
        bytes[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(Prefix::decode(&bytes), Err(PrefixError::NegativeLength(-5)));
        let mut bytes = Prefix::new(Tag::new("MSG").unwrap(), 3).encode();
        bytes[1] = 0xC3;
        assert!(matches!(
            Prefix::decode(&bytes),
            Err(PrefixError::Tag(TagError::BadByte { position: 1, .. }))
        ));
        let mut bytes = Prefix::new(Tag::new("MSG").unwrap(), 3).encode();
        bytes[5] = b'X'; // text after the NUL padding
        assert!(Prefix::decode(&bytes).is_err());
        let big = Prefix::new(Tag::new("MSG").unwrap(), 1 << 30).encode();
        assert!(matches!(
            Prefix::decode_limited(&big, 1 << 20),
            Err(PrefixError::TooLong { .. })
        ));
        assert_eq!(Tag::from_wire([0; 8]), Err(TagError::Empty));
        assert!(Tag::new("TOOLONGTAG").is_err());
    }

    #[test]
    fn subscription_round_trip_and_modes() {
        let sub = Subscription::parse(b" w IO_EVT a IO_SUM w MSG").unwrap();
        assert_eq!(sub.entries.len(), 3);
        assert_eq!(sub.to_payload(), b" w IO_EVT a IO_SUM w MSG");
        assert_eq!(sub.mode_for(&Tag::new("IO_SUM").unwrap()), Some(Mode::All));
        assert_eq!(sub.mode_for(&Tag::new("IO_TSL0").unwrap()), None);
        let both = Subscription::parse(b"w X a X").unwrap();
        assert_eq!(both.mode_for(&Tag::new("X").unwrap()), Some(Mode::All));
        assert_eq!(Subscription::parse(b"").unwrap().entries.len(), 0);
    }

    #[test]
    fn malformed_subscriptions_name_the_offset() {
        assert_eq!(
            Subscription::parse(b" w IO_EVT x IO_SUM"),
            Err(SubscriptionError::BadMode {
                letter: "x".into(),
                offset: 10
            })
        );
        assert!(matches!(
            Subscription::parse(b" w"),
            Err(SubscriptionError::MissingTag { offset: 1, .. })
        ));
        assert!(matches!(
            Subscription::parse(b" w WAYTOOLONGTAG"),
            Err(SubscriptionError::BadTag { offset: 3, .. })
        ));
    }
}
