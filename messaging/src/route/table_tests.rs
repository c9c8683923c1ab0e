//! The router with the detector-state table: DOMs placed by the table's
//! detector, and the `Now` line counting what the table counts at the
//! message's data time (firing, partly resolved, all resolved, re-keyed).

use std::collections::BTreeMap;
use std::sync::Arc;

use pipeline::health::{DomHealth, HealthSnapshot};
use pipeline::item::{Alert, AlertState};

use super::*;

const S: u64 = NS;
/// 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200 * S;

/// The table as `detector_state` materialises it: `layout` (du, floor,
/// dom) and the active (dom, condition) pairs.
fn table(layout: &[(u32, i32, u32)], active: &[(u32, &str)], at_s: u64) -> Arc<HealthSnapshot> {
    let place: BTreeMap<u32, (u32, i32)> = layout.iter().map(|&(u, f, d)| (d, (u, f))).collect();
    let mut s = HealthSnapshot {
        time_utc: Some((T0 / S + at_s) as f64),
        layout: layout.to_vec(),
        conditions: vec!["dom_inactive".into(), "time_sync".into()],
        ..Default::default()
    };
    let mut doms: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for &(dom, c) in active {
        let (du, _) = place[&dom];
        *s.by_du.entry(du).or_default().entry(c.into()).or_default() += 1;
        *s.totals.entry(c.into()).or_default() += 1;
        doms.entry(dom).or_default().push(c.into());
    }
    s.doms = doms
        .into_iter()
        .map(|(dom_id, conditions)| DomHealth {
            dom_id,
            du: place[&dom_id].0,
            floor: place[&dom_id].1,
            conditions,
        })
        .collect();
    Arc::new(s)
}

/// A DOM alert as a monitor labels it (`du`: the monitor's layout).
fn dom(cond: &str, dom_id: u32, du: u32, floor: i32, state: AlertState, at_s: u64) -> Alert {
    Alert {
        time_utc_ns: T0 + at_s * S,
        monitor: "m".into(),
        key: format!("{cond}:{dom_id}"),
        state,
        reminder: false,
        message: format!("DOM {dom_id} {}", state.name()),
        du: Some(du),
        floor: Some(floor),
        wording: super::text::wording_of(cond),
    }
}

fn router() -> Router {
    let cfg: AlertsConfig = toml::from_str(
        "enabled = true\ngroup_window = 10\n[chat]\nmode = \"webhook\"\nwebhook_url_env = \"HOOK\"\n\
         [[route]]\nname = \"shift\"\nsinks = [\"chat\"]\n",
    )
    .unwrap();
    Router::new(&cfg)
}

/// DU 1: floors 1–30 (DOMs 101–130); DU 2: floors 1–18 (DOMs 201–218).
fn layout() -> Vec<(u32, i32, u32)> {
    let mut l: Vec<(u32, i32, u32)> = (1..=30).map(|f| (1, f, 100 + f as u32)).collect();
    l.extend((1..=18).map(|f| (2, f, 200 + f as u32)));
    l
}

/// The texts of the messages sent at `now_s` (the window's end).
fn texts(r: &mut Router, now_s: u64) -> Vec<String> {
    let mut out = Output::default();
    r.tick(T0 + now_s * S, &mut out);
    out.messages.into_iter().map(|m| m.msg.text).collect()
}

