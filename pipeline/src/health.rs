//! The detector's health at a glance: which DOMs have which alert
//! conditions active right now, per DU and condition. The
//! `detector_state` node maintains it (in differential dataflow) and
//! publishes each data time's table here; the gauges
//! (`km3mon_doms_affected`, `km3mon_alerts_firing`), `km3mon ctl health`,
//! the chatbot's `status` and the web's Detector page read it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::runtime::prom::gauges;

/// One DOM with at least one active condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomHealth {
    pub dom_id: u32,
    pub du: u32,
    pub floor: i32,
    /// Active conditions, sorted.
    pub conditions: Vec<String>,
}

/// The table at one data time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthSnapshot {
    /// Data time of the table (Unix s); `None` before the first alert.
    pub time_utc: Option<f64>,
    /// Every condition seen since the start, sorted (the table's columns:
    /// a condition that cleared stays, at 0).
    pub conditions: Vec<String>,
    /// Every DOM of the run's detector: (du, floor, dom_id), for the map.
    pub layout: Vec<(u32, i32, u32)>,
    /// (du, condition) → DOMs affected; only non-zero counts.
    pub by_du: BTreeMap<u32, BTreeMap<String, u64>>,
    /// condition → DOMs affected in the whole detector.
    pub totals: BTreeMap<String, u64>,
    /// The affected DOMs, by DOM id.
    pub doms: Vec<DomHealth>,
}

impl HealthSnapshot {
    /// DOMs with `n` or more conditions at once.
    pub fn doms_with_at_least(&self, n: usize) -> usize {
        self.doms.iter().filter(|d| d.conditions.len() >= n).count()
    }

    /// DOMs of the layout: the base modules (floor 0) have no PMTs and
    /// are not counted as DOMs.
    pub fn dom_count(&self) -> usize {
        self.layout
            .iter()
            .filter(|(_, floor, _)| *floor > 0)
            .count()
    }

    /// The DU × condition table in text (`km3mon ctl health`, the chat).
    pub fn text(&self) -> String {
        let Some(t) = self.time_utc else {
            return format!(
                "detector: {} DOMs, no alert condition so far",
                self.dom_count()
            );
        };
        let when = timefmt::iso(t as i64);
        if self.totals.is_empty() {
            return format!(
                "detector at {when}: all {} DOMs without active alert conditions",
                self.dom_count()
            );
        }
        let conds = &self.conditions;
        let mut s = String::new();
        let affected = self.doms.len();
        let _ = writeln!(
            s,
            "detector at {when}: {affected} of {} DOMs with active conditions, {} with several",
            self.dom_count(),
            self.doms_with_at_least(2)
        );
        let width = conds.iter().map(|c| c.len()).max().unwrap_or(0).max(5);
        let _ = write!(s, "{:<6}", "DU");
        for c in conds {
            let _ = write!(s, " {c:>width$}");
        }
        s.push('\n');
        for (du, row) in &self.by_du {
            let _ = write!(s, "{:<6}", format!("DU {du}"));
            for c in conds {
                let n = row.get(c).copied().unwrap_or(0);
                let cell = if n == 0 {
                    "-".to_string()
                } else {
                    n.to_string()
                };
                let _ = write!(s, " {cell:>width$}");
            }
            s.push('\n');
        }
        let _ = write!(s, "{:<6}", "all");
        for c in conds {
            let _ = write!(s, " {:>width$}", self.totals.get(c).copied().unwrap_or(0));
        }
        s
    }
}

/// The published table; one per run, shared through the control plane.
#[derive(Debug, Default)]
pub struct DetectorHealth {
    /// Shared with the `health` stream the alert router reads: the
    /// gauges and `ctl health` show the very table its texts count from.
    snap: RwLock<Arc<HealthSnapshot>>,
    /// Bumped on every publish (the web pushes a change when it moves).
    version: AtomicU64,
}

impl DetectorHealth {
    pub fn publish(&self, snap: impl Into<Arc<HealthSnapshot>>) {
        *self.snap.write().expect("health lock") = snap.into();
        self.version.fetch_add(1, Ordering::Release);
    }
    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot::clone(&self.shared())
    }
    /// The published table without copying it.
    pub fn shared(&self) -> Arc<HealthSnapshot> {
        self.snap.read().expect("health lock").clone()
    }
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

impl DetectorHealth {
    /// The table's gauges (exported with the nodes' series by
    /// `runtime::prom::NodeCollector`, read at scrape time).
    pub fn encode(
        &self,
        enc: &mut prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        let s = self.shared();
        let conds = &s.conditions;
        // Every (DU, condition) of the table's columns, zeros included:
        // a condition that clears must read 0, not vanish.
        let mut dus: Vec<u32> = s.layout.iter().map(|l| l.0).collect();
        dus.sort_unstable();
        dus.dedup();
        gauges(
            enc,
            "km3mon_doms_affected",
            "DOMs of the DU with the alert condition active (data time of the detector_state table).",
            dus.iter().flat_map(|du| {
                let row = s.by_du.get(du);
                conds.iter().map(move |c| {
                    (
                        vec![("du", du.to_string()), ("condition", c.clone())],
                        row.and_then(|r| r.get(c)).copied().unwrap_or(0),
                    )
                })
            }),
        )?;
        gauges(
            enc,
            "km3mon_alerts_firing",
            "DOMs of the detector with the alert condition active.",
            conds.iter().map(|c| {
                (
                    vec![("condition", c.clone())],
                    s.totals.get(c).copied().unwrap_or(0),
                )
            }),
        )?;
        gauges(
            enc,
            "km3mon_detector_state_data_timestamp_seconds",
            "Data time (Unix s) of the detector_state table.",
            s.time_utc.map(|t| (Vec::new(), t)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_table() {
        let mut s = HealthSnapshot {
            // DU 1's base module (floor 0) is not a DOM.
            layout: vec![(1, 0, 10), (1, 1, 11), (1, 2, 12), (2, 1, 21)],
            ..Default::default()
        };
        assert!(s
            .text()
            .contains("detector: 3 DOMs, no alert condition so far"));
        s.time_utc = Some(1_704_067_200.0);
        assert!(s.text().contains("all 3 DOMs without"));
        s.by_du
            .entry(1)
            .or_default()
            .insert("dom_inactive".into(), 2);
        s.by_du.entry(2).or_default().insert("time_sync".into(), 1);
        s.totals.insert("dom_inactive".into(), 2);
        s.totals.insert("time_sync".into(), 1);
        s.conditions = vec!["dom_inactive".into(), "time_sync".into()];
        s.doms = vec![DomHealth {
            dom_id: 11,
            du: 1,
            floor: 1,
            conditions: vec!["dom_inactive".into(), "time_sync".into()],
        }];
        let t = s.text();
        assert!(
            t.starts_with("detector at 2024-01-01T00:00:00Z: 1 of 3 DOMs"),
            "{t}"
        );
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].contains("dom_inactive") && lines[1].contains("time_sync"));
        assert!(
            lines[2].starts_with("DU 1") && lines[2].contains(" 2 ") && lines[2].ends_with('-')
        );
        assert!(lines[4].starts_with("all"));
    }
}
