//! Scripted alert sequences through the router, with explicit time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use pipeline::item::{Alert, AlertState};

use super::*;

const S: u64 = NS;
/// Data time of the scripts: 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200 * S;

fn config(text: &str) -> AlertsConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
}

fn alert(key: &str, state: AlertState, at_s: u64) -> Alert {
    Alert {
        time_utc_ns: T0 + at_s * S,
        monitor: "m".into(),
        key: key.into(),
        state,
        reminder: false,
        message: format!("{key} is {}", state.name()),
        du: None,
        floor: None,
        wording: super::text::wording_of(key),
    }
}

fn dom(dom_id: u32, du: u32, floor: i32, state: AlertState, at_s: u64) -> Alert {
    Alert {
        du: Some(du),
        floor: Some(floor),
        message: format!("DU{du} floor {floor} (DOM {dom_id}) {}", state.name()),
        ..alert(&format!("dom_inactive:{dom_id}"), state, at_s)
    }
}

fn reminder(key: &str, at_s: u64) -> Alert {
    Alert {
        reminder: true,
        message: format!("still firing since …: {key}"),
        ..alert(key, AlertState::Firing, at_s)
    }
}

use AlertState::{Firing, Resolved};

/// Drives a router on a script of (router time in s, alert) and ticks
/// every second of router time up to `until_s`.
struct Script {
    router: Router,
    out: Output,
    now_s: u64,
}

impl Script {
    fn new(router: Router) -> Script {
        Script {
            router,
            out: Output::default(),
            now_s: 0,
        }
    }
    fn at(&mut self, s: u64) -> &mut Self {
        assert!(s >= self.now_s, "scripts go forward");
        while self.now_s < s {
            self.now_s += 1;
            self.router.tick(T0 + self.now_s * S, &mut self.out);
        }
        self
    }
    fn push(&mut self, a: Alert) -> &mut Self {
        self.router.push(&a, T0 + self.now_s * S, &mut self.out);
        self
    }
    fn take(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }
}

const ROUTES: &str = r#"
enabled = true
group_window = 10
shifters = ["cnorris", "bspencer"]
[chat]
mode = "webhook"
webhook_url_env = "HOOK"
[email]
enabled = true
from = "km3mon@example.org"
to = ["shift@example.org"]
[[severity]]
match = "trigger_rate_zero"
severity = "critical"
[[severity]]
match = "msg_errors:*"
severity = "info"
[[route]]
name = "shift"
match = ["dom_inactive:*", "time_sync:*"]
sinks = ["chat"]
throttle = 600
reminder = 1800
[[route]]
name = "oncall"
min_severity = "critical"
sinks = ["email", "log"]
"#;

fn sent(out: &Output) -> Vec<(String, String, Vec<String>)> {
    out.messages
        .iter()
        .map(|m| (m.msg.route.clone(), m.msg.sink.clone(), m.msg.keys.clone()))
        .collect()
}

#[test]
fn routes_by_key_pattern_and_severity() {
    let mut s = Script::new(Router::new(&config(ROUTES)));
    assert_eq!(
        s.router.severity_of("trigger_rate_zero"),
        Severity::Critical
    );
    assert_eq!(
        s.router.severity_of("msg_errors:DataWriter"),
        Severity::Info
    );
    assert_eq!(s.router.severity_of("dom_inactive:1"), Severity::Warning);
    s.at(1)
        .push(dom(1, 2, 3, Firing, 1))
        .push(alert("trigger_rate_zero", Firing, 1))
        .push(alert("msg_errors:DataWriter", Firing, 1));
    s.at(10);
    assert!(
        s.take().messages.is_empty(),
        "sent before the group window closed"
    );
    s.at(11);
    let out = s.take();
    let k = |k: &str| vec![k.to_string()];
    assert_eq!(
        sent(&out),
        [
            ("shift".into(), "chat".into(), k("dom_inactive:1")),
            ("oncall".into(), "email".into(), k("trigger_rate_zero")),
            ("oncall".into(), "log".into(), k("trigger_rate_zero")),
        ]
    );
    assert_eq!(out.messages[1].msg.severity, Severity::Critical);
    assert_eq!(
        s.router.stats().unrouted,
        1,
        "the info alert matched no route"
    );
    // The shifters are named, and the place.
    let text = &out.messages[0].msg.text;
    assert!(
        text.starts_with("@cnorris @bspencer: FIRING (warning): DU 2 floor 3: DOM 1 inactive"),
        "{text}"
    );
    assert!(text.contains("2024-01-01 00:00:01 UTC"), "{text}");
    let ids: HashSet<u64> = out.messages.iter().map(|m| m.msg.id).collect();
    assert_eq!(ids.len(), 3, "message ids are unique");
}

