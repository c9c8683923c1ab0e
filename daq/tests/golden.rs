//! Every sample dump decoded and compared with its golden decoding
//! (testdata/README.md): integers exactly, rates to 1e-12 relative, AHRS
//! floats exactly after widening to f64. Also: every frame re-encodes to
//! its exact bytes.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use daq::dump::{DumpReader, Payload, Record};
use daq::event::{Event, SnapshotHit, TriggeredHit};
use daq::frame::{decode_frame, peek_header, DaqFrame, DaqHeader, DataType, FrameStatus, Preamble};
use daq::summary::Summaryslice;
use daq::timeslice::{Timeslice, TimesliceView};
use daq::tmch::TmchPacket;
use serde_json::Value;

fn dump(name: &str) -> PathBuf {
    common::testdata().join("daq").join(name)
}

/// The golden of a dump; `None` (test skipped with a note) where the test
/// data comes from the PyPI package, which has no goldens.
fn golden(name: &str) -> Option<Value> {
    let path = common::testdata()
        .join("golden")
        .join(format!("{name}.golden.json"));
    if !path.exists() {
        eprintln!("no golden file {}: comparison skipped", path.display());
        return None;
    }
    let text = std::fs::read_to_string(&path).expect("read golden");
    Some(serde_json::from_str(&text).expect("golden is JSON"))
}

fn records(name: &str) -> Vec<Record> {
    DumpReader::open(dump(name))
        .expect("open sample")
        .collect::<Result<Vec<_>, _>>()
        .expect("sample dumps read without errors")
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn assert_rel(actual: f64, expected: f64, tol: f64, what: &str) {
    let scale = expected.abs().max(f64::MIN_POSITIVE);
    assert!(
        (actual - expected).abs() / scale <= tol || actual == expected,
        "{what}: {actual} vs golden {expected}"
    );
}

fn check_preamble(g: &Value, payload: &[u8]) {
    let p = Preamble::decode(payload).unwrap();
    assert_eq!(u64::from(p.length), u(&g["length"]));
    assert_eq!(i64::from(p.data_type.as_i32()), i(&g["data_type"]));
    assert_eq!(p.length as usize, payload.len());
}

fn check_header(g: &Value, h: &DaqHeader) {
    assert_eq!(i64::from(h.det_id), i(&g["det_id"]));
    assert_eq!(i64::from(h.run), i(&g["run"]));
    assert_eq!(i64::from(h.frame_index), i(&g["frame_index"]));
    assert_eq!(u64::from(h.utc_seconds), u(&g["utc_seconds"]));
    assert_eq!(u64::from(h.wr_status_msb), u(&g["wr_status_msb"]));
    assert_eq!(u64::from(h.utc_16ns_ticks), u(&g["utc_16ns_ticks"]));
    assert_eq!(h.utc_nanoseconds(), u(&g["utc_nanoseconds"]));
}

fn check_version(g: &Value, version: Option<i16>) {
    match version {
        Some(v) => assert_eq!(i64::from(v), i(g)),
        None => assert!(g.is_null()),
    }
}

fn channels(g: &Value) -> Vec<u8> {
    g.as_array().unwrap().iter().map(|c| u(c) as u8).collect()
}

/// The status words and derived flags shared by summary frames and
/// super-frames.
fn check_status(g: &Value, s: &FrameStatus) {
    assert_eq!(u64::from(s.daq), u(&g["daq"]));
    assert_eq!(u64::from(s.status), u(&g["status"]));
    assert_eq!(u64::from(s.fifo), u(&g["fifo"]));
    assert_eq!(u64::from(s.status_3), u(&g["status_3"]));
    assert_eq!(u64::from(s.status_4), u(&g["status_4"]));
    assert_eq!(
        u64::from(s.udp_received_packets()),
        u(&g["udp_received_packets"])
    );
    assert_eq!(
        u64::from(s.udp_max_sequence_number()),
        u(&g["udp_max_sequence_number"])
    );
    assert_eq!(s.udp_complete(), g["udp_complete"].as_bool().unwrap());
    assert_eq!(s.udp_trailer(), g["udp_trailer"].as_bool().unwrap());
    assert_eq!(s.wr_status(), g["wr_status"].as_bool().unwrap());
    assert_eq!(
        s.hrv_channels().collect::<Vec<_>>(),
        channels(&g["hrv_channels"])
    );
    assert_eq!(
        s.fifo_almost_full_channels().collect::<Vec<_>>(),
        channels(&g["fifo_almost_full_channels"])
    );
    assert_eq!(
        s.any_hrv(),
        !g["hrv_channels"].as_array().unwrap().is_empty()
    );
}

fn count_per_dom(doms: impl Iterator<Item = u32>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for dom in doms {
        *counts.entry(dom.to_string()).or_insert(0) += 1;
    }
    counts
}

fn golden_counts(g: &Value) -> BTreeMap<String, u64> {
    g.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), u(v)))
        .collect()
}

