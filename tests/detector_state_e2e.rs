//! The `detector_state` node (differential dataflow) on a simulated
//! detector of DU 1 (30 floors) and DU 2 (18 floors): all 30 DOMs of DU 1
//! go silent, DU 2 loses time sync (18 DOMs), and 3 DOMs of DU 2 also go
//! silent (both conditions); then half of DU 1 comes back and DU 2
//! regains time sync.
//!
//! * The table's rows (`data/detector_state.csv`) agree at every data time
//!   with a plain recount of the monitors' own alert lines
//!   (`data/alerts.jsonl`): firing, partly resolved, resolved.
//! * The gauges (`km3mon_doms_affected`, `km3mon_alerts_firing`) and the
//!   text of `health` (what `km3mon ctl health` and the chat print) show
//!   the table of the last data time.
//! * The alert router's texts (`alerts_notify` with `detector_state` as
//!   an input; `data/alerts_routing.jsonl` keeps each message's text)
//!   place the DOMs by the table and their `Now` line counts what the
//!   table counts at the message's data time (firing, partly resolved,
//!   all resolved); the last message of each condition says what the
//!   gauges say at the end.
//! * `-w 1` and `-w 2` give the same bytes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use pipeline::control::Control;
use pipeline::runtime::metrics::Metrics;
use pipeline::runtime::{self, Mode, RunOptions};

const GRAPH: &str = r#"
[nodes.daq]
type = "ligier"
host = "127.0.0.1"
tags = ["IO_SUM", "IO_TSSN"]

[nodes.summaryslices]
type = "decode"
inputs = ["daq"]
kind = "summaryslices"

[nodes.timeslices]
type = "decode"
inputs = ["daq"]
kind = "timeslices"
tags = ["IO_TSSN"]

[nodes.dom_activity]
type = "dom_activity"
inputs = ["summaryslices"]
inactive_after = 5

[nodes.timesync]
type = "timesync"
inputs = ["timeslices"]

[nodes.alerts]
type = "alerts_jsonl"
inputs = ["dom_activity", "timesync"]
path = "data/alerts.jsonl"

[nodes.detector_state]
type = "detector_state"
inputs = ["dom_activity", "timesync"]

[nodes.detector_state_csv]
type = "csv"
inputs = ["detector_state"]
path = "data/detector_state.csv"

[nodes.notify]
type = "alerts_notify"
inputs = ["dom_activity", "timesync", "detector_state"]
alerts = { enabled = false, group_window = 5 }
path = "data/alerts_routing.jsonl"
"#;

