//! PMT-rate waterfall of one DU (spec §3.3): rows = PMTs grouped in floor
//! bands from the bottom, columns = intervals with the newest at the right,
//! colour = mean rate clipped to [vmin, vmax], no data = white, marked
//! cells (high-rate veto) red on top. UTC time axis, floor labels.

use std::path::Path;

use pipeline::plot::{Waterfall, WaterfallColumn};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colormap::color;
use super::{centered, draw_colorbar, text};
use crate::util::hhmm;

pub const SIZE: (u32, u32) = (1000, 800);
const HRV: RGBColor = RGBColor(220, 0, 0);

pub fn render(path: &Path, w: &Waterfall) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (cx, _) = (SIZE.0 as i32 / 2, 0);
    root.draw_text(&w.title, &centered(super::bold(15.0)), (cx, 16))?;
    let when = format!(
        "{} - data up to {}",
        w.subtitle,
        crate::util::human((w.data_time_ns / 1_000_000_000) as i64)
    );
    root.draw_text(&when, &centered(text(13.0)), (cx, 36))?;

    // Image rectangle in pixels.
    let (x0, x1, y0, y1) = (80i32, SIZE.0 as i32 - 110, 56i32, SIZE.1 as i32 - 60);
    let (pw, ph) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let n_cols = w.n_columns.max(1);
    let n_rows = w.n_rows.max(1);
    // Columns are right-aligned: the newest is the last image column.
    let offset = n_cols.saturating_sub(w.columns.len());
    let span = (w.vmax - w.vmin).max(f64::MIN_POSITIVE);
    let mut col_of_px: Vec<Option<&WaterfallColumn>> = Vec::with_capacity(pw);
    for px in 0..pw {
        let c = px * n_cols / pw;
        col_of_px.push(
            c.checked_sub(offset)
                .and_then(|i| w.columns.get(i))
                .map(|a| &**a),
        );
    }
    for py in 0..ph {
        let row = n_rows - 1 - (py * n_rows / ph).min(n_rows - 1);
        for (px, col) in col_of_px.iter().enumerate() {
            let Some(col) = col else { continue };
            let v = col
                .values
                .get(row)
                .copied()
                .unwrap_or(WaterfallColumn::NO_DATA);
            let c = if col.marked(row) {
                HRV
            } else if v == WaterfallColumn::NO_DATA {
                continue;
            } else {
                color(w.colormap, (f64::from(v) * w.unit - w.vmin) / span)
            };
            root.draw_pixel((x0 + px as i32, y0 + py as i32), &c)?;
        }
    }
    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK.stroke_width(1)))?;

    // Floor bands: separators and labels.
    let y_of_row = |r: usize| y1 - ((r as f64 / n_rows as f64) * ph as f64).round() as i32;
    let label_every = w.bands.len().div_ceil(36).max(1);
    for (i, (start, n, label)) in w.bands.iter().enumerate() {
        let y = y_of_row(*start);
        if *start > 0 {
            root.draw(&PathElement::new(vec![(x0, y), (x1, y)], BLACK.mix(0.25)))?;
        }
        if i % label_every == 0 {
            let yc = y_of_row(start + n / 2);
            root.draw_text(
                label,
                &text(12.0).pos(Pos::new(HPos::Right, VPos::Center)),
                (x0 - 6, yc),
            )?;
        }
    }
    // Time axis: 10 ticks, HH:MM of the column's end time.
    let newest = w
        .columns
        .last()
        .map_or(w.data_time_ns / 1_000_000_000, |c| c.end_s) as i64;
    for k in 0..10 {
        let c = k * n_cols / 10;
        let x = x0 + (c * pw / n_cols) as i32;
        let t = newest - (n_cols - 1 - c) as i64 * w.interval_s as i64;
        root.draw(&PathElement::new(vec![(x, y1), (x, y1 + 5)], BLACK))?;
        root.draw_text(&hhmm(t), &centered(text(12.0)), (x, y1 + 16))?;
    }
    root.draw_text(
        &format!("UTC time [{} s/px]", w.interval_s),
        &centered(text(14.0)),
        ((x0 + x1) / 2, y1 + 40),
    )?;
    let bar = root.margin(y0 as u32, 60, (x1 + 12) as u32, 0);
    draw_colorbar(
        &bar,
        w.colormap,
        w.vmin,
        w.vmax,
        false,
        &w.colorbar_label,
        0,
        ph as i32,
    )?;
    root.draw(&Rectangle::new(
        [(x1 + 20, y1 + 22), (x1 + 32, y1 + 34)],
        HRV.filled(),
    ))?;
    root.draw_text(
        "HRV",
        &text(12.0).pos(Pos::new(HPos::Left, VPos::Center)),
        (x1 + 36, y1 + 28),
    )?;
    root.present()?;
    Ok(())
}
