//! Durations (`10m`, `1h30m`, `500ms`: the `timespan` crate) and UTC instants
//! (`2024-01-01T00:00:00Z`) for the command line, and the timestamp texts
//! of the DAQ log lines. Written out here because the calendar arithmetic
//! is a few lines and the simulator must not depend on the local time zone.

use std::time::Duration;

/// Nanoseconds per second.
pub const NS: u64 = 1_000_000_000;

/// Parse a span in km3mon's one duration syntax (`90`, `90s`, `500ms`,
/// `10m`, `2h`, `1h30m`, `1.5s`, `1d`, `1w`; a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    timespan::parse(text)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01 (Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Parse `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]]` with an optional `Z`
/// (a space may replace the `T`): always UTC. Returns ns since the epoch.
pub fn parse_utc(text: &str) -> Result<u64, String> {
    let bad = || format!("bad UTC time {text:?}: use e.g. 2024-01-01T00:00:00Z");
    let t = text.trim().trim_end_matches(['Z', 'z']);
    let (date, time) = match t.split_once(['T', 't', ' ']) {
        Some((d, tm)) => (d, tm),
        None => (t, "00:00:00"),
    };
    let mut date_parts = date.split('-');
    let num = |it: &mut std::str::Split<'_, char>| -> Result<i64, String> {
        it.next().ok_or_else(bad)?.parse::<i64>().map_err(|_| bad())
    };
    let (y, mo, d) = (
        num(&mut date_parts)?,
        num(&mut date_parts)?,
        num(&mut date_parts)?,
    );
    let mut time_parts = time.split(':');
    let h = num(&mut time_parts)?;
    let mi = num(&mut time_parts)?;
    let seconds: f64 = match time_parts.next() {
        Some(s) => s.parse().map_err(|_| bad())?,
        None => 0.0,
    };
    let valid = (1970..=2105).contains(&y)
        && (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && (0..24).contains(&h)
        && (0..60).contains(&mi)
        && (0.0..61.0).contains(&seconds);
    if !valid || date_parts.next().is_some() || time_parts.next().is_some() {
        return Err(bad());
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    let whole = (days * 86_400 + h * 3600 + mi * 60) as u64;
    Ok(whole * NS + (seconds * 1e9).round() as u64)
}

/// `2021-10-18T12:34:56+0000`: Jpp's `%FT%T%z` date, the layout the DAQ
/// log lines carry since 2021 (integrations spec §7.3), always in UTC.
pub fn format_log_time(ns: u64) -> String {
    let secs = ns / NS;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+0000",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `2024-01-01T00:00:00.000Z`, for messages to the operator.
pub fn format_utc(ns: u64) -> String {
    let secs = ns / NS;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ns % NS / 1_000_000
    )
}

/// `1m30s`-style text of a duration, for logs.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let s = ms / 1000;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "m", "10x", "-1s", "1h-"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn utc_round_trip() {
        let ns = parse_utc("2021-10-18T12:34:56Z").unwrap();
        assert_eq!(ns / NS, 1_634_560_496);
        assert_eq!(format_log_time(ns), "2021-10-18T12:34:56+0000");
        assert_eq!(parse_utc("2024-01-01").unwrap() / NS, 1_704_067_200);
        assert_eq!(
            format_utc(parse_utc("2000-02-29 23:59:59.25").unwrap()),
            "2000-02-29T23:59:59.250Z"
        );
        assert!(parse_utc("2021-13-01").is_err());
        assert!(parse_utc("yesterday").is_err());
    }
}
