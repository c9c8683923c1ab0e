//! The single-DU fit (spec `reco.md` §3, §4): start values, the bounded
//! minimisation of the v0.6.3 objective, Q and the time residuals.
//!
//! **Minimiser: `rmpfit`** (a pure-Rust port of Markwardt's CMPFIT, i.e.
//! MINPACK-1 Levenberg–Marquardt with box constraints). Chosen because the
//! objective is a least-squares sum with simple bounds, which is exactly
//! what a bounded LM solves (the spec's reference figures come from a
//! bounded LM too); it takes an analytic Jacobian, has no dependencies
//! (no C/Fortran toolchain, no nalgebra) and is maintained (2.x adds
//! user Jacobians and an evaluation cap). Looked at and not taken:
//! `levenberg-marquardt` (rust-cv) has no bounds, `argmin` has no bounded
//! quasi-Newton, `lbfgsb` wraps C code, `ganesh` (L-BFGS-B) pulls a signal
//! handler, FFT and nalgebra into a library, `nlopt` needs the C library.
//!
//! The objective of v0.6.3, Σ (tᵢ − S(totᵢ) − t(zᵢ))² + (νᵢ − 72/d_γ·A)² +
//! (ϕ − αᵢ)², has A = 0 exactly, so its middle term is the constant νᵢ²:
//! it is left out of the minimisation and added to Q afterwards (same
//! minimum, and a ToT ≥ 170 hit's 44,100 ns² does not swamp the relative
//! convergence test). ϕ stays a fitted parameter (its optimum is mean α).

use daq::detector::slew;
use rmpfit::{MPConfig, MPError, MPFitter, MPPar, MPResult, MPSide, MPSuccess};

use super::model::{nphes, SingleDuParams};
use super::select::RecoHit;

/// Bounds and start values of v0.6.3 (spec §3 table).
const D_BOUNDS: (f64, f64) = (1.0, 100.0);
const UZ_BOUNDS: (f64, f64) = (-0.999, 0.999);
const PHI_BOUNDS: (f64, f64) = (-4.0 * std::f64::consts::PI, 4.0 * std::f64::consts::PI);
const D_START: f64 = 10.0;
const UZ_START: f64 = -0.9;
const PHI_START: f64 = std::f64::consts::PI;

/// One DU's fit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DuFit {
    pub params: SingleDuParams,
    /// Objective / number of selected hits (the original's Q).
    pub q: f64,
    /// The minimiser reported convergence and no parameter is NaN.
    pub converged: bool,
    /// Some parameter ended on one of its bounds.
    pub at_bound: bool,
    /// The selected hits, sorted by time.
    pub hits: Vec<RecoHit>,
}

impl DuFit {
    /// Time residuals of the selected hits, slew-corrected as in the fit
    /// (the original wrote raw − t(z); see docs/reco.md).
    pub fn residuals(&self) -> impl Iterator<Item = (&RecoHit, f64)> + '_ {
        self.hits.iter().map(|h| (h, residual(&self.params, h)))
    }
}

/// tᵢ − S(totᵢ) − t(zᵢ).
pub fn residual(p: &SingleDuParams, h: &RecoHit) -> f64 {
    h.t - slew(u32::from(h.tot)) - p.arrival_time(h.z)
}

/// (z_s, t_s) from the "brightest floor" (most hits of the DU; ties: the
/// lowest floor — the original's tie-break was Dict order): its earliest
/// triggered hit, else the z of its earliest hit and the mean time.
pub fn start_point(du_hits: &[RecoHit]) -> Option<(f64, f64)> {
    let mut count: std::collections::BTreeMap<i32, usize> = Default::default();
    for h in du_hits {
        *count.entry(h.floor).or_default() += 1;
    }
    let max = *count.values().max()?;
    let floor = *count.iter().find(|(_, n)| **n == max)?.0;
    let on: Vec<&RecoHit> = du_hits.iter().filter(|h| h.floor == floor).collect();
    let earliest = |it: &mut dyn Iterator<Item = &&RecoHit>| {
        it.min_by(|a, b| a.t.total_cmp(&b.t)).map(|h| (h.z, h.t))
    };
    if let Some(s) = earliest(&mut on.iter().filter(|h| h.triggered)) {
        return Some(s);
    }
    let (z, _) = earliest(&mut on.iter())?;
    Some((z, on.iter().map(|h| h.t).sum::<f64>() / on.len() as f64))
}

