//! Every online sample of km3net-testdata, replayed through the health
//! graph (`graphs/km3mon.toml`) from the ROOT file, gives exactly the
//! outputs of a replay of the same records from a ControlHost recording
//! (the form of a live run recorded by `km3mon record`): same plots' data,
//! CSVs, alerts and plot images. The detector is written for each sample
//! from the DOMs it contains (the test data ship no DETX for most of the
//! samples' detectors), so that every DOM is known and the monitors have
//! something to show.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{km3mon, online_samples, scratch, testdata};
use daq::controlhost::encode_message;
use daq::frame::{decode_frame, DaqFrame};
use rootio::{Order, RunReader};

/// A DETX (v3) with one DOM of 31 PMTs per id, 18 floors per DU.
fn detx_for(det_id: i32, doms: &BTreeSet<u32>) -> String {
    let mut out = format!(
        "{det_id} v3\n0 9999999999.0\nUTM WGS84 32N 256500.0 4743000.0 -2425.0\n{}\n",
        doms.len()
    );
    for (k, dom) in doms.iter().enumerate() {
        let (du, floor) = (k / 18 + 1, k % 18 + 1);
        writeln!(out, "{dom} {du} {floor} 31").unwrap();
        for pmt in 0..31 {
            let pmt_id = 1_000_000 + 31 * k + pmt;
            let z = 10.0 * floor as f64;
            writeln!(
                out,
                " {pmt_id} {:.1} {:.1} {z:.1} 0.0 0.0 1.0 {:.1} 0",
                du as f64 * 20.0,
                pmt as f64 * 0.1,
                pmt as f64
            )
            .unwrap();
        }
    }
    out
}

/// The run's records as a ControlHost recording, and a detector with all
/// its DOMs.
fn recording_and_detector(root: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    let mut recording = Vec::new();
    let mut doms = BTreeSet::new();
    let mut det_id = 0;
    for record in RunReader::open(root, Order::Time).expect("open the sample") {
        let record = record.expect("read the sample");
        let tag = record.tag.expect("every ROOT record is tagged");
        recording.extend(encode_message(tag, &record.payload));
        let frame = decode_frame(&record.payload).expect("wire bytes decode");
        det_id = frame.header().det_id;
        match frame {
            DaqFrame::Summaryslice(s) => doms.extend(s.frames.iter().map(|f| f.dom_id)),
            DaqFrame::Timeslice(t) => doms.extend(t.frames.iter().map(|f| f.dom_id)),
            DaqFrame::Event(e) => {
                doms.extend(e.triggered_hits.iter().map(|h| h.dom_id));
                doms.extend(e.snapshot_hits.iter().map(|h| h.dom_id));
            }
        }
    }
    let (rec, detx) = (dir.join("run.dat"), dir.join("run.detx"));
    std::fs::write(&rec, recording).unwrap();
    std::fs::write(&detx, detx_for(det_id, &doms)).unwrap();
    (rec, detx)
}

fn replay(input: &Path, detx: &Path, out: &Path) {
    let graph = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../graphs/km3mon.toml");
    let run = Command::new(km3mon())
        .args(["replay", "--no-web", "--graph"])
        .arg(&graph)
        .arg("--detector")
        .arg(detx)
        .arg("--out")
        .arg(out)
        .arg(input)
        .output()
        .expect("run km3mon replay");
    assert!(
        run.status.success(),
        "replay of {} failed: {}",
        input.display(),
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Every file under `dir`, by path relative to it.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn every_online_sample_agrees_with_its_recording() {
    let mut samples: Vec<PathBuf> = std::fs::read_dir(online_samples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "root"))
        .collect();
    samples.push(testdata().join("root/km3net_online.root"));
    samples.sort();
    assert!(samples.len() >= 9, "{samples:?}");
    for (i, sample) in samples.iter().enumerate() {
        let name = sample.file_name().unwrap().to_string_lossy().to_string();
        let dir = scratch("root-replay", &format!("{i}"));
        let (recording, detx) = recording_and_detector(sample, &dir);
        // Both replays write to the same folder (outputs record their own
        // paths), moved aside after each.
        let (out, from_root, from_rec) = (dir.join("out"), dir.join("root"), dir.join("recording"));
        replay(sample, &detx, &out);
        std::fs::rename(&out, &from_root).unwrap();
        replay(&recording, &detx, &out);
        std::fs::rename(&out, &from_rec).unwrap();
        let (a, b) = (files(&from_root), files(&from_rec));
        assert_eq!(a, b, "{name}: the same outputs");
        let mut compared = 0;
        for f in &a {
            let (x, y) = (
                std::fs::read(from_root.join(f)).unwrap(),
                std::fs::read(from_rec.join(f)).unwrap(),
            );
            // One writer per file: every file, alerts.jsonl included, is
            // the same bytes.
            assert!(x == y, "{name}: {} differs", f.display());
            compared += 1;
        }
        // Something was monitored: every sample's messages are counted per
        // tag, and the DOM-rate plot data is there wherever summaryslices are.
        let tag_rates = std::fs::read_to_string(from_root.join("data/tag_rates.csv")).unwrap();
        assert!(tag_rates.lines().count() > 1, "{name}: {tag_rates}");
        if name.contains("summaryslice") || name.contains("online") {
            let rates = std::fs::read_to_string(from_root.join("plots/dom_rates.json")).unwrap();
            assert!(rates.len() > 200, "{name}: {rates}");
        }
        eprintln!("{name}: {compared} output files identical");
        std::fs::remove_dir_all(&dir).ok();
    }
}
