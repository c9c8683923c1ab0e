//! The chatbot's webhook mode end to end: `km3mon demo` with
//! `[Alerts.chat] mode = "webhook"` answers outgoing-webhook posts on the
//! web server's `POST /chat/command` (JSON as Rocket.Chat sends it, a form
//! as Mattermost and Slack may), verifies the token, serves only the
//! configured channel, and steers the live graph through the same control
//! plane as `km3mon ctl`. No chat server is involved: the test plays the
//! chat server's part with plain HTTP requests on 127.0.0.1.
//!
//! Every wait is bounded.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN_VAR: &str = "KM3MON_TEST_CHAT_COMMAND_TOKEN";
const TOKEN: &str = "s3cret-token-of-the-outgoing-webhook";

use common::http_post as post;

/// A Rocket.Chat outgoing-webhook post (JSON); `None` fields are left out.
fn rocket(
    port: u16,
    token: Option<&str>,
    channel: &str,
    user: &str,
    text: &str,
) -> (u16, serde_json::Value) {
    let mut v = serde_json::json!({
        "bot": false,
        "channel_id": "GENERAL-ID",
        "channel_name": channel,
        "message_id": format!("m-{user}-{}", text.len()),
        "timestamp": "2026-11-25T10:00:00.000Z",
        "user_id": format!("u-{user}"),
        "user_name": user,
        "text": text,
        "siteUrl": "http://chat.invalid",
    });
    if let Some(t) = token {
        v["token"] = t.into();
    }
    let (code, body) = post(port, "/chat/command", &v.to_string(), "application/json");
    (
        code,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn text(r: &(u16, serde_json::Value)) -> String {
    assert_eq!(r.0, 200, "{r:?}");
    r.1["text"].as_str().unwrap_or_default().to_string()
}

fn ctl_status(dir: &Path, node: &str) -> serde_json::Value {
    let o = Command::new(common::km3mon())
        .args(["ctl", "--out"])
        .arg(dir)
        .args(["--json", "status", node])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["nodes"][0].clone()
}

#[test]
fn webhook_mode_in_a_live_demo() {
    let dir = common::scratch("chatbot-e2e", "webhook");
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml.example"),
    )
    .unwrap();
    let mut doc: toml::Table = toml::from_str(&example).unwrap();
    // Alerts would go to its incoming webhook (alerts stay off here).
    let chat = testchat::TestChat::start(testchat::Options::default()).unwrap();
    let alerts: toml::Table = toml::from_str(&format!(
        r#"
botname = "monitoring"
channel = "operations"
operators = ["opal"]
shifters = ["bobby"]
[chat]
mode = "webhook"
command_token_env = "{TOKEN_VAR}"
webhook_url = "{hook}"
"#,
        hook = chat.hook_url()
    ))
    .unwrap();
    // The example's other [Alerts] keys stay: the graph refers to them.
    let section = doc
        .get_mut("Alerts")
        .and_then(|v| v.as_table_mut())
        .unwrap();
    section.extend(alerts);
    let site = dir.join("site.toml");
    std::fs::write(&site, toml::to_string(&doc).unwrap()).unwrap();

    let port = common::free_port();
    let run = dir.join("run");
    let port_arg = port.to_string();
    let started = common::start_demo(
        [
            OsStr::new("--generate-detector"),
            OsStr::new("3x6"),
            OsStr::new("--port"),
            OsStr::new(&port_arg),
            OsStr::new("--config"),
            site.as_os_str(),
            OsStr::new("--dir"),
            run.as_os_str(),
        ],
        &[(TOKEN_VAR, TOKEN)],
    );
    let _demo = started.guard;
    let written = std::fs::read(run.join("pipeline.toml")).unwrap();

    // The token is the credential: no Basic auth on this path, but nothing
    // without the right token.
    let (code, _) = post(port, "/api/control", "status", "text/plain");
    assert_eq!(code, 401, "the rest of the server asks for Basic auth");
    assert_eq!(
        rocket(port, Some("wrong"), "operations", "opal", "stop dom_rates").0,
        401
    );
    assert_eq!(
        rocket(port, None, "operations", "opal", "stop dom_rates").0,
        401
    );
    assert_eq!(
        rocket(
            port,
            Some(&TOKEN[..TOKEN.len() - 1]),
            "operations",
            "opal",
            "hi"
        )
        .0,
        401
    );
    // Another channel: answered with nothing.
    let r = rocket(
        port,
        Some(TOKEN),
        "random",
        "opal",
        "@monitoring stop dom_rates",
    );
    assert_eq!(r, (200, serde_json::json!({})));
    assert_eq!(ctl_status(&run, "dom_rates")["state"], "RUNNING");

    let t = text(&rocket(
        port,
        Some(TOKEN),
        "operations",
        "bob",
        "@monitoring status",
    ));
    assert!(
        t.starts_with("Sorry @bob, only shifters and operators"),
        "{t}"
    );
    assert!(t.contains("bobby") && t.contains("opal"), "{t}");
    assert_eq!(
        text(&rocket(
            port,
            Some(TOKEN),
            "operations",
            "bob",
            "@monitoring hello"
        )),
        "hello @bob"
    );

    // Mattermost posts a form.
    let form = format!(
        "token={TOKEN}&team_id=t1&team_domain=km3net&channel_id=c1&channel_name=operations&timestamp=1764064800&user_id=u2&user_name=bobby&post_id=p1&text=%40monitoring+status&trigger_word=%40monitoring"
    );
    let (code, body) = post(
        port,
        "/chat/command",
        &form,
        "application/x-www-form-urlencoded",
    );
    assert_eq!(code, 200, "{body}");
    let t: serde_json::Value = serde_json::from_str(&body).unwrap();
    let t = t["text"].as_str().unwrap();
    assert!(
        t.starts_with("```") && t.contains("monitoring_process:dom_rates"),
        "{t}"
    );
    // `latency`: what `km3mon ctl latency` prints, in a code block (the
    // rows of one reply are all in the ctl table asked just after).
    let deadline = Instant::now() + Duration::from_secs(30);
    let t = loop {
        let t = text(&rocket(
            port,
            Some(TOKEN),
            "operations",
            "bobby",
            "@monitoring latency",
        ));
        if t.contains("node_frontier_lag_seconds") || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        t.starts_with("```\nDISTRIBUTION") && t.ends_with("\n```"),
        "{t}"
    );
    assert!(t.contains("node_frontier_lag_seconds"), "{t}");
    let o = Command::new(common::km3mon())
        .args(["ctl", "--out"])
        .arg(&run)
        .arg("latency")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ctl = String::from_utf8_lossy(&o.stdout).into_owned();
    // Distribution and labels (the counts move between the two asks).
    let columns = |l: &str| {
        let w: Vec<&str> = l.split_whitespace().collect();
        let labels = w.get(1).filter(|x| x.contains('=') || **x == "LABELS");
        format!("{} {}", w.first().unwrap_or(&""), labels.unwrap_or(&""))
    };
    let ctl_rows: Vec<String> = ctl.lines().map(columns).collect();
    for line in t.lines().filter(|l| !l.starts_with("```")) {
        assert!(ctl_rows.contains(&columns(line)), "{line} not in\n{ctl}");
    }
    let t = text(&rocket(
        port,
        Some(TOKEN),
        "operations",
        "bobby",
        "@monitoring stop dom_rates",
    ));
    assert!(t.starts_with("Sorry @bobby, only operators"), "{t}");
    assert_eq!(ctl_status(&run, "dom_rates")["state"], "RUNNING");

    // The operator stops and starts a monitor of the live graph.
    let t = text(&rocket(
        port,
        Some(TOKEN),
        "operations",
        "opal",
        "@monitoring stop dom_rates",
    ));
    assert_eq!(t, "monitoring_process:dom_rates: stopped");
    let before = ctl_status(&run, "dom_rates");
    assert_eq!(before["state"], "STOPPED");
    // Its input is dropped (and counted) while stopped.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = ctl_status(&run, "dom_rates");
        let dropped = |v: &serde_json::Value| v["drops_by_reason"]["stopped"].as_u64().unwrap_or(0);
        if dropped(&now) > dropped(&before) {
            assert_eq!(now["records_in"], before["records_in"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no input dropped while stopped: {now}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = text(&rocket(
        port,
        Some(TOKEN),
        "operations",
        "opal",
        "supervisorctl start dom_rates",
    ));
    assert_eq!(t, "monitoring_process:dom_rates: started");
    assert_eq!(ctl_status(&run, "dom_rates")["state"], "RUNNING");

    // Shifters go to the state file beside the site config, never into it.
    let t = text(&rocket(
        port,
        Some(TOKEN),
        "operations",
        "opal",
        "@monitoring shifters are cnorris and bspencer",
    ));
    assert!(t.starts_with("Welcome @cnorris and @bspencer"), "{t}");
    let f: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("km3mon-shifters.json")).unwrap()).unwrap();
    assert_eq!(f["shifters"], serde_json::json!(["cnorris", "bspencer"]));
    assert_eq!(f["set_by"], "opal");
    assert_eq!(std::fs::read(run.join("pipeline.toml")).unwrap(), written);
    let t = text(&rocket(
        port,
        Some(TOKEN),
        "operations",
        "cnorris",
        "@monitoring silences",
    ));
    assert_eq!(t, "no active silences");
}

/// Without a configured token the endpoint refuses everything, and a
/// server without a chatbot has no such endpoint.
#[test]
fn the_endpoint_needs_a_configured_token() {
    let dir = common::scratch("chatbot-e2e", "notoken");
    let mut cfg = web::WebConfig::for_output(&dir);
    cfg.bind = "127.0.0.1:0".parse().unwrap();
    let called = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c = called.clone();
    let handler: web::CommandHandler = Arc::new(move |_| {
        c.store(true, std::sync::atomic::Ordering::SeqCst);
        Some("should not happen".into())
    });
    let extras = web::Extras {
        chat: Some(web::ChatCommands {
            token: None,
            handler,
        }),
        ..Default::default()
    };
    let server = web::spawn_with(cfg.clone(), Arc::new(web::NoPipeline), extras).unwrap();
    let port = server.addr.port();
    let body = r#"{"token":"","channel_name":"operations","user_name":"opal","text":"stop all"}"#;
    assert_eq!(post(port, "/chat/command", body, "application/json").0, 503);
    let body = r#"{"token":"x","channel_name":"operations","user_name":"opal","text":"stop all"}"#;
    assert_eq!(post(port, "/chat/command", body, "application/json").0, 503);
    assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
    server.stop();

    let server = web::spawn(cfg, Arc::new(web::NoPipeline)).unwrap();
    assert_eq!(
        post(
            server.addr.port(),
            "/chat/command",
            body,
            "application/json"
        )
        .0,
        404
    );
}
