//! The reconnecting ControlHost client.
//!
//! The original monitors froze silently when the Ligier restarted; this
//! client instead treats a lost connection as a gap: it logs it, counts it,
//! reconnects with capped exponential backoff, re-sends its `_MyId` and
//! subscription, and carries on. Every blocking step polls a [`Shutdown`]
//! flag, so a dedicated I/O thread using it can be stopped promptly.

use std::io::{self, BufReader, Write};
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daq::controlhost::{encode_message, tags, Prefix, Subscription, Tag, PREFIX_LEN};
use tracing::{debug, info, warn};

mod counters;

use counters::unix_ns;
pub use counters::{ClientCounters, ClientStats};

use crate::shutdown::Shutdown;
use crate::wire::{is_timeout, FrameReader, Message, ReadError, DEFAULT_MAX_MESSAGE_SIZE};

/// How to reach the Ligier and how hard to try.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`; resolved again on every attempt.
    pub addr: String,
    /// Sent as `_MyId` after every connect, so the Ligier's status names us.
    pub name: Option<String>,
    pub connect_timeout: Duration,
    /// Socket read/write timeout: how often blocked I/O checks the stop flag.
    pub poll_interval: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub max_message_size: u32,
    /// False: report connection failures as errors instead of retrying
    /// (one-shot tools such as `km3mon ligier --status`).
    pub reconnect: bool,
}

impl ClientConfig {
    pub fn new(addr: impl Into<String>) -> ClientConfig {
        ClientConfig {
            addr: addr.into(),
            name: None,
            connect_timeout: Duration::from_secs(2),
            poll_interval: Duration::from_millis(100),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            reconnect: true,
        }
    }

    pub fn name(mut self, name: impl Into<String>) -> ClientConfig {
        self.name = Some(name.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("stopped")]
    Stopped,
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("connection to {addr} lost: {source}")]
    Lost { addr: String, source: ReadError },
    #[error("unexpected reply from {addr}: {detail}")]
    Protocol { addr: String, detail: String },
}

/// Buffered outgoing bytes beyond which `send` flushes by itself.
const FLUSH_THRESHOLD: usize = 256 << 10;
/// How often a publish-only client peeks for a closed socket.
const LIVENESS_PERIOD: Duration = Duration::from_millis(200);

struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    last_liveness: Instant,
}

/// One connection to a Ligier, re-established as often as needed.
/// Not `Sync`: give it to one I/O thread (see [`crate::subscriber`]).
pub struct Client {
    config: ClientConfig,
    stop: Shutdown,
    counters: Arc<ClientCounters>,
    conn: Option<Connection>,
    frames: FrameReader,
    subscription: Option<Subscription>,
    /// Whole outgoing messages not yet handed to the kernel completely;
    /// `out_sent` bytes of them already are.
    out: Vec<u8>,
    out_sent: usize,
    /// Reconnection state.
    lost_at: Option<Instant>,
    attempts: u32,
    delay: Duration,
    next_attempt: Option<Instant>,
}

impl Client {
    /// A client that connects on first use.
    pub fn new(config: ClientConfig) -> Client {
        let frames = FrameReader::new(config.max_message_size);
        let delay = config.backoff_initial;
        Client {
            config,
            stop: Shutdown::new(),
            counters: Arc::default(),
            conn: None,
            frames,
            subscription: None,
            out: Vec::new(),
            out_sent: 0,
            lost_at: None,
            attempts: 0,
            delay,
            next_attempt: None,
        }
    }

