//! `km3mon ctl rttc-reset --du N` (or `reset rttc N`): an operator
//! forgets one DU's RTTC baseline, e.g. after a re-calibration that
//! should not wait `adopt_after`. The control plane queues the request
//! for the node; the Detector Manager thread puts it into the node's
//! ingress as a row, so the reset acts at one data time, in order with
//! the samples, like any record.

use pipeline::item::{Item, Row, Time, TICK_NS};

use super::baseline::Baseline;
use super::RttcMonitor;
use crate::shell::Out;

/// The table of an operator's reset of one DU's baseline (`km3mon ctl
/// rttc-reset --du N`): a record of the node's own input, so the reset
/// acts at one data time, in order with the samples (never written out).
pub const RESET_TABLE: &str = "rttc_reset";

/// A reset request as a row: the DU.
pub fn reset_row(du: u32) -> Row {
    Row {
        table: RESET_TABLE.into(),
        header: vec!["du".into()],
        cells: vec![du.to_string()],
    }
}

/// The DU of a `reset` key: `5`, `du5` or `DU5`.
pub fn reset_du(key: &str) -> Option<u32> {
    let k = key.trim();
    let k = k
        .strip_prefix("du")
        .or_else(|| k.strip_prefix("DU"))
        .unwrap_or(k);
    k.parse().ok()
}

impl RttcMonitor {
    /// An operator's reset of DU `du`'s baseline: forgotten (and any new
    /// level with it); a new one is learnt from the next samples, judged
    /// once it has `min_samples`. An alert of the DU resolves.
    pub fn reset(&mut self, t: Time, du: u32, out: &mut Out) {
        let Some(d) = self.dus.get_mut(&du) else {
            return;
        };
        d.baseline = Baseline::new(24);
        d.candidate = None;
        d.out_since = None;
        d.last = None;
        let now_ns = t * TICK_NS;
        self.last_ns = self.last_ns.max(now_ns);
        tracing::warn!("RTTC of DU{du}: baseline reset by an operator; learning a new one");
        let message = || {
            format!("RTTC of DU{du}'s base CLB: baseline reset by an operator; a new one is learnt from the next samples")
        };
        if let Some(a) = self.alerts.clear(&format!("rttc:{du}"), now_ns, message) {
            out.give(t, Item::Alert(Box::new(a)));
        }
        self.schedule.touch(t, out);
    }
}
