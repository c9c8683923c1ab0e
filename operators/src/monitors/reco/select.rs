//! The hit selection of ROyFit v0.6.3 (spec `reco.md` §2): seeds from
//! n-fold coincidences on a DOM (or the earliest triggered hit per floor),
//! extended floor by floor by extrapolating the arrival times, at most one
//! hit per floor.

use std::collections::BTreeMap;

use super::model::{C, N};

/// A calibrated hit of one DU: time is raw + PMT t0 (no slewing).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecoHit {
    pub dom_id: u32,
    pub floor: i32,
    pub channel: u8,
    /// ns.
    pub t: f64,
    pub tot: u8,
    /// PMT z, m.
    pub z: f64,
    /// atan2(−dir_y, −dir_x) of the PMT axis, rad.
    pub alpha: f64,
    pub triggered: bool,
}

/// `SingleDURecoParams` of v0.6.3 (the defaults) and the one quirk a user
/// may choose to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelectParams {
    /// Vertical distance between floors, m (9 in v0.6.3, whatever the
    /// detector; later NeRCA versions take it from the detector).
    pub floor_distance: f64,
    /// Δt₋ of the extension windows, ns.
    pub dt_minus: f64,
    /// n of the n-fold seeds.
    pub multiplicity: usize,
    /// Δt between consecutive hits of an n-fold chain, ns.
    pub dt: f64,
    /// Fewer selected hits: no fit.
    pub min_hits: usize,
    /// The original never tests the last chain of each DOM (`nfoldhits`
    /// has no flush after its loop); `true` (the default) reproduces that.
    /// Kept on purpose: on the spec's level-3 recipe the fixed version
    /// does slightly worse (68 % |Δu_z| 0.054 instead of 0.050, seed 2026),
    /// as a DOM's last chain is more often a noise-fed one.
    pub nfold_last_chain_bug: bool,
}

impl Default for SelectParams {
    fn default() -> Self {
        SelectParams {
            floor_distance: 9.0,
            dt_minus: 10.0,
            multiplicity: 3,
            dt: 10.0,
            min_hits: 3,
            nfold_last_chain_bug: true,
        }
    }
}

/// The hits of qualifying n-fold chains, per DOM in time order. `hits`
/// must be sorted by (DOM, time).
fn nfold(hits: &[RecoHit], p: &SelectParams) -> Vec<RecoHit> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < hits.len() {
        let dom = hits[i].dom_id;
        let j = i + hits[i..].iter().take_while(|h| h.dom_id == dom).count();
        let dom_hits = &hits[i..j];
        let mut start = 0;
        for k in 1..=dom_hits.len() {
            let end_of_chain = k == dom_hits.len() || dom_hits[k].t - dom_hits[k - 1].t > p.dt;
            if !end_of_chain {
                continue;
            }
            let last = k == dom_hits.len();
            if k - start >= p.multiplicity && !(last && p.nfold_last_chain_bug) {
                out.extend_from_slice(&dom_hits[start..k]);
            }
            start = k;
        }
        i = j;
    }
    out
}

/// The first hit (in the given order) on each floor.
fn first_per_floor(hits: &[RecoHit]) -> BTreeMap<i32, RecoHit> {
    let mut m = BTreeMap::new();
    for h in hits {
        m.entry(h.floor).or_insert(*h);
    }
    m
}

/// The earliest hit per floor, sorted by time (ties: by floor).
fn earliest_per_floor(hits: impl IntoIterator<Item = RecoHit>) -> Vec<RecoHit> {
    let mut m: BTreeMap<i32, RecoHit> = BTreeMap::new();
    for h in hits {
        m.entry(h.floor)
            .and_modify(|e| {
                if h.t < e.t {
                    *e = h;
                }
            })
            .or_insert(h);
    }
    let mut v: Vec<RecoHit> = m.into_values().collect();
    v.sort_by(|a, b| a.t.total_cmp(&b.t).then(a.floor.cmp(&b.floor)));
    v
}