    /// Connect now (retrying with backoff unless `reconnect` is off).
    pub fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let mut client = Client::new(config);
        client.connect_until(None)?;
        Ok(client)
    }

    /// Share an external stop flag (e.g. the process's signal handler).
    pub fn with_shutdown(mut self, stop: Shutdown) -> Client {
        self.stop = stop;
        self
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.stop.clone()
    }

    pub fn counters(&self) -> Arc<ClientCounters> {
        Arc::clone(&self.counters)
    }

    pub fn stats(&self) -> ClientStats {
        self.counters.snapshot()
    }

    pub fn addr(&self) -> &str {
        &self.config.addr
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// True when received bytes are waiting in the read buffer, i.e. the
    /// next `recv` will not block. Forwarders flush their output when not.
    pub fn has_buffered_input(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| !c.reader.buffer().is_empty())
    }

    /// Replace the subscription (sent with `_Always`, now and after every
    /// reconnect).
    pub fn subscribe(&mut self, sub: Subscription) -> Result<(), ClientError> {
        let hello = subscription_messages(&sub);
        self.subscription = Some(sub);
        if self.conn.is_some() {
            self.out.extend_from_slice(&hello);
            self.flush()?;
        }
        Ok(())
    }

    /// Queue a message; it is written at the next `flush` (or at once when
    /// the buffer is large).
    pub fn send(&mut self, tag: Tag, payload: &[u8]) -> Result<(), ClientError> {
        self.out
            .extend_from_slice(&Prefix::new(tag, payload.len()).encode());
        self.out.extend_from_slice(payload);
        self.count_out(PREFIX_LEN + payload.len());
        if self.out.len() >= FLUSH_THRESHOLD {
            self.flush()?;
        }
        Ok(())
    }

    /// Queue a received message unchanged (prefix bytes included).
    pub fn send_message(&mut self, msg: &Message) -> Result<(), ClientError> {
        self.out.extend_from_slice(msg.wire());
        self.count_out(msg.wire_len());
        if self.out.len() >= FLUSH_THRESHOLD {
            self.flush()?;
        }
        Ok(())
    }

    /// `send` + `flush`.
    pub fn publish(&mut self, tag: Tag, payload: &[u8]) -> Result<(), ClientError> {
        self.send(tag, payload)?;
        self.flush()
    }

    fn count_out(&self, bytes: usize) {
        self.counters.msgs_out.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Write everything queued, reconnecting as needed; returns only when
    /// all of it reached the kernel, or on stop.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        while self.out_sent < self.out.len() {
            if self.stop.is_triggered() {
                return Err(ClientError::Stopped);
            }
            self.connect_until(None)?;
            if self.subscription.is_none() {
                if let Err(reason) = self.check_liveness() {
                    self.lose(&reason)?;
                    continue;
                }
            }
            let conn = self.conn.as_mut().expect("connected");
            match conn.writer.write(&self.out[self.out_sent..]) {
                Ok(0) => self.lose(&"socket accepted no bytes")?,
                Ok(n) => self.out_sent += n,
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.lose(&format!("write failed: {e}"))?,
            }
        }
        self.out.clear();
        self.out_sent = 0;
        Ok(())
    }

    /// A peer that closed shows up as a readable EOF; a publisher never
    /// reads, so it looks now and then instead of losing messages into a
    /// dead socket.
    fn check_liveness(&mut self) -> Result<(), String> {
        let conn = self.conn.as_mut().expect("connected");
        if conn.last_liveness.elapsed() < LIVENESS_PERIOD {
            return Ok(());
        }
        conn.last_liveness = Instant::now();
        let _ = conn.writer.set_nonblocking(true);
        let peeked = conn.writer.peek(&mut [0u8; 1]);
        let _ = conn.writer.set_nonblocking(false);
        match peeked {
            Ok(0) => Err("closed by peer".into()),
            Ok(_) => Ok(()),
            Err(e) if is_timeout(&e) => Ok(()),
            Err(e) => Err(format!("socket error: {e}")),
        }
    }

    /// Block until a message arrives (reconnecting as needed) or stop.
    pub fn recv(&mut self) -> Result<Message, ClientError> {
        loop {
            if let Some(msg) = self.recv_timeout(Duration::from_secs(3600))? {
                return Ok(msg);
            }
        }
    }

    /// Wait at most `timeout` for a message: `Ok(None)` if none came
    /// (including while the Ligier is unreachable).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stop.is_triggered() {
                return Err(ClientError::Stopped);
            }
            if !self.connect_until(Some(deadline))? {
                return Ok(None);
            }
            let conn = self.conn.as_mut().expect("connected");
            match self.frames.poll(&mut conn.reader) {
                Ok(Some(msg)) => {
                    self.counters.msgs_in.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .bytes_in
                        .fetch_add(msg.wire_len() as u64, Ordering::Relaxed);
                    return Ok(Some(msg));
                }
                Ok(None) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                Err(e) => {
                    if !self.config.reconnect {
                        self.drop_connection();
                        return Err(ClientError::Lost {
                            addr: self.config.addr.clone(),
                            source: e,
                        });
                    }
                    self.lose(&e)?;
                }
            }
        }
    }

    /// Flush, then close the connection politely.
    pub fn close(mut self) -> Result<ClientStats, ClientError> {
        self.flush()?;
        if let Some(conn) = self.conn.take() {
            let _ = conn.writer.shutdown(NetShutdown::Write);
        }
        Ok(self.stats())
    }

    fn drop_connection(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.writer.shutdown(NetShutdown::Both);
        }
        if self.frames.partial_len() > 0 {
            self.counters
                .partial_discarded
                .fetch_add(1, Ordering::Relaxed);
        }
        self.frames.reset();
        // Messages the kernel took completely count as sent; the one cut
        // in the middle (and all after it) go again on the next connection.
        let boundary = message_boundary(&self.out, self.out_sent);
        if boundary < self.out_sent {
            self.counters.resent.fetch_add(1, Ordering::Relaxed);
        }
        self.out.drain(..boundary);
        self.out_sent = 0;
    }

    /// The connection broke: log, count, and arm the reconnection.
    fn lose(&mut self, reason: &dyn std::fmt::Display) -> Result<(), ClientError> {
        self.drop_connection();
        self.counters.disconnects.fetch_add(1, Ordering::Relaxed);
        if !self.config.reconnect {
            return Err(ClientError::Connect {
                addr: self.config.addr.clone(),
                source: io::Error::other(reason.to_string()),
            });
        }
        warn!(addr = %self.config.addr, "lost connection to the Ligier: {reason}; reconnecting");
        self.lost_at = Some(Instant::now());
        self.counters
            .gap_started_unix_ns
            .store(unix_ns(), Ordering::Relaxed);
        // Not at once: a dying Ligier's listening socket can still accept
        // for a moment, and a restarting one needs a moment anyway. Jittered
        // too: every client of a restarted Ligier loses it at the same
        // moment, and the first retry was the one they all made in step.
        self.next_attempt = Some(Instant::now() + jittered(self.config.backoff_initial));
        self.delay = (self.config.backoff_initial * 2).min(self.config.backoff_max);
        Ok(())
    }

    /// Ensure a connection, retrying with backoff until `deadline`.
    /// Returns false if the deadline passed first.
    fn connect_until(&mut self, deadline: Option<Instant>) -> Result<bool, ClientError> {
        while self.conn.is_none() {
            if self.stop.is_triggered() {
                return Err(ClientError::Stopped);
            }
            let now = Instant::now();
            if self.next_attempt.is_none_or(|t| now >= t) {
                match self.try_connect() {
                    Ok(conn) => {
                        self.on_connected(conn);
                        continue;
                    }
                    Err(e) => {
                        if !self.config.reconnect {
                            return Err(ClientError::Connect {
                                addr: self.config.addr.clone(),
                                source: e,
                            });
                        }
                        self.attempts += 1;
                        if self.attempts == 1 || self.attempts.is_multiple_of(12) {
                            warn!(addr = %self.config.addr, attempts = self.attempts,
                                "cannot connect to the Ligier: {e}; retrying in {:?}", self.delay);
                        } else {
                            debug!(addr = %self.config.addr, attempts = self.attempts, "connect failed: {e}");
                        }
                        self.next_attempt = Some(Instant::now() + jittered(self.delay));
                        self.delay = (self.delay * 2).min(self.config.backoff_max);
                    }
                }
            }
            let wake = self.next_attempt.unwrap_or(now);
            let until = deadline.map_or(wake, |d| d.min(wake));
            if self
                .stop
                .sleep(until.saturating_duration_since(Instant::now()))
            {
                return Err(ClientError::Stopped);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) && self.conn.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn try_connect(&self) -> io::Result<Connection> {
        let addrs: Vec<SocketAddr> = self.config.addr.to_socket_addrs()?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.config.connect_timeout) {
                Ok(stream) => return self.prepare(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Socket options, then `_MyId` and the subscription, before anything
    /// queued by the caller.
    fn prepare(&self, stream: TcpStream) -> io::Result<Connection> {
        stream.set_nodelay(true)?;
        let poll = Some(self.config.poll_interval.max(Duration::from_millis(1)));
        stream.set_read_timeout(poll)?;
        stream.set_write_timeout(poll)?;
        let mut hello = Vec::new();
        if let Some(name) = &self.config.name {
            hello.extend(encode_message(tags::my_id(), name.as_bytes()));
        }
        if let Some(sub) = &self.subscription {
            hello.extend(subscription_messages(sub));
        }
        let mut writer = stream;
        write_all_polling(&mut writer, &hello, &self.stop)?;
        let reader = BufReader::with_capacity(64 << 10, writer.try_clone()?);
        Ok(Connection {
            writer,
            reader,
            last_liveness: Instant::now(),
        })
    }

    fn on_connected(&mut self, conn: Connection) {
        self.conn = Some(conn);
        self.counters.connects.fetch_add(1, Ordering::Relaxed);
        self.next_attempt = None;
        self.delay = self.config.backoff_initial;
        let attempts = std::mem::take(&mut self.attempts);
        match self.lost_at.take() {
            Some(lost) => {
                let gap = lost.elapsed();
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .disconnected_ns
                    .fetch_add(gap.as_nanos() as u64, Ordering::Relaxed);
                self.counters
                    .gap_started_unix_ns
                    .store(0, Ordering::Relaxed);
                info!(addr = %self.config.addr, attempts,
                    "reconnected to the Ligier after {:.1} s without connection", gap.as_secs_f64());
            }
            None => info!(addr = %self.config.addr, "connected to the Ligier"),
        }
    }
}

fn subscription_messages(sub: &Subscription) -> Vec<u8> {
    let mut out = encode_message(tags::subscribe(), &sub.to_payload());
    out.extend(encode_message(tags::always(), &[]));
    out
}

/// Offset of the start of the message containing byte `pos` of a buffer of
/// whole messages.
fn message_boundary(buf: &[u8], pos: usize) -> usize {
    let mut start = 0;
    while start + PREFIX_LEN <= buf.len() {
        let len = i32::from_be_bytes([
            buf[start + 8],
            buf[start + 9],
            buf[start + 10],
            buf[start + 11],
        ]);
        let end = start + PREFIX_LEN + len.max(0) as usize;
        if end > pos {
            return start;
        }
        start = end;
    }
    start.min(pos)
}

fn write_all_polling(stream: &mut TcpStream, mut data: &[u8], stop: &Shutdown) -> io::Result<()> {
    while !data.is_empty() {
        if stop.is_triggered() {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped"));
        }
        match stream.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `delay` scaled by a random factor in [0.5, 1): the clients of a restarted
/// Ligier then spread their reconnects instead of arriving in lock-step.
fn jittered(delay: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // A fresh RandomState is keyed randomly per process and per call: enough
    // randomness for spreading, without a dependency.
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    delay.mul_f64(0.5 + (r >> 11) as f64 / (1u64 << 53) as f64 * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_are_spread() {
        let d = Duration::from_secs(4);
        let v: Vec<Duration> = (0..64).map(|_| jittered(d)).collect();
        assert!(v.iter().all(|x| *x >= d / 2 && *x < d), "{v:?}");
        let distinct: std::collections::BTreeSet<_> = v.iter().collect();
        assert!(
            distinct.len() > 32,
            "clients would reconnect in lock-step: {v:?}"
        );
    }

    #[test]
    fn boundary_finds_message_start() {
        let tag = Tag::new("A").unwrap();
        let mut buf = encode_message(tag, &[1; 10]); // 26 bytes
        buf.extend(encode_message(tag, &[2; 4])); // 20 bytes
        assert_eq!(message_boundary(&buf, 0), 0);
        assert_eq!(message_boundary(&buf, 25), 0);
        assert_eq!(message_boundary(&buf, 26), 26);
        assert_eq!(message_boundary(&buf, 30), 26);
        assert_eq!(message_boundary(&buf, 46), 46);
    }

    #[test]
    fn stop_interrupts_reconnect_backoff() {
        // Nothing listens on this port: the client keeps retrying.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = ClientConfig::new(format!("127.0.0.1:{port}"));
        config.backoff_initial = Duration::from_secs(30);
        let mut client = Client::new(config);
        let stop = client.shutdown_handle();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            stop.trigger();
        });
        let start = Instant::now();
        assert!(matches!(client.recv(), Err(ClientError::Stopped)));
        assert!(start.elapsed() < Duration::from_secs(2));
        t.join().unwrap();
    }
}
