//! `type = "plots"`: renders plot requests to PNG (plotters, embedded
//! DejaVu font — no system fonts) and writes the numbers beside each plot
//! as `NAME.json`. Both files are written atomically (temp file + rename).
//!
//! Rendering runs on the sink's own thread, never on a worker. Requests are
//! coalesced per file: a file is drawn at most once per `min_interval` of
//! wall time (a replay at full speed closes windows many times a second),
//! drawing takes at most `busy_share` of the wall time, and an older
//! request that a newer one overwrites is skipped; a full-speed replay
//! holds every file back for `replay_interval` (10 s) of wall time. The last
//! request of every file is always rendered, so the final files are the
//! same however fast the replay ran.

mod canvas;
pub mod colormap;
pub mod dommap;
pub mod matrix;
pub mod panels;
pub mod series;
mod sink;
pub mod waterfall;

pub use canvas::{canvas, Area, Canvas};
pub use sink::PlotSink;

use std::path::Path;
use std::sync::Once;

use pipeline::plot::{Plot, PlotSpec};
use pipeline::runtime::io::replace_atomic_with;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

/// The family every plot uses; registered once with the embedded font.
pub const FONT: &str = "sans-serif";

/// Registers the embedded DejaVu Sans (regular and bold).
pub fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let ok = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok();
        if !ok {
            tracing::error!("the embedded DejaVu font could not be registered");
        }
    });
}

/// A text style of the plot font.
pub fn text(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
}

pub fn bold(size: f64) -> TextStyle<'static> {
    TextStyle::from((FONT, size, FontStyle::Bold).into_font())
}

