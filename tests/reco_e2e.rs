//! The live reconstruction end to end: a simulator recording replayed
//! through `graphs/km3mon.toml` gives `data/reco_timeres.csv`,
//! `data/royfit.jsonl`, `plots/ztplot_roy.png|json` and
//! `plots/time_residuals.png|json`, byte-identical for `-w 1` and `-w 2`;
//! replayed with a second DETX whose t0s are shifted by +20 ns, the
//! residuals move where a single-DU fit can see it (one DOM against its
//! DU: that floor's median moves by most of the 20 ns and
//! `time_residuals:<du>` fires) and stay where it cannot (a whole DU: its
//! fitted t₀ absorbs the shift).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::km3mon;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("km3mon-reco-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(km3mon())
        .env("KM3MON_LOG", "info")
        .args(args)
        .output()
        .expect("run km3mon");
    assert!(
        out.status.success(),
        "km3mon {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// 4 DUs × 18 floors, 60 s of data at 100 Hz of events.
fn simulate(dir: &Path) -> (PathBuf, PathBuf) {
    let (rec, detx) = (dir.join("sim.rec"), dir.join("det.detx"));
    run(&[
        "simulate",
        "--generate-detector",
        "4x18",
        "--det-id",
        "77",
        "--duration",
        "60s",
        "--trigger-rate",
        "100",
        "--seed",
        "5",
        "--write-detector",
        detx.to_str().unwrap(),
        "--truth",
        dir.join("truth.jsonl").to_str().unwrap(),
        "-o",
        rec.to_str().unwrap(),
    ]);
    (rec, detx)
}

/// The built-in site config, with the residuals judged every 20 s.
fn site(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("pipeline.toml.example")).unwrap();
    let text = text.replace(
        "[TimeResiduals]\nwindow = 7200\nplot_interval = 60",
        "[TimeResiduals]\nwindow = 7200\nplot_interval = 20",
    );
    assert!(text.contains("plot_interval = 20"));
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn replay(out: &Path, rec: &Path, detx: &Path, config: &Path, workers: &str) {
    run(&[
        "replay",
        "--graph",
        root().join("graphs/km3mon.toml").to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--detector",
        detx.to_str().unwrap(),
        "-w",
        workers,
        "--out",
        out.to_str().unwrap(),
        rec.to_str().unwrap(),
    ]);
}

/// A copy of `detx` with `shift` ns added to the PMT t0s of the DOMs
/// `pick(du, floor)` selects (DETX v5 text: module lines have 13 fields,
/// PMT lines 9 with t0 the 8th).
fn shifted(detx: &Path, to: &Path, shift: f64, pick: impl Fn(u32, i32) -> bool) {
    let text = std::fs::read_to_string(detx).unwrap();
    let mut cur = None;
    let mut n = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 13 && !l.starts_with(' ') {
                cur = Some((f[1].parse::<u32>().unwrap(), f[2].parse::<i32>().unwrap()));
            } else if f.len() == 9 && l.starts_with(' ') && cur.is_some_and(|(d, fl)| pick(d, fl)) {
                let mut g: Vec<String> = f.iter().map(|s| s.to_string()).collect();
                g[7] = format!("{}", g[7].parse::<f64>().unwrap() + shift);
                n += 1;
                return format!(" {}", g.join(" "));
            }
            l.to_string()
        })
        .collect();
    assert!(n > 0, "no PMT shifted");
    std::fs::write(to, lines.join("\n") + "\n").unwrap();
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// (DU median, floor → median) from time_residuals.json.
fn medians(out: &Path, du: u64) -> (f64, Vec<(i64, f64)>) {
    let j = json(&out.join("plots/time_residuals.json"));
    let d = j["dus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["du"] == du)
        .unwrap_or_else(|| panic!("no DU {du} in {j}"));
    let floors = d["floors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["floor"].as_i64().unwrap(), f["median"].as_f64().unwrap()))
        .collect();
    (d["median"].as_f64().unwrap(), floors)
}

fn floor_median(m: &(f64, Vec<(i64, f64)>), floor: i64) -> f64 {
    m.1.iter().find(|f| f.0 == floor).unwrap().1
}

#[test]
fn replay_fills_the_reco_outputs_the_same_for_any_worker_count_and_sees_a_t0_jump() {
    let dir = tmp("main");
    let (rec, detx) = simulate(&dir);
    let config = site(&dir);
    let (w1, w2) = (dir.join("w1"), dir.join("w2"));
    replay(&w1, &rec, &detx, &config, "1");
    replay(&w2, &rec, &detx, &config, "2");
    let csv = std::fs::read_to_string(w1.join("data/reco_timeres.csv")).unwrap();
    assert!(
        csv.starts_with("run,timestamp,du,floor,dom_id,t_res,Q\n"),
        "{}",
        &csv[..80]
    );
    let rows = csv.lines().count() - 1;
    let lines = std::fs::read_to_string(w1.join("data/royfit.jsonl")).unwrap();
    let fits: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(fits.len() > 300, "{} fits", fits.len());
    // One residual row per selected hit of every fitted DU.
    let hits: u64 = fits.iter().map(|f| f["n_hits"].as_u64().unwrap()).sum();
    assert_eq!(rows as u64, hits);
    for key in [
        "det_id",
        "run",
        "frame_index",
        "trigger_counter",
        "du",
        "d",
        "z_c",
        "t0",
        "u_z",
        "phi",
        "Q",
        "n_hits",
        "converged",
    ] {
        assert!(fits[0].get(key).is_some(), "{key} missing in {}", fits[0]);
    }
    assert!(fits.iter().filter(|f| f["converged"] == true).count() * 10 >= fits.len() * 9);
    for f in ["plots/ztplot_roy.png", "plots/time_residuals.png"] {
        let b = std::fs::read(w1.join(f)).unwrap();
        assert!(b.starts_with(b"\x89PNG"), "{f}");
    }
    for f in [
        "data/reco_timeres.csv",
        "data/royfit.jsonl",
        "plots/ztplot_roy.json",
        "plots/time_residuals.json",
    ] {
        assert!(
            std::fs::read(w1.join(f)).unwrap() == std::fs::read(w2.join(f)).unwrap(),
            "{f} differs between -w 1 and -w 2"
        );
    }
    // The simulator's truth (--truth), keyed by frame index and trigger
    // counter: the fitted u_z of the muon events follows it.
    let truth: std::collections::HashMap<(i64, i64), f64> =
        std::fs::read_to_string(dir.join("truth.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let k = (
                    v["frame_index"].as_i64().unwrap(),
                    v["trigger_counter"].as_i64().unwrap(),
                );
                (k, v["dz"].as_f64().unwrap())
            })
            .collect();
    let mut duz: Vec<f64> = fits
        .iter()
        .filter(|f| f["n_hits"].as_u64().unwrap() >= 6)
        .filter_map(|f| {
            let k = (f["frame_index"].as_i64()?, f["trigger_counter"].as_i64()?);
            Some((f["u_z"].as_f64()? - truth.get(&k)?).abs())
        })
        .collect();
    assert!(duz.len() > 100, "{} fits of muons with truth", duz.len());
    duz.sort_by(f64::total_cmp);
    assert!(
        duz[duz.len() / 2] < 0.05,
        "median |Δu_z| {}",
        duz[duz.len() / 2]
    );

    let base = medians(&w1, 2);
    assert!(base.0.abs() < 2.0, "{base:?}");
    assert!(!std::fs::read_to_string(w1.join("data/alerts.jsonl"))
        .unwrap_or_default()
        .contains("time_residuals:"));

    // DU 2: floor 9 (one DOM) +20 ns; DU 3: every DOM +20 ns.
    let shift = dir.join("shift.detx");
    shifted(&detx, &shift, 20.0, |du, floor| {
        (du == 2 && floor == 9) || du == 3
    });
    let s = dir.join("shift");
    replay(&s, &rec, &shift, &config, "2");
    let moved = medians(&s, 2);
    let jump = floor_median(&moved, 9) - floor_median(&base, 9);
    // The fit follows the jumped DOM in part (its leverage): most of the
    // 20 ns stays in that floor's residuals.
    assert!(
        jump > 8.0 && jump <= 20.5,
        "floor 9 median moved by {jump} ns"
    );
    let alerts = std::fs::read_to_string(s.join("data/alerts.jsonl")).unwrap();
    assert!(
        alerts
            .lines()
            .any(|l| l.contains("\"key\":\"time_residuals:2\"")
                && l.contains("\"state\":\"firing\"")),
        "{alerts}"
    );
    // A whole DU shifted: absorbed by its fitted t₀, nothing moves.
    let (before, after) = (medians(&w1, 3), medians(&s, 3));
    assert!((after.0 - before.0).abs() < 0.5, "{before:?} {after:?}");
    assert!(!alerts.contains("time_residuals:3"), "{alerts}");
    let t0 = |out: &Path| -> f64 {
        let l = std::fs::read_to_string(out.join("data/royfit.jsonl")).unwrap();
        let v: Vec<f64> = l
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|f| f["du"] == 3)
            .map(|f| f["t0"].as_f64().unwrap())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let dt0 = t0(&s) - t0(&w1);
    assert!((dt0 - 20.0).abs() < 0.5, "DU 3 fitted t0 moved by {dt0} ns");
    let _ = std::fs::remove_dir_all(dir);
}
