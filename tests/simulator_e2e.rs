//! `km3mon simulate` end to end: every message of a short recording
//! decodes with the wire layer and agrees with itself (TMCH counts vs
//! summary rates, triggered ⊂ snapshot hits, data time in order, runs);
//! km3pipe reads a sample of it; the same seed gives the same bytes; each
//! fault changes the stream as documented; the live mode publishes into a
//! Ligier and survives its own `ligier-disconnect`.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use daq::controlhost::{Mode, Subscription, Tag};
use daq::detector::Detector;
use daq::dump::{Payload, Record};
use daq::frame::DaqFrame;
use daq::summary::rate_hz;
use ligier::{Client, ClientConfig, Ligier, LigierConfig};

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("km3mon-sim-e2e-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn km3mon(args: &[&str]) -> Output {
    Command::new(common::km3mon())
        .args(args)
        .env("KM3MON_LOG", "info")
        .output()
        .expect("run km3mon")
}

fn simulate(args: &[&str]) -> Output {
    let mut all = vec!["simulate"];
    all.extend_from_slice(args);
    let output = km3mon(&all);
    assert!(
        output.status.success(),
        "km3mon simulate {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn records(path: &Path) -> Vec<Record> {
    ligier::record::open_recording(path)
        .unwrap()
        .map(|r| r.expect("the ControlHost framing is always intact"))
        .collect()
}

fn tag(record: &Record) -> &str {
    record.tag.as_ref().map_or("", Tag::as_str)
}

/// Seconds of data time after the start of the recording.
fn offset_s(record: &Record, start_ns: u64) -> f64 {
    (record.utc_ns().unwrap() - start_ns) as f64 / 1e9
}

#[test]
fn recording_decodes_and_is_consistent() {
    let dir = scratch("decode");
    let (rec, detx) = (dir.join("a.rec"), dir.join("det.detx"));
    let args = |out: &Path| -> Vec<String> {
        [
            "--generate-detector",
            "4x18",
            "--det-id",
            "77",
            "--duration",
            "3s",
            "--run-length",
            "1s",
            "--run",
            "500",
            "--trigger-rate",
            "80",
            "--msg-interval",
            "1s",
            "--burst-interval",
            "20s",
            "--seed",
            "11",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["-o".into(), out.display().to_string()])
        .collect()
    };
    let mut first: Vec<String> = args(&rec);
    first.extend(["--write-detector".into(), detx.display().to_string()]);
    simulate(&first.iter().map(String::as_str).collect::<Vec<_>>());
    let detector = Detector::from_file(&detx).unwrap();
    assert_eq!((detector.det_id(), detector.n_optical_modules()), (77, 72));

    // Same seed, same bytes; another seed, other bytes.
    let again = dir.join("b.rec");
    simulate(&args(&again).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        std::fs::read(&rec).unwrap() == std::fs::read(&again).unwrap(),
        "same seed, different bytes"
    );
    let other = dir.join("c.rec");
    let mut other_args = args(&other);
    let seed_at = other_args.len() - 3;
    other_args[seed_at] = "12".into();
    simulate(&other_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(std::fs::read(&rec).unwrap() != std::fs::read(&other).unwrap());

    let records = records(&rec);
    let mut per_tag: BTreeMap<&str, usize> = BTreeMap::new();
    let mut last_time = 0;
    let mut runs = BTreeMap::new();
    let mut counts: HashMap<(u32, u64), [u32; 31]> = HashMap::new();
    let mut sums = Vec::new();
    let mut events = 0;
    let mut masks = HashSet::new();
    for record in &records {
        *per_tag.entry(tag(record)).or_default() += 1;
        let payload = record
            .decode()
            .unwrap_or_else(|e| panic!("{}: {e}", tag(record)));
        if let Some(t) = record.utc_ns() {
            assert!(t >= last_time, "data time goes back");
            last_time = t;
        }
        match payload {
            Payload::Tmch(p) => {
                assert_eq!(p.structure_version(), Some(2));
                assert!(p.dom_status[0] & 0x8000_0000 != 0);
                counts.insert((p.dom_id, p.utc_ns() / 100_000_000), p.counts);
                if detector.module(p.dom_id).is_some_and(|m| m.is_optical()) {
                    assert!(p.ahrs_valid() && (20.0..40.0).contains(&p.temperature_c()));
                }
            }
            Payload::Frame(DaqFrame::Summaryslice(s)) => {
                assert_eq!(s.frames.len(), 72);
                *runs.entry(s.header.run).or_insert(0) += 1;
                for f in &s.frames {
                    assert!(f.status.time_sync_valid() && f.status.udp_complete());
                    let khz = f.rate_sum_hz() / 1e3;
                    assert!((100.0..100_000.0).contains(&khz), "{khz} kHz");
                }
                sums.push(s);
            }
            Payload::Frame(DaqFrame::Event(e)) => {
                events += 1;
                masks.insert(e.trigger_mask);
                assert!(!e.triggered_hits.is_empty());
                let snapshot: HashSet<_> = e.snapshot_hits.iter().collect();
                for h in &e.triggered_hits {
                    assert!(
                        snapshot.contains(&h.snapshot()),
                        "triggered hit not in the snapshot"
                    );
                    assert!(h.time < 100_000_000);
                }
            }
            Payload::Frame(DaqFrame::Timeslice(t)) => {
                assert_eq!(t.frames.len(), 72);
                assert!(t.frames.iter().all(|f| f.status.time_sync_valid()));
                assert!(t.n_hits() < 72 * 20, "SN hits are sparse");
            }
            Payload::Msg(m) => {
                let text = m.text();
                assert!(
                    text.contains(" F0") || text.contains(" Q0") || text.contains(" W0"),
                    "{text}"
                );
            }
            Payload::Other => panic!("unexpected record {:?}", record.tag),
        }
    }
    assert_eq!(per_tag["IO_SUM"], 30);
    assert_eq!(per_tag["IO_TSSN"], 30);
    // 72 DOMs and 4 base modules per timeslice.
    assert_eq!(per_tag["IO_MONIT"], 30 * 76);
    assert!(per_tag["MSG"] >= 5, "{per_tag:?}");
    assert!(
        (120..400).contains(&events),
        "{events} events for 80 Hz × 3 s"
    );
    assert!(masks.len() >= 3, "{masks:?}");
    // Runs of 1 s: 500, 501, 502, each starting at frame index 1.
    assert_eq!(runs, BTreeMap::from([(500, 10), (501, 10), (502, 10)]));
    assert!(sums.iter().filter(|s| s.header.frame_index == 1).count() == 3);
    // TMCH counts are the hits behind the summary rates.
    for s in &sums {
        let key_t = s.header.utc_ns() / 100_000_000;
        for f in &s.frames {
            let c = counts[&(f.dom_id, key_t)];
            for (ch, &count) in c.iter().enumerate() {
                let hz = count as f64 * 10.0;
                let decoded = rate_hz(f.rates[ch]);
                // The rate byte saturates at 2 MHz; the counter does not.
                let expected = hz.min(2e6);
                if hz >= 2_100.0 {
                    assert!(
                        (decoded - expected).abs() <= 0.014 * expected,
                        "count {count} vs rate {decoded}"
                    );
                }
                assert_eq!(f.status.hrv_mask() & (1 << ch) != 0, hz > 100e3);
            }
        }
    }

    // `km3mon dump` reads all of it without complaint.
    let dump = km3mon(&["dump", rec.to_str().unwrap()]);
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&dump.stdout).lines().count(),
        records.len()
    );

    km3pipe_reads(&records);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The KM3NeT Python reader decodes a sample of the stream to the same
/// values as the wire layer.
fn km3pipe_reads(records: &[Record]) {
    let dir = scratch("km3pipe");
    let mut wanted = Vec::new();
    for name in ["IO_SUM", "IO_EVT", "IO_MONIT"] {
        for (i, r) in records
            .iter()
            .filter(|r| tag(r) == name)
            .take(3)
            .enumerate()
        {
            let path = dir.join(format!("{name}_{i}.bin"));
            std::fs::write(&path, &r.payload).unwrap();
            wanted.push((name, path, r.decode().unwrap()));
        }
    }
    let script = r#"
import io, json, sys
from km3pipe.io.daq import DAQSummaryslice, DAQEvent, TMCHData
for kind, path in zip(sys.argv[1::2], sys.argv[2::2]):
    data = open(path, "rb").read()
    if kind == "IO_SUM":
        s = DAQSummaryslice(io.BytesIO(data[8:]))
        print(json.dumps({"run": s.header.run, "frame_index": s.header.time_slice, "n": s.n_summary_frames,
                          "doms": sorted(int(k) for k in s.summary_frames)}))
    elif kind == "IO_EVT":
        e = DAQEvent(io.BytesIO(data[8:]))
        print(json.dumps({"mask": int(e.trigger_mask), "counter": int(e.trigger_counter),
                          "n_triggered": e.n_triggered_hits, "n_snapshot": e.n_snapshot_hits}))
    else:
        t = TMCHData(io.BytesIO(data))
        print(json.dumps({"dom_id": int(t.dom_id), "run": int(t.run), "version": int(t.version),
                          "rates": [float(r) for r in t.pmt_rates], "hrvbmp": int(t.hrvbmp),
                          "temp": float(t.temp)}))
"#;
    let mut cmd = Command::new(common::python());
    cmd.arg("-c").arg(script);
    for (name, path, _) in &wanted {
        cmd.arg(name).arg(path);
    }
    let output = cmd.output().expect("run python");
    assert!(
        output.status.success(),
        "km3pipe: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), wanted.len());
    for ((name, _, payload), got) in wanted.iter().zip(&lines) {
        match payload {
            Payload::Frame(DaqFrame::Summaryslice(s)) => {
                assert_eq!(got["run"], s.header.run, "{name}");
                assert_eq!(got["frame_index"], s.header.frame_index);
                assert_eq!(got["n"], s.frames.len());
                let mut doms: Vec<u32> = s.frames.iter().map(|f| f.dom_id).collect();
                doms.sort();
                assert_eq!(got["doms"], serde_json::json!(doms));
            }
            Payload::Frame(DaqFrame::Event(e)) => {
                assert_eq!(got["mask"], e.trigger_mask);
                assert_eq!(got["counter"], e.trigger_counter);
                assert_eq!(got["n_triggered"], e.triggered_hits.len());
                assert_eq!(got["n_snapshot"], e.snapshot_hits.len());
            }
            Payload::Tmch(p) => {
                assert_eq!(got["dom_id"], p.dom_id);
                assert_eq!(got["run"], p.run);
                assert_eq!(got["version"], 2);
                assert_eq!(got["hrvbmp"], p.hrvbmp);
                let rates: Vec<f64> = p.counts.iter().map(|&c| f64::from(c) * 10.0).collect();
                assert_eq!(got["rates"], serde_json::json!(rates));
                assert!((got["temp"].as_f64().unwrap() - p.temperature_c()).abs() < 1e-6);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn faults_change_the_stream_as_documented() {
    let dir = scratch("faults");
    let (rec, detx) = (dir.join("f.rec"), dir.join("det.detx"));
    let out = simulate(&[
        "--generate-detector",
        "4x6",
        "--duration",
        "4s",
        "--trigger-rate",
        "100",
        "--seed",
        "3",
        "--fault",
        "dom-silent@1s:2/5",
        "--fault",
        "du-timesync@1s+1s:3",
        "--fault",
        "trigger-zero@2s+1s",
        "--fault",
        "corrupt-frames@3s+500ms:IO_SUM,IO_EVT,IO_MONIT",
        "--fault",
        "ligier-disconnect@3500ms+200ms",
        "-o",
        rec.to_str().unwrap(),
        "--write-detector",
        detx.to_str().unwrap(),
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("fault dom-silent from +1s to the end on DOM"),
        "{log}"
    );
    let detector = Detector::from_file(&detx).unwrap();
    let silent = detector.module_at(2, 5).unwrap().dom_id;
    let du3: HashSet<u32> = detector.modules_of_du(3).map(|m| m.dom_id).collect();
    let records = records(&rec);
    let start_ns = records.iter().find_map(Record::utc_ns).unwrap();
    let (mut corrupt_at, mut events_at, mut sum_at) = (Vec::new(), Vec::new(), Vec::new());
    for r in &records {
        let Some(t) = r.utc_ns().map(|_| offset_s(r, start_ns)) else {
            if tag(r) != "MSG" {
                // A damaged frame has no readable time; it must not decode.
                assert!(r.decode().is_err(), "{}", tag(r));
                corrupt_at.push(r.offset);
            }
            continue;
        };
        let payload = match r.decode() {
            Ok(p) => p,
            Err(_) => {
                corrupt_at.push(r.offset);
                assert!((3.0..3.5).contains(&t), "corrupt frame at {t} s");
                continue;
            }
        };
        match payload {
            Payload::Frame(DaqFrame::Summaryslice(s)) => {
                sum_at.push(t);
                let has_silent = s.frames.iter().any(|f| f.dom_id == silent);
                assert_eq!(has_silent, t < 1.0, "silent DOM at {t} s");
                for f in &s.frames {
                    let unsynced = du3.contains(&f.dom_id) && (1.0..2.0).contains(&t);
                    assert_eq!(
                        f.status.time_sync_valid(),
                        !unsynced,
                        "DOM {} at {t} s",
                        f.dom_id
                    );
                }
            }
            Payload::Frame(DaqFrame::Timeslice(ts)) => {
                assert_eq!(ts.frames.iter().any(|f| f.dom_id == silent), t < 1.0);
                for f in &ts.frames {
                    let unsynced = du3.contains(&f.dom_id) && (1.0..2.0).contains(&t);
                    assert_eq!(f.status.time_sync_valid(), !unsynced);
                }
            }
            Payload::Tmch(p) => assert!(p.dom_id != silent || t < 1.0),
            Payload::Frame(DaqFrame::Event(e)) => {
                events_at.push(t);
                assert!(t < 1.0 || e.snapshot_hits.iter().all(|h| h.dom_id != silent));
            }
            _ => {}
        }
    }
    assert!(events_at.iter().any(|&t| t < 2.0) && events_at.iter().any(|&t| t >= 3.0));
    assert!(
        events_at.iter().all(|&t| !(2.0..3.0).contains(&t)),
        "events during trigger-zero"
    );
    assert!(!corrupt_at.is_empty(), "no corrupt frame");
    // The disconnect leaves a gap of two timeslices.
    assert!(!sum_at.iter().any(|&t| (3.5..3.7).contains(&t)));
    assert!(sum_at.iter().any(|&t| t >= 3.7));

    // `km3mon dump` reports the damaged frames with their byte offsets
    // and goes on.
    let dump = km3mon(&["dump", rec.to_str().unwrap()]);
    assert!(!dump.status.success());
    let stderr = String::from_utf8_lossy(&dump.stderr);
    let reported = stderr.lines().filter(|l| l.contains(": byte ")).count();
    assert_eq!(reported, corrupt_at.len(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn live_publishing_survives_a_ligier_disconnect() {
    let ligier = Ligier::start(LigierConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        status_interval: None,
        ..LigierConfig::default()
    })
    .unwrap();
    let addr = ligier.local_addr().to_string();
    let mut sub = Client::connect(ClientConfig::new(addr.clone())).unwrap();
    sub.subscribe(Subscription::new().with(Mode::All, Tag::new("IO_SUM").unwrap()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    simulate(&[
        "--generate-detector",
        "2x3",
        "--ligier",
        &addr,
        "--duration",
        "3s",
        "--speed",
        "10",
        "--start",
        "2024-01-01T00:00:00Z",
        "--fault",
        "ligier-disconnect@1s+1s",
    ]);
    let mut frames = Vec::new();
    while let Some(msg) = sub.recv_timeout(Duration::from_millis(500)).unwrap() {
        let s = daq::summary::Summaryslice::decode(msg.payload()).unwrap();
        frames.push(s.header.frame_index);
    }
    let expected: Vec<i32> = (1..=10).chain(21..=30).collect();
    assert_eq!(frames, expected);
    // The subscriber and two connections of the publisher.
    assert_eq!(ligier.status().connections_total, 3);
    ligier.shutdown();
}
