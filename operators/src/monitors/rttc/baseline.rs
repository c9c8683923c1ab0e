//! A DU's RTTC baseline over the last 24 hours: one hdrhistogram per hour
//! of data time and their running sum, the expired hour subtracted, so
//! the median and spread cost the same whatever the rate of samples, and
//! the state is small enough to save (a restart needs no day of DB
//! queries).
//!
//! Values are recorded as the offset from a per-DU reference (its first
//! sample) plus [`OFFSET`]: a window of ±[`OFFSET`] ps at 2 significant
//! digits (1–4 ps resolution, ~1 kB per hour per DU); values beyond it
//! are clamped to its edge and counted. Only samples within the band
//! (median ± max(k·spread, min_band)) are added, so the window is wide
//! enough unless the spread itself exceeds ~100 ps.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Half width of the recorded window around the reference, ps.
pub const OFFSET: u64 = 512;
const HOUR_S: u64 = 3600;

fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 2 * OFFSET, 2).expect("valid bounds")
}

/// The median and half the 15.9–84.1 % range (one σ of a normal
/// distribution, robust against the outliers of a jump).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub median: f64,
    pub spread: f64,
    pub samples: u64,
}

pub struct Baseline {
    reference: Option<i64>,
    hours: BTreeMap<u64, Histogram<u32>>,
    total: Histogram<u32>,
    pub clamped: u64,
    hours_kept: u64,
}

/// What survives a restart: per hour, (recorded value, count) pairs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saved {
    pub reference: Option<i64>,
    pub hours: BTreeMap<u64, Vec<(u64, u64)>>,
}

impl Baseline {
    pub fn new(hours_kept: u64) -> Baseline {
        Baseline {
            reference: None,
            hours: BTreeMap::new(),
            total: histogram(),
            clamped: 0,
            hours_kept: hours_kept.max(1),
        }
    }

    /// Adds an RTTC sample (ps) taken at `t_s` (UTC s); expires hours
    /// older than the window before `t_s`'s hour.
    pub fn add(&mut self, t_s: u64, rttc: f64) {
        let reference = *self.reference.get_or_insert(rttc.round() as i64);
        let off = (rttc.round() as i64 - reference) + OFFSET as i64;
        let v = if off < 1 || off > 2 * OFFSET as i64 {
            self.clamped += 1;
            off.clamp(1, 2 * OFFSET as i64)
        } else {
            off
        } as u64;
        let hour = t_s / HOUR_S;
        let h = self.hours.entry(hour).or_insert_with(histogram);
        // Within bounds by construction.
        let _ = h.record(v);
        let _ = self.total.record(v);
        self.expire(hour);
    }

    /// Drops the hours that left the window ending with `hour`.
    pub fn expire(&mut self, hour: u64) {
        let first = hour.saturating_sub(self.hours_kept - 1);
        while let Some((&h, _)) = self.hours.first_key_value() {
            if h >= first {
                break;
            }
            if let Some(old) = self.hours.remove(&h) {
                let _ = self.total.subtract(&old);
            }
        }
    }

    /// The baseline, if it has at least one sample.
    pub fn band(&self) -> Option<Band> {
        let reference = self.reference? as f64;
        let n = self.total.len();
        if n == 0 {
            return None;
        }
        // The middle of the bucket, not its upper edge.
        let at = |q: f64| {
            let v = self
                .total
                .median_equivalent(self.total.value_at_quantile(q));
            v as f64 - OFFSET as f64 + reference
        };
        Some(Band {
            median: at(0.5),
            spread: (at(0.8413) - at(0.1587)) / 2.0,
            samples: n,
        })
    }

    pub fn save(&self) -> Saved {
        Saved {
            reference: self.reference,
            hours: self
                .hours
                .iter()
                .map(|(h, hist)| {
                    let pairs = hist
                        .iter_recorded()
                        .map(|v| (v.value_iterated_to(), v.count_at_value() as u64))
                        .collect();
                    (*h, pairs)
                })
                .collect(),
        }
    }

    pub fn restore(hours_kept: u64, s: &Saved) -> Baseline {
        let mut b = Baseline::new(hours_kept);
        b.reference = s.reference;
        for (h, pairs) in &s.hours {
            let mut hist = histogram();
            for (v, n) in pairs {
                let _ = hist.record_n(*v, u32::try_from(*n).unwrap_or(u32::MAX));
            }
            let _ = b.total.add(&hist);
            b.hours.insert(*h, hist);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_spread_expiry_and_round_trip() {
        let mut b = Baseline::new(24);
        // Hour 0: 1 000 000 ± 10 ps; hour 30: 1 000 300 ± 10 ps.
        for i in 0..1000u64 {
            b.add(i, 1_000_000.0 + (i % 21) as f64 - 10.0);
        }
        let band = b.band().unwrap();
        assert!((band.median - 1_000_000.0).abs() <= 2.0, "{band:?}");
        assert!(band.spread > 4.0 && band.spread < 10.0, "{band:?}");
        let saved = b.save();
        let back = Baseline::restore(24, &saved);
        assert_eq!(back.band(), b.band());
        for i in 0..1000u64 {
            b.add(30 * 3600 + i, 1_000_300.0 + (i % 21) as f64 - 10.0);
        }
        // Hour 0 expired: only the new level remains.
        let band = b.band().unwrap();
        assert!((band.median - 1_000_300.0).abs() <= 2.0, "{band:?}");
        assert_eq!(band.samples, 1000);
    }
}
