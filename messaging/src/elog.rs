//! ELOG entries (spec integrations.md §6.2): a multipart POST to
//! `<url>/<logbook>` with the fields of km3pipe's `ELOGService`, the
//! password as a SHA-256-crypt hash with an empty salt. Sent from a thread
//! of its own behind a bounded queue, retried, counted; a failure is
//! logged and never reaches the caller.
//!
//! Fixed quirks of the original: no double slash in the URL; a 302 whose
//! `Location` contains `fail` and a 200 that shows the login form count as
//! failures (bad credentials), not as success; TLS is verified.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

/// Where and as whom to post.
#[derive(Clone)]
pub struct ElogConfig {
    /// `[ELOGService] url`, e.g. `https://elog.km3net.de/`.
    pub url: String,
    /// `[ZTPlot] logbook`, `+` for spaces (`Operations+FR`).
    pub logbook: String,
    pub username: String,
    pub password: String,
    /// Must be an existing ELOG author.
    pub author: String,
    /// The entry type (`Monitoring`).
    pub entry_type: String,
    pub timeout: Duration,
    /// Attempts per entry.
    pub attempts: u32,
    /// Pause before the second attempt; doubles.
    pub backoff: Duration,
}

impl std::fmt::Debug for ElogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ElogConfig({}, as {:?})", self.post_url(), self.username)
    }
}

impl ElogConfig {
    pub fn post_url(&self) -> String {
        format!("{}/{}", self.url.trim_end_matches('/'), self.logbook)
    }
}

/// One entry.
#[derive(Debug, Clone)]
pub struct ElogEntry {
    pub subject: String,
    pub text: String,
    /// Files attached as `attfile1`, `attfile2`, … (read when sent).
    pub attachments: Vec<PathBuf>,
}

/// `upwd`: SHA-256-crypt, empty salt, 5000 rounds, without `$5$$`.
pub fn password_hash(password: &str) -> String {
    let params = sha_crypt::Sha256Params::new(5000).expect("5000 rounds are valid");
    sha_crypt::sha256_crypt_b64(password.as_bytes(), b"", &params).expect("an empty salt is valid")
}

/// The multipart body and its boundary.
pub fn multipart(cfg: &ElogConfig, e: &ElogEntry, when: u64) -> std::io::Result<(String, Vec<u8>)> {
    let boundary = format!("km3mon-elog-{:016x}{:08x}", when, std::process::id());
    let mut body = Vec::new();
    let mut field = |name: &str, filename: Option<&str>, value: &[u8]| {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if let Some(f) = filename {
            body.extend_from_slice(
                format!("; filename=\"{f}\"\r\nContent-Type: application/octet-stream").as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    };
    let hash = password_hash(&cfg.password);
    let when_s = when.to_string();
    for (k, v) in [
        ("exp", cfg.logbook.as_str()),
        ("cmd", "Submit"),
        ("Subject", e.subject.as_str()),
        ("Author", cfg.author.as_str()),
        ("Type", cfg.entry_type.as_str()),
        ("unm", cfg.username.as_str()),
        ("upwd", hash.as_str()),
        ("When", when_s.as_str()),
    ] {
        field(k, None, v.as_bytes());
    }
    for (i, p) in e.attachments.iter().enumerate() {
        let data = std::fs::read(p)?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        field(&format!("attfile{}", i + 1), Some(&name), &data);
    }
    // As a file-like part, so that the request is multipart even without
    // attachments (km3pipe does the same).
    field("Text", Some("Text"), e.text.as_bytes());
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok((boundary, body))
}

/// Posts one entry; `Err(retry?, message)`.
pub fn post(agent: &ureq::Agent, cfg: &ElogConfig, e: &ElogEntry) -> Result<(), (bool, String)> {
    let when = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (boundary, body) =
        multipart(cfg, e, when).map_err(|err| (false, format!("attachment: {err}")))?;
    let mut resp = agent
        .post(&cfg.post_url())
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .send(&body[..])
        .map_err(|err| (true, err.to_string()))?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    match status {
        302 if location.contains("fail") => Err((
            false,
            format!("refused (bad credentials?): Location {location}"),
        )),
        302 => Ok(()),
        200 if text.contains("name=\"upwd\"") || text.contains("name=upwd") => Err((
            false,
            "the ELOG answered with its login form: user name or password rejected".into(),
        )),
        200 => Ok(()),
        s if s >= 500 => Err((true, format!("HTTP {s}"))),
        s => Err((
            false,
            format!("HTTP {s}: {}", text.chars().take(200).collect::<String>()),
        )),
    }
}

/// Delivery counts.
#[derive(Debug, Default)]
pub struct ElogCounts {
    pub posted: AtomicU64,
    pub failed: AtomicU64,
    /// Entries refused because the queue was full.
    pub dropped: AtomicU64,
}

/// The queue in front of the posting thread.
pub struct ElogSender {
    tx: Sender<ElogEntry>,
    pub counts: Arc<ElogCounts>,
}

impl ElogSender {
    /// The sender and the body of the posting thread (run it on a thread
    /// of the caller's choosing; it ends when the sender is dropped).
    pub fn new(cfg: ElogConfig, capacity: usize) -> (ElogSender, impl FnOnce() + Send + 'static) {
        let (tx, rx) = bounded(capacity.max(1));
        let counts = Arc::new(ElogCounts::default());
        let c = counts.clone();
        (ElogSender { tx, counts }, move || deliver(cfg, rx, c))
    }

    /// Queues an entry; `false` (and counted) when the queue is full.
    pub fn send(&self, e: ElogEntry) -> bool {
        match self.tx.try_send(e) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "messaging::elog", "ELOG queue full: entry dropped");
                false
            }
        }
    }
}

fn deliver(cfg: ElogConfig, rx: Receiver<ElogEntry>, counts: Arc<ElogCounts>) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build(),
    );
    for e in rx {
        let mut pause = cfg.backoff;
        for attempt in 1..=cfg.attempts.max(1) {
            match post(&agent, &cfg, &e) {
                Ok(()) => {
                    counts.posted.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(target: "messaging::elog", "ELOG entry {:?} posted to {}", e.subject, cfg.post_url());
                    break;
                }
                Err((retry, msg)) if retry && attempt < cfg.attempts => {
                    tracing::warn!(target: "messaging::elog", "ELOG post (attempt {attempt}): {msg}; retrying");
                    std::thread::sleep(pause);
                    pause *= 2;
                }
                Err((_, msg)) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(target: "messaging::elog", "ELOG post to {} failed: {msg}", cfg.post_url());
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_vectors_of_the_spec() {
        assert_eq!(
            password_hash("swordfish"),
            "kRtfQJERFE.b7FdMSND.rKIA7p.VIpi7SBsT46/gwOB"
        );
        assert_eq!(
            password_hash("password"),
            "V0edGK/GfSrNwzYCrbML4V/gvkNuNTfvn.Pt/LMSAf8"
        );
        assert_eq!(
            password_hash(""),
            "3c2QQ0KjIU1OLtB29cl8Fplc2WN7X89bnoEjaR7tWu."
        );
    }

    #[test]
    fn no_double_slash() {
        let c = ElogConfig {
            url: "https://elog.km3net.de/".into(),
            logbook: "Operations+FR".into(),
            username: "km3net".into(),
            password: String::new(),
            author: "a".into(),
            entry_type: "Monitoring".into(),
            timeout: Duration::from_secs(1),
            attempts: 1,
            backoff: Duration::ZERO,
        };
        assert_eq!(c.post_url(), "https://elog.km3net.de/Operations+FR");
    }
}
