//! `ztplot_roy.png` (spec `reco.md` §5): per fitted DU, in the colour of
//! its place among the DUs with hits, all hits (small circles), the
//! triggered ones (larger, lighter), the selected ones (crosses) and the
//! fitted t(z); time on x, z on y; the original's three-line title.

use std::path::Path;

use plotters::prelude::*;

use super::event::EventFit;
use crate::monitors::ztplot::hits::trigger_flags;
use crate::shell::human;
use crate::sinks::plot::{centered, fonts, text, FONT};

pub const SIZE: (u32, u32) = (1400, 1000);

/// Plots.jl's default palette.
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x00, 0x9A, 0xFA),
    RGBColor(0xE3, 0x6F, 0x47),
    RGBColor(0x3E, 0xA4, 0x4E),
    RGBColor(0xC3, 0x71, 0xD2),
    RGBColor(0xAC, 0x8E, 0x18),
    RGBColor(0x00, 0xAA, 0xAE),
    RGBColor(0xED, 0x5E, 0x93),
    RGBColor(0xC6, 0x82, 0x25),
    RGBColor(0x00, 0xA9, 0x8D),
    RGBColor(0x8E, 0x97, 0x1E),
];

pub fn title(ev: &EventFit) -> [String; 3] {
    let qs: Vec<String> = ev.fits.iter().map(|(_, f)| format!("{:.2}", f.q)).collect();
    let flags = trigger_flags(ev.trigger_mask);
    [
        format!(
            "ROy live reconstruction (combined single line): Q=[{}]",
            qs.join(", ")
        ),
        format!(
            "Det ID {}, Run:{} FI:{} TC:{}, Overlays {}, Trigger: {}",
            ev.det_id,
            ev.run,
            ev.frame_index,
            ev.trigger_counter,
            ev.overlays,
            if flags.is_empty() {
                String::new()
            } else {
                format!("{flags} ")
            }
        ),
        human(i64::from(ev.utc_seconds)),
    ]
}

/// Renders to `path` (a `.png`, written atomically).
pub fn render(path: &Path, ev: &EventFit, max_z: f64) -> anyhow::Result<()> {
    crate::sinks::plot::save_png(path, SIZE, |buf| paint(buf, ev, max_z))
}

fn paint(buf: &mut [u8], ev: &EventFit, max_z: f64) -> anyhow::Result<()> {
    fonts();
    let root = BitMapBackend::with_buffer(buf, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(100);
    for (i, line) in title(ev).iter().enumerate() {
        top.draw(&Text::new(
            line.clone(),
            (SIZE.0 as i32 / 2, 22 + 28 * i as i32),
            centered(text(19.0)),
        ))?;
    }
    let (t_lo, t_hi) = ev
        .hits
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |a, h| {
            (a.0.min(h.t), a.1.max(h.t))
        });
    if !t_lo.is_finite() {
        root.present()?;
        return Ok(());
    }
    let pad = ((t_hi - t_lo) * 0.05).max(10.0);
    let (x0, x1) = (t_lo - pad, t_hi + pad);
    let z_top = if max_z > 0.0 { max_z } else { 1.0 };
    let mut chart = ChartBuilder::on(&body)
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..z_top * 1.02)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_labels(6)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_desc("time [ns]")
        .y_desc("z [m]")
        .draw()?;
    let colour = |du: u32| {
        let k = ev.dus_with_hits.iter().position(|d| *d == du).unwrap_or(0);
        PALETTE[k % PALETTE.len()]
    };
    for (du, fit) in &ev.fits {
        let c = colour(*du);
        let hits: Vec<_> = ev.hits.iter().filter(|h| h.du == *du).collect();
        chart
            .draw_series(
                hits.iter()
                    .map(|h| Circle::new((h.t, h.z), 2, c.mix(0.7).filled())),
            )?
            .label(format!("DU {du}"))
            .legend(move |(x, y)| Circle::new((x + 8, y), 5, c.filled()));
        chart.draw_series(
            hits.iter()
                .filter(|h| h.triggered)
                .map(|h| Circle::new((h.t, h.z), 5, c.mix(0.4).filled())),
        )?;
        chart.draw_series(fit.hits.iter().map(|h| {
            let style = c.stroke_width(2);
            EmptyElement::at((h.t, h.z))
                + PathElement::new(vec![(-7, -7), (7, 7)], style)
                + PathElement::new(vec![(-7, 7), (7, -7)], style)
        }))?;
        let curve = (0..200).filter_map(|i| {
            let z = z_top * f64::from(i) / 199.0;
            let t = fit.params.arrival_time(z);
            (t >= x0 && t <= x1).then_some((t, z))
        });
        chart.draw_series(curve.map(|p| Circle::new(p, 1, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 15))
        .draw()?;
    root.present()?;
    Ok(())
}
