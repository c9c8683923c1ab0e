//! The chatbot's authorisation matrix — operator, shifter, stranger × every
//! command — in both modes, each case on a fresh control plane
//! (`pipeline::control::Control`, the one `km3mon ctl` drives):
//!
//! * REST-bot mode: the poller with the real REST client against
//!   `testchat`, a stand-in Rocket.Chat server (no real chat server can
//!   run on a test machine; testchat implements the endpoints used and
//!   records requests);
//! * webhook mode: `POST /chat/command` of the real web server with the
//!   outgoing webhook's JSON.
//!
//! A refused command must change nothing (node states, restarts,
//! silences, shifters); an allowed control command must change something.
//! Loopback only; every wait is bounded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_matrix::{fresh, observable, MATRIX, USERS};
use messaging::bot::{Bot, Request, Role};
use messaging::config::AlertsConfig;
use testchat::{Options, TestChat};

#[path = "common/chat_matrix.rs"]
mod chat_matrix;
mod common;

fn judge(
    mode: &str,
    (user, role): (&str, Role),
    (cmd, least, changes): (&str, Role, bool),
    reply: &str,
    changed: bool,
) {
    if role >= least {
        assert!(!reply.starts_with("Sorry"), "{mode}: {user} {cmd}: {reply}");
        assert!(!reply.contains("error"), "{mode}: {user} {cmd}: {reply}");
        assert_eq!(changed, changes, "{mode}: {user} {cmd}: {reply}");
    } else {
        assert!(
            reply.starts_with(&format!("Sorry @{user}, only ")) && reply.contains("opal"),
            "{mode}: {user} {cmd}: {reply}"
        );
        assert!(!changed, "{mode}: {user} {cmd} changed something");
    }
}

#[test]
fn matrix_in_rest_mode() {
    let chat = TestChat::start(Options {
        max_page_size: 100,
        ..Options::default()
    })
    .unwrap();
    let cfg: AlertsConfig = toml::from_str(&format!(
        "password = \"monitoring\"\nchannel = \"operations\"\n[chat]\nmode = \"rest\"\nurl = \"{}\"\npoll_interval = 0.02\ntimeout = 5\n",
        chat.url()
    ))
    .unwrap();
    for &(user, role) in USERS {
        for &(cmd, least, changes) in MATRIX {
            let (bot, control, shifters) = fresh();
            let stop = Arc::new(AtomicBool::new(false));
            let (stats, thread) = messaging::poller::start_rest(&cfg, bot, stop.clone()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while stats.polls.load(Ordering::Relaxed) == 0 {
                assert!(Instant::now() < deadline, "the bot never polled");
                std::thread::sleep(Duration::from_millis(5));
            }
            let before = observable(&control, &shifters);
            let sent = chat
                .post_as(user, "operations", &format!("@monitoring {cmd}"))
                .unwrap();
            let reply = loop {
                let msgs = chat.messages("operations");
                if let Some(m) = msgs
                    .iter()
                    .find(|m| m.username == "monitoring" && m.ts > sent.ts)
                {
                    break m.text.clone();
                }
                assert!(Instant::now() < deadline, "{user} {cmd}: no reply");
                std::thread::sleep(Duration::from_millis(5));
            };
            stop.store(true, Ordering::SeqCst);
            thread.join().unwrap();
            let changed = observable(&control, &shifters) != before;
            judge("rest", (user, role), (cmd, least, changes), &reply, changed);
        }
    }
}

/// `POST /chat/command` with a Rocket.Chat outgoing-webhook body.
fn post(port: u16, body: &str) -> (u16, serde_json::Value) {
    let (code, body) = common::http_post(port, "/chat/command", body, "application/json");
    (code, serde_json::from_str(&body).unwrap_or_default())
}

#[test]
fn matrix_in_webhook_mode() {
    let dir = std::env::temp_dir().join(format!("km3mon-chatbot-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = web::WebConfig::for_output(&dir);
    cfg.bind = "127.0.0.1:0".parse().unwrap();
    // The bot of the case at hand; the endpoint asks whichever is current.
    let current: Arc<std::sync::Mutex<Option<Arc<Bot>>>> = Arc::default();
    let c = current.clone();
    let handler: web::CommandHandler = Arc::new(move |r: web::CommandRequest| {
        let bot = c.lock().unwrap().clone()?;
        bot.handle(&Request {
            user: r.user_name,
            channel: r.channel_name,
            text: r.text,
            message_id: r.message_id,
            require_mention: false,
        })
    });
    let extras = web::Extras {
        chat: Some(web::ChatCommands {
            token: Some("tok".into()),
            handler,
        }),
        ..Default::default()
    };
    let server = web::spawn_with(cfg, Arc::new(web::NoPipeline), extras).unwrap();
    let port = server.addr.port();
    for &(user, role) in USERS {
        for &(cmd, least, changes) in MATRIX {
            let (bot, control, shifters) = fresh();
            *current.lock().unwrap() = Some(bot);
            let before = observable(&control, &shifters);
            let body = serde_json::json!({
                "token": "tok", "channel_name": "operations", "user_name": user,
                "text": format!("@monitoring {cmd}"), "message_id": "m1", "bot": false,
            });
            let (code, v) = post(port, &body.to_string());
            assert_eq!(code, 200, "{user} {cmd}: {v}");
            let reply = v["text"].as_str().unwrap_or_default();
            let changed = observable(&control, &shifters) != before;
            judge(
                "webhook",
                (user, role),
                (cmd, least, changes),
                reply,
                changed,
            );
        }
    }
    server.stop();
}