#[test]
fn thirty_doms_of_one_du_make_one_message_naming_the_du() {
    let mut s = Script::new(Router::new(&config(ROUTES)));
    // The monitor notices them over a few seconds (one summaryslice each).
    for floor in 1..=30 {
        s.at(u64::from(floor as u32) / 8)
            .push(dom(100 + floor as u32, 5, floor, Firing, 0));
    }
    s.at(20);
    let out = s.take();
    assert_eq!(out.messages.len(), 1, "{:#?}", out.messages);
    let m = &out.messages[0].msg;
    assert_eq!(m.keys.len(), 30);
    assert!(
        m.text
            .contains("FIRING (warning): DU 5: 30 DOMs inactive (floors 1–30)"),
        "{}",
        m.text
    );
    assert!(m.text.contains("… and 25 more"), "{}", m.text);
    assert_eq!(
        m.subject,
        "[km3mon] FIRING (warning): DU 5: 30 DOMs inactive (floors 1-30)"
    );

    // They come back together: one resolved message.
    s.at(100);
    for floor in 1..=30 {
        s.push(dom(100 + floor as u32, 5, floor, Resolved, 100));
    }
    s.at(120);
    let out = s.take();
    assert_eq!(out.messages.len(), 1);
    let m = &out.messages[0];
    assert_eq!(m.notice, Notice::Resolved);
    assert!(m.msg.resolved);
    assert!(
        m.msg
            .text
            .contains("RESOLVED (warning): DU 5: 30 DOMs sending data again (floors 1–30)"),
        "{}",
        m.msg.text
    );
}

#[test]
fn several_dus_make_one_message_listing_them() {
    let mut s = Script::new(Router::new(&config(ROUTES)));
    for du in [2, 3] {
        for floor in 1..=18 {
            s.push(dom(du * 100 + floor as u32, du, floor, Firing, 0));
        }
    }
    // A time-sync problem at the same time is another condition: its own message.
    s.push(Alert {
        du: Some(4),
        floor: Some(1),
        ..alert("time_sync:401", Firing, 0)
    });
    s.at(10);
    let out = s.take();
    assert_eq!(out.messages.len(), 2, "{:#?}", out.messages);
    let texts: Vec<&str> = out.messages.iter().map(|m| m.msg.text.as_str()).collect();
    assert!(
        texts[0].contains(
            "2 DUs: 36 DOMs inactive: DU 2 (18 DOMs, floors 1–18); DU 3 (18 DOMs, floors 1–18)"
        ),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].contains("DU 4 floor 1: DOM 401 without time sync"),
        "{}",
        texts[1]
    );
}

#[test]
fn throttle_suppresses_a_flapping_key_but_never_its_resolved() {
    let mut s = Script::new(Router::new(&config(ROUTES)));
    let k = "dom_inactive:7";
    s.push(dom(7, 1, 1, Firing, 0)).at(10);
    assert_eq!(s.take().messages.len(), 1);
    s.at(100).push(dom(7, 1, 1, Resolved, 100)).at(110);
    let out = s.take();
    assert_eq!(out.messages.len(), 1, "resolved is sent");
    assert_eq!(out.messages[0].notice, Notice::Resolved);
    // Fires again within the 600 s throttle: not announced, noted.
    s.at(200).push(dom(7, 1, 1, Firing, 200)).at(220);
    let out = s.take();
    assert!(out.messages.is_empty());
    assert_eq!(out.notes.len(), 1);
    assert_eq!(
        (out.notes[0].key.as_str(), out.notes[0].decision),
        (k, Decision::Throttled)
    );
    // Its resolved is not sent either: nobody was told it fired.
    s.at(300).push(dom(7, 1, 1, Resolved, 300)).at(320);
    let out = s.take();
    assert!(out.messages.is_empty());
    assert_eq!(out.notes[0].decision, Decision::Unannounced);
    // After the throttle it is announced again.
    s.at(700).push(dom(7, 1, 1, Firing, 700)).at(710);
    assert_eq!(s.take().messages.len(), 1);
    let st = s.router.stats();
    assert_eq!((st.throttled, st.unannounced, st.messages), (1, 1, 3));
}

#[test]
fn reminders_are_forwarded_at_the_route_interval() {
    let mut s = Script::new(Router::new(&config(ROUTES)));
    let k = "dom_inactive:9";
    s.push(dom(9, 1, 2, Firing, 0)).at(10);
    assert_eq!(s.take().messages.len(), 1);
    // The monitor reminds every 600 s; the route every 1800 s.
    let mut forwarded = Vec::new();
    for t in [600, 1200, 1800, 2400, 3000, 3600, 4200] {
        s.at(t).push(Alert {
            du: Some(1),
            floor: Some(2),
            ..reminder(k, t)
        });
        s.at(t + 10);
        for m in s.take().messages {
            assert_eq!(m.notice, Notice::Reminder);
            assert!(m.msg.text.contains("REMINDER (warning)"), "{}", m.msg.text);
            forwarded.push(t);
        }
    }
    // Sent at 10; due at 1810 → the 2400 one; then due at 4210 → none.
    assert_eq!(forwarded, [2400]);
    assert_eq!(s.router.stats().reminders_skipped, 6);
    // A route without reminders never forwards them.
    let mut quiet = Script::new(Router::new(&config(
        &ROUTES.replace("reminder = 1800", "reminder = 0"),
    )));
    quiet.push(dom(9, 1, 2, Firing, 0)).at(10).take();
    quiet.at(5000).push(reminder(k, 5000)).at(5100);
    assert!(quiet.take().messages.is_empty());
}