/// The selected hits of one DU (at most one per floor, sorted by time),
/// from all of its hits.
pub fn select(du_hits: &[RecoHit], p: &SelectParams) -> Vec<RecoHit> {
    let mut hits = du_hits.to_vec();
    // By time, then stably by DOM: (DOM, time) order.
    hits.sort_by(|a, b| a.t.total_cmp(&b.t));
    hits.sort_by_key(|h| h.dom_id);
    let mut pool: BTreeMap<i32, Vec<RecoHit>> = BTreeMap::new();
    for h in &hits {
        pool.entry(h.floor).or_default().push(*h);
    }
    for v in pool.values_mut() {
        v.sort_by(|a, b| a.t.total_cmp(&b.t));
    }
    let mut seeds: Vec<RecoHit> = first_per_floor(&nfold(&hits, p)).into_values().collect();
    if seeds.len() < 3 {
        let mut by_time: Vec<RecoHit> = hits.iter().filter(|h| h.triggered).copied().collect();
        by_time.sort_by(|a, b| a.t.total_cmp(&b.t));
        seeds = first_per_floor(&by_time).into_values().collect();
    }
    let mut set = earliest_per_floor(seeds.iter().copied());
    let mut seeds = set.clone();
    loop {
        let extended = extend(&set, &seeds, &mut pool, p);
        if extended.is_empty() {
            return set;
        }
        set = earliest_per_floor(set.iter().chain(extended.iter()).copied());
        seeds = extended;
    }
}

/// One round of `select_hits`: the hits found on the floors next to each
/// seed; consumed pool hits (and those after them) are removed.
fn extend(
    set: &[RecoHit],
    seeds: &[RecoHit],
    pool: &mut BTreeMap<i32, Vec<RecoHit>>,
    p: &SelectParams,
) -> Vec<RecoHit> {
    let first = |f: i32| set.iter().find(|h| h.floor == f).map(|h| h.t);
    let mut extended = Vec::new();
    for seed in seeds {
        let (f, t0) = (seed.floor, seed.t);
        for sign in [1, -1] {
            let (a, b, c, e) = (f - sign, f - 2 * sign, f + sign, f + 2 * sign);
            let (t1, t2) = match (first(a), first(b)) {
                (Some(ta), Some(tb)) => (ta + 2.0 * (ta - tb), ta + 3.0 * (ta - tb)),
                (Some(ta), None) => (t0 + (t0 - ta), t0 + 2.0 * (t0 - ta)),
                (None, Some(tb)) => (t0 + (t0 - tb) / 2.0, t0 + (t0 - tb)),
                (None, None) => continue,
            };
            for (k, floor, expected) in [(1.0, c, t1), (2.0, e, t2)] {
                let lo = expected - k * p.dt_minus;
                let hi =
                    (t0 + k * p.floor_distance * N / C + p.dt_minus).max(expected + k * p.dt_minus);
                let Some(on_floor) = pool.get_mut(&floor) else {
                    continue;
                };
                let Some(j) = on_floor.iter().position(|h| h.t >= lo && h.t <= hi) else {
                    continue;
                };
                let hit = on_floor[j];
                if !first(floor).is_some_and(|tf| hit.t > tf) {
                    extended.push(hit);
                }
                on_floor.truncate(j);
            }
        }
    }
    extended
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(floor: i32, t: f64, triggered: bool) -> RecoHit {
        RecoHit {
            dom_id: 1000 + floor as u32,
            floor,
            channel: 0,
            t,
            tot: 26,
            z: 9.0 * f64::from(floor),
            alpha: 0.0,
            triggered,
        }
    }

    #[test]
    fn nfold_chains_and_the_last_chain_quirk() {
        // DOM 1: a 3-chain then a lone hit; DOM 2: only a (last) 3-chain.
        let mut hits = vec![
            hit(1, 0.0, false),
            hit(1, 5.0, false),
            hit(1, 12.0, false),
            hit(1, 100.0, false),
            hit(2, 0.0, false),
            hit(2, 4.0, false),
            hit(2, 8.0, false),
        ];
        hits.sort_by_key(|h| h.dom_id);
        let fixed = SelectParams {
            nfold_last_chain_bug: false,
            ..Default::default()
        };
        assert_eq!(nfold(&hits, &fixed).len(), 6);
        let q = nfold(&hits, &SelectParams::default());
        assert_eq!(q.len(), 3);
        assert!(q.iter().all(|h| h.floor == 1));
    }

    #[test]
    fn a_straight_line_of_hits_is_selected_and_noise_is_not() {
        // Light moving up 9 m per 40 ns, triggered on floors 5..=7 only;
        // a late noise hit on every floor.
        let mut hits = Vec::new();
        for f in 1..=12 {
            hits.push(hit(f, 1000.0 + 40.0 * f64::from(f), (5..=7).contains(&f)));
            hits.push(hit(f, 1900.0 + 3.0 * f64::from(f), false));
        }
        let sel = select(&hits, &SelectParams::default());
        assert_eq!(sel.len(), 12, "{sel:?}");
        assert!(sel.iter().all(|h| h.t < 1600.0));
        // At most one hit per floor, sorted by time.
        assert!(sel
            .windows(2)
            .all(|w| w[0].t <= w[1].t && w[0].floor != w[1].floor));
    }
}
