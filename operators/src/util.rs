//! Small helpers shared by the monitors: UTC formatting without a date
//! library, and the DOM → (DU, floor) lookup every map needs.

use pipeline::item::{Time, TICK_NS};

/// (year, month, day) of a day count since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's civil-from-days algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Broken-down UTC time of Unix seconds.
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

pub fn utc(unix_s: i64) -> Utc {
    let days = unix_s.div_euclid(86_400);
    let rest = unix_s.rem_euclid(86_400);
    let (year, month, day) = civil(days);
    Utc {
        year,
        month,
        day,
        hour: (rest / 3600) as u32,
        minute: (rest % 3600 / 60) as u32,
        second: (rest % 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

/// ISO 8601 with `Z`, to the second: `2019-11-22T12:00:24Z`.
pub fn iso(unix_s: i64) -> String {
    let t = utc(unix_s);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// ISO 8601 of a time in ns; millisecond precision when it is not whole.
pub fn iso_ns(ns: u64) -> String {
    let s = (ns / 1_000_000_000) as i64;
    let ms = (ns % 1_000_000_000) / 1_000_000;
    if ms == 0 {
        iso(s)
    } else {
        let base = iso(s);
        format!("{}.{ms:03}Z", &base[..base.len() - 1])
    }
}

/// `2019-11-22 12:00:24 UTC`, for titles.
pub fn human(unix_s: i64) -> String {
    let t = utc(unix_s);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `HH:MM` for time axes.
pub fn hhmm(unix_s: i64) -> String {
    let t = utc(unix_s);
    format!("{:02}:{:02}", t.hour, t.minute)
}

/// `MM-DD HH:MM` for time axes spanning days.
pub fn mdhm(unix_s: i64) -> String {
    let t = utc(unix_s);
    format!("{:02}-{:02} {:02}:{:02}", t.month, t.day, t.hour, t.minute)
}

/// Start of a tick in ns.
pub fn ns_of(t: Time) -> u64 {
    t.saturating_mul(TICK_NS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_574_424_024), "2019-11-22T12:00:24Z");
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            iso_ns(1_574_424_024_100_000_000),
            "2019-11-22T12:00:24.100Z"
        );
        assert_eq!(utc(1_574_424_024).weekday, 5); // a Friday
        assert_eq!(human(1_574_424_024), "2019-11-22 12:00:24 UTC");
    }
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
/// arrived, at the window's last tick (a shell timer), and once more at
/// the end of input for a window the data did not finish. The monitors
/// keep their numbers; this keeps only the schedule.
#[derive(Debug, Clone)]
pub struct MapWindow {
    windows: crate::monitor::Tumbling<()>,
}

impl MapWindow {
    /// `window` in ticks (at least 1).
    pub fn new(window: Time) -> MapWindow {
        MapWindow {
            windows: crate::monitor::Tumbling::new(window),
        }
    }

    /// Data at `t` changed the map: it is drawn at the end of `t`'s window.
    pub fn touch<O>(&mut self, t: Time, out: &mut crate::monitor::Out<O>) {
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
    use crate::monitor::{run_by_hand, Monitor, Out};
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
