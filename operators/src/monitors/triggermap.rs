//! `type = "triggermap"`: hits per DOM of the last `max_events` events —
//! `hitmap.png` (all snapshot hits) and `triggermap.png` (triggered hits)
//! (spec §3.5), redrawn every `plot_every` seconds of data time.
//!
//! Fixes of the original: a DOM's row comes from the detector (DUs sorted
//! numerically, every module of the DU in floor order), so any number of
//! floors and base modules land in the right place; a hit on a DOM not in
//! the detector is skipped (the decoder counts it) instead of stopping the
//! event and dumping a file; the redraw follows data time.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use daq::detector::Detector;
use pipeline::item::{Item, Time, TICKS_PER_SECOND};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::plot::{HitMatrix, Plot, PlotSpec};
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};

use crate::shell::iso_ns;
use crate::shell::MapWindow;
use crate::shell::{ordered_items, Monitor, Out};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerMap {
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Seconds of data time between redraws.
    #[serde(
        default = "default_plot_every",
        deserialize_with = "timespan::de::secs"
    )]
    pub plot_every: u64,
}

fn default_max_events() -> usize {
    1000
}
fn default_plot_every() -> u64 {
    60
}

impl NodeConfig for TriggerMap {
    const TYPE: &'static str = "triggermap";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "hit map and trigger map of the last N events (hitmap.png, triggermap.png)";
    const EXAMPLE: &'static str = r#"inputs = ["events"]
plot_every = 10"#;
}

impl Node for TriggerMap {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            (String::new(), Resource::Plot("hitmap".into())),
            (String::new(), Resource::Plot("triggermap".into())),
            (String::new(), Resource::Detector),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Events]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Plots)
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if self.max_events == 0 {
            e.push(("max_events".into(), "must be at least 1".into()));
        }
        if self.plot_every == 0 {
            e.push(("plot_every".into(), "must be at least 1 second".into()));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("triggermap needs an input"))?;
        let monitor = TriggerMapMonitor::new(self, &*ctx.detector()?);
        Ok(Some(ordered_items(ctx, input, "triggermap", monitor)))
    }
}

type Counts = Arc<Vec<(u32, u16)>>;

pub struct TriggerMapMonitor {
    det_id: i32,
    max_events: usize,
    row_of: HashMap<u32, u32>,
    /// (row, dom_id, du, floor) in row order.
    rows: Vec<(u32, u32, i32)>,
    du_starts: Vec<usize>,
    hits: VecDeque<Counts>,
    triggered: VecDeque<Counts>,
    /// Events seen in total, and (event number, run) of each run start.
    n_events: u64,
    runs: Vec<(u64, u32)>,
    last_ns: u64,
    /// Redrawn at the end of each period with events; events since the
    /// last drawing.
    schedule: MapWindow,
    dirty: bool,
}

impl TriggerMapMonitor {
    pub fn new(c: &TriggerMap, det: &Detector) -> TriggerMapMonitor {
        let mut rows = Vec::new();
        let mut du_starts = Vec::new();
        for du in det.dus() {
            du_starts.push(rows.len());
            let mut modules: Vec<_> = det.modules_of_du(du).collect();
            modules.sort_by_key(|m| m.floor);
            rows.extend(modules.iter().map(|m| (m.dom_id, m.du, m.floor)));
        }
        TriggerMapMonitor {
            det_id: det.det_id(),
            max_events: c.max_events,
            row_of: rows
                .iter()
                .enumerate()
                .map(|(i, r)| (r.0, i as u32))
                .collect(),
            rows,
            du_starts,
            hits: VecDeque::new(),
            triggered: VecDeque::new(),
            n_events: 0,
            runs: Vec::new(),
            last_ns: 0,
            schedule: MapWindow::new(c.plot_every * TICKS_PER_SECOND),
            dirty: false,
        }
    }

    fn count(&self, doms: impl Iterator<Item = u32>) -> Counts {
        let mut c: BTreeMap<u32, u16> = BTreeMap::new();
        for d in doms {
            if let Some(&row) = self.row_of.get(&d) {
                let e = c.entry(row).or_default();
                *e = e.saturating_add(1);
            }
        }
        Arc::new(c.into_iter().collect())
    }

