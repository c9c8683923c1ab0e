//! The compliance suite: every registered operator type
//! (`operators::registry().types()`, so a new type is covered without
//! anyone adding it here)
//!
//! * has an example node table (`NodeConfig::EXAMPLE`) that validation
//!   accepts in a graph of standard upstream nodes, and a row in
//!   docs/graph-language.md's node table;
//! * gives byte-identical output trees (PNGs included) replayed with
//!   `-w 1`, with `-w 2 --speed 200 --batch-seed S` (other worker count,
//!   random batch splits and coarse random frontier steps, `S` random per
//!   run and printed on failure) and with `-w 1 --batch-seed 0` (every
//!   record in random batches, then one frontier jump from before the
//!   first time to the end of input: every timer in between fires at
//!   once). The batching is the replay source's (`pipeline::runtime::
//!   chaos`), so every node downstream of it sees it, whatever its type.
//!
//! * gives the same files after a restart: a recording replayed as two
//!   runs sharing `--out` and `--state-dir`, the first stopped at a
//!   random second (`--stop-at`), the second continuing there
//!   (`--start-at`), equals one replay of the whole (`EXCLUDED_RESTART`
//!   is empty: a type may only be listed there with a reason about the
//!   type itself).
//!
//! Two cluster processes are compared on the full graph in
//! tests/replay_determinism.rs. Every type also exports the standard
//! per-node series of the metrics registry (docs/web.md).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pipeline::item::StreamKind;
use pipeline::site::SiteConfig;
use pipeline::Graph;

/// Upstream nodes the examples name in `inputs`.
const PRELUDE: &str = r#"
[nodes.daq]
type = "ligier"
host = "127.0.0.1"
tags = ["IO_EVT", "IO_SUM", "IO_TSSN", "IO_MONIT", "MSG"]

[nodes.summaryslices]
type = "decode"
inputs = ["daq"]
kind = "summaryslices"

[nodes.events]
type = "decode"
inputs = ["daq"]
kind = "events"

[nodes.timeslices]
type = "decode"
inputs = ["daq"]
kind = "timeslices"
tags = ["IO_TSSN"]

[nodes.monitoring]
type = "decode"
inputs = ["daq"]
kind = "tmch"

[nodes.tag_rates]
type = "tag_rates"
inputs = ["daq"]

[nodes.dom_rates_example]
type = "dom_rates"
inputs = ["summaryslices"]
name = "prelude_dom_rates"

[nodes.dom_activity_example]
type = "dom_activity"
inputs = ["summaryslices"]
name = "prelude_dom_activity"
inactive_after = 10

[nodes.royfit_example]
type = "royfit"
inputs = ["events"]
jsonl = "data/prelude_royfit.jsonl"
dir = "prelude_reco"
"#;

/// The prelude, the node under test, and a sink for each file-producing
/// kind it emits.
fn graph_of(name: &str, example: &str) -> String {
    let ty = operators::registry();
    let t = ty.get(name).unwrap();
    let mut g = format!("{PRELUDE}\n[nodes.under_test]\ntype = \"{name}\"\n{example}\n");
    let node = t
        .parse(toml::from_str::<toml::Value>(example).map_or_else(
            |_| toml::Value::Table(Default::default()),
            |v| {
                let mut v = v;
                v.as_table_mut().map(|t| t.remove("inputs"));
                v
            },
        ))
        .ok();
    let outputs = node.map(|n| n.outputs()).unwrap_or_default();
    for k in outputs {
        g += &match k {
            StreamKind::Table => "\n[nodes.c_csv]\ntype = \"csv\"\ninputs = [\"under_test\"]\npath = \"data/compliance.csv\"\n".to_string(),
            StreamKind::Plots => "\n[nodes.c_plots]\ntype = \"plots\"\ninputs = [\"under_test\"]\ndir = \"compliance_plots\"\nmin_interval = 0\n".to_string(),
            StreamKind::Alerts => "\n[nodes.c_alerts]\ntype = \"alerts_jsonl\"\ninputs = [\"under_test\"]\npath = \"data/compliance_alerts.jsonl\"\n".to_string(),
            StreamKind::Messages => "\n[nodes.c_rates]\ntype = \"tag_rates\"\ninputs = [\"under_test\"]\n\n[nodes.c_rates_csv]\ntype = \"csv\"\ninputs = [\"c_rates\"]\npath = \"data/compliance_rates.csv\"\n".to_string(),
            _ => String::new(),
        };
    }
    g
}

