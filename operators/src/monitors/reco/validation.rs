//! The validation recipe of spec `reco.md` §7, levels 2 and 3, on
//! generated hits with a fixed seed, against the spec's acceptance
//! figures. The statistics are over every fitted event, converged or not.

use simulator::rng::Rng;

use super::fit::{fit, fit_from, DuFit};
use super::model::SingleDuParams;
use super::select::{select, RecoHit, SelectParams};
use daq::detector::slew;

const EVENTS: usize = 3000;

fn truth(rng: &mut Rng) -> SingleDuParams {
    SingleDuParams {
        u_z: rng.uniform(-0.98, -0.3),
        d: rng.uniform(5.0, 50.0),
        z_c: rng.uniform(20.0, 150.0),
        phi: 0.0,
        t0: 10_000.0,
    }
}

fn hit(floor: i32, t: f64, triggered: bool) -> RecoHit {
    RecoHit {
        dom_id: 800 + floor as u32,
        floor,
        channel: 0,
        t,
        tot: 26,
        z: 9.0 * f64::from(floor),
        alpha: 0.0,
        triggered,
    }
}

/// |x| quantile.
fn abs_quantile(v: &[f64], q: f64) -> f64 {
    let mut a: Vec<f64> = v.iter().map(|x| x.abs()).collect();
    a.sort_by(f64::total_cmp);
    a[((a.len() as f64 * q) as usize).min(a.len() - 1)]
}

fn median(v: &[f64]) -> f64 {
    let mut a = v.to_vec();
    a.sort_by(f64::total_cmp);
    a[a.len() / 2]
}

pub struct Figures {
    pub n: usize,
    pub converged: f64,
    pub uz68: f64,
    pub uz_bias: f64,
    pub uz_within_01: f64,
    pub d68: f64,
    pub d_bias: f64,
    pub zc68: f64,
    pub t068: f64,
    pub uz68_near: f64,
    pub at_bound: f64,
}

fn figures(fits: &[(SingleDuParams, DuFit)]) -> Figures {
    let duz: Vec<f64> = fits.iter().map(|(t, f)| f.params.u_z - t.u_z).collect();
    let dd: Vec<f64> = fits.iter().map(|(t, f)| f.params.d - t.d).collect();
    let near: Vec<f64> = fits
        .iter()
        .filter(|(t, _)| t.d < 20.0)
        .map(|(t, f)| f.params.u_z - t.u_z)
        .collect();
    let n = fits.len() as f64;
    Figures {
        n: fits.len(),
        converged: fits.iter().filter(|(_, f)| f.converged).count() as f64 / n,
        uz68: abs_quantile(&duz, 0.68),
        uz_bias: median(&duz),
        uz_within_01: duz.iter().filter(|x| x.abs() < 0.1).count() as f64 / n,
        d68: abs_quantile(&dd, 0.68),
        d_bias: median(&dd),
        zc68: abs_quantile(
            &fits
                .iter()
                .map(|(t, f)| f.params.z_c - t.z_c)
                .collect::<Vec<_>>(),
            0.68,
        ),
        t068: abs_quantile(
            &fits
                .iter()
                .map(|(t, f)| f.params.t0 - t.t0)
                .collect::<Vec<_>>(),
            0.68,
        ),
        uz68_near: abs_quantile(&near, 0.68),
        at_bound: fits.iter().filter(|(_, f)| f.at_bound).count() as f64 / n,
    }
}

/// Level 2: one clean hit per floor (d_γ < 100 m), 2.5 ns jitter.
pub fn level2(seed: u64) -> Figures {
    let mut rng = Rng::new(seed, 2);
    let mut fits = Vec::new();
    while fits.len() < EVENTS {
        let tr = truth(&mut rng);
        let hits: Vec<RecoHit> = (1..=18)
            .filter_map(|f| {
                let z = 9.0 * f64::from(f);
                let t = tr.arrival_time(z) + slew(26) + 2.5 * rng.normal();
                (tr.d_gamma(z) < 100.0).then(|| hit(f, t, true))
            })
            .collect();
        if hits.len() < 5 {
            continue;
        }
        if let Some(f) = fit(&hits, &hits, 500) {
            fits.push((tr, f));
        }
    }
    figures(&fits)
}

