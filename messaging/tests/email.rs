//! The e-mail sink against a real SMTP server: Python's `aiosmtpd` on
//! 127.0.0.1 (installed by scripts/test into the test Python, found via
//! `KM3MON_PYTHON`). The peer parses every message it receives with
//! Python's `email` package and reports envelope, headers and body.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use messaging::config::EmailConfig;
use messaging::deliver::{Delivery, RetryPolicy};
use messaging::email::EmailTransport;
use messaging::message::{Outgoing, Severity, Transport};
use serde_json::Value;

const PEER: &str = r#"
import asyncio, email, json, sys, time
from email import policy
from aiosmtpd.controller import Controller

port, out = int(sys.argv[1]), sys.argv[2]

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
        with open(out, "a") as f:
            f.write(json.dumps({
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "headers": {k: str(v) for k, v in msg.items()},
                "body": msg.get_content(),
            }) + "\n")
        return "250 OK"

c = Controller(Handler(), hostname="127.0.0.1", port=port)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

/// The test Python, or `None` (the test then says loudly that it skipped).
fn python() -> Option<PathBuf> {
    if let Some(py) = std::env::var_os("KM3MON_PYTHON") {
        return Some(PathBuf::from(py));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    eprintln!("\n*** SKIPPED: KM3MON_PYTHON is unset and there is no .venv: run scripts/test (it installs aiosmtpd) ***\n");
    None
}

struct SmtpPeer {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl SmtpPeer {
    fn start(py: &PathBuf, name: &str) -> SmtpPeer {
        Self::start_on(py, name, free_port())
    }

    fn start_on(py: &PathBuf, name: &str, port: u16) -> SmtpPeer {
        let out =
            std::env::temp_dir().join(format!("km3mon-smtp-{}-{name}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let mut child = Command::new(py)
            .args(["-c", PEER, &port.to_string(), &out.display().to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the aiosmtpd peer");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "aiosmtpd peer did not start (is aiosmtpd installed in {}?)",
            py.display()
        );
        SmtpPeer { child, port, out }
    }

    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(port: u16, to: &[&str]) -> EmailConfig {
    let to: Vec<String> = to.iter().map(|t| format!("{t:?}")).collect();
    toml::from_str(&format!(
        "enabled = true\nserver = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
         from = \"KM3NeT monitoring <monitoring@arca.example.org>\"\nto = [{}]\ntimeout = 5\n",
        to.join(", ")
    ))
    .unwrap()
}

fn alert(id: u64) -> Outgoing {
    Outgoing {
        id,
        route: "trigger".into(),
        sink: "email".into(),
        severity: Severity::Critical,
        resolved: false,
        keys: vec!["trigger_rate_zero".into()],
        data_time_ns: 0,
        subject: "Trigger rate is 0 Hz".into(),
        text: "The trigger rate of ARCA is 0 Hz since 03:12 UTC.\nShifters: cnorris and bspencer (Ünal on call)\n".into(),
    }
}

#[test]
fn mail_arrives_with_headers_sender_recipients_and_body() {
    let Some(py) = python() else { return };
    let peer = SmtpPeer::start(&py, "headers");
    let mut mail = EmailTransport::new(&config(
        peer.port,
        &[
            "shifter@arca.example.org",
            "Run Coordinator <rc@km3net.example>",
        ],
    ))
    .unwrap();
    mail.send(&alert(1)).unwrap();
    let got = peer.received();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m["mail_from"], "monitoring@arca.example.org");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["shifter@arca.example.org", "rc@km3net.example"])
    );
    let h = &m["headers"];
    assert_eq!(h["Subject"], "Trigger rate is 0 Hz");
    assert_eq!(h["From"], "KM3NeT monitoring <monitoring@arca.example.org>");
    assert_eq!(
        h["To"],
        "shifter@arca.example.org, Run Coordinator <rc@km3net.example>"
    );
    assert!(h["Date"].as_str().unwrap().contains(" +0000"), "{h}");
    let id = h["Message-ID"].as_str().unwrap();
    assert!(
        id.starts_with('<') && id.ends_with('>') && id.contains('@'),
        "{id}"
    );
    assert!(
        h["Content-Type"]
            .as_str()
            .unwrap()
            .starts_with("text/plain"),
        "{h}"
    );
    // SMTP ends the body with a line break of its own.
    let body = m["body"].as_str().unwrap().replace("\r\n", "\n");
    assert_eq!(body.trim_end(), alert(1).text.trim_end());
}

#[test]
fn refused_recipient_is_permanent_and_not_retried() {
    let Some(py) = python() else { return };
    let peer = SmtpPeer::start(&py, "refused");
    let mail = EmailTransport::new(&config(peer.port, &["nobody@arca.example.org"])).unwrap();
    let d = Delivery::new(vec![(Box::new(mail), 10)], fast(5));
    d.submit(alert(2)).unwrap();
    let o = d.outcomes().recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(!o.delivered);
    assert_eq!(o.attempts, 1);
    assert!(o.error.unwrap().contains("550"));
    assert!(peer.received().is_empty());
}

#[test]
fn smtp_server_down_is_retried_then_counted_and_a_later_mail_gets_through() {
    let Some(py) = python() else { return };
    let port = free_port();
    let mail = EmailTransport::new(&config(port, &["shifter@arca.example.org"])).unwrap();
    let d = Delivery::new(vec![(Box::new(mail), 10)], fast(3));
    d.submit(alert(3)).unwrap();
    let o = d.outcomes().recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(!o.delivered);
    assert_eq!(o.attempts, 3);
    let s = &d.stats()[0];
    assert_eq!(
        (s.sink.as_str(), s.failed, s.retries, s.delivered),
        ("email", 1, 2, 0)
    );
    assert!(s
        .last_error
        .as_deref()
        .unwrap()
        .contains(&format!("127.0.0.1:{port}")));

    // The server comes up on that port: the sink recovers by itself.
    let peer = SmtpPeer::start_on(&py, "down", port);
    d.submit(alert(4)).unwrap();
    let o = d.outcomes().recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(o.delivered, "{o:?}");
    assert_eq!(peer.received().len(), 1);
}

fn fast(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        first_wait: Duration::from_millis(20),
        max_wait: Duration::from_millis(100),
        max_attempts,
        max_age: Duration::from_secs(60),
    }
}
