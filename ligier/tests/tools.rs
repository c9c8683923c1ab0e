//! Recorder and publisher as library calls: pacing by data time, dump
//! layouts, and the recording format.

mod common;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use daq::controlhost::{encode_message, Mode, Subscription, Tag};
use ligier::publish::{publish_files, PublishConfig, Speed};
use ligier::record::{open_recording, record, RecordConfig};
use ligier::{Client, ClientConfig, LigierHandle, Shutdown};

fn testdata() -> PathBuf {
    std::env::var_os("KM3MON_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"))
}

/// The DAQ frames of a dump (preamble lengths tile the file).
fn frames(name: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(testdata().join("daq").join(name)).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(bytes[at..at + len].to_vec());
        at += len;
    }
    out
}

fn publish(ligier: &LigierHandle, file: PathBuf, tag: Option<&str>, speed: Speed) {
    let config = PublishConfig {
        ligier: ClientConfig::new(ligier.local_addr().to_string()),
        files: vec![file],
        tag: tag.map(|t| Tag::new(t).unwrap()),
        speed,
    };
    let stats = publish_files(config, Shutdown::new()).unwrap();
    assert_eq!(stats.skipped, 0);
}

fn subscriber(ligier: &LigierHandle, name: &str) -> Client {
    let mut client = Client::connect(ClientConfig::new(ligier.local_addr().to_string())).unwrap();
    client
        .subscribe(Subscription::new().with(Mode::All, tag(name)))
        .unwrap();
    wait_subscribers(ligier, name, 1);
    client
}

#[test]
fn publish_paces_by_daq_time() {
    let ligier = start(config());
    let mut sub = subscriber(&ligier, "IO_EVT");
    let dump = testdata().join("daq/IO_EVT.dat");
    let expected = frames("IO_EVT.dat");
    // The three events are 0.3 s and 0.4 s apart in data time.
    for (speed, min, max) in [
        (Speed::Factor(1.0), 0.65, 3.0),
        (Speed::Factor(10.0), 0.065, 1.5),
        (Speed::Max, 0.0, 0.6),
    ] {
        let publisher = {
            let (ligier_addr, dump) = (ligier.local_addr(), dump.clone());
            thread::spawn(move || {
                let config = PublishConfig {
                    ligier: ClientConfig::new(ligier_addr.to_string()),
                    files: vec![dump],
                    tag: Some(tag("IO_EVT")),
                    speed,
                };
                publish_files(config, Shutdown::new()).unwrap()
            })
        };
        let mut arrivals = Vec::new();
        for frame in &expected {
            let msg = sub.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
            arrivals.push(Instant::now());
            assert_eq!(msg.payload(), &frame[..]);
        }
        assert_eq!(publisher.join().unwrap().messages, 3);
        let span = (arrivals[2] - arrivals[0]).as_secs_f64();
        assert!(span >= min && span < max, "{speed:?}: span {span:.3} s");
    }
}

#[test]
fn monitoring_dump_is_published_packet_by_packet() {
    let ligier = start(config());
    let mut sub = subscriber(&ligier, "IO_MONIT");
    let path = testdata().join("daq/IO_MONIT.dat");
    let bytes = std::fs::read(&path).unwrap();
    publish(&ligier, path, Some("IO_MONIT"), Speed::Max);
    let mut at = 0;
    let mut count = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let msg = sub.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(msg.tag(), tag("IO_MONIT"));
        assert_eq!(msg.payload(), &bytes[at + 4..at + 4 + len]);
        at += 4 + len;
        count += 1;
    }
    assert_eq!(count, 6);
}

#[test]
fn recording_is_wire_identical_and_publishes_back() {
    let ligier = start(config());
    let addr = ligier.local_addr().to_string();
    let path = std::env::temp_dir().join(format!("ligier-tools-{}.ch", std::process::id()));
    let stop = Shutdown::new();
    let recorder = {
        let config = RecordConfig {
            ligier: ClientConfig::new(&addr),
            subscription: Subscription::new()
                .with(Mode::Any, tag("IO_SUM"))
                .with(Mode::Any, tag("MSG")),
            output: path.clone(),
            append: false,
            flush_interval: Duration::from_millis(100),
        };
        let stop = stop.clone();
        thread::spawn(move || record(config, stop))
    };
    wait_subscribers(&ligier, "IO_SUM", 1);
    publish(
        &ligier,
        testdata().join("daq/IO_SUM.dat"),
        Some("IO_SUM"),
        Speed::Max,
    );
    // Order is only promised per publisher: let the summaryslices reach the
    // file before the second publisher speaks.
    let summaries_len: usize = frames("IO_SUM.dat").iter().map(|f| 16 + f.len()).sum();
    wait_for("summaryslices recorded", Duration::from_secs(10), || {
        std::fs::metadata(&path).map_or(0, |m| m.len()) >= summaries_len as u64
    });
    let mut raw = Raw::connect(&ligier);
    // Reserved prefix bytes are kept as received.
    let mut odd = encode_message(tag("MSG"), b"log line");
    odd[12..16].copy_from_slice(&[0, 0, 0, 7]);
    std::io::Write::write_all(&mut raw.stream, &odd).unwrap();

    let mut expected: Vec<u8> = frames("IO_SUM.dat")
        .iter()
        .flat_map(|f| encode_message(tag("IO_SUM"), f))
        .collect();
    expected.extend(&odd);
    wait_for("recording flushed", Duration::from_secs(10), || {
        std::fs::metadata(&path).map_or(0, |m| m.len()) >= expected.len() as u64
    });
    stop.trigger();
    let stats = recorder.join().unwrap().unwrap();
    assert_eq!(stats.messages, 4);
    assert_eq!(std::fs::read(&path).unwrap(), expected);

    // The shared dump reader reads it back with the tags of the prefixes.
    let records: Vec<_> = open_recording(&path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len(), 4);
    assert_eq!(records[3].tag, Some(tag("MSG")));
    assert_eq!(records[3].payload, b"log line");

    // Published back without --tag, to a subscriber of both tags.
    let mut sub = Client::connect(ClientConfig::new(&addr)).unwrap();
    sub.subscribe(
        Subscription::new()
            .with(Mode::All, tag("IO_SUM"))
            .with(Mode::All, tag("MSG")),
    )
    .unwrap();
    wait_subscribers(&ligier, "MSG", 1);
    publish(&ligier, path.clone(), None, Speed::Max);
    for frame in frames("IO_SUM.dat") {
        let msg = sub.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!((msg.tag(), msg.payload()), (tag("IO_SUM"), &frame[..]));
    }
    let msg = sub.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!((msg.tag(), msg.payload()), (tag("MSG"), &b"log line"[..]));
    let _ = std::fs::remove_file(&path);
}