fn site() -> SiteConfig {
    SiteConfig::parse("site.toml", String::new(), ".".into()).unwrap()
}

#[test]
fn every_type_has_a_checked_example_and_a_row_in_the_docs() {
    let docs = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/graph-language.md"),
    )
    .unwrap();
    let rows: Vec<&str> = docs.lines().filter(|l| l.starts_with("| `")).collect();
    let registry = operators::registry();
    let mut missing = Vec::new();
    for t in registry.types() {
        let cell = format!("`{}`", t.name);
        if !rows
            .iter()
            .any(|r| r.split(" | ").next().is_some_and(|c| c.contains(&cell)))
        {
            missing.push(format!("{}: no row in docs/graph-language.md", t.name));
        }
        if t.example.is_empty() {
            missing.push(format!("{}: no NodeConfig::EXAMPLE", t.name));
            continue;
        }
        if let Err(d) = Graph::parse(
            "example.toml",
            &graph_of(t.name, t.example),
            &site(),
            &registry,
        ) {
            missing.push(format!("{}: example refused:\n{d}", t.name));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn every_type_gives_the_same_outputs_for_any_worker_count_and_speed() {
    let dir = common::scratch("compliance", "trees");
    let (rec, detx) = (dir.join("rec"), dir.join("d.detx"));
    let sim = Command::new(common::km3mon())
        .args([
            "simulate",
            "--generate-detector",
            "2x6",
            "--write-detector",
            detx.to_str().unwrap(),
            "-o",
            rec.to_str().unwrap(),
            "--duration",
            "40s",
            "--msg-interval",
            "2s",
            "--fault",
            "dom-silent@10s+15s:2/1",
            "--fault",
            "trigger-zero@20s+10s",
        ])
        .env("KM3MON_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    // A different seed on every run of the suite (the message names it,
    // and `--batch-seed` reproduces it by hand).
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        % 1_000_000
        + 1;
    let seed_s = seed.to_string();
    let registry = operators::registry();
    let mut failures = Vec::new();
    for t in registry.types() {
        if t.example.is_empty() {
            continue; // reported by the other test
        }
        let graph = dir.join(format!("{}.toml", t.name));
        std::fs::write(&graph, graph_of(t.name, t.example)).unwrap();
        let mut trees = Vec::new();
        let runs: [(&str, &[&str]); 3] = [
            ("w1", &["-w", "1"]),
            (
                "w2-random-batches",
                &["-w", "2", "--speed", "200", "--batch-seed", &seed_s],
            ),
            ("w1-one-jump", &["-w", "1", "--batch-seed", "0"]),
        ];
        for (run, args) in runs {
            let out = dir.join(format!("{}-{run}", t.name));
            let r = Command::new(common::km3mon())
                .args(["replay", "--graph", graph.to_str().unwrap(), "--detector"])
                .arg(&detx)
                .arg("--out")
                .arg(&out)
                .args(args)
                .arg(&rec)
                .env("KM3MON_LOG", "warn")
                .output()
                .unwrap();
            if !r.status.success() {
                failures.push(format!(
                    "{} {run}: replay failed: {}",
                    t.name,
                    String::from_utf8_lossy(&r.stderr)
                ));
                continue;
            }
            let mut files = tree(&out);
            // Rows hold the absolute PNG path, which names the folder.
            files.remove("data/monitoring.sqlite3");
            trees.push(files);
        }
        if let [a, rest @ ..] = &trees[..] {
            let names = |t: &BTreeMap<String, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
            for (b, (run, _)) in rest.iter().zip(&runs[1..]) {
                if names(a) != names(b) {
                    failures.push(format!(
                        "{}: files {:?} (w1) vs {:?} ({run}, seed {seed})",
                        t.name,
                        names(a),
                        names(b)
                    ));
                    continue;
                }
                for (k, v) in a {
                    if &b[k] != v {
                        failures.push(format!(
                            "{}: {k} differs between w1 and {run} (seed {seed})",
                            t.name
                        ));
                    }
                }
            }
            eprintln!(
                "{}: {} files identical in {} runs",
                t.name,
                a.len(),
                trees.len()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A simulated recording of `secs` seconds starting `from` seconds after
/// the simulator's default start (the two parts of a split run, or the
/// whole).
fn simulate_part(dir: &Path, name: &str, from: u64, secs: u64) -> PathBuf {
    let rec = dir.join(name);
    let start = format!("2024-01-01T00:{:02}:{:02}Z", from / 60, from % 60);
    let r = Command::new(common::km3mon())
        .args(["simulate", "--generate-detector", "2x6", "-o"])
        .arg(&rec)
        .args(["--start", &start, "--duration", &format!("{secs}s")])
        .args(["--msg-interval", "2s", "--seed", &(from + 1).to_string()])
        .args(["--fault", "dom-silent@3s+6s:2/1"])
        .env("KM3MON_LOG", "warn")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    rec
}

/// The `--state-dir` round trip: a recording replayed as two runs
/// sharing `--out` and `--state-dir`, the first stopped at a random
/// second (`--stop-at`: a stop, not an end of input, so open windows,
/// accumulators and pending timers are saved, not flushed) and the
/// second continuing there (`--start-at`), gives the files of one replay
/// of the whole. The files of the prelude's nodes are left out (they are
/// types of their own here). Every registered type is run: a type may
/// only be listed in [`EXCLUDED_RESTART`] for a reason that is about the
/// type itself.
#[test]
fn every_type_gives_the_same_outputs_after_a_restart_with_its_state_dir() {
    let dir = common::scratch("compliance", "restart");
    // Random per run; `KM3MON_RESTART_CUT=S` repeats a failing cut.
    let cut = std::env::var("KM3MON_RESTART_CUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            4 + std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
                % 12
        });
    let whole = simulate_part(&dir, "whole.rec", 0, 20);
    let at = format!("2024-01-01T00:00:{cut:02}Z");
    let detx = dir.join("d.detx");
    let r = Command::new(common::km3mon())
        .args(["simulate", "--generate-detector", "2x6", "--write-detector"])
        .arg(&detx)
        .arg("-o")
        .arg(dir.join("unused.rec"))
        .args(["--duration", "1s"])
        .output()
        .unwrap();
    assert!(r.status.success());
    let replay = |graph: &Path, out: &Path, state: &Path, clip: &[&str]| {
        let r = Command::new(common::km3mon())
            .args(["replay", "--graph", graph.to_str().unwrap(), "--detector"])
            .arg(&detx)
            .arg("--out")
            .arg(out)
            .arg("--state-dir")
            .arg(state)
            .args(clip)
            .arg(&whole)
            .env("KM3MON_LOG", "error")
            .output()
            .unwrap();
        (
            r.status.success(),
            String::from_utf8_lossy(&r.stderr).to_string(),
        )
    };
    let registry = operators::registry();
    let mut failures = Vec::new();
    let mut passed = Vec::new();
    for t in registry.types() {
        if t.example.is_empty() || EXCLUDED_RESTART.iter().any(|e| e.0 == t.name) {
            continue;
        }
        let graph = dir.join(format!("{}.toml", t.name));
        std::fs::write(&graph, graph_of(t.name, t.example)).unwrap();
        let (one, split) = (
            dir.join(format!("{}-one", t.name)),
            dir.join(format!("{}-split", t.name)),
        );
        let mut ok = true;
        let split_state = dir.join(format!("{}-split-state", t.name));
        for (out, state, clip) in [
            (&one, dir.join(format!("{}-one-state", t.name)), &[][..]),
            (&split, split_state.clone(), &["--stop-at", at.as_str()][..]),
            (
                &split,
                split_state.clone(),
                &["--start-at", at.as_str()][..],
            ),
        ] {
            let (success, err) = replay(&graph, out, &state, clip);
            if !success {
                failures.push(format!("{}: replay {clip:?} failed: {err}", t.name));
                ok = false;
            }
        }
        if !ok {
            continue;
        }
        // The node under test and its sinks; not the prelude's outputs
        // (they are tested as types of their own).
        let mine = |out: &Path| {
            let mut files = tree(out);
            files.retain(|k, _| !k.contains("prelude") && k != "data/monitoring.sqlite3");
            files
        };
        let (x, y) = (mine(&one), mine(&split));
        let differ: Vec<&String> = x
            .keys()
            .chain(y.keys())
            .filter(|k| x.get(*k) != y.get(*k))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if differ.is_empty() {
            passed.push(t.name);
        } else {
            failures.push(format!(
                "{}: stopped at {cut} s and restarted, {differ:?} differ from one run",
                t.name
            ));
        }
    }
    eprintln!("restart at {cut} s: identical for {passed:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Types whose outputs after a restart may differ from one run, and why
/// (a reason about the type itself, never "not implemented yet").
const EXCLUDED_RESTART: &[(&str, &str)] = &[];

/// The per-node series every node of every registered type exports on
/// `/metrics` (docs/web.md), whatever the operator does.
const NODE_SERIES: [&str; 7] = [
    "km3mon_node_records_in_total",
    "km3mon_node_records_out_total",
    "km3mon_node_dropped_records_total",
    "km3mon_node_busy_seconds_total",
    "km3mon_node_state",
    "km3mon_node_restarts_total",
    "km3mon_node_event_time_lag_seconds",
];

/// Every registered type, replayed in this process through its example
/// graph, exports the standard per-node series for its node (counted
/// records match what its inputs emitted, one `km3mon_node_state` of 1,
/// a row for every drop reason), through the run's one registry.
#[test]
fn every_type_exports_the_standard_per_node_metrics() {
    use pipeline::runtime::metrics::{DropReason, Metrics};
    use pipeline::runtime::{self, Mode, RunOptions};
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    let dir = common::scratch("compliance", "metrics");
    let (rec, detx) = (dir.join("rec"), dir.join("d.detx"));
    let sim = Command::new(common::km3mon())
        .args(["simulate", "--generate-detector", "2x3", "--write-detector"])
        .arg(&detx)
        .arg("-o")
        .arg(&rec)
        .args(["--duration", "15s", "--msg-interval", "2s"])
        .env("KM3MON_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let registry = operators::registry();
    let mut failures = Vec::new();
    for t in registry.types() {
        if t.example.is_empty() {
            continue; // reported by the first test
        }
        let graph = match Graph::parse(
            "example.toml",
            &graph_of(t.name, t.example),
            &site(),
            &registry,
        ) {
            Ok(g) => g,
            Err(_) => continue, // reported by the first test
        };
        let out = dir.join(format!("{}-out", t.name));
        let metrics = Arc::new(Metrics::default());
        let mut opts = RunOptions::new(
            Mode::Replay {
                files: vec![rec.clone()],
                speed: None,
            },
            out.clone(),
        );
        opts.detector = Some(detx.clone());
        opts.progress = false;
        opts.handle_signals = false;
        opts.metrics = Some(metrics.clone());
        if let Err(e) = runtime::run(&graph, opts) {
            failures.push(format!("{}: replay failed: {e:#}", t.name));
            continue;
        }
        let text = metrics.prometheus();
        let label = "node=\"under_test\"";
        for series in NODE_SERIES {
            // The lag is a gauge of the output frontier, which a finished
            // replay has left behind: it may be absent at the end.
            if series.ends_with("lag_seconds") {
                assert!(text.contains(&format!("# TYPE {series} gauge")), "{series}");
                continue;
            }
            let found = text
                .lines()
                .any(|l| l.starts_with(&format!("{series}{{")) && l.contains(label));
            if !found {
                failures.push(format!("{}: no {series} sample for its node", t.name));
            }
        }
        let running = format!("km3mon_node_state{{{label},group=");
        if !text.lines().any(|l| {
            l.starts_with(&running) && l.contains("state=\"running\"") && l.ends_with(" 1")
        }) {
            failures.push(format!("{}: km3mon_node_state is not running=1", t.name));
        }
        for r in DropReason::ALL {
            let row = format!("reason=\"{}\",detail=\"\"", r.name());
            if !text.lines().any(|l| l.contains(label) && l.contains(&row)) {
                failures.push(format!("{}: no drop row for {}", t.name, r.name()));
            }
        }
        // What the node counted in is what its inputs counted out — all
        // of it when every kind they emit is one the node accepts (a
        // node's input takes only the kinds it accepts, and only the
        // message tags it reads if it names them).
        let nodes: std::collections::HashMap<String, _> = metrics.snapshot().into_iter().collect();
        let spec = graph.node("under_test").unwrap();
        let accepts = spec.node.accepts();
        let mut upstream = 0;
        let mut all_accepted = spec.node.message_tags().is_none();
        for i in &spec.inputs {
            upstream += nodes[i].records_out.load(Relaxed);
            let up = graph.node(i).unwrap();
            all_accepted &= up.node.outputs().iter().all(|k| accepts.contains(k));
        }
        let got = nodes["under_test"].records_in.load(Relaxed);
        if got > upstream || (all_accepted && got != upstream) {
            failures.push(format!(
                "{}: records_in {got}, its inputs emitted {upstream}",
                t.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}
