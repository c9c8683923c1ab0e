//! Times on the pages: the wall clock, file times, and the data times of
//! the monitors' `NAME.json` (Unix seconds or an ISO 8601 string). The
//! calendar is the workspace's `timefmt` (jiff), always UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall clock as Unix seconds (fractional).
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Unix seconds of a file's modification time.
pub fn mtime_secs(meta: &std::fs::Metadata) -> f64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn iso(secs: f64) -> String {
    ::timefmt::human(secs.floor() as i64)
}

/// C-locale `%c` (`Thu Jan  1 00:00:00 1970`), as the original's top 10.
pub fn ctime(secs: f64) -> String {
    ::timefmt::ctime(secs.floor() as i64)
}

/// A data time from `NAME.json`: Unix seconds (or ms/ns, recognised by
/// magnitude), or an ISO 8601 / RFC 3339 string in UTC.
pub fn parse_time(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => {
            let x = n.as_f64()?;
            // Seconds until the year 5138, then milliseconds, then nanoseconds.
            Some(if x > 1e17 {
                x / 1e9
            } else if x > 1e11 {
                x / 1e3
            } else {
                x
            })
        }
        serde_json::Value::String(s) => parse_iso(s),
        _ => None,
    }
}

/// ISO 8601 / RFC 3339 (no zone = UTC; offsets applied), via
/// `timefmt::parse`; an impossible date is `None`.
pub fn parse_iso(s: &str) -> Option<f64> {
    let t = ::timefmt::parse(s).ok()?;
    Some(t.as_second() as f64 + f64::from(t.subsec_nanosecond()) * 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(iso(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(ctime(0.0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(iso(1_700_000_000.0), "2023-11-14 22:13:20 UTC");
        assert_eq!(ctime(1_700_000_000.0), "Tue Nov 14 22:13:20 2023");
    }

    #[test]
    fn parses() {
        assert_eq!(parse_iso("2023-11-14T22:13:20Z"), Some(1_700_000_000.0));
        assert_eq!(parse_iso("2023-11-14 22:13:20"), Some(1_700_000_000.0));
        assert_eq!(
            parse_iso("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000.0)
        );
        assert_eq!(parse_iso("2023-11-14T22:13:20.5Z"), Some(1_700_000_000.5));
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(parse_iso("2024-02-31T00:00:00Z"), None);
        let j = serde_json::json!(1_700_000_000_000u64);
        assert_eq!(parse_time(&j), Some(1_700_000_000.0));
        let j = serde_json::json!(1_700_000_000_000_000_000u64);
        assert_eq!(parse_time(&j), Some(1_700_000_000.0));
    }
}
