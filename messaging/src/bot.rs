//! The chatbot's core: one chat message in, one reply out. It knows
//! nothing of how messages arrive (REST polling in [`crate::poller`], the
//! web server's outgoing-webhook endpoint) and acts on the pipeline only
//! through [`ControlPort`] — the control interface `km3mon ctl` uses. No
//! command ever reaches a shell (the original ran `supervisorctl` with the
//! chat's arguments).
//!
//! Commands (first word, case-insensitive; see docs/chatbot.md):
//!
//! | command | who |
//! |---|---|
//! | `help`, `hi`/`hello`/`hey`/`ciao` | anyone |
//! | `status`, `latency`, `silences`, `shifters` | shifters and operators |
//! | `shifters are A and B`, `stop`/`start`/`restart NODE\|GROUP:*`, `silence PATTERN DURATION [reason]`, `unsilence PATTERN`, `rttc-reset --du N` (`reset NODE KEY`) | operators |
//!
//! `supervisorctl status|stop|start|restart …` is accepted as the
//! original's spelling of the same commands.
//!
//! Authorisation uses exact user names: `[Alerts] operators` and the
//! shifters list (the original tested for a substring of one string
//! **[quirk, fixed]**).

use std::sync::{Arc, RwLock};

use crate::shifters::{join_names, Shifters};

/// What the bot needs of the running pipeline: implemented by
/// [`pipeline::control::Control`], the interface `km3mon ctl` uses too.
pub trait ControlPort: Send + Sync {
    /// One command line in the control parser's syntax (`status`, `stop
    /// NODE`, `start GROUP:*`, `silence PATTERN DURATION reason`,
    /// `silences` …); `user` goes to the audit line. Ok: the reply; Err:
    /// what went wrong.
    fn execute(&self, line: &str, user: &str) -> Result<String, String>;
}

impl ControlPort for pipeline::control::Control {
    fn execute(&self, line: &str, user: &str) -> Result<String, String> {
        let r = pipeline::control::Control::execute(self, line, user);
        if r.ok {
            Ok(r.text)
        } else {
            Err(r.error.unwrap_or(r.text))
        }
    }
}

/// One chat message, however it arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The sender's user name (`u.username`, `user_name`).
    pub user: String,
    /// Channel name or room id the message was posted in.
    pub channel: String,
    pub text: String,
    /// For the log: the chat's message id.
    pub message_id: Option<String>,
    /// REST polling sees every message of the channel: only those starting
    /// with `@botname` are commands. An outgoing webhook fires on its
    /// trigger word already, so the mention is optional there.
    pub require_mention: bool,
}

/// What the bot is allowed to be asked by whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Stranger,
    Shifter,
    Operator,
}

pub struct Bot {
    botname: String,
    channel: String,
    /// The configured channel's room id, once the REST client has looked it up.
    room_id: RwLock<Option<String>>,
    operators: Vec<String>,
    shifters: Arc<Shifters>,
    control: Arc<dyn ControlPort>,
}

pub const HELP: &str = "\
I understand (write @BOT first):
  help                          this text
  hello                         says hello
  status                        the detector's DOMs per DU and alert condition, and every node of the monitoring (shifters, operators)
  latency                       p50/p99/max of the lags and latencies: nodes, plots, alert delivery, DB (shifters, operators)
  silences                      the active alert silences (shifters, operators)
  shifters                      who is on shift (shifters, operators)
  shifters are NAME and NAME    sets the shifters, notified by chat and mail (operators)
  stop|start|restart NODE       controls one node, or a group with GROUP:* (operators)
  silence PATTERN DURATION [reason]   silences alerts, e.g. silence dom_inactive:* 2h DU3 recabled (operators)
  unsilence PATTERN             lifts a silence (operators)
  rttc-reset --du N             forgets DU N's RTTC baseline; a new one is learnt (operators)
  supervisorctl status|stop|start|restart …   the original's spelling of the same";

impl Bot {
    pub fn new(
        botname: &str,
        channel: &str,
        operators: Vec<String>,
        shifters: Arc<Shifters>,
        control: Arc<dyn ControlPort>,
    ) -> Bot {
        Bot {
            botname: botname.trim_start_matches('@').to_string(),
            channel: channel.trim_start_matches('#').to_string(),
            room_id: RwLock::new(None),
            operators,
            shifters,
            control,
        }
    }

