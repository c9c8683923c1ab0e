//! The chatbot in REST-bot mode end to end: the real REST client polls a
//! channel of `testchat`, a stand-in Rocket.Chat server (no real chat
//! server can run on a test machine; testchat implements the endpoints
//! used — login, channels.list with paging, channels.history,
//! chat.postMessage — and records requests), and the bot acts on the real
//! control plane (`pipeline::control::Control`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use messaging::bot::Bot;
use messaging::config::AlertsConfig;
use messaging::shifters::{Shifters, ShiftersFile};
use pipeline::control::Control;
use pipeline::operator::Role as NodeRole;
use pipeline::runtime::metrics::Metrics;
use testchat::{Options, TestChat};

const SITE: &str = r#"# The site config: the bot must never rewrite it.
[Alerts]
enabled = true
botname = "monitoring"
password = "monitoring"   # testchat's default bot account
channel = "operations"
operators = ["opal"]
shifters = "bobby"        # the original's one-string form

[Alerts.chat]
mode = "rest"
url = "URL"
poll_interval = 0.05
timeout = 5.0
"#;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("km3mon-chatbot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn alerts(text: &str) -> AlertsConfig {
    let t: toml::Table = toml::from_str(text).unwrap();
    t["Alerts"].clone().try_into().unwrap()
}