fn check_triggered(g: &Value, h: &TriggeredHit) {
    assert_eq!(u64::from(h.dom_id), u(&g["dom_id"]));
    assert_eq!(u64::from(h.channel_id), u(&g["channel_id"]));
    assert_eq!(u64::from(h.time), u(&g["time"]));
    assert_eq!(u64::from(h.tot), u(&g["tot"]));
    assert_eq!(h.trigger_mask, u(&g["trigger_mask"]));
}

fn check_snapshot(g: &Value, h: &SnapshotHit, triggered: &HashSet<SnapshotHit>) {
    assert_eq!(u64::from(h.dom_id), u(&g["dom_id"]));
    assert_eq!(u64::from(h.channel_id), u(&g["channel_id"]));
    assert_eq!(u64::from(h.time), u(&g["time"]));
    assert_eq!(u64::from(h.tot), u(&g["tot"]));
    assert_eq!(triggered.contains(h), g["triggered"].as_bool().unwrap());
}

/// First and last five elements, as the goldens list them.
fn ends<T>(items: &[T]) -> (&[T], &[T]) {
    let n = items.len().min(5);
    (&items[..n], &items[items.len() - n..])
}

fn check_event(g: &Value, record: &Record, e: &Event) {
    check_preamble(&g["preamble"], &record.payload);
    check_version(&g["version"], e.version);
    check_header(&g["header"], &e.header);
    assert_eq!(e.trigger_counter, u(&g["trigger_counter"]));
    assert_eq!(e.trigger_mask, u(&g["trigger_mask"]));
    assert_eq!(u64::from(e.overlays), u(&g["overlays"]));
    let bits = &g["trigger_bits"];
    assert_eq!(e.is_3d_shower(), bits["3dshower_bit1"].as_bool().unwrap());
    assert_eq!(e.is_mx_shower(), bits["mxshower_bit2"].as_bool().unwrap());
    assert_eq!(e.is_3d_muon(), bits["3dmuon_bit4"].as_bool().unwrap());
    assert_eq!(
        e.is_nanobeacon(),
        bits["nanobeacon_bit5"].as_bool().unwrap()
    );
    assert_eq!(
        e.hit_factory_limit(),
        bits["factory_limit_bit31"].as_bool().unwrap()
    );
    assert_eq!(e.triggered_hits.len() as u64, u(&g["n_triggered_hits"]));
    assert_eq!(e.snapshot_hits.len() as u64, u(&g["n_snapshot_hits"]));

    let gt = &g["triggered_hits"];
    let (first, last) = ends(&e.triggered_hits);
    for (gh, h) in gt["first"].as_array().unwrap().iter().zip(first) {
        check_triggered(gh, h);
    }
    for (gh, h) in gt["last"].as_array().unwrap().iter().zip(last) {
        check_triggered(gh, h);
    }
    assert_eq!(gt["first"].as_array().unwrap().len(), first.len());
    assert_eq!(gt["last"].as_array().unwrap().len(), last.len());
    let sum_time: u64 = e.triggered_hits.iter().map(|h| u64::from(h.time)).sum();
    let sum_tot: u64 = e.triggered_hits.iter().map(|h| u64::from(h.tot)).sum();
    let or_masks = e
        .triggered_hits
        .iter()
        .fold(0, |acc, h| acc | h.trigger_mask);
    assert_eq!(sum_time, u(&gt["sum_time"]));
    assert_eq!(sum_tot, u(&gt["sum_tot"]));
    assert_eq!(or_masks, u(&gt["or_of_trigger_masks"]));
    assert_eq!(
        count_per_dom(e.triggered_hits.iter().map(|h| h.dom_id)),
        golden_counts(&gt["count_per_dom"])
    );

    let triggered: HashSet<SnapshotHit> = e
        .triggered_hits
        .iter()
        .map(TriggeredHit::snapshot)
        .collect();
    let gs = &g["snapshot_hits"];
    let (first, last) = ends(&e.snapshot_hits);
    for (gh, h) in gs["first"].as_array().unwrap().iter().zip(first) {
        check_snapshot(gh, h, &triggered);
    }
    for (gh, h) in gs["last"].as_array().unwrap().iter().zip(last) {
        check_snapshot(gh, h, &triggered);
    }
    let sum_time: u64 = e.snapshot_hits.iter().map(|h| u64::from(h.time)).sum();
    let sum_tot: u64 = e.snapshot_hits.iter().map(|h| u64::from(h.tot)).sum();
    let flagged = e
        .snapshot_hits
        .iter()
        .filter(|h| triggered.contains(h))
        .count();
    assert_eq!(sum_time, u(&gs["sum_time"]));
    assert_eq!(sum_tot, u(&gs["sum_tot"]));
    assert_eq!(flagged as u64, u(&gs["n_flagged_triggered"]));
    assert_eq!(
        count_per_dom(e.snapshot_hits.iter().map(|h| h.dom_id)),
        golden_counts(&gs["count_per_dom"])
    );
}

