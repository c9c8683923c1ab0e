//! `time_residuals.png` (spec `reco.md` §5): one panel per floor (three
//! columns, row-major), a step histogram per DU on a log y axis, and the
//! quantiles beside it in `time_residuals.json`.

use std::path::Path;

use plotters::prelude::*;

use super::time_residuals::{Figure, BINS};
use crate::shell::human;
use crate::sinks::plot::{bold, centered, fonts, text, FONT};
use pipeline::runtime::io::write_atomic;

pub const SIZE: (u32, u32) = (1920, 1920);
const COLS: usize = 3;

/// matplotlib's tab10, the original's colours.
const TAB10: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

pub fn json(fig: &Figure) -> String {
    let dus: Vec<serde_json::Value> = fig
        .stats
        .iter()
        .map(|(du, (all, floors))| {
            serde_json::json!({
                "du": du,
                "n": all.n,
                "p16": all.p16,
                "median": all.median,
                "p84": all.p84,
                "floors": floors.iter().map(|(f, q)| serde_json::json!({
                    "floor": f, "n": q.n, "p16": q.p16, "median": q.median, "p84": q.p84,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "data_time_s": fig.data_time_s,
        "window_s": fig.window_s,
        "dus": dus,
    })
    .to_string()
}

/// PNG and JSON under `dir`, each atomically.
pub fn write(dir: &Path, fig: &Figure) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    render(&dir.join("time_residuals.png"), fig)?;
    write_atomic(&dir.join("time_residuals.json"), json(fig).as_bytes())?;
    Ok(())
}

/// Renders to `path` (a `.png`, written atomically).
pub fn render(path: &Path, fig: &Figure) -> anyhow::Result<()> {
    crate::sinks::plot::save_png(path, SIZE, |buf| paint(buf, fig))
}

fn paint(buf: &mut [u8], fig: &Figure) -> anyhow::Result<()> {
    fonts();
    let root = BitMapBackend::with_buffer(buf, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(60);
    top.draw(&Text::new(
        format!(
            "Time residuals using ROy reconstructions from the past {} - {}",
            span(fig.window_s),
            human(fig.data_time_s as i64)
        ),
        (SIZE.0 as i32 / 2, 30),
        centered(bold(24.0)),
    ))?;
    let n = fig.n_floors.max(1) as usize;
    let rows = n.div_ceil(COLS);
    let panels = body.split_evenly((rows, COLS));
    let dus: Vec<u32> = fig.stats.keys().copied().collect();
    let colour = |du: u32| TAB10[dus.iter().position(|d| *d == du).unwrap_or(0) % TAB10.len()];
    // Shared x: the widest range of any histogram.
    let (x0, x1) = fig
        .panels
        .values()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |a, h| {
            (a.0.min(h.lo), a.1.max(h.hi))
        });
    let (x0, x1) = if x0 < x1 { (x0, x1) } else { (-50.0, 50.0) };
    for (i, area) in panels.iter().enumerate().take(n) {
        let floor = i as i32 + 1;
        let hists = fig.panels.get(&floor).map(Vec::as_slice).unwrap_or(&[]);
        let ymax = hists
            .iter()
            .flat_map(|h| h.counts.iter().copied())
            .max()
            .unwrap_or(1)
            .max(1);
        let bottom = i + COLS >= n;
        let left = i % COLS == 0;
        let mut chart = ChartBuilder::on(area)
            .margin(6)
            .x_label_area_size(if bottom { 40 } else { 18 })
            .y_label_area_size(if left { 60 } else { 40 })
            .build_cartesian_2d(x0..x1, (0.8..f64::from(ymax) * 1.5).log_scale())?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_labels(5)
            .y_labels(4)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 15))
            .x_desc(if bottom { "time residual [ns]" } else { "" })
            .y_desc(if left { "count" } else { "" })
            .draw()?;
        for h in hists {
            let c = colour(h.du);
            let w = (h.hi - h.lo) / BINS as f64;
            let mut pts = Vec::with_capacity(2 * BINS + 2);
            for (k, &n) in h.counts.iter().enumerate() {
                let y = f64::from(n).max(0.8);
                pts.push((h.lo + k as f64 * w, y));
                pts.push((h.lo + (k + 1) as f64 * w, y));
            }
            chart
                .draw_series(std::iter::once(PathElement::new(pts, c.stroke_width(2))))?
                .label(format!("Floor {floor} / DU {}", h.du))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        if !hists.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .label_font((FONT, 12))
                .draw()?;
        } else {
            area.draw(&Text::new(
                format!("Floor {floor}: no residuals"),
                (area.dim_in_pixel().0 as i32 / 2, 40),
                centered(text(14.0)),
            ))?;
        }
    }
    root.present()?;
    Ok(())
}

fn span(s: u64) -> String {
    if s.is_multiple_of(3600) {
        let h = s / 3600;
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    } else {
        format!("{s} s")
    }
}
