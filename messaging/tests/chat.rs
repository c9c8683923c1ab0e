//! The chat sinks against `testchat`, a local stand-in Rocket.Chat server.
//!
//! No real Rocket.Chat server can run here, so `testchat` implements the
//! endpoints km3mon uses (login, `channels.list` with paging,
//! `channels.history`, `chat.postMessage`, the incoming webhook), records
//! every request for the assertions below, and fails on demand (slow
//! answers, HTTP 500, expired tokens). "Server down" is a port nobody
//! listens on. Everything is real HTTP over 127.0.0.1.

use std::time::Duration;

use messaging::chat::rest::{Credentials, RestClient};
use messaging::chat::webhook::WebhookClient;
use messaging::config::AlertsConfig;
use messaging::deliver::{Delivery, RetryPolicy, SubmitError};
use messaging::message::{Outcome, Outgoing, SendError, Severity, Transport};
use testchat::{Options, TestChat};

const WAIT: Duration = Duration::from_secs(30);

fn bot(chat: &TestChat, timeout: Duration) -> RestClient {
    RestClient::with_credentials(
        &chat.url(),
        Credentials::Password {
            user: "monitoring".into(),
            password: "monitoring".into(),
        },
        "operations",
        timeout,
    )
    .unwrap()
}

fn outgoing(id: u64, sink: &str, text: &str) -> Outgoing {
    Outgoing {
        id,
        route: "test".into(),
        sink: sink.into(),
        severity: Severity::Critical,
        resolved: false,
        keys: vec![format!("dom_inactive:{id}")],
        data_time_ns: 0,
        subject: format!("subject {id}"),
        text: text.into(),
    }
}

/// Retries quickly: tests check counts, not waiting times.
fn fast(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        first_wait: Duration::from_millis(20),
        max_wait: Duration::from_millis(100),
        max_attempts,
        max_age: Duration::from_secs(60),
    }
}

fn next_outcome(d: &Delivery) -> Outcome {
    d.outcomes().recv_timeout(WAIT).expect("an outcome")
}

fn stats(d: &Delivery, sink: &str) -> messaging::deliver::SinkStats {
    d.stats().into_iter().find(|s| s.sink == sink).unwrap()
}

#[test]
fn login_then_channel_found_on_a_later_page() {
    let chat = TestChat::start(Options::default()).unwrap();
    let mut c = bot(&chat, WAIT);
    let id = c.channel_id("operations").unwrap();
    assert_eq!(id, chat.room_id("operations"));
    assert_eq!(c.channel_id("no-such-channel").unwrap(), None);

    let reqs = chat.requests();
    let login = &reqs[0];
    assert_eq!(login.path, "/api/v1/login");
    assert!(login
        .content_type
        .as_deref()
        .unwrap()
        .starts_with("application/x-www-form-urlencoded"));
    assert!(login.body.contains("username=monitoring"), "{}", login.body);
    let lists: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/api/v1/channels.list")
        .collect();
    // The server hands out 2 channels a page; `operations` is the 4th.
    assert!(lists.len() >= 2, "{lists:?}");
    assert!(lists[1].query.contains("offset=2"), "{:?}", lists[1]);
    assert!(lists
        .iter()
        .all(|r| r.auth_token.is_some() && r.user_id.as_deref() == Some("u-monitoring")));
    assert_eq!(chat.logins(), 1);
}

#[test]
fn login_with_an_email_address_uses_the_user_field() {
    let opts = Options {
        users: vec![("bot@example.org".into(), "pw".into())],
        ..Options::default()
    };
    let chat = TestChat::start(opts).unwrap();
    let mut c = RestClient::with_credentials(
        &chat.url(),
        Credentials::Password {
            user: "bot@example.org".into(),
            password: "pw".into(),
        },
        "operations",
        WAIT,
    )
    .unwrap();
    c.login().unwrap();
    assert!(
        chat.requests()[0]
            .body
            .starts_with("user=bot%40example.org"),
        "{:?}",
        chat.requests()[0]
    );
}

