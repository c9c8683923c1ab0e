//! Incoming webhooks: `POST <url>` with JSON `{"text": …}`, the common
//! denominator of Rocket.Chat (`/hooks/<id>/<token>`, replies
//! `{"success": true}`), Mattermost (`/hooks/<key>`, replies `ok`) and
//! Slack (replies `ok`). Any 2xx is success, except a JSON reply saying
//! `"success": false`.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::rest::{clip, status_error, transport_error};
use crate::config::AlertsConfig;
use crate::message::{Outgoing, SendError, Transport};

pub struct WebhookClient {
    url: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for WebhookClient {
    // The URL is the secret: never print it whole.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookClient({})", redact(&self.url))
    }
}

impl WebhookClient {
    /// URL from `[Alerts.chat] webhook_url_env` (preferred) or `webhook_url`.
    pub fn new(alerts: &AlertsConfig) -> anyhow::Result<Self> {
        let chat = alerts.chat();
        let url = match (&chat.webhook_url_env, &chat.webhook_url) {
            (Some(var), _) => std::env::var(var)
                .with_context(|| format!("environment variable {var} is not set"))?,
            (None, Some(u)) => u.clone(),
            (None, None) => {
                bail!("webhook mode needs [Alerts.chat] webhook_url_env or webhook_url")
            }
        };
        Self::with_url(&url, Duration::from_secs_f64(chat.timeout.max(0.001)))
    }

    pub fn with_url(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!(
                "webhook url {} must start with http:// or https://",
                redact(url)
            );
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        Ok(WebhookClient {
            url: url.to_string(),
            agent: ureq::Agent::new_with_config(config),
        })
    }

    pub fn post(&mut self, text: &str) -> Result<(), SendError> {
        let body = json!({ "text": text }).to_string();
        let mut resp = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| transport_error("webhook", e))?;
        let status = resp.status().as_u16();
        let reply = resp.body_mut().read_to_string().unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(status_error("webhook", status, &reply));
        }
        if let Ok(v) = serde_json::from_str::<Value>(&reply) {
            if v["success"].as_bool() == Some(false) {
                return Err(SendError::Permanent(format!("webhook: {}", clip(&reply))));
            }
        }
        Ok(())
    }
}

impl Transport for WebhookClient {
    fn name(&self) -> &str {
        "chat"
    }

    fn send(&mut self, msg: &Outgoing) -> Result<(), SendError> {
        self.post(&msg.text)
    }
}

/// Scheme and host only: the path holds the token.
fn redact(url: &str) -> String {
    let after = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after..].find('/') {
        Some(i) => format!("{}/…", &url[..after + i]),
        None => url.to_string(),
    }
}
