//! E-mail over SMTP, and the `log` sink.
//!
//! Fixed quirks of the original: it sent a bare `Subject:` line without
//! `From`, `To`, `Date` or `Message-ID`, with an empty body, to a
//! hard-coded ORCA address also for ARCA. Here server, sender and
//! recipients come from `[Alerts.email]`, a message has the usual headers,
//! the subject is [`Outgoing::subject`] and the body [`Outgoing::text`].

use std::time::Duration;

use anyhow::{bail, Context};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport as _};

use crate::config::{EmailConfig, SmtpSecurity};
use crate::message::{Outgoing, SendError, Transport};

pub struct EmailTransport {
    mailer: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    server: String,
}

impl EmailTransport {
    /// Checks the config (sender, at least one recipient, parseable
    /// addresses, the password variable when a user name is set); does
    /// not connect.
    pub fn new(cfg: &EmailConfig) -> anyhow::Result<Self> {
        let (from, to) = check(cfg)?;
        let builder = match cfg.security {
            SmtpSecurity::None => SmtpTransport::builder_dangerous(cfg.server.as_str()),
            SmtpSecurity::Starttls => SmtpTransport::starttls_relay(&cfg.server)
                .with_context(|| format!("[Alerts.email] server {:?}", cfg.server))?,
            SmtpSecurity::Tls => SmtpTransport::relay(&cfg.server)
                .with_context(|| format!("[Alerts.email] server {:?}", cfg.server))?,
        };
        let mut builder = builder
            .port(cfg.port)
            .timeout(Some(Duration::from_secs_f64(cfg.timeout.max(0.001))));
        if let (Some(user), Some(var)) = (&cfg.username, &cfg.password_env) {
            let password = std::env::var(var)
                .with_context(|| format!("environment variable {var} is not set"))?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(EmailTransport {
            mailer: builder.build(),
            from,
            to,
            server: format!("{}:{}", cfg.server, cfg.port),
        })
    }

    fn message(&self, msg: &Outgoing) -> Result<Message, SendError> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(msg.subject.as_str())
            .date_now()
            .message_id(None)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.body(msg.text.clone())
            .map_err(|e| SendError::Permanent(format!("e-mail not built: {e}")))
    }
}

/// The settings, without connecting or reading the environment: sender
/// and recipients present and parseable, `password_env` with `username`.
pub fn check(cfg: &EmailConfig) -> anyhow::Result<(Mailbox, Vec<Mailbox>)> {
    let from = cfg
        .from
        .as_deref()
        .context("[Alerts.email] from is required when e-mail is enabled")?;
    if cfg.to.is_empty() {
        bail!("[Alerts.email] to must name at least one recipient when e-mail is enabled");
    }
    let from: Mailbox = from
        .parse()
        .with_context(|| format!("[Alerts.email] from: {from:?} is not an e-mail address"))?;
    let to = cfg
        .to
        .iter()
        .map(|a| {
            a.parse::<Mailbox>()
                .with_context(|| format!("[Alerts.email] to: {a:?} is not an e-mail address"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if cfg.username.is_some() && cfg.password_env.is_none() {
        bail!("[Alerts.email] username needs password_env");
    }
    if cfg.server.trim().is_empty() {
        bail!("[Alerts.email] server is empty");
    }
    Ok((from, to))
}

impl Transport for EmailTransport {
    fn name(&self) -> &str {
        "email"
    }

    fn send(&mut self, msg: &Outgoing) -> Result<(), SendError> {
        let email = self.message(msg)?;
        self.mailer.send(&email).map(|_| ()).map_err(|e| {
            let text = format!("SMTP {}: {e}", self.server);
            // 5xx replies (unknown recipient, relay refused) stay refused;
            // connection trouble, timeouts and 4xx may pass later.
            if e.is_permanent() {
                SendError::Permanent(text)
            } else {
                SendError::Retryable(text)
            }
        })
    }
}

/// Writes each message to the process log (target `messaging::alert`).
#[derive(Debug, Default)]
pub struct LogTransport;

impl Transport for LogTransport {
    fn name(&self) -> &str {
        "log"
    }

    fn send(&mut self, msg: &Outgoing) -> Result<(), SendError> {
        tracing::warn!(
            target: "messaging::alert",
            route = %msg.route,
            severity = msg.severity.name(),
            resolved = msg.resolved,
            keys = msg.keys.len(),
            "{}",
            msg.text
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> EmailConfig {
        toml::from_str(&format!("enabled = true\n{extra}")).unwrap()
    }

    #[test]
    fn refuses_missing_sender_or_recipients() {
        let e = EmailTransport::new(&cfg("to = [\"a@b.org\"]"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("from"), "{e}");
        let e = EmailTransport::new(&cfg("from = \"a@b.org\""))
            .err()
            .unwrap();
        assert!(e.to_string().contains("recipient"), "{e}");
        let e = EmailTransport::new(&cfg("from = \"a@b.org\"\nto = [\"nobody\"]"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("nobody"), "{e}");
        assert!(EmailTransport::new(&cfg("from = \"a@b.org\"\nto = [\"c@d.org\"]")).is_ok());
    }
}
