//! Message texts: one line that says what happened where (by DU for DOM
//! conditions), then a few of the monitors' own messages.

use std::collections::BTreeMap;
use std::fmt::Write;

use pipeline::item::Alert;
use pipeline::runtime::progress::utc_string;

use super::Notice;
use crate::message::Severity;

/// Monitors' messages quoted below the summary line.
const QUOTED: usize = 5;
/// DUs listed one by one; beyond, DU ranges only.
const DUS_LISTED: usize = 8;
/// Keys of DU-less alerts named in the summary line.
const KEYS_LISTED: usize = 5;

/// The condition an alert key belongs to: the part before `:`
/// (`dom_inactive:806451572` → `dom_inactive`).
pub fn group_of(key: &str) -> &str {
    key.split_once(':').map_or(key, |(g, _)| g)
}

/// What a condition is, in words (firing, resolved): the wording the
/// monitor that raised it gave (each monitor declares its alert kinds);
/// an alert without one reads "`condition` firing".
fn wording(group: &str, alerts: &[&Alert]) -> (String, String) {
    match alerts.iter().find(|a| !a.wording.firing.is_empty()) {
        Some(a) => (a.wording.firing.clone(), a.wording.resolved.clone()),
        None => (format!("`{group}` firing"), format!("`{group}` resolved")),
    }
}

