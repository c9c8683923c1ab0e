//! PMT-rate waterfall of one DU (spec §3.3): rows = PMTs grouped in floor
//! bands from the bottom, columns = intervals with the newest at the right,
//! colour = mean rate clipped to [vmin, vmax], no data = white, marked
//! cells (high-rate veto) red on top. UTC time axis, floor labels.

use pipeline::plot::{Waterfall, WaterfallColumn};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colormap::color;
use super::{centered, draw_colorbar, text};

pub const SIZE: (u32, u32) = (1000, 800);
const HRV: RGBColor = RGBColor(220, 0, 0);

/// Draws into `buf` (RGB, `SIZE`).
pub fn render(buf: &mut [u8], w: &Waterfall) -> anyhow::Result<()> {
    // Image rectangle in pixels.
    let (x0, x1, y0, y1) = (80i32, SIZE.0 as i32 - 110, 56i32, SIZE.1 as i32 - 60);
    let (pw, ph) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let n_cols = w.n_columns.max(1);
    let n_rows = w.n_rows.max(1);
    // Columns are right-aligned: the newest is the last image column.
    let offset = n_cols.saturating_sub(w.columns.len());
    let span = (w.vmax - w.vmin).max(f64::MIN_POSITIVE);
    // Pixel spans [xa, xb) of the columns with data (pixel px shows column
    // px * n_cols / pw); the cost is one colour per data cell and row.
    let mut spans: Vec<(usize, usize, &WaterfallColumn)> = Vec::new();
    for px in 0..pw {
        let c = px * n_cols / pw;
        let Some(col) = c.checked_sub(offset).and_then(|i| w.columns.get(i)) else {
            continue;
        };
        match spans.last_mut() {
            Some((_, xb, last)) if std::ptr::eq(*last, &**col) && *xb == px => *xb = px + 1,
            _ => spans.push((px, px + 1, &**col)),
        }
    }
    // The page is white and the image area is painted straight into the
    // page's RGB buffer before plotters draws anything: per-pixel plotters
    // calls made this plot the bottleneck of the whole health graph (115
    // of them per window), and a separate image buffer blitted in cost a
    // 1.7 MB allocation and two more passes over it per plot. Nothing
    // drawn later (titles above, frame and labels after) overlaps it
    // differently: the pixels are the same as fill + blit.
    buf.fill(255);
    let mut colors: Vec<Option<RGBColor>> = vec![None; spans.len()];
    let mut last_row = usize::MAX;
    let stride = SIZE.0 as usize * 3;
    let left = x0 as usize * 3;
    for py in 0..ph {
        let row = n_rows - 1 - (py * n_rows / ph).min(n_rows - 1);
        if row != last_row {
            last_row = row;
            for (c, (_, _, col)) in colors.iter_mut().zip(&spans) {
                *c = cell_color(w, col, row, span);
            }
        }
        let start = (y0 as usize + py) * stride + left;
        let line = &mut buf[start..start + pw * 3];
        for (c, (xa, xb, _)) in colors.iter().zip(&spans) {
            if let Some(RGBColor(r, g, b)) = c {
                for px in line[xa * 3..xb * 3].chunks_exact_mut(3) {
                    px.copy_from_slice(&[*r, *g, *b]);
                }
            }
        }
    }
    let root = super::canvas(buf, SIZE);
    let (cx, _) = (SIZE.0 as i32 / 2, 0);
    root.draw_text(&w.title, &centered(super::bold(15.0)), (cx, 16))?;
    let when = format!(
        "{} - data up to {}",
        w.subtitle,
        crate::shell::human((w.data_time_ns / 1_000_000_000) as i64)
    );
    root.draw_text(&when, &centered(text(13.0)), (cx, 36))?;
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
    // Time axis: round UTC times (every 10 min, 1 h, …); column c covers
    // (end - interval, end] with end = newest - (n_cols - 1 - c) * interval.
    let newest = w
        .columns
        .last()
        .map_or(w.data_time_ns / 1_000_000_000, |c| c.end_s) as i64;
    let iv = w.interval_s.max(1) as i64;
    let t_left = newest - n_cols as i64 * iv;
    let x_of_t = |t: f64| x0 as f64 + (t - t_left as f64) / (n_cols as i64 * iv) as f64 * pw as f64;
    let (ticks, _) = super::time_ticks(t_left as f64, newest as f64, 10);
    let span = (n_cols as i64 * iv) as f64;
    for t in ticks {
        let x = x_of_t(t).round() as i32;
        root.draw(&PathElement::new(vec![(x, y1), (x, y1 + 5)], BLACK))?;
        root.draw_text(
            &super::time_label(t as i64, span),
            &centered(text(12.0)),
            (x, y1 + 16),
        )?;
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

/// The colour of one cell: HRV-marked red, no data none (white).
fn cell_color(w: &Waterfall, col: &WaterfallColumn, row: usize, span: f64) -> Option<RGBColor> {
    if col.marked(row) {
        return Some(HRV);
    }
    let v = col
        .values
        .get(row)
        .copied()
        .unwrap_or(WaterfallColumn::NO_DATA);
    if v == WaterfallColumn::NO_DATA {
        None
    } else {
        Some(color(w.colormap, (f64::from(v) * w.unit - w.vmin) / span))
    }
}
