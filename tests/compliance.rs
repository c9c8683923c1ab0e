//! The compliance suite: every registered operator type
//! (`operators::registry().types()`, so a new type is covered without
//! anyone adding it here)
//!
//! * has an example node table (`NodeConfig::EXAMPLE`) that validation
//!   accepts in a graph of standard upstream nodes, and a row in
//!   docs/graph-language.md's node table;
//! * gives byte-identical output trees (PNGs included) replayed with
//!   `-w 1`, with `-w 2 --speed 50 --batch-seed S` (other worker count,
//!   random batch splits and coarse random frontier steps, `S` random per
//!   run and printed on failure) and with `-w 1 --batch-seed 0` (every
//!   record in random batches, then one frontier jump from before the
//!   first time to the end of input: every timer in between fires at
//!   once). The batching is the replay source's (`pipeline::runtime::
//!   chaos`), so every node downstream of it sees it, whatever its type.
//!
//! Two cluster processes are compared on the full graph in
//! tests/replay_determinism.rs. The per-node metrics check comes with
//! the new metrics registry (issue 20).

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
                &["-w", "2", "--speed", "50", "--batch-seed", &seed_s],
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
