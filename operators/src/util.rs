//! Small helpers shared by the monitors: UTC formatting (re-exported from
//! `timefmt`), and the DOM → (DU, floor) lookup every map needs.

use pipeline::item::{Time, TICK_NS};

/// UTC as text: one implementation for the workspace (`timefmt`, on jiff).
pub use timefmt::{hhmm, human, iso, iso_ns, mdhm};

/// Start of a tick in ns.
pub fn ns_of(t: Time) -> u64 {
    t.saturating_mul(TICK_NS)
}

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
/// arrived, stamped at the window's last tick, as soon as data of a later
/// window arrives or the frontier passes the window's end (or the stream
/// ends). The monitors keep their numbers; this keeps only the schedule.
#[derive(Debug, Clone)]
pub struct MapWindow {
    window: Time,
    /// Index of the window of the latest data.
    current: Option<u64>,
    /// Data arrived since the last drawing.
    dirty: bool,
}

impl MapWindow {
    /// `window` in ticks (at least 1).
    pub fn new(window: Time) -> MapWindow {
        MapWindow {
            window: window.max(1),
            current: None,
            dirty: false,
        }
    }

    /// Data at `t` is about to be added: the stamp to draw the previous
    /// window at first, if it is due. Call [`MapWindow::touch`] for data
    /// that changes the map.
    pub fn enter(&mut self, t: Time) -> Option<Time> {
        let index = t / self.window;
        let due = match self.current {
            Some(w) if self.dirty && w != index => Some((w + 1) * self.window - 1),
            _ => None,
        };
        if due.is_some() {
            self.dirty = false;
        }
        self.current = Some(index);
        due
    }

    /// The map changed since it was last drawn.
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// The frontier is `f` (`None` = end of stream): the stamp to draw the
    /// current window at, if it is done and changed.
    pub fn passed(&mut self, f: Option<Time>) -> Option<Time> {
        let end = (self.current? + 1) * self.window;
        if self.dirty && f.is_none_or(|f| end <= f) {
            self.dirty = false;
            Some(end - 1)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod map_window_tests {
    use super::MapWindow;

    #[test]
    fn one_drawing_per_window_with_data() {
        let mut m = MapWindow::new(10);
        assert_eq!(m.passed(Some(100)), None, "nothing seen yet");
        assert_eq!(m.enter(3), None);
        m.touch();
        assert_eq!(m.enter(7), None, "same window");
        assert_eq!(m.passed(Some(9)), None, "window not over");
        assert_eq!(m.enter(12), Some(9), "a later window draws the earlier one");
        assert_eq!(m.passed(Some(30)), None, "nothing new since");
        m.touch();
        assert_eq!(m.passed(Some(20)), Some(19));
        assert_eq!(m.passed(None), None, "drawn once");
        assert_eq!(m.enter(45), None);
        m.touch();
        assert_eq!(m.passed(None), Some(49), "end of stream");
    }
}