struct Problem<'a> {
    hits: &'a [RecoHit],
    /// Slew-corrected times.
    times: Vec<f64>,
    pars: [MPPar; 5],
    config: MPConfig,
}

fn unpack(x: &[f64]) -> SingleDuParams {
    SingleDuParams {
        d: x[0],
        z_c: x[1],
        u_z: x[2],
        t0: x[3],
        phi: x[4],
    }
}

impl Problem<'_> {
    fn fill(&self, x: &[f64], dev: &mut [f64]) {
        let p = unpack(x);
        let n = self.hits.len();
        for (i, h) in self.hits.iter().enumerate() {
            dev[i] = self.times[i] - p.arrival_time(h.z);
            dev[n + i] = p.phi - h.alpha;
        }
    }
}

impl MPFitter for Problem<'_> {
    fn eval(&mut self, x: &[f64], dev: &mut [f64]) -> MPResult<()> {
        self.fill(x, dev);
        Ok(())
    }
    fn number_of_points(&self) -> usize {
        2 * self.hits.len()
    }
    fn config(&self) -> &MPConfig {
        &self.config
    }
    fn parameters(&self) -> &[MPPar] {
        &self.pars
    }
    fn jacobian(
        &mut self,
        x: &[f64],
        dev: &mut [f64],
        derivs: &mut [Option<Vec<f64>>],
    ) -> MPResult<()> {
        self.fill(x, dev);
        let p = unpack(x);
        let n = self.hits.len();
        for (i, h) in self.hits.iter().enumerate() {
            let g = p.gradient(h.z);
            for (k, col) in derivs.iter_mut().enumerate() {
                let Some(col) = col else { continue };
                if k < 4 {
                    col[i] = -g[k];
                    col[n + i] = 0.0;
                } else {
                    col[i] = 0.0;
                    col[n + i] = 1.0;
                }
            }
        }
        Ok(())
    }
}

fn bounded(lo: f64, hi: f64) -> MPPar {
    MPPar {
        limited_low: true,
        limited_up: true,
        limit_low: lo,
        limit_up: hi,
        side: MPSide::User,
        ..MPPar::new()
    }
}

/// Fits `selected` (the output of [`super::select::select`]) starting
/// from [`start_point`] of all the DU's hits. `None` when there is no
/// start point or fewer than 3 selected hits (no fit: the minimiser
/// needs as many residuals as parameters).
pub fn fit(selected: &[RecoHit], du_hits: &[RecoHit], max_iter: usize) -> Option<DuFit> {
    let (z_s, t_s) = start_point(du_hits)?;
    fit_from(selected, z_s, t_s, max_iter)
}