#[test]
fn events_match_golden() {
    let records = records("IO_EVT.dat");
    assert_eq!(records.len(), 3);
    let Some(golden) = golden("IO_EVT") else {
        return;
    };
    assert_eq!(u(&golden["n_records"]), 3);
    for (g, record) in golden["records"].as_array().unwrap().iter().zip(&records) {
        assert_eq!(record.offset, u(&g["byte_offset"]));
        assert_eq!(record.tag.map(|t| t.to_string()).as_deref(), Some("IO_EVT"));
        let Payload::Frame(DaqFrame::Event(e)) = record.decode().unwrap() else {
            panic!("not an event")
        };
        check_event(g, record, &e);
    }
}

#[test]
fn summaryslices_match_golden() {
    let records = records("IO_SUM.dat");
    assert_eq!(records.len(), 3);
    let Some(golden) = golden("IO_SUM") else {
        return;
    };
    let mut n_frames = 0;
    for (g, record) in golden["records"].as_array().unwrap().iter().zip(&records) {
        assert_eq!(record.offset, u(&g["byte_offset"]));
        let s = Summaryslice::decode(&record.payload).unwrap();
        check_preamble(&g["preamble"], &record.payload);
        check_version(&g["version"], s.version);
        check_header(&g["header"], &s.header);
        assert_eq!(s.frames.len() as u64, u(&g["n_frames"]));
        let frames = g["frames"].as_array().unwrap();
        assert_eq!(frames.len(), s.frames.len());
        for (gf, frame) in frames.iter().zip(&s.frames) {
            assert_eq!(u64::from(frame.dom_id), u(&gf["dom_id"]));
            check_status(gf, &frame.status);
            let raw: Vec<u64> = frame.rates.iter().map(|&r| u64::from(r)).collect();
            let graw: Vec<u64> = gf["rates_raw"].as_array().unwrap().iter().map(u).collect();
            assert_eq!(raw, graw);
            let hz = frame.rates_hz();
            let ghz = gf["rates_hz"].as_array().unwrap();
            assert_eq!(ghz.len(), hz.len());
            for (ch, (rate, grate)) in hz.iter().zip(ghz).enumerate() {
                assert_rel(
                    *rate,
                    f(grate),
                    1e-12,
                    &format!("DOM {} channel {ch}", frame.dom_id),
                );
                assert_eq!(*rate, daq::summary::rate_hz(frame.rates[ch]));
            }
            assert_rel(
                frame.rate_sum_hz(),
                f(&gf["rate_sum_hz"]),
                1e-12,
                "rate sum",
            );
            n_frames += 1;
        }
    }
    assert_eq!(n_frames, 33 + 69 + 69);
}

