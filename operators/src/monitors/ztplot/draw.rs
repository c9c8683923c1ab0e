//! The z-t display (km3pipe `ztplot`, spec `monitors.md` §3.6 step 5):
//! one panel per DU with hits, time on x (0 = earliest triggered hit), PMT
//! z on y, all hits as blue circles whose area grows with the coincidence
//! multiplicity, triggered hits as red pluses, dashed floor lines.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::hits::ZtHit;
use crate::sinks::plot::{bold, centered, fonts, save_png, text, FONT};

/// 16 × 16 in at 120 dpi, as the original.
pub const SIZE: (u32, u32) = (1920, 1920);
const HIT: RGBColor = RGBColor(0x09, 0xA9, 0xDE);
const TRIGGERED: RGBColor = RGBColor(0xFF, 0x63, 0x63);
const FLOOR_LINE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);

/// Everything on one display.
pub struct ZtFigure<'a> {
    /// First title line (det, run, frame index, trigger counter, overlays,
    /// flags) and second (data time, notes).
    pub title: String,
    pub subtitle: String,
    pub hits: &'a [ZtHit],
    /// z of channel 0 of each floor of the lowest DU present.
    pub floor_z: Vec<f64>,
    pub max_z: f64,
    pub ytick_distance: f64,
}

/// Marker radius (px) for a multiplicity: area 30 pt² × m at 120 dpi.
pub fn radius(m: u32) -> i32 {
    let pt = (30.0 * m as f64 / std::f64::consts::PI).sqrt();
    (pt * 120.0 / 72.0).round().max(2.0) as i32
}

/// Grid of `ceil(√n)` columns × `ceil(n / cols)` rows.
pub fn grid(n: usize) -> (usize, usize) {
    let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
    (cols, n.div_ceil(cols).max(1))
}

/// Renders to `path` (a `.png`, written atomically).
pub fn render(path: &Path, f: &ZtFigure) -> anyhow::Result<()> {
    save_png(path, SIZE, |buf| paint(buf, f))
}

fn paint(buf: &mut [u8], f: &ZtFigure) -> anyhow::Result<()> {
    fonts();
    let root = crate::sinks::plot::canvas(buf, SIZE);
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(110);
    let (w, _) = top.dim_in_pixel();
    top.draw(&Text::new(
        f.title.clone(),
        (w as i32 / 2, 28),
        centered(text(22.0)),
    ))?;
    top.draw(&Text::new(
        f.subtitle.clone(),
        (w as i32 / 2, 60),
        centered(text(20.0)),
    ))?;
    legend(&top)?;

    let mut by_du: BTreeMap<u32, Vec<&ZtHit>> = BTreeMap::new();
    for h in f.hits {
        by_du.entry(h.du).or_default().push(h);
    }
    if by_du.is_empty() {
        body.draw(&Text::new(
            "no calibrated hits".to_string(),
            (w as i32 / 2, 400),
            centered(text(28.0)),
        ))?;
        root.present()?;
        return Ok(());
    }
    // Shared x range, shifted so the earliest triggered hit is at 0.
    let t_ref = f
        .hits
        .iter()
        .filter(|h| h.triggered)
        .map(|h| h.time)
        .fold(f64::INFINITY, f64::min);
    let t_ref = if t_ref.is_finite() {
        t_ref
    } else {
        f.hits.iter().map(|h| h.time).fold(f64::INFINITY, f64::min)
    };
    let (lo, hi) = f
        .hits
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |a, h| {
            (a.0.min(h.time - t_ref), a.1.max(h.time - t_ref))
        });
    let pad = ((hi - lo) * 0.03).max(5.0);
    let (x0, x1) = (lo - pad, hi + pad);

    let (cols, rows) = grid(by_du.len());
    let panels = body.split_evenly((rows, cols));
    // Fewer labels on a crowded grid, so numbers do not overlap.
    let (label_px, n_xlab) = if cols > 6 { (11.0, 3) } else { (15.0, 5) };
    for (i, (du, hits)) in by_du.iter().enumerate() {
        let area = &panels[i];
        let (r, c) = (i / cols, i % cols);
        let left = c == 0;
        let bottom = r == rows - 1 || i + cols >= by_du.len();
        let mut chart = ChartBuilder::on(area)
            .caption(format!("DU{du}"), bold(if cols > 6 { 13.0 } else { 16.0 }))
            .margin(4)
            .x_label_area_size(if bottom { 44 } else { 22 })
            .y_label_area_size(if left { 62 } else { 40 })
            .build_cartesian_2d(x0..x1, 0.0..f.max_z)?;
        let n_y = ((f.max_z / f.ytick_distance).floor() as usize + 1).clamp(2, 12);
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n_xlab)
            .y_labels(n_y)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FONT, label_px))
            .axis_desc_style((FONT, 15))
            .x_desc(if bottom { "time [ns]" } else { "" })
            .y_desc(if left { "z [m]" } else { "" })
            .draw()?;
        // Dashed by hand: 40 dashes across the panel, whatever its width.
        let dash = (x1 - x0) / 80.0;
        for z in &f.floor_z {
            chart.draw_series((0..40).map(|k| {
                let a = x0 + 2.0 * k as f64 * dash;
                PathElement::new(vec![(a, *z), (a + dash, *z)], FLOOR_LINE.mix(0.25))
            }))?;
        }
        chart.draw_series(hits.iter().map(|h| {
            Circle::new(
                (h.time - t_ref, h.z),
                radius(h.multiplicity),
                HIT.mix(0.5).filled(),
            )
        }))?;
        chart.draw_series(hits.iter().filter(|h| h.triggered).map(|h| {
            // A plus, as the original's marker.
            let r = radius(h.multiplicity);
            let style = TRIGGERED.mix(0.8).stroke_width(2);
            EmptyElement::at((h.time - t_ref, h.z))
                + PathElement::new(vec![(-r, 0), (r, 0)], style)
                + PathElement::new(vec![(0, -r), (0, r)], style)
        }))?;
    }
    root.present()?;
    Ok(())
}

/// Marker sizes for a few multiplicities and the triggered marker, at the
/// right of the title band (the original's legend sat in every panel,
/// where it hid hits).
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, plotters::coord::Shift>) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (w, _) = area.dim_in_pixel();
    let mut x = w as i32 - 640;
    let y = 92;
    area.draw(&Text::new("multiplicity:", (x, y - 8), text(15.0)))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    x += 110;
    for m in [1u32, 2, 4, 6, 8, 10] {
        let r = radius(m);
        area.draw(&Circle::new((x + r, y), r, HIT.mix(0.5).filled()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        area.draw(&Text::new(
            format!("{m}"),
            (x + 2 * r + 4, y - 8),
            text(15.0),
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        x += 2 * r + 30;
    }
    let style = TRIGGERED.stroke_width(2);
    area.draw(&PathElement::new(vec![(x, y), (x + 16, y)], style))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    area.draw(&PathElement::new(
        vec![(x + 8, y - 8), (x + 8, y + 8)],
        style,
    ))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    area.draw(&Text::new("triggered", (x + 22, y - 8), text(15.0)))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
