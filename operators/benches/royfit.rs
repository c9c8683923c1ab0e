//! royfit throughput: fitted DUs per second on one core for simulated
//! ARCA-230 events (the simulator's muons, showers and K40 background at
//! its default 50 Hz trigger rate), and what share of a core the live
//! rate needs with the site default `fraction = 0.5`.
//!
//!   cargo bench -p km3mon-operators --bench royfit [-- EVENTS]

use std::time::Instant;

use daq::detector::{Detector, GeneratorLayout};
use daq::frame::DaqHeader;
use operators::monitors::reco::event::{fit_event, floor_distance, EventParams};
use operators::monitors::reco::select::SelectParams;
use simulator::event::EventGenerator;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3000);
    let det = Detector::generate_with(160, 230, 18, 31, &GeneratorLayout::arca());
    let mut gen = EventGenerator::new(&det, 1);
    let mut events = Vec::new();
    let (mut counter, mut frame) = (0, 0);
    while events.len() < n {
        frame += 1;
        let header = DaqHeader {
            det_id: 160,
            run: 1,
            frame_index: frame,
            utc_seconds: 1_700_000_000,
            ..DaqHeader::default()
        };
        events.extend(gen.timeslice(header, 50.0, &mut counter, &|_| 200e3, &|_| false));
    }
    let params = EventParams {
        min_doms: 4,
        fraction: 1.0,
        select: SelectParams {
            floor_distance: floor_distance(&det),
            ..SelectParams::default()
        },
        max_iter: 500,
    };
    // Once to warm up, then timed.
    for ev in events.iter().take(200) {
        std::hint::black_box(fit_event(&det, ev, &params, |_| false));
    }
    let start = Instant::now();
    let (mut fitted_events, mut dus, mut hits, mut snapshot) = (0usize, 0usize, 0usize, 0usize);
    for ev in &events {
        snapshot += ev.snapshot_hits.len();
        if let Some(f) = fit_event(&det, ev, &params, |_| false) {
            fitted_events += 1;
            dus += f.fits.len();
            hits += f.fits.iter().map(|(_, d)| d.hits.len()).sum::<usize>();
        }
    }
    let s = start.elapsed().as_secs_f64();
    let per_event = s / events.len() as f64;
    println!(
        "ARCA-230, {} simulator events ({:.0} snapshot hits each), {} passing the cuts, {} DU fits ({:.1} selected hits each)",
        events.len(),
        snapshot as f64 / events.len() as f64,
        fitted_events,
        dus,
        hits as f64 / dus.max(1) as f64
    );
    println!(
        "  {:.0} fitted DUs/s, {:.0} events/s on one core ({:.1} µs per event); load {}",
        dus as f64 / s,
        events.len() as f64 / s,
        1e6 * per_event,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "  at the simulator's 50 Hz: {:.2} % of a core with every event, {:.2} % with fraction = 0.5",
        100.0 * 50.0 * per_event,
        50.0 * per_event * 50.0
    );
}
