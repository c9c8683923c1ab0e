//! One IO_EVT → the fits of its DUs (the caller side of the original's
//! `royfit.jl`, spec `reco.md` §2 "Caller"). Pure: no timely, no I/O.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use daq::detector::Detector;
use daq::event::Event;
use pipeline::item::stable_hash;
use serde::{Deserialize, Serialize};

use super::fit::{fit, DuFit};
use super::select::{select, RecoHit, SelectParams};

/// The per-event settings of the `royfit` node.
#[derive(Debug, Clone, Copy)]
pub struct EventParams {
    /// Fewer DOMs with triggered hits: the event is skipped.
    pub min_doms: usize,
    /// Share of events fitted (the original dropped half at random).
    pub fraction: f64,
    pub select: SelectParams,
    pub max_iter: usize,
}

/// A hit for the display: DU, calibrated time, PMT z, triggered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlotHit {
    pub du: u32,
    pub t: f64,
    pub z: f64,
    pub triggered: bool,
}

/// Everything the outputs need about one fitted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFit {
    pub det_id: i32,
    pub run: i32,
    pub frame_index: i32,
    pub trigger_counter: u64,
    pub utc_seconds: u32,
    pub trigger_mask: u64,
    pub overlays: u32,
    /// DOMs with triggered hits.
    pub n_doms: usize,
    /// DUs with any hit.
    pub dus_with_hits: Vec<u32>,
    /// Per fitted DU, by DU.
    pub fits: Vec<(u32, DuFit)>,
    /// All calibrated hits of the fitted DUs; filled only for events that
    /// pass the display's gate (so only those cross workers with hits).
    pub hits: Vec<PlotHit>,
}

impl EventFit {
    /// The key that orders events the same way in every run.
    pub fn key(&self) -> (i32, i32, i32, u64) {
        (
            self.det_id,
            self.run,
            self.frame_index,
            self.trigger_counter,
        )
    }

    /// The original's condition to save the display: ΣQ < max_q_sum,
    /// n_doms > 6 and more than one DU with hits (thresholds given).
    pub fn displayable(&self, max_q_sum: f64, min_doms: usize, min_dus: usize) -> bool {
        let q: f64 = self.fits.iter().map(|(_, f)| f.q).sum();
        !self.fits.is_empty()
            && q < max_q_sum
            && self.n_doms >= min_doms
            && self.dus_with_hits.len() >= min_dus
    }
}

/// The deterministic replacement of the original's random down-sampling:
/// an event is kept when a hash of its identity falls below `fraction`.
pub fn sampled(ev: &Event, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    let h = &ev.header;
    let mut key = Vec::with_capacity(20);
    key.extend_from_slice(&h.det_id.to_le_bytes());
    key.extend_from_slice(&h.run.to_le_bytes());
    key.extend_from_slice(&h.frame_index.to_le_bytes());
    key.extend_from_slice(&ev.trigger_counter.to_le_bytes());
    ((stable_hash(&key) >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

/// The exchange key: events are spread over the workers by identity.
pub fn exchange_key(ev: &Event) -> u64 {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&ev.header.frame_index.to_le_bytes());
    key[4..].copy_from_slice(&ev.trigger_counter.to_le_bytes());
    stable_hash(&key)
}

/// Calibrated hits (raw + t0, no slewing) per DU; hits of DOMs or
/// channels the detector does not know are counted and left out.
pub fn calibrate(det: &Detector, ev: &Event) -> (BTreeMap<u32, Vec<RecoHit>>, usize) {
    let trig: HashSet<(u32, u8, u32, u8)> = ev
        .triggered_hits
        .iter()
        .map(|h| (h.dom_id, h.channel_id, h.time, h.tot))
        .collect();
    let mut by_du: BTreeMap<u32, Vec<RecoHit>> = BTreeMap::new();
    let mut bad = 0;
    for h in &ev.snapshot_hits {
        match det.calibrate(
            h.dom_id,
            h.channel_id as usize,
            f64::from(h.time),
            u32::from(h.tot),
        ) {
            Ok(c) => by_du.entry(c.du).or_default().push(RecoHit {
                dom_id: h.dom_id,
                floor: c.floor,
                channel: h.channel_id,
                t: c.time,
                tot: h.tot,
                z: c.pos[2],
                alpha: (-c.dir[1]).atan2(-c.dir[0]),
                triggered: trig.contains(&(h.dom_id, h.channel_id, h.time, h.tot)),
            }),
            Err(_) => bad += 1,
        }
    }
    (by_du, bad)
}

/// Fits the DUs of an event that passes the cuts; `None` when it does
/// not (sampled out, too few DOMs with triggered hits). `keep_hits`
/// decides, from the fits, whether the display's hits are attached.
pub fn fit_event(
    det: &Detector,
    ev: &Event,
    p: &EventParams,
    keep_hits: impl Fn(&EventFit) -> bool,
) -> Option<EventFit> {
    if !sampled(ev, p.fraction) {
        return None;
    }
    let doms: BTreeSet<u32> = ev
        .triggered_hits
        .iter()
        .filter(|h| det.module(h.dom_id).is_some())
        .map(|h| h.dom_id)
        .collect();
    if doms.len() < p.min_doms {
        return None;
    }
    let (by_du, _) = calibrate(det, ev);
    let mut fits = Vec::new();
    for (du, hits) in &by_du {
        if !hits.iter().any(|h| h.triggered) {
            continue;
        }
        let sel = select(hits, &p.select);
        if sel.len() < p.select.min_hits {
            continue;
        }
        if let Some(f) = fit(&sel, hits, p.max_iter) {
            fits.push((*du, f));
        }
    }
    let h = &ev.header;
    let mut out = EventFit {
        det_id: h.det_id,
        run: h.run,
        frame_index: h.frame_index,
        trigger_counter: ev.trigger_counter,
        utc_seconds: h.utc_seconds,
        trigger_mask: ev.trigger_mask,
        overlays: ev.overlays,
        n_doms: doms.len(),
        dus_with_hits: by_du.keys().copied().collect(),
        fits,
        hits: Vec::new(),
    };
    if keep_hits(&out) {
        let fitted: BTreeSet<u32> = out.fits.iter().map(|(du, _)| *du).collect();
        out.hits = by_du
            .iter()
            .filter(|(du, _)| fitted.contains(du))
            .flat_map(|(du, hs)| {
                hs.iter().map(|h| PlotHit {
                    du: *du,
                    t: h.t,
                    z: h.z,
                    triggered: h.triggered,
                })
            })
            .collect();
    }
    Some(out)
}

/// Vertical distance between consecutive floors: the median over the
/// detector's DUs (9 m when it cannot tell, v0.6.3's constant).
pub fn floor_distance(det: &Detector) -> f64 {
    let mut gaps = Vec::new();
    for du in det.dus() {
        let mut ms: Vec<(i32, f64)> = det
            .modules_of_du(du)
            .filter(|m| m.is_optical())
            .map(|m| (m.floor, m.pos[2]))
            .collect();
        ms.sort_by_key(|m| m.0);
        for w in ms.windows(2) {
            if w[1].0 == w[0].0 + 1 {
                gaps.push(w[1].1 - w[0].1);
            }
        }
    }
    if gaps.is_empty() {
        return 9.0;
    }
    gaps.sort_by(f64::total_cmp);
    gaps[gaps.len() / 2]
}
