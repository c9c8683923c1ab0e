//! Parsing of DAQ log lines (integrations spec §7.2–7.9):
//! `<timestamp> <IPv4> <process> <LEVEL> <message text>`.
//!
//! Structured mode (§7.9 rule 2): the first whitespace-separated token that
//! is a dotted-quad IPv4 address splits the line; everything before it is
//! the timestamp text (must be non-empty), then the process token, the
//! level word and the rest. Lines without that shape (km3mon's own
//! `ALERT (MONITORING) …`, free text) are "unstructured": kept verbatim and
//! counted with level `ALERT` or `UNKNOWN`, never dropped.

/// The level given to a line that has no level field.
pub const UNKNOWN: &str = "UNKNOWN";
/// The level of km3mon's own alert lines.
pub const ALERT: &str = "ALERT";

/// One parsed line, borrowing from the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Timestamp text as sent (opaque: the format changed over the years).
    pub time_text: &'a str,
    /// The timestamp in UTC ns, if it could be read (ISO 8601, else asctime).
    pub time_ns: Option<u64>,
    pub host: &'a str,
    pub process: &'a str,
    /// Kept verbatim; `ERROR` and `WARNING` are the ones counted by shifters.
    pub level: &'a str,
    /// The rest, possibly empty, possibly several lines.
    pub message: &'a str,
}

/// A line: structured, or kept as-is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Structured(Parsed<'a>),
    /// No IPv4/process/level fields; `level` is [`ALERT`] or [`UNKNOWN`].
    Unstructured {
        level: &'static str,
        text: &'a str,
    },
}

impl<'a> Line<'a> {
    pub fn level(&self) -> &'a str {
        match self {
            Line::Structured(p) => p.level,
            Line::Unstructured { level, .. } => level,
        }
    }

    /// The process token, `-` for unstructured lines.
    pub fn process(&self) -> &'a str {
        match self {
            Line::Structured(p) => p.process,
            Line::Unstructured { .. } => "-",
        }
    }
}

/// Parses one MSG payload (already decoded as UTF-8).
pub fn parse(text: &str) -> Line<'_> {
    let unstructured = || Line::Unstructured {
        level: if text.trim_start().starts_with("ALERT") {
            ALERT
        } else {
            UNKNOWN
        },
        text,
    };
    // Only the first line carries fields; continuation lines (JDataFilter's
    // configuration dump) belong to the message.
    let first_end = text.find('\n').unwrap_or(text.len());
    let head = &text[..first_end];
    let mut tokens = Tokens { s: head, pos: 0 };
    let mut ip = None;
    for (start, end) in tokens.by_ref() {
        if is_ipv4(&head[start..end]) {
            ip = Some((start, end));
            break;
        }
    }
    let Some((ip_start, ip_end)) = ip else {
        return unstructured();
    };
    let time_text = head[..ip_start].trim();
    let (Some((ps, pe)), Some((ls, le))) = (tokens.next(), tokens.next()) else {
        return unstructured();
    };
    if time_text.is_empty() {
        return unstructured();
    }
    let message = text[le..].trim_start_matches([' ', '\t']);
    Line::Structured(Parsed {
        time_text,
        time_ns: parse_time(time_text),
        host: &head[ip_start..ip_end],
        process: &head[ps..pe],
        level: &head[ls..le],
        message,
    })
}

/// Whitespace-separated tokens as byte ranges.
struct Tokens<'a> {
    s: &'a str,
    pos: usize,
}

impl Iterator for Tokens<'_> {
    type Item = (usize, usize);
    fn next(&mut self) -> Option<(usize, usize)> {
        let b = self.s.as_bytes();
        while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        if self.pos >= b.len() {
            return None;
        }
        let start = self.pos;
        while self.pos < b.len() && !b[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        Some((start, self.pos))
    }
}

/// `\d+.\d+.\d+.\d+` with each part ≤ 255.
pub fn is_ipv4(s: &str) -> bool {
    let mut parts = 0;
    for p in s.split('.') {
        parts += 1;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        if p.parse::<u16>().map_or(true, |v| v > 255) {
            return false;
        }
    }
    parts == 4
}

/// The msg_dumper category of a line (spec §3.12), as `daq::msg` defines it.
pub fn category(text: &str) -> &'static str {
    daq::msg::source_of(text.as_bytes()).name()
}

/// The role of a process token `^[AFQW]\d+$` (§7.9 rule 3), else `None`.
pub fn process_role(process: &str) -> Option<&'static str> {
    let mut chars = process.chars();
    let role = match chars.next()? {
        'A' => "AcousticDataFilter",
        'F' => "DataFilter",
        'Q' => "DataQueue",
        'W' => "DataWriter",
        _ => return None,
    };
    let rest = chars.as_str();
    (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())).then_some(role)
}

