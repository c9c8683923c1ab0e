//! The drawing backend of every plot: plotters' `BitMapBackend` with text
//! drawn from cached glyph coverage.
//!
//! plotters' ab_glyph path rasterises each glyph from its outline on every
//! call, and text was about half of a plot's drawing time (tick labels,
//! titles: the same few characters in every file). A glyph's coverage
//! depends only on the font, the size and the character (plotters places
//! it at the origin and shifts it by whole pixels), so it is rasterised
//! once per (font, size, character) and kept. Layout, kerning, anchors,
//! rotation and blending are plotters' own steps in the same order and
//! the same float types: the pixels are identical to plotters' (a test
//! compares both backends). Every other call goes to `BitMapBackend`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use ab_glyph::{Font, FontRef, GlyphId, ScaleFont};
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, IntoDrawingArea};
use plotters::style::FontStyle;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};
use plotters_bitmap::{BitMapBackend, BitMapBackendError};

use super::FONT;

/// A plot's drawing area.
pub type Area<'a> = DrawingArea<Canvas<'a>, Shift>;

/// A drawing area over an RGB buffer of `size` pixels.
pub fn canvas(buf: &mut [u8], size: (u32, u32)) -> Area<'_> {
    super::fonts();
    Canvas {
        inner: BitMapBackend::with_buffer(buf, size),
    }
    .into_drawing_area()
}

/// `BitMapBackend` (RGB) with cached glyphs; see the module comment.
pub struct Canvas<'a> {
    inner: BitMapBackend<'a>,
}

/// One glyph at one size, as plotters would draw it at the origin.
struct Glyph {
    id: GlyphId,
    advance: f32,
    /// plotters' vertical shift: half the size plus the top of the glyph's
    /// pixel box, truncated.
    y_shift: i32,
    /// Covered pixels (x, y, coverage) in the pixel box; uncovered ones
    /// are left out (plotters' blend skips alpha <= 0).
    pixels: Box<[(i32, i32, f32)]>,
}

type Key = (bool, u32, char);

fn faces() -> &'static [FontRef<'static>; 2] {
    static FACES: OnceLock<[FontRef<'static>; 2]> = OnceLock::new();
    FACES.get_or_init(|| {
        let face = |bytes| FontRef::try_from_slice(bytes).expect("the embedded DejaVu font");
        [face(dejavu::sans::regular()), face(dejavu::sans::bold())]
    })
}

/// The glyphs of `text` in `font` at `size` (rasterised on first use).
fn glyphs(bold: bool, size: f32, text: &str) -> Vec<Arc<Glyph>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Glyph>>>> = OnceLock::new();
    let font = faces()[usize::from(bold)].as_scaled(size);
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    text.chars()
        .map(|c| {
            cache
                .entry((bold, size.to_bits(), c))
                .or_insert_with(|| {
                    let id = font.glyph_id(c);
                    let mut pixels = Vec::new();
                    let mut y_shift = 0;
                    if let Some(q) = font.outline_glyph(font.scaled_glyph(c)) {
                        y_shift = (size / 2.0 + q.px_bounds().min.y) as i32;
                        q.draw(|x, y, a| {
                            if a > 0.0 {
                                pixels.push((x as i32, y as i32, a));
                            }
                        });
                    }
                    Arc::new(Glyph {
                        id,
                        advance: font.h_advance(id),
                        y_shift,
                        pixels: pixels.into_boxed_slice(),
                    })
                })
                .clone()
        })
        .collect()
}

/// The face a text style resolves to in plotters' registry (`fonts()`
/// registered DejaVu Sans regular and bold under [`FONT`]; other styles
/// fall back to regular); `None`: another family, left to plotters.
fn face_of<S: BackendTextStyle>(style: &S) -> Option<bool> {
    (style.family().as_str() == FONT).then(|| matches!(style.style(), FontStyle::Bold))
}

/// plotters' `estimate_layout`: advances and kerning summed in its order.
fn layout(bold: bool, size: f64, glyphs: &[Arc<Glyph>]) -> ((i32, i32), (i32, i32)) {
    let font = faces()[usize::from(bold)].as_scaled(size as f32);
    let mut x_pixels = 0f32;
    let mut prev: Option<GlyphId> = None;
    for g in glyphs {
        x_pixels += g.advance;
        if let Some(p) = prev {
            x_pixels += font.kern(p, g.id);
        }
        prev = Some(g.id);
    }
    ((0, 0), (x_pixels as i32, (size / 1.24) as i32))
}

type Result<T> = std::result::Result<T, DrawingErrorKind<BitMapBackendError>>;