/// Waits (bounded) until the channel has a message from the bot matching `f`.
fn reply(chat: &TestChat, after: usize, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let msgs = chat.messages("operations");
        if let Some(m) = msgs[after.min(msgs.len())..]
            .iter()
            .find(|m| m.username == "monitoring" && f(&m.text))
        {
            return m.text.clone();
        }
        if Instant::now() > deadline {
            let reqs = chat.requests();
            let tail = &reqs[reqs.len().saturating_sub(6)..];
            panic!("no such reply; channel: {msgs:#?}\nlast requests: {tail:#?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn bot_replies(chat: &TestChat) -> usize {
    chat.messages("operations")
        .iter()
        .filter(|m| m.username == "monitoring")
        .count()
}

#[test]
fn rest_bot_against_testchat() {
    let dir = scratch("rest");
    let chat = TestChat::start(Options::default()).unwrap();
    let site_text = SITE.replace("URL", &chat.url());
    let site = dir.join("pipeline.toml");
    std::fs::write(&site, &site_text).unwrap();
    let cfg = alerts(&site_text);

    let control = Arc::new(Control::new(None, None));
    let m = Metrics::default();
    control.register("daq", "ligier", "daq", NodeRole::Source, m.node("daq"));
    control.register(
        "dom_rates",
        "dom_rates",
        "monitoring_process",
        NodeRole::Transform,
        m.node("dom_rates"),
    );
    let shifters = Shifters::open(Shifters::path_for(Some(&site), None), &cfg.shifters);
    let bot = Arc::new(Bot::new(
        &cfg.botname,
        &cfg.channel,
        cfg.operators.clone(),
        shifters.clone(),
        control.clone(),
    ));

    // Said before the bot started: not for it.
    chat.post_as("opal", "operations", "@monitoring stop dom_rates");
    let stop = Arc::new(AtomicBool::new(false));
    let (stats, thread) = messaging::poller::start_rest(&cfg, bot, stop.clone()).unwrap();
    // What is said before the first poll counts as backlog too.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.polls.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the bot never polled");
        std::thread::sleep(Duration::from_millis(10));
    }

    let n = chat.messages("operations").len();
    chat.post_as("bob", "operations", "@monitoring status");
    let r = reply(&chat, n, |t| t.contains("@bob"));
    assert!(
        r.starts_with("Sorry @bob, only shifters and operators"),
        "{r}"
    );
    assert!(r.contains("bobby") && r.contains("opal"), "{r}");
    assert!(
        !control.node("dom_rates").unwrap().is_stopped(),
        "the backlog was obeyed"
    );

    let n = chat.messages("operations").len();
    chat.post_as("bobby", "operations", "@monitoring status");
    let r = reply(&chat, n, |t| t.starts_with("```"));
    assert!(
        r.contains("monitoring_process:dom_rates") && r.contains("RUNNING"),
        "{r}"
    );
    let n = chat.messages("operations").len();
    chat.post_as("bobby", "operations", "@monitoring stop dom_rates");
    let r = reply(&chat, n, |t| t.contains("@bobby"));
    assert!(r.starts_with("Sorry @bobby, only operators"), "{r}");
    assert!(!control.node("dom_rates").unwrap().is_stopped());

    // An operator stops and starts a node from the chat.
    let n = chat.messages("operations").len();
    chat.post_as("opal", "operations", "@monitoring: stop dom_rates");
    reply(&chat, n, |t| t.contains("dom_rates"));
    assert!(control.node("dom_rates").unwrap().is_stopped());
    let n = chat.messages("operations").len();
    chat.post_as(
        "opal",
        "operations",
        "@Monitoring supervisorctl start dom_rates",
    );
    reply(&chat, n, |t| t.contains("dom_rates"));
    assert!(!control.node("dom_rates").unwrap().is_stopped());

    // Operator sets shifters: the state file is written, pipeline.toml is not.
    let n = chat.messages("operations").len();
    chat.post_as(
        "opal",
        "operations",
        "@monitoring shifters are cnorris and bspencer",
    );
    let r = reply(&chat, n, |t| t.starts_with("Welcome"));
    assert!(r.contains("@cnorris and @bspencer"), "{r}");
    assert_eq!(std::fs::read_to_string(&site).unwrap(), site_text);
    let f: ShiftersFile =
        serde_json::from_slice(&std::fs::read(dir.join("km3mon-shifters.json")).unwrap()).unwrap();
    assert_eq!(f.shifters, ["cnorris", "bspencer"]);
    assert_eq!(f.set_by, "opal");
    assert_eq!(shifters.names(), ["cnorris", "bspencer"]);
    // bobby's shift is over.
    let n = chat.messages("operations").len();
    chat.post_as("bobby", "operations", "@monitoring status");
    assert!(reply(&chat, n, |t| t.contains("@bobby")).starts_with("Sorry"));

    // Other channels and other mentions are ignored; nothing is answered twice.
    let before = bot_replies(&chat);
    chat.post_as("opal", "random", "@monitoring stop dom_rates");
    chat.post_as("opal", "operations", "@monitoringtest stop dom_rates");
    chat.post_as("opal", "operations", "hello everyone");
    let n = chat.messages("operations").len();
    chat.post_as("cnorris", "operations", "@monitoring hi");
    reply(&chat, n, |t| t == "hello @cnorris");
    assert_eq!(
        bot_replies(&chat),
        before + 1,
        "{:#?}",
        chat.messages("operations")
    );
    assert!(chat
        .messages("random")
        .iter()
        .all(|m| m.username != "monitoring"));
    assert!(!control.node("dom_rates").unwrap().is_stopped());

    // Server errors back off and are counted; an expired token is renewed.
    chat.fail_next(3);
    let n = chat.messages("operations").len();
    chat.post_as("cnorris", "operations", "@monitoring hey");
    reply(&chat, n, |t| t == "hello @cnorris");
    assert!(stats.errors.load(Ordering::Relaxed) >= 1);
    let logins = chat.logins();
    chat.expire_tokens();
    let n = chat.messages("operations").len();
    chat.post_as("cnorris", "operations", "@monitoring ciao");
    reply(&chat, n, |t| t == "hello @cnorris");
    assert!(chat.logins() > logins);

    // Every command got exactly one answer.
    let commands = chat
        .messages("operations")
        .iter()
        .filter(|m| {
            m.username != "monitoring"
                && messaging::bot::strip_mention(&m.text, "monitoring").is_some()
        })
        .count();
    // The backlog command before the start is not answered.
    assert_eq!(bot_replies(&chat), commands - 1);
    stop.store(true, Ordering::SeqCst);
    thread.join().unwrap();
}