#[test]
fn timeslices_match_golden() {
    let records = records("IO_TSSN.dat");
    assert_eq!(records.len(), 3);
    let Some(golden) = golden("IO_TSSN") else {
        return;
    };
    for (g, record) in golden["records"].as_array().unwrap().iter().zip(&records) {
        assert_eq!(record.offset, u(&g["byte_offset"]));
        let view = TimesliceView::new(&record.payload).unwrap();
        let owned = Timeslice::decode(&record.payload).unwrap();
        assert_eq!(view.to_timeslice(), owned);
        check_preamble(&g["preamble"], &record.payload);
        assert_eq!(owned.data_type, DataType::TimesliceSn);
        check_version(&g["version"], owned.version);
        check_header(&g["header"], &owned.header);
        assert_eq!(owned.frames.len() as u64, u(&g["n_frames"]));
        assert_eq!(view.n_hits() as u64, u(&g["n_hits_total"]));

        // Hits of the whole timeslice in file order, with their DOM.
        let all: Vec<(u32, daq::timeslice::Hit)> = owned
            .frames
            .iter()
            .flat_map(|f| f.hits.iter().map(move |h| (f.dom_id, *h)))
            .collect();
        let (first, last) = ends(&all);
        for (list, gl) in [(first, &g["hits_first"]), (last, &g["hits_last"])] {
            let gl = gl.as_array().unwrap();
            assert_eq!(gl.len(), list.len());
            for (gh, (dom, h)) in gl.iter().zip(list) {
                assert_eq!(u64::from(*dom), u(&gh["dom_id"]));
                assert_eq!(u64::from(h.channel_id), u(&gh["channel_id"]));
                assert_eq!(u64::from(h.time), u(&gh["time"]));
                assert_eq!(u64::from(h.tot), u(&gh["tot"]));
            }
        }
        let sum_time: u64 = all.iter().map(|(_, h)| u64::from(h.time)).sum();
        let sum_tot: u64 = all.iter().map(|(_, h)| u64::from(h.tot)).sum();
        assert_eq!(sum_time, u(&g["hits_sum_time"]));
        assert_eq!(sum_tot, u(&g["hits_sum_tot"]));
        let invalid = view
            .frames()
            .filter(|f| !f.status().time_sync_valid())
            .count();
        assert_eq!(invalid as u64, u(&g["n_time_sync_invalid"]));

        let frames = g["frames"].as_array().unwrap();
        assert_eq!(frames.len(), view.n_frames());
        for (gf, frame) in frames.iter().zip(view.frames()) {
            assert_eq!(record.offset + frame.offset() as u64, u(&gf["byte_offset"]));
            assert_eq!(frame.length() as u64, u(&gf["preamble"]["length"]));
            assert_eq!(i(&gf["preamble"]["data_type"]), 101);
            check_header(&gf["header"], frame.header());
            assert_eq!(u64::from(frame.dom_id()), u(&gf["dom_id"]));
            check_status(gf, frame.status());
            assert_eq!(
                frame.status().time_sync_valid(),
                gf["time_sync_valid"].as_bool().unwrap()
            );
            let hits = frame.hits();
            assert_eq!(hits.len() as u64, u(&gf["n_hits"]));
            let sum_time: u64 = hits.iter().map(|h| u64::from(h.time)).sum();
            let sum_tot: u64 = hits.iter().map(|h| u64::from(h.tot)).sum();
            assert_eq!(sum_time, u(&gf["hits_sum_time"]));
            assert_eq!(sum_tot, u(&gf["hits_sum_tot"]));
            let mut per_channel = BTreeMap::new();
            for h in hits.iter() {
                *per_channel.entry(h.channel_id.to_string()).or_insert(0u64) += 1;
            }
            assert_eq!(per_channel, golden_counts(&gf["hits_per_channel"]));
            for k in 0..hits.len() {
                assert_eq!(hits.get(k), hits.iter().nth(k));
            }
            assert_eq!(hits.get(hits.len()), None);
        }
    }
}

