//! `[Alerts]` of the site config, typed. Unknown keys are refused, so a
//! misspelt route or sink fails `km3mon check` instead of silently
//! dropping alerts.
//!
//! Secrets (chat password or token, webhook URLs, SMTP password) may be
//! given as `*_env = "VAR"`: the value is read from the environment at
//! start, so `pipeline.toml` can be shared without them.

use serde::Deserialize;

use crate::message::Severity;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// `false`: alerts go only to `alerts.jsonl`, the log and the MSG node.
    #[serde(default)]
    pub enabled: bool,
    /// Default seconds between reminders of an alert that still fires (0 = never).
    #[serde(default = "default_reminder", deserialize_with = "timespan::de::secs")]
    pub reminder_interval: u64,
    /// The bot's user name (REST login, and the `@name` commands start with).
    #[serde(default = "default_botname")]
    pub botname: String,
    /// REST login password (prefer `[Alerts.chat] password_env` or a token).
    #[serde(default)]
    pub password: Option<String>,
    /// The one channel the bot posts to and takes commands from.
    #[serde(default = "default_channel")]
    pub channel: String,
    /// User names (exact) allowed to set shifters and control monitors.
    #[serde(default)]
    pub operators: Vec<String>,
    /// Initial shifters (exact user names); the chat command `shifters are …`
    /// stores changes in the shifters state file, never in this file.
    #[serde(default)]
    pub shifters: Shifters,
    /// Seconds alerts are collected before a route sends them, so that
    /// simultaneous alerts become one message.
    #[serde(
        default = "default_group_window",
        deserialize_with = "timespan::de::secs"
    )]
    pub group_window: u64,
    /// `[Alerts.chat]` as written; read it through [`AlertsConfig::chat`],
    /// which also knows the original's meaning of its absence.
    #[serde(default, rename = "chat")]
    pub chat_section: ChatConfig,
    #[serde(default)]
    pub email: EmailConfig,
    /// Routes in order; an alert goes to every route that matches it.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Severity per alert-key pattern (first match wins; default warning).
    #[serde(default)]
    pub severity: Vec<SeverityRule>,
}

/// Where the original's bot posted: hard-coded there, implied here by an
/// `[Alerts]` that enables alerts and gives the bot's password but has no
/// `[Alerts.chat]`.
pub const ORIGINAL_CHAT_URL: &str = "https://chat.km3net.de";

impl AlertsConfig {
    /// The chat settings in effect. An original `pipeline.toml` (`enabled =
    /// true`, `botname`, `password`, no `[Alerts.chat]`) keeps its meaning: a
    /// Rocket.Chat REST bot on [`ORIGINAL_CHAT_URL`], logging in with those
    /// credentials, which are that server's. Without a password nothing is
    /// implied, so no config sends anything to an outside host by default.
    pub fn chat(&self) -> std::borrow::Cow<'_, ChatConfig> {
        if self.original_chat_implied() {
            let mut chat: ChatConfig =
                toml::from_str("mode = \"rest\"").expect("the defaults parse");
            chat.url = Some(ORIGINAL_CHAT_URL.to_string());
            chat.given = false;
            std::borrow::Cow::Owned(chat)
        } else {
            std::borrow::Cow::Borrowed(&self.chat_section)
        }
    }

    /// True when [`AlertsConfig::chat`] is the original's bot rather than
    /// an `[Alerts.chat]` of the file (`km3mon check` says so).
    pub fn original_chat_implied(&self) -> bool {
        !self.chat_section.given && self.enabled && self.password.is_some()
    }
}

/// The original stored one string (`"cnorris and bspencer"`); a list is
/// the new form. Both parse; the string is split on `and`, commas and
/// whitespace.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(untagged)]
pub enum Shifters {
    List(Vec<String>),
    Legacy(String),
    #[default]
    #[serde(skip)]
    None,
}

