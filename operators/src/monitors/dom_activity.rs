//! `type = "dom_activity"`: seconds since each DOM last appeared in a
//! summaryslice, on the DOM map (spec §3.2), and the `dom_inactive:<dom>`
//! alert.
//!
//! Fixes of the original: "now" is the data time of the latest
//! summaryslice, not the wall clock, so a replay shows what live showed and
//! a stalled stream does not turn every DOM red; a DOM of the detector
//! never seen counts as absent since the first summaryslice; inactivity is
//! an alert with a stable key per DOM (fires once, reminds, resolves when
//! the DOM is back) instead of a log line per plot; the last-seen times
//! survive a restart (state).

use std::collections::BTreeMap;
use std::sync::Arc;

use daq::detector::IdMap;

use pipeline::item::{Item, Time, TICKS_PER_SECOND, TICK_NS};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::plot::{Colormap, DomMap, Plot, PlotSpec};
use pipeline::runtime::state::StateStore;
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};

use crate::shell::alerting::AlertBook;
use crate::shell::alerting::AlertKind;
use crate::shell::{iso_ns, ns_of, DomLayout, MapWindow};
use crate::shell::{ordered_items, Monitor, Out};
use crate::sinks::plot::colormap::{DEEPPINK, DEEPSKYBLUE, LIGHTGRAY};

/// The alerts this monitor raises, in words (docs/alerts.md).
pub const ALERTS: &[AlertKind] = &[AlertKind {
    key: "dom_inactive:<dom_id>",
    firing: "inactive",
    resolved: "sending data again",
}];

const NS: u64 = 1_000_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomActivity {
    /// Seconds of data time between map updates.
    #[serde(default = "default_interval", deserialize_with = "timespan::de::secs")]
    pub interval: u64,
    /// A DOM absent for longer than this (s) raises `dom_inactive:<dom_id>`.
    #[serde(default = "default_inactive", deserialize_with = "timespan::de::secs")]
    pub inactive_after: u64,
    /// Top of the colour scale (s); longer absences show in the over colour.
    #[serde(default = "default_vmax")]
    pub vmax: f64,
    /// Seconds of data time between reminders of a firing alert (0 = none).
    #[serde(default = "default_reminder", deserialize_with = "timespan::de::secs")]
    pub reminder_interval: u64,
    #[serde(default = "default_name")]
    pub name: String,
}

fn default_interval() -> u64 {
    10
}
fn default_inactive() -> u64 {
    300
}
fn default_vmax() -> f64 {
    900.0
}
pub fn default_reminder() -> u64 {
    3600
}
fn default_name() -> String {
    "dom_activity".into()
}

impl NodeConfig for DomActivity {
    const TYPE: &'static str = "dom_activity";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "seconds since each DOM was last in a summaryslice (DOM map) and the dom_inactive alert";
    const EXAMPLE: &'static str = r#"inputs = ["summaryslices"]
inactive_after = 20"#;
}

impl Node for DomActivity {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            ("name".into(), Resource::Plot(self.name.clone())),
            (String::new(), Resource::Detector),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Summaryslices]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Plots)
    }
    fn outputs(&self) -> Vec<StreamKind> {
        vec![StreamKind::Plots, StreamKind::Alerts]
    }
    fn check(&self) -> Vec<(String, String)> {
        if self.interval == 0 {
            vec![("interval".into(), "must be at least 1 second".into())]
        } else {
            Vec::new()
        }
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("dom_activity needs an input"))?;
        let mut monitor =
            DomActivityMonitor::new(self, &ctx.node, DomLayout::of(&*ctx.detector()?));
        if let Some(saved) = ctx.state().load_all::<Saved>().remove("state") {
            monitor.restore(saved);
        }
        Ok(Some(ordered_items(ctx, input, "dom_activity", monitor)))
    }
}

/// What survives a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saved {
    /// Per DOM, the data time of its latest summary frame. A hash map: it
    /// is updated for every frame of every slice, and a B-tree search per
    /// frame was most of this monitor's cost. Saved sorted, as before.
    #[serde(with = "sorted")]
    last_seen_ns: IdMap<u64>,
    first_ns: Option<u64>,
    latest_ns: u64,
    alerts: AlertBook,
}

/// An id map saved as a sorted map (the state file does not change).
mod sorted {
    use super::{BTreeMap, IdMap};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(m: &IdMap<u64>, s: S) -> Result<S::Ok, S::Error> {
        m.iter()
            .map(|(k, v)| (*k, *v))
            .collect::<BTreeMap<u32, u64>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IdMap<u64>, D::Error> {
        Ok(BTreeMap::<u32, u64>::deserialize(d)?.into_iter().collect())
    }
}

pub struct DomActivityMonitor {
    layout: DomLayout,
    inactive_ns: u64,
    vmax: f64,
    name: String,
    s: Saved,
    schedule: MapWindow,
    /// The inactivity timer pending, if any.
    armed: Option<Time>,
}

impl DomActivityMonitor {
    pub fn new(c: &DomActivity, node: &str, layout: DomLayout) -> DomActivityMonitor {
        DomActivityMonitor {
            layout,
            inactive_ns: c.inactive_after * NS,
            vmax: c.vmax,
            name: c.name.clone(),
            s: Saved {
                alerts: AlertBook::new(node, c.reminder_interval).with_kinds(ALERTS),
                ..Saved::default()
            },
            schedule: MapWindow::new(c.interval * TICKS_PER_SECOND),
            armed: None,
        }
    }

