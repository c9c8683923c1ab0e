//! A synthetic shore-station stream for tests and benchmarks: summaryslices,
//! CLB monitoring packets, events and IO_TSSN timeslices of any detector,
//! made with the `daq` encoders and written as one ControlHost recording in
//! data-time order (what `km3mon record` writes), with scripted faults.
//! Deterministic: the same plan gives the same bytes.

use std::io::Write;
use std::path::Path;

use daq::controlhost::{encode_message, Tag};
use daq::detector::Detector;
use daq::event::{trigger, Event, TriggeredHit};
use daq::frame::{DaqHeader, DataType, FrameStatus};
use daq::summary::{SummaryFrame, Summaryslice};
use daq::timeslice::{SuperFrame, Timeslice};
use daq::tmch::TmchPacket;

/// Time-sync OK (bit 31 of a frame's status word).
const SYNC: u32 = 0x8000_0000;

/// What to generate; times are seconds from `start_s`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub start_s: u64,
    pub seconds: u64,
    pub run: i32,
    /// Summaryslices per second (one per 100 ms timeslice: 10).
    pub sum_hz: u32,
    /// Monitoring packets per DOM per second (10 on a real detector).
    pub monit_hz: u32,
    pub events_hz: u32,
    /// IO_TSSN timeslices per second (0 = none).
    pub tssn_hz: u32,
    /// Hits per event, spread over consecutive DOMs.
    pub hits_per_event: usize,
    /// (DOM, from, to): absent from summaryslices and monitoring.
    pub silent: Vec<(u32, u64, u64)>,
    /// (DOM, from, to): time-sync bit cleared.
    pub unsynced: Vec<(u32, u64, u64)>,
    /// (from, to): no events.
    pub no_events: Vec<(u64, u64)>,
}

impl Plan {
    pub fn new(start_s: u64, seconds: u64) -> Plan {
        Plan {
            start_s,
            seconds,
            run: 1,
            sum_hz: 10,
            monit_hz: 10,
            events_hz: 100,
            tssn_hz: 0,
            hits_per_event: 30,
            silent: Vec::new(),
            unsynced: Vec::new(),
            no_events: Vec::new(),
        }
    }
}

fn within(spans: &[(u32, u64, u64)], dom: u32, t_ns: u64) -> bool {
    spans
        .iter()
        .any(|&(d, a, b)| d == dom && t_ns >= a * 1_000_000_000 && t_ns < b * 1_000_000_000)
}

fn header(det_id: i32, run: i32, ns: u64) -> DaqHeader {
    DaqHeader {
        det_id,
        run,
        frame_index: (ns / 100_000_000 % 1_000_000_000) as i32,
        utc_seconds: (ns / 1_000_000_000) as u32,
        wr_status_msb: false,
        utc_16ns_ticks: (ns % 1_000_000_000 / 16) as u32,
    }
}

/// A small deterministic hash for plausible-looking rates.
fn mix(a: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 32
}

