//! ztplot end to end: the sample events replayed through
//! `graphs/km3mon.toml` give `ztplot.png`, the event-selection PNG and raw
//! frame and one SQLite row; a second replay into the same output adds no
//! rows; a corrupt event is counted and skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{km3mon, testdata};
use operators::monitors::ztplot::selection::SelectionDb;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("km3mon-zt-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn replay(out: &Path, file: &Path) -> Output {
    replay_with(out, file, &[])
}

fn replay_with(out: &Path, file: &Path, extra: &[&str]) -> Output {
    let out = Command::new(km3mon())
        .env("KM3MON_LOG", "info")
        .args(["replay", "--graph"])
        .arg(root().join("graphs/km3mon.toml"))
        .arg("--detector")
        .arg(testdata().join("detx/detx_v4.detx"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .arg(file)
        .output()
        .expect("run km3mon");
    assert!(
        out.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const STEM: &str = "ztplot_00000044_00006760_FI88733_TC2816";

#[test]
fn replay_fills_the_event_selection_once() {
    let out = tmp("twice");
    let evt = testdata().join("daq/IO_EVT.dat");
    let wire = std::fs::read(&evt).unwrap();
    for _ in 0..2 {
        replay(&out, &evt);
        assert!(out.join("plots/ztplot.png").is_file());
        let sel = out.join("plots/event_selection");
        let png = sel.join(format!("{STEM}.png"));
        assert!(png.is_file());
        // The first frame of the dump, byte for byte (5724 bytes).
        let dat = std::fs::read(sel.join(format!("{STEM}.dat"))).unwrap();
        assert_eq!(dat, &wire[..5724]);
        // Site defaults (3 DUs, 24 DOMs with triggered hits): only the
        // first of the three sample events passes; one row, never two.
        let db =
            SelectionDb::open(&out.join("data/monitoring.sqlite3"), "event_selection").unwrap();
        let keys = db.keys().unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        let (det, run, fi, tc, file) = &keys[0];
        assert_eq!((*det, *run, *fi, *tc), (44, 6760, 88733, 2816));
        assert_eq!(Path::new(file), std::path::absolute(&png).unwrap());
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_corrupt_event_is_counted_and_skipped() {
    let out = tmp("corrupt");
    let wire = std::fs::read(testdata().join("daq/IO_EVT.dat")).unwrap();
    // The third frame (516 bytes) cut by one snapshot hit, its length
    // field adjusted: the frame is well delimited but its hit count lies.
    let mut bad = wire[7674..].to_vec();
    bad.truncate(bad.len() - 10);
    let len = bad.len() as u32;
    bad[..4].copy_from_slice(&len.to_le_bytes());
    let mut data = bad;
    data.extend_from_slice(&wire);
    let file = out.join("IO_EVT.dat");
    std::fs::write(&file, &data).unwrap();
    // Corrupt input fails a replay (exit status) unless it is allowed.
    let o = replay_with(&out.join("out"), &file, &["--allow-corrupt"]);
    let log = String::from_utf8_lossy(&o.stderr);
    let line = log
        .lines()
        .find(|l| l.contains(" events: in "))
        .unwrap_or_else(|| panic!("no events summary in {log}"));
    assert!(line.contains("corrupt"), "{line}");
    // The good events still made it.
    let db =
        SelectionDb::open(&out.join("out/data/monitoring.sqlite3"), "event_selection").unwrap();
    assert_eq!(db.keys().unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(out);
}