    pub fn restore(&mut self, mut saved: Saved) {
        let mut alerts = std::mem::take(&mut self.s.alerts);
        alerts.restore(std::mem::take(&mut saved.alerts));
        self.s = Saved { alerts, ..saved };
    }

    fn where_is(&self, dom: u32) -> String {
        match self.layout.doms.iter().find(|d| d.0 == dom) {
            Some((_, du, floor)) => format!("DU{du} floor {floor} (DOM {dom})"),
            None => format!("DOM {dom}"),
        }
    }

    /// Seconds since `dom` was last seen, at the latest slice.
    fn absent_s(&self, dom: u32) -> Option<f64> {
        let last = *self.s.last_seen_ns.get(&dom)?;
        Some(self.s.latest_ns.saturating_sub(last) as f64 / NS as f64)
    }

    fn draw(&mut self, stamp: Time, out: &mut Out) {
        let data_end = self.s.latest_ns + TICK_NS;
        let value = |dom: u32| self.absent_s(dom);
        let map = DomMap {
            title: format!(
                "DOM Activity for DetID-{} - via Summary Slices",
                self.layout.det_id
            ),
            data_time_ns: data_end,
            colorbar_label: "last activity [s]".into(),
            vmin: 0.0,
            vmax: self.vmax,
            colormap: Colormap::Cividis,
            under: DEEPSKYBLUE,
            over: DEEPPINK,
            missing: LIGHTGRAY,
            dus: self.layout.dus.clone(),
            max_floor: self.layout.max_floor,
            doms: self.layout.cells(value),
            categories: Vec::new(),
            columns: None,
        };
        let plot = Plot {
            name: self.name.clone(),
            spec: PlotSpec::DomMap(map),
            json: Some(self.layout.json(data_end, value)),
        };
        out.give(stamp, Item::Plot(Arc::new(plot)));
    }
}

impl DomActivityMonitor {
    /// The first tick at which `dom` counts as inactive (absent for more
    /// than `inactive_after`) if nothing of it arrives before.
    fn deadline(&self, dom: u32) -> Time {
        let first = self.s.first_ns.unwrap_or(0);
        let last = self.s.last_seen_ns.get(&dom).copied().unwrap_or(first);
        (last + self.inactive_ns) / TICK_NS + 1
    }

    /// One timer at the earliest deadline of a DOM not yet firing.
    fn arm(&mut self, out: &mut Out) {
        if self.armed.is_some() || self.s.first_ns.is_none() {
            return;
        }
        let next = self
            .layout
            .doms
            .iter()
            .filter(|d| !self.s.alerts.is_firing(&format!("dom_inactive:{}", d.0)))
            .map(|d| self.deadline(d.0))
            .min();
        if let Some(t) = next {
            let t = t.max(out.now());
            self.armed = Some(t);
            out.timer(t);
        }
    }

