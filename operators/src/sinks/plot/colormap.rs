//! The colour maps and named colours of the original's plots, as
//! piecewise-linear tables (9 anchors each: close enough to matplotlib's
//! maps that a shifter reads the same colours).

use pipeline::plot::{Colormap, Rgb};
use plotters::style::RGBColor;

const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];
const PLASMA: [(u8, u8, u8); 9] = [
    (13, 8, 135),
    (75, 3, 161),
    (125, 3, 168),
    (168, 34, 150),
    (203, 70, 121),
    (229, 107, 93),
    (248, 148, 65),
    (253, 195, 40),
    (240, 249, 33),
];
const CIVIDIS: [(u8, u8, u8); 9] = [
    (0, 34, 78),
    (18, 53, 112),
    (59, 73, 108),
    (87, 93, 109),
    (112, 113, 115),
    (138, 134, 120),
    (165, 156, 116),
    (195, 180, 105),
    (254, 232, 56),
];
const COOLWARM: [(u8, u8, u8); 9] = [
    (59, 76, 192),
    (84, 117, 232),
    (124, 159, 249),
    (170, 199, 253),
    (221, 221, 221),
    (244, 196, 173),
    (244, 154, 123),
    (222, 96, 77),
    (180, 4, 38),
];

fn table(map: Colormap) -> &'static [(u8, u8, u8); 9] {
    match map {
        Colormap::Viridis => &VIRIDIS,
        Colormap::Plasma => &PLASMA,
        Colormap::Cividis => &CIVIDIS,
        Colormap::Coolwarm => &COOLWARM,
    }
}

/// Colour at `x` in [0, 1] (clamped).
pub fn color(map: Colormap, x: f64) -> RGBColor {
    let t = table(map);
    let x = if x.is_finite() {
        x.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = x * (t.len() - 1) as f64;
    let i = (pos.floor() as usize).min(t.len() - 2);
    let f = pos - i as f64;
    let lerp = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * f).round() as u8;
    let (a, b) = (t[i], t[i + 1]);
    RGBColor(lerp(a.0, b.0), lerp(a.1, b.1), lerp(a.2, b.2))
}

pub fn rgb(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

pub const DEEPSKYBLUE: Rgb = Rgb(0, 191, 255);
pub const DEEPPINK: Rgb = Rgb(255, 20, 147);
pub const LIGHTGRAY: Rgb = Rgb(211, 211, 211);
pub const DARKORCHID: Rgb = Rgb(153, 50, 204);
pub const BLACK: Rgb = Rgb(0, 0, 0);
pub const MEDIUMSEAGREEN: Rgb = Rgb(60, 179, 113);
pub const TOMATO: Rgb = Rgb(255, 99, 71);
pub const DODGERBLUE: Rgb = Rgb(30, 144, 255);
pub const ORANGE: Rgb = Rgb(255, 165, 0);
pub const OLIVEDRAB: Rgb = Rgb(107, 142, 35);
/// The run-change lines of the original.
pub const RUN_LINE: RGBColor = RGBColor(255, 15, 91);
pub const GRID: RGBColor = RGBColor(203, 203, 203);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_clamping() {
        assert_eq!(color(Colormap::Viridis, 0.0), RGBColor(68, 1, 84));
        assert_eq!(color(Colormap::Viridis, 1.0), RGBColor(253, 231, 37));
        assert_eq!(color(Colormap::Viridis, 7.0), RGBColor(253, 231, 37));
        assert_eq!(color(Colormap::Coolwarm, 0.5), RGBColor(221, 221, 221));
    }
}
