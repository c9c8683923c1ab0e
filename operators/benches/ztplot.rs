//! ztplot throughput: events/s through calibration + selection cuts +
//! the top-10 test for events of 100 … 1,000 snapshot hits on a 115-DU
//! detector, and the time to draw one 115-DU z-t plot.
//!
//!   cargo bench -p km3mon-operators --bench ztplot

use std::hint::black_box;
use std::time::Instant;

use daq::detector::Detector;
use daq::event::{Event, SnapshotHit, TriggeredHit};
use daq::frame::DaqHeader;
use operators::monitors::ztplot::draw::{render, ZtFigure};
use operators::monitors::ztplot::hits::{calibrate, passes_cuts};
use operators::monitors::ztplot::selection::{Limits, Sizes};

/// A muon-like event: `n` snapshot hits spread over all DUs, a third of
/// them triggered. Deterministic (xorshift).
fn event(det: &Detector, n: usize, seed: u64) -> Event {
    let doms: Vec<u32> = det.optical_modules().map(|m| m.dom_id).collect();
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let snapshot_hits: Vec<SnapshotHit> = (0..n)
        .map(|_| SnapshotHit {
            dom_id: doms[(rnd() % doms.len() as u64) as usize],
            channel_id: (rnd() % 31) as u8,
            time: 50_000_000 + (rnd() % 3000) as u32,
            tot: (rnd() % 60) as u8,
        })
        .collect();
    let triggered_hits = snapshot_hits
        .iter()
        .step_by(3)
        .map(|h| TriggeredHit {
            dom_id: h.dom_id,
            channel_id: h.channel_id,
            time: h.time,
            tot: h.tot,
            trigger_mask: 16,
        })
        .collect();
    Event {
        version: Some(4),
        header: DaqHeader {
            det_id: 49,
            run: 1,
            frame_index: seed as i32,
            utc_seconds: 1_700_000_000,
            ..Default::default()
        },
        trigger_counter: seed,
        trigger_mask: 16,
        overlays: 3,
        triggered_hits,
        snapshot_hits,
    }
}

fn main() {
    let det = Detector::generate(49, 115, 18, 31);
    let limits = Limits(Sizes {
        overlays: 50,
        n_hits: 2000,
        n_triggered_hits: 800,
    });
    println!("calibration + cuts + top-10 test, 115 DUs (one core):");
    for n in [100usize, 300, 1000] {
        let evs: Vec<Event> = (0..200).map(|i| event(&det, n, i + 1)).collect();
        let start = Instant::now();
        let mut k = 0u64;
        while start.elapsed().as_secs_f64() < 2.0 {
            for e in &evs {
                let pass = passes_cuts(&det, e, 3, 24);
                let cal = calibrate(&det, e);
                let s = Sizes {
                    overlays: e.overlays as i64,
                    n_hits: e.snapshot_hits.len() as i64,
                    n_triggered_hits: e.triggered_hits.len() as i64,
                };
                black_box((pass, cal.hits.len(), limits.is_candidate(&s)));
                k += 1;
            }
        }
        let rate = k as f64 / start.elapsed().as_secs_f64();
        println!("  {n:5} hits/event: {rate:9.0} events/s");
    }
    let e = event(&det, 1000, 7);
    let cal = calibrate(&det, &e);
    let floor_z = {
        let mut ms: Vec<_> = det.modules_of_du(1).filter(|m| m.is_optical()).collect();
        ms.sort_by_key(|m| m.floor);
        ms.iter()
            .filter_map(|m| m.pmt(0))
            .map(|p| p.pos[2])
            .collect()
    };
    let fig = ZtFigure {
        title:
            "z-t-Plot for DetID-49 Run 1, FrameIndex 7, TriggerCounter 7, Overlays 3, Trigger: 3DM"
                .into(),
        subtitle: "2023-11-14 22:13:20 UTC   —   1000 hits (benchmark)".into(),
        hits: &cal.hits,
        floor_z,
        max_z: 200.0,
        ytick_distance: 25.0,
    };
    let path = std::env::temp_dir().join(format!("ztplot-bench-{}.png", std::process::id()));
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        render(&path, &fig).expect("render");
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "z-t plot, 115 DUs, 1000 hits, 1920x1920: median {:.2} s (of 3); {}",
        times[1],
        path.display()
    );
}
