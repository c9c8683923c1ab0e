//! Rocket.Chat REST client (the "REST-bot" mode): log in or use a personal
//! access token, find a channel's room id, post, and read a channel's
//! history. Blocking (ureq), every request bounded by `[Alerts.chat] timeout`.
//!
//! Public API (used by the chat sink and by the chatbot):
//!
//! ```no_run
//! # fn demo(alerts: &messaging::config::AlertsConfig) -> anyhow::Result<()> {
//! use messaging::chat::rest::RestClient;
//! let mut chat = RestClient::new(alerts)?;          // no network yet
//! chat.post("operations", "hello")?;                // logs in on first use
//! let room = chat.channel_id("operations")?.expect("channel exists");
//! let msgs = chat.history(&room, None)?;            // oldest first
//! let newer = chat.history(&room, msgs.last().map(|m| m.ts.as_str()))?;
//! # Ok(()) }
//! ```
//!
//! Fixed quirks of the original: the channel listing is read page by page
//! (`offset`/`count`) instead of only its first page; an HTTP 401 (expired
//! token) triggers one fresh login and a retry instead of silently dropping
//! every later alert.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::config::AlertsConfig;
use crate::message::{Outgoing, SendError, Transport};

/// How the bot proves who it is.
#[derive(Clone)]
pub enum Credentials {
    /// `POST /api/v1/login`; repeated when the server answers 401.
    Password { user: String, password: String },
    /// Personal access token: sent as is, never refreshed.
    Token { token: String, user_id: String },
}

impl std::fmt::Debug for Credentials {
    // Secrets stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password { user, .. } => write!(f, "Password {{ user: {user:?} }}"),
            Credentials::Token { user_id, .. } => write!(f, "Token {{ user_id: {user_id:?} }}"),
        }
    }
}

/// One chat message as `channels.history` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `_id`: unique, for de-duplication.
    pub id: String,
    /// `rid`: the room id.
    pub room_id: String,
    /// `msg`: the text.
    pub text: String,
    /// `ts`: ISO-8601 UTC with milliseconds; pass the newest one as `oldest`
    /// to the next [`RestClient::history`] call.
    pub ts: String,
    /// `u.username`: the sender.
    pub username: String,
}

/// A Rocket.Chat REST session. Not `Sync`: one per thread (the chat sink's
/// delivery thread has one, the chatbot's polling thread another).
pub struct RestClient {
    base: String,
    agent: ureq::Agent,
    credentials: Credentials,
    /// (auth token, user id) once logged in.
    session: Option<(String, String)>,
    /// Where [`Transport::send`] posts: `[Alerts] channel`.
    channel: String,
    channel_ids: HashMap<String, String>,
    /// Entries asked for per `channels.list` page.
    pub page_size: usize,
    /// Messages asked for per `channels.history` call.
    pub history_count: usize,
    logins: u64,
}

impl RestClient {
    /// From the site config: `[Alerts.chat] url` (required), credentials from
    /// `token_env` + `user_id_env` (both set: token mode) or else `botname`
    /// with the password from `password_env` or `[Alerts] password`.
    /// Does not touch the network; fails on missing settings or variables.
    pub fn new(alerts: &AlertsConfig) -> anyhow::Result<Self> {
        let chat = alerts.chat();
        let url = chat
            .url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .context("[Alerts.chat] url is required in REST mode")?;
        let credentials = match (&chat.token_env, &chat.user_id_env) {
            (Some(t), Some(u)) => Credentials::Token {
                token: env_var(t)?,
                user_id: env_var(u)?,
            },
            (Some(_), None) | (None, Some(_)) => {
                bail!("[Alerts.chat] token_env and user_id_env go together")
            }
            (None, None) => {
                let password = match &chat.password_env {
                    Some(var) => env_var(var)?,
                    None => alerts.password.clone().context(
                        "REST mode needs [Alerts.chat] password_env, [Alerts] password, or token_env + user_id_env",
                    )?,
                };
                Credentials::Password {
                    user: alerts.botname.clone(),
                    password,
                }
            }
        };
        Self::with_credentials(
            url,
            credentials,
            &alerts.channel,
            Duration::from_secs_f64(chat.timeout.max(0.001)),
        )
    }

    /// Explicit settings (tests, `km3mon testchat`).
    pub fn with_credentials(
        base_url: &str,
        credentials: Credentials,
        channel: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("chat url {base_url:?} must start with http:// or https://");
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        let session = match &credentials {
            Credentials::Token { token, user_id } => Some((token.clone(), user_id.clone())),
            Credentials::Password { .. } => None,
        };
        Ok(RestClient {
            base,
            agent: ureq::Agent::new_with_config(config),
            credentials,
            session,
            channel: channel.to_string(),
            channel_ids: HashMap::new(),
            page_size: 100,
            history_count: 100,
            logins: 0,
        })
    }

