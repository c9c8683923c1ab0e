use std::io::{Read, Write};
use std::time::Duration;

use pipeline::item::{AlertState, Item};
use simulator::dm::{nominal_rttc, DetectorManager};

use super::client::{DmClient, WrValues, SESSION};
use super::*;
use crate::shell::testing::at;
use crate::shell::{drive, random_steps, run_by_hand};

const T0: u64 = 1_700_000_000_000_000_000;

/// The client against the Detector Manager stand-in (simulator::dm,
/// written from spec integrations.md §2; no real DM can run here): the
/// session of five paths per DU in DETX order, values in definition
/// order; a restarted DM (session forgotten → 404), a DM down (503) and
/// a body that is not JSON are errors, never a crash, and the next poll
/// defines the session again.
#[test]
fn client_against_the_detector_manager_stand_in() {
    let dm = DetectorManager::start("127.0.0.1:0", vec![1, 2, 3], 7).unwrap();
    let mut c = DmClient::new(&dm.addr().to_string(), vec![3, 1], Duration::from_secs(5));
    let v = c.poll().unwrap();
    assert_eq!(v.iter().map(|w| w.du).collect::<Vec<_>>(), [3, 1]);
    for w in &v {
        assert!((w.rttc() - nominal_rttc(w.du)).abs() < 30.0, "{w:?}");
    }
    let reqs = dm.requests();
    assert_eq!(
        reqs[0],
        format!(
            "/monshortdef?name={SESSION}&paths=/mon/clb/outparams/wr_mu/3/0,/mon/clb/outparams/wr_delta/3/0/0,\
/mon/clb/outparams/wr_delta/3/0/1,/mon/clb/outparams/wr_delta/3/0/2,/mon/clb/outparams/wr_delta/3/0/3,\
/mon/clb/outparams/wr_mu/1/0,/mon/clb/outparams/wr_delta/1/0/0,/mon/clb/outparams/wr_delta/1/0/1,\
/mon/clb/outparams/wr_delta/1/0/2,/mon/clb/outparams/wr_delta/1/0/3"
        )
    );
    assert_eq!(reqs[1], format!("/monshort/{SESSION}"));
    c.poll().unwrap();
    assert_eq!(dm.requests().len(), 3, "defined once while it works");

    dm.restart();
    assert!(c.poll().unwrap_err().contains("HTTP 404"));
    c.poll().unwrap();
    let n = dm.requests().len();
    assert!(
        dm.requests()[n - 2].starts_with("/monshortdef"),
        "defined again"
    );

    dm.set_down(true);
    assert!(c.poll().unwrap_err().contains("503"));
    dm.set_down(false);
    dm.set_garbage(true);
    assert!(c.poll().unwrap_err().contains("not JSON"));
    dm.set_garbage(false);
    c.poll().unwrap();

    dm.set_jump(1, 400.0);
    let v = c.poll().unwrap();
    let du1 = v.iter().find(|w| w.du == 1).unwrap();
    assert!((du1.rttc() - nominal_rttc(1) - 400.0).abs() < 30.0);

    // A DU the DM does not know: the definition is refused.
    let mut bad = DmClient::new(&dm.addr().to_string(), vec![9], Duration::from_secs(5));
    assert!(bad.poll().unwrap_err().contains("monshortdef"));
}

/// The definition's reply must be exactly `OK`: `OK\n` is a failure.
#[test]
fn ok_with_a_newline_is_not_ok() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 2048];
        let _ = s.read(&mut buf);
        let _ =
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n");
    });
    let mut c = DmClient::new(&addr.to_string(), vec![1], Duration::from_secs(5));
    let e = c.poll().unwrap_err();
    assert!(e.contains("monshortdef") && e.contains("OK\\n"), "{e}");
    server.join().unwrap();
}