fn f32s(g: &Value) -> Vec<f64> {
    g.as_array().unwrap().iter().map(f).collect()
}

#[test]
fn tmch_packets_match_golden() {
    let records = records("IO_MONIT.dat");
    assert_eq!(records.len(), 6);
    let Some(golden) = golden("IO_MONIT") else {
        return;
    };
    for (g, record) in golden["records"].as_array().unwrap().iter().zip(&records) {
        assert_eq!(record.offset, u(&g["byte_offset"]));
        assert_eq!(record.payload.len() as u64, u(&g["length_prefix"]));
        assert_eq!(
            record.tag.map(|t| t.to_string()).as_deref(),
            Some("IO_MONIT")
        );
        assert_eq!(
            &record.payload[..4],
            g["data_type"].as_str().unwrap().as_bytes()
        );
        let p = TmchPacket::decode(&record.payload).unwrap();
        assert_eq!(u64::from(p.run), u(&g["run"]));
        assert_eq!(
            u64::from(p.udp_sequence_number),
            u(&g["udp_sequence_number"])
        );
        assert_eq!(u64::from(p.utc_seconds), u(&g["utc_seconds"]));
        assert_eq!(p.nanoseconds(), u(&g["nanoseconds"]));
        assert_eq!(u64::from(p.dom_id), u(&g["dom_id"]));
        for (k, word) in p.dom_status.iter().enumerate() {
            assert_eq!(u64::from(*word), u(&g[format!("dom_status_{k}")]));
        }
        let counts: Vec<u64> = p.counts.iter().map(|&c| u64::from(c)).collect();
        let gcounts: Vec<u64> = g["pmt_raw_counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(u)
            .collect();
        assert_eq!(counts, gcounts);
        assert_eq!(p.pmt_rates_hz().to_vec(), f32s(&g["pmt_rates_hz"]));
        assert_eq!(u64::from(p.hrvbmp), u(&g["hrvbmp"]));
        assert_eq!(
            p.hrv_channels().collect::<Vec<_>>(),
            channels(&g["hrv_channels"])
        );
        assert_eq!(u64::from(p.flags), u(&g["flags"]));
        assert_eq!(p.ahrs_valid(), g["ahrs_valid"].as_bool().unwrap());
        assert_eq!(
            u64::from(p.structure_version_code()),
            u(&g["structure_version_bits"])
        );
        // Code 1 → version 2 in both the spec's table and km3pipe.
        assert_eq!(p.structure_version().map(u64::from), Some(u(&g["version"])));
        assert_eq!(f64::from(p.yaw), f(&g["yaw"]));
        assert_eq!(f64::from(p.pitch), f(&g["pitch"]));
        assert_eq!(f64::from(p.roll), f(&g["roll"]));
        assert_eq!(p.a.map(f64::from).to_vec(), f32s(&g["A"]));
        assert_eq!(p.g.map(f64::from).to_vec(), f32s(&g["G"]));
        assert_eq!(p.h.map(f64::from).to_vec(), f32s(&g["H"]));
        assert_eq!(p.temperature_c(), f(&g["temp"]));
        assert_eq!(p.humidity_percent(), f(&g["humidity"]));
        assert_eq!(u64::from(p.tdcfull), u(&g["tdcfull"]));
        assert_eq!(u64::from(p.aesfull), u(&g["aesfull"]));
        assert_eq!(u64::from(p.flushc), u(&g["flushc"]));
        assert_eq!(p.ts_duration.map(u64::from), g.get("ts_duration_ms").map(u));
        assert_eq!(
            p.tdc_supertime_fifo_size.map(u64::from),
            g.get("tdc_supertime_fifo_size").map(u)
        );
        assert_eq!(
            p.aes_supertime_fifo_size.map(u64::from),
            g.get("aes_supertime_fifo_size").map(u)
        );
        let trailing: String = p.trailing.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(trailing, g["unparsed_trailing_bytes_hex"].as_str().unwrap());
        assert_eq!(
            p.encoded_len() - p.trailing.len(),
            u(&g["bytes_consumed_by_km3pipe"]) as usize
        );
    }
}

/// encode(decode(bytes)) == bytes for every frame and packet of every sample.
#[test]
fn every_sample_frame_reencodes_byte_identically() {
    for name in ["IO_EVT.dat", "IO_SUM.dat", "IO_TSSN.dat"] {
        for record in records(name) {
            let frame = decode_frame(&record.payload).unwrap();
            assert_eq!(frame.encode(), record.payload, "{name} @ {}", record.offset);
            let header = peek_header(&record.payload).unwrap();
            assert_eq!(&header, frame.header());
            assert_eq!(record.utc_ns(), Some(header.utc_ns()));
            match &frame {
                DaqFrame::Event(e) => assert_eq!(e.encoded_len(), record.payload.len()),
                DaqFrame::Summaryslice(s) => assert_eq!(s.encoded_len(), record.payload.len()),
                DaqFrame::Timeslice(t) => assert_eq!(t.encoded_len(), record.payload.len()),
            }
        }
    }
    for record in records("IO_MONIT.dat") {
        let packet = TmchPacket::decode(&record.payload).unwrap();
        assert_eq!(packet.encode(), record.payload);
        assert_eq!(packet.encoded_len(), 244);
        assert_eq!(record.utc_ns(), Some(packet.utc_ns()));
    }
}

/// The first-event bytes quoted in the spec (§2.3, §3.2).
#[test]
fn first_event_matches_spec_example() {
    let record = &records("IO_EVT.dat")[0];
    let e = Event::decode(&record.payload).unwrap();
    assert_eq!(e.version, Some(4));
    assert_eq!(e.header.utc_nanoseconds(), 300_000_000);
    assert_eq!(e.triggered_hits.len(), 182);
    assert_eq!(e.snapshot_hits.len(), 239);
    let h = e.triggered_hits[0];
    assert_eq!(
        (h.dom_id, h.channel_id, h.time, h.tot, h.trigger_mask),
        (806451572, 23, 40_380_598, 27, 4)
    );
}

/// Legacy (pre-version-field) forms of the samples, made by cutting the
/// version out of the bytes: decoded per frame with no flag (§2.2), also
/// when the det_id's low bytes equal the version value.
#[test]
fn legacy_forms_of_the_samples() {
    for name in ["IO_EVT.dat", "IO_SUM.dat", "IO_TSSN.dat"] {
        for record in records(name) {
            let versioned = decode_frame(&record.payload).unwrap();
            // Events and timeslices: legacy = the same bytes without the
            // two version bytes (§3.1, §5.1).
            if !matches!(versioned, DaqFrame::Summaryslice(_)) {
                let mut legacy = record.payload.clone();
                legacy.drain(8..10);
                let len = legacy.len() as i32;
                legacy[..4].copy_from_slice(&len.to_le_bytes());
                let decoded = decode_frame(&legacy).unwrap();
                assert_eq!(decoded.version(), None);
                assert_eq!(decoded.header(), versioned.header());
                assert_eq!(decoded.encode(), legacy);
            }
            // Every type, with a det_id equal to its version value.
            let mut frame = versioned.clone();
            let version = frame.version().unwrap();
            match &mut frame {
                DaqFrame::Event(e) => {
                    e.version = None;
                    e.header.det_id = i32::from(version);
                }
                DaqFrame::Summaryslice(s) => {
                    s.version = None;
                    s.header.det_id = i32::from(version);
                    for f in &mut s.frames {
                        f.status = FrameStatus {
                            status: f.status.status,
                            ..FrameStatus::default()
                        };
                    }
                }
                DaqFrame::Timeslice(t) => {
                    t.version = None;
                    t.header.det_id = i32::from(version);
                }
            }
            let bytes = frame.encode();
            assert_eq!(i16::from_le_bytes([bytes[8], bytes[9]]), version);
            assert_eq!(decode_frame(&bytes).unwrap(), frame, "{name}");
            if let DaqFrame::Summaryslice(s) = &frame {
                assert_eq!(bytes.len(), 32 + 39 * s.frames.len());
            }
        }
    }
}
