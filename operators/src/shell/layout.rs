//! The DOM → (DU, floor) lookup every map needs, and the time window of
//! a map.

use pipeline::item::Time;

use super::time::iso_ns;

/// The optical modules of a detector in map order: DUs ascending
/// numerically, floors from the bottom. Base modules are not DOMs and are
/// left out of DOM maps.
#[derive(Debug, Clone)]
pub struct DomLayout {
    pub det_id: i32,
    pub dus: Vec<u32>,
    pub max_floor: i32,
    /// (dom_id, du, floor), sorted by (du, floor).
    pub doms: Vec<(u32, u32, i32)>,
}

impl DomLayout {
    pub fn of(det: &daq::detector::Detector) -> DomLayout {
        let mut doms: Vec<(u32, u32, i32)> = det
            .optical_modules()
            .map(|m| (m.dom_id, m.du, m.floor))
            .collect();
        doms.sort_by_key(|&(id, du, floor)| (du, floor, id));
        let mut dus: Vec<u32> = doms.iter().map(|d| d.1).collect();
        dus.dedup();
        DomLayout {
            det_id: det.det_id(),
            max_floor: doms.iter().map(|d| d.2).max().unwrap_or(0),
            dus,
            doms,
        }
    }

    /// Cells of a DOM map, a value per DOM where `value` has one.
    pub fn cells(&self, value: impl Fn(u32) -> Option<f64>) -> Vec<pipeline::plot::DomCell> {
        self.doms
            .iter()
            .map(|&(id, du, floor)| pipeline::plot::DomCell {
                du,
                floor,
                value: value(id),
            })
            .collect()
    }

    /// `{"det_id", "time_utc", "doms": [{"dom_id", "du", "floor", "value"}]}`
    /// for the DOMs with a value, in map order.
    pub fn json(&self, time_ns: u64, value: impl Fn(u32) -> Option<f64>) -> String {
        #[derive(serde::Serialize)]
        struct Dom {
            dom_id: u32,
            du: u32,
            floor: i32,
            value: f64,
        }
        #[derive(serde::Serialize)]
        struct Doc {
            det_id: i32,
            time_utc: String,
            doms: Vec<Dom>,
        }
        let doc = Doc {
            det_id: self.det_id,
            time_utc: iso_ns(time_ns),
            doms: self
                .doms
                .iter()
                .filter_map(|&(dom_id, du, floor)| {
                    value(dom_id).map(|value| Dom {
                        dom_id,
                        du,
                        floor,
                        value,
                    })
                })
                .collect(),
        };
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

/// When a DOM map is redrawn: once per window of data time in which data
/// arrived, at the window's last tick (a shell timer), and once more at
/// the end of input for a window the data did not finish. The monitors
/// keep their numbers; this keeps only the schedule.
#[derive(Debug, Clone)]
pub struct MapWindow {
    windows: crate::shell::Tumbling<()>,
}

impl MapWindow {
    /// `window` in ticks (at least 1).
    pub fn new(window: Time) -> MapWindow {
        MapWindow {
            windows: crate::shell::Tumbling::new(window),
        }
    }

    /// Data at `t` changed the map: it is drawn at the end of `t`'s window.
    pub fn touch<O>(&mut self, t: Time, out: &mut crate::shell::Out<O>) {
        self.windows.open(t, out);
    }

    /// From `on_timer(t)`: draw now (stamped `t`)?
    pub fn due(&mut self, t: Time) -> bool {
        self.windows.close(t).is_some()
    }

    /// From `on_end`: draw the unfinished window?
    pub fn at_end(&mut self) -> bool {
        !self.windows.drain().is_empty()
    }
}

#[cfg(test)]
mod map_window_tests {
    use super::MapWindow;
    use crate::shell::{run_by_hand, Monitor, Out};
    use pipeline::item::Time;

    struct Draws(MapWindow);
    impl Monitor<(), (Time, &'static str)> for Draws {
        fn on_data(&mut self, t: Time, _: Vec<()>, out: &mut Out<(Time, &'static str)>) {
            self.0.touch(t, out);
        }
        fn on_timer(&mut self, t: Time, out: &mut Out<(Time, &'static str)>) {
            if self.0.due(t) {
                out.give(t, (t, "window"));
            }
        }
        fn on_end(&mut self, last: Option<Time>, out: &mut Out<(Time, &'static str)>) {
            if self.0.at_end() {
                out.give(out.now(), (last.unwrap_or(0), "end"));
            }
        }
    }

    #[test]
    fn one_drawing_per_window_with_data() {
        let mut m = Draws(MapWindow::new(10));
        let got: Vec<_> = run_by_hand(
            &mut m,
            vec![(3, vec![()]), (7, vec![()]), (12, vec![()]), (45, vec![()])],
        )
        .into_iter()
        .map(|(_, d)| d)
        .collect();
        assert_eq!(got, vec![(9, "window"), (19, "window"), (45, "end")]);
    }
}