#[test]
fn wrong_password_is_permanent() {
    let chat = TestChat::start(Options::default()).unwrap();
    let mut c = RestClient::with_credentials(
        &chat.url(),
        Credentials::Password {
            user: "monitoring".into(),
            password: "wrong".into(),
        },
        "operations",
        WAIT,
    )
    .unwrap();
    match c.post("operations", "x") {
        Err(SendError::Permanent(e)) => assert!(e.contains("401"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(chat.messages("operations").is_empty());
}

#[test]
fn posts_land_in_the_history_and_history_pages_by_oldest() {
    let chat = TestChat::start(Options::default()).unwrap();
    let mut c = bot(&chat, WAIT);
    c.post("operations", "DU 3 silent").unwrap();
    let stored = chat.messages("operations");
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].username.as_str(), stored[0].text.as_str()),
        ("monitoring", "DU 3 silent")
    );
    let post = chat
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/chat.postMessage")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"channel": "operations", "text": "DU 3 silent"})
    );

    let room = c.channel_id("operations").unwrap().unwrap();
    chat.post_as("jdoe", "operations", "@monitoring status");
    let all = c.history(&room, None).unwrap();
    assert_eq!(
        all.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["DU 3 silent", "@monitoring status"]
    );
    assert_eq!(all[1].username, "jdoe");
    assert_eq!(all[1].room_id, room);
    assert_eq!(all[1].ts.len(), "2026-01-01T00:00:00.000Z".len());

    // `oldest` is exclusive: only what came after.
    chat.post_as("cnorris", "operations", "@monitoring hi");
    let newer = c.history(&room, Some(&all[1].ts)).unwrap();
    assert_eq!(newer.len(), 1);
    assert_eq!(
        (newer[0].username.as_str(), newer[0].text.as_str()),
        ("cnorris", "@monitoring hi")
    );
    assert!(c.history(&room, Some(&newer[0].ts)).unwrap().is_empty());
    // Posting by room id works too (how the chatbot replies).
    c.post(&room, "hello @cnorris").unwrap();
    assert_eq!(
        chat.messages("operations").last().unwrap().text,
        "hello @cnorris"
    );
}

#[test]
fn expired_token_means_one_fresh_login_and_the_post_goes_through() {
    let chat = TestChat::start(Options::default()).unwrap();
    let mut c = bot(&chat, WAIT);
    c.post("operations", "first").unwrap();
    chat.expire_tokens();
    c.post("operations", "second").unwrap();
    assert_eq!(chat.logins(), 2);
    assert_eq!(c.logins(), 2);
    let texts: Vec<_> = chat
        .messages("operations")
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["first", "second"]);
    let paths: Vec<_> = chat.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/login",
            "/api/v1/chat.postMessage",
            "/api/v1/chat.postMessage",
            "/api/v1/login",
            "/api/v1/chat.postMessage"
        ]
    );
}

#[test]
fn a_refused_personal_access_token_is_permanent() {
    let chat = TestChat::start(Options::default()).unwrap();
    let mut c = RestClient::with_credentials(
        &chat.url(),
        Credentials::Token {
            token: "nope".into(),
            user_id: "u-monitoring".into(),
        },
        "operations",
        WAIT,
    )
    .unwrap();
    assert!(matches!(
        c.post("operations", "x"),
        Err(SendError::Permanent(_))
    ));
    let r = &chat.requests()[0];
    assert_eq!(
        (r.auth_token.as_deref(), r.user_id.as_deref()),
        (Some("nope"), Some("u-monitoring"))
    );
    assert_eq!(chat.logins(), 0);
}

#[test]
fn http_500_is_retried_then_delivered() {
    let chat = TestChat::start(Options::default()).unwrap();
    let d = Delivery::new(vec![(Box::new(bot(&chat, WAIT)), 10)], fast(5));
    chat.fail_next(2);
    d.submit(outgoing(1, "chat", "trigger rate is 0 Hz"))
        .unwrap();
    let o = next_outcome(&d);
    assert!(o.delivered, "{o:?}");
    assert_eq!((o.id, o.attempts), (1, 3));
    let s = stats(&d, "chat");
    assert_eq!((s.delivered, s.failed, s.retries, s.dropped), (1, 0, 2, 0));
    assert!(s.last_error.unwrap().contains("500"));
    assert_eq!(chat.messages("operations").len(), 1);
}

#[test]
fn slow_server_times_out_and_the_retry_delivers() {
    let chat = TestChat::start(Options::default()).unwrap();
    let d = Delivery::new(
        vec![(Box::new(bot(&chat, Duration::from_secs(1))), 10)],
        fast(5),
    );
    // The login answers late; the client gives up on it and tries again.
    chat.slow_next(1, Duration::from_secs(3));
    d.submit(outgoing(7, "chat", "time sync lost")).unwrap();
    let o = next_outcome(&d);
    assert!(o.delivered, "{o:?}");
    assert_eq!(o.attempts, 2);
    let s = stats(&d, "chat");
    assert_eq!(s.retries, 1);
    assert!(s.last_error.unwrap().to_lowercase().contains("timeout"));
    assert_eq!(chat.messages("operations").len(), 1);
}