    pub fn botname(&self) -> &str {
        &self.botname
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The configured channel's room id (REST mode), so that messages
    /// tagged with the id are recognised as from the channel.
    pub fn set_room_id(&self, id: &str) {
        *self.room_id.write().unwrap_or_else(|e| e.into_inner()) = Some(id.to_string());
    }

    pub fn shifters(&self) -> &Arc<Shifters> {
        &self.shifters
    }

    pub fn role(&self, user: &str) -> Role {
        if self.operators.iter().any(|o| o == user) {
            Role::Operator
        } else if self.shifters.contains(user) {
            Role::Shifter
        } else {
            Role::Stranger
        }
    }

    fn serves(&self, channel: &str) -> bool {
        let c = channel.trim_start_matches('#');
        c == self.channel
            || self
                .room_id
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_deref()
                == Some(c)
    }

    /// The reply to one message, or `None` when the message is not for the
    /// bot (no mention, another channel, from the bot itself).
    pub fn handle(&self, req: &Request) -> Option<String> {
        if req.user.eq_ignore_ascii_case(&self.botname) {
            return None;
        }
        let command = match strip_mention(&req.text, &self.botname) {
            Some(rest) => rest,
            None if req.require_mention => return None,
            None => req.text.trim(),
        };
        if !self.serves(&req.channel) {
            tracing::info!(
                "chatbot: ignoring a command of {} in {} (only {} is served)",
                req.user,
                req.channel,
                self.channel
            );
            return None;
        }
        let reply = self.command(&req.user, command);
        tracing::info!(
            "chatbot: {} in {} (message {}): {:?} → {:?}",
            req.user,
            req.channel,
            req.message_id.as_deref().unwrap_or("-"),
            command,
            reply.lines().next().unwrap_or("")
        );
        Some(reply)
    }

    /// One command (the bot name already removed) from `user`.
    pub fn command(&self, user: &str, text: &str) -> String {
        let mut words = text.split_whitespace();
        let Some(first) = words.next() else {
            return "Here I am".into();
        };
        let verb = first.to_lowercase();
        let args: Vec<&str> = words.collect();
        match verb.as_str() {
            "help" => HELP.replace("BOT", &self.botname),
            "hi" | "hello" | "hey" | "ciao" => format!("hello @{user}"),
            "status" => self.query(user, "ask for the status", |b| b.status_reply(user, &args)),
            "latency" if args.is_empty() => self.query(user, "ask for the latencies", |b| {
                format!("```\n{}\n```", b.control_reply(user, "latency").trim_end())
            }),
            "latency" => "Usage: latency (no arguments)".into(),
            "silences" => self.query(user, "list the silences", |b| {
                b.control_reply(user, "silences")
            }),
            "shifters" => match args.split_first() {
                None => self.query(user, "ask who is on shift", |b| {
                    format!("The shifters are {}.", b.shifters.display())
                }),
                Some((are, names)) if are.eq_ignore_ascii_case("are") => {
                    self.operate(user, "set the shifters", |b| b.set_shifters(user, names))
                }
                Some(_) => "Usage: shifters are NAME and NAME".into(),
            },
            "stop" | "start" | "restart" => self.operate(user, "control the monitoring", |b| {
                b.control_line(user, &verb, &args)
            }),
            "silence" | "unsilence" => self.operate(user, "silence alerts", |b| {
                b.control_line(user, &verb, &args)
            }),
            "reset" | "rttc-reset" => self.operate(user, "reset a monitor's baseline", |b| {
                b.control_line(user, &verb, &args)
            }),
            "supervisorctl" => self.supervisorctl(user, &args),
            _ => format!("@{user}: command not found, try help"),
        }
    }

    /// The original's `supervisorctl …`, limited to what maps onto the
    /// control interface.
    fn supervisorctl(&self, user: &str, args: &[&str]) -> String {
        match args.split_first() {
            Some((action, rest)) if action.eq_ignore_ascii_case("status") => {
                self.query(user, "ask for the status", |b| b.status_reply(user, rest))
            }
            Some((action, rest)) if matches!(action.to_lowercase().as_str(), "stop" | "start" | "restart") => {
                let verb = action.to_lowercase();
                self.operate(user, "control the monitoring", |b| {
                    b.control_line(user, &verb, rest)
                })
            }
            Some((action, _)) => format!(
                "@{user}: `supervisorctl {action}` is not available from the chat; status, stop, start and restart are (try help)"
            ),
            None => "Usage: supervisorctl status|stop|start|restart NODE|GROUP:*".into(),
        }
    }

    fn query(&self, user: &str, what: &str, f: impl FnOnce(&Bot) -> String) -> String {
        if self.role(user) >= Role::Shifter {
            f(self)
        } else {
            format!(
                "Sorry @{user}, only shifters and operators may {what}. The shifters are {}; the operators are {}.",
                self.shifters.display(),
                join_names(&self.operators)
            )
        }
    }

    fn operate(&self, user: &str, what: &str, f: impl FnOnce(&Bot) -> String) -> String {
        if self.role(user) == Role::Operator {
            f(self)
        } else {
            format!(
                "Sorry @{user}, only operators may {what}. The operators are {}.",
                join_names(&self.operators)
            )
        }
    }

    /// The status table in a fenced code block (also an error, as the
    /// original did with supervisorctl's output).
    fn status_reply(&self, user: &str, targets: &[&str]) -> String {
        let line = std::iter::once("status")
            .chain(targets.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        let who = format!("chat:{user}");
        let mut text = match self.control.execute(&line, &who) {
            Ok(t) => t,
            Err(e) => format!("error: {e}"),
        };
        // The detector first (when the graph keeps its table): how the
        // detector is, then how the monitoring is.
        if targets.is_empty() {
            if let Ok(health) = self.control.execute("health", &who) {
                text = format!("{}\n\n{text}", health.trim_end());
            }
        }
        format!("```\n{}\n```", text.trim_end())
    }

    fn control_line(&self, user: &str, verb: &str, args: &[&str]) -> String {
        if args.is_empty() {
            return format!("Usage: {verb} … (try help)");
        }
        self.control_reply(user, &format!("{verb} {}", args.join(" ")))
    }

    fn control_reply(&self, user: &str, line: &str) -> String {
        match self.control.execute(line, &format!("chat:{user}")) {
            Ok(text) => text,
            Err(e) => format!("@{user}: {e}"),
        }
    }

    fn set_shifters(&self, user: &str, words: &[&str]) -> String {
        let names = match parse_names(words) {
            Ok(n) => n,
            Err(e) => return format!("@{user}: {e}"),
        };
        let shown = join_names(&names);
        match self.shifters.set(names.clone(), user) {
            Ok(()) => {
                tracing::info!("chatbot: {user} set the shifters to {shown}");
                if names.is_empty() {
                    "Nobody is on shift now.".into()
                } else {
                    let mentions: Vec<String> = names.iter().map(|n| format!("@{n}")).collect();
                    format!(
                        "Welcome {}, you are the shifters now and get the alerts. Set by @{user}.",
                        mentions.join(" and ")
                    )
                }
            }
            Err(e) => format!(
                "@{user}: the shifters are {shown} until the monitoring restarts, but they could not be stored: {e}"
            ),
        }
    }
}

/// The text after a leading `@botname` (case-insensitive) when it is
/// followed by the end, whitespace, `:` or `,`; `None` when the message
/// does not start with the mention. The original stripped every leading
/// character found in `@botname`, so `@monitoringtest` became `est`
/// **[quirk, fixed]**.
pub fn strip_mention<'a>(text: &'a str, botname: &str) -> Option<&'a str> {
    let t = text.trim_start();
    let rest = t.strip_prefix('@')?;
    let head = rest.get(..botname.len())?;
    if !head.eq_ignore_ascii_case(botname) {
        return None;
    }
    let tail = &rest[botname.len()..];
    match tail.chars().next() {
        None => Some(""),
        Some(c) if c.is_whitespace() || c == ':' || c == ',' => Some(tail[c.len_utf8()..].trim()),
        Some(_) => None,
    }
}

