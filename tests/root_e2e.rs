//! `km3mon dump FILE.root`: the archived-run sample against its golden
//! decoding, every online sample of km3net-testdata decoded completely,
//! and corrupt copies reported as errors (exit 1, never a panic).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{km3mon, testdata};
use serde_json::Value;

fn dump(path: &Path) -> (Output, Vec<Value>) {
    let out = Command::new(km3mon())
        .arg("dump")
        .arg(path)
        .output()
        .expect("run km3mon dump");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (out, lines)
}

#[test]
fn dump_matches_the_golden() {
    let dir = testdata().join("root");
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("km3net_online.golden.json")).unwrap(),
    )
    .unwrap();
    let (out, lines) = dump(&dir.join("km3net_online.root"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let of = |kind: &str, stream: Option<&str>| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["kind"] == kind && l["stream"].as_str() == stream)
            .collect()
    };
    let events = of("event", None);
    let slices = of("summaryslice", None);
    assert_eq!(g["n_events"].as_u64(), Some(events.len() as u64));
    assert_eq!(g["n_summaryslices"].as_u64(), Some(slices.len() as u64));
    for e in &events {
        assert_eq!(e["tag"], "IO_EVT");
    }
    for r in g["events"]["records"].as_array().unwrap() {
        let e = events[r["index"].as_u64().unwrap() as usize];
        assert_eq!(e["entry"], r["index"]);
        assert_eq!(e["header"], r["header"]);
        for k in [
            "trigger_counter",
            "trigger_mask",
            "overlays",
            "n_triggered_hits",
            "n_snapshot_hits",
        ] {
            assert_eq!(e[k], r[k], "{k}");
        }
        let first: Vec<Value> = e["triggered_hits"]
            .as_array()
            .unwrap()
            .iter()
            .take(3)
            .cloned()
            .collect();
        assert_eq!(Value::from(first), r["triggered_hits_first"]);
    }
    for r in g["summaryslices"]["records"].as_array().unwrap() {
        let s = slices[r["index"].as_u64().unwrap() as usize];
        assert_eq!(s["tag"], "IO_SUM");
        assert_eq!(s["header"], r["header"]);
        for (f, gf) in s["frames"]
            .as_array()
            .unwrap()
            .iter()
            .zip(r["frames"].as_array().unwrap())
        {
            for k in [
                "dom_id",
                "daq",
                "status",
                "fifo",
                "status_3",
                "status_4",
                "rates_raw",
                "hrv_channels",
                "fifo_almost_full_channels",
                "udp_trailer",
                "wr_status",
            ] {
                assert_eq!(f[k], gf[k], "{k}");
            }
            let (a, b) = (
                f["rate_sum_hz"].as_f64().unwrap(),
                gf["rate_sum_hz"].as_f64().unwrap(),
            );
            assert!(((a - b) / b).abs() <= 1e-12, "{a} vs {b}");
        }
    }
    for (label, tag) in [("L1", "IO_TSL1"), ("SN", "IO_TSSN"), ("TS", "IO_TS")] {
        let ts = of("timeslice", Some(label));
        assert_eq!(
            g["n_timeslices"][label].as_u64(),
            Some(ts.len() as u64),
            "{label}"
        );
        for r in g["timeslices"][label]["records"].as_array().unwrap() {
            let t = ts[r["index"].as_u64().unwrap() as usize];
            assert_eq!(t["tag"], tag);
            assert_eq!(t["header"], r["header"]);
            assert_eq!(t["n_frames"], r["n_frames"]);
            assert_eq!(t["n_hits_total"], r["n_hits"]);
        }
    }
}

#[test]
fn every_online_sample_dumps_completely() {
    let mut n = 0;
    for entry in std::fs::read_dir(common::online_samples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "root") {
            continue;
        }
        let (out, lines) = dump(&path);
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!lines.is_empty(), "{}", path.display());
        n += 1;
    }
    assert!(n >= 8, "{n} samples");
}