    /// Successful logins so far (a token refresh shows as a second one).
    pub fn logins(&self) -> u64 {
        self.logins
    }

    /// Log in now (also done lazily by every call).
    pub fn login(&mut self) -> Result<(), SendError> {
        let (user, password) = match &self.credentials {
            Credentials::Token { .. } => return Ok(()),
            Credentials::Password { user, password } => (user.clone(), password.clone()),
        };
        // Rocket.Chat takes an e-mail address in `user`, a name in `username`.
        let field = if user.contains('@') {
            "user"
        } else {
            "username"
        };
        let url = format!("{}/api/v1/login", self.base);
        let mut resp = self
            .agent
            .post(&url)
            .send_form([(field, user.as_str()), ("password", password.as_str())])
            .map_err(|e| transport_error("login", e))?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        if status == 401 {
            return Err(SendError::Permanent(format!(
                "chat login as {user:?} refused (HTTP 401): wrong user name or password"
            )));
        }
        if !(200..300).contains(&status) {
            return Err(status_error("login", status, &body));
        }
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| SendError::Retryable(format!("chat login: bad JSON reply: {e}")))?;
        let token = v.pointer("/data/authToken").and_then(Value::as_str);
        let id = v.pointer("/data/userId").and_then(Value::as_str);
        match (v["status"].as_str(), token, id) {
            (Some("success"), Some(t), Some(i)) => {
                self.session = Some((t.to_string(), i.to_string()));
                self.logins += 1;
                Ok(())
            }
            _ => Err(SendError::Permanent(format!(
                "chat login as {user:?}: unexpected reply {}",
                clip(&body)
            ))),
        }
    }

    /// Post `text` to a channel name (`operations`, `#operations`), a user
    /// (`@name`) or a room id.
    pub fn post(&mut self, channel_or_room: &str, text: &str) -> Result<(), SendError> {
        let body = json!({ "channel": channel_or_room, "text": text });
        let v = self.call(Req::Post("chat.postMessage", &body))?;
        if v["success"].as_bool() == Some(false) {
            return Err(SendError::Permanent(format!(
                "chat.postMessage to {channel_or_room:?}: {}",
                v["error"].as_str().unwrap_or("success: false")
            )));
        }
        Ok(())
    }

    /// Room id of a public channel, searching every page of
    /// `channels.list`; `None` when no channel has that name. Cached.
    pub fn channel_id(&mut self, name: &str) -> Result<Option<String>, SendError> {
        let name = name.trim_start_matches('#');
        if let Some(id) = self.channel_ids.get(name) {
            return Ok(Some(id.clone()));
        }
        let mut offset = 0usize;
        loop {
            let query = vec![
                ("offset", offset.to_string()),
                ("count", self.page_size.to_string()),
            ];
            let v = self.call(Req::Get("channels.list", query))?;
            let channels = v["channels"].as_array().cloned().unwrap_or_default();
            for c in &channels {
                if let (Some(n), Some(id)) = (c["name"].as_str(), c["_id"].as_str()) {
                    self.channel_ids.insert(n.to_string(), id.to_string());
                }
            }
            if let Some(id) = self.channel_ids.get(name) {
                return Ok(Some(id.clone()));
            }
            offset += channels.len();
            let total = v["total"].as_u64().unwrap_or(0) as usize;
            if channels.is_empty() || offset >= total {
                return Ok(None);
            }
        }
    }

    /// Messages of a channel newer than `oldest` (exclusive; `None`: the
    /// latest `history_count`), **oldest first**.
    pub fn history(
        &mut self,
        room_id: &str,
        oldest: Option<&str>,
    ) -> Result<Vec<ChatMessage>, SendError> {
        let mut query = vec![
            ("roomId", room_id.to_string()),
            ("count", self.history_count.to_string()),
        ];
        if let Some(o) = oldest {
            query.push(("oldest", o.to_string()));
        }
        let v = self.call(Req::Get("channels.history", query))?;
        if v["success"].as_bool() == Some(false) {
            return Err(SendError::Permanent(format!(
                "channels.history of {room_id:?}: {}",
                v["error"].as_str().unwrap_or("success: false")
            )));
        }
        let mut out: Vec<ChatMessage> = v["messages"]
            .as_array()
            .map(|a| a.iter().filter_map(parse_message).collect())
            .unwrap_or_default();
        // The server lists newest first.
        out.reverse();
        Ok(out)
    }

    /// One API call; on 401 with a password, log in again once and retry.
    fn call(&mut self, req: Req<'_>) -> Result<Value, SendError> {
        let mut relogged = false;
        loop {
            if self.session.is_none() {
                self.login()?;
            }
            let (status, body) = self.request(&req)?;
            if status == 401 {
                if !relogged && matches!(self.credentials, Credentials::Password { .. }) {
                    tracing::info!(target: "messaging::chat", "chat token refused (HTTP 401): logging in again");
                    self.session = None;
                    relogged = true;
                    continue;
                }
                return Err(SendError::Permanent(format!(
                    "{}: HTTP 401 (token refused)",
                    req.endpoint()
                )));
            }
            if !(200..300).contains(&status) {
                return Err(status_error(req.endpoint(), status, &body));
            }
            return serde_json::from_str(&body).map_err(|e| {
                SendError::Retryable(format!("{}: bad JSON reply: {e}", req.endpoint()))
            });
        }
    }

    fn request(&self, req: &Req<'_>) -> Result<(u16, String), SendError> {
        let (token, user_id) = self.session.clone().unwrap_or_default();
        let url = format!("{}/api/v1/{}", self.base, req.endpoint());
        let result = match req {
            Req::Get(_, query) => self
                .agent
                .get(&url)
                .header("X-Auth-Token", &token)
                .header("X-User-Id", &user_id)
                .query_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
                .call(),
            Req::Post(_, body) => self
                .agent
                .post(&url)
                .header("X-Auth-Token", &token)
                .header("X-User-Id", &user_id)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        };
        let mut resp = result.map_err(|e| transport_error(req.endpoint(), e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| transport_error(req.endpoint(), e))?;
        Ok((status, body))
    }
}

