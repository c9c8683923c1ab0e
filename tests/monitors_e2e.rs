//! The detector-health graph end to end: the sample dumps replayed through
//! `graphs/km3mon.toml` (dom_rates.json against the golden rate sums), and
//! a generated stream with a silent DOM, a time-sync loss and an event gap
//! that must raise exactly three alerts, once each, resolve them, and
//! publish them as MSG lines into a Ligier.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{free_port, km3mon, testdata};
use daq::controlhost::{Mode as SubMode, Subscription, Tag};
use daq::detector::Detector;

fn tmp(name: &str) -> PathBuf {
    common::scratch("mon", name)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut c = Command::new(km3mon());
    c.args(args).env("KM3MON_LOG", "warn");
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().expect("run km3mon");
    assert!(
        out.status.success(),
        "km3mon {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn replay_samples(out: &Path, workers: &str) {
    let graph = root().join("graphs/km3mon.toml");
    let detx = testdata().join("detx/detx_v4.detx");
    let mut args = vec![
        "replay".to_string(),
        "--graph".into(),
        graph.display().to_string(),
        "--detector".into(),
        detx.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "-w".into(),
        workers.into(),
    ];
    args.extend(common::sample_dumps());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args, &[]);
}

#[test]
fn sample_dumps_give_dom_rates_equal_to_the_golden_rate_sums() {
    let out = tmp("samples");
    replay_samples(&out, "1");
    for f in [
        "dom_rates.png",
        "dom_activity.png",
        "dom_rates.json",
        "dom_activity.json",
    ] {
        assert!(out.join("plots").join(f).is_file(), "{f} missing");
    }
    assert!(out.join("data/alerts.jsonl").is_file());

    // Expected: per DOM, the mean of its rate sums over the three slices
    // (all in one 10 s window), in kHz.
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read(testdata().join("golden/IO_SUM.golden.json")).unwrap(),
    )
    .unwrap();
    let mut sums: BTreeMap<u64, (f64, u32)> = BTreeMap::new();
    for r in golden["records"].as_array().unwrap() {
        for f in r["frames"].as_array().unwrap() {
            let e = sums.entry(f["dom_id"].as_u64().unwrap()).or_default();
            e.0 += f["rate_sum_hz"].as_f64().unwrap();
            e.1 += 1;
        }
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("plots/dom_rates.json")).unwrap()).unwrap();
    assert_eq!(json["det_id"], 44);
    assert_eq!(json["time_utc"], "2019-11-22T12:00:28Z");
    let doms = json["doms"].as_array().unwrap();
    assert_eq!(doms.len(), sums.len());
    for d in doms {
        let (s, n) = sums[&d["dom_id"].as_u64().unwrap()];
        let expect = s / f64::from(n) / 1000.0;
        let got = d["value"].as_f64().unwrap();
        assert!(
            (got - expect).abs() <= 1e-9 * expect.max(1.0),
            "{d}: {got} vs {expect}"
        );
        assert!(d["du"].as_u64().unwrap() > 0 && d["floor"].as_i64().unwrap() > 0);
    }
    // The activity map: seconds since the last slice with the DOM.
    let act: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("plots/dom_activity.json")).unwrap())
            .unwrap();
    assert!(act["doms"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["value"].as_f64().unwrap() <= 4.0));

    // -w 2 gives the same numbers.
    let out2 = tmp("samples-w2");
    replay_samples(&out2, "2");
    for f in [
        "plots/dom_rates.json",
        "plots/dom_activity.json",
        "plots/hitmap.json",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(out2.join(f)).unwrap(),
            "{f} differs between -w 1 and -w 2"
        );
    }
}

/// The generated faults (seconds from the start of the stream).
const SILENT: (u64, u64) = (30, 70);
const UNSYNCED: (u64, u64) = (40, 60);
const NO_EVENTS: (u64, u64) = (80, 100);
const START: u64 = 1_700_000_000;

