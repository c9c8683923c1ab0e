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
//!
//! With a detector, it also draws the state of every DOM as a DOM map
//! (`timesync.png` + `.json`, every `interval` s of data time): 1 = in
//! sync, 0 = out of sync, no frame seen = no data, each in a colour the
//! legend names.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use daq::detector::IdMap;
use pipeline::item::{Item, Time, TICKS_PER_SECOND, TICK_NS};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::plot::{Category, Colormap, DomMap, Plot, PlotSpec};
use pipeline::runtime::state::StateStore;
use pipeline::StreamKind;
use serde::Deserialize;

use crate::shell::alerting::AlertBook;
use crate::shell::alerting::AlertKind;
use crate::shell::{ordered_items, Monitor, Out};
use crate::shell::{DomLayout, MapWindow};
use crate::sinks::plot::colormap::{DEEPPINK, LIGHTGRAY, MEDIUMSEAGREEN};

/// The alerts this monitor raises, in words (docs/alerts.md).
pub const ALERTS: &[AlertKind] = &[AlertKind {
    key: "time_sync:<dom_id>",
    firing: "without time sync",
    resolved: "in time sync again",
}];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSync {
    /// Seconds of data time between reminders of a firing alert (0 = none).
    #[serde(
        default = "crate::monitors::dom_activity::default_reminder",
        deserialize_with = "timespan::de::secs"
    )]
    pub reminder_interval: u64,
    /// Seconds of data time between updates of the DOM map.
    #[serde(default = "default_interval", deserialize_with = "timespan::de::secs")]
    pub interval: u64,
    /// Name of the DOM map (`NAME.png`, `NAME.json`).
    #[serde(default = "default_name")]
    pub name: String,
}

fn default_interval() -> u64 {
    10
}
fn default_name() -> String {
    "timesync".into()
}

impl NodeConfig for TimeSync {
    const TYPE: &'static str = "timesync";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str = "White Rabbit time-sync bit per DOM as the time_sync alert";
    const EXAMPLE: &'static str = r#"inputs = ["timeslices"]"#;
}

impl Node for TimeSync {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![("name".into(), Resource::Plot(self.name.clone()))]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Timeslices, StreamKind::Summaryslices]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Alerts)
    }
    fn outputs(&self) -> Vec<StreamKind> {
        vec![StreamKind::Alerts, StreamKind::Plots]
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
        if let Some(d) = &ctx.env.detector_model {
            monitor.map = Some(SyncMap::new(
                DomLayout::of(d),
                self.interval * TICKS_PER_SECOND,
                &self.name,
            ));
        }
        if let Some(saved) = ctx.state().load_all::<AlertBook>().remove("alerts") {
            monitor.alerts.restore(saved);
        }
        Ok(Some(ordered_items(ctx, input, "timesync", monitor)))
    }
}

pub struct TimeSyncMonitor {
    places: HashMap<u32, (u32, i32)>,
    alerts: AlertBook,
    /// The DOM map, when the detector is known.
    pub map: Option<SyncMap>,
}

/// The per-DOM time-sync state drawn as a DOM map.
pub struct SyncMap {
    pub layout: DomLayout,
    pub name: String,
    /// Latest time-sync bit per DOM.
    pub state: IdMap<bool>,
    pub latest_ns: u64,
    schedule: MapWindow,
}

impl SyncMap {
    /// A map of `layout` redrawn per `window` ticks as `name`.
    pub fn new(layout: DomLayout, window: Time, name: &str) -> SyncMap {
        SyncMap {
            layout,
            name: name.to_string(),
            state: IdMap::default(),
            latest_ns: 0,
            schedule: MapWindow::new(window),
        }
    }

