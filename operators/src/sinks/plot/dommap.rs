//! The DOM map (spec §1.7): every DOM of the detector at x = DU (sorted
//! numerically, one column per DU), y = floor; missing DOMs first in the
//! missing colour, DOMs with a value on top — coloured within
//! [vmin, vmax], in the under / over colour outside. Colour bar on the
//! right, legend below, data time in the title. A categorical map (states,
//! e.g. time sync) names its colours in the legend instead of a bar.

use pipeline::plot::DomMap;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::colormap::{color, rgb};
use super::{draw_colorbar, draw_title, text, FONT};

pub const SIZE: (u32, u32) = (1200, 720);

/// Draws into `buf` (RGB, `SIZE`).
pub fn render(buf: &mut [u8], m: &DomMap) -> anyhow::Result<()> {
    let root = super::canvas(buf, SIZE);
    root.fill(&WHITE)?;
    let (top, rest) = root.split_vertically(64);
    draw_title(&top, &m.title, m.data_time_ns, 20.0)?;
    let (body, legend) = rest.split_vertically(SIZE.1 - 64 - 50);
    let (plot, bar) = body.split_horizontally(SIZE.0 - 110);

    let n = m.dus.len().max(1);
    let max_floor = m.max_floor.max(1);
    // A floor-0 row only when the detector has base modules.
    let min_floor = m
        .doms
        .iter()
        .map(|d| d.floor)
        .min()
        .unwrap_or(1)
        .clamp(0, 1);
    let mut chart = ChartBuilder::on(&plot)
        .margin_left(10)
        .margin_right(10)
        .margin_top(6)
        .x_label_area_size(42)
        .y_label_area_size(56)
        .build_cartesian_2d(
            -0.6f64..(n as f64 - 0.4),
            (f64::from(min_floor) - 0.6)..(f64::from(max_floor) + 0.6),
        )?;
    let labels: Vec<String> = match &m.columns {
        Some(c) => c.labels.clone(),
        None => m.dus.iter().map(u32::to_string).collect(),
    };
    let x_desc = m.columns.as_ref().map_or("DU", |c| c.title.as_str());
    // At most ~30 DU labels; the rest would overlap.
    let step = n.div_ceil(30).max(1);
    let floor_step = (max_floor as usize).div_ceil(20).max(1);
    chart
        .configure_mesh()
        .x_labels(n.min(200))
        .y_labels(((max_floor - min_floor) as usize + 1).min(60))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 || !(i as usize).is_multiple_of(step) {
                return String::new();
            }
            labels.get(i as usize).cloned().unwrap_or_default()
        })
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() > 1e-6 || i < 0.0 || !(i as usize).is_multiple_of(floor_step) {
                return String::new();
            }
            format!("{i:.0}")
        })
        .x_desc(x_desc)
        .y_desc("floor (DOM)")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 16))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(super::colormap::GRID.mix(0.6))
        .draw()?;

    // Marker size from the cell size, so 1 DU and 230 DUs both read well.
    let (pw, ph) = chart.plotting_area().dim_in_pixel();
    let cell =
        (f64::from(pw) / n as f64).min(f64::from(ph) / (f64::from(max_floor - min_floor) + 1.2));
    let r = (cell * 0.42).clamp(1.5, 9.0) as i32;
    let x_of: std::collections::HashMap<u32, usize> =
        m.dus.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    let pos = |du: u32, floor: i32| x_of.get(&du).map(|&x| (x as f64, f64::from(floor)));
    let missing = rgb(m.missing);
    chart.draw_series(m.doms.iter().filter_map(|d| {
        let p = pos(d.du, d.floor)?;
        Some(Circle::new(p, r, missing.filled()))
    }))?;
    let span = (m.vmax - m.vmin).max(f64::MIN_POSITIVE);
    chart.draw_series(m.doms.iter().filter_map(|d| {
        let v = d.value?;
        let p = pos(d.du, d.floor)?;
        let category = m.categories.iter().find(|c| c.value == v);
        let c = if let Some(category) = category {
            rgb(category.color)
        } else if v < m.vmin {
            rgb(m.under)
        } else if v > m.vmax {
            rgb(m.over)
        } else {
            color(m.colormap, (v - m.vmin) / span)
        };
        Some(Circle::new(p, r + 1, c.filled()))
    }))?;

    let (lw, _) = legend.dim_in_pixel();
    let items: Vec<(RGBColor, String)> = if m.categories.is_empty() {
        let (_, bh) = bar.dim_in_pixel();
        draw_colorbar(
            &bar,
            m.colormap,
            m.vmin,
            m.vmax,
            false,
            &m.colorbar_label,
            12,
            bh as i32 - 48,
        )?;
        // The three special colours.
        vec![
            (rgb(m.missing), "missing".to_string()),
            (rgb(m.under), format!("< {}", super::format_value(m.vmin))),
            (rgb(m.over), format!("> {}", super::format_value(m.vmax))),
        ]
    } else {
        // States: each named, and no scale.
        m.categories
            .iter()
            .map(|c| (rgb(c.color), c.label.clone()))
            .chain([(rgb(m.missing), "no data".to_string())])
            .collect()
    };
    // The DOM count first, then the colours after it, spaced evenly over
    // the rest of the width but never closer than their own width (the
    // count once sat centred on the first label).
    let counts = format!(
        "{} DOMs, {} with data",
        m.doms.len(),
        m.doms.iter().filter(|d| d.value.is_some()).count()
    );
    let (counts_w, _) = legend.estimate_text_size(&counts, &text(13.0))?;
    legend.draw_text(
        &counts,
        &text(13.0).pos(Pos::new(HPos::Left, VPos::Center)),
        (12, 22),
    )?;
    let x0 = 12 + counts_w as i32 + 40;
    let slot = (lw as i32 - x0 - 12) / items.len().max(1) as i32;
    let mut x = x0 + 7;
    for (c, label) in &items {
        legend.draw(&Circle::new((x, 22), 7, c.filled()))?;
        legend.draw_text(
            label,
            &text(15.0).pos(Pos::new(HPos::Left, VPos::Center)),
            (x + 14, 22),
        )?;
        let (w, _) = legend.estimate_text_size(label, &text(15.0))?;
        x += slot.max(14 + w as i32 + 24);
    }
    root.present()?;
    Ok(())
}
