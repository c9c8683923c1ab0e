//! `rttc:<du>` end to end, live: the Detector Manager stand-in
//! (`km3mon simulate --detector-manager`, written from spec
//! integrations.md §2, as no real Detector Manager can run here) plays
//! two `rttc-jump` faults; `km3mon run` of a graph with the `rttc` node,
//! `alerts_jsonl`, `alerts_notify` and `plots` polls it every second.
//!
//! * DU 2 jumps by +500 ps for 6 s: one FIRING naming DU 2, then one
//!   RESOLVED when it is back in its band.
//! * DU 3 jumps by +500 ps for good (a White Rabbit re-calibration): one
//!   FIRING, then, after `adopt_after` at the steady new level, one
//!   RESOLVED saying "new baseline" — the design of issue 17 (a lasting
//!   shift is acknowledged once, not alerted until the state is reset).
//!
//! Both reach a real SMTP server (Python's `aiosmtpd`) and the chat
//! stand-in `testchat` (written from the Rocket.Chat REST spec; no chat
//! server can run here). 127.0.0.1 only; every wait is bounded (about
//! 45 s in all).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::smtp::Smtp;
use common::Guard;

fn graph(dir: &Path, dm_port: u16) -> std::path::PathBuf {
    let text = format!(
        r#"
[nodes.rttc]
type = "rttc"
detector_manager = "127.0.0.1:{dm_port}"
poll = 1
min_samples = 5
alert_after = 2
adopt_after = 10
db = false

[nodes.plots]
type = "plots"
inputs = ["rttc"]
dir = "plots"

[nodes.alerts]
type = "alerts_jsonl"
inputs = ["rttc"]

[nodes.notify]
type = "alerts_notify"
inputs = ["rttc"]
alerts = "@config.Alerts"
"#
    );
    let p = dir.join("rttc.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn site_config(dir: &Path, chat_url: &str, smtp_port: u16) -> std::path::PathBuf {
    common::alerts_site(
        dir,
        common::AlertsSite {
            chat_url,
            smtp_port,
            group_window: 1,
            shifters: &["cnorris"],
            route: "timing",
            pattern: "rttc:*",
            to: "timing@example.org",
        },
    )
}

fn bot_posts(chat: &testchat::TestChat) -> Vec<String> {
    chat.messages("operations")
        .into_iter()
        .filter(|m| m.username == "monitoring")
        .map(|m| m.text)
        .collect()
}

#[test]
fn rttc_jumps_reach_chat_and_mail_once_firing_once_resolved() {
    let started = Instant::now();
    let dir = common::scratch("rttc-alerts", "jumps");
    let (_, detx) = common::simulate(&dir, "3x18", "1s", &[]);
    let dm_port = common::free_port();
    let chat = testchat::TestChat::start(testchat::Options::default()).unwrap();
    let smtp = Smtp::start(&dir);
    let site = site_config(&dir, &chat.url(), smtp.port);
    let graph = graph(&dir, dm_port);
    let out = dir.join("out");
    let mut run = Guard(
        Command::new(common::km3mon())
            .args(["run", "--graph"])
            .arg(&graph)
            .arg("--config")
            .arg(&site)
            .arg("--detector")
            .arg(&detx)
            .arg("--out")
            .arg(&out)
            .args(["--lateness", "1s"])
            .env("KM3MON_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The run first (it retries the DM every poll), then the stand-in
    // alone with the faults counted from its start, so that however slow
    // the run is to start, the baseline has its 5 samples before the
    // first jump.
    let up = Instant::now() + Duration::from_secs(60);
    while !out.join("km3mon.sock").exists() {
        assert!(Instant::now() < up, "km3mon run did not start within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _dm = Guard(
        Command::new(common::km3mon())
            .args(["simulate", "--detector"])
            .arg(&detx)
            .args(["--detector-manager", &format!("127.0.0.1:{dm_port}")])
            .args(["--duration", "60s"])
            .args(["--fault", "rttc-jump@12s+6s:2"])
            .args(["--fault", "rttc-jump@27s:3"])
            .env("KM3MON_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // DU 2: firing ≈ 14 s, resolved ≈ 18 s; DU 3: firing ≈ 29 s, new
    // baseline ≈ 37 s after the stand-in's start.
    let deadline = Instant::now() + Duration::from_secs(75);
    while bot_posts(&chat).len() < 4 || smtp.mails().len() < 4 {
        assert!(
            Instant::now() < deadline,
            "chat: {:#?}\nmail: {:#?}\nalerts: {}",
            bot_posts(&chat),
            smtp.mails(),
            std::fs::read_to_string(out.join("data/alerts.jsonl")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Nothing more while DU 3 stays at its new level.
    std::thread::sleep(Duration::from_secs(3));
    // `km3mon ctl rttc-reset --du 3`: DU 3's baseline is learnt anew (its
    // baseline sample count starts again from 0); DU 3 is not firing, so
    // no message. A node that takes no reset says so.
    let json = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join("plots/rttc.json")).unwrap())
            .unwrap()
    };
    let samples = |doc: &serde_json::Value| doc["dus"][2]["baseline_samples"].as_u64().unwrap();
    let before = samples(&json());
    let ctl = |words: &[&str]| {
        Command::new(common::km3mon())
            .args(["ctl", "--out"])
            .arg(&out)
            .args(words)
            .output()
            .unwrap()
    };
    let reply = ctl(&["rttc-reset", "--du", "3"]);
    let text = String::from_utf8_lossy(&reply.stdout).to_string();
    assert!(
        reply.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&reply.stderr)
    );
    assert!(text.contains("rttc: reset 3 requested"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let doc = json();
        if samples(&doc) < before.min(4) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "DU 3 not reset (before {before}): {doc}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let reply = ctl(&["rttc-reset", "--du", "9"]);
    assert!(!reply.status.success());
    assert!(
        String::from_utf8_lossy(&reply.stderr).contains("not a DU of the detector"),
        "{}",
        String::from_utf8_lossy(&reply.stderr)
    );
    let reply = ctl(&["reset", "plots", "3"]);
    assert!(!reply.status.success());
    assert!(String::from_utf8_lossy(&reply.stderr).contains("takes no reset"));
    let audit = std::fs::read_to_string(out.join("data/control_audit.jsonl")).unwrap();
    assert!(audit.contains("reset rttc 3 requested"), "{audit}");
    std::thread::sleep(Duration::from_secs(1));
    common::terminate(&mut run.0, Duration::from_secs(20), "km3mon run");

    let posts = bot_posts(&chat);
    assert_eq!(posts.len(), 4, "{posts:#?}");
    let expect = [
        ("FIRING", "DU 2"),
        ("RESOLVED", "DU 2"),
        ("FIRING", "DU 3"),
        ("RESOLVED", "DU 3"),
    ];
    for (post, (state, du)) in posts.iter().zip(expect) {
        assert!(
            post.starts_with(&format!(
                "@cnorris: {state} (warning): {du}: base-CLB cable round-trip time"
            )),
            "{posts:#?}"
        );
        assert!(post.contains("RTTC"), "{post}");
    }
    // The jump in ps (+500 ± the stand-in's noise).
    let jump: f64 = posts[0]
        .split_once("base CLB is +")
        .and_then(|(_, r)| r.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no jump in {}", posts[0]));
    assert!((jump - 500.0).abs() < 20.0, "{}", posts[0]);
    assert!(posts[1].contains("back within its band"), "{}", posts[1]);
    assert!(posts[3].contains("new baseline"), "{}", posts[3]);

    let mails = smtp.mails();
    assert_eq!(mails.len(), 4, "{mails:#?}");
    for (mail, (state, du)) in mails.iter().zip(expect) {
        let subject = mail["subject"].as_str().unwrap();
        assert!(
            subject.contains(state) && subject.contains(du),
            "{mails:#?}"
        );
    }
    assert!(mails[3]["body"].as_str().unwrap().contains("new baseline"));

    let lines = std::fs::read_to_string(out.join("data/alerts.jsonl")).unwrap();
    let got: Vec<(String, String)> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            (
                v["key"].as_str().unwrap().into(),
                v["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("rttc:2", "firing"),
        ("rttc:2", "resolved"),
        ("rttc:3", "firing"),
        ("rttc:3", "resolved"),
    ]
    .map(|(k, s)| (k.to_string(), s.to_string()))
    .to_vec();
    assert_eq!(got, want, "{lines}");

    // The plot's numbers: DU 3's baseline is now its new level.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plots/rttc.json")).unwrap())
            .unwrap();
    let median = |du: u32| {
        doc["dus"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["du"] == du)
            .and_then(|d| d["median_ps"].as_f64())
            .unwrap()
    };
    let nominal = simulator::dm::nominal_rttc;
    assert!((median(2) - nominal(2)).abs() < 20.0, "{doc}");
    assert!((median(3) - nominal(3) - 500.0).abs() < 20.0, "{doc}");
    // One panel per DU, in DU order, and the PNG is the grid the JSON describes.
    let labels: Vec<&str> = doc["dus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["DU 1", "DU 2", "DU 3"], "{doc}");
    assert_eq!(doc["layout"]["panels"], 3, "{doc}");
    assert_eq!(doc["layout"]["columns"], 3, "{doc}");
    let png = std::fs::read(out.join("plots/rttc.png")).unwrap();
    let be = |o: usize| u64::from(u32::from_be_bytes(png[o..o + 4].try_into().unwrap()));
    let size = &doc["layout"]["size_px"];
    assert_eq!(
        (Some(be(16)), Some(be(20))),
        (size[0].as_u64(), size[1].as_u64())
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