/// `A and B`, `A, B`, `@A @B` → names; `nobody`/`none` → empty. Names are
/// chat user names: letters, digits, `.`, `_`, `-`.
pub fn parse_names(words: &[&str]) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for w in words.iter().flat_map(|w| w.split(',')) {
        let w = w.trim().trim_start_matches('@');
        if w.is_empty() || w.eq_ignore_ascii_case("and") || w == "&" {
            continue;
        }
        if !w
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!("`{w}` is not a chat user name"));
        }
        if !names.iter().any(|n| n == w) {
            names.push(w.to_string());
        }
    }
    if names.len() == 1 && matches!(names[0].to_lowercase().as_str(), "nobody" | "none") {
        names.clear();
    } else if names.is_empty() {
        return Err("whom? Usage: shifters are NAME and NAME (or: shifters are nobody)".into());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mention_is_stripped_exactly() {
        assert_eq!(
            strip_mention("@monitoring status", "monitoring"),
            Some("status")
        );
        assert_eq!(
            strip_mention("  @Monitoring: status  ", "monitoring"),
            Some("status")
        );
        assert_eq!(strip_mention("@monitoring,hi", "monitoring"), Some("hi"));
        assert_eq!(strip_mention("@monitoring", "monitoring"), Some(""));
        // The original's character-set strip turned this into `est`.
        assert_eq!(strip_mention("@monitoringtest", "monitoring"), None);
        assert_eq!(strip_mention("monitoring status", "monitoring"), None);
        assert_eq!(strip_mention("@moni", "monitoring"), None);
        assert_eq!(strip_mention("@monitoriñg x", "monitoring"), None);
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse_names(&["a", "and", "b"]).unwrap(), ["a", "b"]);
        assert_eq!(
            parse_names(&["@a,", "b,c", "and", "a"]).unwrap(),
            ["a", "b", "c"]
        );
        assert!(parse_names(&["nobody"]).unwrap().is_empty());
        assert!(parse_names(&[]).is_err());
        assert!(parse_names(&["a;rm"]).is_err());
    }
}