pub fn centered(style: TextStyle<'static>) -> TextStyle<'static> {
    style.pos(Pos::new(HPos::Center, VPos::Center))
}

/// Renders `plot` to `NAME.png` under `dir` (and `NAME.json` beside it).
pub fn render_to_dir(dir: &Path, plot: &Plot) -> anyhow::Result<()> {
    render_with(dir, plot, &mut Vec::new())
}

/// As [`render_to_dir`], drawing in `buf` (resized; every renderer paints
/// all of it): the render threads reuse their buffers, where a fresh
/// 2-5 MB allocation per plot cost more in page faults than the encoding.
pub fn render_with(dir: &Path, plot: &Plot, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    fonts();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let png = dir.join(format!("{}.png", plot.name));
    // Drawn into an RGB buffer, encoded here with fast deflate: the
    // encoder's default compression cost more than the drawing.
    let size = match &plot.spec {
        PlotSpec::DomMap(_) => dommap::SIZE,
        PlotSpec::TimeSeries(_) => series::SIZE,
        PlotSpec::Waterfall(_) => waterfall::SIZE,
        PlotSpec::HitMatrix(_) => matrix::SIZE,
        PlotSpec::Panels(p) => p.size(),
    };
    buf.resize(size.0 as usize * size.1 as usize * 3, 0);
    match &plot.spec {
        PlotSpec::DomMap(m) => dommap::render(buf, m),
        PlotSpec::TimeSeries(s) => series::render(buf, s),
        PlotSpec::Waterfall(w) => waterfall::render(buf, w),
        PlotSpec::HitMatrix(m) => matrix::render(buf, m),
        PlotSpec::Panels(p) => panels::render(buf, p),
    }?;
    // Errors name the file: "No space left on device" alone does not say
    // which output failed.
    // A DOM map is a grid of flat cells (rows repeat the one above);
    // everything else is best predicted from the left (see write_png).
    let filter = match &plot.spec {
        PlotSpec::DomMap(_) => png::FilterType::Up,
        _ => png::FilterType::Sub,
    };
    replace_atomic_with(&png, |w| encode_png(w, size, buf, filter))
        .with_context(|| format!("cannot write {}", png.display()))?;
    if let Some(json) = &plot.json {
        let path = dir.join(format!("{}.json", plot.name));
        // Redrawn with the PNG: no fsync either.
        replace_atomic_with(&path, |w| w.write_all(json.as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Draws a `size` picture with `paint` (into an RGB buffer) and writes it
/// to `png` atomically (without fsync: plots are redrawn all the time):
/// the one way a plot that is not a [`Plot`] is written. Errors name the
/// file.
pub fn save_png(
    png: &Path,
    size: (u32, u32),
    paint: impl FnOnce(&mut [u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut buf = vec![0; size.0 as usize * size.1 as usize * 3];
    paint(&mut buf)
        .and_then(|()| replace_atomic_with(png, |w| write_png(w, size, &buf)))
        .with_context(|| format!("cannot write {}", png.display()))
}

/// Writes an RGB buffer as PNG: fast deflate, `Sub` filter.
///
/// The fast deflate (fdeflate) codes runs of zero bytes cheaply and every
/// other byte with ~8-12 bits, so its time and size follow the non-zero
/// bytes the filter leaves. Plots are flat areas crossed by horizontal
/// grid lines, text and curves: `Sub` (left neighbour) leaves the fewest
/// non-zero bytes among the cheap filters. Measured on a replay's files
/// (png 0.17.16, 10-40 encodes each): AHRS series and PMT waterfalls
/// 262/207 KB with `Up` -> 162/96 KB with `Sub`, encoding ~20 % faster;
/// hitmap 3.3 MB -> 0.6 MB, 4x faster. `Paeth` is smaller still but
/// slower than `Up`; the adaptive choice per row twice as slow.
pub fn write_png(out: &mut dyn std::io::Write, size: (u32, u32), rgb: &[u8]) -> anyhow::Result<()> {
    encode_png(out, size, rgb, png::FilterType::Sub)
}

/// [`write_png`] with another filter (the DOM map's cells repeat the row
/// above: `Up` there is 274 KB and twice as fast as `Sub`'s 762 KB).
/// Lossless either way: the pixels do not depend on the filter.
fn encode_png(
    out: &mut dyn std::io::Write,
    (w, h): (u32, u32),
    rgb: &[u8],
    filter: png::FilterType,
) -> anyhow::Result<()> {
    let mut enc = png::Encoder::new(out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    enc.set_filter(filter);
    enc.set_adaptive_filter(png::AdaptiveFilterType::NonAdaptive);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}

/// Copies an RGB image (`size` pixels, row-major, 3 bytes a pixel) into
/// `area` at `pos` (pixels relative to the area) in one blit.
pub fn blit<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    pos: (i32, i32),
    size: (usize, usize),
    rgb: Vec<u8>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    if size.0 == 0 || size.1 == 0 {
        return Ok(());
    }
    let image = BitMapElement::with_owned_buffer(pos, (size.0 as u32, size.1 as u32), rgb)
        .ok_or_else(|| anyhow::anyhow!("image buffer of the wrong size"))?;
    area.draw(&image)?;
    Ok(())
}

/// The standard two-line title: what, and up to when the data goes.
pub fn draw_title<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    data_time_ns: u64,
    size: f64,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (w, _) = area.dim_in_pixel();
    let cx = w as i32 / 2;
    area.draw_text(title, &centered(bold(size)), (cx, (size * 0.8) as i32))?;
    let when = format!(
        "data up to {}",
        crate::shell::human((data_time_ns / 1_000_000_000) as i64)
    );
    area.draw_text(
        &when,
        &centered(text(size * 0.8)),
        (cx, (size * 2.0) as i32),
    )?;
    Ok(())
}

/// A vertical colour bar with value labels, filling `area`.
#[allow(clippy::too_many_arguments)]
pub fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    map: pipeline::plot::Colormap,
    vmin: f64,
    vmax: f64,
    log: bool,
    label: &str,
    top: i32,
    bottom: i32,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let x0 = 10;
    let x1 = 32;
    let h = (bottom - top).max(1);
    let bw = (x1 - x0) as usize;
    let mut buf = Vec::with_capacity(bw * h as usize * 3);
    for y in top..bottom {
        let f = f64::from(bottom - 1 - y) / f64::from(h - 1).max(1.0);
        let RGBColor(r, g, b) = colormap::color(map, f);
        for _ in 0..bw {
            buf.extend_from_slice(&[r, g, b]);
        }
    }
    blit(area, (x0, top), (bw, h as usize), buf)?;
    area.draw(&Rectangle::new(
        [(x0, top), (x1, bottom)],
        BLACK.stroke_width(1),
    ))?;
    let ticks = 6;
    for i in 0..=ticks {
        let f = f64::from(i) / f64::from(ticks);
        let v = if log && vmin > 0.0 {
            (vmin.ln() + f * (vmax.ln() - vmin.ln())).exp()
        } else {
            vmin + f * (vmax - vmin)
        };
        let y = bottom - (f * f64::from(h)) as i32;
        area.draw(&PathElement::new(vec![(x1, y), (x1 + 4, y)], BLACK))?;
        area.draw_text(
            &format_value(v),
            &text(13.0).pos(Pos::new(HPos::Left, VPos::Center)),
            (x1 + 7, y),
        )?;
    }
    let (w, _) = area.dim_in_pixel();
    area.draw_text(
        label,
        &centered(text(15.0)).transform(FontTransform::Rotate270),
        (w as i32 - 14, (top + bottom) / 2),
    )?;
    Ok(())
}

/// Round UTC time ticks in `[t0, t1]` (Unix seconds): the smallest step
/// of 1, 2, 5, 10, 15, 20, 30 min, 1, 2, 3, 6, 12 h, 1, 2, 7 d giving at
/// most `max` ticks, at multiples of the step. Returns (ticks, step).
pub fn time_ticks(t0: f64, t1: f64, max: usize) -> (Vec<f64>, i64) {
    const STEPS: [i64; 16] = [
        60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800,
        604_800, 2_592_000,
    ];
    let span = (t1 - t0).max(1.0);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / *s as f64 <= max.max(1) as f64)
        .unwrap_or(STEPS[STEPS.len() - 1]);
    let first = (t0 / step as f64).ceil() as i64;
    let last = (t1 / step as f64).floor() as i64;
    let ticks = (first..=last).map(|k| (k * step) as f64).collect();
    (ticks, step)
}

/// The label of a time tick: `HH:MM` UTC, with the date (`MM-DD HH:MM`)
/// when the axis spans more than a day.
pub fn time_label(t: i64, span_s: f64) -> String {
    if span_s > 86_400.0 {
        crate::shell::mdhm(t)
    } else {
        crate::shell::hhmm(t)
    }
}

/// Ticks of a log axis over `[lo, hi]`: labelled ticks at 1×10^k when
/// that gives at least 4, else at 1, 2, 5×10^k, else at 1…9×10^k;
/// minor ticks at the other 1…9×10^k. Returns (major, minor).
pub fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return (vec![], vec![]);
    }
    let (k0, k1) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32 + 1);
    let at = |mantissas: &[f64]| -> Vec<f64> {
        (k0..=k1)
            .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|v| *v >= lo && *v <= hi)
            .collect()
    };
    let all = at(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let mut major = at(&[1.0]);
    if major.len() < 4 {
        major = at(&[1.0, 2.0, 5.0]);
    }
    if major.len() < 4 {
        major = all.clone();
    }
    let minor = all
        .into_iter()
        .filter(|v| !major.iter().any(|m| (m - v).abs() <= 1e-9 * v))
        .collect();
    (major, minor)
}

/// Short, readable tick values.
pub fn format_value(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-2..1e4).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || (v.fract() == 0.0) {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A dashed vertical line in pixel space.
pub fn dashed_vline<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    x: i32,
    y0: i32,
    y1: i32,
    style: ShapeStyle,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let mut y = y0;
    while y < y1 {
        let e = (y + 8).min(y1);
        area.draw(&PathElement::new(vec![(x, y), (x, e)], style))?;
        y += 13;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::plot::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("km3mon-plot-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// A full-size detector's DOM map (115 DUs × 18 floors).
    pub fn full_dom_map() -> Plot {
        let det = daq::detector::Detector::generate(99, 115, 18, 31);
        let layout = crate::shell::DomLayout::of(&det);
        let value = |dom: u32| match dom % 11 {
            0 => None,
            1 => Some(100.0),
            2 => Some(500.0),
            k => Some(150.0 + 20.0 * f64::from(k)),
        };
        Plot {
            name: "dom_rates".into(),
            spec: PlotSpec::DomMap(DomMap {
                title: "DOM Rates for DetID-99".into(),
                data_time_ns: 1_574_424_024_000_000_000,
                colorbar_label: "rate [kHz]".into(),
                vmin: 150.0,
                vmax: 350.0,
                colormap: Colormap::Coolwarm,
                under: colormap::DARKORCHID,
                over: colormap::DEEPPINK,
                missing: colormap::BLACK,
                dus: layout.dus.clone(),
                max_floor: layout.max_floor,
                doms: layout.cells(value),
                categories: Vec::new(),
                columns: None,
            }),
            json: Some(layout.json(1_574_424_024_000_000_000, value)),
        }
    }

    #[test]
    fn time_ticks_are_round_and_log_ticks_are_enough() {
        // 24 h: every 2 h at even hours (<= 16 ticks).
        let (t, step) = time_ticks(1_700_000_123.0, 1_700_086_523.0, 16);
        assert_eq!(step, 7200);
        assert!(t.iter().all(|v| *v as i64 % 7200 == 0));
        assert!(t.len() >= 11 && t.len() <= 13, "{t:?}");
        // 2 h 40 min of 10 s columns: every 20 min.
        let (t, step) = time_ticks(1_700_000_000.0, 1_700_009_600.0, 10);
        assert_eq!(step, 1200);
        assert_eq!(time_label(t[0] as i64, 9600.0).len(), 5);
        // A log axis over less than a decade still gets >= 4 labels.
        let (major, minor) = log_ticks(25.0, 120.0);
        assert!(major.len() >= 4, "{major:?}");
        assert!(major.contains(&50.0) && major.contains(&100.0));
        assert!(minor.iter().all(|m| !major.contains(m)));
        let (major, _) = log_ticks(0.05, 2000.0);
        assert_eq!(major, vec![0.1, 1.0, 10.0, 100.0, 1000.0]);
    }

    fn is_png(p: &Path) -> bool {
        std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x89PNG"))
    }

    #[test]
    fn every_plot_kind_renders_atomically() {
        let dir = tmp("kinds");
        let start = std::time::Instant::now();
        render_to_dir(&dir, &full_dom_map()).unwrap();
        eprintln!("DOM map of 4140 DOMs: {:?}", start.elapsed());
        assert!(is_png(&dir.join("dom_rates.png")));
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("dom_rates.json")).unwrap()).unwrap();
        let det = daq::detector::Detector::generate(99, 115, 18, 31);
        let with_value = det.optical_modules().filter(|m| m.dom_id % 11 != 0).count();
        assert_eq!(json["doms"].as_array().unwrap().len(), with_value);
        let ts = Plot {
            name: "trigger_rates".into(),
            spec: PlotSpec::TimeSeries(TimeSeries {
                title: "Trigger Rates for DetID-99".into(),
                data_time_ns: 1_574_424_024_000_000_000,
                y_label: "trigger rate [Hz]".into(),
                log_y: true,
                minor_ticks: true,
                y_auto: false,
                series: vec![Series {
                    name: "Overall".into(),
                    color: colormap::TOMATO,
                    marker: Marker::Diamond,
                    line: true,
                    points: (0..288)
                        .map(|i| {
                            (
                                1_574_337_624.0 + 300.0 * f64::from(i),
                                50.0 + f64::from(i % 7),
                            )
                        })
                        .collect(),
                }],
                markers: vec![TimeMarker {
                    time_s: 1_574_400_000.0,
                    label: "RUN 6760".into(),
                }],
            }),
            json: None,
        };
        render_to_dir(&dir, &ts).unwrap();
        let col = Arc::new(WaterfallColumn {
            end_s: 1_574_424_020,
            values: (0..558).map(|r| r as u16 * 3).collect(),
            marks: vec![1, 0, 0, 0, 0, 0, 0, 0, 0],
        });
        let wf = Plot {
            name: "pmt_rates_du1".into(),
            spec: PlotSpec::Waterfall(Waterfall {
                title: "Mean PMT Rates".into(),
                subtitle: "PMTs ordered from top to bottom".into(),
                data_time_ns: 1_574_424_020_000_000_000,
                interval_s: 10,
                unit: 10.0,
                vmin: 1000.0,
                vmax: 20000.0,
                colormap: Colormap::Cividis,
                colorbar_label: "rate [Hz]".into(),
                n_rows: 558,
                bands: (0..18)
                    .map(|f| (f * 31, 31, format!("Floor {}", f + 1)))
                    .collect(),
                n_columns: 800,
                columns: vec![col; 300],
            }),
            json: None,
        };
        render_to_dir(&dir, &wf).unwrap();
        let hm = Plot {
            name: "hitmap".into(),
            spec: PlotSpec::HitMatrix(HitMatrix {
                title: "Hits on DOMs".into(),
                data_time_ns: 1_574_424_020_000_000_000,
                colorbar_label: "number of hits".into(),
                n_rows: 57,
                row_labels: vec![(0, "DU1-DOM0".into()), (19, "DU2-DOM0".into())],
                du_starts: vec![0, 19, 38],
                n_columns: 100,
                events: (0..60u32)
                    .map(|i| Arc::new(vec![(i % 57, 3), (5, 1)]))
                    .collect(),
                markers: vec![(30, "RUN 2".into())],
            }),
            json: None,
        };
        render_to_dir(&dir, &hm).unwrap();
        for n in ["trigger_rates", "pmt_rates_du1", "hitmap"] {
            assert!(is_png(&dir.join(format!("{n}.png"))), "{n}");
        }
        // Only final files: no temp file left behind.
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(!name.starts_with('.'), "{name}");
        }
    }
}
