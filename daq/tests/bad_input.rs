//! Corrupt input: every decoder returns a typed error with an offset inside
//! the input, never panics, and never sizes an allocation by an unchecked
//! count (a huge count must fail fast, not abort on allocation).

mod common;

use daq::dump::{DumpReader, Record};
use daq::event::Event;
use daq::frame::{decode_frame, peek_header, Preamble};
use daq::summary::Summaryslice;
use daq::timeslice::{Timeslice, TimesliceView};
use daq::tmch::TmchPacket;
use daq::DecodeError;
use proptest::prelude::*;

fn records(name: &str) -> Vec<Record> {
    DumpReader::open(common::testdata().join("daq").join(name))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn daq_frames() -> Vec<Vec<u8>> {
    ["IO_EVT.dat", "IO_SUM.dat", "IO_TSSN.dat"]
        .iter()
        .flat_map(|name| records(name))
        .map(|r| r.payload)
        .collect()
}

fn tmch_packets() -> Vec<Vec<u8>> {
    records("IO_MONIT.dat")
        .into_iter()
        .map(|r| r.payload)
        .collect()
}

/// Decoding must not panic; a successful decode must re-encode to the very
/// same bytes (the codec is a bijection on what it accepts).
fn decode_all(bytes: &[u8]) -> Result<(), DecodeError> {
    let _ = peek_header(bytes);
    let _ = TimesliceView::new(bytes)
        .map(|v| v.frames().map(|f| f.hits().iter().count()).sum::<usize>());
    let frame = decode_frame(bytes);
    if let Ok(frame) = &frame {
        assert_eq!(
            frame.encode(),
            bytes,
            "accepted bytes must re-encode identically"
        );
    }
    if let Ok(p) = TmchPacket::decode(bytes) {
        assert_eq!(p.encode(), bytes);
    }
    frame.map(|_| ())
}

fn set_i32(bytes: &mut [u8], at: usize, value: i32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn every_cut_of_every_frame_is_an_error() {
    for frame in daq_frames() {
        for cut in 0..frame.len() {
            let short = &frame[..cut];
            let err = decode_frame(short).expect_err("truncated frame accepted");
            assert!(err.offset() <= frame.len(), "{err}");
            if cut >= 8 {
                assert!(
                    matches!(err, DecodeError::Truncated { needed, available, .. } if needed == frame.len() && available == cut),
                    "{err:?}"
                );
            }
            // With the preamble patched to the cut length the content
            // itself must be found short.
            if cut >= 8 {
                let mut patched = short.to_vec();
                set_i32(&mut patched, 0, cut as i32);
                let err =
                    decode_frame(&patched).expect_err("cut frame with patched length accepted");
                assert!(err.offset() <= cut, "{err} beyond the cut at {cut}");
            }
        }
    }
}

#[test]
fn every_cut_of_every_tmch_packet() {
    for packet in tmch_packets() {
        for cut in 0..packet.len() {
            match TmchPacket::decode(&packet[..cut]) {
                // The sample packets are version 2 (240 bytes) plus 4 bytes.
                Ok(p) => {
                    assert!(cut >= 240);
                    assert_eq!(p.trailing.len(), cut - 240);
                }
                Err(e) => {
                    assert!(cut < 240, "cut {cut}: {e}");
                    assert!(matches!(e, DecodeError::Truncated { .. }));
                }
            }
        }
    }
}

#[test]
fn length_field_larger_than_the_data() {
    for mut frame in daq_frames() {
        let len = frame.len() as i32;
        for declared in [len + 1, len + 1000, i32::MAX] {
            set_i32(&mut frame, 0, declared);
            let err = decode_frame(&frame).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated { offset: 0, .. }),
                "{err:?}"
            );
        }
        for declared in [-1, 0, 7, i32::MIN] {
            set_i32(&mut frame, 0, declared);
            assert!(matches!(
                decode_frame(&frame).unwrap_err(),
                DecodeError::BadLength { offset: 0, .. }
            ));
        }
        // Shorter than the data: content and length disagree.
        set_i32(&mut frame, 0, len - 1);
        assert!(decode_frame(&frame).is_err());
    }
}