#[test]
fn the_now_line_counts_what_the_table_counts_at_the_window_end() {
    use AlertState::{Firing, Resolved};
    let l = layout();
    let mut r = router();
    let mut out = Output::default();
    // 1 s: DU 1 silent (30 DOMs). The table of 1 s counts them.
    let inactive: Vec<(u32, &str)> = (101..=130).map(|d| (d, "dom_inactive")).collect();
    r.set_table(table(&l, &inactive, 1));
    for f in 1..=30 {
        r.push(
            &dom("dom_inactive", 100 + f as u32, 1, f, Firing, 1),
            T0 + S,
            &mut out,
        );
    }
    // 5 s: 3 DOMs of DU 2 silent too, in the same window.
    let mut more = inactive.clone();
    more.extend((201..=203).map(|d| (d, "dom_inactive")));
    r.set_table(table(&l, &more, 5));
    for f in 1..=3 {
        r.push(
            &dom("dom_inactive", 200 + f as u32, 2, f, Firing, 5),
            T0 + 5 * S,
            &mut out,
        );
    }
    let t = texts(&mut r, 11);
    assert_eq!(t.len(), 1, "{t:?}");
    let lines: Vec<&str> = t[0].lines().collect();
    assert!(
        lines[0].ends_with(
            "2 DUs: 33 DOMs inactive: DU 1 (30 DOMs, floors 1–30); DU 2 (3 DOMs, floors 1–3)"
        ),
        "{}",
        t[0]
    );
    assert_eq!(
        lines[1],
        "Now (data time 2024-01-01T00:00:11Z): DU 1: 30 DOMs inactive; DU 2: 3 DOMs inactive; \
         all DUs: 33 DOMs inactive"
    );

    // 20 s: half of DU 1 back; 40 s: the rest and DU 2's three.
    let half: Vec<(u32, &str)> = more.iter().copied().filter(|(d, _)| *d > 115).collect();
    r.set_table(table(&l, &half, 20));
    for f in 1..=15 {
        r.push(
            &dom("dom_inactive", 100 + f as u32, 1, f, Resolved, 20),
            T0 + 20 * S,
            &mut out,
        );
    }
    let t = texts(&mut r, 30);
    assert!(
        t[0].starts_with("RESOLVED (warning): DU 1: 15 DOMs sending data again (floors 1–15)\n"),
        "{}",
        t[0]
    );
    // The message names DU 1 only; DU 2's three still count detector-wide.
    assert!(
        t[0].contains(
            "\nNow (data time 2024-01-01T00:00:30Z): DU 1: 15 DOMs inactive; all DUs: 18 DOMs inactive\n"
        ),
        "{}",
        t[0]
    );

    r.set_table(table(&l, &[], 40));
    for d in (116..=130).chain(201..=203) {
        let (du, f) = if d < 200 {
            (1, d as i32 - 100)
        } else {
            (2, d as i32 - 200)
        };
        r.push(
            &dom("dom_inactive", d, du, f, Resolved, 40),
            T0 + 40 * S,
            &mut out,
        );
    }
    let t = texts(&mut r, 50);
    assert!(
        t[0].contains(
            "\nNow (data time 2024-01-01T00:00:50Z): DU 1: no DOM inactive; DU 2: no DOM inactive; \
             all DUs: no DOM inactive\n"
        ),
        "{}",
        t[0]
    );
    assert!(out.messages.is_empty());
}

/// After a run whose detector numbers DU 2 as DU 12, the texts name DU 12
/// (the table's place), not the monitor's stale label; a condition the
/// table does not count, or a DOM it does not know, has no `Now` line.
#[test]
fn placement_follows_the_table_and_unknown_conditions_get_no_now_line() {
    use AlertState::Firing;
    let moved: Vec<(u32, i32, u32)> = layout()
        .into_iter()
        .map(|(du, f, d)| (if du == 2 { 12 } else { du }, f, d))
        .collect();
    let mut r = router();
    let mut out = Output::default();
    let sync: Vec<(u32, &str)> = (201..=218).map(|d| (d, "time_sync")).collect();
    r.set_table(table(&moved, &sync, 1));
    for f in 1..=18 {
        r.push(
            &dom("time_sync", 200 + f as u32, 2, f, Firing, 1),
            T0 + S,
            &mut out,
        );
    }
    r.push(&dom("hrv", 205, 2, 5, Firing, 1), T0 + S, &mut out);
    r.push(&dom("dom_inactive", 999, 7, 1, Firing, 1), T0 + S, &mut out);
    let t = texts(&mut r, 11);
    assert_eq!(t.len(), 3, "{t:?}");
    let sync_text = t.iter().find(|t| t.contains("time sync")).unwrap();
    assert!(sync_text.starts_with("FIRING (warning): DU 12: 18 DOMs without time sync (floors 1–18)\nNow (data time 2024-01-01T00:00:11Z): DU 12: 18 DOMs without time sync; all DUs: 18 DOMs without time sync\n"), "{sync_text}");
    for other in t.iter().filter(|t| !t.contains("time sync")) {
        assert!(!other.contains("\nNow "), "{other}");
    }
    let hrv = t.iter().find(|t| t.contains("`hrv`")).unwrap();
    assert!(hrv.contains("DU 12 floor 5"), "{hrv}");
    let unknown = t.iter().find(|t| t.contains("999")).unwrap();
    assert!(unknown.contains("DU 7 floor 1"), "{unknown}");
}
