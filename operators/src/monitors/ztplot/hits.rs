//! Event → calibrated hits for the z-t display (spec `monitors.md` §3.6,
//! step 1) and the selection cuts (step 2).
//!
//! km3pipe's z-t plot calibrates with slewing, so we do too: time ← raw +
//! t0(PMT) − slew(ToT). A snapshot hit is "triggered" when the same
//! (DOM, channel, time) appears among the triggered hits: the DAQ writes
//! every triggered hit into the snapshot as well.

use std::collections::{BTreeSet, HashSet};

use daq::detector::Detector;
use daq::event::Event;

/// A snapshot hit ready to plot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZtHit {
    pub dom_id: u32,
    pub du: u32,
    pub floor: i32,
    pub channel: u8,
    /// Calibrated time, ns.
    pub time: f64,
    /// PMT z, m.
    pub z: f64,
    pub triggered: bool,
    /// Size of the hit's coincidence group within its DOM (≥ 1).
    pub multiplicity: u32,
}

/// Calibrated hits plus the hits that could not be calibrated (DOM or
/// channel missing from the DETX; they are left out of the plot).
#[derive(Debug, Default)]
pub struct Calibrated {
    pub hits: Vec<ZtHit>,
    pub uncalibrated: usize,
}

/// Window of a coincidence group, from the group's first hit (ns).
pub const COINCIDENCE_NS: f64 = 20.0;

pub fn calibrate(det: &Detector, ev: &Event) -> Calibrated {
    let trig: HashSet<(u32, u8, u32)> = ev
        .triggered_hits
        .iter()
        .map(|h| (h.dom_id, h.channel_id, h.time))
        .collect();
    let mut out = Calibrated {
        hits: Vec::with_capacity(ev.snapshot_hits.len()),
        uncalibrated: 0,
    };
    for h in &ev.snapshot_hits {
        match det.calibrate_with_slewing(
            h.dom_id,
            h.channel_id as usize,
            h.time as f64,
            h.tot as u32,
        ) {
            Ok(c) => out.hits.push(ZtHit {
                dom_id: h.dom_id,
                du: c.du,
                floor: c.floor,
                channel: h.channel_id,
                time: c.time,
                z: c.pos[2],
                triggered: trig.contains(&(h.dom_id, h.channel_id, h.time)),
                multiplicity: 1,
            }),
            Err(_) => out.uncalibrated += 1,
        }
    }
    set_multiplicity(&mut out.hits);
    out
}

/// Sorts by (DOM, time) and gives each hit the size of its group: the
/// consecutive hits within [`COINCIDENCE_NS`] of the group's first hit.
/// The result stays time-sorted within each DOM; the plot does not care
/// about the order across DOMs.
pub fn set_multiplicity(hits: &mut [ZtHit]) {
    hits.sort_by(|a, b| a.dom_id.cmp(&b.dom_id).then(a.time.total_cmp(&b.time)));
    let mut i = 0;
    while i < hits.len() {
        let (dom, t0) = (hits[i].dom_id, hits[i].time);
        let mut j = i + 1;
        while j < hits.len() && hits[j].dom_id == dom && hits[j].time - t0 <= COINCIDENCE_NS {
            j += 1;
        }
        let m = (j - i) as u32;
        for h in &mut hits[i..j] {
            h.multiplicity = m;
        }
        i = j;
    }
}

/// Distinct DUs and DOMs having triggered hits; DOMs the detector does
/// not know do not count (they cannot be placed on a DU).
pub fn triggered_spread(det: &Detector, ev: &Event) -> (usize, usize) {
    let mut doms = BTreeSet::new();
    let mut dus = BTreeSet::new();
    for h in &ev.triggered_hits {
        if let Some(m) = det.module(h.dom_id) {
            doms.insert(h.dom_id);
            dus.insert(m.du);
        }
    }
    (dus.len(), doms.len())
}

/// The selection cuts: enough DUs and DOMs with triggered hits.
pub fn passes_cuts(det: &Detector, ev: &Event, min_dus: usize, min_doms: usize) -> bool {
    let (dus, doms) = triggered_spread(det, ev);
    dus >= min_dus && doms >= min_doms
}

/// Space-joined trigger flags of the mask, in the original's order.
pub fn trigger_flags(mask: u64) -> String {
    use daq::event::trigger::{MUON_3D, SHOWER_3D, SHOWER_MX};
    let mut f = Vec::new();
    if mask & SHOWER_MX != 0 {
        f.push("MX");
    }
    if mask & MUON_3D != 0 {
        f.push("3DM");
    }
    if mask & SHOWER_3D != 0 {
        f.push("3DS");
    }
    f.join(" ")
}