fn generated_stream(dir: &Path) -> (PathBuf, PathBuf, u32, u32) {
    let det = Detector::generate(77, 2, 4, 31);
    let detx = dir.join("det.detx");
    det.write_detx_file(&detx, 5).unwrap();
    let silent = det.module_at(2, 3).unwrap().dom_id;
    let unsynced = det.module_at(1, 4).unwrap().dom_id;
    let mut plan = operators::shell::synth::Plan::new(START, 120);
    plan.monit_hz = 1;
    plan.events_hz = 10;
    plan.tssn_hz = 10;
    plan.hits_per_event = 6;
    plan.silent = vec![(silent, SILENT.0, SILENT.1)];
    plan.unsynced = vec![(unsynced, UNSYNCED.0, UNSYNCED.1)];
    plan.no_events = vec![NO_EVENTS];
    let rec = dir.join("stream.rec");
    operators::shell::synth::write_recording(&rec, &det, &plan).unwrap();
    (detx, rec, silent, unsynced)
}

fn site_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("pipeline.toml.example"))
        .unwrap()
        .replace("inactive_after = 300", "inactive_after = 20")
        .replace(
            "[TriggerRate]\ninterval = 300",
            "[TriggerRate]\ninterval = 10",
        );
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn generated_faults_raise_three_alerts_once_each_and_resolve_them() {
    let dir = tmp("alerts");
    let (detx, rec, silent, unsynced) = generated_stream(&dir);
    let site = site_config(&dir);
    // The shipped graph, with the MSG sink allowed to publish in a replay.
    let graph = std::fs::read_to_string(root().join("graphs/km3mon.toml"))
        .unwrap()
        .replace(
            "port = \"${LOG_LIGIER_PORT}\"",
            "port = \"${LOG_LIGIER_PORT}\"\nin_replay = true",
        );
    let graph_path = dir.join("km3mon.toml");
    std::fs::write(&graph_path, graph).unwrap();

    // A log Ligier and a subscriber to its MSG tag.
    let port = free_port();
    let ligier = common::start_ligier(port);
    let mut sub =
        ligier::Client::connect(ligier::ClientConfig::new(format!("127.0.0.1:{port}"))).unwrap();
    sub.subscribe(Subscription::new().with(SubMode::Any, Tag::new("MSG").unwrap()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let out = dir.join("out");
    run(
        &[
            "replay",
            "--graph",
            graph_path.to_str().unwrap(),
            "--config",
            site.to_str().unwrap(),
            "--detector",
            detx.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            rec.to_str().unwrap(),
        ],
        &[
            ("LOG_LIGIER_IP", "127.0.0.1".to_string()),
            ("LOG_LIGIER_PORT", port.to_string()),
        ],
    );

    let text = std::fs::read_to_string(out.join("data/alerts.jsonl")).unwrap();
    // The monitors' lines only (alerts_notify writes alerts_routing.jsonl).
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("monitor").is_some())
        .collect();
    let summary: Vec<(String, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_string(),
                l["state"].as_str().unwrap().to_string(),
                l["time_utc"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let iso = |s: u64| {
        let t = START + s;
        // 2023-11-14T22:13:20Z is START.
        let base = 22 * 3600 + 13 * 60 + 20;
        let d = base + (t - START);
        format!(
            "2023-11-14T{:02}:{:02}:{:02}Z",
            d / 3600,
            d / 60 % 60,
            d % 60
        )
    };
    let inactive = format!("dom_inactive:{silent}");
    let sync = format!("time_sync:{unsynced}");
    assert_eq!(
        summary,
        vec![
            (sync.clone(), "firing".into(), iso(UNSYNCED.0)),
            // last seen at 29.9 s, absent for more than 20 s at 50 s
            (inactive.clone(), "firing".into(), iso(SILENT.0 + 20)),
            (sync.clone(), "resolved".into(), iso(UNSYNCED.1)),
            (inactive.clone(), "resolved".into(), iso(SILENT.1)),
            // last event at 79.9 s, 10 s without one at 89.9 s
            (
                "trigger_rate_zero".into(),
                "firing".into(),
                iso(89)[..19].to_string() + ".900Z"
            ),
            (
                "trigger_rate_zero".into(),
                "resolved".into(),
                iso(NO_EVENTS.1)
            ),
        ],
        "{text}"
    );
    let m = det_place(&lines[1]);
    assert!(m.contains("DU2 floor 3"), "{m}");
    for l in &lines {
        assert!(l["monitor"].is_string() && l["message"].is_string());
    }

    // The same six, as MSG lines on the log Ligier.
    let mut msgs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while msgs.len() < 6 && Instant::now() < deadline {
        if let Ok(Some(m)) = sub.recv_timeout(Duration::from_millis(200)) {
            msgs.push(String::from_utf8_lossy(m.payload()).to_string());
        }
    }
    drop(ligier);
    assert_eq!(msgs.len(), 6, "{msgs:?}");
    assert!(
        msgs.iter()
            .all(|m| m.starts_with("ALERT (MONITORING) 2023-11-14T")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().filter(|m| m.contains("RESOLVED")).count() == 3,
        "{msgs:?}"
    );

    // Trigger rates: CSV rows per 10 s window with the original header.
    let csv = std::fs::read_to_string(out.join("data/trigger_rates.csv")).unwrap();
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("timestamp,Overall,3DMuon,MXShower,3DShower")
    );
    let first: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(first[0], (START + 10).to_string());
    assert_eq!(first[1], "10.000000");
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("{},0.000000", START + 90))),
        "{csv}"
    );
    for f in [
        "trigger_rates.png",
        "trigger_rates_lin.png",
        "pmt_rates_du1.png",
        "pmt_rates_du2.png",
        "hitmap.png",
        "triggermap.png",
        "dom_rates.png",
        "dom_activity.png",
    ] {
        assert!(out.join("plots").join(f).is_file(), "{f} missing");
    }
}

