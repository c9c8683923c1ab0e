//! `MSG` payloads (spec §1.7): one log line of a DAQ process, or an alert
//! km3mon publishes. Kept minimal: the raw bytes and the classification by
//! producing process that the message dumper uses. Parsing of the DAQ log
//! line format belongs to the log analyser.

use std::borrow::Cow;

/// One `MSG` payload, kept as sent (lines need not be valid UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MsgLine {
    pub raw: Vec<u8>,
}

/// Which DAQ process wrote a log line, by the markers km3mon's message
/// dumper looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MsgSource {
    /// `" A0"`
    AcousticDataFilter,
    /// `" F0"`
    DataFilter,
    /// `" Q0"`
    DataQueue,
    /// `" W0"`
    DataWriter,
    Other,
}

impl MsgSource {
    /// The process name as the message dumper spells it.
    pub fn name(self) -> &'static str {
        match self {
            MsgSource::AcousticDataFilter => "AcousticDataFilter",
            MsgSource::DataFilter => "DataFilter",
            MsgSource::DataQueue => "DataQueue",
            MsgSource::DataWriter => "DataWriter",
            MsgSource::Other => "Other",
        }
    }
}

impl MsgLine {
    /// Every byte sequence is a message; this cannot fail.
    pub fn decode(payload: &[u8]) -> MsgLine {
        MsgLine {
            raw: payload.to_vec(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        self.raw.clone()
    }

    /// The text, with invalid UTF-8 replaced by U+FFFD.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.raw)
    }

    /// Classified by the first marker that occurs, checked in the order of
    /// the message dumper.
    pub fn source(&self) -> MsgSource {
        source_of(&self.raw)
    }
}

/// [`MsgLine::source`] without copying the payload.
pub fn source_of(payload: &[u8]) -> MsgSource {
    const MARKERS: [(&[u8; 3], MsgSource); 4] = [
        (b" A0", MsgSource::AcousticDataFilter),
        (b" F0", MsgSource::DataFilter),
        (b" Q0", MsgSource::DataQueue),
        (b" W0", MsgSource::DataWriter),
    ];
    // The original tests the markers in this order with later matches
    // overriding earlier ones, so the last marker in the list that occurs wins.
    for (marker, source) in MARKERS.into_iter().rev() {
        if payload.windows(3).any(|w| w == marker) {
            return source;
        }
    }
    MsgSource::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let line = MsgLine::decode(b"2024-01-01 MSG JLigier started");
        assert_eq!(line.source(), MsgSource::Other);
        let line = MsgLine::decode(b"host DataFilter F0 x");
        assert_eq!(line.source(), MsgSource::DataFilter);
        assert_eq!(source_of(b"a Q0 b W0"), MsgSource::DataWriter);
        assert_eq!(source_of(b"a W0 b Q0"), MsgSource::DataWriter);
        assert_eq!(source_of(b"W0"), MsgSource::Other);
        assert_eq!(MsgLine::decode(b"\xffA").text(), "\u{fffd}A");
        assert_eq!(MsgLine::decode(b"abc").encode(), b"abc");
    }
}
