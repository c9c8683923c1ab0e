//! A real SMTP server for the mail tests: Python's `aiosmtpd` on
//! 127.0.0.1, started from the test Python (`KM3MON_PYTHON`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// An aiosmtpd server on 127.0.0.1 that writes every mail it gets as a
/// JSON line (subject and body).
pub struct Smtp {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

const SMTP_PEER: &str = r#"
import email, json, sys, time
from email import policy
from aiosmtpd.controller import Controller
port, out = int(sys.argv[1]), sys.argv[2]
class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=policy.default)
        with open(out, "a") as f:
            f.write(json.dumps({"subject": str(msg["Subject"]), "body": msg.get_content()}) + "\n")
        return "250 OK"
c = Controller(Handler(), hostname="127.0.0.1", port=port)
c.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"#;

impl Smtp {
    pub fn start(dir: &Path) -> Smtp {
        let port = super::free_port();
        let out = dir.join("mails.jsonl");
        let mut child = Command::new(super::python())
            .args(["-c", SMTP_PEER, &port.to_string(), out.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start aiosmtpd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        Smtp { child, port, out }
    }

    /// Every mail received so far: `{"subject": …, "body": …}`.
    pub fn mails(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
