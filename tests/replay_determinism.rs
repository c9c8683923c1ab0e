//! Replay must equal live (issue 15), end to end with the `km3mon` binary.
//!
//! * Problem 1: DOMs on floors 1–3 of one DU silent from 60 s to 200 s of
//!   a 300 s recording of a 6-DU detector, `inactive_after = 20`,
//!   `group_window = 10`, `in_replay = true`: exactly one grouped FIRING
//!   naming the DU, "3 DOMs" and the shifters, and exactly one RESOLVED,
//!   reach a real SMTP server (Python's `aiosmtpd` on 127.0.0.1) and the
//!   chat. No Rocket.Chat server can run here: the chat peer is
//!   `testchat`, a local stand-in written from the Rocket.Chat REST spec.
//!   The same sequence live: a real `km3mon ligier`, the simulator
//!   publishing the scenario compressed 1:10 (settings scaled with it)
//!   and `km3mon run`.
//! * Determinism: replays of one recording at `--speed max` and at a
//!   finite speed, with `-w 1` and `-w 2`, and by two cluster processes,
//!   give byte-identical output trees (PNGs, alerts.jsonl and the routing
//!   lines included). One exception: `data/monitoring.sqlite3` is compared
//!   by its rows, as its rows hold the absolute path of each PNG, which
//!   names the output folder.
//!
//! Loopback only; every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::smtp::Smtp;