/// Level 3: Poisson signal photons, noise hits, the full selection.
pub fn level3(seed: u64, noise_per_floor: f64) -> Figures {
    let mut rng = Rng::new(seed, 3);
    let mut fits = Vec::new();
    let p = SelectParams::default();
    while fits.len() < EVENTS {
        let tr = truth(&mut rng);
        let mut hits = Vec::new();
        let mut triggered_floors = 0;
        for f in 1..=18 {
            let z = 9.0 * f64::from(f);
            let dg = tr.d_gamma(z);
            let k = rng.poisson(150.0 / dg * (-dg / 40.0).exp());
            triggered_floors += usize::from(k >= 2);
            for _ in 0..k {
                hits.push(hit(f, tr.arrival_time(z) + 2.5 * rng.normal(), k >= 2));
            }
            for _ in 0..rng.poisson(noise_per_floor) {
                hits.push(hit(f, tr.t0 + rng.uniform(-1500.0, 1500.0), false));
            }
        }
        if triggered_floors < 4 {
            continue;
        }
        let sel = select(&hits, &p);
        if let Some(f) = fit(&sel, &hits, 500) {
            fits.push((tr, f));
        }
    }
    figures(&fits)
}

/// Level 2 started from the truth (spec: "gives the same results").
fn level2_from_truth(seed: u64) -> Figures {
    let mut rng = Rng::new(seed, 2);
    let mut fits = Vec::new();
    while fits.len() < EVENTS / 3 {
        let tr = truth(&mut rng);
        let hits: Vec<RecoHit> = (1..=18)
            .filter_map(|f| {
                let z = 9.0 * f64::from(f);
                let t = tr.arrival_time(z) + slew(26) + 2.5 * rng.normal();
                (tr.d_gamma(z) < 100.0).then(|| hit(f, t, true))
            })
            .collect();
        if hits.len() < 5 {
            continue;
        }
        if let Some(f) = fit_from(&hits, tr.z_c, tr.t0, 500) {
            fits.push((tr, f));
        }
    }
    figures(&fits)
}

pub fn report(name: &str, f: &Figures) -> String {
    format!(
        "{name}: n={} converged={:.1}% 68%|Δu_z|={:.3} median Δu_z={:+.4} |Δu_z|<0.1: {:.1}% \
         68%|Δd|={:.1} m (median {:+.1}) 68%|Δz_c|={:.1} m 68%|Δt0|={:.1} ns d<20: 68%|Δu_z|={:.3} at bound {:.1}%",
        f.n,
        100.0 * f.converged,
        f.uz68,
        f.uz_bias,
        100.0 * f.uz_within_01,
        f.d68,
        f.d_bias,
        f.zc68,
        f.t068,
        f.uz68_near,
        100.0 * f.at_bound
    )
}

#[test]
fn level2_meets_the_acceptance_figures() {
    let f = level2(2026);
    eprintln!("{}", report("level 2", &f));
    assert!(f.converged >= 0.97, "{}", report("level 2", &f));
    assert!(f.uz68 <= 0.045, "{}", report("level 2", &f));
    assert!(f.uz_bias.abs() <= 0.01, "{}", report("level 2", &f));
    assert!(f.d68 <= 5.0, "{}", report("level 2", &f));
    assert!(f.uz68_near <= 0.025, "{}", report("level 2", &f));
    let t = level2_from_truth(2026);
    eprintln!("{}", report("level 2 from truth", &t));
    assert!(
        (t.uz68 - f.uz68).abs() < 0.01,
        "{}",
        report("from truth", &t)
    );
}

#[test]
fn level3_meets_the_acceptance_figures() {
    let f = level3(2026, 0.6);
    eprintln!("{}", report("level 3", &f));
    assert!(f.converged >= 0.93, "{}", report("level 3", &f));
    assert!(f.uz68 <= 0.065, "{}", report("level 3", &f));
    assert!(f.uz_within_01 >= 0.78, "{}", report("level 3", &f));
}
