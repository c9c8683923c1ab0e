//! Fits of simulator events against the simulator's truth
//! (`km3mon simulate --truth`). The simulator's light is coarse (the
//! Cherenkov angle from a phase index of 1.35, the travel time from a
//! group index of 1.38, DOM centres instead of PMTs, scattering delays),
//! so these are resolution figures of ROyFit on that light, not of ROyFit
//! itself; BENCHMARKS.md has them next to the spec's level-2/3 numbers.

use daq::detector::Detector;
use daq::frame::DaqHeader;
use simulator::event::EventGenerator;

use super::event::{fit_event, EventParams};
use super::model::Track;
use super::select::SelectParams;

pub struct TruthFigures {
    pub n: usize,
    pub converged: f64,
    pub uz68: f64,
    pub uz_median: f64,
    pub d68: f64,
    pub t068: f64,
}

/// Fits `n_events` simulated events of a generated ORCA-like detector
/// and compares every fitted DU with at least `min_hits` selected hits.
pub fn figures(seed: u64, n_events: usize, min_hits: usize) -> TruthFigures {
    let det = Detector::generate(77, 12, 18, 31);
    let mut gen = EventGenerator::new(&det, seed);
    gen.record_truth();
    let params = EventParams {
        min_doms: 4,
        fraction: 1.0,
        select: SelectParams::default(),
        max_iter: 500,
    };
    let du_xy = |du: u32| {
        let ms: Vec<_> = det.modules_of_du(du).filter(|m| m.is_optical()).collect();
        let n = ms.len() as f64;
        (
            ms.iter().map(|m| m.pos[0]).sum::<f64>() / n,
            ms.iter().map(|m| m.pos[1]).sum::<f64>() / n,
        )
    };
    let (mut duz, mut dd, mut dt0) = (Vec::new(), Vec::new(), Vec::new());
    let mut converged = 0;
    let mut counter = 0;
    let mut frame = 0;
    let mut events = 0;
    while events < n_events {
        frame += 1;
        let header = DaqHeader {
            det_id: 77,
            run: 1,
            frame_index: frame,
            ..DaqHeader::default()
        };
        let evs = gen.timeslice(header, 100.0, &mut counter, &|_| 200e3, &|_| false);
        let truths = gen.take_truths();
        for ev in &evs {
            events += 1;
            let Some(truth) = truths
                .iter()
                .find(|t| t.trigger_counter == ev.trigger_counter)
            else {
                continue;
            };
            let Some(fit) = fit_event(&det, ev, &params, |_| false) else {
                continue;
            };
            let track = Track {
                p: truth.position,
                u: truth.direction,
                t_p: truth.time_ns,
            };
            for (du, f) in &fit.fits {
                if f.hits.len() < min_hits {
                    continue;
                }
                let (x, y) = du_xy(*du);
                let Some(t) = track.single_du(x, y, 0.0) else {
                    continue;
                };
                duz.push(f.params.u_z - t.u_z);
                dd.push(f.params.d - t.d);
                dt0.push(f.params.t0 - t.t0);
                converged += usize::from(f.converged);
            }
        }
    }
    let q = |v: &[f64], p: f64| {
        let mut a: Vec<f64> = v.iter().map(|x| x.abs()).collect();
        a.sort_by(f64::total_cmp);
        a[((a.len() as f64 * p) as usize).min(a.len().saturating_sub(1))]
    };
    let mut s = duz.clone();
    s.sort_by(f64::total_cmp);
    TruthFigures {
        n: duz.len(),
        converged: converged as f64 / duz.len().max(1) as f64,
        uz68: q(&duz, 0.68),
        uz_median: s.get(s.len() / 2).copied().unwrap_or(f64::NAN),
        d68: q(&dd, 0.68),
        t068: q(&dt0, 0.68),
    }
}

#[test]
fn simulator_muons_are_fitted_close_to_their_truth() {
    let f = figures(7, 1500, 6);
    eprintln!(
        "simulator truth: {} DU fits with >= 6 hits, converged {:.1}%, 68% |Δu_z| {:.3}, median Δu_z {:+.3}, 68% |Δd| {:.1} m, 68% |Δt0| {:.1} ns",
        f.n,
        100.0 * f.converged,
        f.uz68,
        f.uz_median,
        f.d68,
        f.t068
    );
    let all = figures(7, 1500, 3);
    eprintln!(
        "simulator truth, every fit (>= 3 hits): {} fits, converged {:.1}%, 68% |Δu_z| {:.3}, median Δu_z {:+.3}, 68% |Δd| {:.1} m, 68% |Δt0| {:.1} ns",
        all.n,
        100.0 * all.converged,
        all.uz68,
        all.uz_median,
        all.d68,
        all.t068
    );
    assert!(f.n > 300, "{} fits", f.n);
    assert!(f.converged > 0.95);
    assert!(f.uz68 < 0.06, "68% |Δu_z| = {}", f.uz68);
    assert!(f.uz_median.abs() < 0.02, "median Δu_z = {}", f.uz_median);
}
