//! The dump reader: containers, recognition, forced tags, streaming from
//! tiny reads, and resynchronisation after corruption.

mod common;

use std::io::Read;

use daq::controlhost::{encode_message, Tag};
use daq::dump::{detect, Container, DumpErrorKind, DumpReader, HeaderProblem, Payload, Record};
use daq::frame::DaqFrame;
use daq::DecodeError;

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(common::testdata().join("daq").join(name)).unwrap()
}

fn read_all(bytes: &[u8]) -> (Vec<Record>, Vec<daq::dump::DumpError>) {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for item in DumpReader::new(bytes) {
        match item {
            Ok(r) => records.push(r),
            Err(e) => errors.push(e),
        }
    }
    (records, errors)
}

/// A reader that hands out one byte per call, as a slow pipe might.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&b, rest)), Some(slot)) => {
                *slot = b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn samples_are_recognised() {
    assert_eq!(detect(&sample("IO_EVT.dat")), Some(Container::DaqFrames));
    assert_eq!(detect(&sample("IO_SUM.dat")), Some(Container::DaqFrames));
    assert_eq!(detect(&sample("IO_TSSN.dat")), Some(Container::DaqFrames));
    assert_eq!(
        detect(&sample("IO_MONIT.dat")),
        Some(Container::LengthPrefixed)
    );
    assert_eq!(detect(b"garbage garbage garbage"), None);
    assert_eq!(
        detect(&encode_message(Tag::new("MSG").unwrap(), b"hello")),
        Some(Container::ControlHost)
    );
    assert_eq!(Container::for_tag("IO_TSL0"), Some(Container::DaqFrames));
    assert_eq!(
        Container::for_tag("IO_MONIT"),
        Some(Container::LengthPrefixed)
    );
    assert_eq!(Container::for_tag("MSG"), None);
}

#[test]
fn offsets_tags_and_byte_at_a_time_reading() {
    for (name, offsets, tag) in [
        ("IO_EVT.dat", vec![0u64, 5724, 7674], "IO_EVT"),
        ("IO_SUM.dat", vec![0, 1849, 5678], "IO_SUM"),
        ("IO_TSSN.dat", vec![0, 90, 204], "IO_TSSN"),
        (
            "IO_MONIT.dat",
            (0..6).map(|k| k * 248).collect(),
            "IO_MONIT",
        ),
    ] {
        let bytes = sample(name);
        let fast: Vec<Record> = DumpReader::new(&bytes[..]).map(Result::unwrap).collect();
        let slow: Vec<Record> = DumpReader::new(Trickle(&bytes))
            .map(Result::unwrap)
            .collect();
        assert_eq!(fast, slow);
        assert_eq!(
            fast.iter().map(|r| r.offset).collect::<Vec<_>>(),
            offsets,
            "{name}"
        );
        for r in &fast {
            assert_eq!(r.tag.unwrap().as_str(), tag);
            assert!(r.decode().is_ok());
            assert!(r.utc_ns().is_some());
        }
    }
}

#[test]
fn controlhost_recordings() {
    let mut recording = Vec::new();
    let mut expected = Vec::new();
    for (name, tag) in [
        ("IO_EVT.dat", "IO_EVT"),
        ("IO_MONIT.dat", "IO_MONIT"),
        ("IO_TSSN.dat", "IO_TSSN"),
    ] {
        for r in DumpReader::new(&sample(name)[..]) {
            let r = r.unwrap();
            expected.push((recording.len() as u64, tag, r.payload.clone()));
            recording.extend(encode_message(Tag::new(tag).unwrap(), &r.payload));
        }
    }
    expected.push((
        recording.len() as u64,
        "MSG",
        b"host DataFilter F0 hello".to_vec(),
    ));
    recording.extend(encode_message(
        Tag::new("MSG").unwrap(),
        b"host DataFilter F0 hello",
    ));

    let records: Vec<Record> = DumpReader::new(Trickle(&recording))
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), expected.len());
    for (r, (offset, tag, payload)) in records.iter().zip(&expected) {
        assert_eq!(r.offset, *offset);
        assert_eq!(r.payload_offset, offset + 16);
        assert_eq!(r.tag.unwrap().as_str(), *tag);
        assert_eq!(&r.payload, payload);
        let decoded = r.decode().unwrap();
        match *tag {
            "IO_MONIT" => assert!(matches!(decoded, Payload::Tmch(_))),
            "MSG" => {
                assert!(matches!(decoded, Payload::Msg(_)));
                assert_eq!(r.utc_ns(), None);
            }
            _ => assert!(matches!(decoded, Payload::Frame(_))),
        }
    }
    // A forced tag does not override the prefix tags of a recording.
    let forced: Vec<Record> = DumpReader::new(&recording[..])
        .with_tag(Tag::new("MSG").unwrap())
        .map(Result::unwrap)
        .collect();
    assert_eq!(forced.first().unwrap().tag.unwrap().as_str(), "IO_EVT");
}

#[test]
fn forced_tags() {
    let bytes = sample("IO_MONIT.dat");
    let records: Vec<Record> = DumpReader::new(&bytes[..])
        .with_tag(Tag::new("IO_MONIT").unwrap())
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 6);
    // Forcing the wrong container: nothing plausible, one error, no records.
    let (records, errors): (Vec<_>, Vec<_>) = DumpReader::new(&bytes[..])
        .with_tag(Tag::new("IO_EVT").unwrap())
        .partition(Result::is_ok);
    assert!(records.is_empty());
    assert_eq!(errors.len(), 1);
    // A forced tag names the records of a DAQ dump.
    let bytes = sample("IO_SUM.dat");
    let r = DumpReader::new(&bytes[..])
        .with_tag(Tag::new("IO_XYZ").unwrap())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(r.tag.unwrap().as_str(), "IO_XYZ");
    assert!(matches!(
        r.decode().unwrap(),
        Payload::Frame(DaqFrame::Summaryslice(_))
    ));
}

