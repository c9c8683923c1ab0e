//! A grid of small time-series panels (`rttc.png`: one per DU): each with
//! its label, a shaded band, horizontal reference lines and its samples,
//! over one common time span; a highlighted panel has a red frame.
//!
//! Drawn in pixel space (no chart builder per panel): 230 panels cost
//! 230 meshes otherwise. Dense samples (more than one per three pixels)
//! are drawn as one min–max stroke per pixel column, so a day of 10-s
//! polls (8 640 points) is ~300 strokes, not 8 640 markers.

use pipeline::plot::{Panel, Panels};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colormap::{rgb, GRID};
use super::{bold, draw_title, format_value, text, time_label, time_ticks};

type Area<'a, 'b> = DrawingArea<BitMapBackend<'a>, Shift>;

const RED: RGBColor = RGBColor(200, 30, 30);
const SHADE: RGBColor = RGBColor(225, 238, 250);
const FRAME: RGBColor = RGBColor(120, 120, 120);
/// Margins of the plot rectangle inside a panel: left (y labels), right,
/// top (label line), bottom (time labels).
const MARGIN: (i32, i32, i32, i32) = (62, 10, 24, 24);

/// Draws into `buf` (RGB, `p.size()`).
pub fn render(buf: &mut [u8], p: &Panels) -> anyhow::Result<()> {
    let size = p.size();
    let root = BitMapBackend::with_buffer(buf, size).into_drawing_area();
    root.fill(&WHITE)?;
    draw_title(&root, &p.title, p.data_time_ns, 20.0)?;
    root.draw_text(
        &format!("each panel: {} over UTC time", p.y_label),
        &text(14.0).pos(Pos::new(HPos::Left, VPos::Center)),
        (12, Panels::HEADER as i32 - 12),
    )?;
    let t1 = (p.data_time_ns / 1_000_000_000) as f64;
    let t0 = t1 - p.span_s.max(1) as f64;
    let (ticks, _) = time_ticks(t0, t1, 4);
    let span = t1 - t0;
    let (w, h) = p.panel_px();
    let cols = p.columns.max(1);
    for (i, panel) in p.panels.iter().enumerate() {
        let x = (i % cols) as i32 * w as i32;
        let y = Panels::HEADER as i32 + (i / cols) as i32 * h as i32;
        let area = root.clone().shrink((x, y), (w, h));
        draw_panel(&area, panel, (t0, t1), &ticks, span)?;
    }
    root.present()?;
    Ok(())
}

/// Round ticks over `[lo, hi]`: steps of 1, 2, 5 × 10^k, at most `max`.
fn value_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return vec![];
    }
    let mut step = 10f64.powf((span / max as f64).log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if span / (step * m) <= max as f64 {
            step *= m;
            break;
        }
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// The y range: the samples, the shade and the lines, padded.
fn y_range(panel: &Panel) -> (f64, f64) {
    let values = panel
        .points
        .iter()
        .map(|p| p.1)
        .chain(panel.shade.into_iter().flat_map(|(a, b)| [a, b]))
        .chain(panel.lines.iter().map(|l| l.0))
        .filter(|v| v.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1.0);
    (lo - pad, hi + pad)
}

fn draw_panel(
    area: &Area<'_, '_>,
    panel: &Panel,
    (t0, t1): (f64, f64),
    ticks: &[f64],
    span: f64,
) -> anyhow::Result<()> {
    let (w, h) = area.dim_in_pixel();
    let (l, r, t, b) = (MARGIN.0, w as i32 - MARGIN.1, MARGIN.2, h as i32 - MARGIN.3);
    let (lo, hi) = y_range(panel);
    let px = |s: f64| l + ((s - t0) / (t1 - t0) * f64::from(r - l)).round() as i32;
    let py = |v: f64| b - ((v - lo) / (hi - lo) * f64::from(b - t)).round() as i32;
    let clamp_y = |y: i32| y.clamp(t, b);
    if let Some((a, c)) = panel.shade {
        let (ya, yc) = (clamp_y(py(a)), clamp_y(py(c)));
        area.draw(&Rectangle::new([(l, yc), (r, ya)], SHADE.filled()))?;
    }
    for tick in ticks {
        let x = px(*tick);
        area.draw(&PathElement::new(vec![(x, t), (x, b)], GRID))?;
        area.draw_text(
            &time_label(tick.round() as i64, span),
            &text(12.0).pos(Pos::new(HPos::Center, VPos::Top)),
            (x, b + 4),
        )?;
    }
    for v in value_ticks(lo, hi, 4) {
        let y = py(v);
        area.draw(&PathElement::new(vec![(l - 4, y), (l, y)], BLACK))?;
        area.draw_text(
            &format_value(v),
            &text(12.0).pos(Pos::new(HPos::Right, VPos::Center)),
            (l - 6, y),
        )?;
    }
    for (v, dashed) in &panel.lines {
        let y = py(*v);
        if y < t || y > b {
            continue;
        }
        if *dashed {
            let mut x = l;
            while x < r {
                let e = (x + 6).min(r);
                area.draw(&PathElement::new(vec![(x, y), (e, y)], BLACK.mix(0.7)))?;
                x += 10;
            }
        } else {
            area.draw(&PathElement::new(
                vec![(l, y), (r, y)],
                BLACK.stroke_width(1),
            ))?;
        }
    }
    let color = rgb(panel.color);
    let inside = panel
        .points
        .iter()
        .filter(|p| p.0 >= t0 && p.0 <= t1 && p.1.is_finite());
    if panel.points.len() as i32 * 3 <= r - l {
        for (s, v) in inside {
            let (x, y) = (px(*s), clamp_y(py(*v)));
            area.draw(&PathElement::new(
                vec![(x - 3, y - 3), (x + 3, y + 3)],
                color.stroke_width(2),
            ))?;
            area.draw(&PathElement::new(
                vec![(x - 3, y + 3), (x + 3, y - 3)],
                color.stroke_width(2),
            ))?;
        }
    } else {
        // Per pixel column, the highest and lowest sample.
        let mut column: Vec<Option<(i32, i32)>> = vec![None; (r - l + 1) as usize];
        for (s, v) in inside {
            let (x, y) = ((px(*s) - l).clamp(0, r - l) as usize, clamp_y(py(*v)));
            let c = column[x].get_or_insert((y, y));
            *c = (c.0.min(y), c.1.max(y));
        }
        for (i, c) in column.iter().enumerate() {
            if let Some((y0, y1)) = c {
                let x = l + i as i32;
                area.draw(&Rectangle::new(
                    [(x, y0 - 1), (x + 1, y1 + 1)],
                    color.filled(),
                ))?;
            }
        }
    }
    let (frame, label_color) = if panel.highlight {
        (RED.stroke_width(2), RED)
    } else {
        (FRAME.stroke_width(1), BLACK)
    };
    area.draw(&Rectangle::new([(l, t), (r, b)], frame))?;
    area.draw_text(
        &panel.label,
        &bold(14.0)
            .color(&label_color)
            .pos(Pos::new(HPos::Left, VPos::Center)),
        (l + 2, t / 2),
    )?;
    area.draw_text(
        &panel.note,
        &text(12.0)
            .color(&label_color)
            .pos(Pos::new(HPos::Right, VPos::Center)),
        (r, t / 2),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_ticks_are_round_and_few() {
        assert_eq!(value_ticks(-12.0, 31.0, 4), vec![0.0, 20.0]);
        assert_eq!(value_ticks(0.0, 1.0, 4), vec![0.0, 0.5, 1.0]);
        assert!(value_ticks(1.0, 1.0, 4).is_empty());
    }
}