/// A detector of DU 1 with 30 floors and DU 2 with 18: a generated 2 × 30
/// without DU 2's floors 19–30.
fn detector(dir: &Path) -> PathBuf {
    let (full, detx) = (dir.join("full.detx"), dir.join("d.detx"));
    let out = Command::new(common::km3mon())
        .args([
            "simulate",
            "--generate-detector",
            "2x30",
            "--write-detector",
        ])
        .arg(&full)
        .arg("-o")
        .arg(dir.join("unused.rec"))
        .args(["--duration", "1s"])
        .env("KM3MON_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let det = daq::detector::Detector::from_file(&full).unwrap();
    let kept = det
        .modules()
        .iter()
        .filter(|m| m.du == 1 || m.floor <= 18)
        .cloned()
        .collect();
    let cut = daq::detector::Detector::new(det.det_id(), det.version(), kept)
        .unwrap()
        .with_validity(det.validity())
        .with_utm(det.utm().cloned());
    std::fs::write(&detx, cut.to_detx_string(det.version()).unwrap()).unwrap();
    detx
}

fn simulate(dir: &Path) -> (PathBuf, PathBuf) {
    let (rec, detx) = (dir.join("rec"), detector(dir));
    let mut args: Vec<String> = [
        "simulate",
        "--detector",
        detx.to_str().unwrap(),
        "-o",
        rec.to_str().unwrap(),
        "--duration",
        "70s",
        "--msg-interval",
        "10s",
        // DU 2 out of time sync from 10 s to 50 s.
        "--fault",
        "du-timesync@10s+40s:2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // DU 1 silent from 15 s; floors 1–15 back at 45 s, 16–30 not.
    for floor in 1..=30 {
        let span = if floor <= 15 { "15s+30s" } else { "15s" };
        args.push("--fault".into());
        args.push(format!("dom-silent@{span}:1/{floor}"));
    }
    // Three DOMs of DU 2 silent too, while out of sync (both conditions).
    for floor in 1..=3 {
        args.push("--fault".into());
        args.push(format!("dom-silent@20s+20s:2/{floor}"));
    }
    let out = Command::new(common::km3mon())
        .args(&args)
        .env("KM3MON_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (rec, detx)
}

fn replay(rec: &Path, detx: &Path, out: &Path, workers: usize) -> (Arc<Metrics>, Arc<Control>) {
    let site = pipeline::site::SiteConfig::example();
    let graph = pipeline::Graph::parse("detector_state.toml", GRAPH, &site, &operators::registry())
        .unwrap_or_else(|d| panic!("{d}"));
    let metrics = Arc::new(Metrics::default());
    let control = Arc::new(Control::new(Some(out), None));
    let mut opts = RunOptions::new(
        Mode::Replay {
            files: vec![rec.to_path_buf()],
            speed: None,
        },
        out.to_path_buf(),
    );
    opts.workers = workers;
    opts.detector = Some(detx.to_path_buf());
    opts.progress = false;
    opts.handle_signals = false;
    opts.metrics = Some(metrics.clone());
    opts.control = Some(control.clone());
    runtime::run(&graph, opts).expect("the replay runs");
    (metrics, control)
}

/// (du, condition) → DOMs, after each data time (Unix s), recounted from
/// the alert lines: DOM → DU from the detector file's DOM ids.
type Counts = BTreeMap<(String, String), u64>;

fn recount(alerts: &str, du_of: &BTreeMap<u32, u32>) -> BTreeMap<i64, Counts> {
    let mut active: BTreeMap<(u32, String), ()> = BTreeMap::new();
    let mut by_time: BTreeMap<i64, Counts> = BTreeMap::new();
    for line in alerts.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = v["key"].as_str().unwrap();
        let Some((cond, dom)) = key.split_once(':') else {
            continue;
        };
        let dom: u32 = dom.parse().unwrap();
        let t = timefmt::parse(v["time_utc"].as_str().unwrap())
            .unwrap()
            .as_second();
        if v["state"] == "firing" {
            active.insert((dom, cond.to_string()), ());
        } else {
            active.remove(&(dom, cond.to_string()));
        }
        let mut c = Counts::new();
        for (dom, cond) in active.keys() {
            *c.entry((du_of[dom].to_string(), cond.clone())).or_default() += 1;
            *c.entry(("all".into(), cond.clone())).or_default() += 1;
        }
        by_time.insert(t, c);
    }
    by_time
}

/// The table after each data time, from the rows of changes.
fn table(csv: &str) -> BTreeMap<i64, Counts> {
    let mut cur = Counts::new();
    let mut by_time: BTreeMap<i64, Counts> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (t, du, cond, n): (i64, &str, &str, u64) =
            (f[0].parse().unwrap(), f[1], f[2], f[3].parse().unwrap());
        if n == 0 {
            cur.remove(&(du.to_string(), cond.to_string()));
        } else {
            cur.insert((du.to_string(), cond.to_string()), n);
        }
        by_time.insert(t, cur.clone());
    }
    by_time
}

#[test]
fn table_gauges_and_text_agree_with_the_alerts_for_any_worker_count() {
    let dir = common::scratch("detector-state", "storm");
    let (rec, detx) = simulate(&dir);
    let det = daq::detector::Detector::from_file(&detx).unwrap();
    let du_of: BTreeMap<u32, u32> = det.modules().iter().map(|m| (m.dom_id, m.du)).collect();

    let (w1, w2) = (dir.join("w1"), dir.join("w2"));
    let (metrics, control) = replay(&rec, &detx, &w1, 1);
    let _ = replay(&rec, &detx, &w2, 2);
    let csv = std::fs::read_to_string(w1.join("data/detector_state.csv")).unwrap();
    assert_eq!(
        csv,
        std::fs::read_to_string(w2.join("data/detector_state.csv")).unwrap(),
        "-w 1 and -w 2 differ"
    );
    let alerts = std::fs::read_to_string(w1.join("data/alerts.jsonl")).unwrap();

    // At every data time where the alerts changed something, the table
    // says what a recount says.
    let expected = recount(&alerts, &du_of);
    let got = table(&csv);
    let at = |m: &BTreeMap<i64, Counts>, t: i64| {
        m.range(..=t)
            .next_back()
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    };
    for t in expected.keys().chain(got.keys()) {
        assert_eq!(at(&got, *t), at(&expected, *t), "at {t}");
    }
    // The story happened: all three phases are in the table.
    let peak = got
        .values()
        .map(|c| {
            c.get(&("1".into(), "dom_inactive".into()))
                .copied()
                .unwrap_or(0)
        })
        .max();
    assert_eq!(peak, Some(30), "{csv}");
    let both_peak = got.values().any(|c| {
        c.get(&("2".into(), "dom_inactive".into())) == Some(&3)
            && c.get(&("2".into(), "time_sync".into())) == Some(&18)
    });
    assert!(both_peak, "{csv}");
    let last = got.values().next_back().unwrap();
    assert_eq!(
        last.get(&("1".into(), "dom_inactive".into())),
        Some(&15),
        "{csv}"
    );
    assert_eq!(last.get(&("2".into(), "time_sync".into())), None, "{csv}");

    // The gauges and the text: the table of the last data time.
    let text = metrics.prometheus();
    let gauge = |series: &str| {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    for ((du, cond), n) in last {
        let series = if du == "all" {
            format!("km3mon_alerts_firing{{condition=\"{cond}\"}}")
        } else {
            format!("km3mon_doms_affected{{du=\"{du}\",condition=\"{cond}\"}}")
        };
        assert_eq!(gauge(&series), Some(*n as f64), "{series} in\n{text}");
    }
    assert_eq!(
        gauge("km3mon_doms_affected{du=\"2\",condition=\"time_sync\"}"),
        Some(0.0),
        "a cleared condition reads 0"
    );
    let reply = control.execute("health", "test");
    assert!(reply.ok, "{}", reply.text);
    let health = reply.health.unwrap();
    assert_eq!(health.by_du[&1]["dom_inactive"], 15);
    let lines: Vec<&str> = reply.text.lines().collect();
    assert!(
        lines[0].contains("15 of 62 DOMs")
            || lines[0].contains("of 60 DOMs")
            || lines[0].contains(" DOMs with active"),
        "{}",
        reply.text
    );
    let du1 = lines.iter().find(|l| l.starts_with("DU 1")).unwrap();
    assert!(du1.split_whitespace().any(|w| w == "15"), "{}", reply.text);

    // The router's texts: one table with the CSV, `ctl health` and gauges.
    let routing = std::fs::read_to_string(w1.join("data/alerts_routing.jsonl")).unwrap();
    assert_eq!(
        routing,
        std::fs::read_to_string(w2.join("data/alerts_routing.jsonl")).unwrap(),
        "-w 1 and -w 2 route differently"
    );
    let last_said = texts_agree_with_the_table(&routing, &alerts, &du_of);
    for (cond, counts) in &last_said {
        for (du, n) in counts {
            let series = if du == "all" {
                format!("km3mon_alerts_firing{{condition=\"{cond}\"}}")
            } else {
                format!("km3mon_doms_affected{{du=\"{du}\",condition=\"{cond}\"}}")
            };
            assert_eq!(
                gauge(&series),
                Some(*n as f64),
                "{series}: the last text said {n}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The active (dom, condition) pairs after every alert at a time ≤ `at_ns`.
fn active_at(alerts: &str, at_ns: u64) -> std::collections::BTreeSet<(u32, String)> {
    let mut active = std::collections::BTreeSet::new();
    for line in alerts.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = timefmt::parse_ns(v["time_utc"].as_str().unwrap()).unwrap();
        let key = v["key"].as_str().unwrap();
        let Some((cond, dom)) = key.split_once(':') else {
            continue;
        };
        if t > at_ns {
            break;
        }
        let pair = (dom.parse().unwrap(), cond.to_string());
        if v["state"] == "firing" {
            active.insert(pair);
        } else {
            active.remove(&pair);
        }
    }
    active
}

/// Checks every routed message's `Now` line against a recount of the
/// alerts at its data time and its DU names against the detector file;
/// the phases (firing, partly resolved, all resolved) must all occur.
/// Returns the last `Now` counts of each condition (du or `all` → DOMs).
fn texts_agree_with_the_table(
    routing: &str,
    alerts: &str,
    du_of: &BTreeMap<u32, u32>,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut last: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut seen = Vec::new();
    for line in routing.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(text) = v["text"].as_str() else {
            continue; // a decision line
        };
        let keys: Vec<&str> = v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        let cond = keys[0].split_once(':').unwrap().0.to_string();
        let doms: Vec<u32> = keys
            .iter()
            .map(|k| k.split_once(':').unwrap().1.parse().unwrap())
            .collect();
        let mut dus: Vec<u32> = doms.iter().map(|d| du_of[d]).collect();
        dus.sort_unstable();
        dus.dedup();
        let summary = text.lines().next().unwrap();
        for du in &dus {
            assert!(
                summary.contains(&format!("DU {du}")),
                "{summary} lacks DU {du}"
            );
        }
        let now = text
            .lines()
            .find(|l| l.starts_with("Now (data time "))
            .unwrap_or_else(|| panic!("no Now line: {text}"));
        let (when, counts) = now["Now (data time ".len()..].split_once("): ").unwrap();
        let at = timefmt::parse_ns(when).unwrap();
        let active = active_at(alerts, at);
        let expected = |du: Option<u32>| {
            active
                .iter()
                .filter(|(d, c)| *c == cond && du.is_none_or(|u| du_of[d] == u))
                .count() as u64
        };
        let mut said = BTreeMap::new();
        for part in counts.split("; ") {
            let (place, n) = part.split_once(": ").unwrap();
            let n: u64 = if n.starts_with("no DOM") {
                0
            } else {
                n.split(' ').next().unwrap().parse().unwrap()
            };
            let du = place.strip_prefix("DU ").map(|d| d.parse::<u32>().unwrap());
            assert_eq!(n, expected(du), "{place} at {when} in\n{text}");
            said.insert(du.map_or("all".to_string(), |d| d.to_string()), n);
        }
        seen.push((
            v["notice"].as_str().unwrap().to_string(),
            cond.clone(),
            said.clone(),
        ));
        last.insert(cond, said);
    }
    let has = |notice: &str, cond: &str, du: &str, n: u64| {
        seen.iter()
            .any(|(no, c, s)| no == notice && c == cond && s.get(du) == Some(&n))
    };
    assert!(has("firing", "dom_inactive", "1", 30), "{seen:?}");
    assert!(has("firing", "time_sync", "2", 18), "{seen:?}");
    assert!(
        has("resolved", "dom_inactive", "1", 15),
        "partly resolved: {seen:?}"
    );
    assert!(
        has("resolved", "time_sync", "all", 0),
        "all resolved: {seen:?}"
    );
    last
}

/// Two `detector_state` nodes would publish into the one table of `km3mon
/// ctl health`, the gauges and the Detector page: `km3mon check` refuses
/// the second, naming where both are.
#[test]
fn check_refuses_a_second_detector_state() {
    let dir = common::scratch("detector-state", "two");
    let graph = dir.join("g.toml");
    let second = "\n[nodes.health_again]\ntype = \"detector_state\"\ninputs = [\"timesync\"]\n";
    let text = format!("{GRAPH}{second}");
    std::fs::write(&graph, &text).unwrap();
    let out = Command::new(common::km3mon())
        .arg("check")
        .arg(&graph)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    let line_of = |h: &str| text.lines().position(|l| l == h).unwrap() + 1;
    let (first, header) = (
        line_of("[nodes.detector_state]"),
        line_of("[nodes.health_again]"),
    );
    let g = graph.display();
    assert!(
        err.contains(&format!(
            "{g}:{header}:8: nodes.health_again: the detector-health table (ctl health, \
             km3mon_doms_affected, /detector.html) is also claimed by node `detector_state` \
             ({g}:{first}:8, nodes.detector_state): one detector_state node per graph"
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An `alerts_notify` beside a `detector_state` that does not take its
/// table would word its texts apart from `km3mon ctl health`: `km3mon
/// check` refuses it and says which input to add.
#[test]
fn check_refuses_a_router_without_the_table() {
    let dir = common::scratch("detector-state", "no-edge");
    let graph = dir.join("g.toml");
    let wired = "inputs = [\"dom_activity\", \"timesync\", \"detector_state\"]";
    assert!(GRAPH.contains(wired));
    let text = GRAPH.replace(wired, "inputs = [\"dom_activity\", \"timesync\"]");
    std::fs::write(&graph, &text).unwrap();
    let out = Command::new(common::km3mon())
        .arg("check")
        .arg(&graph)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    let line = text.lines().position(|l| l == "[nodes.notify]").unwrap() + 3;
    assert!(
        err.contains(&format!(
            "{}:{line}:10: nodes.notify.inputs: `detector_state` (detector_state) produces the \
             detector-state table (`health`) that `notify` (alerts_notify) takes its DU placement \
             and counts from: add `detector_state` to its inputs",
            graph.display()
        )),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run change with another detector: detector 44 (the DB stand-in
/// `testdb`, written from the spec: no real DB runs here) has run 6761
/// calibrated with a position set whose DETX numbers DU 2 as DU 12 (the
/// DU re-cabled). DU 2 is out of time sync from 10 s of run 6760 on and
/// stays so in run 6761. At the data time of run 6761's first
/// summaryslice the table re-keys: DU 2's 18 DOMs count under DU 12, DU 2
/// reads 0, the detector-wide count does not move; `-w 1` = `-w 2`.
#[test]
fn a_run_with_another_layout_re_keys_the_table() {
    use daq::detector::Detector;
    let dir = common::scratch("detector-state", "rekey");
    let a = common::testdata().join("detx/detx_v4.detx");
    let text = std::fs::read_to_string(&a).unwrap();
    let det = Detector::parse(&text, "detx_v4.detx").unwrap();
    let moved = det
        .modules()
        .iter()
        .cloned()
        .map(|mut m| {
            if m.du == 2 {
                m.du = 12;
            }
            m
        })
        .collect();
    let b = dir.join("b.detx");
    let renumbered = Detector::new(det.det_id(), det.version(), moved)
        .unwrap()
        .with_validity(det.validity())
        .with_utm(det.utm().cloned());
    std::fs::write(&b, renumbered.to_detx_string(det.version()).unwrap()).unwrap();

    let simulate = |detx: &Path, run: &str, start: &str, fault: &str, out: &str| {
        let o = Command::new(common::km3mon())
            .arg("simulate")
            .arg("--detector")
            .arg(detx)
            .args(["--run", run, "--start", start, "--duration", "30s"])
            .args(["--fault", fault, "-o"])
            .arg(dir.join(out))
            .env("KM3MON_LOG", "warn")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        dir.join(out)
    };
    let run_a = simulate(
        &a,
        "6760",
        "2024-01-01T00:00:00Z",
        "du-timesync@10s:2",
        "a.rec",
    );
    let run_b = simulate(
        &b,
        "6761",
        "2024-01-01T00:00:30Z",
        "du-timesync@0s:12",
        "b.rec",
    );

    let mut opts = testdb::Options::from_env().unwrap();
    for r in opts.detectors[0].runs.iter_mut().filter(|r| r.run >= 6761) {
        r.pos = Some("POS_B".into());
    }
    opts.pcal_detx.insert("POS_B".into(), b.clone());
    let db = testdb::TestDb::start(opts).unwrap();
    let graph = dir.join("g.toml");
    let with_runs = GRAPH.replace(
        "type = \"detector_state\"\ninputs = [\"dom_activity\", \"timesync\"]",
        "type = \"detector_state\"\ninputs = [\"dom_activity\", \"timesync\", \"summaryslices\"]",
    );
    assert_ne!(with_runs, GRAPH);
    std::fs::write(&graph, with_runs).unwrap();
    let replay = |workers: &str| {
        let out = dir.join(format!("out-w{workers}"));
        let o = Command::new(common::km3mon())
            .current_dir(&dir)
            .env("HOME", &dir)
            .env("KM3MON_LOG", "info")
            .env("DETECTOR_ID", "44")
            .env("KM3NET_DB_URL", db.url())
            .env("KM3NET_DB_COOKIE", db.sid())
            .env_remove("KM3NET_DB_COOKIE_FILE")
            .env_remove("KM3NET_DB_USERNAME")
            .env_remove("KM3NET_DB_PASSWORD")
            .args(["replay", "-w", workers, "--graph"])
            .arg(&graph)
            .arg("--out")
            .arg(&out)
            .arg(&run_a)
            .arg(&run_b)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{log}");
        assert!(
            log.contains("detector_state: run 6761 of detector 44: 90 DOMs, re-keying the table"),
            "{log}"
        );
        // The run summary: the DB requests' latency (layout, runs, DETX).
        assert!(
            log.contains("latency km3mon_db_request_duration_seconds{outcome=ok}: p50 "),
            "{log}"
        );
        std::fs::read_to_string(out.join("data/detector_state.csv")).unwrap()
    };
    let csv = replay("2");
    assert_eq!(replay("1"), csv, "-w 1 and -w 2 differ");
    let rows: Vec<&str> = csv.lines().collect();
    // Run 6760: DU 2 out of sync from 10 s; run 6761 starts at 30 s.
    assert!(rows.contains(&"1704067210,2,time_sync,18"), "{csv}");
    assert!(rows.contains(&"1704067210,all,time_sync,18"), "{csv}");
    let mut at_switch: Vec<&str> = rows
        .iter()
        .copied()
        .filter(|r| r.starts_with("1704067230,"))
        .collect();
    at_switch.sort_unstable();
    assert_eq!(
        at_switch,
        ["1704067230,12,time_sync,18", "1704067230,2,time_sync,0"],
        "{csv}"
    );
    // Nothing counts under DU 2 afterwards.
    let last_du2 = rows.iter().rev().find(|r| r.contains(",2,time_sync,"));
    assert_eq!(last_du2, Some(&"1704067230,2,time_sync,0"), "{csv}");
    let _ = std::fs::remove_dir_all(&dir);
}
