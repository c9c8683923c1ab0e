//! `type = "timesync"`: the White Rabbit time-sync bit (bit 31 of each
//! DOM's frame status) per DOM, from timeslices (IO_TSSN) or
//! summaryslices (spec §3.7), as the alert `time_sync:<dom_id>`.
//!
//! Fixes of the original: one alert per DOM that fires when the bit is
//! cleared and resolves when it returns, instead of one message for the
//! whole list every 10 s while anything is wrong; the DOM is named with
//! its DU and floor; the state survives a restart. Routed to the log
//! Ligier by the `alerts_msg` sink, the lines keep the original's
//! `ALERT (MONITORING) …` form.

use std::collections::{BTreeMap, HashMap};

use pipeline::item::{Item, Time};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Role};
use pipeline::runtime::state::StateStore;
use pipeline::StreamKind;
use serde::Deserialize;

use crate::alerting::AlertBook;
use crate::monitor::{ordered_items, Monitor, Out};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSync {
    /// Seconds of data time between reminders of a firing alert (0 = none).
    #[serde(default = "crate::dom_activity::default_reminder")]
    pub reminder_interval: u64,
}

impl NodeConfig for TimeSync {
    const TYPE: &'static str = "timesync";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str = "White Rabbit time-sync bit per DOM as the time_sync alert";
}

impl Node for TimeSync {
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Timeslices, StreamKind::Summaryslices]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Alerts)
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("timesync needs an input"))?;
        let places = match &ctx.env.detector_model {
            Some(d) => d
                .modules()
                .iter()
                .map(|m| (m.dom_id, (m.du, m.floor)))
                .collect(),
            None => HashMap::new(),
        };
        let mut monitor = TimeSyncMonitor::new(&ctx.node, self.reminder_interval, places);
        if let Some(saved) = ctx.state().load_all::<AlertBook>().remove("alerts") {
            monitor.alerts.restore(saved);
        }
        Ok(Some(ordered_items(ctx, input, "timesync", monitor)))
    }
}

pub struct TimeSyncMonitor {
    places: HashMap<u32, (u32, i32)>,
    alerts: AlertBook,
}

impl TimeSyncMonitor {
    pub fn new(node: &str, reminder_s: u64, places: HashMap<u32, (u32, i32)>) -> TimeSyncMonitor {
        TimeSyncMonitor {
            places,
            alerts: AlertBook::new(node, reminder_s),
        }
    }

    fn check(&mut self, t: Time, now: u64, dom: u32, in_sync: bool, source: &str, out: &mut Out) {
        let key = format!("time_sync:{dom}");
        // Cheap path for the usual case: in sync and no alert open.
        if in_sync && !self.alerts.is_firing(&key) {
            return;
        }
        let place = match self.places.get(&dom) {
            Some((du, floor)) => format!("DU{du} floor {floor} (DOM {dom})"),
            None => format!("DOM {dom}"),
        };
        let alert = self.alerts.set(
            &key,
            !in_sync,
            now,
            || format!("invalid time sync for {place}: White Rabbit bit cleared in {source}"),
            || format!("time sync of {place} is valid again"),
        );
        if let Some(a) = alert {
            out.give(t, Item::Alert(a));
        }
    }
}

impl Monitor<Item> for TimeSyncMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        let mut now = 0;
        for item in data {
            match item {
                Item::Timeslice(ts) => {
                    now = ts.header.utc_ns();
                    let source = ts.data_type.tag_name().unwrap_or("a timeslice");
                    for f in &ts.frames {
                        self.check(t, now, f.dom_id, f.status.time_sync_valid(), source, out);
                    }
                }
                Item::Summaryslice(s) => {
                    now = s.header.utc_ns();
                    for f in &s.frames {
                        self.check(t, now, f.dom_id, f.status.time_sync_valid(), "IO_SUM", out);
                    }
                }
                _ => {}
            }
        }
        if now > 0 {
            for a in self.alerts.reminders(now) {
                out.give(t, Item::Alert(a));
            }
        }
    }

    fn on_progress(&mut self, _f: Option<Time>, _out: &mut Out) {}

    fn save(&mut self, store: &StateStore) {
        store.save(&BTreeMap::from([("alerts".to_string(), &self.alerts)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::run_by_hand;
    use crate::testing::{at, timeslice, SYNC};
    use pipeline::item::AlertState;

    #[test]
    fn cleared_bit_fires_once_per_dom_and_resolves() {
        let places = HashMap::from([(11, (3, 4))]);
        let mut m = TimeSyncMonitor::new("timesync", 0, places);
        let t0 = 1_600_000_000_000_000_000u64;
        let input = (0..50u64)
            .map(|i| {
                let ns = t0 + i * 100_000_000;
                let s11 = if (10..30).contains(&i) { 0 } else { SYNC };
                (at(ns), vec![timeslice(ns, &[(11, s11), (12, SYNC | 0x5)])])
            })
            .collect();
        let out = run_by_hand(&mut m, input);
        let alerts: Vec<_> = out
            .iter()
            .filter_map(|(_, i)| match i {
                Item::Alert(a) => Some(a.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].key, "time_sync:11");
        assert_eq!(alerts[0].state, AlertState::Firing);
        assert_eq!(
            alerts[0].message,
            "invalid time sync for DU3 floor 4 (DOM 11): White Rabbit bit cleared in IO_TSSN"
        );
        assert_eq!(alerts[0].time_utc_ns, t0 + 1_000_000_000);
        assert_eq!(alerts[1].state, AlertState::Resolved);
        assert_eq!(alerts[1].time_utc_ns, t0 + 3_000_000_000);
    }
}
