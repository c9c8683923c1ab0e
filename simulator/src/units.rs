//! Durations (`10m`, `1h30m`, `500ms`: the `timespan` crate) and UTC instants
//! (`2024-01-01T00:00:00Z`) for the command line, and the timestamp texts
//! of the DAQ log lines (the calendar is `timefmt`'s, always UTC).

use std::time::Duration;

/// Nanoseconds per second.
pub const NS: u64 = 1_000_000_000;

/// Parse a span in km3mon's one duration syntax (`90`, `90s`, `500ms`,
/// `10m`, `2h`, `1h30m`, `1.5s`, `1d`, `1w`; a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    timespan::parse(text)
}

/// Parse `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]]` with an optional `Z`
/// or offset (a space may replace the `T`; no zone = UTC) — `timefmt::parse`.
/// Returns ns since the epoch; impossible dates and years outside the DAQ's
/// time range are errors.
pub fn parse_utc(text: &str) -> Result<u64, String> {
    let ns = timefmt::parse_ns(text).map_err(|e| e.to_string())?;
    if ns / NS > 4_294_967_295 {
        return Err(format!(
            "bad UTC time {text:?}: after 2106, beyond the DAQ's 32-bit seconds"
        ));
    }
    Ok(ns)
}

/// `2021-10-18T12:34:56+0000`: Jpp's `%FT%T%z` date, the layout the DAQ
/// log lines carry since 2021 (integrations spec §7.3), always in UTC.
pub fn format_log_time(ns: u64) -> String {
    timefmt::daq_log(ns)
}

/// `2024-01-01T00:00:00.000Z`, for messages to the operator.
pub fn format_utc(ns: u64) -> String {
    timefmt::iso_ms((ns / 1_000_000) as i64)
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
        assert!(parse_utc("2024-02-31T00:00:00Z").is_err());
        assert!(parse_utc("2107-01-01").is_err());
        assert!(parse_utc("yesterday").is_err());
    }
}