impl Transport for RestClient {
    fn name(&self) -> &str {
        "chat"
    }

    fn send(&mut self, msg: &Outgoing) -> Result<(), SendError> {
        let channel = self.channel.clone();
        self.post(&channel, &msg.text)
    }
}

enum Req<'a> {
    Get(&'static str, Vec<(&'static str, String)>),
    Post(&'static str, &'a Value),
}

impl Req<'_> {
    fn endpoint(&self) -> &'static str {
        match self {
            Req::Get(e, _) | Req::Post(e, _) => e,
        }
    }
}

fn parse_message(m: &Value) -> Option<ChatMessage> {
    Some(ChatMessage {
        id: m["_id"].as_str()?.to_string(),
        room_id: m["rid"].as_str().unwrap_or_default().to_string(),
        text: m["msg"].as_str().unwrap_or_default().to_string(),
        ts: ts_string(&m["ts"])?,
        username: m.pointer("/u/username")?.as_str()?.to_string(),
    })
}

/// REST answers carry `ts` as an ISO string; the realtime API as
/// `{"$date": ms}` — accept both, hand back ISO.
fn ts_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("$date").and_then(Value::as_i64).map(iso_ms),
        _ => None,
    }
}

/// Milliseconds since the epoch → `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso_ms(ms: i64) -> String {
    timefmt::iso_ms(ms)
}

fn env_var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("environment variable {name} is not set"))
}

/// Connection refused, DNS, timeouts, broken replies: the server may come back.
pub(crate) fn transport_error(what: &str, e: ureq::Error) -> SendError {
    match e {
        ureq::Error::BadUri(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::RequireHttpsOnly(_) => SendError::Permanent(format!("{what}: {e}")),
        _ => SendError::Retryable(format!("{what}: {e}")),
    }
}

/// 5xx and 429 pass; other 4xx are our fault and will not get better.
pub(crate) fn status_error(what: &str, status: u16, body: &str) -> SendError {
    let text = format!("{what}: HTTP {status} {}", clip(body));
    if status == 429 || status >= 500 {
        SendError::Retryable(text)
    } else {
        SendError::Permanent(text)
    }
}

pub(crate) fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps() {
        assert_eq!(iso_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn statuses_classified() {
        assert!(matches!(
            status_error("x", 500, ""),
            SendError::Retryable(_)
        ));
        assert!(matches!(
            status_error("x", 429, ""),
            SendError::Retryable(_)
        ));
        assert!(matches!(
            status_error("x", 400, ""),
            SendError::Permanent(_)
        ));
        assert!(matches!(
            status_error("x", 404, ""),
            SendError::Permanent(_)
        ));
    }

    #[test]
    fn config_errors_name_what_is_missing() {
        let alerts: AlertsConfig = toml::from_str("[chat]\nmode = \"rest\"\n").unwrap();
        let err = RestClient::new(&alerts).err().unwrap().to_string();
        assert!(err.contains("url"), "{err}");
        let alerts: AlertsConfig =
            toml::from_str("[chat]\nmode = \"rest\"\nurl = \"http://127.0.0.1:1\"\n").unwrap();
        let err = RestClient::new(&alerts).err().unwrap().to_string();
        assert!(err.contains("password"), "{err}");
    }
}
