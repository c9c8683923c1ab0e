//! Helpers of the tests of live runs: /api/status, waiting on a log or a
//! port (bounded). Child processes: [`super::Guard`].

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `GET /api/status` (HTTP/1.0: no chunking) as JSON.
pub fn status(port: u16) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = web::auth::base64_encode(b"km3net:change-me");
    let req = format!("GET /api/status HTTP/1.0\r\nAuthorization: Basic {auth}\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (_, body) = raw.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

/// The status row of `name`.
pub fn row(port: u16, name: &str) -> Option<serde_json::Value> {
    status(port)?["pipeline"]["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
}

/// Waits (bounded) for `cond`; panics with `what` and the log.
pub fn wait_for(what: &str, log: &Path, within: Duration, mut cond: impl FnMut(&str) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if cond(&text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