#[test]
fn a_condition_that_resolves_within_the_window_is_transient() {
    let mut s = Script::new(Router::new(&config(ROUTES)));
    s.push(dom(3, 1, 1, Firing, 0))
        .at(4)
        .push(dom(3, 1, 1, Resolved, 4))
        .at(30);
    let out = s.take();
    assert!(out.messages.is_empty(), "{:?}", out.messages);
    assert_eq!(out.notes.len(), 1);
    assert_eq!(out.notes[0].decision, Decision::Transient);
}

#[test]
fn silenced_keys_are_skipped_and_recorded() {
    let silenced: Arc<Mutex<HashSet<String>>> = Arc::default();
    let set = silenced.clone();
    let router =
        Router::new(&config(ROUTES)).with_silences(move |k| set.lock().unwrap().contains(k));
    let mut s = Script::new(router);
    silenced.lock().unwrap().insert("dom_inactive:1".into());
    s.push(dom(1, 1, 1, Firing, 0))
        .push(dom(2, 1, 2, Firing, 0))
        .at(10);
    let out = s.take();
    assert_eq!(out.messages.len(), 1);
    assert_eq!(out.messages[0].msg.keys, ["dom_inactive:2"]);
    assert_eq!(
        out.notes,
        [Note {
            route: "shift".into(),
            key: "dom_inactive:1".into(),
            notice: Notice::Firing,
            decision: Decision::Silenced,
            data_time_ns: T0,
        }]
    );
    // Silencing a key people know about does not hide its resolved.
    silenced.lock().unwrap().insert("dom_inactive:2".into());
    s.at(50)
        .push(dom(1, 1, 1, Resolved, 50))
        .push(dom(2, 1, 2, Resolved, 50))
        .at(60);
    let out = s.take();
    assert_eq!(out.messages.len(), 1);
    assert_eq!(out.messages[0].msg.keys, ["dom_inactive:2"]);
    assert!(out.messages[0].msg.resolved);
    assert_eq!(out.notes[0].decision, Decision::Unannounced);
    assert_eq!(s.router.stats().silenced, 1);
}

#[test]
fn a_reminder_after_the_silence_ends_announces_the_alert() {
    let silenced = Arc::new(Mutex::new(true));
    let on = silenced.clone();
    let router = Router::new(&config(ROUTES)).with_silences(move |_| *on.lock().unwrap());
    let mut s = Script::new(router);
    s.push(dom(1, 1, 1, Firing, 0)).at(10);
    assert!(s.take().messages.is_empty());
    *silenced.lock().unwrap() = false;
    s.at(3600).push(reminder("dom_inactive:1", 3600)).at(3610);
    let out = s.take();
    assert_eq!(out.messages.len(), 1);
    assert_eq!(out.messages[0].notice, Notice::Firing);
}

#[test]
fn disabled_alerts_route_to_the_log_only() {
    let cfg = config(&ROUTES.replace("enabled = true\ngroup", "enabled = false\ngroup"));
    let mut s = Script::new(Router::new(&cfg));
    assert_eq!(s.router.sinks(), ["log"]);
    s.push(dom(1, 1, 1, Firing, 0))
        .push(alert("trigger_rate_zero", Firing, 0))
        .at(10);
    let sinks: Vec<String> = s.take().messages.into_iter().map(|m| m.msg.sink).collect();
    assert_eq!(sinks, ["log", "log"]);
}

#[test]
fn without_routes_one_default_route_takes_everything() {
    let cfg = config("enabled = true\nshifters = \"cnorris and bspencer\"\n[chat]\nmode = \"rest\"\nurl = \"http://x\"\n");
    let names = Arc::new(Mutex::new(vec!["jdoe".to_string()]));
    let n = names.clone();
    let mut s = Script::new(Router::new(&cfg));
    assert_eq!(s.router.sinks(), ["chat", "log"]);
    s.push(alert("msg_errors:X", Firing, 0)).at(10);
    let out = s.take();
    assert_eq!(out.messages.len(), 2);
    assert!(out.messages[0]
        .msg
        .text
        .starts_with("@cnorris @bspencer: FIRING (warning): X: too many errors in the log"));
    // The current shifters come from the closure at send time.
    let mut s = Script::new(Router::new(&cfg).with_shifters(move || n.lock().unwrap().clone()));
    s.push(alert("a", Firing, 0)).at(10);
    assert!(s.take().messages[0].msg.text.starts_with("@jdoe: "));
    *names.lock().unwrap() = vec![];
    s.push(alert("b", Firing, 10)).at(20);
    assert!(s.take().messages[0].msg.text.starts_with("FIRING"));
}

#[test]
fn flush_sends_what_is_collected_at_the_end() {
    let mut r = Router::new(&config(ROUTES));
    let mut out = Output::default();
    r.push(&dom(1, 1, 1, Firing, 0), T0, &mut out);
    assert_eq!(r.next_due(), Some(T0 + 10 * S));
    r.flush(T0 + S, &mut out);
    assert_eq!(out.messages.len(), 1);
    assert_eq!(r.next_due(), None);
}
