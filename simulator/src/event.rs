//! Triggered events (`IO_EVT`): muon tracks and showers crossing the
//! detector, seen as Cherenkov light on the DOMs near them.
//!
//! The physics is deliberately coarse — it has to look right to the
//! trigger-rate, trigger-map and z–t monitors, not to a reconstruction:
//! hits come from DOMs close to the track or vertex with times from the
//! Cherenkov geometry, so that after calibration (raw time + t0 − slewing)
//! they are causal; DOMs with two or more photons are the triggered (L1)
//! part; K40 hits of the DOMs around fill the snapshot window. Raw times
//! are written as the DAQ reports them: true time − t0 + slewing.

use daq::detector::{slew, Detector};
use daq::event::{trigger, Event, SnapshotHit, TriggeredHit};
use daq::frame::DaqHeader;

use crate::rng::Rng;

/// Speed of light in vacuum, m/ns.
const C: f64 = 0.299_792_458;
/// Refractive index of sea water (phase, for the Cherenkov angle; and
/// group, for the light's travel time).
const N_PHASE: f64 = 1.35;
const N_GROUP: f64 = 1.38;
/// Light attenuation length, m.
const ATTENUATION: f64 = 45.0;
/// Beyond this distance no photon is simulated.
const MAX_DISTANCE: f64 = 150.0;
/// K40 hits are added on DOMs this close to the track or vertex.
const SNAPSHOT_DISTANCE: f64 = 50.0;
/// Snapshot window margin around the triggered hits, ns.
const WINDOW_MARGIN: f64 = 500.0;
/// Triggered hits of one DOM lie within this of its first hit (L1).
const L1_WINDOW: f64 = 25.0;
const SLICE_NS: f64 = 1e8;

struct DomGeometry {
    dom_id: u32,
    pos: [f64; 3],
    dirs: Vec<[f64; 3]>,
    t0s: Vec<f64>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Muon,
    Shower,
    MxShower,
}

/// A photon hit before it is written.
#[derive(Clone, Copy)]
struct PhotonHit {
    dom: usize,
    channel: u8,
    time: f64,
    tot: u8,
}

/// The true track of a simulated muon event (`km3mon simulate --truth`):
/// the muon is at `position` (m, detector coordinates) at `time_ns`, ns
/// after the start of the event's timeslice — the frame of the DAQ hit
/// times, so a fit of calibrated hits compares directly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MuonTruth {
    pub det_id: i32,
    pub run: i32,
    pub frame_index: i32,
    pub trigger_counter: u64,
    pub position: [f64; 3],
    pub direction: [f64; 3],
    pub time_ns: f64,
}

impl MuonTruth {
    /// One JSON line (no trailing newline).
    pub fn json(&self) -> String {
        let [x, y, z] = self.position;
        let [dx, dy, dz] = self.direction;
        format!(
            "{{\"det_id\":{},\"run\":{},\"frame_index\":{},\"trigger_counter\":{},\"x\":{x:.4},\"y\":{y:.4},\"z\":{z:.4},\"dx\":{dx:.6},\"dy\":{dy:.6},\"dz\":{dz:.6},\"t_ns\":{:.3}}}",
            self.det_id, self.run, self.frame_index, self.trigger_counter, self.time_ns
        )
    }
}

