//! `type = "trigger_rates"`: event rates per trigger type per `interval`
//! of data time (spec §3.4) — `Overall`, `3DMuon`, `MXShower`,
//! `3DShower` from the event trigger mask — as rows for
//! `trigger_rates.csv`, log and linear plots with run changes, and the
//! `trigger_rate_zero` alert.
//!
//! Fixes of the original: windows are event-time windows (the CSV
//! timestamp is the UTC end of the window, never local time); the 24 h
//! history, the run changes and the alert state survive a restart; the
//! zero-rate alert fires after `zero_after` seconds of data time without
//! an event *while other data arrive* (any non-event input: summaryslices,
//! timeslices, monitoring packets), instead of ≥ 300 s and also when the
//! whole detector is off, and it resolves with the next event; a run change
//! is any change of the run number (not only an increase); partial windows
//! at the end of a stream are not written as if they were complete.

use std::collections::BTreeMap;
use std::sync::Arc;

use daq::event::trigger;
use pipeline::item::{Item, Row, Time, TICKS_PER_SECOND};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::plot::{Marker, Plot, Series, TimeMarker, TimeSeries};
use pipeline::runtime::state::StateStore;
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};

use crate::shell::alerting::AlertBook;
use crate::shell::alerting::AlertKind;
use crate::shell::{iso, iso_ns};
use crate::shell::{ordered_items, Monitor, Out, Tumbling};
use crate::sinks::plot::colormap::{DODGERBLUE, OLIVEDRAB, ORANGE, TOMATO};
use crate::sinks::plot::series::log_and_linear;

/// The alerts this monitor raises, in words (docs/alerts.md).
pub const ALERTS: &[AlertKind] = &[AlertKind {
    key: "trigger_rate_zero",
    firing: "no triggered events",
    resolved: "triggered events again",
}];

const NS: u64 = 1_000_000_000;
pub const HEADER: [&str; 5] = ["timestamp", "Overall", "3DMuon", "MXShower", "3DShower"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRates {
    /// Window in seconds of data time.
    #[serde(default = "default_interval", deserialize_with = "timespan::de::secs")]
    pub interval: u64,
    /// Seconds of data time without an event (while other data arrive)
    /// that raise `trigger_rate_zero`.
    #[serde(
        default = "default_zero_after",
        deserialize_with = "timespan::de::secs"
    )]
    pub zero_after: u64,
    #[serde(default)]
    pub with_minor_ticks: bool,
    /// Stem of the plots (`NAME.png`, `NAME_lin.png`) and the table name.
    #[serde(default = "default_filename")]
    pub filename: String,
    /// Hours of history shown and kept in the state.
    #[serde(default = "default_history", deserialize_with = "timespan::de::hours")]
    pub history_hours: u64,
    #[serde(
        default = "crate::monitors::dom_activity::default_reminder",
        deserialize_with = "timespan::de::secs"
    )]
    pub reminder_interval: u64,
}

fn default_interval() -> u64 {
    300
}
fn default_zero_after() -> u64 {
    10
}
fn default_filename() -> String {
    "trigger_rates".into()
}
fn default_history() -> u64 {
    24
}

impl NodeConfig for TriggerRates {
    const TYPE: &'static str = "trigger_rates";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "event rates per trigger type per interval (CSV rows, plots, run changes) and the trigger_rate_zero alert";
    const EXAMPLE: &'static str = r#"inputs = ["events", "summaryslices"]
interval = 10
zero_after = 20"#;
}

