//! `rttc.png`: one panel per DU, as the issue and the original ask, with
//! the DU's samples minus its baseline median, the median (solid line),
//! median ± spread (dashed) and the alert band (shaded); a DU off its band
//! or alerting has a red frame and its deviation in the panel's corner.
//!
//! The original's figure was 16 × 4·n_DU inches (920 inches on ARCA-230).
//! Here a panel is a fixed 320 × 160 pixels, at most six a row
//! ([`Panels::MAX_COLUMNS`]: 1920 pixels, a screen's width), in DU order
//! so a DU keeps its place: 2 DUs are one row, ARCA-230 is 39 rows that
//! the web page scrolls, each still readable. The samples are plotted
//! relative to the median so every panel's y labels are a few digits; the
//! median itself is in the panel's corner and in `rttc.json`, whose
//! `layout` gives the grid (columns, rows, pixels) and each DU's `panel`.

use std::sync::Arc;

use pipeline::item::{Item, Time, TICK_NS};
use pipeline::plot::{Panel, Panels, Plot, PlotSpec, Rgb};

use super::{DuState, RttcMonitor};
use crate::shell::Out;

const SAMPLE: Rgb = Rgb(31, 119, 180);
const OFF: Rgb = Rgb(200, 30, 30);

impl RttcMonitor {
    /// The panel of one DU, and whether it is off its band.
    fn panel(&self, du: u32, d: &DuState, firing: bool) -> Panel {
        let band = d.baseline.band();
        // Without a baseline yet: around the samples' mean, unjudged.
        let centre = band.map(|b| b.median).unwrap_or_else(|| {
            let n = d.samples.len().max(1) as f64;
            d.samples.iter().map(|s| s.1).sum::<f64>() / n
        });
        let points: Vec<(f64, f64)> = d
            .samples
            .iter()
            .map(|(s, v)| (*s as f64, v - centre))
            .collect();
        let label = format!("DU {du}");
        let Some(b) = band else {
            return Panel {
                label,
                note: format!("no baseline yet ({} samples)", d.samples.len()),
                highlight: false,
                points,
                color: SAMPLE,
                shade: None,
                lines: Vec::new(),
            };
        };
        let half = self.half_width(&b);
        let dev = d.last.map(|(v, _)| v - b.median);
        let off = dev.is_some_and(|x| x.abs() > half);
        let note = match (dev, off || firing) {
            (Some(x), true) => format!(
                "{x:+.0} ps{}",
                if firing {
                    " (alert)"
                } else if d.candidate.is_some() {
                    " (new level?)"
                } else {
                    ""
                }
            ),
            _ => format!("median {:.0} ps", b.median),
        };
        Panel {
            label,
            note,
            highlight: off || firing,
            points,
            color: if off || firing { OFF } else { SAMPLE },
            shade: Some((-half, half)),
            lines: vec![(0.0, false), (-b.spread, true), (b.spread, true)],
        }
    }

    /// The time shown: back to the oldest sample (at least 10 min, at
    /// most `plot_hours`), so a young run is not squeezed to the right.
    fn span_s(&self, end_ns: u64) -> u64 {
        let end_s = end_ns / 1_000_000_000;
        let oldest = self
            .dus
            .values()
            .filter_map(|d| d.samples.front())
            .map(|s| s.0)
            .min();
        oldest
            .map_or(600, |o| end_s.saturating_sub(o))
            .clamp(600, self.keep_s.max(600))
    }

    pub(super) fn draw(&self, stamp: Time, out: &mut Out) {
        let mut docs = Vec::new();
        let mut panels = Vec::new();
        for (i, (du, d)) in self.dus.iter().enumerate() {
            let band = d.baseline.band();
            let firing = self.alerts.is_firing(&format!("rttc:{du}"));
            let panel = self.panel(*du, d, firing);
            docs.push(serde_json::json!({
                "du": du,
                "panel": i,
                "label": panel.label,
                "note": panel.note,
                "highlight": panel.highlight,
                "median_ps": band.map(|b| b.median),
                "spread_ps": band.map(|b| b.spread),
                "band_ps": band.map(|b| self.half_width(&b)),
                "baseline_samples": band.map_or(0, |b| b.samples),
                "firing": firing,
                "new_level_since": d.candidate.as_ref().map(|c| crate::shell::iso(c.since_s as i64)),
                "samples": d.samples,
            }));
            panels.push(panel);
        }
        let end_ns = self.last_ns + TICK_NS;
        let spec = Panels {
            title: format!(
                "RTTC of the base CLBs per DU (samples, 24-h median, spread, alert band) in Det ID {}",
                self.det_id
            ),
            data_time_ns: end_ns,
            span_s: self.span_s(end_ns),
            y_label: "RTTC − median [ps]".into(),
            columns: Panels::columns_for(panels.len()),
            panels,
        };
        let doc = serde_json::json!({
            "det_id": self.det_id,
            "time_utc": crate::shell::iso((end_ns / 1_000_000_000) as i64),
            "unit": "ps",
            "layout": {
                "columns": spec.columns,
                "rows": spec.rows(),
                "panels": spec.panels.len(),
                "panel_px": spec.panel_px(),
                "header_px": Panels::HEADER,
                "size_px": spec.size(),
            },
            "dus": docs,
        });
        let plot = Plot {
            name: self.name.clone(),
            spec: PlotSpec::Panels(spec),
            json: serde_json::to_string(&doc).ok(),
        };
        out.give(stamp, Item::Plot(Arc::new(plot)));
    }
}
