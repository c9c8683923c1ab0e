//! `[DB]` of the site config, and `KM3NET_DB_URL`.

use std::time::Duration;

use serde::Deserialize;

use crate::http::HttpOptions;

/// The production web API.
pub const DEFAULT_URL: &str = "https://km3netdbweb.in2p3.fr";

/// `[DB]` in pipeline.toml. Every key is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    /// Base URL; `KM3NET_DB_URL` wins over it.
    #[serde(default = "default_url")]
    pub url: String,
    /// A session id (or a whole cookie-file line). Better kept out of the
    /// config: `KM3NET_DB_COOKIE` in `.env` is the usual place.
    #[serde(default)]
    pub cookie: Option<String>,
    /// Seconds per request.
    #[serde(default = "timeout")]
    pub timeout: f64,
    /// Extra attempts after a network error or HTTP 5xx.
    #[serde(default = "retries")]
    pub retries: u32,
    /// Seconds before the first retry; doubles with each.
    #[serde(default = "backoff")]
    pub backoff: f64,
    /// Accept any TLS certificate (the original never verified).
    #[serde(default)]
    pub insecure: bool,
    /// Login for a whole network: 16 (class B) or 8 (class C).
    #[serde(default)]
    pub freenetbits: Option<u8>,
    /// Hours a cached uncalibrated detector or CLB map is used before it
    /// is fetched again.
    #[serde(default = "refresh_hours")]
    pub refresh_hours: f64,
}

fn default_url() -> String {
    DEFAULT_URL.to_string()
}
fn timeout() -> f64 {
    30.0
}
fn retries() -> u32 {
    2
}
fn backoff() -> f64 {
    1.0
}
fn refresh_hours() -> f64 {
    24.0
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            url: default_url(),
            cookie: None,
            timeout: timeout(),
            retries: retries(),
            backoff: backoff(),
            insecure: false,
            freenetbits: None,
            refresh_hours: refresh_hours(),
        }
    }
}

impl DbConfig {
    /// `[DB]` of a site config's text (absent: defaults), then
    /// `KM3NET_DB_URL`.
    pub fn from_site_text(text: &str) -> anyhow::Result<DbConfig> {
        let table: toml::Table = toml::from_str(text)?;
        let mut cfg = match table.get("DB") {
            Some(v) => v
                .clone()
                .try_into::<DbConfig>()
                .map_err(|e| anyhow::anyhow!("[DB]: {e}"))?,
            None => DbConfig::default(),
        };
        cfg.apply_env();
        cfg.validate()?;
        Ok(cfg)
    }

    /// `KM3NET_DB_URL` wins over the file (environment beats config, as
    /// for every other variable).
    pub fn apply_env(&mut self) {
        if let Ok(u) = std::env::var("KM3NET_DB_URL") {
            if !u.trim().is_empty() {
                self.url = u.trim().to_string();
            }
        }
    }

    /// Problems as (key, message), for `km3mon check` and start-up.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            p.push((
                "url".into(),
                format!("{:?} must start with http:// or https://", self.url),
            ));
        }
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            p.push((
                "timeout".into(),
                "must be a positive number of seconds".into(),
            ));
        }
        if !(self.backoff >= 0.0 && self.backoff.is_finite()) {
            p.push(("backoff".into(), "must be 0 or more seconds".into()));
        }
        if let Some(b) = self.freenetbits {
            if b != 8 && b != 16 {
                p.push((
                    "freenetbits".into(),
                    "must be 8 (class C) or 16 (class B)".into(),
                ));
            }
        }
        if !(self.refresh_hours > 0.0 && self.refresh_hours.is_finite()) {
            p.push(("refresh_hours".into(), "must be positive".into()));
        }
        p
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        match self.problems().first() {
            Some((k, m)) => anyhow::bail!("[DB] {k}: {m}"),
            None => Ok(()),
        }
    }

    pub fn base(&self) -> String {
        self.url.trim_end_matches('/').to_string()
    }

    pub fn http_options(&self) -> HttpOptions {
        HttpOptions {
            timeout: Duration::from_secs_f64(self.timeout.max(0.001)),
            retries: self.retries,
            backoff: Duration::from_secs_f64(self.backoff.max(0.0)),
            insecure: self.insecure,
            ipv4_only: self.url.contains("km3netdbweb.in2p3.fr"),
        }
    }

    pub fn refresh(&self) -> Duration {
        Duration::from_secs_f64(self.refresh_hours.max(0.0) * 3600.0)
    }
}
