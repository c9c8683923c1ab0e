//! UTC time as text, the one way for the whole workspace.
//!
//! Every time km3mon reads (MSG log lines, `NAME.json` of the plots,
//! `--start` of the simulator, chat timestamps) goes through [`parse`], and
//! every time it writes goes through the formatters below. The calendar is
//! jiff's, so an impossible date such as `2024-02-31` is an error everywhere
//! instead of silently becoming 2 March.
//!
//! Accepted by [`parse`]:
//! * ISO 8601 / RFC 3339: `2021-10-18T12:34:56Z`, `…+02:00`, `…+0200`,
//!   `…+02`, a space instead of `T`, fractional seconds (`.` or `,`),
//!   seconds optional;
//! * the same without a zone, or with ` UTC`: taken as UTC;
//! * a bare date `2021-10-18`: midnight UTC;
//! * the DAQ log's `%FT%T%z` (`2021-10-18T12:34:56+0000`) — a case of the
//!   first;
//! * asctime `Mon Oct 18 12:34:56 2021` (day padded or not, an optional zone
//!   name before the year, taken as UTC: it carries no offset). The weekday
//!   is not checked: the date is what orders the data.

use std::fmt;

pub use jiff::Timestamp;

/// Why a time could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    text: String,
    reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad UTC time {:?}: {} (use e.g. 2024-01-01T00:00:00Z)",
            self.text, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

/// Reads a time in any of the forms listed in the module docs.
pub fn parse(text: &str) -> Result<Timestamp, ParseError> {
    let t = text.trim();
    let err = |reason: String| ParseError {
        text: text.to_string(),
        reason,
    };
    if t.starts_with(|c: char| c.is_ascii_digit()) {
        let body = t.strip_suffix("UTC").map(str::trim_end).unwrap_or(t);
        if body.len() != t.len() {
            // `… UTC` names the zone in words: the rest has no offset.
            return civil_utc(body).map_err(err);
        }
        if has_offset(body) {
            return body.parse::<Timestamp>().map_err(|e| err(e.to_string()));
        }
        return civil_utc(body).map_err(err);
    }
    asctime(t).map_err(err)
}

/// Nanoseconds since the epoch of [`parse`]; times before 1970 are errors.
pub fn parse_ns(text: &str) -> Result<u64, ParseError> {
    let ts = parse(text)?;
    u64::try_from(ts.as_nanosecond()).map_err(|_| ParseError {
        text: text.to_string(),
        reason: "before 1970".into(),
    })
}

/// Days since 1970-01-01 of a date `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Result<i64, ParseError> {
    let d = text
        .trim()
        .parse::<jiff::civil::Date>()
        .map_err(|e| ParseError {
            text: text.to_string(),
            reason: e.to_string(),
        })?;
    let ts = utc(d.to_datetime(jiff::civil::Time::midnight())).map_err(|reason| ParseError {
        text: text.to_string(),
        reason,
    })?;
    Ok(ts.as_second().div_euclid(86_400))
}

/// Whether an ISO text carries a zone: `Z`, or a sign after the time of day.
fn has_offset(t: &str) -> bool {
    if t.ends_with(['Z', 'z']) {
        return true;
    }
    // The date's own `-` are before the `T`/space; an offset sign follows it.
    t.get(10..).is_some_and(|time| time.contains(['+', '-']))
}

fn civil_utc(t: &str) -> Result<Timestamp, String> {
    let dt = t
        .parse::<jiff::civil::DateTime>()
        .map_err(|e| e.to_string())?;
    utc(dt)
}

fn utc(dt: jiff::civil::DateTime) -> Result<Timestamp, String> {
    jiff::tz::Offset::UTC
        .to_timestamp(dt)
        .map_err(|e| e.to_string())
}

fn asctime(t: &str) -> Result<Timestamp, String> {
    let f: Vec<&str> = t.split_whitespace().collect();
    // `Www Mmm d hh:mm:ss yyyy`, or with a zone name before the year.
    if f.len() != 5 && f.len() != 6 {
        return Err("not ISO 8601 nor asctime (`Mon Oct 18 12:34:56 2021`)".into());
    }
    let text = format!("{} {} {} {}", f[1], f[2], f[3], f[f.len() - 1]);
    let dt = jiff::fmt::strtime::parse("%b %e %H:%M:%S %Y", &text)
        .and_then(|b| b.to_datetime())
        .map_err(|e| e.to_string())?;
    utc(dt)
}

