//! Replies: structured for programs (serde), and a text rendering like
//! `supervisorctl status` for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::Silence;

/// One node, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub group: String,
    /// `source`, `operator` or `sink`.
    pub role: String,
    /// `RUNNING`, `STOPPED` or `FAILED`.
    pub state: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wall clock (Unix s) of the last state change (start of the run,
    /// stop, start, restart, failure).
    pub since_utc: f64,
    /// Seconds in the current state (the uptime while running).
    pub uptime_seconds: f64,
    pub restarts: u64,
    pub records_in: u64,
    pub records_out: u64,
    /// All drops; by reason below (`stopped` while stopped).
    pub drops: u64,
    pub drops_by_reason: BTreeMap<String, u64>,
    /// When the node last emitted (Unix s).
    pub last_output_utc: Option<f64>,
    /// Wall clock minus the node's output frontier (DAQ time), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Time spent in the node's logic, seconds.
    #[serde(default)]
    pub busy_seconds: f64,
}

/// The answer to one command.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    /// The human rendering (what `km3mon ctl` prints, what the chat posts).
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Status rows (for `status`, and the nodes a stop/start touched).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,
    /// Nodes whose state this command changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silences: Vec<Silence>,
    /// `logs`: the sequence number of the last line shown (ask for what
    /// came after it to follow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_seq: Option<u64>,
    /// `health`: the detector's table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthSnapshot>,
    /// `latency`: one row per distribution.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latencies: Vec<latency::Row>,
}

impl Reply {
    pub fn text(text: String) -> Reply {
        Reply {
            ok: true,
            text,
            ..Default::default()
        }
    }

    pub fn error(message: String) -> Reply {
        Reply {
            ok: false,
            text: format!("error: {message}"),
            error: Some(message),
            ..Default::default()
        }
    }

    pub fn status(nodes: Vec<NodeStatus>) -> Reply {
        let now = super::now_utc();
        Reply {
            ok: true,
            text: status_text(&nodes, now),
            nodes,
            ..Default::default()
        }
    }

    pub fn latency(rows: Vec<latency::Row>) -> Reply {
        Reply {
            ok: true,
            text: latency_text(&rows),
            latencies: rows,
            ..Default::default()
        }
    }

    pub fn silences(list: Vec<Silence>) -> Reply {
        let now = super::now_utc();
        let text = if list.is_empty() {
            "no active silences".to_string()
        } else {
            list.iter()
                .map(|s| {
                    format!(
                        "{}  until {} ({} left)  by {}{}",
                        s.pattern,
                        iso_utc(s.until_utc),
                        format_hms(s.until_utc - now),
                        s.user,
                        if s.reason.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", s.reason)
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        Reply {
            ok: true,
            text,
            silences: list,
            ..Default::default()
        }
    }
}

/// One aligned line per distribution: family, labels, count, p50, p99, max.
pub fn latency_text(rows: &[latency::Row]) -> String {
    if rows.is_empty() {
        return "no latency measured yet".into();
    }
    let h = latency::human;
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let s = &r.summary;
            let name = r.name.strip_prefix("km3mon_").unwrap_or(&r.name);
            [
                name.to_string(),
                r.labels.clone(),
                s.count.to_string(),
                h(s.p50),
                h(s.p99),
                h(s.max),
            ]
        })
        .collect();
    let head = ["DISTRIBUTION", "LABELS", "N", "P50", "P99", "MAX"].map(String::from);
    let mut w = [0; 6];
    for row in std::iter::once(&head).chain(&cells) {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    std::iter::once(&head)
        .chain(&cells)
        .map(|r| {
            format!(
                "{:<a$}  {:<b$}  {:>c$}  {:>d$}  {:>e$}  {:>f$}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                a = w[0],
                b = w[1],
                c = w[2],
                d = w[3],
                e = w[4],
                f = w[5]
            )
            .trim_end()
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `H:MM:SS`, or `N day(s), H:MM:SS` as supervisorctl prints uptimes.
pub fn format_hms(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let hms = format!("{}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60);
    match s / 86_400 {
        0 => format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
        1 => format!("1 day, {hms}"),
        d => format!("{d} days, {hms}"),
    }
}

fn ago(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 120.0 {
        format!("{s:.0}s ago")
    } else if s < 7200.0 {
        format!("{:.0}m ago", s / 60.0)
    } else {
        format!("{} ago", format_hms(s))
    }
}

/// One line per node, columns aligned:
/// `group:node  RUNNING  uptime 0:12:03  in 1234  out 56  drops 0  last output 2s ago`.
pub fn status_text(nodes: &[NodeStatus], now: f64) -> String {
    if nodes.is_empty() {
        return "no nodes (yet: a graph that is starting has not built them)".into();
    }
    let rows: Vec<[String; 7]> = nodes
        .iter()
        .map(|n| {
            let clock = if n.state == "RUNNING" {
                format!("uptime {}", format_hms(n.uptime_seconds))
            } else {
                format!("for {}", format_hms(n.uptime_seconds))
            };
            let mut tail = match n.last_output_utc {
                Some(t) => format!("last output {}", ago(now - t)),
                None if n.role == "sink" => "sink".into(),
                None => "no output yet".into(),
            };
            if n.restarts > 0 {
                let _ = write!(tail, "  restarts {}", n.restarts);
            }
            if let Some(r) = &n.reason {
                let _ = write!(tail, "  ({r})");
            }
            [
                format!("{}:{}", n.group, n.name),
                n.state.clone(),
                clock,
                format!("in {}", n.records_in),
                format!("out {}", n.records_out),
                format!("drops {}", n.drops),
                tail,
            ]
        })
        .collect();
    let mut width = [0usize; 6];
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i < 6 {
                let _ = write!(line, "{c:<w$}  ", w = width[i]);
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.pop();
    out
}

/// ISO 8601 with `Z`, to the second, of Unix seconds.
pub(crate) fn iso_utc(secs: f64) -> String {
    let s = crate::runtime::progress::utc_string(secs.max(0.0) as u64);
    // `YYYY-MM-DD HH:MM:SS UTC` → `YYYY-MM-DDTHH:MM:SSZ`
    format!("{}T{}Z", &s[..10], &s[11..19])
}