/// Best effort (§7.3): ISO 8601 (`2021-10-18T12:34:56+0000`, `Z`, `+02:00`,
/// a space instead of `T`, fractions ignored, no zone = UTC), then the
/// asctime layout `Mon Oct 18 12:34:56 2021` (taken as UTC: it carries no
/// zone); see `timefmt::parse`. An impossible date (`2024-02-31`) is no time.
pub fn parse_time(text: &str) -> Option<u64> {
    let ns = timefmt::parse_ns(text).ok()?;
    Some(ns - ns % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn structured(text: &str) -> Parsed<'_> {
        match parse(text) {
            Line::Structured(p) => p,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn simulator_and_post_2021_lines() {
        let p = structured(
            "2024-01-01T00:00:12+0000 192.168.0.111 F01 WARNING Timeslice 5 incomplete: no data",
        );
        assert_eq!(p.time_text, "2024-01-01T00:00:12+0000");
        assert_eq!(p.time_ns, Some(1_704_067_212 * S));
        assert_eq!(
            (p.host, p.process, p.level),
            ("192.168.0.111", "F01", "WARNING")
        );
        assert_eq!(p.message, "Timeslice 5 incomplete: no data");
        let p = structured("2021-10-18T14:34:56+0200 192.168.0.125 W01 ERROR x");
        assert_eq!(
            p.time_ns,
            Some(1_634_560_496 * S),
            "offset converted to UTC"
        );
        let p = structured(
            "2021-10-18T12:34:56.250Z 10.0.0.1 A01 DEBUG actionInit() a\nkey = 1\nother = 2",
        );
        assert_eq!(p.time_ns, Some(1_634_560_496 * S));
        assert_eq!(p.message, "actionInit() a\nkey = 1\nother = 2");
    }

    #[test]
    fn asctime_lines_with_padded_days() {
        let p = structured(
            "Thu May  7 21:03:11 2020 192.168.0.121 F01 NOTICE Close circular buffer f.root",
        );
        assert_eq!(p.time_text, "Thu May  7 21:03:11 2020");
        assert_eq!(p.time_ns, Some(1_588_885_391 * S));
        assert_eq!(p.level, "NOTICE");
        let p = structured("Fri May 15 06:00:02 2020 192.168.0.112 Q01 WARNING");
        assert_eq!((p.level, p.message), ("WARNING", ""));
        let p = structured("Mon Oct 18 12:34:56 CEST 2021 1.2.3.4 W01 ERROR e");
        assert_eq!(p.time_ns, Some(1_634_560_496 * S));
    }

    #[test]
    fn edge_cases_are_kept_verbatim() {
        let alert = "ALERT (MONITORING) 2019-11-22T12:00:24Z: invalid time sync for DOM 1";
        assert_eq!(
            parse(alert),
            Line::Unstructured {
                level: ALERT,
                text: alert
            }
        );
        assert_eq!(parse("").level(), UNKNOWN);
        assert_eq!(parse("free text without fields").level(), UNKNOWN);
        // No timestamp before the address, or no level after it.
        assert_eq!(parse("192.168.0.1 F01 ERROR x").level(), UNKNOWN);
        assert_eq!(parse("t 192.168.0.1 F01").level(), UNKNOWN);
        // 999.1.1.1 is no address: the first real one splits the line.
        let p = structured("odd time 999.1.1.1 10.0.0.2 Q01 STATUS ok 10.0.0.3 W01 ERROR no");
        assert_eq!(
            (p.time_text, p.host, p.level),
            ("odd time 999.1.1.1", "10.0.0.2", "STATUS")
        );
        assert_eq!(p.time_ns, None, "unreadable timestamps stay text");
        // Process tokens with `/` (the analyser's `\w+/*\w+`), lowercase levels kept.
        let p = structured("2021-10-18 12:34:56 10.0.0.2 JDAQ/Ctrl warning w");
        assert_eq!((p.process, p.level), ("JDAQ/Ctrl", "warning"));
        assert_eq!(p.time_ns, Some(1_634_560_496 * S));
    }

    #[test]
    fn classification() {
        assert_eq!(
            category("2024-01-01T00:00:12+0000 192.168.0.111 F01 INFO x"),
            "DataFilter"
        );
        assert_eq!(category("t 1.1.1.1 A01 INFO"), "AcousticDataFilter");
        // A later marker in the check order wins (spec §3.12), wherever it is.
        assert_eq!(
            category("t 1.1.1.1 W01 ERROR from Q01 and F01"),
            "DataWriter"
        );
        assert_eq!(category("t 1.1.1.1 Q01 ERROR DOM A01"), "DataQueue");
        assert_eq!(category("ALERT (MONITORING) x"), "Other");
        assert_eq!(category("W01 no leading space"), "Other");
        assert_eq!(process_role("F01"), Some("DataFilter"));
        assert_eq!(process_role("Q1"), Some("DataQueue"));
        assert_eq!(process_role("W"), None);
        assert_eq!(process_role("JDataFilter"), None);
        assert!(
            is_ipv4("192.168.0.255")
                && !is_ipv4("1.2.3")
                && !is_ipv4("1.2.3.256")
                && !is_ipv4("a.b.c.d")
        );
    }

    #[test]
    fn impossible_dates_are_no_time() {
        assert_eq!(parse_time("2024-02-31T00:00:00+0000"), None);
        assert_eq!(parse_time("Sat Feb 31 00:00:00 2024"), None);
        assert!(parse_time("2024-02-29T00:00:00+0000").is_some());
    }
}
