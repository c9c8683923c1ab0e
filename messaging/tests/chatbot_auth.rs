//! The chatbot's authorisation matrix: operator, shifter and stranger ×
//! every command, against the real control plane
//! (`pipeline::control::Control`, the one `km3mon ctl` drives). Before and
//! after each command the observable state (node states, restarts,
//! silences, shifters) is compared: a refused command must change nothing,
//! an allowed control command must change it.

#[path = "../../tests/common/chat_matrix.rs"]
mod chat_matrix;

use chat_matrix::{fresh as bot, observable, MATRIX, USERS};
use messaging::bot::{Bot, Request, Role};

fn say(bot: &Bot, user: &str, text: &str) -> String {
    bot.handle(&Request {
        user: user.into(),
        channel: "operations".into(),
        text: format!("@monitoring {text}"),
        message_id: None,
        require_mention: true,
    })
    .expect("a reply")
}

#[test]
fn authorisation_matrix() {
    for &(user, role) in USERS {
        for &(cmd, least, changes) in MATRIX {
            let (bot, control, shifters) = bot();
            assert_eq!(bot.role(user), role);
            let before = observable(&control, &shifters);
            let reply = say(&bot, user, cmd);
            let after = observable(&control, &shifters);
            if role >= least {
                assert!(!reply.starts_with("Sorry"), "{user} {cmd}: {reply}");
                assert!(!reply.contains("error"), "{user} {cmd}: {reply}");
                assert_eq!(before != after, changes, "{user} {cmd}: {before} → {after}");
            } else {
                assert!(
                    reply.starts_with(&format!("Sorry @{user}, only ")),
                    "{user} {cmd}: {reply}"
                );
                // The refusal says who may.
                assert!(reply.contains("opal"), "{reply}");
                if least == Role::Shifter {
                    assert!(reply.contains("bobby"), "{reply}");
                }
                assert_eq!(before, after, "{user} {cmd} changed something");
            }
        }
    }
}

#[test]
fn replies() {
    let (bot, control, _) = bot();
    assert_eq!(say(&bot, "bob", "hey"), "hello @bob");
    assert_eq!(say(&bot, "bob", ""), "Here I am");
    assert_eq!(
        say(&bot, "bob", "frobnicate"),
        "@bob: command not found, try help"
    );
    assert!(say(&bot, "bob", "help").contains("@monitoring"));
    let status = say(&bot, "bobby", "status");
    assert!(
        status.starts_with("```\n") && status.ends_with("\n```"),
        "{status}"
    );
    assert!(
        status.contains("monitoring_process:dom_rates") && status.contains("STOPPED"),
        "{status}"
    );
    let r = say(&bot, "opal", "stop dom_rates");
    assert!(control.node("dom_rates").unwrap().is_stopped(), "{r}");
    assert!(say(&bot, "opal", "stop no_such_node").starts_with("@opal: "));
    assert!(say(&bot, "opal", "supervisorctl shutdown").contains("not available"));
    assert!(say(&bot, "opal", "stop").starts_with("Usage"));
    assert!(say(&bot, "opal", "shifters are").contains("Usage"));
    assert!(say(&bot, "opal", "shifters are a;b").contains("not a chat user name"));
    let r = say(&bot, "opal", "shifters are cnorris, bspencer");
    assert!(r.contains("@cnorris and @bspencer"), "{r}");
    assert_eq!(
        say(&bot, "cnorris", "shifters"),
        "The shifters are cnorris and bspencer."
    );
    // bobby was replaced: no longer a shifter.
    assert!(say(&bot, "bobby", "status").starts_with("Sorry @bobby"));
}

#[test]
fn only_the_configured_channel_and_real_mentions_are_served() {
    let (bot, control, shifters) = bot();
    let before = observable(&control, &shifters);
    let req = |channel: &str, text: &str, mention: bool| Request {
        user: "opal".into(),
        channel: channel.into(),
        text: text.into(),
        message_id: Some("m1".into()),
        require_mention: mention,
    };
    assert_eq!(bot.handle(&req("random", "@monitoring stop x", true)), None);
    assert_eq!(bot.handle(&req("operations", "stop x", true)), None);
    assert_eq!(
        bot.handle(&req("operations", "@monitoringtest stop x", true)),
        None
    );
    assert_eq!(observable(&control, &shifters), before);
    // A webhook fires on its trigger word: the mention is optional.
    assert_eq!(
        bot.handle(&req("#operations", "hi", false)).as_deref(),
        Some("hello @opal")
    );
    // REST mode tags messages with the room id.
    assert_eq!(bot.handle(&req("ROOM1", "@monitoring hi", true)), None);
    bot.set_room_id("ROOM1");
    assert_eq!(
        bot.handle(&req("ROOM1", "@monitoring hi", true)).as_deref(),
        Some("hello @opal")
    );
    // Its own messages never.
    let mut own = req("operations", "@monitoring hi", true);
    own.user = "monitoring".into();
    assert_eq!(bot.handle(&own), None);
}

/// `status` shows the detector's table (when the graph keeps one, the
/// `detector_state` node) above the node table; `status NODE` only the node.
#[test]
fn status_shows_the_detector_table_first() {
    let (bot, control, _) = bot();
    let plain = say(&bot, "bobby", "status");
    assert!(!plain.contains("detector"), "{plain}");
    let health = control.attach_health();
    let mut snap = pipeline::health::HealthSnapshot {
        time_utc: Some(1_704_067_200.0),
        conditions: vec!["dom_inactive".into()],
        layout: vec![(5, 1, 11), (5, 2, 12)],
        ..Default::default()
    };
    snap.by_du
        .entry(5)
        .or_default()
        .insert("dom_inactive".into(), 2);
    snap.totals.insert("dom_inactive".into(), 2);
    health.publish(snap);
    let reply = say(&bot, "bobby", "status");
    let detector = reply
        .find("detector at 2024-01-01T00:00:00Z")
        .expect(&reply);
    let nodes = reply.find("dom_rates").expect(&reply);
    assert!(detector < nodes, "{reply}");
    assert!(
        reply
            .lines()
            .any(|l| l.starts_with("DU 5") && l.ends_with(" 2")),
        "{reply}"
    );
    assert!(!say(&bot, "bobby", "status dom_rates").contains("detector at"));
}

/// `latency` answers with what `km3mon ctl latency` prints (the control
/// plane's `latency` command), in a code block; it takes no arguments.
#[test]
fn latency_shows_what_ctl_latency_shows() {
    let (bot, control, _) = bot();
    let (_, metrics) = control
        .nodes_with_metrics()
        .into_iter()
        .find(|(n, _)| n.name == "dom_rates")
        .unwrap();
    // A frontier one minute behind the wall clock: one lag sample of 60 s.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    metrics.set_frontier(Some(pipeline::item::time_of_ns(
        (now_s - 60) * 1_000_000_000,
    )));
    let ctl = control.execute("latency", "test");
    assert!(ctl.ok, "{}", ctl.text);
    assert!(ctl.text.contains("dom_rates"), "{}", ctl.text);
    let reply = say(&bot, "bobby", "latency");
    assert_eq!(reply, format!("```\n{}\n```", ctl.text.trim_end()));
    assert!(say(&bot, "bob", "latency").starts_with("Sorry @bob, only shifters"));
    assert_eq!(
        say(&bot, "bobby", "latency dom_rates"),
        "Usage: latency (no arguments)"
    );
    assert!(say(&bot, "bob", "help").contains("latency "));
}