#[test]
fn negative_and_huge_counts() {
    let frames = daq_frames();
    // Versioned event: n_triggered_hits at 50; summaryslice and timeslice:
    // the frame count at 30; the first super-frame's hit count at 34 + 52.
    let cases: [(&[u8], usize); 4] = [
        (&frames[0], 50),
        (&frames[3], 30),
        (&frames[6], 30),
        (&frames[6], 86),
    ];
    for (frame, at) in cases {
        for count in [-1, i32::MIN, i32::MAX, 1 << 24] {
            let mut bad = frame.to_vec();
            set_i32(&mut bad, at, count);
            let err = decode_frame(&bad).unwrap_err();
            let ok = match err {
                DecodeError::NegativeCount { offset, .. } => count < 0 && offset == at,
                DecodeError::TooManyItems { offset, .. } => count > 0 && offset == at,
                _ => false,
            };
            assert!(ok, "count {count} at {at}: {err:?}");
        }
    }
    // The snapshot count of the first event (after 182 triggered hits).
    let mut bad = frames[0].clone();
    let at = 54 + 18 * 182;
    set_i32(&mut bad, at, i32::MAX);
    assert!(
        matches!(Event::decode(&bad), Err(DecodeError::TooManyItems { offset, .. }) if offset == at)
    );
}

#[test]
fn unknown_data_types_and_versions() {
    for mut frame in daq_frames() {
        set_i32(&mut frame, 4, 4242);
        assert!(matches!(
            decode_frame(&frame),
            Err(DecodeError::UnknownDataType {
                offset: 4,
                data_type: 4242,
                ..
            })
        ));
    }
    let frames = daq_frames();
    // A versioned frame with a version this crate does not know.
    for (frame, expected) in [(&frames[0], 4), (&frames[3], 6), (&frames[6], 1)] {
        let mut bad = frame.clone();
        bad[8..10].copy_from_slice(&99i16.to_le_bytes());
        let err = decode_frame(&bad).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::BadVersion {
                    offset: 8,
                    found: 99,
                    ..
                }
            ),
            "{err:?} (v{expected})"
        );
    }
    // Each decoder refuses the others' frames.
    assert!(matches!(
        Event::decode(&frames[3]),
        Err(DecodeError::UnknownDataType { .. })
    ));
    assert!(matches!(
        Summaryslice::decode(&frames[0]),
        Err(DecodeError::UnknownDataType { .. })
    ));
    assert!(matches!(
        Timeslice::decode(&frames[0]),
        Err(DecodeError::UnknownDataType { .. })
    ));
    // A super-frame with a wrong data type inside a timeslice.
    let mut bad = frames[6].clone();
    set_i32(&mut bad, 34 + 4, 102);
    assert!(matches!(
        Timeslice::decode(&bad),
        Err(DecodeError::UnknownDataType { offset: 38, .. })
    ));
}

#[test]
fn tmch_magic_and_version_code() {
    let packet = tmch_packets().remove(0);
    let mut bad = packet.clone();
    bad[..4].copy_from_slice(b"TTDC");
    assert!(matches!(
        TmchPacket::decode(&bad),
        Err(DecodeError::BadMagic { offset: 0, .. })
    ));
    let mut bad = packet.clone();
    bad[168..172].copy_from_slice(&(2u32 << 1).to_be_bytes());
    assert!(matches!(
        TmchPacket::decode(&bad),
        Err(DecodeError::BadVersion {
            offset: 168,
            found: 2,
            ..
        })
    ));
    assert!(TmchPacket::decode(&[]).is_err());
    assert!(TmchPacket::decode(b"TMCH").is_err());
}

