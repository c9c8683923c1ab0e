use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::socket::{self, Request};
use super::*;
use crate::runtime::metrics::Metrics;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("km3mon-control-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The km3mon graph's shape: a source, decoders, monitors, sinks.
fn control(out: Option<&std::path::Path>, state: Option<&std::path::Path>) -> Control {
    let c = Control::new(out, state);
    let m = Metrics::default();
    for (n, t, g, r) in [
        ("daq", "ligier", "daq", Role::Source),
        ("summaryslices", "decode", "daq", Role::Transform),
        (
            "dom_rates",
            "dom_rates",
            "monitoring_process",
            Role::Transform,
        ),
        (
            "dom_activity",
            "dom_activity",
            "monitoring_process",
            Role::Transform,
        ),
        ("timesync", "timesync", "alerts", Role::Transform),
        ("alerts", "alerts_jsonl", "alerts", Role::Sink),
        ("plots", "plots", "output", Role::Sink),
    ] {
        c.register(n, t, g, r, m.node(n));
    }
    c
}

fn states(c: &Control) -> Vec<(String, String)> {
    c.nodes().into_iter().map(|n| (n.name, n.state)).collect()
}

fn state_of(c: &Control, name: &str) -> String {
    c.node(name).unwrap().state().name().to_string()
}

#[test]
fn stop_start_restart_by_node_group_and_all() {
    let c = control(None, None);
    let r = c.execute("stop dom_rates", "alice");
    assert!(r.ok, "{r:?}");
    assert_eq!(r.text, "monitoring_process:dom_rates: stopped");
    assert_eq!(r.changed, vec!["dom_rates"]);
    assert!(c.node("dom_rates").unwrap().is_stopped());
    assert!(!c.node("dom_activity").unwrap().is_stopped());
    assert_eq!(
        c.execute("stop dom_rates", "alice").text,
        "monitoring_process:dom_rates: already stopped"
    );
    assert!(c.execute("start monitoring_process:dom_rates", "a").ok);
    assert_eq!(state_of(&c, "dom_rates"), "RUNNING");

    let r = c.execute("stop monitoring_process:*", "bob");
    assert_eq!(r.changed, vec!["dom_rates", "dom_activity"]);
    assert_eq!(state_of(&c, "timesync"), "RUNNING");
    // A bare group name works when no node is called that.
    let r = c.execute("start monitoring_process", "bob");
    assert_eq!(r.changed, vec!["dom_rates", "dom_activity"]);
    // `alerts` is a node and a group: the node wins, `alerts:*` is the group.
    assert_eq!(c.execute("stop alerts", "x").changed, vec!["alerts"]);
    assert_eq!(c.execute("stop alerts:*", "x").changed, vec!["timesync"]);
    assert_eq!(
        c.execute("start all", "x").changed,
        vec!["timesync", "alerts"]
    );

    let r = c.execute("restart dom_rates", "carol");
    assert_eq!(r.text, "monitoring_process:dom_rates: restarted");
    let s = &c.nodes()[2];
    assert_eq!((s.state.as_str(), s.restarts), ("RUNNING", 1));
    assert!(s.uptime_seconds < 5.0);
    assert!(states(&c).iter().all(|(_, s)| s == "RUNNING"));
}

#[test]
fn unknown_targets_are_named() {
    let c = control(None, None);
    let r = c.execute("stop dom_ratez", "a");
    assert!(!r.ok);
    let e = r.error.unwrap();
    assert!(
        e.starts_with("no such node `dom_ratez` (nodes: daq, summaryslices, dom_rates"),
        "{e}"
    );
    let e = c.execute("stop reconstruction:*", "a").error.unwrap();
    assert_eq!(
        e,
        "no such group `reconstruction` (groups: alerts, daq, monitoring_process, output)"
    );
    let e = c.execute("stop alerts:dom_rates", "a").error.unwrap();
    assert_eq!(
        e,
        "node `dom_rates` is in group `monitoring_process`, not `alerts`"
    );
    // Nothing changed on an error, even for the valid targets before it.
    c.execute("stop dom_rates nosuch", "a");
    assert_eq!(state_of(&c, "dom_rates"), "RUNNING");
    assert!(c
        .execute("frobnicate", "a")
        .text
        .starts_with("error: unknown command"));
}

#[test]
fn failure_is_reported_and_cleared_by_start() {
    let c = control(None, None);
    let n = c.node("plots").unwrap();
    let n2 = n.clone();
    std::thread::spawn(move || n2.fail("cannot write plots/dom_rates.png: disk full"))
        .join()
        .unwrap();
    assert_eq!(
        n.state(),
        NodeState::Failed("cannot write plots/dom_rates.png: disk full".into())
    );
    assert!(!n.is_stopped(), "a failed node keeps trying");
    let text = c.execute("status plots", "a").text;
    assert!(text.starts_with("output:plots  FAILED"), "{text}");
    assert!(
        text.ends_with("(cannot write plots/dom_rates.png: disk full)"),
        "{text}"
    );
    assert_eq!(c.execute("start plots", "a").changed, vec!["plots"]);
    assert_eq!(n.state(), NodeState::Running);
    // A stopped node does not turn failed.
    c.execute("stop plots", "a");
    n.fail("x");
    assert_eq!(n.state(), NodeState::Stopped);
}

#[test]
fn status_text_is_one_aligned_line_per_node() {
    let c = control(None, None);
    c.node("dom_rates").unwrap().metrics.add_in(1234);
    c.node("dom_rates").unwrap().metrics.add_out(56);
    c.execute("stop timesync", "a");
    let r = c.execute("status", "a");
    assert_eq!(r.nodes.len(), 7);
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines.len(), 7);
    let dr = lines[2];
    assert!(dr.starts_with("monitoring_process:dom_rates "), "{dr}");
    assert!(dr.contains(" RUNNING  uptime 0:00:0"), "{dr}");
    assert!(dr.contains("in 1234"), "{dr}");
    assert!(dr.contains("out 56"), "{dr}");
    assert!(dr.ends_with("last output 0s ago"), "{dr}");
    assert!(lines[4].starts_with("alerts:timesync "), "{}", lines[4]);
    assert!(lines[4].contains(" STOPPED  for 0:00:0"), "{}", lines[4]);
    assert!(lines[0].ends_with("no output yet"));
    assert!(lines[5].ends_with("  sink"), "{}", lines[5]);
    // Every line has its state column at the same offset.
    let col: Vec<usize> = lines
        .iter()
        .map(|l| l.find("RUNNING").or_else(|| l.find("STOPPED")).unwrap())
        .collect();
    assert!(col.windows(2).all(|w| w[0] == w[1]), "{col:?}");
    assert_eq!(format_hms(3723.0), "1:02:03");
    assert_eq!(format_hms(90_000.0), "1 day, 1:00:00");
}