#[test]
fn server_down_is_counted_as_failed_after_the_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = RestClient::with_credentials(
        &format!("http://127.0.0.1:{port}"),
        Credentials::Password {
            user: "monitoring".into(),
            password: "pw".into(),
        },
        "operations",
        Duration::from_secs(2),
    )
    .unwrap();
    let d = Delivery::new(vec![(Box::new(c), 10)], fast(3));
    d.submit(outgoing(1, "chat", "nobody hears this")).unwrap();
    let o = next_outcome(&d);
    assert!(!o.delivered);
    assert_eq!(o.attempts, 3);
    assert!(
        o.error
            .as_deref()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{o:?}"
    );
    let s = stats(&d, "chat");
    assert_eq!((s.delivered, s.failed, s.retries, s.queued), (0, 1, 2, 0));
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking_the_caller() {
    let chat = TestChat::start(Options::default()).unwrap();
    // Every answer takes 3 s: the first message occupies the sink thread.
    chat.set_delay(Duration::from_secs(3));
    let d = Delivery::new(vec![(Box::new(bot(&chat, WAIT)), 2)], fast(2));
    let results: Vec<_> = (0..10)
        .map(|i| d.submit(outgoing(i, "chat", "x")))
        .collect();
    // All ten submits returned while the server still sat on the first request.
    assert_eq!(stats(&d, "chat").delivered, 0);
    let dropped = results
        .iter()
        .filter(|r| matches!(r, Err(SubmitError::QueueFull(_))))
        .count();
    // Queue of 2, plus possibly one already taken by the sink thread.
    assert!((7..=8).contains(&dropped), "{results:?}");
    let s = stats(&d, "chat");
    assert_eq!(s.dropped as usize, dropped);
    assert_eq!(s.accepted as usize, 10 - dropped);
    // Dropped messages are reported as outcomes too (for alerts.jsonl).
    let refused: Vec<_> = d
        .outcomes()
        .try_iter()
        .filter(|o| !o.delivered && o.attempts == 0)
        .collect();
    assert_eq!(refused.len(), dropped);
    assert!(refused[0].error.as_deref().unwrap().contains("queue"));
    assert!(matches!(
        d.submit(outgoing(99, "pager", "x")),
        Err(SubmitError::UnknownSink(_))
    ));
    // Shutdown waits no longer than asked, even with the sink stuck.
    let s = d.shutdown(Duration::from_millis(100));
    assert_eq!(s[0].delivered, 0);
}

#[test]
fn shutdown_drains_the_queue() {
    let chat = TestChat::start(Options::default()).unwrap();
    let d = Delivery::new(vec![(Box::new(bot(&chat, WAIT)), 10)], fast(3));
    for i in 0..4 {
        d.submit(outgoing(i, "chat", &format!("message {i}")))
            .unwrap();
    }
    let s = d.shutdown(WAIT);
    assert_eq!((s[0].delivered, s[0].failed, s[0].queued), (4, 0, 0));
    let texts: Vec<_> = chat
        .messages("operations")
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["message 0", "message 1", "message 2", "message 3"]);
}

#[test]
fn webhook_posts_text_json_to_the_hook() {
    let chat = TestChat::start(Options::default()).unwrap();
    let mut w = WebhookClient::with_url(&chat.hook_url(), WAIT).unwrap();
    w.send(&outgoing(1, "chat", "DU 2: 18 DOMs silent"))
        .unwrap();
    let m = chat.messages("operations");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].text, "DU 2: 18 DOMs silent");
    let r = chat.requests().pop().unwrap();
    assert_eq!(r.path, "/hooks/km3mon/testtoken");
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap(),
        serde_json::json!({"text": "DU 2: 18 DOMs silent"})
    );

    let wrong = chat.hook_url().replace("testtoken", "guess");
    let mut w = WebhookClient::with_url(&wrong, WAIT).unwrap();
    assert!(matches!(w.post("x"), Err(SendError::Permanent(_))));
    chat.fail_next(1);
    let mut w = WebhookClient::with_url(&chat.hook_url(), WAIT).unwrap();
    assert!(matches!(w.post("x"), Err(SendError::Retryable(_))));
}

#[test]
fn sinks_built_from_the_site_config() {
    let chat = TestChat::start(Options::default()).unwrap();
    let toml = format!(
        "enabled = true\nbotname = \"monitoring\"\npassword = \"monitoring\"\nchannel = \"operations\"\n\
         [chat]\nmode = \"rest\"\nurl = \"{}/\"\ntimeout = 5\nqueue = 4\n",
        chat.url()
    );
    let alerts: AlertsConfig = toml::from_str(&toml).unwrap();
    let d = Delivery::from_config(&alerts, fast(3)).unwrap();
    assert_eq!(d.sink_names(), ["chat", "log"]);
    d.submit(outgoing(1, "chat", "from the config")).unwrap();
    d.submit(outgoing(2, "log", "to the log")).unwrap();
    let mut got: Vec<_> = (0..2).map(|_| next_outcome(&d)).collect();
    got.sort_by_key(|o| o.id);
    assert!(got.iter().all(|o| o.delivered), "{got:?}");
    assert_eq!(chat.messages("operations")[0].text, "from the config");
}