/// Every byte of every sample frame overwritten with a few values: no
/// panic, and whatever is accepted re-encodes identically.
#[test]
fn single_byte_corruptions() {
    let mut accepted = 0usize;
    let mut refused = 0usize;
    for frame in daq_frames().into_iter().chain(tmch_packets()) {
        for at in 0..frame.len() {
            for value in [0x00, 0xFF, 0x80, frame[at] ^ 0x01] {
                let mut bad = frame.clone();
                bad[at] = value;
                match decode_all(&bad) {
                    Ok(()) => accepted += 1,
                    Err(e) => {
                        assert!(e.offset() <= bad.len());
                        refused += 1;
                    }
                }
            }
        }
    }
    assert!(accepted > 0 && refused > 0);
}

/// Garbage readers: the dump reader ends and reports, whatever it is fed.
#[test]
fn dump_reader_on_garbage_terminates() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut garbage = vec![0u8; 100_000];
    for b in &mut garbage {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state as u8;
    }
    for container in [
        daq::dump::Container::DaqFrames,
        daq::dump::Container::LengthPrefixed,
        daq::dump::Container::ControlHost,
    ] {
        let items: Vec<_> = DumpReader::new(&garbage[..])
            .with_container(container)
            .collect();
        assert!(items.len() < 10_000);
        for record in items.into_iter().flatten() {
            let _ = record.decode();
            let _ = record.utc_ns();
        }
    }
    let detected: Vec<_> = DumpReader::new(&garbage[..]).collect();
    assert!(!detected.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_all(&bytes);
        let _ = Preamble::decode(&bytes);
        let _: Vec<_> = DumpReader::new(&bytes[..]).collect();
    }

    /// Random content behind a valid-looking preamble reaches the deeper
    /// layers of every decoder.
    #[test]
    fn random_content_behind_a_preamble(
        data_type in prop_oneof![Just(10001i32), Just(2001), Just(1001), Just(1005), Just(101)],
        version in prop_oneof![Just(None), Just(Some(1i16)), Just(Some(4)), Just(Some(6))],
        counts in proptest::collection::vec(0i32..5, 4),
        mut body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        // Sprinkle small counts where the layouts expect them.
        for (k, at) in [20usize, 22, 42, 78].iter().enumerate() {
            if body.len() >= at + 4 {
                body[*at..at + 4].copy_from_slice(&counts[k].to_le_bytes());
            }
        }
        let mut bytes = Vec::new();
        let len = 8 + version.map_or(0, |_| 2) + body.len();
        bytes.extend_from_slice(&(len as i32).to_le_bytes());
        bytes.extend_from_slice(&data_type.to_le_bytes());
        if let Some(v) = version {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.extend_from_slice(&body);
        if let Err(e) = decode_all(&bytes) {
            prop_assert!(e.offset() <= bytes.len());
        }
    }
}

/// Found by `cargo fuzz run detx`: a multi-line comment that runs to the end
/// of the file with a blank last line ends in "\n"; it was written with a
/// trailing space that the reader trims, so write → parse → write changed
/// the text.
#[test]
fn detx_comment_ending_in_a_blank_line_writes_stably() {
    let mut text = std::fs::read_to_string(common::testdata().join("detx/detx_v3.detx")).unwrap();
    text.push_str("# command -f \"opens a comment\n\n");
    let det = daq::detector::Detector::parse(&text, "regression.detx").unwrap();
    assert_eq!(
        det.comments().last().unwrap(),
        "command -f \"opens a comment\n"
    );
    let written = det.to_detx_string(3).unwrap();
    let reread = daq::detector::Detector::parse(&written, "written.detx").unwrap();
    assert_eq!(reread.to_detx_string(3).unwrap(), written);
    assert!(written.contains("# command -f 'opens a comment\n"));
    // The fuzz target's own check on the same input.
    daq::fuzzing::detx(text.as_bytes());
}