/// One alert, named by what it is about rather than by its key:
/// `DU 2 floor 3: DOM 806451572 inactive`, `DU 5: time residual median …`,
/// `DataFilter: too many errors in the log`, `No triggered events`.
fn one(a: &Alert, what: &str) -> String {
    let about = a.key.split_once(':').map(|(_, s)| s);
    let thing = match about {
        Some(id) if id.parse::<u64>().is_ok() && a.floor.is_some() => format!("DOM {id} "),
        _ => String::new(),
    };
    match (a.du, a.floor, about) {
        (Some(du), Some(floor), _) => format!("DU {du} floor {floor}: {thing}{what}"),
        (Some(du), None, _) => format!("DU {du}: {what}"),
        (None, _, Some(about)) => format!("{about}: {what}"),
        (None, _, None) => {
            let mut c = what.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
    }
}

/// `1–3, 7, 9–12` (sorted, deduplicated).
pub fn floor_ranges(floors: &[i32]) -> String {
    let mut f = floors.to_vec();
    f.sort_unstable();
    f.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < f.len() {
        let mut j = i;
        while j + 1 < f.len() && f[j + 1] == f[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            f[i].to_string()
        } else {
            format!("{}–{}", f[i], f[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `@cnorris @bspencer: ` (the original prefixed its alerts with the shifters).
pub fn mention(shifters: &[String]) -> String {
    if shifters.is_empty() {
        return String::new();
    }
    let names: Vec<String> = shifters
        .iter()
        .map(|s| format!("@{}", s.trim_start_matches('@')))
        .collect();
    format!("{}: ", names.join(" "))
}

/// The summary line of a group: `DU 5: 30 DOMs inactive (floors 1–18)`.
fn summary(notice: Notice, group: &str, alerts: &[&Alert]) -> String {
    let (firing, resolved) = wording(group, alerts);
    let what = if notice == Notice::Resolved {
        resolved
    } else {
        firing
    };
    if let [a] = alerts {
        return one(a, &what);
    }
    let mut by_du: BTreeMap<u32, Vec<i32>> = BTreeMap::new();
    let mut loose: Vec<&str> = Vec::new();
    for a in alerts {
        match a.du {
            Some(du) => by_du.entry(du).or_default().extend(a.floor),
            None => loose.push(&a.key),
        }
    }
    let doms = |n: usize| plural(n, "DOM", "DOMs");
    let mut parts = Vec::new();
    match by_du.len() {
        0 => {}
        1 => {
            let (du, floors) = by_du.iter().next().expect("one DU");
            parts.push(format!(
                "DU {du}: {} {what} (floors {})",
                doms(floors.len()),
                floor_ranges(floors)
            ));
        }
        n => {
            let total: usize = by_du.values().map(Vec::len).sum();
            let dus: Vec<i32> = by_du.keys().map(|&d| d as i32).collect();
            let list = if n <= DUS_LISTED {
                by_du
                    .iter()
                    .map(|(du, f)| {
                        format!("DU {du} ({}, floors {})", doms(f.len()), floor_ranges(f))
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            } else {
                format!("DUs {}", floor_ranges(&dus))
            };
            parts.push(format!("{n} DUs: {} {what}: {list}", doms(total)));
        }
    }
    if !loose.is_empty() {
        let mut names: Vec<&str> = loose.iter().take(KEYS_LISTED).copied().collect();
        let more = loose.len().saturating_sub(KEYS_LISTED);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        names.sort_unstable();
        parts.push(format!(
            "{}: {what} ({}{more})",
            plural(loose.len(), "alert", "alerts"),
            names.join(", ")
        ));
    }
    parts.join("; ")
}

/// What the detector-state table counts for the DUs of a message, at the
/// router's clock: `Now (data time …): DU 5: 30 DOMs inactive; all DUs:
/// 33 DOMs inactive` (the condition in its firing words, whatever the
/// notice: it is the state, not the change).
pub(crate) fn now_line(
    now_ns: u64,
    group: &str,
    alerts: &[&Alert],
    dus: &[u32],
    count: impl Fn(u32) -> u64,
    total: u64,
) -> String {
    let (what, _) = wording(group, alerts);
    let doms = |n: u64| {
        if n == 0 {
            format!("no DOM {what}")
        } else {
            format!("{} {what}", plural(n as usize, "DOM", "DOMs"))
        }
    };
    let mut parts: Vec<String> = dus
        .iter()
        .take(DUS_LISTED)
        .map(|&du| format!("DU {du}: {}", doms(count(du))))
        .collect();
    if dus.len() > DUS_LISTED {
        parts.push(format!("{} more DUs", dus.len() - DUS_LISTED));
    }
    parts.push(format!("all DUs: {}", doms(total)));
    format!(
        "Now (data time {}): {}",
        timefmt::iso_ns(now_ns),
        parts.join("; ")
    )
}

/// Subject (one line) and text of one grouped message; `now` is the
/// detector-state table's line ([`now_line`]), second in the text.
pub fn render(
    notice: Notice,
    severity: Severity,
    group: &str,
    alerts: &[&Alert],
    now: Option<String>,
) -> (String, String) {
    let label = match notice {
        Notice::Firing => "FIRING",
        Notice::Reminder => "REMINDER",
        Notice::Resolved => "RESOLVED",
    };
    let summary = summary(notice, group, alerts);
    let subject = format!(
        "[km3mon] {label} ({}): {}",
        severity.name(),
        summary.replace('–', "-")
    );
    let newest = alerts.iter().map(|a| a.time_utc_ns).max().unwrap_or(0);
    let mut text = format!("{label} ({}): {summary}", severity.name());
    if let Some(now) = now {
        let _ = write!(text, "\n{now}");
    }
    for a in alerts.iter().take(QUOTED) {
        let _ = write!(text, "\n- {}", a.message);
    }
    if alerts.len() > QUOTED {
        let _ = write!(text, "\n- … and {} more", alerts.len() - QUOTED);
    }
    let _ = write!(text, "\n(data time {})", utc_string(newest / 1_000_000_000));
    (subject, text)
}

/// The wording the monitors declare for their conditions (their `ALERTS`),
/// for the router's tests; a condition not listed has none.
#[cfg(test)]
pub(crate) fn wording_of(key: &str) -> pipeline::item::Wording {
    let (firing, resolved) = match group_of(key) {
        "dom_inactive" => ("inactive", "sending data again"),
        "time_sync" => ("without time sync", "in time sync again"),
        "trigger_rate_zero" => ("no triggered events", "triggered events again"),
        "msg_errors" => ("too many errors in the log", "log errors back to normal"),
        "time_residuals" => (
            "time residual median out of its band",
            "time residual median back in its band",
        ),
        _ => return Default::default(),
    };
    pipeline::item::Wording {
        firing: firing.into(),
        resolved: resolved.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floors_compress_to_ranges() {
        assert_eq!(
            floor_ranges(&[3, 1, 2, 7, 9, 10, 11, 12, 2]),
            "1–3, 7, 9–12"
        );
        assert_eq!(floor_ranges(&[5]), "5");
        assert_eq!(floor_ranges(&[]), "");
    }

    #[test]
    fn mentions_every_shifter_once_with_at() {
        assert_eq!(
            mention(&["cnorris".into(), "@bspencer".into()]),
            "@cnorris @bspencer: "
        );
        assert_eq!(mention(&[]), "");
    }

    #[test]
    fn single_alerts_read_as_a_person_writes_them() {
        let alert = |key: &str, du: Option<u32>, floor: Option<i32>| Alert {
            time_utc_ns: 0,
            monitor: "m".into(),
            key: key.into(),
            state: pipeline::item::AlertState::Firing,
            reminder: false,
            message: String::new(),
            du,
            floor,
            wording: wording_of(key),
        };
        let subject =
            |a: &Alert, notice| render(notice, Severity::Warning, group_of(&a.key), &[a], None).0;
        let cases = [
            (
                alert("trigger_rate_zero", None, None),
                Notice::Firing,
                "No triggered events",
            ),
            (
                alert("trigger_rate_zero", None, None),
                Notice::Resolved,
                "Triggered events again",
            ),
            (
                alert("msg_errors:DataFilter", None, None),
                Notice::Firing,
                "DataFilter: too many errors in the log",
            ),
            (
                alert("time_residuals:5", Some(5), None),
                Notice::Firing,
                "DU 5: time residual median out of its band",
            ),
            (
                alert("dom_inactive:806451572", Some(2), Some(3)),
                Notice::Resolved,
                "DU 2 floor 3: DOM 806451572 sending data again",
            ),
            (
                alert("new_check:x", None, None),
                Notice::Firing,
                "x: `new_check` firing",
            ),
        ];
        for (a, notice, want) in cases {
            let got = subject(&a, notice);
            assert!(
                got.ends_with(&format!("): {want}")),
                "{got:?} should end with {want:?}"
            );
            assert!(!got.contains(&a.key), "{got:?} repeats the key");
        }
    }

    #[test]
    fn groups_are_the_key_before_the_colon() {
        assert_eq!(group_of("dom_inactive:806451572"), "dom_inactive");
        assert_eq!(group_of("trigger_rate_zero"), "trigger_rate_zero");
    }
}
