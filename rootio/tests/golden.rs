//! `testdata/root/km3net_online.root` against its golden decoding
//! (integers exactly, rates to 1e-12 relative), and every online sample of
//! km3net-testdata decoded completely when the package is installed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use daq::frame::{DaqFrame, DaqHeader};
use rootio::km3net::Stream;
use rootio::{Order, RootFile, RunReader};
use serde_json::Value;

fn testdata() -> PathBuf {
    std::env::var_os("KM3MON_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"))
}

fn golden_path() -> (PathBuf, PathBuf) {
    let dir = testdata().join("root");
    (
        dir.join("km3net_online.root"),
        dir.join("km3net_online.golden.json"),
    )
}

fn check_header(h: &DaqHeader, g: &Value, what: &str) {
    let fields = [
        ("det_id", i64::from(h.det_id)),
        ("run", i64::from(h.run)),
        ("frame_index", i64::from(h.frame_index)),
        ("utc_seconds", i64::from(h.utc_seconds)),
        ("wr_status_msb", i64::from(h.wr_status_msb)),
        ("utc_16ns_ticks", i64::from(h.utc_16ns_ticks)),
        ("utc_nanoseconds", h.utc_nanoseconds() as i64),
    ];
    for (k, v) in fields {
        assert_eq!(g[k].as_i64(), Some(v), "{what}: header.{k}");
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || ((a - b) / b).abs() <= 1e-12
}

#[test]
fn golden_km3net_online() {
    let (root, golden) = golden_path();
    if !root.exists() {
        panic!("{} missing: set KM3MON_TESTDATA", root.display());
    }
    let g: Value = serde_json::from_str(&std::fs::read_to_string(golden).unwrap()).unwrap();
    let file = RootFile::open(&root).unwrap();
    assert_eq!(
        g["root"]["fVersion"].as_i64(),
        Some(file.header().version.into())
    );
    assert_eq!(
        g["root"]["fCompress"].as_i64(),
        Some(file.header().compress.into())
    );
    let mut names: Vec<String> = file.keys().iter().map(|k| k.name.clone()).collect();
    names.sort();
    let want: Vec<String> = g["root"]["top_level_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, want);

    let mut by: BTreeMap<Stream, Vec<DaqFrame>> = BTreeMap::new();
    let mut run = RunReader::open(&root, Order::File).unwrap();
    while let Some(e) = run.next_entry() {
        let e = e.unwrap();
        by.entry(e.stream).or_default().push(e.frame);
    }
    let count = |s| by.get(&s).map_or(0, Vec::len) as i64;
    assert_eq!(g["n_events"].as_i64(), Some(count(Stream::Event)));
    assert_eq!(
        g["n_summaryslices"].as_i64(),
        Some(count(Stream::Summaryslice))
    );
    for (label, s) in [
        ("L0", Stream::L0),
        ("L1", Stream::L1),
        ("L2", Stream::L2),
        ("SN", Stream::Sn),
        ("TS", Stream::Ts),
    ] {
        assert_eq!(g["n_timeslices"][label].as_i64(), Some(count(s)), "{label}");
    }

    // Events.
    let events: Vec<_> = by[&Stream::Event]
        .iter()
        .map(|f| match f {
            DaqFrame::Event(e) => e.clone(),
            _ => unreachable!(),
        })
        .collect();
    for r in g["events"]["records"].as_array().unwrap() {
        let e = &events[r["index"].as_u64().unwrap() as usize];
        check_header(&e.header, &r["header"], "event");
        assert_eq!(r["trigger_counter"].as_u64(), Some(e.trigger_counter));
        assert_eq!(r["trigger_mask"].as_u64(), Some(e.trigger_mask));
        assert_eq!(r["overlays"].as_u64(), Some(e.overlays.into()));
        assert_eq!(
            r["n_triggered_hits"].as_u64(),
            Some(e.triggered_hits.len() as u64)
        );
        assert_eq!(
            r["n_snapshot_hits"].as_u64(),
            Some(e.snapshot_hits.len() as u64)
        );
        for (h, gh) in e
            .triggered_hits
            .iter()
            .zip(r["triggered_hits_first"].as_array().unwrap())
        {
            assert_eq!(gh["dom_id"].as_u64(), Some(h.dom_id.into()));
            assert_eq!(gh["channel_id"].as_u64(), Some(h.channel_id.into()));
            assert_eq!(gh["time"].as_u64(), Some(h.time.into()));
            assert_eq!(gh["tot"].as_u64(), Some(h.tot.into()));
            assert_eq!(gh["trigger_mask"].as_u64(), Some(h.trigger_mask));
        }
        for (h, gh) in e
            .snapshot_hits
            .iter()
            .zip(r["snapshot_hits_first"].as_array().unwrap())
        {
            assert_eq!(gh["dom_id"].as_u64(), Some(h.dom_id.into()));
            assert_eq!(gh["channel_id"].as_u64(), Some(h.channel_id.into()));
            assert_eq!(gh["time"].as_u64(), Some(h.time.into()));
            assert_eq!(gh["tot"].as_u64(), Some(h.tot.into()));
        }
    }
    let t = &g["events"]["totals"];
    let sum = |f: &dyn Fn(&daq::event::Event) -> u64| events.iter().map(f).sum::<u64>();
    assert_eq!(
        t["triggered_hits"].as_u64(),
        Some(sum(&|e| e.triggered_hits.len() as u64))
    );
    assert_eq!(
        t["snapshot_hits"].as_u64(),
        Some(sum(&|e| e.snapshot_hits.len() as u64))
    );
    assert_eq!(
        t["triggered_sum_time"].as_u64(),
        Some(sum(&|e| e
            .triggered_hits
            .iter()
            .map(|h| u64::from(h.time))
            .sum()))
    );
    assert_eq!(
        t["snapshot_sum_time"].as_u64(),
        Some(sum(&|e| e
            .snapshot_hits
            .iter()
            .map(|h| u64::from(h.time))
            .sum()))
    );
    assert_eq!(
        t["or_of_event_trigger_masks"].as_u64(),
        Some(events.iter().fold(0, |m, e| m | e.trigger_mask))
    );
    let fis: Vec<i64> = events.iter().map(|e| e.header.frame_index.into()).collect();
    assert_eq!(
        t["frame_indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect::<Vec<_>>(),
        fis
    );

    // Summaryslices.
    let slices: Vec<_> = by[&Stream::Summaryslice]
        .iter()
        .map(|f| match f {
            DaqFrame::Summaryslice(s) => s.clone(),
            _ => unreachable!(),
        })
        .collect();
    for r in g["summaryslices"]["headers"].as_array().unwrap() {
        let s = &slices[r["index"].as_u64().unwrap() as usize];
        check_header(&s.header, &r["header"], "summaryslice");
        assert_eq!(r["n_frames"].as_u64(), Some(s.frames.len() as u64));
    }
    for r in g["summaryslices"]["records"].as_array().unwrap() {
        let s = &slices[r["index"].as_u64().unwrap() as usize];
        let gf = r["frames"].as_array().unwrap();
        assert_eq!(gf.len(), s.frames.len());
        for (f, g) in s.frames.iter().zip(gf) {
            let st = &f.status;
            for (k, v) in [
                ("dom_id", f.dom_id),
                ("daq", st.daq),
                ("status", st.status),
                ("fifo", st.fifo),
                ("status_3", st.status_3),
                ("status_4", st.status_4),
            ] {
                assert_eq!(g[k].as_u64(), Some(v.into()), "{k}");
            }
            assert_eq!(
                g["udp_received_packets"].as_u64(),
                Some(st.udp_received_packets().into())
            );
            assert_eq!(
                g["udp_max_sequence_number"].as_u64(),
                Some(st.udp_max_sequence_number().into())
            );
            assert_eq!(g["udp_trailer"].as_bool(), Some(st.udp_trailer()));
            assert_eq!(g["wr_status"].as_bool(), Some(st.wr_status()));
            let hrv: Vec<u64> = st.hrv_channels().map(u64::from).collect();
            assert_eq!(
                g["hrv_channels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect::<Vec<_>>(),
                hrv
            );
            let ff: Vec<u64> = st.fifo_almost_full_channels().map(u64::from).collect();
            assert_eq!(
                g["fifo_almost_full_channels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect::<Vec<_>>(),
                ff
            );
            let raw: Vec<u64> = f.rates.iter().map(|&v| v.into()).collect();
            assert_eq!(
                g["rates_raw"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect::<Vec<_>>(),
                raw
            );
            for (a, b) in f.rates_hz().iter().zip(g["rates_hz"].as_array().unwrap()) {
                assert!(close(*a, b.as_f64().unwrap()), "rate {a} vs {b}");
            }
            assert!(close(f.rate_sum_hz(), g["rate_sum_hz"].as_f64().unwrap()));
        }
    }
    let t = &g["summaryslices"]["totals"];
    let frames: Vec<_> = slices.iter().flat_map(|s| s.frames.iter()).collect();
    assert_eq!(t["frames"].as_u64(), Some(frames.len() as u64));
    assert_eq!(
        t["sum_rates_raw"].as_u64(),
        Some(
            frames
                .iter()
                .flat_map(|f| f.rates.iter())
                .map(|&v| u64::from(v))
                .sum()
        )
    );
    assert_eq!(
        t["sum_dom_ids"].as_u64(),
        Some(frames.iter().map(|f| u64::from(f.dom_id)).sum())
    );
    assert_eq!(
        t["first_frame_index"].as_i64(),
        Some(slices[0].header.frame_index.into())
    );
    assert_eq!(
        t["last_frame_index"].as_i64(),
        Some(slices.last().unwrap().header.frame_index.into())
    );

    // Timeslices.
    for (label, stream) in [("L1", Stream::L1), ("SN", Stream::Sn), ("TS", Stream::Ts)] {
        let gt = &g["timeslices"][label];
        let ts: Vec<_> = by[&stream]
            .iter()
            .map(|f| match f {
                DaqFrame::Timeslice(t) => t.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(gt["tree"].as_str(), Some(stream.tree()));
        for r in gt["records"].as_array().unwrap() {
            let t = &ts[r["index"].as_u64().unwrap() as usize];
            check_header(&t.header, &r["header"], label);
            assert_eq!(
                r["n_frames"].as_u64(),
                Some(t.frames.len() as u64),
                "{label}"
            );
            assert_eq!(r["n_hits"].as_u64(), Some(t.n_hits() as u64), "{label}");
            for (f, gf) in t.frames.iter().zip(r["frames_first"].as_array().unwrap()) {
                assert_eq!(gf["dom_id"].as_u64(), Some(f.dom_id.into()));
                assert_eq!(gf["daq"].as_u64(), Some(f.status.daq.into()));
                assert_eq!(gf["status"].as_u64(), Some(f.status.status.into()));
                assert_eq!(gf["fifo"].as_u64(), Some(f.status.fifo.into()));
                assert_eq!(gf["n_hits"].as_u64(), Some(f.hits.len() as u64));
                for (h, gh) in f.hits.iter().zip(gf["hits_first"].as_array().unwrap()) {
                    assert_eq!(gh["channel_id"].as_u64(), Some(h.channel_id.into()));
                    assert_eq!(gh["time"].as_u64(), Some(h.time.into()));
                    assert_eq!(gh["tot"].as_u64(), Some(h.tot.into()));
                }
            }
        }
        let t = &gt["totals"];
        let hits: Vec<_> = ts
            .iter()
            .flat_map(|t| t.frames.iter())
            .flat_map(|f| f.hits.iter())
            .collect();
        assert_eq!(
            t["frames"].as_u64(),
            Some(ts.iter().map(|t| t.frames.len() as u64).sum())
        );
        assert_eq!(t["hits"].as_u64(), Some(hits.len() as u64));
        assert_eq!(
            t["sum_time"].as_u64(),
            Some(hits.iter().map(|h| u64::from(h.time)).sum())
        );
        assert_eq!(
            t["sum_tot"].as_u64(),
            Some(hits.iter().map(|h| u64::from(h.tot)).sum())
        );
        let fis: Vec<i64> = ts.iter().map(|t| t.header.frame_index.into()).collect();
        assert_eq!(
            t["frame_indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect::<Vec<_>>(),
            fis
        );
    }
}