/// [`fit`] from an explicit start (z_s, t_s).
pub fn fit_from(selected: &[RecoHit], z_s: f64, t_s: f64, max_iter: usize) -> Option<DuFit> {
    if selected.len() < 3 {
        return None;
    }
    let zmin = selected.iter().map(|h| h.z).fold(f64::INFINITY, f64::min) - 9.0;
    let zmax = selected
        .iter()
        .map(|h| h.z)
        .fold(f64::NEG_INFINITY, f64::max)
        + 9.0;
    let free = MPPar {
        side: MPSide::User,
        ..MPPar::new()
    };
    let mut problem = Problem {
        hits: selected,
        times: selected
            .iter()
            .map(|h| h.t - slew(u32::from(h.tot)))
            .collect(),
        pars: [
            bounded(D_BOUNDS.0, D_BOUNDS.1),
            bounded(zmin, zmax),
            bounded(UZ_BOUNDS.0, UZ_BOUNDS.1),
            free,
            bounded(PHI_BOUNDS.0, PHI_BOUNDS.1),
        ],
        config: MPConfig {
            max_iter,
            ..MPConfig::new()
        },
    };
    // Ipopt projects a start outside the bounds into them; so do we (the
    // brightest floor need not be a selected one).
    let mut x = [D_START, z_s.clamp(zmin, zmax), UZ_START, t_s, PHI_START];
    let status = problem.mpfit(&mut x);
    let converged = match &status {
        Ok(s) => !matches!(s.success, MPSuccess::MaxIter | MPSuccess::NotDone),
        Err(MPError::Nan) | Err(_) => false,
    } && x.iter().all(|v| v.is_finite());
    let params = unpack(&x);
    let nu2: f64 = selected
        .iter()
        .map(|h| nphes(u32::from(h.tot)).powi(2))
        .sum();
    let mut dev = vec![0.0; 2 * selected.len()];
    problem.fill(&x, &mut dev);
    let chi2: f64 = dev.iter().map(|r| r * r).sum();
    let on = |v: f64, (lo, hi): (f64, f64)| (v - lo).abs() < 1e-6 || (v - hi).abs() < 1e-6;
    Some(DuFit {
        params,
        q: (chi2 + nu2) / selected.len() as f64,
        converged,
        at_bound: on(params.d, D_BOUNDS)
            || on(params.u_z, UZ_BOUNDS)
            || on(params.z_c, (zmin, zmax)),
        hits: selected.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(floor: i32, t: f64, tot: u8, alpha: f64) -> RecoHit {
        RecoHit {
            dom_id: floor as u32,
            floor,
            channel: 0,
            t,
            tot,
            z: 9.0 * f64::from(floor),
            alpha,
            triggered: true,
        }
    }

    /// Spec §3: residuals (2, −2, 3, −1, 0) ns with ToT (26, 26, 30, 40,
    /// 26) and equal α give Q = 9.94 — evaluated at fixed parameters.
    #[test]
    fn q_of_the_spec_reference_point() {
        let truth = SingleDuParams {
            d: 20.0,
            z_c: 60.0,
            u_z: -0.7,
            phi: 0.3,
            t0: 500.0,
        };
        let res = [2.0, -2.0, 3.0, -1.0, 0.0];
        let tots = [26u8, 26, 30, 40, 26];
        let hits: Vec<RecoHit> = (0..5)
            .map(|i| {
                let f = 3 + 2 * i as i32;
                let z = 9.0 * f64::from(f);
                hit(
                    f,
                    truth.arrival_time(z) + slew(u32::from(tots[i])) + res[i],
                    tots[i],
                    0.3,
                )
            })
            .collect();
        let nu2: f64 = hits.iter().map(|h| nphes(u32::from(h.tot)).powi(2)).sum();
        let chi2: f64 = hits.iter().map(|h| residual(&truth, h).powi(2)).sum();
        assert!(
            ((chi2 + nu2) / 5.0 - 9.94).abs() < 0.01,
            "{}",
            (chi2 + nu2) / 5.0
        );
    }

    #[test]
    fn exact_hits_are_fitted_back() {
        let truth = SingleDuParams {
            d: 25.0,
            z_c: 80.0,
            u_z: -0.6,
            phi: 0.0,
            t0: 10_000.0,
        };
        let hits: Vec<RecoHit> = (1..=18)
            .map(|f| {
                hit(
                    f,
                    truth.arrival_time(9.0 * f64::from(f)) + slew(26),
                    26,
                    0.0,
                )
            })
            .collect();
        let fit = fit_from(&hits, 80.0, 10_000.0, 500).unwrap();
        assert!(fit.converged);
        assert!(
            (fit.params.u_z - truth.u_z).abs() < 1e-4,
            "{:?}",
            fit.params
        );
        assert!((fit.params.d - truth.d).abs() < 1e-2, "{:?}", fit.params);
        assert!(fit.residuals().all(|(_, r)| r.abs() < 1e-3));
        // Only the ν² term is left: 1 per 1-pe hit.
        assert!((fit.q - 1.0).abs() < 1e-3, "{}", fit.q);
    }
}
