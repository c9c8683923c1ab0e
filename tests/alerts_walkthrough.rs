//! The "done when" of the alerts issue, as a new user would do it:
//!
//! 1. a local test chat (`testchat`) and `km3mon demo --chat-url …` with
//!    two DOMs of DU 2 silenced by the simulator for a while;
//! 2. an operator sets the shifters from the chat (stored beside the
//!    demo's site config, which stays untouched), a stranger is refused by
//!    name;
//! 3. one grouped message naming DU 2 (and the new shifters) arrives, later
//!    its "resolved";
//! 4. one monitor is stopped and started with `km3mon ctl`, and again from
//!    the chat.
//!
//! No real Rocket.Chat server can run here: `testchat` is a local HTTP
//! server implementing the Rocket.Chat REST endpoints km3mon uses (login,
//! channels.list with paging, channels.history, chat.postMessage) and
//! recording the requests. Loopback only; every wait is bounded (the whole
//! test well under 90 s).

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testchat::{Options, TestChat};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The shipped example with a 10 s inactivity threshold, a short grouping
/// window, alerts on, the `operations` channel and one route for inactive
/// DOMs to the chat. The chat itself comes from `--chat-url`.
fn site_config(dir: &Path) -> PathBuf {
    let example = std::fs::read_to_string(repo().join("pipeline.toml.example")).unwrap();
    let mut doc: toml::Table = toml::from_str(&example).unwrap();
    let t = |doc: &mut toml::Table, s: &str| -> toml::Table {
        doc.get(s).and_then(|v| v.as_table()).cloned().unwrap()
    };
    let mut act = t(&mut doc, "DOMActivity");
    act.insert("inactive_after".into(), 10.into());
    doc.insert("DOMActivity".into(), act.into());
    let mut alerts = t(&mut doc, "Alerts");
    let extra: toml::Table = toml::from_str(
        r#"
enabled = true
group_window = 3
[[route]]
name = "shift"
match = ["dom_inactive:*"]
sinks = ["chat"]
throttle = 600
"#,
    )
    .unwrap();
    alerts.extend(extra);
    doc.insert("Alerts".into(), alerts.into());
    let p = dir.join("site.toml");
    std::fs::write(&p, toml::to_string(&doc).unwrap()).unwrap();
    p
}

fn bot_posts(chat: &TestChat) -> Vec<String> {
    chat.messages("operations")
        .into_iter()
        .filter(|m| m.username == "monitoring")
        .map(|m| m.text)
        .collect()
}