/// Writes the stream to `path`; returns the number of messages.
pub fn write_recording(path: &Path, det: &Detector, plan: &Plan) -> std::io::Result<u64> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let doms: Vec<u32> = det.optical_modules().map(|m| m.dom_id).collect();
    let det_id = det.det_id();
    let tag = |t: &str| Tag::new(t).expect("valid tag");
    let (sum, monit, evt, tssn) = (
        tag("IO_SUM"),
        tag("IO_MONIT"),
        tag("IO_EVT"),
        tag("IO_TSSN"),
    );
    let start_ns = plan.start_s * 1_000_000_000;
    let mut n = 0u64;
    let mut buf = Vec::new();
    let mut counter = 0u64;
    // Everything is emitted per 10 ms step, in time order.
    let step_ns = 10_000_000u64;
    let every = |hz: u32| {
        if hz == 0 {
            u64::MAX
        } else {
            1_000_000_000 / u64::from(hz)
        }
    };
    for k in 0..plan.seconds * 100 {
        let ns = start_ns + k * step_ns;
        let rel = ns - start_ns;
        let status = |dom: u32| {
            if within(&plan.unsynced, dom, rel) {
                0
            } else {
                SYNC
            }
        };
        if rel.is_multiple_of(every(plan.sum_hz)) {
            let s = Summaryslice {
                version: Some(6),
                header: header(det_id, plan.run, ns),
                frames: doms
                    .iter()
                    .filter(|d| !within(&plan.silent, **d, rel))
                    .map(|&dom_id| SummaryFrame {
                        dom_id,
                        status: FrameStatus {
                            daq: (28 << 16) | 29,
                            status: status(dom_id),
                            fifo: SYNC,
                            ..FrameStatus::default()
                        },
                        rates: std::array::from_fn(|c| {
                            60 + (mix(u64::from(dom_id) ^ c as u64) % 12) as u8
                        }),
                    })
                    .collect(),
            };
            buf.clear();
            s.encode_into(&mut buf);
            out.write_all(&encode_message(sum, &buf))?;
            n += 1;
        }
        if plan.tssn_hz > 0 && rel.is_multiple_of(every(plan.tssn_hz)) {
            let t = Timeslice {
                version: Some(1),
                data_type: DataType::TimesliceSn,
                header: header(det_id, plan.run, ns),
                frames: doms
                    .iter()
                    .filter(|d| !within(&plan.silent, **d, rel))
                    .map(|&dom_id| SuperFrame {
                        header: header(det_id, plan.run, ns),
                        dom_id,
                        status: FrameStatus {
                            status: status(dom_id),
                            ..FrameStatus::default()
                        },
                        hits: Vec::new(),
                    })
                    .collect(),
            };
            out.write_all(&encode_message(tssn, &t.encode()))?;
            n += 1;
        }
        if rel.is_multiple_of(every(plan.monit_hz)) {
            for &dom_id in &doms {
                if within(&plan.silent, dom_id, rel) {
                    continue;
                }
                let base = 600 + (mix(u64::from(dom_id)) % 300) as u32;
                let p = TmchPacket {
                    run: plan.run as u32,
                    udp_sequence_number: (rel / 100_000_000) as u32,
                    utc_seconds: (ns / 1_000_000_000) as u32,
                    utc_16ns_ticks: (ns % 1_000_000_000 / 16) as u32,
                    dom_id,
                    dom_status: [0; 4],
                    counts: std::array::from_fn(|c| {
                        base + (mix(u64::from(dom_id) * 31 + c as u64) % 200) as u32
                    }),
                    hrvbmp: if mix(u64::from(dom_id)).is_multiple_of(50) {
                        1 << 5
                    } else {
                        0
                    },
                    flags: 3 << 1,
                    yaw: 0.0,
                    pitch: 0.0,
                    roll: 0.0,
                    a: [0.0; 3],
                    g: [0.0; 3],
                    h: [0.0; 3],
                    temperature_raw: 2500,
                    humidity_raw: 1000,
                    tdcfull: 0,
                    aesfull: 0,
                    flushc: 0,
                    ts_duration: Some(100_000),
                    tdc_supertime_fifo_size: Some(0),
                    aes_supertime_fifo_size: Some(0),
                    trailing: Default::default(),
                };
                buf.clear();
                p.encode_into(&mut buf);
                out.write_all(&encode_message(monit, &buf))?;
                n += 1;
            }
        }
        let quiet = plan
            .no_events
            .iter()
            .any(|&(a, b)| rel >= a * 1_000_000_000 && rel < b * 1_000_000_000);
        if rel.is_multiple_of(every(plan.events_hz)) && !quiet && !doms.is_empty() {
            counter += 1;
            let first = (mix(counter) as usize) % doms.len();
            let hits: Vec<TriggeredHit> = (0..plan.hits_per_event)
                .map(|i| TriggeredHit {
                    dom_id: doms[(first + i / 3) % doms.len()],
                    channel_id: (i % 31) as u8,
                    time: 1000 + i as u32 * 7,
                    tot: 26,
                    trigger_mask: trigger::MUON_3D,
                })
                .collect();
            let mut mask = trigger::MUON_3D;
            if counter.is_multiple_of(3) {
                mask |= trigger::SHOWER_3D;
            }
            if counter.is_multiple_of(5) {
                mask |= trigger::SHOWER_MX;
            }
            let e = Event {
                version: Some(4),
                header: header(det_id, plan.run, ns),
                trigger_counter: counter,
                trigger_mask: mask,
                overlays: 0,
                snapshot_hits: hits.iter().map(TriggeredHit::snapshot).collect(),
                triggered_hits: hits,
            };
            out.write_all(&encode_message(evt, &e.encode()))?;
            n += 1;
        }
    }
    out.flush()?;
    Ok(n)
}
