//! Rates over UTC time (trigger rates): markers per series with a light
//! connecting line, linear or log y, run changes as dashed vertical lines
//! labelled `RUN <n>`, legend, data time in the title.

use pipeline::plot::{Marker, TimeSeries};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colormap::{rgb, GRID, RUN_LINE};
use super::{
    dashed_vline, draw_title, format_value, log_ticks, text, time_label, time_ticks, FONT,
};

pub const SIZE: (u32, u32) = (1920, 560);

/// A rate history as the pair of plots the original drew: `NAME` with a
/// log y axis (and `json`, the numbers) and `NAME_lin` with a linear one.
pub fn log_and_linear(
    name: &str,
    json: Option<String>,
    series: impl Fn(bool) -> TimeSeries,
) -> [pipeline::plot::Plot; 2] {
    use pipeline::plot::{Plot, PlotSpec};
    [
        Plot {
            name: name.to_string(),
            spec: PlotSpec::TimeSeries(series(true)),
            json,
        },
        Plot {
            name: format!("{name}_lin"),
            spec: PlotSpec::TimeSeries(series(false)),
            json: None,
        },
    ]
}

fn marker_at(
    area: &super::Area<'_>,
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

/// Draws into `buf` (RGB, `SIZE`).
pub fn render(buf: &mut [u8], s: &TimeSeries) -> anyhow::Result<()> {
    let root = super::canvas(buf, SIZE);
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
    // Round UTC ticks (every 10 min, 1 h, …), labelled HH:MM.
    let (x_ticks, _) = time_ticks(t0, t1, 16);
    let span = t1 - t0;
    let fmt = move |x: &f64| time_label(x.round() as i64, span);

    let plot_area = if s.log_y {
        let lo = positive().fold(f64::INFINITY, f64::min);
        let (lo, hi) = if lo.is_finite() {
            (lo / 2.0, vmax * 2.0)
        } else {
            (0.1, 10.0)
        };
        let (major, minor) = log_ticks(lo, hi);
        let mut chart = ChartBuilder::on(&rest)
            .margin(12)
            .margin_right(70)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .right_y_label_area_size(70)
            .build_cartesian_2d(t0..t1, (lo..hi).log_scale())?;
        // Axis labels and grid lines at round times / 1-2-5 values are
        // drawn below (plotters' log axis labels only powers of ten).
        chart
            .configure_mesh()
            .x_labels(0)
            .y_labels(0)
            // plotters' log axis keeps its powers of ten even at 0 labels.
            .y_label_formatter(&|_| String::new())
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
        let x_px: Vec<i32> = x_ticks
            .iter()
            .map(|t| chart.backend_coord(&(*t, lo)).0)
            .collect();
        let mut y_px: Vec<(i32, String, bool)> = major
            .iter()
            .map(|v| (chart.backend_coord(&(t0, *v)).1, format_value(*v), true))
            .collect();
        if s.minor_ticks {
            y_px.extend(
                minor
                    .iter()
                    .map(|v| (chart.backend_coord(&(t0, *v)).1, String::new(), false)),
            );
        }
        let x_lr = (
            chart.backend_coord(&(t0, lo)).0,
            chart.backend_coord(&(t1, lo)).0,
        );
        (coords, run_y, top_bottom, xs, x_px, y_px, x_lr)
    } else {
        let (lo, hi) = if s.y_auto {
            let finite = || pts().map(|p| p.1).filter(|v| v.is_finite());
            let lo = finite().fold(f64::INFINITY, f64::min);
            let hi = finite().fold(f64::NEG_INFINITY, f64::max);
            if lo.is_finite() {
                let pad = ((hi - lo) * 0.05).max(0.01);
                (lo - pad, hi + pad)
            } else {
                (0.0, 1.0)
            }
        } else {
            (0.0, if vmax > 0.0 { vmax * 1.1 } else { 1.0 })
        };
        let mut chart = ChartBuilder::on(&rest)
            .margin(12)
            .margin_right(70)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .right_y_label_area_size(70)
            .build_cartesian_2d(t0..t1, lo..hi)?;
        chart
            .configure_mesh()
            .x_labels(0)
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
        let run_y = chart.backend_coord(&(t0, (lo + hi) / 2.0)).1;
        let top_bottom = (
            chart.backend_coord(&(t0, hi)).1,
            chart.backend_coord(&(t0, lo)).1,
        );
        let xs: Vec<i32> = s
            .markers
            .iter()
            .map(|m| chart.backend_coord(&(m.time_s, lo)).0)
            .collect();
        let x_px: Vec<i32> = x_ticks
            .iter()
            .map(|t| chart.backend_coord(&(*t, lo)).0)
            .collect();
        let x_lr = (
            chart.backend_coord(&(t0, lo)).0,
            chart.backend_coord(&(t1, lo)).0,
        );
        (coords, run_y, top_bottom, xs, x_px, Vec::new(), x_lr)
    };
    let (coords, run_y, (y_top, y_bottom), marker_xs, x_px, y_px, (x_left, x_right)) = plot_area;
    // Round UTC time ticks with grid lines; log-axis ticks at 1-2-5.
    for (t, x) in x_ticks.iter().zip(&x_px) {
        root.draw(&PathElement::new(vec![(*x, y_top), (*x, y_bottom)], GRID))?;
        root.draw(&PathElement::new(
            vec![(*x, y_bottom), (*x, y_bottom + 5)],
            BLACK,
        ))?;
        root.draw_text(
            &fmt(t),
            &text(14.0).pos(Pos::new(HPos::Center, VPos::Top)),
            (*x, y_bottom + 8),
        )?;
    }
    for (y, label, major) in &y_px {
        let (line, tick) = if *major {
            (GRID.into(), 5)
        } else {
            (GRID.mix(0.35), 3)
        };
        root.draw(&PathElement::new(vec![(x_left, *y), (x_right, *y)], line))?;
        root.draw(&PathElement::new(
            vec![(x_left - tick, *y), (x_left, *y)],
            BLACK,
        ))?;
        root.draw(&PathElement::new(
            vec![(x_right, *y), (x_right + tick, *y)],
            BLACK,
        ))?;
        if *major {
            root.draw_text(
                label,
                &text(14.0).pos(Pos::new(HPos::Right, VPos::Center)),
                (x_left - 8, *y),
            )?;
            root.draw_text(
                label,
                &text(14.0).pos(Pos::new(HPos::Left, VPos::Center)),
                (x_right + 8, *y),
            )?;
        }
    }
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
    // A series without a name shares the legend line of one before it.
    for r in s.series.iter().filter(|r| !r.name.is_empty()) {
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
