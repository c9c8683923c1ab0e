//! Helpers for the ligier crate's socket tests: an in-process Ligier on a
//! free loopback port, raw ControlHost sockets, bounded waits.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use daq::controlhost::{encode_message, tags, Mode, Prefix, Subscription, Tag, PREFIX_LEN};
use ligier::{Ligier, LigierConfig, LigierHandle};

pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KM3MON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

pub fn tag(name: &str) -> Tag {
    Tag::new(name).unwrap()
}

pub fn config() -> LigierConfig {
    LigierConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        status_interval: None,
        ..LigierConfig::default()
    }
}

pub fn start(config: LigierConfig) -> LigierHandle {
    init_logs();
    Ligier::start(config).expect("start ligier")
}

/// Restart on a given address (after a shutdown), retrying briefly.
pub fn start_at(mut config: LigierConfig, addr: SocketAddr) -> LigierHandle {
    config.bind = addr;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Ligier::start(config.clone()) {
            Ok(h) => return h,
            Err(e) if Instant::now() < deadline => {
                eprintln!("rebind {addr}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot restart ligier at {addr}: {e}"),
        }
    }
}

/// Poll `cond` every 10 ms; panic with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn subscribers(handle: &LigierHandle, name: &str) -> u64 {
    handle
        .status()
        .tags
        .iter()
        .find(|t| t.tag == name)
        .map_or(0, |t| t.subscribers)
}

/// Wait until the routing table has `n` subscribers for `name`.
pub fn wait_subscribers(handle: &LigierHandle, name: &str, n: u64) {
    // A tag only gets a status row once something was published on it, so
    // look at the connections' subscriptions instead.
    wait_for(
        &format!("{n} subscribers of {name}"),
        Duration::from_secs(10),
        || {
            let status = handle.status();
            let count = status
                .connections
                .iter()
                .filter(|c| c.subscription.split_whitespace().any(|w| w == name))
                .count() as u64;
            count >= n
        },
    );
}

/// A raw socket speaking ControlHost, with a read timeout so that no test
/// can hang on it.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub fn connect(handle: &LigierHandle) -> Raw {
        let stream = TcpStream::connect(handle.local_addr()).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw { stream }
    }

    pub fn subscriber(handle: &LigierHandle, mode: Mode, names: &[&str]) -> Raw {
        let mut raw = Raw::connect(handle);
        let mut sub = Subscription::new();
        for n in names {
            sub = sub.with(mode, tag(n));
        }
        raw.send(tags::subscribe(), &sub.to_payload());
        raw.send(tags::always(), b"");
        raw
    }

    pub fn send(&mut self, tag: Tag, payload: &[u8]) {
        self.stream
            .write_all(&encode_message(tag, payload))
            .expect("send");
    }

    pub fn recv(&mut self) -> (Tag, Vec<u8>) {
        let mut prefix = [0u8; PREFIX_LEN];
        self.stream.read_exact(&mut prefix).expect("read prefix");
        let prefix = Prefix::decode(&prefix).expect("valid prefix");
        let mut payload = vec![0; prefix.length as usize];
        self.stream.read_exact(&mut payload).expect("read payload");
        (prefix.tag, payload)
    }

    /// Some(message) or None if nothing arrives within `timeout`.
    pub fn try_recv(&mut self, timeout: Duration) -> Option<(Tag, Vec<u8>)> {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut first = [0u8; 1];
        let got = matches!(self.stream.peek(&mut first), Ok(n) if n > 0);
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        got.then(|| self.recv())
    }

    /// True if the peer closed the socket (EOF or reset) within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }
}

/// A payload whose bytes encode the publisher, the sequence number and
/// the length, so order and integrity can be checked on arrival.
pub fn numbered(publisher: u32, seq: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(8));
    v.extend_from_slice(&publisher.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    let mut x = publisher.wrapping_mul(2654435761) ^ seq.wrapping_mul(40503);
    while v.len() < len {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        v.push((x >> 16) as u8);
    }
    v.truncate(len.max(8));
    v
}

pub fn seq_of(payload: &[u8]) -> (u32, u32) {
    (
        u32::from_le_bytes(payload[0..4].try_into().unwrap()),
        u32::from_le_bytes(payload[4..8].try_into().unwrap()),
    )
}