impl Shifters {
    pub fn names(&self) -> Vec<String> {
        match self {
            Shifters::List(v) => v
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Shifters::Legacy(s) => s
                .split(|c: char| c == ',' || c.is_whitespace())
                .map(str::trim)
                .filter(|w| !w.is_empty() && *w != "and")
                .map(str::to_string)
                .collect(),
            Shifters::None => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChatMode {
    /// No chat.
    #[default]
    Off,
    /// Rocket.Chat REST bot: login (or personal access token), post,
    /// poll the channel for commands.
    Rest,
    /// Incoming webhook for alerts, outgoing webhook (web endpoint) for commands.
    Webhook,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    #[serde(default)]
    pub mode: ChatMode,
    /// REST mode: server base URL, e.g. `https://chat.example.org`.
    #[serde(default)]
    pub url: Option<String>,
    /// REST mode: environment variable holding the login password
    /// (overrides `[Alerts] password`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// REST mode: personal access token and user id instead of a password.
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub user_id_env: Option<String>,
    /// Webhook mode: incoming-webhook URL (a secret: prefer `webhook_url_env`).
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub webhook_url_env: Option<String>,
    /// Webhook mode: the outgoing webhook's token, checked on every command
    /// posted to the web server's `/chat/command` endpoint.
    #[serde(default)]
    pub command_token_env: Option<String>,
    /// Seconds between polls of the channel (REST mode).
    #[serde(default = "default_poll", deserialize_with = "timespan::de::secs_f64")]
    pub poll_interval: f64,
    /// Seconds before one HTTP request is given up.
    #[serde(
        default = "default_timeout",
        deserialize_with = "timespan::de::secs_f64"
    )]
    pub timeout: f64,
    /// Messages waiting for delivery; beyond it new ones are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Whether the file has an `[Alerts.chat]` table at all.
    #[serde(skip_deserializing, default = "yes")]
    pub given: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_smtp_server")]
    pub server: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `none` (plain SMTP, as on a shore station's relay), `starttls` or `tls`.
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// Sender address (required when enabled).
    #[serde(default)]
    pub from: Option<String>,
    /// Recipients (required when enabled; no address is built in).
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(
        default = "default_timeout",
        deserialize_with = "timespan::de::secs_f64"
    )]
    pub timeout: f64,
    #[serde(default = "default_queue")]
    pub queue: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Names the route in `alerts.jsonl` delivery lines and on /status.
    pub name: String,
    /// Alert-key patterns (`*` matches any run of characters), e.g.
    /// `["dom_inactive:*", "trigger_rate_zero"]`; empty = every key.
    #[serde(default, rename = "match")]
    pub patterns: Vec<String>,
    /// Only alerts at least this severe.
    #[serde(default)]
    pub min_severity: Severity,
    /// Where its messages go: `chat`, `email`, `log`.
    pub sinks: Vec<String>,
    /// At most one message per alert key (or group) per this many seconds;
    /// `resolved` messages are never throttled away.
    #[serde(default, deserialize_with = "timespan::de::secs")]
    pub throttle: u64,
    /// Seconds between reminders while firing (default `[Alerts] reminder_interval`, 0 = none).
    #[serde(default, deserialize_with = "timespan::de::opt_secs")]
    pub reminder: Option<u64>,
    /// Send `resolved` messages (default true).
    #[serde(default = "yes")]
    pub resolved: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SeverityRule {
    #[serde(rename = "match")]
    pub pattern: String,
    pub severity: Severity,
}

fn default_reminder() -> u64 {
    3600
}
fn default_botname() -> String {
    "monitoring".into()
}
fn default_channel() -> String {
    "operations".into()
}
fn default_group_window() -> u64 {
    10
}
fn default_poll() -> f64 {
    1.0
}
fn default_timeout() -> f64 {
    10.0
}
fn default_queue() -> usize {
    1000
}
fn default_smtp_server() -> String {
    "localhost".into()
}
fn default_smtp_port() -> u16 {
    25
}
fn yes() -> bool {
    true
}

/// Route and severity patterns: the control plane's matcher (`*` and `?`),
/// so a route pattern means what the same text means in a silence.
pub use pipeline::control::glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(text: &str) -> AlertsConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn original_alerts_section_means_the_collaboration_bot() {
        let original = "enabled = true\nbotname = \"monitoring\"\npassword = \"pw\"\nchannel = \"operations_fr\"\n";
        let a = alerts(original);
        assert!(a.original_chat_implied());
        let chat = a.chat();
        assert_eq!(chat.mode, ChatMode::Rest);
        assert_eq!(chat.url.as_deref(), Some(ORIGINAL_CHAT_URL));
        assert_eq!(
            (chat.poll_interval, chat.timeout, chat.queue),
            (1.0, 10.0, 1000)
        );
        // Disabled, or no password: nothing implied.
        for text in [
            "enabled = false\npassword = \"pw\"\n",
            "enabled = true\nbotname = \"monitoring\"\n",
        ] {
            let a = alerts(text);
            assert!(!a.original_chat_implied(), "{text}");
            assert_eq!(a.chat().mode, ChatMode::Off, "{text}");
        }
        // An explicit [Alerts.chat], even `mode = "off"`, is what it says.
        let a = alerts(&format!("{original}[chat]\nmode = \"off\"\n"));
        assert_eq!(a.chat().mode, ChatMode::Off);
        let a = alerts(&format!(
            "{original}[chat]\nmode = \"rest\"\nurl = \"http://127.0.0.1:1\"\n"
        ));
        assert_eq!(a.chat().url.as_deref(), Some("http://127.0.0.1:1"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("dom_inactive:*", "dom_inactive:806451572"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b", "aXbY"));
        assert!(glob_match("trigger_rate_zero", "trigger_rate_zero"));
        assert!(!glob_match("time_sync:*", "dom_inactive:1"));
        // `?` works as in a silence.
        assert!(glob_match("time_sync:80645157?", "time_sync:806451572"));
        assert!(!glob_match("time_sync:80645157?", "time_sync:80645157"));
    }

    #[test]
    fn legacy_shifters_string_splits_on_and() {
        let s = Shifters::Legacy("cnorris and bspencer, jdoe".into());
        assert_eq!(s.names(), ["cnorris", "bspencer", "jdoe"]);
    }
}