impl DrawingBackend for Canvas<'_> {
    type ErrorType = BitMapBackendError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<()> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<()> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<()> {
        self.inner.draw_pixel(point, color)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<()> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<()> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<()> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<()> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<()> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result<()> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(&self, text: &str, style: &S) -> Result<(u32, u32)> {
        let Some(bold) = face_of(style) else {
            return self.inner.estimate_text_size(text, style);
        };
        let size = style.size();
        let ((x0, y0), (x1, y1)) = layout(bold, size, &glyphs(bold, size as f32, text));
        Ok(((x1 - x0) as u32, (y1 - y0) as u32))
    }

    /// plotters' default `draw_text` with `FontDataInternal::draw` inlined
    /// over cached glyphs.
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<()> {
        let Some(bold) = face_of(style) else {
            return self.inner.draw_text(text, style, pos);
        };
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let size = style.size();
        let glyphs = glyphs(bold, size as f32, text);
        let ((min_x, min_y), (max_x, max_y)) = layout(bold, size, &glyphs);
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.get_size();
        let font = faces()[usize::from(bold)].as_scaled(size as f32);
        let mut x_shift = 0f32;
        let mut prev: Option<GlyphId> = None;
        for g in &glyphs {
            if let Some(p) = prev {
                x_shift += font.kern(p, g.id);
            }
            prev = Some(g.id);
            let gx = x_shift as i32;
            for &(px, py, a) in g.pixels.iter() {
                let (x, y) = trans.transform(px + gx + dx - min_x, py + g.y_shift + dy - min_y);
                let (x, y) = (pos.0 + x, pos.1 + y);
                if x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                    self.inner.draw_pixel((x, y), color.mix(f64::from(a)))?;
                }
            }
            x_shift += g.advance;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;
    use plotters::style::text_anchor::Pos;

    /// Every anchor, rotation, both faces, several sizes, kerning pairs,
    /// colours with alpha and text cut by the edge: the same pixels as
    /// plotters' own text path, and the same estimated sizes.
    #[test]
    fn cached_text_draws_the_same_pixels_as_plotters() {
        super::super::fonts();
        let size = (420u32, 300u32);
        fn draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
        where
            DB::ErrorType: 'static,
        {
            let texts = [
                "AVAWAY Tet 1.0e-3",
                "DOM 816756640 (last window)",
                "ÄÖü µs °C ~",
                "",
            ];
            area.fill(&WHITE)?;
            let mut y = -8;
            for (i, t) in texts.iter().enumerate() {
                for (k, px) in [9.0, 13.0, 15.5, 20.0, 31.0].iter().enumerate() {
                    let font = if (i + k) % 2 == 0 {
                        (FONT, *px).into_font()
                    } else {
                        (FONT, *px, FontStyle::Bold).into_font()
                    };
                    let transform = [
                        FontTransform::None,
                        FontTransform::Rotate90,
                        FontTransform::Rotate180,
                        FontTransform::Rotate270,
                    ][(i + k) % 4]
                        .clone();
                    let color = [BLACK.to_rgba(), RED.mix(0.4), BLUE.mix(1.0)][k % 3];
                    let hpos = [HPos::Left, HPos::Center, HPos::Right][(i + k) % 3];
                    let vpos = [VPos::Top, VPos::Center, VPos::Bottom][k % 3];
                    let style = TextStyle::from(font.transform(transform))
                        .color(&color)
                        .pos(Pos::new(hpos, vpos));
                    area.draw_text(t, &style, (40 * k as i32 - 10, y))?;
                    y += 14;
                }
            }
            Ok(())
        }
        let mut plain = vec![0; size.0 as usize * size.1 as usize * 3];
        let mut cached = plain.clone();
        draw(&BitMapBackend::with_buffer(&mut plain, size).into_drawing_area()).unwrap();
        draw(&canvas(&mut cached, size)).unwrap();
        assert!(plain.iter().any(|b| *b != 255), "nothing drawn");
        assert!(plain == cached, "pixels differ");
        // Drawn a second time from the cache: still the same.
        let mut again = vec![0; cached.len()];
        draw(&canvas(&mut again, size)).unwrap();
        assert!(again == cached);
        for t in ["AVAWAY Tet", "µs °C", ""] {
            for style in [text(13.0), super::super::bold(20.0)] {
                let mut b = vec![0; 12];
                let plain = BitMapBackend::with_buffer(&mut b, (2, 2))
                    .estimate_text_size(t, &style)
                    .unwrap();
                let mut b = vec![0; 12];
                let ours = Canvas {
                    inner: BitMapBackend::with_buffer(&mut b, (2, 2)),
                }
                .estimate_text_size(t, &style)
                .unwrap();
                assert_eq!(plain, ours, "{t}");
            }
        }
    }

    use super::super::text;
}
