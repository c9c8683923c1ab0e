//! The per-DU plots of `ahrs_calibration`: for each of yaw, pitch and
//! roll, one dot series per floor over the last `time_range` hours (the
//! original's `<param>_calib_du<N>.png`), DOMs without constants named in
//! the title, the numbers in the JSON beside it.

use std::collections::BTreeMap;

use pipeline::plot::{Marker, Plot, PlotSpec, Rgb, Series, TimeSeries};
use serde::Serialize;

use super::{History, Missing, PARAMETERS};

pub struct Context<'a> {
    pub det_id: i32,
    pub end_s: u64,
    pub range_s: u64,
    pub partial: bool,
    pub source: &'a str,
}

/// `n` colours of evenly spaced hue at one lightness and saturation (the
/// original's `husl` palette is of this kind): floors stay apart however
/// many a DU has.
pub fn palette(n: usize) -> Vec<Rgb> {
    (0..n)
        .map(|i| {
            let h = (i as f64 / n.max(1) as f64) * 6.0;
            let (s, l) = (0.65, 0.5);
            let c = (1.0 - (2.0 * l - 1.0f64).abs()) * s;
            let x = c * (1.0 - (h % 2.0 - 1.0).abs());
            let (r, g, b) = match h as u32 {
                0 => (c, x, 0.0),
                1 => (x, c, 0.0),
                2 => (0.0, c, x),
                3 => (0.0, x, c),
                4 => (x, 0.0, c),
                _ => (c, 0.0, x),
            };
            let m = l - c / 2.0;
            let u = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
            Rgb(u(r), u(g), u(b))
        })
        .collect()
}

#[derive(Serialize)]
struct FloorJson {
    floor: i32,
    dom_id: u32,
    /// (UTC s of the window end, degrees).
    points: Vec<(u64, f64)>,
}

#[derive(Serialize)]
struct MissingJson<'a> {
    floor: i32,
    dom_id: u32,
    why: &'a str,
}

#[derive(Serialize)]
struct Doc<'a> {
    det_id: i32,
    du: u32,
    parameter: &'a str,
    unit: &'a str,
    time_utc: String,
    time_range_h: u64,
    /// The last window was cut short by the end of the input.
    partial: bool,
    constants: &'a str,
    floors: Vec<FloorJson>,
    without_constants: Vec<MissingJson<'a>>,
}

/// The three plots of one DU.
pub fn du_plots(
    c: &Context<'_>,
    du: u32,
    floors: &BTreeMap<i32, (u32, History)>,
    missing: &Missing,
) -> Vec<Plot> {
    let colors = palette(floors.len());
    let lacking: Vec<(&u32, &(u32, i32, String))> =
        missing.iter().filter(|(_, m)| m.0 == du).collect();
    let note = if lacking.is_empty() {
        String::new()
    } else {
        let mut names: Vec<String> = lacking
            .iter()
            .take(4)
            .map(|(dom, m)| format!("floor {} (DOM {dom})", m.1))
            .collect();
        if lacking.len() > 4 {
            names.push(format!("{} more", lacking.len() - 4));
        }
        format!(
            " - {} DOM{} without constants: {}",
            lacking.len(),
            if lacking.len() == 1 { "" } else { "s" },
            names.join(", ")
        )
    };
    let oldest = c.end_s.saturating_sub(c.range_s);
    PARAMETERS
        .iter()
        .enumerate()
        .map(|(k, param)| {
            let series: Vec<Series> = floors
                .iter()
                .zip(&colors)
                .map(|((floor, (_, h)), color)| Series {
                    name: format!("Floor {floor}"),
                    color: *color,
                    marker: Marker::Circle,
                    line: false,
                    points: h
                        .iter()
                        .filter(|(s, _)| *s >= oldest)
                        .map(|(s, v)| (*s as f64, v[k]))
                        .collect(),
                })
                .collect();
            let doc = Doc {
                det_id: c.det_id,
                du,
                parameter: param,
                unit: "deg",
                time_utc: crate::shell::iso(c.end_s as i64),
                time_range_h: c.range_s / 3600,
                partial: c.partial,
                constants: c.source,
                floors: floors
                    .iter()
                    .map(|(floor, (dom, h))| FloorJson {
                        floor: *floor,
                        dom_id: *dom,
                        points: h
                            .iter()
                            .filter(|(s, _)| *s >= oldest)
                            .map(|(s, v)| (*s, v[k]))
                            .collect(),
                    })
                    .collect(),
                without_constants: lacking
                    .iter()
                    .map(|(dom, m)| MissingJson {
                        floor: m.1,
                        dom_id: **dom,
                        why: &m.2,
                    })
                    .collect(),
            };
            Plot {
                name: format!("{param}_calib_du{du}"),
                spec: PlotSpec::TimeSeries(TimeSeries {
                    title: format!(
                        "AHRS {param} Calibration on DU{du}{}{note}",
                        if c.partial {
                            " (last window partial)"
                        } else {
                            ""
                        }
                    ),
                    data_time_ns: c.end_s * 1_000_000_000,
                    y_label: format!("{param} [deg]"),
                    log_y: false,
                    minor_ticks: false,
                    series,
                    markers: Vec::new(),
                    y_auto: true,
                }),
                json: serde_json::to_string(&doc).ok(),
            }
        })
        .collect()
}