pub struct EventGenerator {
    rng: Rng,
    /// Vertex and direction of the last particle drawn.
    last_track: ([f64; 3], [f64; 3]),
    /// The muons' truth, when asked for (`record_truth`).
    truths: Option<Vec<MuonTruth>>,
    doms: Vec<DomGeometry>,
    /// Earliest and latest event time in the timeslice such that every
    /// raw hit time lands inside it.
    t_window: (f64, f64),
    radius: f64,
    /// Scratch buffers kept between events.
    photons: Vec<PhotonHit>,
    near: Vec<(usize, f64)>,
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

impl EventGenerator {
    pub fn new(detector: &Detector, seed: u64) -> EventGenerator {
        let doms: Vec<DomGeometry> = detector
            .optical_modules()
            .filter(|m| m.n_pmts() > 0)
            .map(|m| DomGeometry {
                dom_id: m.dom_id,
                pos: m.pos,
                dirs: m.pmts.iter().take(31).map(|p| p.dir).collect(),
                t0s: m.pmts.iter().take(31).map(|p| p.t0).collect(),
            })
            .collect();
        let n = doms.len().max(1) as f64;
        let mut centre = [0.0; 3];
        for d in &doms {
            for (c, p) in centre.iter_mut().zip(d.pos) {
                *c += p / n;
            }
        }
        let radius = doms
            .iter()
            .map(|d| norm(sub(d.pos, centre)))
            .fold(10.0, f64::max);
        let t0s = doms.iter().flat_map(|d| d.t0s.iter().copied());
        let (t0_min, t0_max) = t0s.fold((f64::MAX, f64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
        let crossing = 2.0 * (radius + MAX_DISTANCE) * N_GROUP / C;
        let (t0_min, t0_max) = if t0_min <= t0_max {
            (t0_min, t0_max)
        } else {
            (0.0, 0.0)
        };
        let lo = t0_max + crossing + 2.0 * WINDOW_MARGIN;
        let hi = SLICE_NS + t0_min - crossing - 2.0 * WINDOW_MARGIN;
        // Detectors whose t0s spread over more than a timeslice cannot keep
        // every hit inside it; hits falling outside are dropped then.
        let t_window = if lo < hi {
            (lo, hi)
        } else {
            (0.05 * SLICE_NS, 0.95 * SLICE_NS)
        };
        EventGenerator {
            rng: Rng::new(seed, crate::STREAM_EVENTS),
            last_track: ([0.0; 3], [0.0; 3]),
            truths: None,
            doms,
            t_window,
            radius,
            photons: Vec::new(),
            near: Vec::new(),
        }
    }

    /// Keep the true track of every muon event from now on (no effect on
    /// the random draws: the stream stays the same).
    pub fn record_truth(&mut self) {
        self.truths.get_or_insert_with(Vec::new);
    }

    /// The truths recorded since the last call.
    pub fn take_truths(&mut self) -> Vec<MuonTruth> {
        self.truths.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Events of one timeslice, sorted by time, trigger counters from
    /// `*counter` on. `dom_rate_hz(i)` is the current rate of optical DOM
    /// `i` (K40 background); `silent(dom_id)` hides a DOM's hits.
    pub fn timeslice(
        &mut self,
        header: DaqHeader,
        rate_hz: f64,
        counter: &mut u64,
        dom_rate_hz: &dyn Fn(u32) -> f64,
        silent: &dyn Fn(u32) -> bool,
    ) -> Vec<Event> {
        if self.doms.is_empty() {
            return Vec::new();
        }
        let n = self.rng.poisson(rate_hz * 0.1);
        let mut times: Vec<f64> = (0..n)
            .map(|_| self.rng.uniform(self.t_window.0, self.t_window.1))
            .collect();
        times.sort_by(f64::total_cmp);
        times
            .into_iter()
            .map(|t| {
                let event = self.event(header, t, *counter, dom_rate_hz, silent);
                *counter += 1;
                event
            })
            .collect()
    }

    fn event(
        &mut self,
        header: DaqHeader,
        t_event: f64,
        counter: u64,
        dom_rate_hz: &dyn Fn(u32) -> f64,
        silent: &dyn Fn(u32) -> bool,
    ) -> Event {
        // The trigger mix: mostly muons, some of which also fire the
        // shower triggers (masks 0x12, 0x16 as in the sample), and pure
        // 3D and MX showers.
        let r = self.rng.f64();
        let (kind, mask) = match r {
            r if r < 0.55 => (Kind::Muon, trigger::MUON_3D),
            r if r < 0.70 => (Kind::Muon, trigger::MUON_3D | trigger::SHOWER_3D),
            r if r < 0.78 => (
                Kind::Muon,
                trigger::MUON_3D | trigger::SHOWER_3D | trigger::SHOWER_MX,
            ),
            r if r < 0.90 => (Kind::Shower, trigger::SHOWER_3D),
            _ => (Kind::MxShower, trigger::SHOWER_MX),
        };
        // A steep spectrum: mostly dim events, a tail of bright ones for
        // the z–t display and its top 10.
        let mut energy = 30f64.powf(self.rng.f64().powi(2));
        for _ in 0..20 {
            self.light(kind, t_event, energy);
            if self.triggered_doms() >= 3 {
                break;
            }
            energy *= 1.6;
        }
        if kind == Kind::Muon {
            if let Some(truths) = &mut self.truths {
                truths.push(MuonTruth {
                    det_id: header.det_id,
                    run: header.run,
                    frame_index: header.frame_index,
                    trigger_counter: counter,
                    position: self.last_track.0,
                    direction: self.last_track.1,
                    time_ns: t_event,
                });
            }
        }
        let (triggered, snapshot) = self.hits(mask, dom_rate_hz, silent);
        let overlays = if self.rng.chance(0.8) {
            0
        } else {
            1 + self.rng.below(4) as u32
        };
        Event {
            version: Some(Event::VERSION),
            header,
            trigger_counter: counter,
            trigger_mask: triggered.iter().fold(0, |m, h| m | h.trigger_mask),
            overlays,
            triggered_hits: triggered,
            snapshot_hits: snapshot,
        }
    }

    /// Fill `photons` (and `near`, the DOMs for K40 hits) for one
    /// particle.
    fn light(&mut self, kind: Kind, t_event: f64, energy: f64) {
        self.photons.clear();
        self.near.clear();
        let rng = &mut self.rng;
        // A point inside the detector volume.
        let around = self.doms[rng.below(self.doms.len() as u64) as usize].pos;
        let spread = (0.3 * self.radius).min(60.0);
        let vertex = [0, 1, 2].map(|i| around[i] + rng.uniform(-spread, spread));
        // Atmospheric muons come from above: cos(zenith) of the direction
        // of flight mostly close to −1.
        let direction = match kind {
            Kind::Muon => {
                let dz = -rng.f64().sqrt().max(0.05);
                let phi = rng.uniform(0.0, std::f64::consts::TAU);
                let rho = (1.0 - dz * dz).sqrt();
                [rho * phi.cos(), rho * phi.sin(), dz]
            }
            _ => rng.direction(),
        };
        self.last_track = (vertex, direction);
        let (cos_c, sin_c) = (1.0 / N_PHASE, (1.0 - 1.0 / (N_PHASE * N_PHASE)).sqrt());
        let brightness = match kind {
            Kind::Muon => 0.5 * energy,
            Kind::Shower => 1.5 * energy,
            Kind::MxShower => 0.8 * energy,
        };
        for (index, dom) in self.doms.iter().enumerate() {
            let v = sub(dom.pos, vertex);
            let (distance, time, emitter) = match kind {
                Kind::Muon => {
                    let along = dot(v, direction);
                    let closest = [0, 1, 2].map(|i| vertex[i] + along * direction[i]);
                    let rho = norm(sub(dom.pos, closest)).max(0.1);
                    // Light leaves the track at the Cherenkov angle.
                    let back = rho * cos_c / sin_c;
                    let emit = [0, 1, 2].map(|i| closest[i] - back * direction[i]);
                    (rho, (along - back) / C + rho / sin_c * N_GROUP / C, emit)
                }
                _ => {
                    let r = norm(v).max(0.1);
                    (r, r * N_GROUP / C, vertex)
                }
            };
            if distance > MAX_DISTANCE {
                continue;
            }
            if distance < SNAPSHOT_DISTANCE {
                self.near.push((index, t_event + time));
            }
            let mean = brightness * (-distance / ATTENUATION).exp() * 10.0 / (distance + 10.0);
            let n = rng.poisson(mean).min(60);
            if n == 0 {
                continue;
            }
            // Photons arrive on the PMTs facing the emission point.
            let towards = sub(emitter, dom.pos);
            let towards = towards.map(|c| c / norm(towards).max(1e-9));
            for _ in 0..n {
                let mut best = (rng.below(dom.dirs.len() as u64) as usize, f64::MIN);
                for _ in 0..4 {
                    let ch = rng.below(dom.dirs.len() as u64) as usize;
                    let c = dot(dom.dirs[ch], towards);
                    if c > best.1 {
                        best = (ch, c);
                    }
                }
                let delay = rng.exponential(1.0 + 0.04 * distance) + 1.5 * rng.normal();
                self.photons.push(PhotonHit {
                    dom: index,
                    channel: best.0 as u8,
                    time: t_event + time + delay,
                    tot: (26.0 + 5.0 * rng.normal()).clamp(3.0, 90.0) as u8,
                });
            }
        }
        self.photons.sort_by(|a, b| {
            (a.dom, a.time)
                .partial_cmp(&(b.dom, b.time))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }

    /// DOMs with at least two photons within the L1 window.
    fn triggered_doms(&self) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.photons.len() {
            let dom = self.photons[i].dom;
            let j = i + self.photons[i..]
                .iter()
                .take_while(|p| p.dom == dom)
                .count();
            n += usize::from(l1_count(&self.photons[i..j]) >= 2);
            i = j;
        }
        n
    }

    fn raw_time(&self, dom: usize, channel: u8, time: f64, tot: u8) -> Option<u32> {
        let t0 = self.doms[dom]
            .t0s
            .get(usize::from(channel))
            .copied()
            .unwrap_or(0.0);
        let raw = (time - t0 + slew(u32::from(tot))).round();
        (0.0..SLICE_NS).contains(&raw).then_some(raw as u32)
    }

    fn hits(
        &mut self,
        mask: u64,
        dom_rate_hz: &dyn Fn(u32) -> f64,
        silent: &dyn Fn(u32) -> bool,
    ) -> (Vec<TriggeredHit>, Vec<SnapshotHit>) {
        let mut triggered = Vec::new();
        let mut snapshot = Vec::new();
        let mut first_dom_time = f64::NAN;
        let mut coincident = 0;
        for i in 0..self.photons.len() {
            let p = self.photons[i];
            if i == 0 || self.photons[i - 1].dom != p.dom {
                first_dom_time = p.time;
                let n = self.photons[i..]
                    .iter()
                    .take_while(|q| q.dom == p.dom)
                    .count();
                coincident = l1_count(&self.photons[i..i + n]);
            }
            let dom_id = self.doms[p.dom].dom_id;
            let Some(time) = self.raw_time(p.dom, p.channel, p.time, p.tot) else {
                continue;
            };
            if silent(dom_id) {
                continue;
            }
            let hit = SnapshotHit {
                dom_id,
                channel_id: p.channel,
                time,
                tot: p.tot,
            };
            if coincident >= 2 && p.time - first_dom_time <= L1_WINDOW {
                let hit_mask = self.hit_mask(mask);
                triggered.push(TriggeredHit {
                    dom_id,
                    channel_id: p.channel,
                    time,
                    tot: p.tot,
                    trigger_mask: hit_mask,
                });
            }
            snapshot.push(hit);
        }
        // Every bit of the event's mask is carried by some hit.
        for (k, bit) in (0..64)
            .map(|b| 1u64 << b)
            .filter(|b| mask & b != 0)
            .enumerate()
        {
            if let Some(h) = triggered.get_mut(k) {
                h.trigger_mask |= bit;
            }
        }
        self.background(&mut snapshot, &triggered, dom_rate_hz, silent);
        triggered.sort_by_key(|h| (h.time, h.dom_id, h.channel_id));
        snapshot.sort_by_key(|h| (h.time, h.dom_id, h.channel_id));
        (triggered, snapshot)
    }

    /// A hit fired the event's main trigger (the muon one when present)
    /// and, at random, its other triggers.
    fn hit_mask(&mut self, mask: u64) -> u64 {
        let primary = if mask & trigger::MUON_3D != 0 {
            trigger::MUON_3D
        } else {
            1 << mask.trailing_zeros()
        };
        let mut m = primary;
        for bit in [trigger::SHOWER_3D, trigger::SHOWER_MX] {
            if mask & bit != 0 && self.rng.chance(0.4) {
                m |= bit;
            }
        }
        m
    }

    /// K40 hits of the DOMs near the particle inside the snapshot window.
    fn background(
        &mut self,
        snapshot: &mut Vec<SnapshotHit>,
        triggered: &[TriggeredHit],
        dom_rate_hz: &dyn Fn(u32) -> f64,
        silent: &dyn Fn(u32) -> bool,
    ) {
        let Some((lo, hi)) = window(triggered) else {
            return;
        };
        let (lo, hi) = (lo - WINDOW_MARGIN, hi + WINDOW_MARGIN);
        for k in 0..self.near.len() {
            let (index, _) = self.near[k];
            let dom = &self.doms[index];
            if silent(dom.dom_id) || dom.dirs.is_empty() {
                continue;
            }
            let n = self.rng.poisson(dom_rate_hz(dom.dom_id) * (hi - lo) * 1e-9);
            for _ in 0..n {
                let channel = self.rng.below(dom.dirs.len() as u64) as u8;
                let time = self.rng.uniform(lo, hi).round();
                if !(0.0..SLICE_NS).contains(&time) {
                    continue;
                }
                snapshot.push(SnapshotHit {
                    dom_id: dom.dom_id,
                    channel_id: channel,
                    time: time as u32,
                    tot: (24.0 + 6.0 * self.rng.normal()).clamp(2.0, 60.0) as u8,
                });
            }
        }
    }
}

/// Photons of one DOM (time-sorted) within the L1 window of its first.
fn l1_count(photons: &[PhotonHit]) -> usize {
    photons.first().map_or(0, |first| {
        photons
            .iter()
            .take_while(|p| p.time - first.time <= L1_WINDOW)
            .count()
    })
}

/// First and last raw time of the triggered hits.
fn window(triggered: &[TriggeredHit]) -> Option<(f64, f64)> {
    let lo = triggered.iter().map(|h| h.time).min()?;
    let hi = triggered.iter().map(|h| h.time).max()?;
    Some((f64::from(lo), f64::from(hi)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_consistent() {
        let detector = Detector::generate(3, 9, 18, 31);
        let mut generator = EventGenerator::new(&detector, 5);
        let header = DaqHeader::default();
        let mut counter = 0;
        let mut events = Vec::new();
        while events.len() < 40 {
            events.extend(generator.timeslice(header, 100.0, &mut counter, &|_| 200e3, &|_| false));
        }
        let mut masks = std::collections::HashSet::new();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.trigger_counter, i as u64);
            assert!(e.triggered_hits.len() >= 2, "{}", e.triggered_hits.len());
            let or = e.triggered_hits.iter().fold(0, |m, h| m | h.trigger_mask);
            assert_eq!(or, e.trigger_mask);
            for h in &e.triggered_hits {
                assert!(e.snapshot_hits.contains(&h.snapshot()));
                assert!(detector.module(h.dom_id).is_some());
            }
            assert!(e.snapshot_hits.len() > e.triggered_hits.len());
            let decoded = Event::decode(&e.encode()).unwrap();
            assert_eq!(&decoded, e);
            masks.insert(e.trigger_mask);
        }
        assert!(masks.len() >= 3, "{masks:?}");
    }
}
