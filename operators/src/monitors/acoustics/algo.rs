//! The ping detection of the original (spec monitors.md §3.10
//! "Computation" step 2), per DOM and beacon slot, and the matrix codes.

/// Seconds between two pings of a beacon's pulse train.
pub const PING_PERIOD_S: f64 = 5.048_729_896_545_41;
/// Half of the signal window around the best ping (SSW = 160 s).
pub const HALF_SIGNAL_S: f64 = 80.0;

/// The matrix codes of the original's colour bar.
pub const NO_DB: f64 = -2.5;
pub const NO_PINGS: f64 = -1.5;
pub const FEW: f64 = -0.5;
pub const SOME: f64 = 0.5;
pub const MANY: f64 = 1.5;

/// One time of arrival: (emitter id, quality factor, UNIXTIMEBASE + TOA_S).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Toa {
    pub emitter: i32,
    pub qf: f64,
    pub t: f64,
}

/// The three emitter ids a DOM uses for its slots: the distinct ids it saw
/// in the run range, ordered by |id| (then id), padded with 0.
pub fn slots(toas: &[Toa]) -> [i32; 3] {
    let mut ids: Vec<i32> = toas.iter().map(|t| t.emitter).collect();
    ids.sort_by_key(|e| (e.unsigned_abs(), *e));
    ids.dedup();
    let mut out = [0; 3];
    for (o, e) in out.iter_mut().zip(ids) {
        *o = e;
    }
    out
}

/// What one beacon slot of a DOM gave in the window `(a, b]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    pub code: f64,
    pub pings: usize,
    pub max_qf: Option<f64>,
    /// The earliest surviving ping (for the cross-check between beacons).
    pub first: Option<f64>,
}

impl Slot {
    fn none() -> Slot {
        Slot {
            code: NO_PINGS,
            pings: 0,
            max_qf: None,
            first: None,
        }
    }
}

pub fn code_of(pings: usize) -> f64 {
    match pings {
        0 => NO_PINGS,
        1..=3 => FEW,
        4..=7 => SOME,
        _ => MANY,
    }
}

fn std(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// The filters of the original on one emitter's TOAs in the window.
pub fn detect(toas: &[Toa], emitter: i32, a: f64, b: f64) -> Slot {
    if emitter == 0 {
        return Slot::none();
    }
    let w: Vec<&Toa> = toas
        .iter()
        .filter(|x| x.emitter == emitter && x.t > a && x.t <= b)
        .collect();
    let Some(best) = w
        .iter()
        .max_by(|x, y| x.qf.total_cmp(&y.qf).then(y.t.total_cmp(&x.t)))
    else {
        return Slot::none();
    };
    let len = b - a;
    // The signal window wraps around the analysis window's edges.
    let in_signal = |t: f64| {
        let d = (t - best.t).rem_euclid(len);
        d <= HALF_SIGNAL_S || d >= len - HALF_SIGNAL_S
    };
    let (signal, noise): (Vec<&&Toa>, Vec<&&Toa>) = w.iter().partition(|x| in_signal(x.t));
    let noise_qf: Vec<f64> = noise.iter().map(|x| x.qf).collect();
    let threshold = noise_qf.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let threshold = if threshold.is_finite() {
        threshold
    } else {
        0.0
    };
    let mut s: Vec<(f64, f64)> = signal.iter().map(|x| (x.qf, x.t)).collect();
    s.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.total_cmp(&y.1)));
    // Every time occurring more than once loses one occurrence.
    let mut seen: Vec<f64> = Vec::new();
    let mut dup: Vec<f64> = Vec::new();
    for (_, t) in &s {
        if seen.contains(t) && !dup.contains(t) {
            dup.push(*t);
        }
        seen.push(*t);
    }
    for t in dup {
        if let Some(i) = s.iter().position(|x| x.1 == t) {
            s.remove(i);
        }
    }
    s.truncate(11);
    let cut = threshold + 10.0 * std(&noise_qf);
    s.retain(|x| x.0 > cut);
    if let Some(t0) = s.iter().map(|x| x.1).min_by(f64::total_cmp) {
        s.retain(|x| {
            let r = (x.1 - t0).rem_euclid(5.0);
            !(r > 2.0 && r < 4.0)
        });
    }
    if let Some(qmax) = s.iter().map(|x| x.0).max_by(f64::total_cmp) {
        s.retain(|x| 2.0 * (x.0 - qmax).abs() < (x.0 - threshold).abs());
    }
    Slot {
        code: code_of(s.len()),
        pings: s.len(),
        max_qf: s.iter().map(|x| x.0).max_by(f64::total_cmp),
        first: s.iter().map(|x| x.1).min_by(f64::total_cmp),
    }
}

/// The three slots of a DOM, with the cross-check: two beacons whose
/// earliest pings lie a whole number of ping periods apart are one beacon
/// heard twice; the one of lower quality is set to "0 pings".
pub fn dom_slots(toas: &[Toa], a: f64, b: f64) -> [Slot; 3] {
    let ids = slots(toas);
    let mut out = ids.map(|e| detect(toas, e, a, b));
    for i in 0..3 {
        for j in i + 1..3 {
            let (Some(ti), Some(tj)) = (out[i].first, out[j].first) else {
                continue;
            };
            let r = (ti - tj).abs().rem_euclid(PING_PERIOD_S);
            if !(0.001..=5.0).contains(&r) {
                let lower = if out[i].max_qf < out[j].max_qf { i } else { j };
                out[lower].code = NO_PINGS;
            }
        }
    }
    out
}