/// A recording of a generated detector with DOMs of `du` floors 1–3
/// silent from `from` for `for_` (simulator fault syntax).
fn recording(
    dir: &Path,
    dus: u32,
    duration: &str,
    du: u32,
    from: &str,
    for_: &str,
) -> (PathBuf, PathBuf) {
    let (rec, detx) = (dir.join("rec"), dir.join("d.detx"));
    let shape = format!("{dus}x18");
    let mut args: Vec<String> = [
        "simulate",
        "--generate-detector",
        &shape,
        "--write-detector",
        detx.to_str().unwrap(),
        "-o",
        rec.to_str().unwrap(),
        "--duration",
        duration,
        "--msg-interval",
        "5s",
    ]
    .map(String::from)
    .to_vec();
    for floor in 1..=3 {
        args.push("--fault".into());
        args.push(format!("dom-silent@{from}+{for_}:{du}/{floor}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::run_ok(&args);
    (rec, detx)
}

/// The alert path only: summaryslices → dom_activity → the monitors'
/// alert lines, the detector-state table and the router (which counts
/// its texts by that table).
fn alert_graph(dir: &Path, in_replay: bool) -> PathBuf {
    let text = format!(
        r#"
[nodes.daq]
type = "ligier"
host = "127.0.0.1"
tags = ["IO_SUM"]

[nodes.summaryslices]
type = "decode"
inputs = ["daq"]
kind = "summaryslices"

[nodes.dom_activity]
type = "dom_activity"
inputs = ["summaryslices"]
inactive_after = 20

[nodes.alerts]
type = "alerts_jsonl"
inputs = ["dom_activity"]

[nodes.detector_state]
type = "detector_state"
inputs = ["dom_activity"]

[nodes.notify]
type = "alerts_notify"
inputs = ["dom_activity", "detector_state"]
alerts = "@config.Alerts"
in_replay = {in_replay}
"#
    );
    let p = dir.join("alerts.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn site_config(dir: &Path, chat_url: &str, smtp_port: u16) -> PathBuf {
    common::alerts_site(
        dir,
        common::AlertsSite {
            chat_url,
            smtp_port,
            group_window: 10,
            shifters: &["cnorris", "bspencer"],
            route: "shift",
            pattern: "dom_inactive:*",
            to: "shift@example.org",
        },
    )
}

fn replay(args: &[&str], graph: &Path, detx: &Path, rec: &Path, out: &Path) {
    let mut all = vec![
        "replay",
        "--graph",
        graph.to_str().unwrap(),
        "--detector",
        detx.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    all.push(rec.to_str().unwrap());
    common::run_ok(&all);
}

/// What the monitoring bot posted in the operations channel.
fn bot_posts(chat: &testchat::TestChat) -> Vec<String> {
    chat.messages("operations")
        .into_iter()
        .filter(|m| m.username == "monitoring")
        .map(|m| m.text)
        .collect()
}

/// Problem 1's "done when": one grouped FIRING naming DU 3, "3 DOMs" and
/// the shifters, then one RESOLVED, by chat and by mail.
fn assert_one_grouped_firing_and_one_resolved(posted: &[String], mails: &[serde_json::Value]) {
    assert_eq!(posted.len(), 2, "{posted:#?}");
    assert!(
        posted[0].starts_with("@cnorris @bspencer: FIRING (warning): DU 3: 3 DOMs inactive"),
        "{}",
        posted[0]
    );
    assert!(
        posted[1].starts_with("@cnorris @bspencer: RESOLVED (warning): DU 3: 3 DOMs"),
        "{}",
        posted[1]
    );
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let subjects: Vec<&str> = mails
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects[0].contains("FIRING") && subjects[0].contains("DU 3"),
        "{subjects:?}"
    );
    assert!(subjects[0].contains("3 DOMs"), "{subjects:?}");
    assert!(subjects[1].contains("RESOLVED"), "{subjects:?}");
    let body = mails[0]["body"].as_str().unwrap();
    assert!(body.contains("@cnorris @bspencer"), "{body}");
    // The detector-state table's counts at the message's data time
    // (`detector_state` feeds `alerts_notify`), in chat and in the mail.
    let now = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("Now (data time "))
            .map(|l| l.split_once("): ").unwrap().1.to_string())
            .unwrap_or_else(|| panic!("no Now line in {text}"))
    };
    assert_eq!(
        now(&posted[0]),
        "DU 3: 3 DOMs inactive; all DUs: 3 DOMs inactive"
    );
    assert_eq!(
        now(&posted[1]),
        "DU 3: no DOM inactive; all DUs: no DOM inactive"
    );
    assert_eq!(now(body), now(&posted[0]));
}

#[test]
fn silent_floors_give_one_grouped_firing_and_one_resolved_by_chat_and_mail() {
    let dir = common::scratch("replay-determinism", "problem1");
    let (rec, detx) = recording(&dir, 6, "300s", 3, "60s", "140s");
    let chat = testchat::TestChat::start(testchat::Options::default()).unwrap();
    let smtp = Smtp::start(&dir);
    let site = site_config(&dir, &chat.url(), smtp.port);
    let graph = alert_graph(&dir, true);
    let out = dir.join("out");
    let site_arg = site.to_str().unwrap().to_string();
    replay(&["--config", &site_arg], &graph, &detx, &rec, &out);

    // The monitor: three firings at +80 s, three resolutions at +200 s.
    let lines = std::fs::read_to_string(out.join("data/alerts.jsonl")).unwrap();
    let states: Vec<(String, String)> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            (
                v["time_utc"].as_str().unwrap().to_string(),
                v["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(states.len(), 6, "{lines}");
    assert!(states[..3].iter().all(|s| s.1 == "firing"), "{lines}");
    assert!(states[3..].iter().all(|s| s.1 == "resolved"), "{lines}");

    assert_one_grouped_firing_and_one_resolved(&bot_posts(&chat), &smtp.mails());

    // Every routed message delivered, no decision "transient".
    let routing = std::fs::read_to_string(out.join("data/alerts_routing.jsonl")).unwrap();
    assert!(!routing.contains("transient"), "{routing}");
    let delivered = routing
        .lines()
        .filter(|l| l.contains("\"delivered\":true"))
        .count();
    assert_eq!(delivered, 6, "2 messages × chat, email, log:\n{routing}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills a child process when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Problem 1 live, the scenario compressed 1:10 with the settings scaled
/// with it: `km3mon ligier` on 127.0.0.1, the simulator publishing 6 DUs
/// at real speed (floors 1–3 of DU 3 silent from 6 s to 20 s of data
/// time), `km3mon run` of the alert graph with `inactive_after = 2`,
/// `group_window = 1`, lateness 2 s; the same chat stand-in and real
/// aiosmtpd as the replay: the same one FIRING and one RESOLVED arrive,
/// with data-time timers driven by the heartbeat. Bounded: about 40 s.
#[test]
fn silent_floors_live_give_one_grouped_firing_and_one_resolved_by_chat_and_mail() {
    let started = Instant::now();
    let dir = common::scratch("replay-determinism", "problem1-live");
    let detx = dir.join("d.detx");
    common::run_ok(&[
        "simulate",
        "--generate-detector",
        "6x18",
        "--write-detector",
        detx.to_str().unwrap(),
        "-o",
        dir.join("unused.rec").to_str().unwrap(),
        "--duration",
        "1s",
    ]);
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let _ligier = Guard(
        Command::new(common::km3mon())
            .args([
                "ligier",
                "--port",
                &port.to_string(),
                "--status-interval",
                "0",
            ])
            .env("KM3MON_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let chat = testchat::TestChat::start(testchat::Options::default()).unwrap();
    let smtp = Smtp::start(&dir);
    let site = site_config(&dir, &chat.url(), smtp.port)
        .to_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(site.as_str())
        .unwrap()
        .replace("group_window = 10", "group_window = 1");
    std::fs::write(&site, text).unwrap();
    let graph = alert_graph(&dir, false);
    let text = std::fs::read_to_string(&graph).unwrap();
    let text = text
        .replace(
            "host = \"127.0.0.1\"",
            &format!("host = \"127.0.0.1\"\nport = {port}"),
        )
        .replace("inactive_after = 20", "inactive_after = 2");
    std::fs::write(&graph, text).unwrap();
    let out = dir.join("out");
    let mut run = Guard(
        Command::new(common::km3mon())
            .args(["run", "--graph", graph.to_str().unwrap(), "--config", &site])
            .args(["--detector", detx.to_str().unwrap(), "--out"])
            .arg(&out)
            .args(["--lateness", "2s"])
            .env("KM3MON_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The pipeline subscribes before the first data is published.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ligier::query_status(&addr, Duration::from_secs(2)).is_ok_and(|s| {
        s.connections
            .iter()
            .any(|c| c.subscription.split_whitespace().any(|w| w == "IO_SUM"))
    }) {
        assert!(Instant::now() < deadline, "km3mon run never subscribed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut sim = vec![
        "simulate".to_string(),
        "--detector".into(),
        detx.to_str().unwrap().into(),
        "--ligier".into(),
        addr.clone(),
        "--duration".into(),
        "26s".into(),
        "--msg-interval".into(),
        "5s".into(),
    ];
    for floor in 1..=3 {
        sim.push("--fault".into());
        sim.push(format!("dom-silent@6s+14s:3/{floor}"));
    }
    let mut sim = Guard(
        Command::new(common::km3mon())
            .args(&sim)
            .env("KM3MON_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Resolved at 20 s of data time, seen 2 s later (lateness), routed
    // after the 1 s group window: wait for both messages, bounded.
    let deadline = Instant::now() + Duration::from_secs(60);
    while bot_posts(&chat).len() < 2 || smtp.mails().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "chat: {:#?}\nmail: {:#?}",
            bot_posts(&chat),
            smtp.mails()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = sim.0.wait().unwrap();
    assert!(status.success(), "the simulator failed");
    // Nothing more after the end of the data (a grouped message per DOM,
    // or a late duplicate, would show here).
    std::thread::sleep(Duration::from_secs(3));
    common::terminate(&mut run.0, Duration::from_secs(20), "km3mon run");
    assert_one_grouped_firing_and_one_resolved(&bot_posts(&chat), &smtp.mails());
    let lines = std::fs::read_to_string(out.join("data/alerts.jsonl")).unwrap();
    let states: Vec<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["state"].to_string())
        .collect();
    assert_eq!(
        states,
        [r#""firing""#; 3]
            .into_iter()
            .chain([r#""resolved""#; 3])
            .collect::<Vec<_>>(),
        "{lines}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every file under `dir`, relative path → bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, d: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The rows of the SQLite database, with the output folder taken out of
/// the PNG paths (Python's sqlite3: the test Python is there anyway).
fn sqlite_rows(out: &Path) -> String {
    let script = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nfor l in c.iterdump(): print(l.replace(sys.argv[2],'OUT'))";
    let db = out.join("data/monitoring.sqlite3");
    let dump = Command::new(common::python())
        .args([
            "-c",
            script,
            db.to_str().unwrap(),
            &std::path::absolute(out).unwrap().display().to_string(),
        ])
        .output()
        .expect("python sqlite3");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    String::from_utf8(dump.stdout).unwrap()
}

#[test]
fn output_trees_are_identical_for_any_speed_and_worker_count() {
    let dir = common::scratch("replay-determinism", "trees");
    let (rec, detx) = recording(&dir, 3, "120s", 2, "20s", "40s");
    let graph = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../graphs/km3mon.toml");
    let runs: [(&str, &[&str]); 4] = [
        ("w1-max", &["-w", "1"]),
        ("w2-max", &["-w", "2"]),
        ("w2-speed", &["-w", "2", "--speed", "30"]),
        ("w1-again", &["-w", "1"]),
    ];
    let mut first: Option<(String, std::collections::BTreeMap<String, Vec<u8>>, String)> = None;
    let mut compare = |name: &str, out: &Path| {
        let mut files = tree(out);
        assert!(
            files.contains_key("data/alerts.jsonl"),
            "{:?}",
            files.keys()
        );
        assert!(files.keys().any(|k| k.ends_with(".png")));
        let db = files
            .remove("data/monitoring.sqlite3")
            .map(|_| sqlite_rows(out))
            .unwrap_or_default();
        match &first {
            None => first = Some((name.to_string(), files, db)),
            Some((ref_name, ref_files, ref_db)) => {
                let names: Vec<&String> = files.keys().collect();
                let ref_names: Vec<&String> = ref_files.keys().collect();
                assert_eq!(names, ref_names, "{name} vs {ref_name}: other files");
                for (k, v) in &files {
                    assert!(v == &ref_files[k], "{name} vs {ref_name}: {k} differs");
                }
                assert_eq!(&db, ref_db, "{name} vs {ref_name}: SQLite rows differ");
            }
        }
    };
    for (name, args) in runs {
        let out = dir.join(name);
        replay(args, &graph, &detx, &rec, &out);
        compare(name, &out);
    }
    // Two cluster processes of one worker each: the leader writes it all.
    let hostfile = dir.join("hosts");
    std::fs::write(
        &hostfile,
        format!(
            "127.0.0.1:{}\n127.0.0.1:{}\n",
            common::free_port(),
            common::free_port()
        ),
    )
    .unwrap();
    let spawn = |i: usize| {
        Command::new(common::km3mon())
            .args(["replay", "--graph", graph.to_str().unwrap(), "--detector"])
            .arg(&detx)
            .arg("--out")
            .arg(dir.join(format!("cluster{i}")))
            .args(["--hostfile", hostfile.to_str().unwrap(), "--process"])
            .arg(i.to_string())
            .arg(&rec)
            .env("KM3MON_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (p0, p1) = (spawn(0), spawn(1));
    for (i, mut p) in [p0, p1].into_iter().enumerate() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        let status = loop {
            if let Some(s) = p.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = p.kill();
                panic!("cluster process {i} did not finish within 300 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        assert!(status.success(), "cluster process {i} failed");
    }
    compare("cluster", &dir.join("cluster0"));
    assert!(
        tree(&dir.join("cluster1")).is_empty(),
        "only the leader process writes"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `km3mon check` refuses two sinks on one file, naming both places.
/// (No shipped node listens on a port — the web and metrics servers are
/// options of the binary, not nodes — so two nodes on one port are tested
/// with a test node in pipeline/tests/validation.rs.)
#[test]
fn check_refuses_two_writers_of_one_file_with_both_places() {
    let dir = common::scratch("replay-determinism", "check");
    let graph = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../graphs/km3mon.toml");
    let text = std::fs::read_to_string(graph).unwrap().replace(
        "path = \"data/alerts_routing.jsonl\"",
        "path = \"data/alerts.jsonl\"",
    );
    let p = dir.join("two-writers.toml");
    std::fs::write(&p, &text).unwrap();
    let out = Command::new(common::km3mon())
        .args(["check", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "path = \"data/alerts.jsonl\"")
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 2);
    let want = format!(
        "{}:{}:8: nodes.alerts_notify.path: file `data/alerts.jsonl` is also claimed by node `alerts` ({}:{}:8, nodes.alerts.path)",
        p.display(),
        lines[1],
        p.display(),
        lines[0]
    );
    assert!(stderr.contains(&want), "expected `{want}` in:\n{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