fn det_place(line: &serde_json::Value) -> String {
    line["message"].as_str().unwrap().to_string()
}

/// The 24 h trigger-rate history survives a restart: a replay with
/// `--state-dir`, then a replay of later data (the next run) with the same
/// state directory; the second replay's `trigger_rates.json` holds the
/// windows of both, and both runs as run changes.
#[test]
fn trigger_rate_history_is_restored_from_the_state_dir() {
    let dir = tmp("restart");
    let det = Detector::generate(78, 2, 4, 31);
    let detx = dir.join("det.detx");
    det.write_detx_file(&detx, 5).unwrap();
    let site = site_config(&dir);
    let state = dir.join("state");
    let replay = |start: u64, run_number: i32, name: &str| {
        let mut plan = operators::shell::synth::Plan::new(start, 60);
        plan.run = run_number;
        plan.monit_hz = 1;
        plan.events_hz = 10;
        plan.tssn_hz = 1;
        plan.hits_per_event = 6;
        let rec = dir.join(format!("{name}.rec"));
        operators::shell::synth::write_recording(&rec, &det, &plan).unwrap();
        let out = dir.join(name);
        run(
            &[
                "replay",
                "--graph",
                root().join("graphs/km3mon.toml").to_str().unwrap(),
                "--config",
                site.to_str().unwrap(),
                "--detector",
                detx.to_str().unwrap(),
                "--state-dir",
                state.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                rec.to_str().unwrap(),
            ],
            &[],
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("plots/trigger_rates.json")).unwrap())
                .unwrap();
        json
    };
    let first = replay(START, 100, "first");
    let second = replay(START + 60, 101, "second");
    let ends = |j: &serde_json::Value| -> Vec<u64> {
        j["rates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_u64().unwrap())
            .collect()
    };
    let (a, b) = (ends(&first), ends(&second));
    assert!(!a.is_empty());
    assert!(
        a.iter().all(|t| *t <= START + 60),
        "first replay: windows {a:?}"
    );
    // The second replay's history starts with the first one's windows and
    // goes on past them.
    assert!(b.len() > a.len(), "first {a:?}, second {b:?}");
    assert_eq!(&b[..a.len()], &a[..], "history not restored");
    assert!(*b.last().unwrap() > START + 60, "second {b:?}");
    let runs: Vec<u64> = second["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_u64().unwrap())
        .collect();
    assert_eq!(runs, vec![100, 101], "{second}");
}
