//! `type = "timeslice_rates"`: the timeslice arrival rates per stream (L0,
//! L1, L2, SN = IO_TSL0, IO_TSL1, IO_TSL2, IO_TSSN) over time, plotted
//! from the rows of `tag_rates` (spec §3.14): `timeslice_rates.png` (log
//! y, with `timeslice_rates.json`) and `timeslice_rates_lin.png`, in the
//! style of the trigger rates, with run-change lines.
//!
//! Fixes of the original: the counts come from `tag_rates`, whose DAQ
//! header reading skips the version field (det id and run were misread);
//! a stream without messages has no points instead of breaking the
//! run-change helper; the history (default 24 h of data time) is operator
//! state and survives a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use pipeline::item::{Item, Row, Time};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::plot::{Marker, Plot, Rgb, Series, TimeMarker, TimeSeries};
use pipeline::runtime::state::StateStore;
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};

use crate::shell::iso;
use crate::shell::{ordered_items, Monitor, Out};
use crate::sinks::plot::colormap::{DODGERBLUE, OLIVEDRAB, ORANGE, TOMATO};
use crate::sinks::plot::series::log_and_linear;

/// The streams, their series names and looks (spec §3.14).
const STREAMS: [(&str, &str, Rgb, Marker); 4] = [
    ("IO_TSL0", "L0", TOMATO, Marker::Diamond),
    ("IO_TSL1", "L1", DODGERBLUE, Marker::Cross),
    ("IO_TSL2", "L2", ORANGE, Marker::TriangleDown),
    ("IO_TSSN", "SN", OLIVEDRAB, Marker::TriangleUp),
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimesliceRates {
    /// Hours of data time shown.
    #[serde(default = "default_history", deserialize_with = "timespan::de::hours")]
    pub history_hours: u64,
    /// Name of the log plot (`NAME.png`, `NAME.json`); the linear one is
    /// `NAME_lin.png`.
    #[serde(default = "default_name")]
    pub name: String,
}

fn default_history() -> u64 {
    24
}
fn default_name() -> String {
    "timeslice_rates".into()
}

impl NodeConfig for TimesliceRates {
    const TYPE: &'static str = "timeslice_rates";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "timeslice rates per stream (L0/L1/L2/SN) over time, from the rows of tag_rates";
    const EXAMPLE: &'static str = r#"inputs = ["tag_rates"]"#;
}

impl Node for TimesliceRates {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            ("name".into(), Resource::Plot(self.name.clone())),
            ("name".into(), Resource::Plot(format!("{}_lin", self.name))),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Table]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Plots)
    }
    fn check(&self) -> Vec<(String, String)> {
        if self.history_hours == 0 {
            vec![("history_hours".into(), "must be at least 1".into())]
        } else {
            Vec::new()
        }
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("timeslice_rates needs an input"))?;
        let det_id = ctx.env.detector_model.as_ref().map(|d| d.det_id());
        let mut monitor = TimesliceRatesMonitor::new(self, det_id);
        if let Some(saved) = ctx.state().load_all::<Saved>().remove("state") {
            monitor.s = saved;
        }
        Ok(Some(ordered_items(ctx, input, "timeslice_rates", monitor)))
    }
}

/// What survives a restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saved {
    /// Per stream (index into STREAMS): (window end, UTC s; rate in Hz).
    points: [Vec<(u64, f64)>; 4],
    /// (UTC s of the window where a run started, run).
    runs: Vec<(u64, u32)>,
}

pub struct TimesliceRatesMonitor {
    det_id: Option<i32>,
    history_s: u64,
    name: String,
    s: Saved,
}

/// (stream index, window end s, run, rate Hz, run change) of a tag_rates row.
fn parse(row: &Row) -> Option<(usize, u64, Option<u32>, f64, bool)> {
    let col = |name: &str| {
        let i = row.header.iter().position(|h| h == name)?;
        row.cells.get(i).map(String::as_str)
    };
    let stream = STREAMS.iter().position(|s| Some(s.0) == col("tag"))?;
    Some((
        stream,
        col("timestamp")?.parse().ok()?,
        col("run").and_then(|r| r.parse().ok()),
        col("rate_hz")?.parse().ok()?,
        col("run_change") == Some("1"),
    ))
}

impl TimesliceRatesMonitor {
    pub fn new(c: &TimesliceRates, det_id: Option<i32>) -> TimesliceRatesMonitor {
        TimesliceRatesMonitor {
            det_id,
            history_s: c.history_hours * 3600,
            name: c.name.clone(),
            s: Saved::default(),
        }
    }

