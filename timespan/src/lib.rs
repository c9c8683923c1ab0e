//! The one duration syntax of km3mon, for every command-line flag and
//! config key that is a time span: `90s`, `5m`, `2h`, `1d`, `1w`, `500ms`,
//! sums such as `1h30m`, fractions such as `1.5s`; a bare number is
//! seconds (so every config file and command line written before this
//! syntax keeps its meaning).
//!
//! A leaf crate of its own because the CLI, the framework (`pipeline`), the
//! web server, the notifier and the simulator all take spans, and neither
//! the wire layer (`daq`) nor the framework is a home every one of them may
//! depend on. Not `humantime`: it refuses bare numbers and fractions, which
//! the existing flags and files use.

use std::time::Duration;

/// What every error message suggests.
pub const SYNTAX: &str = "use e.g. 90s, 500ms, 5m, 2h, 1d, 1w, 1h30m; a bare number is seconds";

/// Parses a span (see the crate documentation).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("bad duration {text:?}: {SYNTAX}");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|_| bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match rest[..unit_len].trim() {
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 7.0 * 86_400.0,
            _ => return Err(bad()),
        };
        let part = Duration::try_from_secs_f64(value * scale).map_err(|_| bad())?;
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(total)
}

/// `1m30s`-style text of a span (whole seconds; fractions as `1.5s`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let s = ms / 1000;
    match (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60) {
        (0, 0, 0, s) => format!("{s}s"),
        (d, h, m, s) => {
            let mut out = String::new();
            for (v, u) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
                if v > 0 {
                    out.push_str(&format!("{v}{u}"));
                }
            }
            out
        }
    }
}

/// A span as a value type, for maps and lists of spans in config files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span(pub Duration);

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        de::duration(d).map(Span)
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Span, String> {
        parse(s).map(Span)
    }
}

/// `#[serde(deserialize_with = …)]` helpers: a config value may be a
/// number of seconds (integer or float, as before) or a span string.
pub mod de {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Deserializer, Visitor};

    struct SpanVisitor;

    impl Visitor<'_> for SpanVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a number of seconds or a duration ({})", super::SYNTAX)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            Duration::try_from_secs_f64(v)
                .map_err(|_| E::custom(format!("bad duration {v}: {}", super::SYNTAX)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            super::parse(v).map_err(E::custom)
        }
    }

    /// A [`Duration`].
    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(SpanVisitor)
    }

    /// Whole seconds, for fields kept as `u64` (a fraction is refused).
    pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let v = duration(d)?;
        if v.subsec_nanos() != 0 {
            return Err(de::Error::custom(format!(
                "{} is not a whole number of seconds",
                super::format(v)
            )));
        }
        Ok(v.as_secs())
    }

    /// Seconds as `f64`.
    pub fn secs_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(duration(d)?.as_secs_f64())
    }

    /// Whole hours, for the keys the original wrote in hours
    /// (`history_hours`, `time_range`): a bare number stays hours, so the
    /// original's files keep their meaning; a span (`2d`, `36h`) must be
    /// whole hours.
    pub fn hours<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        struct Hours;
        impl Visitor<'_> for Hours {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a number of hours or a duration such as 2d or 36h")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                // "24" in quotes would read as seconds elsewhere: ambiguous here.
                if v.trim().parse::<f64>().is_ok() {
                    return Err(E::custom(format!(
                        "{v:?}: write a number of hours without quotes, or a span such as 2d"
                    )));
                }
                let span = super::parse(v).map_err(E::custom)?;
                if span.subsec_nanos() != 0 || span.as_secs() % 3600 != 0 {
                    return Err(E::custom(format!(
                        "{} is not a whole number of hours",
                        super::format(span)
                    )));
                }
                Ok(span.as_secs() / 3600)
            }
        }
        d.deserialize_any(Hours)
    }

    /// `Option<u64>` whole seconds (with `#[serde(default)]`).
    pub fn opt_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        secs(d).map(Some)
    }

    /// `Option<Duration>` (with `#[serde(default)]`).
    pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        duration(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_keep_bare_numbers_as_hours() {
        #[derive(serde::Deserialize)]
        struct K {
            #[serde(deserialize_with = "de::hours")]
            h: u64,
        }
        let h = |t: &str| {
            toml::from_str::<K>(t)
                .map(|k| k.h)
                .map_err(|e| e.to_string())
        };
        assert_eq!(h("h = 24"), Ok(24));
        assert_eq!(h("h = \"2d\""), Ok(48));
        assert_eq!(h("h = \"36h\""), Ok(36));
        assert!(h("h = \"90m\"")
            .unwrap_err()
            .contains("whole number of hours"));
        assert!(h("h = -1").is_err());
    }

    #[test]
    fn the_syntax() {
        let s = |t| parse(t).unwrap();
        assert_eq!(s("90"), Duration::from_secs(90));
        assert_eq!(s("0.5"), Duration::from_millis(500));
        assert_eq!(s("90s"), Duration::from_secs(90));
        assert_eq!(s("500ms"), Duration::from_millis(500));
        assert_eq!(s("5m"), Duration::from_secs(300));
        assert_eq!(s("2h"), Duration::from_secs(7200));
        assert_eq!(s("1d"), Duration::from_secs(86_400));
        assert_eq!(s("1w"), Duration::from_secs(604_800));
        assert_eq!(s("1h30m"), Duration::from_secs(5400));
        assert_eq!(s("1h 30m"), Duration::from_secs(5400));
        assert_eq!(s("1.5s"), Duration::from_millis(1500));
        assert_eq!(s(" 10min "), Duration::from_secs(600));
        for bad in ["", "m", "10x", "-1s", "-5", "1h-", "s10", "1e400", "NaN"] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.contains("bad duration") && e.contains("90s"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(0)), "0s");
        assert_eq!(format(Duration::from_secs(86_400 + 1)), "1d1s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        for d in [1, 59, 61, 3599, 3601, 86_399, 90_061] {
            let d = Duration::from_secs(d);
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(deserialize_with = "de::secs")]
        a: u64,
        #[serde(deserialize_with = "de::duration")]
        b: Duration,
        #[serde(default, deserialize_with = "de::opt_secs")]
        c: Option<u64>,
        #[serde(deserialize_with = "de::secs_f64")]
        d: f64,
    }

    #[test]
    fn config_keys() {
        let c: Cfg = toml::from_str("a = 300\nb = \"5m\"\nd = 2.5\n").unwrap();
        assert_eq!(
            (c.a, c.b, c.c, c.d),
            (300, Duration::from_secs(300), None, 2.5)
        );
        let c: Cfg = toml::from_str("a = \"1h\"\nb = 1.5\nc = \"1d\"\nd = \"500ms\"\n").unwrap();
        assert_eq!(c.a, 3600);
        assert_eq!(c.b, Duration::from_millis(1500));
        assert_eq!(c.c, Some(86_400));
        assert_eq!(c.d, 0.5);
        let e = toml::from_str::<Cfg>("a = \"5x\"\nb = 1\nd = 1\n").unwrap_err();
        assert!(e.to_string().contains("bad duration \"5x\""), "{e}");
        let e = toml::from_str::<Cfg>("a = \"1.5s\"\nb = 1\nd = 1\n").unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = toml::from_str::<Cfg>("a = -3\nb = 1\nd = 1\n").unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
    }
}
