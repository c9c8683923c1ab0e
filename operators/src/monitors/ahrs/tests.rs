use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use daq::detector::Detector;
use pipeline::item::{Item, TICKS_PER_SECOND};
use pipeline::plot::PlotSpec;

use super::constants::{self, ConstantSet, DomEntry};
use super::math::Constants;
use super::*;
use crate::shell::testing::{at, tmch};
use crate::shell::{drive, random_steps, run_by_hand};

/// The first record of `testdata/daq/IO_MONIT.dat` (spec integrations.md
/// §3.5), as f32 bit patterns.
const A: [u32; 3] = [0x3be83c20, 0x3b0c0000, 0xbf5d543e];
const H: [u32; 3] = [0xbe8634c0, 0x3cc1a10c, 0x3e127689];

const T0: u64 = 1_600_000_000_000_000_000;

/// A CLB monitoring packet of `dom` at `ns` with the worked examples' A
/// and H, through the daq encoder and decoder.
fn packet(ns: u64, dom: u32) -> Item {
    let mut p = tmch(ns, dom, 100, 0);
    p.a = A.map(f32::from_bits);
    p.h = H.map(f32::from_bits);
    Item::Tmch(Arc::new(
        daq::tmch::TmchPacket::decode(&p.encode()).expect("round trip"),
    ))
}

fn config() -> AhrsCalibration {
    serde_json::from_str(r#"{"db": false, "interval": 60}"#).expect("config")
}

/// Stage 2 by hand on what the stage-1 workers gave: by stamp, each
/// stamp's windows sorted by (window end, DOM) as the ordered shell does.
fn stage2(m: &mut AhrsMonitor, windows: Vec<(Time, DomWindow)>) -> Vec<(Time, Item)> {
    let mut windows = windows;
    windows.sort_by_key(|(t, w)| (*t, w.window_end, w.dom));
    let mut input: Vec<(Time, Vec<DomWindow>)> = Vec::new();
    for (t, w) in windows {
        match input.last_mut() {
            Some((last, ws)) if *last == t => ws.push(w),
            _ => input.push((t, vec![w])),
        }
    }
    run_by_hand(m, input)
}

/// Both stages by hand, one worker.
fn both(d: &mut AhrsDoms, m: &mut AhrsMonitor, input: Vec<(Time, Vec<Item>)>) -> Vec<(Time, Item)> {
    stage2(m, run_by_hand(d, input))
}

/// (floor, dom) → values of each parameter in the last plot JSONs.
fn plotted(out: &[(Time, Item)]) -> HashMap<(String, u32), [f64; 1]> {
    let mut got = HashMap::new();
    for (_, i) in out {
        let Item::Plot(p) = i else { continue };
        let doc: serde_json::Value = serde_json::from_str(p.json.as_deref().unwrap()).unwrap();
        for f in doc["floors"].as_array().unwrap() {
            let Some(last) = f["points"].as_array().unwrap().last() else {
                continue;
            };
            got.insert(
                (
                    doc["parameter"].as_str().unwrap().to_string(),
                    f["dom_id"].as_u64().unwrap() as u32,
                ),
                [last[1].as_f64().unwrap()],
            );
        }
    }
    got
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 1e-9,
        "{what}: {got} vs {want} (diff {})",
        got - want
    );
}