    /// The inactivity check at tick `t` (a timer): every DOM absent for
    /// more than `inactive_after` fires, all at `t` (one group).
    fn check(&mut self, t: Time, out: &mut Out) {
        let now = ns_of(t);
        let first = self.s.first_ns.unwrap_or(now);
        for i in 0..self.layout.doms.len() {
            let (dom, du, floor) = self.layout.doms[i];
            let last = self.s.last_seen_ns.get(&dom).copied();
            let absent = now.saturating_sub(last.unwrap_or(first));
            if absent <= self.inactive_ns {
                continue;
            }
            let key = format!("dom_inactive:{dom}");
            let place = self.where_is(dom);
            let since = match last {
                Some(l) => format!("last seen {}", iso_ns(l)),
                None => format!("not seen since monitoring started at {}", iso_ns(first)),
            };
            if let Some(a) = self.s.alerts.raise_at(&key, now, Some((du, floor)), || {
                format!(
                    "{place} inactive: no summaryslice data for {} s ({since})",
                    absent / NS
                )
            }) {
                out.give(t, Item::Alert(Box::new(a)));
            }
        }
    }
}

impl Monitor<Item> for DomActivityMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        for item in data {
            let Item::Summaryslice(s) = item else {
                continue;
            };
            let now = s.header.utc_ns();
            self.s.latest_ns = self.s.latest_ns.max(now);
            self.s.first_ns.get_or_insert(now);
            self.schedule.touch(t, out);
            // Usually nothing is firing: then no key is formatted per frame.
            let any_firing = self.s.alerts.firing().next().is_some();
            for f in &s.frames {
                let prev = self.s.last_seen_ns.insert(f.dom_id, now);
                if !any_firing {
                    continue;
                }
                let key = format!("dom_inactive:{}", f.dom_id);
                if self.s.alerts.is_firing(&key) {
                    let gap = now.saturating_sub(prev.or(self.s.first_ns).unwrap_or(now)) / NS;
                    let place = self.where_is(f.dom_id);
                    if let Some(a) = self.s.alerts.clear(&key, now, || {
                        format!("{place} is sending summaryslice data again after {gap} s")
                    }) {
                        out.give(t, Item::Alert(Box::new(a)));
                        // It needs a deadline again.
                        self.armed = None;
                    }
                }
            }
        }
        self.arm(out);
        self.s.alerts.remind(t, out);
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        if self.armed.is_some_and(|a| a <= t) {
            self.armed = None;
            self.check(t, out);
            self.arm(out);
        }
        if self.schedule.due(t) {
            self.draw(t, out);
        }
        self.s.alerts.remind(t, out);
    }

    fn on_end(&mut self, _last: Option<Time>, out: &mut Out) {
        if self.schedule.at_end() {
            self.draw(out.now(), out);
        }
    }

    fn save(&mut self, store: &StateStore) {
        store.save(&BTreeMap::from([("state".to_string(), &self.s)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::run_by_hand;
    use crate::shell::testing::{at, summaryslice};
    use pipeline::item::AlertState;

    #[test]
    fn last_seen_times_are_saved_sorted_as_before() {
        let mut s = Saved::default();
        for (dom, ns) in [(808_447_186u32, 3u64), (10, 2), (9, 1)] {
            s.last_seen_ns.insert(dom, ns);
        }
        let text = serde_json::to_string(&s).unwrap();
        // The state file of the B-tree version: ids in ascending order.
        assert!(
            text.contains(r#""last_seen_ns":{"9":1,"10":2,"808447186":3}"#),
            "{text}"
        );
        let back: Saved = serde_json::from_str(&text).unwrap();
        assert_eq!(back.last_seen_ns, s.last_seen_ns);
    }

    #[test]
    fn time_keys_take_spans() {
        let cfg: DomActivity = serde_json::from_str(
            r#"{"inactive_after": "2m", "interval": "10s", "reminder_interval": "1h"}"#,
        )
        .unwrap();
        assert_eq!(
            (cfg.inactive_after, cfg.interval, cfg.reminder_interval),
            (120, 10, 3600)
        );
        let err = serde_json::from_str::<DomActivity>(r#"{"interval": "1.5s"}"#).unwrap_err();
        assert!(err.to_string().contains("whole number of seconds"), "{err}");
    }

    #[test]
    fn silent_dom_fires_once_and_resolves_with_du_and_floor() {
        let det = daq::detector::Detector::generate(7, 1, 2, 31);
        let layout = DomLayout::of(&det);
        let (a, b) = (layout.doms[0].0, layout.doms[1].0);
        let cfg: DomActivity = serde_json::from_str(
            r#"{"inactive_after": 5, "interval": 10, "reminder_interval": 0}"#,
        )
        .unwrap();
        let mut m = DomActivityMonitor::new(&cfg, "dom_activity", layout);
        let t0: u64 = 1_600_000_000 * NS;
        let mut input = Vec::new();
        for i in 0..200u64 {
            let ns = t0 + i * 100_000_000;
            // DOM b silent from 2 s to 12 s.
            let frames: Vec<(u32, u8, u32)> = if (20..120).contains(&i) {
                vec![(a, 10, 0)]
            } else {
                vec![(a, 10, 0), (b, 10, 0)]
            };
            input.push((at(ns), vec![summaryslice(ns, &frames)]));
        }
        let out = run_by_hand(&mut m, input);
        let alerts: Vec<_> = out
            .iter()
            .filter_map(|(_, i)| match i {
                Item::Alert(a) => Some(a.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!(alerts[0].key, format!("dom_inactive:{b}"));
        assert_eq!(alerts[0].state, AlertState::Firing);
        assert!(alerts[0]
            .message
            .starts_with(&format!("DU1 floor 2 (DOM {b}) inactive")));
        // Last seen at 1.9 s; fires at the first slice more than 5 s later.
        assert_eq!(alerts[0].time_utc_ns, t0 + 70 * 100_000_000);
        assert_eq!(alerts[1].state, AlertState::Resolved);
        assert_eq!(alerts[1].time_utc_ns, t0 + 120 * 100_000_000);
        let plots: Vec<_> = out
            .iter()
            .filter_map(|(_, i)| match i {
                Item::Plot(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(plots.len(), 2, "one map per 10 s window");
        let PlotSpec::DomMap(map) = &plots[1].spec else {
            panic!()
        };
        assert!(map.doms.iter().all(|c| c.value == Some(0.0)));
    }
}