#[test]
fn corrupt_copies_are_errors_not_panics() {
    let original = std::fs::read(testdata().join("root/km3net_online.root")).unwrap();
    let dir = std::env::temp_dir().join(format!("root-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("cut.root");
    for cut in [100, 5_000, original.len() / 2, original.len() - 1] {
        std::fs::write(&copy, &original[..cut]).unwrap();
        let (out, _) = dump(&copy);
        assert_eq!(out.status.code(), Some(1), "cut at {cut}");
        assert!(!out.stderr.is_empty());
    }
    // A flipped byte inside a basket: the rest of the file still dumps.
    let mut bad = original.clone();
    let n = bad.len();
    bad[n / 3] ^= 0xff;
    std::fs::write(&copy, &bad).unwrap();
    let (out, _) = dump(&copy);
    assert_ne!(out.status.code(), Some(101), "panicked");
    std::fs::remove_dir_all(&dir).ok();
}

/// `km3mon publish FILE.root` republishes a run with the right tags, in
/// time order, without `--tag`.
#[test]
fn publish_root_run_into_a_ligier() {
    use daq::controlhost::{Mode, Subscription, Tag};
    use ligier::{Client, ClientConfig, Ligier, LigierConfig};
    use std::time::Duration;

    let ligier = Ligier::start(LigierConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..LigierConfig::default()
    })
    .expect("start ligier");
    let addr = ligier.local_addr().to_string();
    let tags = ["IO_EVT", "IO_SUM", "IO_TSL1", "IO_TSSN", "IO_TS"];
    let mut sub = Client::connect(ClientConfig::new(&addr)).unwrap();
    let mut subscription = Subscription::new();
    for t in tags {
        subscription = subscription.with(Mode::All, Tag::new(t).unwrap());
    }
    sub.subscribe(subscription).unwrap();
    // The subscription must be in place before the publisher speaks.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let subscribed = || {
        ligier
            .status()
            .connections
            .iter()
            .any(|c| c.subscription.split_whitespace().any(|w| w == "IO_SUM"))
    };
    while !subscribed() {
        assert!(
            std::time::Instant::now() < deadline,
            "subscription not seen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let root = testdata().join("root/km3net_online.root");
    let out = Command::new(km3mon())
        .args(["publish", "--ligier", &addr])
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut counts = std::collections::BTreeMap::new();
    let mut last_frame_index = 0;
    while let Some(msg) = sub.recv_timeout(Duration::from_secs(3)).unwrap() {
        *counts.entry(msg.tag().to_string()).or_insert(0) += 1;
        let header = daq::frame::peek_header(msg.payload()).expect("a DAQ frame");
        assert!(header.frame_index >= last_frame_index, "time order");
        last_frame_index = header.frame_index;
    }
    let expected: std::collections::BTreeMap<String, i32> = [
        ("IO_EVT", 3),
        ("IO_SUM", 3),
        ("IO_TSL1", 3),
        ("IO_TSSN", 3),
        ("IO_TS", 3),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_string(), n))
    .collect();
    assert_eq!(counts, expected);
}

/// A run file still being written (trees last saved at an autosave, more
/// baskets after it, no final key list): `dump` and `replay` read what the
/// metadata reaches, embedded baskets included, and warn with the number
/// of entries not reached; no error, no panic.
#[test]
fn file_still_being_written_replays_what_is_saved() {
    use daq::frame::DataType;
    use rootio::km3net::Stream;
    use rootio::write::gen::RunGen;
    use rootio::write::{RootWriter, WriteOptions};

    let dir = common::scratch("root-e2e", "in-progress");
    let path = dir.join("KM3NeT_00000133_00009100.root");
    let mut g = RunGen::new(133, 9100, 20, 5);
    let opts = WriteOptions {
        basket_size: 30 << 10,
        ..WriteOptions::default()
    };
    let mut w = RootWriter::create(&path, opts).unwrap();
    for fi in 1..=30 {
        w.summaryslice(&g.summaryslice(fi)).unwrap();
        w.timeslice(Stream::Sn, &g.timeslice(fi, DataType::TimesliceSn, 10))
            .unwrap();
        if fi == 20 {
            w.autosave().unwrap();
        }
    }
    drop(w);

    let (out, lines) = dump(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(lines.len(), 40, "20 summaryslices and 20 timeslices saved");
    assert!(
        stderr.contains("warning") && stderr.contains("not reached"),
        "{stderr}"
    );

    let graph = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../graphs/km3mon.toml");
    let run = Command::new(km3mon())
        .args(["replay", "--no-web", "--graph"])
        .arg(&graph)
        .arg("--detector")
        .arg(testdata().join("detx/detx_v4.detx"))
        .arg("--out")
        .arg(dir.join("out"))
        .arg(&path)
        .output()
        .expect("run km3mon replay");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{all}");
    assert!(all.contains("not reached"), "{all}");
    assert!(all.contains("frames: 40 "), "{all}");
    std::fs::remove_dir_all(&dir).ok();
}
