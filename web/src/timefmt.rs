//! UTC time formatting and parsing without a calendar crate: the pages only
//! need civil dates in UTC, and the monitors' `NAME.json` carry either Unix
//! seconds or an ISO 8601 string.

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

/// Days since 1970-01-01 → (year, month 1-12, day 1-31); Howard Hinnant's
/// civil-from-days algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

struct Civil {
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    wd: usize,
}

fn civil(secs: f64) -> Civil {
    let t = secs.floor() as i64;
    let days = t.div_euclid(86_400);
    let sod = t.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    Civil {
        y,
        mo,
        d,
        h: (sod / 3600) as u32,
        mi: (sod / 60 % 60) as u32,
        s: (sod % 60) as u32,
        // 1970-01-01 was a Thursday.
        wd: (days + 4).rem_euclid(7) as usize,
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn iso(secs: f64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        c.y, c.mo, c.d, c.h, c.mi, c.s
    )
}

/// C-locale `%c` (`Thu Jan  1 00:00:00 1970`), as the original's top 10.
pub fn ctime(secs: f64) -> String {
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MO: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(secs);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        WD[c.wd],
        MO[(c.mo - 1) as usize],
        c.d,
        c.h,
        c.mi,
        c.s,
        c.y
    )
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

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|+00:00| UTC]`; other offsets are applied.
pub fn parse_iso(s: &str) -> Option<f64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        frac = format!("0.{digits}").parse().ok()?;
        rest = &r[digits.len()..];
    }
    let rest = rest.trim();
    let offset = match rest {
        "" | "Z" | "z" | "UTC" => 0i64,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = rest[1..].replace(':', "");
            if hm.len() != 4 {
                return None;
            }
            let oh: i64 = hm[0..2].parse().ok()?;
            let om: i64 = hm[2..4].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y as i64, mo, d);
    let t = days * 86_400 + (h * 3600 + mi * 60 + sec) as i64 - offset;
    Some(t as f64 + frac)
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
        let j = serde_json::json!(1_700_000_000_000u64);
        assert_eq!(parse_time(&j), Some(1_700_000_000.0));
        let j = serde_json::json!(1_700_000_000_000_000_000u64);
        assert_eq!(parse_time(&j), Some(1_700_000_000.0));
    }
}