/// The timestamp of Unix seconds, clamped to jiff's range (years ±9999).
pub fn from_secs(secs: i64) -> Timestamp {
    let s = secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The timestamp of nanoseconds since the epoch.
pub fn from_ns(ns: u64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(Timestamp::MAX)
}

fn fmt_secs(secs: i64, layout: &str) -> String {
    from_secs(secs).strftime(layout).to_string()
}

/// `2019-11-22T12:00:24Z`.
pub fn iso(secs: i64) -> String {
    fmt_secs(secs, "%Y-%m-%dT%H:%M:%SZ")
}

/// [`iso`] of nanoseconds; millisecond precision when it is not whole.
pub fn iso_ns(ns: u64) -> String {
    let ms = (ns % 1_000_000_000) / 1_000_000;
    let secs = (ns / 1_000_000_000) as i64;
    if ms == 0 {
        iso(secs)
    } else {
        format!("{}.{ms:03}Z", fmt_secs(secs, "%Y-%m-%dT%H:%M:%S"))
    }
}

/// `2023-11-14T22:13:20.123Z`: always milliseconds (chat APIs).
pub fn iso_ms(ms: i64) -> String {
    format!(
        "{}.{:03}Z",
        fmt_secs(ms.div_euclid(1000), "%Y-%m-%dT%H:%M:%S"),
        ms.rem_euclid(1000)
    )
}

/// `2019-11-22 12:00:24 UTC`, for titles and summaries.
pub fn human(secs: i64) -> String {
    fmt_secs(secs, "%Y-%m-%d %H:%M:%S UTC")
}

/// `HH:MM`, for time axes.
pub fn hhmm(secs: i64) -> String {
    fmt_secs(secs, "%H:%M")
}

/// `MM-DD HH:MM`, for time axes spanning days.
pub fn mdhm(secs: i64) -> String {
    fmt_secs(secs, "%m-%d %H:%M")
}

/// C-locale `%c` (`Thu Jan  1 00:00:00 1970`), as the original's top 10.
pub fn ctime(secs: i64) -> String {
    fmt_secs(secs, "%a %b %e %H:%M:%S %Y")
}

/// `2021-10-18T12:34:56+0000`: Jpp's `%FT%T%z`, the DAQ log's layout.
pub fn daq_log(ns: u64) -> String {
    fmt_secs((ns / 1_000_000_000) as i64, "%Y-%m-%dT%H:%M:%S+0000")
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn date(day: i64) -> String {
    fmt_secs(day.saturating_mul(86_400), "%Y-%m-%d")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z, a Tuesday

    #[test]
    fn formats() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(T), "2023-11-14T22:13:20Z");
        assert_eq!(
            iso_ns(T as u64 * 1_000_000_000 + 250_000_000),
            "2023-11-14T22:13:20.250Z"
        );
        assert_eq!(
            iso_ns(T as u64 * 1_000_000_000 + 999),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(iso_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(human(1_574_432_873), "2019-11-22 14:27:53 UTC");
        assert_eq!(hhmm(T), "22:13");
        assert_eq!(mdhm(T), "11-14 22:13");
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(ctime(T), "Tue Nov 14 22:13:20 2023");
        assert_eq!(
            daq_log(T as u64 * 1_000_000_000),
            "2023-11-14T22:13:20+0000"
        );
        assert_eq!(date(19_723), "2024-01-01");
        assert_eq!(date(-1), "1969-12-31");
    }

    fn secs(s: &str) -> i64 {
        parse(s).unwrap_or_else(|e| panic!("{e}")).as_second()
    }

    #[test]
    fn parses_every_form() {
        for s in [
            "2023-11-14T22:13:20Z",
            "2023-11-14T22:13:20z",
            "2023-11-14 22:13:20",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20 UTC",
            "2023-11-14T22:13:20UTC",
            "2023-11-14T23:13:20+01:00",
            "2023-11-14T23:13:20+0100",
            "2023-11-14T23:13:20+01",
            "2023-11-14T21:13:20-01:00",
            "2023-11-14T22:13:20+0000",
            "Tue Nov 14 22:13:20 2023",
            "Tue Nov 14 22:13:20 UTC 2023",
            "  Tue  Nov 14 22:13:20 2023 ",
        ] {
            assert_eq!(secs(s), T, "{s}");
        }
        assert_eq!(
            secs("Mon Oct  8 12:34:56 2021"),
            secs("2021-10-08T12:34:56Z")
        );
        assert_eq!(
            secs("Sun Oct 8 12:34:56 2021"),
            secs("2021-10-08T12:34:56Z")
        );
        assert_eq!(secs("2023-11-14"), T - 80_000);
        assert_eq!(secs("2023-11-14T22:13Z"), T - 20);
        let frac = parse("2023-11-14T22:13:20.5Z").unwrap();
        assert_eq!(frac.as_millisecond(), T * 1000 + 500);
        assert_eq!(
            parse("2023-11-14T22:13:20,25").unwrap().as_millisecond(),
            T * 1000 + 250
        );
        assert_eq!(parse_ns("1970-01-01T00:00:01Z"), Ok(1_000_000_000));
    }

    #[test]
    fn impossible_dates_are_errors() {
        for s in [
            "2024-02-31T00:00:00Z",
            "2024-02-31",
            "2023-02-29T00:00:00",
            "2024-04-31 00:00:00 UTC",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:01Z",
            "2024-01-01T12:60:00+0000",
            "Sat Feb 31 00:00:00 2024",
            "yesterday",
            "",
        ] {
            assert!(parse(s).is_err(), "{s} accepted");
        }
        let e = parse("2024-02-31T00:00:00Z").unwrap_err().to_string();
        assert!(e.contains("2024-02-31") && e.contains("day"), "{e}");
        assert!(parse_date("2024-02-31").is_err());
        assert!(parse_ns("1969-12-31T23:59:59Z").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2000-03-01"), Ok(11_017));
        assert_eq!(parse_date("2024-01-01"), Ok(19_723));
        assert_eq!(parse_date("1969-12-31"), Ok(-1));
    }

    #[test]
    fn round_trips() {
        for s in [0, 1, 86_399, 951_782_400, T, 4_102_444_800] {
            assert_eq!(secs(&iso(s)), s);
            assert_eq!(secs(&human(s)), s);
            assert_eq!(secs(&ctime(s)), s);
        }
    }
}