    fn plots(&self, end_s: u64) -> [Plot; 2] {
        let series: Vec<Series> = STREAMS
            .iter()
            .zip(&self.s.points)
            .map(|(&(_, name, color, marker), points)| Series {
                name: name.to_string(),
                color,
                marker,
                line: false,
                points: points.iter().map(|&(t, r)| (t as f64, r)).collect(),
            })
            .collect();
        let det = self.det_id.map_or("?".to_string(), |d| d.to_string());
        let spec = |log: bool| TimeSeries {
            title: format!("Timeslice Rates for DetID-{det}"),
            data_time_ns: end_s * 1_000_000_000,
            y_label: "timeslice rate [Hz]".into(),
            log_y: log,
            minor_ticks: false,
            series: series.clone(),
            y_auto: false,
            markers: self
                .s
                .runs
                .iter()
                .map(|&(t, r)| TimeMarker {
                    time_s: t as f64,
                    label: format!("RUN {r}"),
                })
                .collect(),
        };
        let json = {
            #[derive(Serialize)]
            struct Doc<'a> {
                det_id: Option<i32>,
                time_utc: String,
                /// Per stream name: (window end UTC, rate Hz).
                rates: BTreeMap<&'a str, Vec<(String, f64)>>,
                runs: Vec<(String, u32)>,
            }
            let doc = Doc {
                det_id: self.det_id,
                time_utc: iso(end_s as i64),
                rates: STREAMS
                    .iter()
                    .zip(&self.s.points)
                    .map(|(s, p)| (s.1, p.iter().map(|&(t, r)| (iso(t as i64), r)).collect()))
                    .collect(),
                runs: self
                    .s
                    .runs
                    .iter()
                    .map(|&(t, r)| (iso(t as i64), r))
                    .collect(),
            };
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        };
        log_and_linear(&self.name, Some(json), spec)
    }
}

impl Monitor<Item> for TimesliceRatesMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        let mut end = None;
        for item in &data {
            let Item::Row(row) = item else { continue };
            let Some((stream, end_s, run, rate, change)) = parse(row) else {
                continue;
            };
            self.s.points[stream].push((end_s, rate));
            if let Some(run) = run {
                let new = self.s.runs.last().is_none_or(|&(_, r)| r != run);
                if new && (change || self.s.runs.is_empty()) {
                    self.s.runs.push((end_s, run));
                }
            }
            end = end.max(Some(end_s));
        }
        let Some(end_s) = end else { return };
        let oldest = end_s.saturating_sub(self.history_s);
        for p in &mut self.s.points {
            p.retain(|(t, _)| *t > oldest);
        }
        self.s.runs.retain(|(t, _)| *t > oldest);
        for p in self.plots(end_s) {
            out.give(t, Item::Plot(Arc::new(p)));
        }
    }

    fn save(&mut self, store: &StateStore) {
        store.save(&BTreeMap::from([("state".to_string(), &self.s)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::tag_rates::HEADER;
    use crate::shell::run_by_hand;
    use pipeline::plot::PlotSpec;

    fn row(end_s: u64, tag: &str, run: u32, messages: u64, change: bool) -> Item {
        let cells = [
            end_s.to_string(),
            tag.to_string(),
            run.to_string(),
            messages.to_string(),
            "0".into(),
            format!("{:.3}", messages as f64 / 10.0),
            "0.0".into(),
            if change { "1" } else { "0" }.into(),
        ];
        Item::Row(Box::new(Row {
            table: "tag_rates".into(),
            header: HEADER.iter().map(|h| h.to_string()).collect(),
            cells: cells.to_vec(),
        }))
    }

    #[test]
    fn rates_per_stream_with_run_changes() {
        let cfg: TimesliceRates = serde_json::from_str("{}").unwrap();
        let mut m = TimesliceRatesMonitor::new(&cfg, Some(133));
        let input = vec![
            (
                9,
                vec![
                    row(10, "IO_TSL1", 7, 100, false),
                    row(10, "IO_TSSN", 7, 95, false),
                    row(10, "IO_SUM", 7, 100, false),
                ],
            ),
            (19, vec![row(20, "IO_TSSN", 8, 100, true)]),
        ];
        let out = run_by_hand(&mut m, input);
        let plots: Vec<_> = out
            .iter()
            .filter_map(|(_, i)| match i {
                Item::Plot(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(plots.len(), 4, "log + linear per window");
        assert_eq!(plots[3].name, "timeslice_rates_lin");
        let PlotSpec::TimeSeries(ts) = &plots[2].spec else {
            panic!()
        };
        assert!(ts.log_y);
        let names: Vec<&str> = ts.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["L0", "L1", "L2", "SN"]);
        assert!(ts.series[0].points.is_empty());
        assert_eq!(ts.series[1].points, vec![(10.0, 10.0)]);
        assert_eq!(ts.series[3].points, vec![(10.0, 9.5), (20.0, 10.0)]);
        let runs: Vec<&str> = ts.markers.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(runs, ["RUN 7", "RUN 8"]);
        let json: serde_json::Value =
            serde_json::from_str(plots[2].json.as_deref().unwrap()).unwrap();
        assert_eq!(json["det_id"], 133);
        assert_eq!(json["rates"]["SN"][1][1], 10.0);
        assert!(plots[3].json.is_none());
    }
}
