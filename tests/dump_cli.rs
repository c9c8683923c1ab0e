//! `km3mon dump` end to end: the JSON Lines of the four sample dumps
//! against their goldens, recordings, forced tags, corrupt files (errors
//! with byte offsets on stderr, the good frames still printed, non-zero
//! exit) and the DETX summary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(common::km3mon())
        .arg("dump")
        .args(args)
        .env("KM3MON_LOG", "warn")
        .output()
        .expect("run km3mon dump")
}

fn dump(files: &[&Path]) -> Output {
    run(&files.iter().map(|p| p.as_os_str()).collect::<Vec<_>>())
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .expect("stdout is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every stdout line is one JSON object"))
        .collect()
}

fn sample(name: &str) -> PathBuf {
    common::testdata().join("daq").join(name)
}

fn golden(name: &str) -> Option<Value> {
    let path = common::testdata()
        .join("golden")
        .join(format!("{name}.golden.json"));
    let text = std::fs::read_to_string(&path).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

/// A scratch directory for corrupted copies, unique per test.
fn scratch(test: &str) -> PathBuf {
    common::scratch("dump-cli", test)
}

fn assert_close(a: &Value, b: &Value) {
    let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
    assert!(a == b || ((a - b) / b).abs() < 1e-12, "{a} vs {b}");
}

fn decode_sample(name: &str, expected_records: usize) -> Vec<Value> {
    let output = dump(&[&sample(name)]);
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let records = lines(&output);
    assert_eq!(records.len(), expected_records, "{name}");
    records
}

/// The fields common to all DAQ records match the golden exactly.
fn check_daq_common(out: &Value, g: &Value, kind: &str) {
    assert_eq!(out["kind"], kind);
    assert_eq!(out["byte_offset"], g["byte_offset"]);
    assert_eq!(out["version"], g["version"]);
    assert_eq!(out["preamble"], g["preamble"]);
    assert_eq!(out["header"], g["header"]);
}

#[test]
fn events() {
    let records = decode_sample("IO_EVT.dat", 3);
    let Some(golden) = golden("IO_EVT") else {
        return;
    };
    for (out, g) in records.iter().zip(golden["records"].as_array().unwrap()) {
        check_daq_common(out, g, "event");
        assert_eq!(out["tag"], "IO_EVT");
        for key in [
            "trigger_counter",
            "trigger_mask",
            "overlays",
            "trigger_bits",
            "n_triggered_hits",
            "n_snapshot_hits",
        ] {
            assert_eq!(out[key], g[key], "{key}");
        }
        for (list, with_mask) in [("triggered_hits", true), ("snapshot_hits", false)] {
            let hits = out[list].as_array().unwrap();
            assert_eq!(hits.len() as u64, g[format!("n_{list}")].as_u64().unwrap());
            let n = hits.len().min(5);
            let ends = [&hits[..n], &hits[hits.len() - n..]];
            for (ours, theirs) in ends.iter().zip([&g[list]["first"], &g[list]["last"]]) {
                for (h, gh) in ours.iter().zip(theirs.as_array().unwrap()) {
                    for key in ["dom_id", "channel_id", "time", "tot"] {
                        assert_eq!(h[key], gh[key]);
                    }
                    assert_eq!(h.get("trigger_mask").is_some(), with_mask);
                    if with_mask {
                        assert_eq!(h["trigger_mask"], gh["trigger_mask"]);
                    }
                }
            }
            let sum_time: u64 = hits.iter().map(|h| h["time"].as_u64().unwrap()).sum();
            assert_eq!(sum_time, g[list]["sum_time"].as_u64().unwrap());
        }
    }
}

#[test]
fn summaryslices() {
    let records = decode_sample("IO_SUM.dat", 3);
    let Some(golden) = golden("IO_SUM") else {
        return;
    };
    for (out, g) in records.iter().zip(golden["records"].as_array().unwrap()) {
        check_daq_common(out, g, "summaryslice");
        let frames = out["frames"].as_array().unwrap();
        let gframes = g["frames"].as_array().unwrap();
        assert_eq!(frames.len(), gframes.len());
        for (f, gf) in frames.iter().zip(gframes) {
            for key in [
                "dom_id",
                "daq",
                "status",
                "fifo",
                "status_3",
                "status_4",
                "rates_raw",
                "wr_status",
                "hrv_channels",
                "fifo_almost_full_channels",
                "udp_complete",
            ] {
                assert_eq!(f[key], gf[key], "{key}");
            }
            for (r, gr) in f["rates_hz"]
                .as_array()
                .unwrap()
                .iter()
                .zip(gf["rates_hz"].as_array().unwrap())
            {
                assert_close(r, gr);
            }
            assert_close(&f["rate_sum_hz"], &gf["rate_sum_hz"]);
        }
    }
}

#[test]
fn timeslices() {
    let records = decode_sample("IO_TSSN.dat", 3);
    let Some(golden) = golden("IO_TSSN") else {
        return;
    };
    for (out, g) in records.iter().zip(golden["records"].as_array().unwrap()) {
        check_daq_common(out, g, "timeslice");
        for key in ["n_frames", "n_hits_total", "n_time_sync_invalid"] {
            assert_eq!(out[key], g[key], "{key}");
        }
        let frames = out["frames"].as_array().unwrap();
        for (f, gf) in frames.iter().zip(g["frames"].as_array().unwrap()) {
            for key in [
                "byte_offset",
                "header",
                "dom_id",
                "daq",
                "status",
                "fifo",
                "status_3",
                "status_4",
                "time_sync_valid",
                "n_hits",
                "hrv_channels",
            ] {
                assert_eq!(f[key], gf[key], "{key}");
            }
            let hits = f["hits"].as_array().unwrap();
            assert_eq!(hits.len() as u64, gf["n_hits"].as_u64().unwrap());
            let sum_tot: u64 = hits.iter().map(|h| h["tot"].as_u64().unwrap()).sum();
            assert_eq!(sum_tot, gf["hits_sum_tot"].as_u64().unwrap());
        }
        // The first hits of the whole timeslice, with their DOM.
        let all: Vec<(Value, &Value)> = frames
            .iter()
            .flat_map(|f| {
                f["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |h| (f["dom_id"].clone(), h))
            })
            .collect();
        for ((dom, h), gh) in all.iter().zip(g["hits_first"].as_array().unwrap()) {
            assert_eq!(*dom, gh["dom_id"]);
            for key in ["channel_id", "time", "tot"] {
                assert_eq!(h[key], gh[key]);
            }
        }
    }
}

#[test]
fn tmch_packets() {
    let records = decode_sample("IO_MONIT.dat", 6);
    let Some(golden) = golden("IO_MONIT") else {
        return;
    };
    for (out, g) in records.iter().zip(golden["records"].as_array().unwrap()) {
        assert_eq!(out["kind"], "tmch");
        assert_eq!(out["tag"], "IO_MONIT");
        // Every golden field but the golden's own bookkeeping, exactly.
        for (key, value) in g.as_object().unwrap() {
            if key == "index" || key == "bytes_consumed_by_km3pipe" {
                continue;
            }
            assert_eq!(&out[key], value, "{key}");
        }
    }
}

#[test]
fn several_files_and_forced_tag() {
    let output = dump(&[&sample("IO_EVT.dat"), &sample("IO_MONIT.dat")]);
    assert!(output.status.success());
    let kinds: Vec<String> = lines(&output)
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["event", "event", "event", "tmch", "tmch", "tmch", "tmch", "tmch", "tmch"]
    );

    let path = sample("IO_MONIT.dat");
    let output = run(&[path.as_os_str(), "--tag".as_ref(), "IO_MONIT".as_ref()]);
    assert!(output.status.success());
    assert_eq!(lines(&output).len(), 6);
    // The wrong tag forces the wrong container: an error, nothing printed.
    let output = run(&[path.as_os_str(), "--tag".as_ref(), "IO_EVT".as_ref()]);
    assert!(!output.status.success());
    assert!(lines(&output).is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("byte 0: "));
}

#[test]
fn recordings_carry_their_tags() {
    use daq::controlhost::{encode_message, Tag};
    let dir = scratch("recording");
    let mut recording = Vec::new();
    for record in daq::dump::DumpReader::open(sample("IO_SUM.dat")).unwrap() {
        recording.extend(encode_message(
            Tag::new("IO_SUM").unwrap(),
            &record.unwrap().payload,
        ));
    }
    let msg_at = recording.len();
    recording.extend(encode_message(
        Tag::new("MSG").unwrap(),
        b"host DataQueue Q0 started",
    ));
    let path = dir.join("recording.ch");
    std::fs::write(&path, &recording).unwrap();
    let output = dump(&[&path]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let records = lines(&output);
    assert_eq!(records.len(), 4);
    assert_eq!(records[0]["kind"], "summaryslice");
    assert_eq!(records[0]["tag"], "IO_SUM");
    assert_eq!(records[1]["byte_offset"], 16 + 1849);
    assert_eq!(records[3]["kind"], "msg");
    assert_eq!(records[3]["tag"], "MSG");
    assert_eq!(records[3]["byte_offset"], msg_at);
    assert_eq!(records[3]["source"], "DataQueue");
    assert_eq!(records[3]["text"], "host DataQueue Q0 started");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn corrupt_files_report_offsets_and_go_on() {
    let dir = scratch("corrupt");
    // Event 1's preamble destroyed: resynchronised at event 2.
    let mut events = std::fs::read(sample("IO_EVT.dat")).unwrap();
    events[5724..5728].copy_from_slice(&(-77i32).to_le_bytes());
    let events_path = dir.join("IO_EVT_corrupt.dat");
    std::fs::write(&events_path, &events).unwrap();
    // Summaryslice 1's frame count too large for its bytes: skipped by its length.
    let mut sums = std::fs::read(sample("IO_SUM.dat")).unwrap();
    sums[1849 + 30..1849 + 34].copy_from_slice(&1_000_000i32.to_le_bytes());
    // And the file cut short in the last slice.
    sums.truncate(sums.len() - 100);
    let sums_path = dir.join("IO_SUM_corrupt.dat");
    std::fs::write(&sums_path, &sums).unwrap();

    let output = dump(&[&events_path, &sums_path]);
    assert!(!output.status.success());
    let records = lines(&output);
    let offsets: Vec<(String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["byte_offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        offsets,
        [
            ("event".to_owned(), 0),
            ("event".to_owned(), 7674),
            ("summaryslice".to_owned(), 0)
        ]
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 3, "{stderr}");
    assert!(
        errors[0].starts_with(&format!("{}: byte 5724: ", events_path.display())),
        "{stderr}"
    );
    assert!(
        errors[1].starts_with(&format!("{}: byte 1879: ", sums_path.display())),
        "{stderr}"
    );
    assert!(
        errors[2].starts_with(&format!("{}: byte 5678: ", sums_path.display())),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_file_is_an_error_but_others_are_read() {
    let missing = Path::new("/nonexistent/km3mon/IO_EVT.dat");
    let output = dump(&[missing, &sample("IO_TSSN.dat")]);
    assert!(!output.status.success());
    assert_eq!(lines(&output).len(), 3);
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/km3mon/IO_EVT.dat"));
}

#[test]
fn detx_summary() {
    let detx = common::testdata().join("detx");
    for (file, expected) in [
        ("detx_v4.detx", (44, 4, 5, 90, 0, 2790)),
        ("detx_v5.detx", (49, 5, 6, 108, 6, 3348)),
        ("detx_v1.detx", (1, 1, 2, 6, 0, 18)),
    ] {
        let path = detx.join(file);
        if !path.exists() {
            continue;
        }
        let output = run(&["--detx".as_ref(), path.as_os_str()]);
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let records = lines(&output);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        let got = (
            r["det_id"].as_i64().unwrap(),
            r["version"].as_u64().unwrap(),
            r["n_dus"].as_u64().unwrap(),
            r["n_doms"].as_u64().unwrap(),
            r["n_base_modules"].as_u64().unwrap(),
            r["n_pmts"].as_u64().unwrap(),
        );
        assert_eq!(
            got,
            (expected.0, expected.1, expected.2, expected.3, expected.4, expected.5),
            "{file}"
        );
    }
    let output = run(&["--detx".as_ref(), "/nonexistent.detx".as_ref()]);
    assert!(!output.status.success());
}