    fn matrix(&self, word: &str, events: &VecDeque<Counts>) -> (HitMatrix, String) {
        let first = self.n_events - events.len() as u64;
        let markers = self
            .runs
            .iter()
            .filter(|(n, _)| *n >= first)
            .map(|(n, r)| ((n - first) as usize, format!("RUN {r}")))
            .collect();
        // Every DU labelled; its floors 1, 6, 12 … too when there is room.
        let thin = self.du_starts.len() > 8;
        let row_labels = self
            .rows
            .iter()
            .enumerate()
            .filter(|(i, (_, _, floor))| {
                if thin {
                    self.du_starts.contains(i)
                } else {
                    *floor == 1 || (*floor > 0 && floor % 6 == 0)
                }
            })
            .map(|(i, (_, du, floor))| (i, format!("DU{du}-DOM{floor}")))
            .collect();
        let m = HitMatrix {
            title: format!(
                "{word} for DetID-{} - via the last {} Events",
                self.det_id, self.max_events
            ),
            data_time_ns: self.last_ns,
            colorbar_label: "number of hits".into(),
            n_rows: self.rows.len(),
            row_labels,
            du_starts: self.du_starts.clone(),
            n_columns: self.max_events,
            events: events.iter().cloned().collect(),
            markers,
        };
        // The numbers: hits per DOM summed over the events shown.
        let mut sums = vec![0u64; self.rows.len()];
        for e in events {
            for &(row, n) in e.iter() {
                sums[row as usize] += u64::from(n);
            }
        }
        #[derive(Serialize)]
        struct Dom {
            dom_id: u32,
            du: u32,
            floor: i32,
            value: u64,
        }
        #[derive(Serialize)]
        struct Doc {
            det_id: i32,
            time_utc: String,
            events: usize,
            doms: Vec<Dom>,
        }
        let doc = Doc {
            det_id: self.det_id,
            time_utc: iso_ns(self.last_ns),
            events: events.len(),
            doms: self
                .rows
                .iter()
                .zip(&sums)
                .filter(|(_, s)| **s > 0)
                .map(|(&(dom_id, du, floor), &value)| Dom {
                    dom_id,
                    du,
                    floor,
                    value,
                })
                .collect(),
        };
        (m, serde_json::to_string_pretty(&doc).unwrap_or_default())
    }

    fn draw(&mut self, stamp: Time, out: &mut Out) {
        for (name, word, events) in [
            ("hitmap", "Hits on DOMs", &self.hits),
            ("triggermap", "Trigger Map", &self.triggered),
        ] {
            let (m, json) = self.matrix(word, events);
            let plot = Plot {
                name: name.into(),
                spec: PlotSpec::HitMatrix(m),
                json: Some(json),
            };
            out.give(stamp, Item::Plot(Arc::new(plot)));
        }
        self.dirty = false;
    }
}

impl Monitor<Item> for TriggerMapMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        for item in data {
            let Item::Event(e) = item else { continue };
            if e.snapshot_hits.is_empty() && e.triggered_hits.is_empty() {
                continue;
            }
            let run = e.header.run as u32;
            if self.runs.last().is_none_or(|(_, r)| *r != run) {
                self.runs.push((self.n_events, run));
            }
            self.n_events += 1;
            self.last_ns = self.last_ns.max(e.header.utc_ns());
            let hits = self.count(e.snapshot_hits.iter().map(|h| h.dom_id));
            let trig = self.count(e.triggered_hits.iter().map(|h| h.dom_id));
            self.hits.push_back(hits);
            self.triggered.push_back(trig);
            while self.hits.len() > self.max_events {
                self.hits.pop_front();
                self.triggered.pop_front();
            }
            self.dirty = true;
            self.schedule.touch(t, out);
        }
        let oldest = self.n_events - self.hits.len() as u64;
        // Forget runs that started before the window, except the current one.
        while self.runs.len() > 1 && self.runs[1].0 <= oldest {
            self.runs.remove(0);
        }
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        if self.schedule.due(t) && self.dirty {
            self.draw(t, out);
        }
    }

    fn on_end(&mut self, _last: Option<Time>, out: &mut Out) {
        if self.schedule.at_end() && self.dirty {
            self.draw(out.now(), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::run_by_hand;
    use crate::shell::testing::{at, event};

    #[test]
    fn rows_from_the_detector_and_last_n_events() {
        // 3 DUs of 20 floors with base modules: 63 slots.
        let det = Detector::generate(7, 3, 20, 31);
        let cfg: TriggerMap =
            serde_json::from_str(r#"{"max_events": 3, "plot_every": 60}"#).unwrap();
        let mut m = TriggerMapMonitor::new(&cfg, &det);
        let top = det.module_at(3, 20).unwrap().dom_id;
        let low = det.module_at(1, 1).unwrap().dom_id;
        let t0 = 1_600_000_000u64 * 1_000_000_000;
        let input = (0..5u64)
            .map(|i| {
                let ns = t0 + i * NS_PER_S;
                (
                    at(ns),
                    vec![event(ns, 1 + (i / 4) as i32, 16, &[top, low, 99])],
                )
            })
            .collect();
        let out = run_by_hand(&mut m, input);
        assert_eq!(out.len(), 2);
        let Item::Plot(p) = &out[0].1 else { panic!() };
        assert_eq!(p.name, "hitmap");
        let PlotSpec::HitMatrix(h) = &p.spec else {
            panic!()
        };
        assert_eq!(h.n_rows, 63);
        assert_eq!(h.events.len(), 3);
        // DU1: base (row 0), floor 1 (row 1); DU3 floor 20 is the last row.
        assert_eq!(*h.events[2], vec![(1, 2), (62, 2)]);
        assert_eq!(h.markers, vec![(2, "RUN 2".to_string())]);
        let Item::Plot(t) = &out[1].1 else { panic!() };
        let PlotSpec::HitMatrix(tm) = &t.spec else {
            panic!()
        };
        assert_eq!(*tm.events[0], vec![(1, 1), (62, 1)]);
    }

    const NS_PER_S: u64 = 1_000_000_000;
}
