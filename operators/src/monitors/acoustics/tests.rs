//! Ping detection codes, the DB stand-in (crate `testdb`, written from the
//! spec: the real KM3NeT DB cannot run here) and the alert.

use super::algo::*;
use super::*;
use crate::shell::{drive, random_steps};
use crossbeam_channel::bounded;
use pipeline::item::Item;

fn train(e: i32, t0: f64, n: usize, qf0: f64) -> Vec<Toa> {
    (0..n)
        .map(|k| Toa {
            emitter: e,
            qf: qf0 - k as f64,
            t: t0 + k as f64 * PING_PERIOD_S,
        })
        .collect()
}

#[test]
fn known_pings_give_the_codes() {
    let mut toas = train(11, 1010.0, 11, 80.0);
    toas.extend(train(12, 1210.0, 5, 70.0));
    toas.extend(train(-13, 1400.0, 2, 70.0));
    toas.push(Toa {
        emitter: 11,
        qf: 9.0,
        t: 1400.0,
    });
    toas.push(Toa {
        emitter: 12,
        qf: 8.0,
        t: 1500.0,
    });
    toas.push(Toa {
        emitter: -13,
        qf: 7.0,
        t: 1100.0,
    });
    let s = dom_slots(&toas, 1000.0, 1600.0);
    assert_eq!(slots(&toas), [11, 12, -13]);
    assert_eq!(s.map(|x| x.code), [MANY, SOME, FEW]);
    assert_eq!(s.map(|x| x.pings), [11, 5, 2]);
    // Outside the window: nothing.
    let s = dom_slots(&toas, 2000.0, 2600.0);
    assert_eq!(s.map(|x| x.code), [NO_PINGS; 3]);
    // No TOAs at all: every slot "0 pings" (emitter 0).
    assert_eq!(dom_slots(&[], 0.0, 600.0).map(|x| x.code), [NO_PINGS; 3]);
}

#[test]
fn one_beacon_heard_twice_is_counted_once() {
    // Beacon 12's train starts 3 ping periods after beacon 11's: the same
    // pulses; the weaker one becomes "0 pings".
    let mut toas = train(11, 1010.0, 11, 80.0);
    toas.extend(train(12, 1010.0 + 3.0 * PING_PERIOD_S, 8, 60.0));
    let s = dom_slots(&toas, 1000.0, 1600.0);
    assert_eq!(s.map(|x| x.code), [MANY, NO_PINGS, NO_PINGS]);
}