/// The sample's `ahrscalib` table for this test: the rows of compasses 42
/// and 50 (the REVTIMEORDER-2 row of 50 made the latest: spec §3.5
/// example 3), and compass 7777 with identity constants. Plus a
/// constants file with example 3's matrices transposed, for one DOM.
fn tables(sample: &Path) -> (String, String) {
    let text = std::fs::read_to_string(sample).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let cols: Vec<&str> = header.split('\t').collect();
    let at = |name: &str| cols.iter().position(|c| *c == name).unwrap();
    let (serial, rev) = (at("SERIALNUMBER"), at("REVTIMEORDER"));
    let mut rows = vec![header.to_string()];
    let mut row50: Vec<String> = Vec::new();
    for l in lines {
        let mut f: Vec<String> = l.split('\t').map(String::from).collect();
        match (f[serial].as_str(), f[rev].as_str()) {
            ("42", "1") => rows.push(l.to_string()),
            ("50", "2") => {
                f[rev] = "1".into();
                row50 = f.clone();
                rows.push(f.join("\t"));
            }
            _ => {}
        }
    }
    let mut ident: Vec<String> = cols.iter().map(|_| String::new()).collect();
    ident[serial] = "7777".into();
    ident[rev] = "1".into();
    for (i, c) in cols.iter().enumerate() {
        if c.starts_with("ACC_OFFSET") || c.starts_with("MAG_") && c.ends_with("IN") {
            ident[i] = "0".into();
        }
        if c.ends_with("MAX") {
            ident[i] = "0".into();
        }
        if let Some(ij) = c
            .strip_prefix("ACC_ROT_")
            .or_else(|| c.strip_prefix("MAG_ROT_"))
        {
            let b = ij.as_bytes();
            ident[i] = if b[0] == b[1] { "1" } else { "0" }.into();
        }
    }
    rows.push(ident.join("\t"));
    // Example 3 in km3pipe's v·R convention: the file (R·v convention)
    // holds the transposed matrices.
    let calib: Vec<usize> = (0..cols.len())
        .filter(|&i| {
            cols[i].starts_with("ACC_OFFSET")
                || cols[i].starts_with("ACC_ROT")
                || (cols[i].starts_with("MAG_") && cols[i] != "MAG_DECL")
        })
        .collect();
    let mut file = String::from("DOMID");
    for &i in &calib {
        file.push('\t');
        file.push_str(cols[i]);
    }
    file.push_str("\nDOM5");
    for &i in &calib {
        let c = cols[i];
        let src = match c
            .strip_prefix("ACC_ROT_")
            .or_else(|| c.strip_prefix("MAG_ROT_"))
        {
            Some(ij) => {
                let b: Vec<char> = ij.chars().collect();
                at(&format!("{}{}{}", &c[..c.len() - 2], b[1], b[0]))
            }
            None => i,
        };
        file.push('\t');
        file.push_str(&row50[src]);
    }
    file.push('\n');
    (rows.join("\n") + "\n", file)
}

fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("km3mon-ahrs-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every worked example of spec integrations.md §3.5 through the operator,
/// to 1e-9°: constants from the DB stand-in (`testdb`, written from the
/// spec: no real KM3NeT DB can run here) — CLB map, each CLB's compass,
/// the `ahrscalib` table — and from a constants file for one DOM the DB
/// has no compass for; one DOM without any constants, named on the plots;
/// a DOM not in the CLB map, counted. A second load comes from the day's
/// cache.
#[test]
fn worked_examples_through_the_operator() {
    let Ok(mut opts) = testdb::Options::from_env() else {
        eprintln!("KM3MON_TESTDATA not set: skipped");
        return;
    };
    let Some(sample) = opts.ahrscalib.clone() else {
        eprintln!("streamds_ahrscalib sample not found: skipped");
        return;
    };
    let dir = temp_dir("examples");
    let (table, file) = tables(&sample);
    std::fs::write(dir.join("ahrscalib.txt"), table).unwrap();
    opts.ahrscalib = Some(dir.join("ahrscalib.txt"));
    let det_spec = opts
        .detectors
        .iter()
        .find(|d| d.serial == 44)
        .unwrap()
        .clone();
    let det = Detector::from_file(&det_spec.detx).unwrap();
    // The stand-in numbers CLBs 1000, 1001, … in DETX module order.
    let upi = |dom: u32| {
        let i = det.modules().iter().position(|m| m.dom_id == dom).unwrap();
        testdb::data::clb_upi(1000 + i as u32)
    };
    let optical: Vec<(u32, u32, i32)> = det
        .modules()
        .iter()
        .filter(|m| m.is_optical())
        .map(|m| (m.dom_id, m.du, m.floor))
        .take(5)
        .collect();
    // detx_v4 has no base modules: a DOM id the CLB map lacks instead.
    let stranger = 1u32;
    let [d1, d2, d3, d4, d5] = [0, 1, 2, 3, 4].map(|i| optical[i].0);
    for (dom, compass) in [
        (d1, Some("7777")),
        (d2, Some("42")),
        (d3, Some("50")),
        (d4, None),
        (d5, None),
    ] {
        opts.compasses
            .insert(upi(dom), compass.map(testdb::data::compass_upi));
    }
    let db = testdb::TestDb::start(opts).unwrap();
    std::fs::write(dir.join("file.tsv"), file.replace("DOM5", &d4.to_string())).unwrap();

    let service = || {
        let cfg = km3db::DbConfig {
            url: db.url(),
            ..km3db::DbConfig::default()
        };
        let env = km3db::SessionEnv {
            config_cookie: Some(db.sid()),
            ..km3db::SessionEnv::default()
        };
        km3db::DetectorService::new(
            km3db::Client::new(cfg, env),
            "44",
            Some(km3db::cache::Cache::new(dir.join("state/db"))),
        )
    };
    let load = |svc: km3db::DetectorService| {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let file = dir.join("file.tsv");
        let det = det.clone();
        std::thread::spawn(move || {
            let set = constants::load(Some(&svc), Some(&file), Some(&det));
            let _ = tx.send(Arc::new(set));
        });
        rx
    };
    let mut d = AhrsDoms::new(60).with_updates(load(service()), true);
    let mut m = AhrsMonitor::new(&config(), 44);
    let doms = [d1, d2, d3, d4, d5, stranger];
    let input = (0..3u64)
        .map(|i| {
            let ns = T0 + i * 1_000_000_000;
            (at(ns), doms.iter().map(|&d| packet(ns, d)).collect())
        })
        .collect();
    let out = both(&mut d, &mut m, input);
    let got = plotted(&out);
    let want = [
        (
            d1,
            [185.25275251453746, 0.46966756076558863, 179.85842995903073],
        ),
        (
            d2,
            [175.487059106256, -0.2886042979111175, 179.3602446950775],
        ),
        (
            d3,
            [199.74412562254713, 0.15426373223596018, 178.44153081070172],
        ),
        (
            d4,
            [199.7470474166699, 0.17184751883153507, 178.44324624270956],
        ),
    ];
    for (dom, w) in want {
        for (k, p) in PARAMETERS.iter().enumerate() {
            let g = got
                .get(&(p.to_string(), dom))
                .unwrap_or_else(|| panic!("{p} of DOM {dom} not plotted"));
            close(g[0], w[k], &format!("{p} of DOM {dom}"));
        }
    }
    // CSV rows: one per DOM with constants, none for the others.
    let rows: Vec<&Row> = out
        .iter()
        .filter_map(|(_, i)| match i {
            Item::Row(r) => Some(&**r),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0].header,
        ["time_utc", "du", "floor", "dom_id", "yaw", "pitch", "roll"]
    );
    assert!(rows.iter().all(|r| r.cells[3] != d5.to_string()));
    assert_eq!(d.unknown, 3, "the stranger's packets are counted");
    // The DOM without constants is counted and named on its DU's plots.
    let du5 = optical[4].1;
    let plot = out
        .iter()
        .find_map(|(_, i)| match i {
            Item::Plot(p) if p.name == format!("yaw_calib_du{du5}") => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    let PlotSpec::TimeSeries(s) = &plot.spec else {
        panic!()
    };
    assert!(
        s.title.contains(&format!(
            "1 DOM without constants: floor {} (DOM {d5})",
            optical[4].2
        )),
        "{}",
        s.title
    );
    let doc: serde_json::Value = serde_json::from_str(plot.json.as_deref().unwrap()).unwrap();
    assert_eq!(doc["without_constants"][0]["dom_id"], d5);
    assert!(doc["without_constants"][0]["why"]
        .as_str()
        .unwrap()
        .contains("has no compass"));
    let fetched = db.requests().len();
    // Requests: detectors, clbmap, ahrscalib, one integration per CLB.
    let clbs = det.modules().iter().filter(|m| m.is_optical()).count();
    assert_eq!(fetched, 3 + clbs, "{:?}", &db.request_lines("/")[..4]);
    // Within the day: everything from the cache, no request.
    let again = load(service()).recv().unwrap();
    assert_eq!(db.requests().len(), fetched);
    assert!(again.source.contains("cached"), "{}", again.source);
    let _ = std::fs::remove_dir_all(&dir);
}

fn hand_set(doms: &[(u32, u32, i32)]) -> ConstantSet {
    ConstantSet {
        doms: doms
            .iter()
            .map(|&(d, du, floor)| {
                (
                    d,
                    DomEntry {
                        du,
                        floor,
                        constants: Ok(Constants::IDENTITY),
                    },
                )
            })
            .collect(),
        bases: Vec::new(),
        source: "test".into(),
    }
}

/// Windows of data time: one row per DOM per window, whatever the
/// batching and frontier steps, and whether the DOMs are on one worker's
/// stage 1 or each on its own (the last data time of the partial window
/// is the newest of all workers: DOM 12 stops early).
#[test]
fn windows_do_not_depend_on_batching_or_workers() {
    let input: Vec<(Time, Vec<Item>)> = (0..300u64)
        .map(|i| {
            let ns = T0 + i * 700_000_000;
            let doms: &[u32] = if i < 290 { &[11, 12] } else { &[11] };
            (at(ns), doms.iter().map(|&d| packet(ns, d)).collect())
        })
        .collect();
    let set = Arc::new(hand_set(&[(11, 1, 1), (12, 1, 2)]));
    let show = |out: Vec<(Time, Item)>| {
        out.into_iter()
            .map(|(t, i)| match i {
                Item::Row(r) => format!("{t} {}", r.cells.join(",")),
                Item::Plot(p) => format!("{t} {} {}", p.name, p.json.as_deref().unwrap_or("")),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
    };
    let run = |seed: u64| {
        let mut d = AhrsDoms::new(60);
        d.set_constants(set.clone());
        let windows = drive(&mut d, random_steps(&input, seed));
        show(stage2(&mut AhrsMonitor::new(&config(), 7), windows))
    };
    let first = run(0);
    // 209.3 s of data from 1600000000 s: the 60-s windows ending at
    // …020, …080, …140, …200 and the partial one up to the end.
    assert_eq!(first.iter().filter(|l| l.contains(",1,1,11,")).count(), 5);
    assert!(
        first
            .iter()
            .any(|l| l.contains("2020-09-13T12:30:09Z,1,1,11,")),
        "{first:?}"
    );
    for seed in 1..4 {
        assert_eq!(run(seed), first, "seed {seed}");
    }
    // Two workers: DOM 11 on one, DOM 12 on the other.
    let mut windows = Vec::new();
    for dom in [11, 12] {
        let part: Vec<(Time, Vec<Item>)> = input
            .iter()
            .map(|(t, items)| {
                let mine = items
                    .iter()
                    .filter(|i| matches!(i, Item::Tmch(p) if p.dom_id == dom))
                    .cloned()
                    .collect();
                (*t, mine)
            })
            .collect();
        let mut d = AhrsDoms::new(60);
        d.set_constants(set.clone());
        windows.extend(drive(&mut d, random_steps(&part, u64::from(dom))));
    }
    let split = show(stage2(&mut AhrsMonitor::new(&config(), 7), windows));
    // The stamps of the partial window are each worker's last; the rest
    // is the same, line by line.
    let strip = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|l| l.split_once(' ').map_or(l.clone(), |x| x.1.to_string()))
            .collect()
    };
    assert_eq!(strip(split), strip(first));
}

/// Live: packets before the constants are counted, not guessed.
#[test]
fn packets_before_the_constants_are_counted() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let mut d = AhrsDoms::new(60).with_updates(rx, false);
    let mut m = AhrsMonitor::new(&config(), 7);
    let out = both(&mut d, &mut m, vec![(at(T0), vec![packet(T0, 11)])]);
    assert!(out.is_empty());
    assert_eq!(d.early, 1);
    tx.send(Arc::new(hand_set(&[(11, 1, 1)]))).unwrap();
    let ns = T0 + TICKS_PER_SECOND * 100_000_000;
    let out = both(
        &mut d,
        &mut m,
        vec![(at(ns), vec![packet(ns, 11), packet(ns, 99)])],
    );
    assert_eq!(d.unknown, 1);
    assert!(out.iter().any(|(_, i)| matches!(i, Item::Row(_))));
}

#[test]
fn constants_file_errors_name_the_line() {
    let dir = temp_dir("file");
    let det = Detector::generate(7, 1, 2, 31);
    let p = dir.join("c.tsv");
    std::fs::write(&p, "DOMID\tACC_OFFSET_X\nxyz\t1\n").unwrap();
    let e = constants::from_file(&p, &det).unwrap_err().to_string();
    assert!(e.contains("c.tsv: line 2: DOMID"), "{e}");
    let dom = det
        .modules()
        .iter()
        .find(|m| m.is_optical())
        .unwrap()
        .dom_id;
    std::fs::write(&p, format!("DOMID\tACC_OFFSET_X\n{dom}\t1\n")).unwrap();
    let e = constants::from_file(&p, &det).unwrap_err().to_string();
    assert!(e.contains("c.tsv: line 2: MAG_XMIN empty"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
