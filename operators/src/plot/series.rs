//! Rates over UTC time (trigger rates): markers per series with a light
//! connecting line, linear or log y, run changes as dashed vertical lines
//! labelled `RUN <n>`, legend, data time in the title.

use std::path::Path;

use pipeline::plot::{Marker, TimeSeries};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colormap::{rgb, GRID, RUN_LINE};
use super::{dashed_vline, draw_title, text, FONT};
use crate::util::{hhmm, mdhm};

pub const SIZE: (u32, u32) = (1920, 560);

fn marker_at(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    (x, y): (i32, i32),
    marker: Marker,
    c: RGBColor,
) -> anyhow::Result<()> {
    let s = 6;
    match marker {
        Marker::Diamond => area.draw(&Polygon::new(
            vec![(x, y - s), (x + s, y), (x, y + s), (x - s, y)],
            c.filled(),
        ))?,
        Marker::Cross => {
            area.draw(&PathElement::new(
                vec![(x - s, y - s), (x + s, y + s)],
                c.stroke_width(3),
            ))?;
            area.draw(&PathElement::new(
                vec![(x - s, y + s), (x + s, y - s)],
                c.stroke_width(3),
            ))?;
        }
        Marker::TriangleDown => area.draw(&Polygon::new(
            vec![(x - s, y - s), (x + s, y - s), (x, y + s)],
            c.filled(),
        ))?,
        Marker::TriangleUp => area.draw(&Polygon::new(
            vec![(x - s, y + s), (x + s, y + s), (x, y - s)],
            c.filled(),
        ))?,
        Marker::Circle => area.draw(&Circle::new((x, y), s, c.filled()))?,
    }
    Ok(())
}

pub fn render(path: &Path, s: &TimeSeries) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, rest) = root.split_vertically(64);
    draw_title(&top, &s.title, s.data_time_ns, 20.0)?;

    let pts = || s.series.iter().flat_map(|r| r.points.iter());
    let t_end = (s.data_time_ns / 1_000_000_000) as f64;
    let t0 = pts()
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min)
        .min(t_end - 3600.0);
    let t1 = pts()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(t_end);
    let pad = (t1 - t0) * 0.01;
    let (t0, t1) = (t0 - pad, t1 + pad);
    let positive = || pts().map(|p| p.1).filter(|v| *v > 0.0 && v.is_finite());
    let vmax = positive().fold(0.0, f64::max);
    let long = t1 - t0 > 2.0 * 86_400.0;
    let fmt = move |x: &f64| {
        if long {
            mdhm(*x as i64)
        } else {
            hhmm(*x as i64)
        }
    };

    let plot_area = if s.log_y {
        let lo = positive().fold(f64::INFINITY, f64::min);
        let (lo, hi) = if lo.is_finite() {
            (lo / 2.0, vmax * 2.0)
        } else {
            (0.1, 10.0)
        };
        let mut chart = ChartBuilder::on(&rest)
            .margin(12)
            .margin_right(70)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .right_y_label_area_size(70)
            .build_cartesian_2d(t0..t1, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(16)
            .x_label_formatter(&fmt)
            .y_desc(s.y_label.as_str())
            .x_desc("UTC time")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .light_line_style(GRID.mix(if s.minor_ticks { 0.35 } else { 0.0 }))
            .bold_line_style(GRID)
            .draw()?;
        let mut coords = Vec::new();
        for r in &s.series {
            let c: Vec<(i32, i32)> = r
                .points
                .iter()
                .filter(|p| p.1 > 0.0)
                .map(|p| chart.backend_coord(&(p.0, p.1)))
                .collect();
            coords.push(c);
        }
        let run_y = chart.backend_coord(&(t0, (lo * hi).sqrt())).1;
        let top_bottom = (
            chart.backend_coord(&(t0, hi)).1,
            chart.backend_coord(&(t0, lo)).1,
        );
        let xs: Vec<i32> = s
            .markers
            .iter()
            .map(|m| chart.backend_coord(&(m.time_s, lo)).0)
            .collect();
        (coords, run_y, top_bottom, xs)
    } else {
        let hi = if vmax > 0.0 { vmax * 1.1 } else { 1.0 };
        let mut chart = ChartBuilder::on(&rest)
            .margin(12)
            .margin_right(70)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .right_y_label_area_size(70)
            .build_cartesian_2d(t0..t1, 0.0..hi)?;
        chart
            .configure_mesh()
            .x_labels(16)
            .x_label_formatter(&fmt)
            .y_desc(s.y_label.as_str())
            .x_desc("UTC time")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .light_line_style(GRID.mix(if s.minor_ticks { 0.35 } else { 0.0 }))
            .bold_line_style(GRID)
            .draw()?;
        let mut coords = Vec::new();
        for r in &s.series {
            coords.push(
                r.points
                    .iter()
                    .map(|p| chart.backend_coord(&(p.0, p.1)))
                    .collect(),
            );
        }
        let run_y = chart.backend_coord(&(t0, hi / 2.0)).1;
        let top_bottom = (
            chart.backend_coord(&(t0, hi)).1,
            chart.backend_coord(&(t0, 0.0)).1,
        );
        let xs: Vec<i32> = s
            .markers
            .iter()
            .map(|m| chart.backend_coord(&(m.time_s, 0.0)).0)
            .collect();
        (coords, run_y, top_bottom, xs)
    };
    let (coords, run_y, (y_top, y_bottom), marker_xs) = plot_area;
    // backend_coord is in root pixels; draw on the root.
    for (m, x) in s.markers.iter().zip(&marker_xs) {
        dashed_vline(
            &root,
            *x,
            y_top,
            y_bottom,
            RUN_LINE.mix(0.8).stroke_width(1),
        )?;
        root.draw_text(
            &m.label,
            &text(12.0)
                .color(&RGBColor(96, 96, 96))
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Center, VPos::Bottom)),
            (*x - 3, run_y),
        )?;
    }
    for (r, c) in s.series.iter().zip(&coords) {
        let col = rgb(r.color);
        if r.line && c.len() > 1 {
            root.draw(&PathElement::new(c.clone(), col.mix(0.5).stroke_width(1)))?;
        }
        for p in c {
            marker_at(&root, *p, r.marker, col)?;
        }
    }
    // Legend, top left inside the plot.
    let (lx, mut ly) = (rest.get_base_pixel().0 + 100, y_top + 16);
    for r in &s.series {
        marker_at(&root, (lx, ly), r.marker, rgb(r.color))?;
        root.draw_text(
            &r.name,
            &text(15.0).pos(Pos::new(HPos::Left, VPos::Center)),
            (lx + 14, ly),
        )?;
        ly += 22;
    }
    root.present()?;
    Ok(())
}