/// Waits (bounded) for a bot post after the first `after` posts that `f` accepts.
fn wait_post(chat: &TestChat, after: usize, within: Duration, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let posts = bot_posts(chat);
        if let Some(p) = posts.iter().skip(after).find(|p| f(p)) {
            return p.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no such post; bot posts: {posts:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Says `text` as `user` and returns the bot's answer that `f` accepts.
fn ask(chat: &TestChat, user: &str, text: &str, f: impl Fn(&str) -> bool) -> String {
    let n = bot_posts(chat).len();
    chat.post_as(user, "operations", text).unwrap();
    wait_post(chat, n, Duration::from_secs(15), f)
}

fn ctl(dir: &Path, words: &[&str]) -> String {
    let o = Command::new(common::km3mon())
        .args(["ctl", "--out"])
        .arg(dir)
        .args(words)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ctl {words:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn state(dir: &Path, node: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ctl(dir, &["--json", "status", node])).unwrap();
    v["nodes"][0]["state"].as_str().unwrap().to_string()
}

#[test]
fn demo_with_a_silent_dom_and_a_test_chat() {
    let started = Instant::now();
    let dir = common::scratch("alerts-walkthrough", "demo");
    let chat = TestChat::start(Options::default()).unwrap();
    let site = site_config(&dir);
    let run = dir.join("run");
    let port = common::free_port();
    let (port_arg, chat_url) = (port.to_string(), chat.url());
    let demo_started = common::start_demo(
        [
            OsStr::new("--generate-detector"),
            OsStr::new("3x6"),
            OsStr::new("--port"),
            OsStr::new(&port_arg),
            OsStr::new("--chat-url"),
            OsStr::new(&chat_url),
            OsStr::new("--config"),
            site.as_os_str(),
            OsStr::new("--dir"),
            run.as_os_str(),
            OsStr::new("--fault"),
            OsStr::new("dom-silent@5s+25s:2/1"),
            OsStr::new("--fault"),
            OsStr::new("dom-silent@5s+25s:2/2"),
        ],
        &[],
    );
    let _demo = demo_started.guard;
    let written = std::fs::read(run.join("pipeline.toml")).unwrap();

    // The bot answers once it polls.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = bot_posts(&chat).len();
        chat.post_as("bob", "operations", "@monitoring hello")
            .unwrap();
        let answered = (0..20).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            bot_posts(&chat).len() > n
        });
        if answered {
            break;
        }
        assert!(Instant::now() < deadline, "the bot never answered");
    }

    // An operator of the example config sets the shifters; a stranger is refused.
    let r = ask(
        &chat,
        "operator1",
        "@monitoring shifters are cnorris and bspencer",
        |t| t.starts_with("Welcome"),
    );
    assert!(r.contains("@cnorris and @bspencer"), "{r}");
    let f: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("km3mon-shifters.json")).unwrap()).unwrap();
    assert_eq!(f["shifters"], serde_json::json!(["cnorris", "bspencer"]));
    assert_eq!(std::fs::read(run.join("pipeline.toml")).unwrap(), written);
    let r = ask(&chat, "bob", "@monitoring stop dom_rates", |t| {
        t.contains("@bob")
    });
    assert!(r.starts_with("Sorry @bob, only operators may"), "{r}");
    assert!(r.contains("operator1 and operator2"), "{r}");
    assert_eq!(state(&run, "dom_rates"), "RUNNING");

    // Stop and start one monitor with km3mon ctl …
    assert_eq!(
        ctl(&run, &["stop", "dom_rates"]).trim(),
        "monitoring_process:dom_rates: stopped"
    );
    let r = ask(&chat, "cnorris", "@monitoring status dom_rates", |t| {
        t.starts_with("```")
    });
    assert!(r.contains("STOPPED"), "{r}");
    ctl(&run, &["start", "dom_rates"]);
    assert_eq!(state(&run, "dom_rates"), "RUNNING");
    // … and from the chat; a shifter may not.
    let r = ask(&chat, "cnorris", "@monitoring stop dom_rates", |t| {
        t.contains("@cnorris")
    });
    assert!(r.starts_with("Sorry @cnorris, only operators"), "{r}");
    let r = ask(&chat, "operator1", "@monitoring stop dom_rates", |t| {
        t.contains("dom_rates")
    });
    assert_eq!(r, "monitoring_process:dom_rates: stopped");
    assert_eq!(state(&run, "dom_rates"), "STOPPED");
    let r = ask(&chat, "operator1", "@monitoring start dom_rates", |t| {
        t.contains("dom_rates")
    });
    assert_eq!(r, "monitoring_process:dom_rates: started");
    assert_eq!(state(&run, "dom_rates"), "RUNNING");

    // One grouped message for the two silent DOMs of DU 2, naming the
    // shifters set above, and later its "resolved".
    let firing = wait_post(&chat, 0, Duration::from_secs(60), |t| t.contains("FIRING"));
    assert!(firing.starts_with("@cnorris @bspencer: FIRING"), "{firing}");
    assert!(firing.contains("DU 2: 2 DOMs inactive"), "{firing}");
    let resolved = wait_post(&chat, 0, Duration::from_secs(60), |t| {
        t.contains("RESOLVED")
    });
    assert!(
        resolved.contains("DU 2: 2 DOMs sending data again"),
        "{resolved}"
    );
    let alerts: Vec<String> = bot_posts(&chat)
        .into_iter()
        .filter(|t| t.contains("FIRING") || t.contains("RESOLVED"))
        .collect();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "took {:?}",
        started.elapsed()
    );
}