fn monitor(doms: Vec<(u32, u32, i32)>) -> AcousticsMonitor {
    let c: Acoustics = serde_json::from_str(r#"{"interval": 600, "delay": 0}"#).unwrap();
    AcousticsMonitor::new(&c, 7, doms, "acoustics")
}

fn json_of(out: &[(Time, Item)]) -> serde_json::Value {
    let p = out
        .iter()
        .find_map(|(_, i)| match i {
            Item::Plot(p) => Some(p.clone()),
            _ => None,
        })
        .expect("a plot");
    serde_json::from_str(p.json.as_deref().unwrap()).unwrap()
}

fn codes(j: &serde_json::Value) -> Vec<Vec<f64>> {
    j["doms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["beacons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["code"].as_f64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn db_errors_give_no_db_connection_and_no_alert() {
    let mut m = monitor(vec![(1, 1, 1), (2, 2, 1)]);
    let mut out = Out::collector();
    m.emit(
        600 * TICKS_PER_SECOND,
        (0, 600),
        &Err("no DB connection: x".into()),
        &mut out,
    );
    let out = out.take();
    assert!(!out.iter().any(|(_, i)| matches!(i, Item::Alert(_))));
    let j = json_of(&out);
    assert_eq!(codes(&j), vec![vec![NO_DB; 3]; 2]);
    assert_eq!(j["status"], "no DB connection: x");
}

#[test]
fn alert_fires_once_when_a_du_loses_all_beacons_and_resolves() {
    let mut m = monitor(vec![(1, 1, 1), (2, 2, 1)]);
    let by_dom = |both: bool| {
        let mut b = BTreeMap::new();
        b.insert(1u32, train(11, 10.0, 11, 80.0));
        if both {
            b.insert(2u32, train(11, 10.0, 11, 80.0));
        }
        Ok(Fetched {
            runs: (1, 1),
            by_dom: Arc::new(b),
        })
    };
    let mut alerts = Vec::new();
    for (k, both) in [true, false, false, false, true].into_iter().enumerate() {
        let mut out = Out::collector();
        let w = (k as u64 * 600, k as u64 * 600 + 600);
        let mut a = by_dom(both);
        if let Ok(f) = &mut a {
            let shifted: BTreeMap<u32, Vec<Toa>> = f
                .by_dom
                .iter()
                .map(|(d, v)| {
                    let v = v
                        .iter()
                        .map(|x| Toa {
                            t: x.t + w.0 as f64,
                            ..*x
                        })
                        .collect();
                    (*d, v)
                })
                .collect();
            f.by_dom = Arc::new(shifted);
        }
        m.emit(w.1 * TICKS_PER_SECOND, w, &a, &mut out);
        for (_, i) in out.take() {
            if let Item::Alert(a) = i {
                alerts.push((k, a.key.clone(), format!("{:?}", a.state)));
            }
        }
    }
    assert_eq!(
        alerts,
        vec![
            (1, "acoustics:2".to_string(), "Firing".to_string()),
            (4, "acoustics:2".to_string(), "Resolved".to_string())
        ]
    );
}

type StandIn = (testdb::TestDb, km3db::DetectorService, Vec<(u32, u32, i32)>);

/// A detector of `n_dus` DUs × 2 floors in the DB stand-in, runs 1000 s
/// apart from UTC 1 700 000 000 s.
fn stand_in(n_dus: u32, silent: Option<u32>) -> Option<StandIn> {
    let Ok(mut opts) = testdb::Options::from_env() else {
        eprintln!("KM3MON_TESTDATA not set: skipped");
        return None;
    };
    let dir = std::env::temp_dir().join(format!("km3mon-acoustics-{}-{n_dus}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let det = daq::detector::Detector::generate(7, n_dus, 2, 31);
    let detx = dir.join("d.detx");
    det.write_detx_file(&detx, 5).unwrap();
    let runs = (0..4)
        .map(|k| testdb::RunSpec {
            run: 100 + k,
            unix_start_ms: (1_700_000_000 + 1000 * i64::from(k)) * 1000,
            t0: None,
            pos: None,
            rot: None,
        })
        .collect();
    opts.detectors.push(testdb::DetectorSpec {
        serial: 7,
        oid: "D_TEST007".into(),
        detx,
        runs,
    });
    opts.toa_silent_du = silent;
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
    let doms = det
        .modules()
        .iter()
        .map(|m| (m.dom_id, m.du, m.floor))
        .collect();
    Some((db, svc, doms))
}

#[test]
fn stand_in_toas_give_the_matrix_and_the_silent_du() {
    let Some((db, svc, doms)) = stand_in(3, Some(2)) else {
        return;
    };
    let mut cache = RunCache::default();
    // Window on the 600-s grid inside run 100 (complete: cached after).
    let (a, b) = (1_700_000_000, 1_700_000_600);
    let f = fetch(&svc, &mut cache, a, b);
    let mut m = monitor(doms.clone());
    let mut out = Out::collector();
    m.emit(b * TICKS_PER_SECOND, (a, b), &f, &mut out);
    let out = out.take();
    let j = json_of(&out);
    let c = codes(&j);
    for ((_, du, floor), got) in doms.iter().zip(&c) {
        let want: Vec<f64> = if *du == 2 {
            vec![NO_PINGS; 3]
        } else {
            (0..3)
                .map(|k| code_of(testdb::data::pings_heard(*floor, k)))
                .collect()
        };
        assert_eq!(got, &want, "DU{du} floor {floor}");
    }
    assert_eq!(j["dus_without_beacons"], serde_json::json!([2]));
    // The columns are labelled with their DU and the beacon's emitter id.
    let map = out
        .iter()
        .find_map(|(_, i)| match i {
            Item::Plot(p) => match &p.spec {
                pipeline::plot::PlotSpec::DomMap(m) => Some(m.clone()),
                _ => None,
            },
            _ => None,
        })
        .unwrap();
    let columns = map.columns.expect("column labels");
    let mut want = Vec::new();
    for du in 1..=3 {
        for e in testdb::data::BEACONS {
            want.push(if du == 2 {
                "2/?".to_string()
            } else {
                format!("{du}/{e}")
            });
        }
    }
    assert_eq!(columns.labels, want);
    assert_eq!(columns.labels.len(), map.dus.len());
    let alerts: Vec<String> = out
        .iter()
        .filter_map(|(_, i)| match i {
            Item::Alert(a) => Some(a.key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(alerts, ["acoustics:2"]);
    let n = db.request_lines("/streamds").len();
    // The same complete run range again: answered from memory.
    let _ = fetch(&svc, &mut cache, a, b);
    assert_eq!(db.request_lines("/streamds/toashort").len(), 1);
    assert!(db.request_lines("/streamds").len() <= n + 1);
}

#[test]
fn a_230_du_detector_costs_at_most_two_requests_per_cycle() {
    let Some((db, svc, doms)) = stand_in(230, None) else {
        return;
    };
    let mut cache = RunCache::default();
    let _ = svc.det_oid().unwrap();
    let before = db.request_lines("/").len();
    let cycles = 4u64;
    for k in 0..cycles {
        let b = 1_700_000_600 + 600 * k;
        let f = fetch(&svc, &mut cache, b - 600, b).unwrap();
        assert!(
            f.by_dom.len() >= doms.len() - 230,
            "{} DOMs heard",
            f.by_dom.len()
        );
    }
    let after = db.request_lines("/").len();
    assert!(
        after - before <= 2 * cycles as usize,
        "{} requests for {cycles} cycles: {:?}",
        after - before,
        db.request_lines("/")
    );
    assert!(db
        .request_lines("/streamds/toashort")
        .iter()
        .all(|l| !l.contains("domid")));
}

/// Cycles are event-time timers on the interval grid: the same windows,
/// plots and alerts whatever the batching and frontier steps (the I/O
/// side is a thread answering from memory, in replay mode: waited for).
#[test]
fn cycles_follow_data_time_whatever_the_batching() {
    const T0_S: u64 = 1_700_000_000;
    let input: Vec<(Time, Vec<Item>)> = (0..300u64)
        .map(|i| {
            let ns = (T0_S + 5 + i * 10) * 1_000_000_000;
            let p = crate::shell::testing::tmch(ns, 1, 0, 0);
            (crate::shell::testing::at(ns), vec![Item::Tmch(Arc::new(p))])
        })
        .collect();
    let run = |seed: u64| cycles_of(&input, seed, false);
    let first = run(0);
    // Data from T0+5 s to T0+2995 s (T0 = 200 s past a 600-s grid
    // point): cycles at T0+400, +1000, … +2800 for the windows ending there
    // (delay 0); windows starting on an odd multiple of 600 s are silent.
    let want: Vec<String> = (0..5u64)
        .flat_map(|k| {
            let end = T0_S + 400 + 600 * k;
            let t = end * TICKS_PER_SECOND;
            let iso = |s: u64| crate::shell::iso(s as i64);
            let silent = k % 2 == 0;
            vec![
                format!(
                    "{t} acoustics:1 {}",
                    if silent { "Firing" } else { "Resolved" }
                ),
                format!(
                    "{t} plot [\"{}\",\"{}\"] {}",
                    iso(end - 600),
                    iso(end),
                    if silent { "[1]" } else { "[]" }
                ),
            ]
        })
        .collect();
    assert_eq!(first, want);
    for seed in 1..4 {
        assert_eq!(run(seed), first, "seed {seed}");
    }
}

/// The plots' windows and the alerts of a monitor on `input`, the
/// windows starting on an odd multiple of 600 s silent.
fn cycles_of(input: &[(Time, Vec<Item>)], seed: u64, at_start: bool) -> Vec<String> {
    let (req_tx, req_rx) = bounded(2);
    let (res_tx, res_rx) = bounded(2);
    let io = std::thread::spawn(move || {
        serve(req_rx, res_tx, |a, b| {
            // The windows starting on an odd multiple of 600 s are silent.
            let mut m = BTreeMap::new();
            if (a / 600) % 2 == 0 {
                m.insert(1u32, train(11, a as f64 + 10.0, 11, 80.0));
            }
            let _ = b;
            Ok(Fetched {
                runs: (1, 1),
                by_dom: Arc::new(m),
            })
        })
    });
    let mut m = monitor(vec![(1, 1, 1)]).with_io(req_tx, res_rx, true);
    m.at_start = at_start;
    let out = drive(&mut m, random_steps(input, seed));
    drop(m);
    io.join().unwrap();
    out.into_iter()
        .filter_map(|(t, i)| match i {
            Item::Plot(p) => {
                let j: serde_json::Value = serde_json::from_str(p.json.as_deref()?).ok()?;
                Some(format!(
                    "{t} plot {} {}",
                    j["window"], j["dus_without_beacons"]
                ))
            }
            Item::Alert(a) => Some(format!("{t} {} {:?}", a.key, a.state)),
            _ => None,
        })
        .collect::<Vec<_>>()
}

/// `at_start`: the last whole window before the first data is analysed
/// at the first data (T0+5 s: the window ending on the grid at T0−200 s),
/// then the same cycles as without it.
#[test]
fn at_start_analyses_the_last_window_at_the_first_data() {
    const T0_S: u64 = 1_700_000_000;
    let input: Vec<(Time, Vec<Item>)> = (0..300u64)
        .map(|i| {
            let ns = (T0_S + 5 + i * 10) * 1_000_000_000;
            let p = crate::shell::testing::tmch(ns, 1, 0, 0);
            (crate::shell::testing::at(ns), vec![Item::Tmch(Arc::new(p))])
        })
        .collect();
    let first = cycles_of(&input, 0, true);
    let t = (T0_S + 5) * TICKS_PER_SECOND;
    let iso = |s: u64| crate::shell::iso(s as i64);
    let end = T0_S - 200;
    // That window starts on an even multiple of 600 s: heard, no alert.
    assert_eq!(
        first[0],
        format!("{t} plot [\"{}\",\"{}\"] []", iso(end - 600), iso(end))
    );
    assert_eq!(first[1..], cycles_of(&input, 0, false)[..]);
    for seed in 1..4 {
        assert_eq!(cycles_of(&input, seed, true), first, "seed {seed}");
    }
}
