//! The chatbot's authorisation matrix: operator, shifter and stranger ×
//! every command. The control side records what reached it, so the test
//! also proves that a refused command never reaches the pipeline.

use std::sync::{Arc, Mutex};

use notify::bot::{Bot, ControlPort, Request, Role};
use notify::shifters::Shifters;

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl ControlPort for Recorder {
    fn status(&self) -> String {
        self.0.lock().unwrap().push("status".into());
        "dom_rates  running".into()
    }
    fn execute(&self, line: &str, user: &str) -> Result<String, String> {
        self.0.lock().unwrap().push(format!("{user} {line}"));
        Ok(format!("done: {line}"))
    }
}

fn bot() -> (Bot, Arc<Recorder>, Arc<Shifters>) {
    let rec = Arc::new(Recorder::default());
    let shifters = Shifters::in_memory(&["bobby"]);
    let bot = Bot::new(
        "monitoring",
        "operations",
        vec!["opal".into()],
        shifters.clone(),
        rec.clone(),
    );
    (bot, rec, shifters)
}

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

/// (command, least role allowed, what reaches the control side)
const MATRIX: &[(&str, Role, Option<&str>)] = &[
    ("help", Role::Stranger, None),
    ("hello", Role::Stranger, None),
    ("CIAO", Role::Stranger, None),
    ("status", Role::Shifter, Some("status")),
    ("supervisorctl status", Role::Shifter, Some("status")),
    ("silences", Role::Shifter, Some("chat:USER silences")),
    ("shifters", Role::Shifter, None),
    ("stop dom_rates", Role::Operator, Some("chat:USER stop dom_rates")),
    ("start monitoring_process:*", Role::Operator, Some("chat:USER start monitoring_process:*")),
    ("restart dom_rates", Role::Operator, Some("chat:USER restart dom_rates")),
    ("supervisorctl stop dom_rates", Role::Operator, Some("chat:USER stop dom_rates")),
    ("silence dom_inactive:* 2h DU3 recabled", Role::Operator, Some("chat:USER silence dom_inactive:* 2h DU3 recabled")),
    ("unsilence dom_inactive:*", Role::Operator, Some("chat:USER unsilence dom_inactive:*")),
    ("shifters are cnorris and bspencer", Role::Operator, None),
];

#[test]
fn authorisation_matrix() {
    for (user, role) in [("opal", Role::Operator), ("bobby", Role::Shifter), ("bob", Role::Stranger)] {
        for &(cmd, least, reaches) in MATRIX {
            let (bot, rec, shifters) = bot();
            assert_eq!(bot.role(user), role);
            let reply = say(&bot, user, cmd);
            let calls = rec.0.lock().unwrap().clone();
            if role >= least {
                assert!(!reply.starts_with("Sorry"), "{user} {cmd}: {reply}");
                let want: Vec<String> = reaches.map(|r| r.replace("USER", user)).into_iter().collect();
                assert_eq!(calls, want, "{user} {cmd}");
            } else {
                assert!(reply.starts_with(&format!("Sorry @{user}, only ")), "{user} {cmd}: {reply}");
                // The refusal says who may.
                assert!(reply.contains("opal"), "{reply}");
                if least == Role::Shifter {
                    assert!(reply.contains("bobby"), "{reply}");
                }
                assert!(calls.is_empty(), "{user} {cmd} reached control: {calls:?}");
            }
            if cmd.starts_with("shifters are") {
                let want: &[&str] = if role == Role::Operator { &["cnorris", "bspencer"] } else { &["bobby"] };
                assert_eq!(shifters.names(), want, "{user} {cmd}");
            }
        }
    }
}

#[test]
fn replies() {
    let (bot, _, _) = bot();
    assert_eq!(say(&bot, "bob", "hey"), "hello @bob");
    assert_eq!(say(&bot, "bob", ""), "Here I am");
    assert_eq!(say(&bot, "bob", "frobnicate"), "@bob: command not found, try help");
    assert!(say(&bot, "bob", "help").contains("@monitoring"));
    assert_eq!(say(&bot, "bobby", "status"), "```\ndom_rates  running\n```");
    assert!(say(&bot, "opal", "supervisorctl shutdown").contains("not available"));
    assert!(say(&bot, "opal", "stop").starts_with("Usage"));
    assert!(say(&bot, "opal", "shifters are").contains("Usage"));
    assert!(say(&bot, "opal", "shifters are a;b").contains("not a chat user name"));
    let r = say(&bot, "opal", "shifters are cnorris, bspencer");
    assert!(r.contains("@cnorris and @bspencer"), "{r}");
    assert_eq!(say(&bot, "cnorris", "shifters"), "The shifters are cnorris and bspencer.");
    // bobby was replaced: no longer a shifter.
    assert!(say(&bot, "bobby", "status").starts_with("Sorry @bobby"));
}

#[test]
fn only_the_configured_channel_and_real_mentions_are_served() {
    let (bot, rec, _) = bot();
    let req = |channel: &str, text: &str, mention: bool| Request {
        user: "opal".into(),
        channel: channel.into(),
        text: text.into(),
        message_id: Some("m1".into()),
        require_mention: mention,
    };
    assert_eq!(bot.handle(&req("random", "@monitoring stop x", true)), None);
    assert_eq!(bot.handle(&req("operations", "stop x", true)), None);
    assert_eq!(bot.handle(&req("operations", "@monitoringtest stop x", true)), None);
    assert!(rec.0.lock().unwrap().is_empty());
    // A webhook fires on its trigger word: the mention is optional.
    assert_eq!(bot.handle(&req("#operations", "hi", false)).as_deref(), Some("hello @opal"));
    // REST mode tags messages with the room id.
    assert_eq!(bot.handle(&req("ROOM1", "@monitoring hi", true)), None);
    bot.set_room_id("ROOM1");
    assert_eq!(bot.handle(&req("ROOM1", "@monitoring hi", true)).as_deref(), Some("hello @opal"));
    // Its own messages never.
    let mut own = req("operations", "@monitoring hi", true);
    own.user = "monitoring".into();
    assert_eq!(bot.handle(&own), None);
}
