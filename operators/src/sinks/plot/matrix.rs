//! Hit map / trigger map (spec §3.5): rows = DOM slots of the detector
//! (DUs sorted numerically, floors from the bottom, any number of floors
//! and base modules), columns = the last N events with the latest at the
//! right; log colour scale from 1 to the maximum, zero cells white. When
//! there are more rows or events than pixels, a pixel shows the largest
//! count it covers. Run starts as dashed lines.

use pipeline::plot::{Colormap, HitMatrix};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colormap::{color, RUN_LINE};
use super::{centered, dashed_vline, draw_colorbar, draw_title, text};

pub const SIZE: (u32, u32) = (1920, 960);

/// Draws into `buf` (RGB, `SIZE`).
pub fn render(buf: &mut [u8], m: &HitMatrix) -> anyhow::Result<()> {
    let root = super::canvas(buf, SIZE);
    root.fill(&WHITE)?;
    let (top, _) = root.split_vertically(64);
    draw_title(&top, &m.title, m.data_time_ns, 20.0)?;
    let (x0, x1, y0, y1) = (150i32, SIZE.0 as i32 - 140, 72i32, SIZE.1 as i32 - 50);
    let (pw, ph) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let n_cols = m.n_columns.max(1);
    let n_rows = m.n_rows.max(1);
    let offset = n_cols.saturating_sub(m.events.len());
    // Largest count per pixel; a cell covers at least one pixel, and all
    // of its pixels when there are fewer cells than pixels.
    let span = |i: usize, n: usize, px: usize| {
        let a = (i * px / n).min(px - 1);
        (a, ((i + 1) * px / n).clamp(a + 1, px))
    };
    let mut grid = vec![0u16; pw * ph];
    for (i, ev) in m.events.iter().enumerate() {
        let (xa, xb) = span(offset + i, n_cols, pw);
        for &(row, n) in ev.iter() {
            let (ya, yb) = span((row as usize).min(n_rows - 1), n_rows, ph);
            for py in ya..yb {
                for cell in &mut grid[(ph - 1 - py) * pw + xa..(ph - 1 - py) * pw + xb] {
                    *cell = (*cell).max(n);
                }
            }
        }
    }
    let max = grid.iter().copied().max().unwrap_or(0).max(2);
    let lmax = f64::from(max).ln();
    // Straight into an RGB buffer, blitted once (no per-pixel calls); the
    // colour of each count is computed once.
    let mut lut: Vec<Option<RGBColor>> = vec![None; usize::from(max) + 1];
    let mut buf = vec![255u8; pw * ph * 3];
    for (v, px) in grid.iter().zip(buf.chunks_exact_mut(3)) {
        if *v > 0 {
            let c = *lut[usize::from(*v)]
                .get_or_insert_with(|| color(Colormap::Plasma, f64::from(*v).ln() / lmax));
            px.copy_from_slice(&[c.0, c.1, c.2]);
        }
    }
    super::blit(&root, (x0, y0), (pw, ph), buf)?;
    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK.stroke_width(1)))?;
    let y_of_row = |r: usize| y1 - ((r as f64 / n_rows as f64) * ph as f64).round() as i32;
    for &s in &m.du_starts {
        if s > 0 {
            let y = y_of_row(s);
            root.draw(&PathElement::new(vec![(x0, y), (x1, y)], BLACK.mix(0.15)))?;
        }
    }
    // Labels, thinned so that they never overlap (~14 px apart).
    let mut last_y = i32::MAX;
    for (row, label) in &m.row_labels {
        let y = (y_of_row(*row) + y_of_row(row + 1)) / 2;
        if (last_y - y).abs() < 14 {
            continue;
        }
        last_y = y;
        root.draw_text(
            label,
            &text(11.0).pos(Pos::new(HPos::Right, VPos::Center)),
            (x0 - 6, y),
        )?;
    }
    for (col, label) in &m.markers {
        let x = x0 + ((offset + col) * pw / n_cols) as i32;
        dashed_vline(&root, x, y0, y1, RUN_LINE.mix(0.8).stroke_width(3))?;
        root.draw_text(
            label,
            &text(14.0)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Left, VPos::Bottom)),
            (x - 4, y0 + 6),
        )?;
    }
    root.draw_text(
        "event (latest on the right)",
        &centered(text(15.0)),
        ((x0 + x1) / 2, y1 + 22),
    )?;
    let bar = root.margin(y0 as u32, 50, (x1 + 14) as u32, 0);
    draw_colorbar(
        &bar,
        Colormap::Plasma,
        1.0,
        f64::from(max),
        true,
        &m.colorbar_label,
        0,
        ph as i32,
    )?;
    root.present()?;
    Ok(())
}