impl Node for TriggerRates {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            ("filename".into(), Resource::Plot(self.filename.clone())),
            (
                "filename".into(),
                Resource::Plot(format!("{}_lin", self.filename)),
            ),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![
            StreamKind::Events,
            StreamKind::Summaryslices,
            StreamKind::Timeslices,
            StreamKind::Tmch,
        ]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Plots)
    }
    fn outputs(&self) -> Vec<StreamKind> {
        vec![StreamKind::Plots, StreamKind::Table, StreamKind::Alerts]
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if self.interval == 0 {
            e.push(("interval".into(), "must be at least 1 second".into()));
        }
        if self.zero_after == 0 {
            e.push(("zero_after".into(), "must be at least 1 second".into()));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("trigger_rates needs an input"))?;
        let det_id = ctx.env.detector_model.as_ref().map(|d| d.det_id());
        let mut monitor = TriggerRatesMonitor::new(self, &ctx.node, det_id);
        if let Some(saved) = ctx.state().load_all::<Saved>().remove("state") {
            monitor.restore(saved);
        }
        Ok(Some(ordered_items(ctx, input, "trigger_rates", monitor)))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saved {
    /// (window end, UTC s; rates in Hz in HEADER order).
    history: Vec<(u64, [f64; 4])>,
    /// (UTC s of the first event of the run, run).
    runs: Vec<(f64, u32)>,
    det_id: Option<i32>,
    last_event_ns: Option<u64>,
    first_ns: Option<u64>,
    alerts: AlertBook,
    /// The open windows and the last window with data, filled while
    /// saving (the monitor keeps them outside): a stopped run continues
    /// them.
    #[serde(default)]
    open: Option<Tumbling<[u64; 4]>>,
    #[serde(default)]
    last_with_data: Option<u64>,
}

pub struct TriggerRatesMonitor {
    interval_s: u64,
    zero_after_ns: u64,
    minor: bool,
    filename: String,
    history_s: u64,
    s: Saved,
    /// The open window's counts (all, MUON_3D, SHOWER_MX, SHOWER_3D).
    windows: Tumbling<[u64; 4]>,
    /// Index of the latest window with data: empty windows after it are
    /// closed (rates of 0) for as long as the history shows them.
    last_with_data: Option<u64>,
}

impl TriggerRatesMonitor {
    pub fn new(c: &TriggerRates, node: &str, det_id: Option<i32>) -> TriggerRatesMonitor {
        TriggerRatesMonitor {
            interval_s: c.interval,
            zero_after_ns: c.zero_after * NS,
            minor: c.with_minor_ticks,
            filename: c.filename.clone(),
            history_s: c.history_hours * 3600,
            s: Saved {
                det_id,
                alerts: AlertBook::new(node, c.reminder_interval).with_kinds(ALERTS),
                ..Saved::default()
            },
            windows: Tumbling::new(c.interval * TICKS_PER_SECOND),
            last_with_data: None,
        }
    }

    pub fn restore(&mut self, mut saved: Saved) {
        if let Some(w) = saved.open.take() {
            self.windows.restore(w);
        }
        self.last_with_data = saved.last_with_data.take();
        let mut alerts = std::mem::take(&mut self.s.alerts);
        alerts.restore(std::mem::take(&mut saved.alerts));
        let det_id = self.s.det_id.or(saved.det_id);
        self.s = Saved {
            alerts,
            det_id,
            ..saved
        };
    }

    /// Writes the row and plots of the window ending at tick `end`.
    fn close(&mut self, end: Time, counts: [u64; 4], out: &mut Out) {
        let end_s = end / TICKS_PER_SECOND;
        let rates = counts.map(|c| c as f64 / self.interval_s as f64);
        let stamp = end - 1;
        let mut cells = vec![end_s.to_string()];
        cells.extend(rates.iter().map(|r| format!("{r:.6}")));
        out.give(
            stamp,
            Item::Row(Box::new(Row {
                table: self.filename.clone(),
                header: HEADER.iter().map(|h| h.to_string()).collect(),
                cells,
            })),
        );
        self.s.history.push((end_s, rates));
        let oldest = end_s.saturating_sub(self.history_s);
        self.s.history.retain(|(t, _)| *t > oldest);
        self.s.runs.retain(|(t, _)| *t > oldest as f64);
        for p in self.plots(end_s) {
            out.give(stamp, Item::Plot(Arc::new(p)));
        }
    }

    fn plots(&self, end_s: u64) -> [Plot; 2] {
        let styles = [
            (TOMATO, Marker::Diamond),
            (DODGERBLUE, Marker::Cross),
            (ORANGE, Marker::TriangleDown),
            (OLIVEDRAB, Marker::TriangleUp),
        ];
        let series: Vec<Series> = (0..4)
            .map(|i| Series {
                name: HEADER[i + 1].to_string(),
                color: styles[i].0,
                marker: styles[i].1,
                line: true,
                points: self
                    .s
                    .history
                    .iter()
                    .map(|(t, r)| (*t as f64, r[i]))
                    .collect(),
            })
            .collect();
        let det = self.s.det_id.map_or("?".to_string(), |d| d.to_string());
        let spec = |log: bool| TimeSeries {
            title: format!("Trigger Rates for DetID-{det}"),
            data_time_ns: end_s * NS,
            y_label: "trigger rate [Hz]".into(),
            log_y: log,
            minor_ticks: self.minor,
            series: series.clone(),
            y_auto: false,
            markers: self
                .s
                .runs
                .iter()
                .map(|(t, r)| TimeMarker {
                    time_s: *t,
                    label: format!("RUN {r}"),
                })
                .collect(),
        };
        let json = {
            #[derive(Serialize)]
            struct Doc<'a> {
                det_id: Option<i32>,
                time_utc: String,
                interval_s: u64,
                header: [&'a str; 5],
                rates: Vec<(u64, [f64; 4])>,
                runs: Vec<(String, u32)>,
            }
            let doc = Doc {
                det_id: self.s.det_id,
                time_utc: iso(end_s as i64),
                interval_s: self.interval_s,
                header: HEADER,
                rates: self.s.history.clone(),
                runs: self
                    .s
                    .runs
                    .iter()
                    .map(|(t, r)| (iso(*t as i64), *r))
                    .collect(),
            };
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        };
        log_and_linear(&self.filename, Some(json), spec)
    }

    fn witness(&mut self, t: Time, now: u64, out: &mut Out) {
        let first = *self.s.first_ns.get_or_insert(now);
        let last = self.s.last_event_ns.unwrap_or(first);
        let silent = now.saturating_sub(last);
        if silent >= self.zero_after_ns {
            let since = match self.s.last_event_ns {
                Some(l) => format!("last event at {}", iso_ns(l)),
                None => format!("none since {}", iso_ns(first)),
            };
            if let Some(a) = self.s.alerts.raise("trigger_rate_zero", now, || {
                format!(
                    "Trigger rate is 0 Hz: no event for {} s while the detector sends data ({since})",
                    silent / NS
                )
            }) {
                out.give(t, Item::Alert(Box::new(a)));
            }
        }
        self.s.alerts.remind(t, out);
    }
}

impl Monitor<Item> for TriggerRatesMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        // Every window from the first data on is closed, with or without
        // events (a rate of 0 is news).
        self.windows.open(t, out);
        self.last_with_data = Some(self.windows.window_of(t).index);
        for item in data {
            match &item {
                Item::Event(e) => {
                    let now = e.header.utc_ns();
                    self.s.det_id.get_or_insert(e.header.det_id);
                    self.s.first_ns.get_or_insert(now);
                    self.s.last_event_ns = Some(now);
                    if let Some(a) = self.s.alerts.clear("trigger_rate_zero", now, || {
                        "Trigger rate is back: events arrive again".to_string()
                    }) {
                        out.give(t, Item::Alert(Box::new(a)));
                    }
                    let run = e.header.run as u32;
                    if self.s.runs.last().is_none_or(|(_, r)| *r != run) {
                        self.s.runs.push(((now / NS) as f64, run));
                    }
                    let c = self.windows.at(t, out);
                    c[0] += 1;
                    c[1] += u64::from(e.trigger_mask & trigger::MUON_3D != 0);
                    c[2] += u64::from(e.trigger_mask & trigger::SHOWER_MX != 0);
                    c[3] += u64::from(e.trigger_mask & trigger::SHOWER_3D != 0);
                }
                Item::Summaryslice(s) => self.witness(t, s.header.utc_ns(), out),
                Item::Timeslice(s) => self.witness(t, s.header.utc_ns(), out),
                Item::Tmch(p) => self.witness(t, p.utc_ns(), out),
                _ => {}
            }
        }
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        self.s.alerts.remind(t, out);
        let Some((w, counts)) = self.windows.close(t) else {
            return;
        };
        self.close(w.end, counts, out);
        // The next window closes too (empty: rates of 0) while the history
        // still shows windows since the last data; a longer gap is left
        // out. (A partial window at the end of a replay is not written.)
        let keep = self.history_s / self.interval_s.max(1) + 1;
        if self
            .last_with_data
            .is_some_and(|l| w.index < l.saturating_add(keep))
        {
            self.windows.open(w.end, out);
        }
    }

    fn save(&mut self, store: &StateStore) {
        self.s.open = Some(self.windows.clone());
        self.s.last_with_data = self.last_with_data;
        store.save(&BTreeMap::from([("state".to_string(), &self.s)]));
        self.s.open = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::run_by_hand;
    use crate::shell::testing::{at, event, summaryslice};
    use pipeline::item::AlertState;

    fn monitor(interval: u64) -> TriggerRatesMonitor {
        let cfg: TriggerRates = serde_json::from_str(&format!(
            r#"{{"interval": {interval}, "zero_after": 10, "reminder_interval": 0}}"#
        ))
        .unwrap();
        TriggerRatesMonitor::new(&cfg, "trigger_rates", Some(7))
    }

    #[test]
    fn rates_per_trigger_type_and_run_changes() {
        let mut m = monitor(10);
        let t0 = 1_600_000_000u64 * NS;
        let mut input = Vec::new();
        // 20 events in [0, 10 s): all 3D muon, every 2nd also MX shower,
        // every 4th also 3D shower; run 5 then run 6 from 5 s on.
        for i in 0..20u64 {
            let ns = t0 + i * 500_000_000;
            let mut mask = trigger::MUON_3D;
            if i % 2 == 0 {
                mask |= trigger::SHOWER_MX;
            }
            if i % 4 == 0 {
                mask |= trigger::SHOWER_3D;
            }
            let run = if i < 10 { 5 } else { 6 };
            input.push((at(ns), vec![event(ns, run, mask, &[1])]));
        }
        // a summaryslice after the window closes it
        input.push((at(t0 + 10 * NS), vec![summaryslice(t0 + 10 * NS, &[])]));
        let out = run_by_hand(&mut m, input);
        let rows: Vec<_> = out
            .iter()
            .filter_map(|(_, i)| match i {
                Item::Row(r) => Some(r.cells.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            rows,
            vec![vec![
                "1600000010",
                "2.000000",
                "2.000000",
                "1.000000",
                "0.500000"
            ]]
        );
        assert_eq!(m.s.runs.len(), 2);
        assert_eq!(m.s.runs[1], (1_600_000_005.0, 6));
        let names: Vec<_> = out
            .iter()
            .filter_map(|(_, i)| match i {
                Item::Plot(p) => Some(p.name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["trigger_rates", "trigger_rates_lin"]);
    }

    #[test]
    fn zero_rate_fires_only_while_other_data_arrive_and_resolves() {
        let mut m = monitor(300);
        let t0 = 1_600_000_000u64 * NS;
        let mut input = vec![(at(t0), vec![event(t0, 1, trigger::MUON_3D, &[1])])];
        // Summaryslices for 30 s, no events: fires at 10 s.
        for i in 1..=300u64 {
            let ns = t0 + i * 100_000_000;
            input.push((at(ns), vec![summaryslice(ns, &[(1, 1, 0)])]));
        }
        // Silence (no data at all) for a minute, then an event.
        let back = t0 + 90 * NS;
        input.push((at(back), vec![event(back, 1, trigger::MUON_3D, &[1])]));
        let out = run_by_hand(&mut m, input);
        let alerts: Vec<_> = out
            .iter()
            .filter_map(|(_, i)| match i {
                Item::Alert(a) => Some(a.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!(alerts[0].key, "trigger_rate_zero");
        assert_eq!(alerts[0].state, AlertState::Firing);
        assert_eq!(alerts[0].time_utc_ns, t0 + 10 * NS);
        assert_eq!(alerts[1].state, AlertState::Resolved);
        assert_eq!(alerts[1].time_utc_ns, back);
    }
}