    fn draw(&mut self, stamp: Time, out: &mut Out) {
        let data_end = self.latest_ns + TICK_NS;
        let state = &self.state;
        let value = |dom: u32| state.get(&dom).map(|ok| if *ok { 1.0 } else { 0.0 });
        let map = DomMap {
            title: format!(
                "Time Sync for DetID-{} - White Rabbit bit",
                self.layout.det_id
            ),
            data_time_ns: data_end,
            colorbar_label: "time sync".into(),
            // States, not a scale: 1 = in sync, 0 = out of sync, no frame
            // = no data (the legend names all three).
            vmin: 0.0,
            vmax: 1.0,
            colormap: Colormap::Viridis,
            under: DEEPPINK,
            over: DEEPPINK,
            missing: LIGHTGRAY,
            dus: self.layout.dus.clone(),
            max_floor: self.layout.max_floor,
            doms: self.layout.cells(value),
            categories: vec![
                Category {
                    value: 1.0,
                    color: MEDIUMSEAGREEN,
                    label: "in sync".into(),
                },
                Category {
                    value: 0.0,
                    color: DEEPPINK,
                    label: "out of sync".into(),
                },
            ],
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

impl TimeSyncMonitor {
    pub fn new(node: &str, reminder_s: u64, places: HashMap<u32, (u32, i32)>) -> TimeSyncMonitor {
        TimeSyncMonitor {
            places,
            alerts: AlertBook::new(node, reminder_s).with_kinds(ALERTS),
            map: None,
        }
    }

    /// One frame's time-sync bit (the map's window was opened by the
    /// caller: once per slice, not per frame).
    /// A slice with frames changed the map: drawn at the end of `t`'s window.
    fn touch(&mut self, t: Time, frames: bool, out: &mut Out) {
        if let (true, Some(m)) = (frames, &mut self.map) {
            m.schedule.touch(t, out);
        }
    }

    fn check(&mut self, t: Time, now: u64, dom: u32, in_sync: bool, source: &str, out: &mut Out) {
        if let Some(m) = &mut self.map {
            m.state.insert(dom, in_sync);
            m.latest_ns = m.latest_ns.max(now);
        }
        // Cheap path for the usual case, without formatting the key (this
        // runs for every frame of every slice: 4,140 per slice on ARCA):
        // in sync and no alert open.
        if in_sync && self.alerts.firing().next().is_none() {
            return;
        }
        let key = format!("time_sync:{dom}");
        if in_sync && !self.alerts.is_firing(&key) {
            return;
        }
        let at = self.places.get(&dom).copied();
        let place = match at {
            Some((du, floor)) => format!("DU{du} floor {floor} (DOM {dom})"),
            None => format!("DOM {dom}"),
        };
        let alert = self.alerts.set_at(
            &key,
            !in_sync,
            now,
            at,
            || format!("invalid time sync for {place}: White Rabbit bit cleared in {source}"),
            || format!("time sync of {place} is valid again"),
        );
        if let Some(a) = alert {
            out.give(t, Item::Alert(Box::new(a)));
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
                    self.touch(t, !ts.frames.is_empty(), out);
                    for f in &ts.frames {
                        self.check(t, now, f.dom_id, f.status.time_sync_valid(), source, out);
                    }
                }
                Item::Summaryslice(s) => {
                    now = s.header.utc_ns();
                    self.touch(t, !s.frames.is_empty(), out);
                    for f in &s.frames {
                        self.check(t, now, f.dom_id, f.status.time_sync_valid(), "IO_SUM", out);
                    }
                }
                _ => {}
            }
        }
        if now > 0 {
            self.alerts.remind(t, out);
        }
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        self.alerts.remind(t, out);
        let Some(m) = &mut self.map else { return };
        if m.schedule.due(t) {
            m.draw(t, out);
        }
    }

    fn on_end(&mut self, _last: Option<Time>, out: &mut Out) {
        let Some(m) = &mut self.map else { return };
        if m.schedule.at_end() {
            m.draw(out.now(), out);
        }
    }

    fn save(&mut self, store: &StateStore) {
        store.save(&BTreeMap::from([("alerts".to_string(), &self.alerts)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::run_by_hand;
    use crate::shell::testing::{at, timeslice, SYNC};
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

    #[test]
    fn dom_map_shows_ok_lost_and_missing() {
        let det = daq::detector::Detector::generate(5, 1, 3, 31);
        let layout = DomLayout::of(&det);
        let doms: Vec<u32> = layout.doms.iter().map(|d| d.0).collect();
        let mut m = TimeSyncMonitor::new("timesync", 0, HashMap::new());
        m.map = Some(SyncMap::new(layout, 10 * TICKS_PER_SECOND, "timesync"));
        let t0 = 1_600_000_000_000_000_000u64;
        let input = (0..25u64)
            .map(|i| {
                let ns = t0 + i * 1_000_000_000;
                (
                    at(ns),
                    vec![timeslice(ns, &[(doms[0], 0), (doms[1], SYNC)])],
                )
            })
            .collect();
        let mut out = run_by_hand(&mut m, input);
        let plots: Vec<Arc<Plot>> = out
            .drain(..)
            .filter_map(|(_, i)| match i {
                Item::Plot(p) => Some(p),
                _ => None,
            })
            .collect();
        // Windows [0, 10), [10, 20) and, at the end, [20, 25).
        assert_eq!(plots.len(), 3);
        assert_eq!(plots[2].name, "timesync");
        let json: serde_json::Value =
            serde_json::from_str(plots[2].json.as_deref().unwrap()).unwrap();
        let values: Vec<(u64, f64)> = json["doms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["dom_id"].as_u64().unwrap(), d["value"].as_f64().unwrap()))
            .collect();
        assert_eq!(
            values,
            vec![(u64::from(doms[0]), 0.0), (u64::from(doms[1]), 1.0)]
        );
        let PlotSpec::DomMap(map) = &plots[2].spec else {
            panic!()
        };
        let names: Vec<&str> = map.categories.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(names, ["in sync", "out of sync"]);
    }
}