#[test]
fn silences_match_expire_persist_and_are_audited() {
    let dir = scratch("silences");
    let state = dir.join("state");
    let c = control(Some(&dir), Some(&state));
    assert!(!c.is_silenced("timesync:du7"));
    let r = c.execute("silence timesync:* 2h DU 7 in maintenance", "alice");
    assert!(r.ok, "{r:?}");
    assert!(c.is_silenced("timesync:du7"));
    assert!(!c.is_silenced("dom_activity:808"));
    assert_eq!(c.silences().len(), 1);
    // A restarted run keeps it.
    let c2 = control(Some(&dir), Some(&state));
    assert!(c2.is_silenced("timesync:du7"));
    let listed = c2.execute("silences", "x").text;
    assert!(listed.starts_with("timesync:*  until "), "{listed}");
    assert!(
        listed.ends_with("by alice: DU 7 in maintenance"),
        "{listed}"
    );
    assert!(c2.execute("unsilence timesync:*", "bob").ok);
    assert!(!c2.is_silenced("timesync:du7"));
    assert!(!control(None, Some(&state)).is_silenced("timesync:du7"));
    let e = c2.execute("unsilence timesync:*", "bob").error.unwrap();
    assert!(e.contains("no silence with pattern"), "{e}");
    // Expired silences match nothing and are not loaded again.
    c.silences.lock().unwrap()[0].until_utc = now_utc() - 1.0;
    assert!(!c.is_silenced("timesync:du7"));
    assert!(c.silences().is_empty());

    c.execute("stop dom_rates", "carol");
    c.execute("restart dom_rates", "carol");
    let audit = std::fs::read_to_string(dir.join("data").join(super::AUDIT_FILE)).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|v| (v["key"].as_str().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("timesync:*", "silenced"),
            ("timesync:*", "unsilenced"),
            ("dom_rates", "stopped"),
            ("dom_rates", "restarted"),
        ]
    );
    assert!(lines.iter().all(|v| v["monitor"] == "control"));
    let m0 = lines[0]["message"].as_str().unwrap();
    assert!(m0.starts_with("silence timesync:* until "), "{m0}");
    assert!(m0.ends_with(" by alice: DU 7 in maintenance"), "{m0}");
    assert_eq!(
        lines[2]["message"],
        "stop monitoring_process:dom_rates by carol"
    );
    let t = lines[0]["time_utc"].as_str().unwrap();
    assert!(
        t.len() == 20 && t.ends_with('Z') && &t[10..11] == "T",
        "{t}"
    );
}