fn config() -> Rttc {
    serde_json::from_str(r#"{"detector_manager": "x", "min_samples": 20, "alert_after": 60}"#)
        .unwrap()
}

fn row(ns: u64, du: u32, rttc_extra: f64, k: u64) -> Item {
    // A little deterministic noise (±6 ps).
    let noise = ((k * 7919) % 13) as f64 - 6.0;
    let v = WrValues {
        du,
        wr_mu: 1_200_000.0 + 40_000.0 * f64::from(du) + noise + rttc_extra,
        wr_delta: [3000.0, 4500.0, 3200.0, 4100.0],
    };
    Item::Row(Box::new(sample_row("rttc", at(ns), &v)))
}

/// 10-s samples of DUs 1 and 2 for 30 min; DU 2 jumps by +500 ps from
/// minute 15 to minute 22. `rttc:2` fires once, 60 s of data time after
/// the jump, and resolves when it ends; DU 1 never alerts; the same
/// whatever the batching.
fn jump_input() -> Vec<(Time, Vec<Item>)> {
    (0..180u64)
        .map(|k| {
            let ns = T0 + k * 10_000_000_000;
            let jump = if (90..132).contains(&k) { 500.0 } else { 0.0 };
            (at(ns), vec![row(ns, 1, 0.0, k), row(ns, 2, jump, k)])
        })
        .collect()
}

fn alerts(out: &[(Time, Item)]) -> Vec<(u64, String, AlertState)> {
    out.iter()
        .filter_map(|(_, i)| match i {
            Item::Alert(a) if !a.reminder => Some((a.time_utc_ns, a.key.clone(), a.state)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_jump_fires_once_and_resolves() {
    let mut m = RttcMonitor::new(&config(), 44, &[1, 2], "rttc");
    let out = run_by_hand(&mut m, jump_input());
    let got = alerts(&out);
    assert_eq!(
        got,
        vec![
            (
                T0 + 960_000_000_000,
                "rttc:2".to_string(),
                AlertState::Firing
            ),
            (
                T0 + 1_320_000_000_000,
                "rttc:2".to_string(),
                AlertState::Resolved
            ),
        ],
        "fires 60 s after the jump at 900 s, resolves with the first sample back at 1320 s"
    );
    let plot = out
        .iter()
        .rev()
        .find_map(|(_, i)| match i {
            Item::Plot(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(plot.name, "rttc");
    // Two DUs: a panel each in one row, both back in their band.
    let pipeline::plot::PlotSpec::Panels(p) = &plot.spec else {
        panic!("panels")
    };
    let labels: Vec<&str> = p.panels.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["DU 1", "DU 2"]);
    assert_eq!((p.columns, p.rows()), (2, 1));
    assert!(p
        .panels
        .iter()
        .all(|p| !p.highlight && p.note.starts_with("median ")));
    assert_eq!(p.panels[1].lines.len(), 3, "median and ± spread");
    let doc: serde_json::Value = serde_json::from_str(plot.json.as_deref().unwrap()).unwrap();
    let median = doc["dus"][0]["median_ps"].as_f64().unwrap();
    assert!((median - nominal_rttc(1)).abs() <= 2.0, "{median}");
    for seed in 1..4 {
        let mut m = RttcMonitor::new(&config(), 44, &[1, 2], "rttc");
        let again = drive(&mut m, random_steps(&jump_input(), seed));
        assert_eq!(alerts(&again), got, "seed {seed}");
    }
}

/// The baseline survives a restart (the node's state): a monitor restored
/// from the saved state judges the first sample after the restart.
#[test]
fn restart_keeps_the_baseline() {
    let mut m = RttcMonitor::new(&config(), 44, &[1, 2], "rttc");
    let first: Vec<_> = jump_input().into_iter().take(60).collect();
    run_by_hand(&mut m, first);
    let saved: Saved = serde_json::from_str(&serde_json::to_string(&m.saved()).unwrap()).unwrap();
    let mut back = RttcMonitor::new(&config(), 44, &[1, 2], "rttc");
    back.restore(saved);
    let ns = T0 + 700_000_000_000;
    let input = (0..8u64)
        .map(|k| {
            let t = ns + k * 10_000_000_000;
            (at(t), vec![row(t, 2, 800.0, k)])
        })
        .collect();
    let out = run_by_hand(&mut back, input);
    assert_eq!(
        alerts(&out),
        vec![(
            ns + 60_000_000_000,
            "rttc:2".to_string(),
            AlertState::Firing
        )]
    );
}

/// The first baseline from the DB stand-in (`testdb`, written from the
/// spec): `datalognumbers` of the five parameters for each DU's base CLB
/// (`source_name` = its UPI from the CLB map), joined by time; a monitor
/// fed with them has the stand-in's RTTC as its median before any DM
/// sample.
#[test]
fn baseline_from_the_db_stand_in() {
    let Ok(mut opts) = testdb::Options::from_env() else {
        eprintln!("KM3MON_TESTDATA not set: skipped");
        return;
    };
    let dir = std::env::temp_dir().join(format!("km3mon-rttc-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let det = daq::detector::Detector::generate(7, 3, 2, 31);
    let detx = dir.join("d.detx");
    det.write_detx_file(&detx, 5).unwrap();
    let runs = opts.detectors[0].runs.clone();
    opts.detectors.push(testdb::DetectorSpec {
        serial: 7,
        oid: "D_TEST007".into(),
        detx,
        runs,
    });
    let db = testdb::TestDb::start(opts).unwrap();
    let env = km3db::SessionEnv {
        config_cookie: Some(db.sid()),
        ..km3db::SessionEnv::default()
    };
    let cfg = km3db::DbConfig {
        url: db.url(),
        ..km3db::DbConfig::default()
    };
    let svc = km3db::DetectorService::new(
        km3db::Client::new(cfg, env),
        "7",
        Some(km3db::cache::Cache::new(dir.join("db"))),
    );
    let samples = dbbase::fetch(&svc, &[1, 2, 3]).unwrap();
    assert_eq!(
        samples.len(),
        3 * 144,
        "every 10 min for 24 h, 3 DUs: {:?}",
        db.request_lines("/")
    );
    for (_, du, v) in &samples {
        assert!((v - nominal_rttc(*du)).abs() <= 3.0, "DU{du}: {v}");
    }
    let lines = db.request_lines("/streamds/datalognumbers");
    assert_eq!(lines.len(), 15, "5 parameters × 3 DUs");
    let base1 = det
        .modules()
        .iter()
        .position(|m| m.du == 1 && m.floor == 0)
        .unwrap();
    assert!(
        lines[1].ends_with(&format!(
            "parameter_name=wr_delta%5B0%5D&source_name=3.4.3.2/V2-2-1/2.{}",
            1000 + base1
        )),
        "{}",
        lines[1]
    );
    let mut m = RttcMonitor::new(&config(), 7, &[1, 2, 3], "rttc");
    let input = vec![(
        at(T0),
        samples
            .iter()
            .map(|(s, du, v)| Item::Row(Box::new(baseline_row(*s, *du, *v))))
            .collect(),
    )];
    let out = run_by_hand(&mut m, input);
    assert!(out.is_empty(), "baseline rows are not samples");
    let saved = m.saved();
    let b = baseline::Baseline::restore(24, &saved.baselines[&2]);
    let band = b.band().unwrap();
    // 24 hourly histograms: the oldest samples of a 24-h span can fall
    // into a 25th hour, which is expired.
    assert!((138..=144).contains(&band.samples), "{band:?}");
    assert!((band.median - nominal_rttc(2)).abs() <= 2.0, "{band:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn adopting(adopt_after: u64) -> Rttc {
    serde_json::from_str(&format!(
        r#"{{"detector_manager": "x", "min_samples": 20, "alert_after": 60, "adopt_after": {adopt_after}}}"#
    ))
    .unwrap()
}

/// A lasting shift (a White Rabbit re-calibration): `rttc:2` fires 60 s
/// after it; after `adopt_after` (600 s here) at the new, stable level the
/// level becomes the baseline: one RESOLVED saying "new baseline" and the
/// shift, nothing more while it stays there; the same whatever the
/// batching. With `adopt_after = 0` it keeps firing.
#[test]
fn a_lasting_shift_becomes_the_new_baseline() {
    let input: Vec<_> = (0..240u64)
        .map(|k| {
            let ns = T0 + k * 10_000_000_000;
            let shift = if k >= 90 { 500.0 } else { 0.0 };
            (at(ns), vec![row(ns, 1, 0.0, k), row(ns, 2, shift, k)])
        })
        .collect();
    let mut m = RttcMonitor::new(&adopting(600), 44, &[1, 2], "rttc");
    let out = run_by_hand(&mut m, input.clone());
    let got = alerts(&out);
    assert_eq!(
        got.iter()
            .map(|(t, k, s)| (*t, k.as_str(), *s))
            .collect::<Vec<_>>(),
        vec![
            (T0 + 960_000_000_000, "rttc:2", AlertState::Firing),
            (T0 + 1_500_000_000_000, "rttc:2", AlertState::Resolved),
        ],
        "adopted 600 s after the shift at 900 s"
    );
    let resolved = out
        .iter()
        .find_map(|(_, i)| match i {
            Item::Alert(a) if a.state == AlertState::Resolved => Some(a.message.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        resolved.contains("new baseline") && resolved.contains("+50"),
        "{resolved}"
    );
    let median = m.saved().baselines[&2].clone();
    let band = baseline::Baseline::restore(24, &median).band().unwrap();
    assert!(
        (band.median - nominal_rttc(2) - 500.0).abs() <= 4.0,
        "{band:?}"
    );
    for seed in 1..4 {
        let mut m = RttcMonitor::new(&adopting(600), 44, &[1, 2], "rttc");
        assert_eq!(
            alerts(&drive(&mut m, random_steps(&input, seed))),
            got,
            "seed {seed}"
        );
    }
    let mut never = RttcMonitor::new(&adopting(0), 44, &[1, 2], "rttc");
    let got = alerts(&run_by_hand(&mut never, input));
    assert_eq!(got.len(), 1, "{got:?}");
}

/// A level that does not settle (jumping between +300 and +900 ps) is
/// never adopted: the candidate starts again with every jump.
#[test]
fn an_unstable_level_is_not_adopted() {
    let input: Vec<_> = (0..240u64)
        .map(|k| {
            let ns = T0 + k * 10_000_000_000;
            let shift = match k {
                0..90 => 0.0,
                _ if (k / 25) % 2 == 0 => 300.0,
                _ => 900.0,
            };
            (at(ns), vec![row(ns, 2, shift, k)])
        })
        .collect();
    let mut m = RttcMonitor::new(&adopting(600), 44, &[2], "rttc");
    let got = alerts(&run_by_hand(&mut m, input));
    assert_eq!(got.len(), 1, "fires once, never resolved: {got:?}");
    assert_eq!(got[0].2, AlertState::Firing);
    let cand = &m.saved().candidates[&2];
    assert!(cand.0 > T0 / 1_000_000_000 + 900, "{}", cand.0);
}

/// The config check: `adopt_after` longer than `alert_after`, ≤ 24 h.
#[test]
fn adopt_after_is_checked() {
    assert!(adopting(0).check().is_empty());
    assert!(adopting(600).check().is_empty());
    assert_eq!(adopting(30).check()[0].0, "adopt_after");
    assert_eq!(adopting(25 * 3600).check()[0].0, "adopt_after");
}

/// rttc.png with many DUs: a panel per DU in DU order, six a row, the
/// DUs off their band framed in red with their deviation; the JSON's
/// layout matches the PNG.
#[test]
fn the_plot_has_a_panel_per_du_and_frames_the_dus_off_their_band() {
    let dus: Vec<u32> = (1..=30).collect();
    let input: Vec<_> = (0..120u64)
        .map(|k| {
            let ns = T0 + k * 10_000_000_000;
            let items = dus
                .iter()
                .map(|&du| {
                    let jump = if k >= 100 && (du == 7 || du == 12) {
                        400.0 * f64::from(du / 6)
                    } else {
                        0.0
                    };
                    row(ns, du, jump, k + u64::from(du))
                })
                .collect();
            (at(ns), items)
        })
        .collect();
    let mut m = RttcMonitor::new(&config(), 44, &dus, "rttc");
    let out = run_by_hand(&mut m, input);
    let plot = out
        .iter()
        .rev()
        .find_map(|(_, i)| match i {
            Item::Plot(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    let pipeline::plot::PlotSpec::Panels(p) = &plot.spec else {
        panic!("panels")
    };
    assert_eq!(p.panels.len(), 30);
    assert_eq!((p.columns, p.rows()), (6, 5));
    let labels: Vec<String> = dus.iter().map(|du| format!("DU {du}")).collect();
    assert_eq!(
        p.panels.iter().map(|p| &p.label).collect::<Vec<_>>(),
        labels.iter().collect::<Vec<_>>()
    );
    let off: Vec<(&str, &str)> = p
        .panels
        .iter()
        .filter(|p| p.highlight)
        .map(|p| (p.label.as_str(), p.note.as_str()))
        .collect();
    assert_eq!(off.len(), 2, "{off:?}");
    // Each with its deviation (+400, +800 ps ± noise) and the alert.
    let dev = |n: &str| -> f64 { n.split(' ').next().unwrap().parse().unwrap() };
    assert_eq!((off[0].0, off[1].0), ("DU 7", "DU 12"));
    assert!((dev(off[0].1) - 400.0).abs() < 15.0, "{off:?}");
    assert!((dev(off[1].1) - 800.0).abs() < 15.0, "{off:?}");
    assert!(off.iter().all(|o| o.1.ends_with("ps (alert)")), "{off:?}");
    // The JSON says where each panel is, and the PNG has that size.
    let doc: serde_json::Value = serde_json::from_str(plot.json.as_deref().unwrap()).unwrap();
    assert_eq!(doc["layout"]["columns"], 6);
    assert_eq!(doc["layout"]["rows"], 5);
    assert_eq!(doc["dus"][11]["panel"], 11);
    assert_eq!(doc["dus"][11]["label"], "DU 12");
    assert_eq!(doc["dus"][11]["highlight"], true);
    let dir = std::env::temp_dir().join(format!("km3mon-rttc-panels-{}", std::process::id()));
    crate::sinks::plot::render_to_dir(&dir, &plot).unwrap();
    let png = std::fs::read(dir.join("rttc.png")).unwrap();
    let be = |o: usize| u32::from_be_bytes(png[o..o + 4].try_into().unwrap());
    let size = &doc["layout"]["size_px"];
    assert_eq!(
        (u64::from(be(16)), u64::from(be(20))),
        (size[0].as_u64().unwrap(), size[1].as_u64().unwrap())
    );
    assert_eq!(p.size(), (1920, 72 + 5 * 160));
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `km3mon ctl rttc-reset --du 2` while DU 2 is off its band: the reset
/// row (a record of the node's input, at its data time) resolves the
/// alert, the old baseline is forgotten and the new level, learnt from
/// the next `min_samples` samples, becomes the median; DU 1 keeps its.
#[test]
fn a_reset_forgets_one_dus_baseline_at_its_data_time() {
    let reset_ns = T0 + 1_000_000_000_000;
    let mut input: Vec<(Time, Vec<Item>)> = (0..180u64)
        .map(|k| {
            let ns = T0 + k * 10_000_000_000;
            let jump = if k >= 90 { 500.0 } else { 0.0 };
            (at(ns), vec![row(ns, 1, 0.0, k), row(ns, 2, jump, k + 1)])
        })
        .collect();
    // Between two polls (the DM thread offers it with the wall-clock tick).
    let pos = input.iter().position(|(t, _)| *t > at(reset_ns)).unwrap();
    input.insert(pos, (at(reset_ns), vec![Item::Row(Box::new(reset_row(2)))]));
    let mut m = RttcMonitor::new(&config(), 44, &[1, 2], "rttc");
    let out = run_by_hand(&mut m, input.clone());
    let got = alerts(&out);
    assert_eq!(
        got.iter().map(|a| (a.0, a.2)).collect::<Vec<_>>(),
        [
            (T0 + 960_000_000_000, AlertState::Firing),
            (reset_ns, AlertState::Resolved)
        ],
        "{got:?}"
    );
    let resolved = out
        .iter()
        .find_map(|(_, i)| match i {
            Item::Alert(a) if a.state == AlertState::Resolved => Some(a.message.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        resolved.contains("baseline reset by an operator"),
        "{resolved}"
    );
    let plot = out
        .iter()
        .rev()
        .find_map(|(_, i)| match i {
            Item::Plot(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(plot.json.as_deref().unwrap()).unwrap();
    let median = |i: usize| doc["dus"][i]["median_ps"].as_f64().unwrap();
    assert!((median(0) - nominal(1)).abs() <= 8.0, "{doc}");
    assert!((median(1) - nominal(2) - 500.0).abs() <= 8.0, "{doc}");
    // The same whatever the batching.
    for seed in 1..4 {
        let mut m = RttcMonitor::new(&config(), 44, &[1, 2], "rttc");
        assert_eq!(alerts(&drive(&mut m, random_steps(&input, seed))), got);
    }
    assert_eq!(reset_du("DU5"), Some(5));
    assert_eq!(reset_du("5"), Some(5));
    assert_eq!(reset_du("x"), None);
}

/// The sample rows' RTTC without the jump: wr_mu − Σ wr_delta.
fn nominal(du: u32) -> f64 {
    1_200_000.0 + 40_000.0 * f64::from(du) - (3000.0 + 4500.0 + 3200.0 + 4100.0)
}
