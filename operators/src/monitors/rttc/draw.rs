//! `rttc.png`: every DU's RTTC minus its baseline median in one plot.
//!
//! The original drew one panel per DU (16 × 4·n_DU inches: 920 inches on
//! ARCA-230, unreadable on a screen). What a shifter needs is which DU
//! moved and by how much, so: up to [`LEGEND_DUS`] DUs each have a colour
//! and a legend line; on a larger detector the DUs within their band are grey crosses
//! (one legend line with their count), the at most [`LEGEND_DUS`] DUs
//! furthest off their band (or alerting) get distinct colours and a
//! legend line `DU<n> ±<ps> ps`, the rest of the DUs off their band dark
//! grey; the JSON has every DU's median, spread, band and samples.

use std::collections::BTreeMap;
use std::sync::Arc;

use pipeline::item::{Item, Time, TICK_NS};
use pipeline::plot::{Marker, Plot, PlotSpec, Rgb, Series, TimeSeries};

use super::{DuState, RttcMonitor, LEGEND_DUS};
use crate::shell::Out;

const WITHIN: Rgb = Rgb(175, 175, 175);
const OFF: Rgb = Rgb(90, 90, 90);

/// A DU's samples minus its median, if it has a baseline.
fn deviations(d: &DuState) -> Option<Vec<(f64, f64)>> {
    let m = d.baseline.band()?.median;
    Some(d.samples.iter().map(|(s, v)| (*s as f64, v - m)).collect())
}

/// Grey series of one kind; the first carries the legend line.
fn grey(points: Vec<Vec<(f64, f64)>>, color: Rgb, legend: String) -> Vec<Series> {
    points
        .into_iter()
        .enumerate()
        .map(|(i, points)| Series {
            name: if i == 0 {
                legend.clone()
            } else {
                String::new()
            },
            color,
            marker: Marker::Cross,
            line: false,
            points,
        })
        .collect()
}

impl RttcMonitor {
    pub(super) fn draw(&self, stamp: Time, out: &mut Out) {
        let mut docs = Vec::new();
        // (|deviation| / half band, DU, deviation ps, firing) of the DUs
        // whose last sample is off their band or whose alert fires.
        let mut off = Vec::new();
        for (du, d) in &self.dus {
            let band = d.baseline.band();
            let firing = self.alerts.is_firing(&format!("rttc:{du}"));
            if let (Some(b), Some((v, _))) = (band, d.last) {
                let dev = v - b.median;
                let ratio = dev.abs() / self.half_width(&b);
                if ratio > 1.0 || firing {
                    off.push((ratio, *du, dev, firing));
                }
            }
            docs.push(serde_json::json!({
                "du": du,
                "median_ps": band.map(|b| b.median),
                "spread_ps": band.map(|b| b.spread),
                "band_ps": band.map(|b| self.half_width(&b)),
                "baseline_samples": band.map_or(0, |b| b.samples),
                "firing": firing,
                "new_level_since": d.candidate.as_ref().map(|c| crate::shell::iso(c.since_s as i64)),
                "samples": d.samples,
            }));
        }
        // The furthest off first; ties by DU. A small detector: every DU
        // in its own colour, in DU order.
        off.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let ranked: Vec<u32> = if self.dus.len() <= LEGEND_DUS {
            self.dus.keys().copied().collect()
        } else {
            off.iter().take(LEGEND_DUS).map(|o| o.1).collect()
        };
        let coloured: BTreeMap<u32, usize> =
            ranked.iter().enumerate().map(|(i, du)| (*du, i)).collect();
        let (mut within, mut beyond) = (Vec::new(), Vec::new());
        for (du, d) in &self.dus {
            if coloured.contains_key(du) {
                continue;
            }
            if let Some(points) = deviations(d) {
                if off.iter().any(|o| o.1 == *du) {
                    beyond.push(points);
                } else {
                    within.push(points);
                }
            }
        }
        // Grey below, the coloured DUs on top in legend order.
        let (n_within, n_beyond) = (within.len(), beyond.len());
        let mut series = grey(within, WITHIN, format!("{n_within} DUs within their band"));
        series.extend(grey(
            beyond,
            OFF,
            format!("{n_beyond} more DUs off their band (see rttc.json)"),
        ));
        let palette = crate::monitors::ahrs::palette(coloured.len());
        for (i, du) in ranked.iter().enumerate() {
            let name = match off.iter().find(|o| o.1 == *du) {
                Some((_, _, dev, firing)) => format!(
                    "DU{du} {dev:+.0} ps{}",
                    if *firing { " (alert)" } else { "" }
                ),
                None => format!("DU{du}"),
            };
            if let Some(points) = deviations(&self.dus[du]) {
                series.push(Series {
                    name,
                    color: palette[i],
                    marker: Marker::Cross,
                    line: false,
                    points,
                });
            }
        }
        let end_ns = self.last_ns + TICK_NS;
        let doc = serde_json::json!({
            "det_id": self.det_id,
            "time_utc": crate::shell::iso((end_ns / 1_000_000_000) as i64),
            "unit": "ps",
            "dus": docs,
        });
        let plot = Plot {
            name: self.name.clone(),
            spec: PlotSpec::TimeSeries(TimeSeries {
                title: format!(
                    "RTTC of the base CLBs minus each DU's 24-h median in Det ID {}",
                    self.det_id
                ),
                data_time_ns: end_ns,
                y_label: "RTTC − median [ps]".into(),
                log_y: false,
                minor_ticks: false,
                series,
                markers: Vec::new(),
                y_auto: true,
            }),
            json: serde_json::to_string(&doc).ok(),
        };
        out.give(stamp, Item::Plot(Arc::new(plot)));
    }
}