#[test]
fn socket_round_trip_mode_0600_stale_and_live() {
    let dir = scratch("socket");
    let path = dir.join("km3mon.sock");
    let c = Arc::new(control(None, None));
    let server = socket::serve(c.clone(), &path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second instance on the same path is refused.
    let e = socket::serve(c.clone(), &path).err().unwrap();
    assert!(e.to_string().contains("another km3mon instance"), "{e}");
    let ask = |cmd: &str| {
        socket::request(
            &path,
            &Request {
                command: cmd.into(),
                user: "dave".into(),
            },
            Duration::from_secs(5),
        )
        .unwrap()
    };
    assert!(ask("stop dom_rates").ok);
    assert!(c.node("dom_rates").unwrap().is_stopped());
    let r = ask("status");
    assert_eq!(r.nodes.len(), 7);
    assert_eq!(r.nodes[2].state, "STOPPED");
    assert!(!ask("stop").ok);
    drop(server);
    assert!(!path.exists(), "the socket file is removed at the end");
    // A stale socket (nobody listening) is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    assert!(path.exists());
    let _server = socket::serve(c.clone(), &path).unwrap();
    assert!(ask("start dom_rates").ok);
    // Anything but a socket is left alone.
    let f = dir.join("file");
    std::fs::write(&f, "x").unwrap();
    assert!(socket::serve(c, &f).is_err());
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "x");
}

#[test]
fn silent_clients_do_not_delay_others() {
    let dir = scratch("silent");
    let path = dir.join("km3mon.sock");
    let c = Arc::new(control(None, None));
    let _server = socket::serve(c, &path).unwrap();
    // Two clients that connect and never send a line: one thread used to
    // serve them in turn, each for its full 10 s read timeout.
    let silent: Vec<_> = (0..2)
        .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let r = socket::request(
        &path,
        &Request {
            command: "status".into(),
            user: "carol".into(),
        },
        // Well below the 10 s a silent client held the socket.
        Duration::from_secs(3),
    )
    .expect("answered while two silent clients are connected");
    assert!(r.ok && r.nodes.len() == 7, "{r:?}");
    drop(silent);
}

#[test]
fn control_characters_from_requests_are_escaped() {
    let dir = scratch("escape");
    let c = control(Some(&dir), None);
    let r = c.execute(
        "silence dom_rates 1h",
        "eve\n2026-01-01T00:00:00Z INFO control: forged\u{1b}[2J",
    );
    assert!(r.ok, "{r:?}");
    let user = &r.silences[0].user;
    assert!(!user.chars().any(char::is_control), "{user:?}");
    assert!(
        user.contains("\\n2026") && user.contains("\\u{1b}"),
        "{user:?}"
    );
    let audit = std::fs::read_to_string(dir.join("data").join(super::AUDIT_FILE)).unwrap();
    assert_eq!(audit.lines().count(), 1, "{audit}");
    let line: serde_json::Value = serde_json::from_str(audit.trim()).unwrap();
    let message = line["message"].as_str().unwrap();
    assert!(!message.chars().any(char::is_control), "{message:?}");
    assert!(message.contains("by eve\\n2026"), "{message:?}");
}

#[test]
fn a_good_write_of_one_file_does_not_hide_another_failing_one() {
    let c = Control::new(None, None);
    let n = c.register(
        "royfit",
        "royfit",
        "reconstruction",
        Role::Transform,
        Metrics::default().node("royfit"),
    );
    let (png, jsonl) = (
        Path::new("plots/ztplot_roy.png"),
        Path::new("data/royfit.jsonl"),
    );
    n.write_failed(png, "No space left on device");
    assert!(matches!(n.state(), NodeState::Failed(_)));
    // The JSON Lines writer (another thread) succeeds: still FAILED.
    n.write_ok(Some(jsonl));
    assert!(matches!(n.state(), NodeState::Failed(_)));
    // The plot itself is written again: RUNNING.
    n.write_ok(Some(png));
    assert_eq!(n.state(), NodeState::Running);
    // `None` clears every file of the node.
    n.write_failed(png, "full");
    n.write_failed(jsonl, "full");
    n.write_ok(None);
    assert_eq!(n.state(), NodeState::Running);
}

/// `reset NODE KEY`: refused by a node that takes no requests, checked by
/// the node's own rule, queued (and audited) otherwise, taken once.
#[test]
fn reset_requests_are_checked_queued_and_taken_once() {
    let dir = scratch("reset");
    let c = control(Some(&dir), None);
    let r = c.execute("reset dom_rates 3", "op");
    assert!(!r.ok && r.text.contains("takes no reset"), "{}", r.text);
    let r = c.execute("reset nosuch 3", "op");
    assert!(!r.ok && r.text.contains("no such node"), "{}", r.text);
    let n = c.node("timesync").unwrap();
    n.accept_requests(|k| {
        (k == "3" || k == "4")
            .then_some(())
            .ok_or_else(|| format!("`{k}` is not a DU"))
    });
    let r = c.execute("reset timesync 9", "op");
    assert!(!r.ok && r.text.contains("`9` is not a DU"), "{}", r.text);
    assert!(c.execute("reset timesync 3", "op").ok);
    assert!(c.execute("rttc-reset --node timesync --du 4", "op").ok);
    assert_eq!(n.pending_requests(), 2);
    assert_eq!(n.take_requests(), ["3", "4"]);
    assert!(n.take_requests().is_empty());
    let audit = std::fs::read_to_string(dir.join("data").join(AUDIT_FILE)).unwrap();
    assert_eq!(audit.matches("\"state\":\"reset\"").count(), 2, "{audit}");
    let _ = std::fs::remove_dir_all(&dir);
}
