//! A stop with a state directory in the middle of firing alerts: the
//! full suite (graphs/km3mon.toml) replays a recording with a silent DOM
//! and a DU out of time sync once uninterrupted and once as two runs
//! (`--stop-at` inside the group window of the first FIRING, `-w 1`, then
//! `--start-at` with `-w 2`). Every output file is the same: the alert
//! router remembers what it announced (the RESOLVED messages go out, not
//! "unannounced") and the group window it was collecting, and the
//! detector-state table keeps its active DOMs (its counts fall to 0 when
//! the conditions clear, in the CSV and in the messages' `Now` line).

mod common;

use std::path::Path;

fn replay(dir: &Path, out: &str, extra: &[&str]) {
    let mut args = vec![
        "replay",
        "--graph",
        "graphs/km3mon.toml",
        "--no-web",
        "--out",
    ];
    let out = dir.join(out);
    let (site, detx, rec) = (dir.join("site.toml"), dir.join("d.detx"), dir.join("rec"));
    args.push(out.to_str().unwrap());
    args.extend(["--config", site.to_str().unwrap()]);
    args.extend(["--detector", detx.to_str().unwrap()]);
    args.extend_from_slice(extra);
    args.push(rec.to_str().unwrap());
    common::run_ok(&args);
}

/// The files under `root`, relative, sorted (the SQLite file aside: it
/// holds the output folder's own path).
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if !p.ends_with("monitoring.sqlite3") {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_stop_while_alerts_fire_continues_as_one_run() {
    let dir = common::scratch("restart-alerts", "stop");
    common::simulate(
        &dir,
        "2x18",
        "100s",
        &[
            "--fault",
            "dom-silent@10s+60s:2/3",
            "--fault",
            "du-timesync@30s+30s:1",
        ],
    );
    // The shipped site config, with a DOM inactive after 20 s.
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml.example"),
    )
    .unwrap();
    assert!(example.contains("\ninactive_after = 300\n"));
    let site = example.replace("\ninactive_after = 300\n", "\ninactive_after = 20\n");
    std::fs::write(dir.join("site.toml"), site).unwrap();

    replay(&dir, "whole", &["-w", "1"]);
    let state = dir.join("state");
    let state = state.to_str().unwrap();
    // 00:00:35: the FIRING of 00:00:30 waits for its group window (10 s).
    replay(
        &dir,
        "split",
        &[
            "-w",
            "1",
            "--state-dir",
            state,
            "--stop-at",
            "2024-01-01T00:00:35Z",
        ],
    );
    replay(
        &dir,
        "split",
        &[
            "-w",
            "2",
            "--state-dir",
            state,
            "--start-at",
            "2024-01-01T00:00:35Z",
        ],
    );

    let (whole, split) = (dir.join("whole"), dir.join("split"));
    let names = files(&whole);
    assert_eq!(names, files(&split));
    let routing = std::fs::read_to_string(whole.join("data/alerts_routing.jsonl")).unwrap();
    // What this test is about: messages that fire before the stop and
    // resolve after it, with the table's counts back to 0.
    assert!(
        routing.contains("RESOLVED (warning): DU 2 floor 3: DOM"),
        "{routing}"
    );
    assert!(routing.contains("DU 2: no DOM inactive"), "{routing}");
    assert!(
        routing.contains("DU 1: no DOM without time sync"),
        "{routing}"
    );
    assert!(!routing.contains("unannounced"), "{routing}");
    for n in names {
        let (a, b) = (
            std::fs::read(whole.join(&n)).unwrap(),
            std::fs::read(split.join(&n)).unwrap(),
        );
        let text = |x: &[u8]| {
            if n.ends_with(".png") {
                format!("{} bytes", x.len())
            } else {
                String::from_utf8_lossy(x).into_owned()
            }
        };
        assert!(
            a == b,
            "{n} differs after a stop and restart:\n{}\n---\n{}",
            text(&a),
            text(&b)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