#[test]
fn implausible_preamble_is_skipped_by_scanning() {
    let mut bytes = sample("IO_EVT.dat");
    bytes[5724..5728].copy_from_slice(&(-77i32).to_le_bytes());
    let (records, errors) = read_all(&bytes);
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 7674]
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset, 5724);
    assert!(matches!(
        errors[0].kind,
        DumpErrorKind::BadRecordHeader {
            problem: HeaderProblem::DaqPreamble { length: -77, .. },
            resumed_at: Some(7674)
        }
    ));
    assert!(errors[0].to_string().starts_with("byte 5724: "));
}

#[test]
fn bad_content_with_plausible_length_is_skipped_by_length() {
    let mut bytes = sample("IO_SUM.dat");
    // Frame count of the second summaryslice: far too many frames.
    bytes[1849 + 30..1849 + 34].copy_from_slice(&1_000_000i32.to_le_bytes());
    let (records, errors) = read_all(&bytes);
    assert!(errors.is_empty());
    assert_eq!(records.len(), 3);
    let err = records[1].decode().unwrap_err();
    assert_eq!(err.offset, 1849 + 30);
    assert!(matches!(
        err.kind,
        DumpErrorKind::Decode(DecodeError::TooManyItems { .. })
    ));
    assert!(records[0].decode().is_ok() && records[2].decode().is_ok());
}

#[test]
fn wrong_but_plausible_length_resynchronises() {
    let mut bytes = sample("IO_EVT.dat");
    // The first event claims 100 bytes fewer than it has.
    bytes[..4].copy_from_slice(&5624i32.to_le_bytes());
    let (records, errors) = read_all(&bytes);
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 5724, 7674]
    );
    assert!(records[0].decode().is_err());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset, 5624);
    assert!(matches!(
        errors[0].kind,
        DumpErrorKind::BadRecordHeader {
            resumed_at: Some(5724),
            ..
        }
    ));
}

#[test]
fn truncated_tail_and_stray_bytes() {
    let bytes = sample("IO_SUM.dat");
    let (records, errors) = read_all(&bytes[..bytes.len() - 10]);
    assert_eq!(records.len(), 2);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset, 5678);
    assert!(matches!(
        errors[0].kind,
        DumpErrorKind::TruncatedRecord {
            declared: 3829,
            available: 3819,
            resumed_at: None
        }
    ));

    let mut bytes = sample("IO_TSSN.dat");
    bytes.extend_from_slice(&[1, 2, 3]);
    let (records, errors) = read_all(&bytes);
    assert_eq!(records.len(), 3);
    assert!(matches!(errors[..], [ref e] if e.offset == 2410
        && matches!(e.kind, DumpErrorKind::TruncatedHeader { needed: 8, available: 3 })));

    // A record length that runs past the end, followed by good records:
    // the length was the corrupt part, and reading goes on.
    let mut bytes = sample("IO_EVT.dat");
    bytes[5724..5728].copy_from_slice(&100_000i32.to_le_bytes());
    let (records, errors) = read_all(&bytes);
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 7674]
    );
    assert!(matches!(errors[..], [ref e] if e.offset == 5724
        && matches!(e.kind, DumpErrorKind::TruncatedRecord { resumed_at: Some(7674), .. })));
}

#[test]
fn length_prefixed_resync() {
    let mut bytes = sample("IO_MONIT.dat");
    bytes[248..252].copy_from_slice(&u32::MAX.to_le_bytes());
    let (records, errors) = read_all(&bytes);
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 496, 744, 992, 1240]
    );
    assert!(matches!(errors[..], [ref e] if e.offset == 248
        && matches!(e.kind, DumpErrorKind::BadRecordHeader { resumed_at: Some(496), .. })));
}

#[test]
fn records_above_the_limit_are_refused() {
    let bytes = sample("IO_EVT.dat");
    let items: Vec<_> = DumpReader::new(&bytes[..]).with_max_record(1000).collect();
    let offsets: Vec<u64> = items
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, vec![7674]);
    let errors: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset, 0);
}

#[test]
fn empty_and_unknown_input() {
    assert_eq!(DumpReader::new(&[][..]).count(), 0);
    let items: Vec<_> = DumpReader::new(&b"this is not a dump at all"[..]).collect();
    assert!(matches!(items[..], [Err(ref e)] if matches!(e.kind, DumpErrorKind::UnknownContainer)));
}

#[test]
fn only_the_asked_tags_are_returned() {
    let mut bytes = Vec::new();
    for (i, tag) in ["IO_SUM", "IO_MONIT", "MSG", "IO_MONIT", "IO_SUM"]
        .iter()
        .enumerate()
    {
        bytes.extend(encode_message(Tag::new(tag).unwrap(), &[i as u8; 5]));
    }
    let only = vec![Tag::new("IO_SUM").unwrap(), Tag::new("MSG").unwrap()];
    let records: Vec<Record> = DumpReader::new(&bytes[..])
        .with_only_tags(only)
        .map(|r| r.unwrap())
        .collect();
    let got: Vec<(String, u8)> = records
        .iter()
        .map(|r| (r.tag.unwrap().as_str().to_string(), r.payload[0]))
        .collect();
    assert_eq!(
        got,
        [
            ("IO_SUM".into(), 0),
            ("MSG".into(), 2),
            ("IO_SUM".into(), 4)
        ]
    );
}
