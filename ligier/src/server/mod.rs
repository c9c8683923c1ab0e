//! The dispatcher: a JLigier replacement.
//!
//! Blocking std networking: one reader thread per connection, plus one
//! writer thread per connection that subscribes. Publishing looks up a
//! copy-on-write routing table (tag → subscriber outboxes) that is rebuilt
//! only when a subscription changes, so the per-message path takes no
//! global lock.

mod conn;
mod ingest;
mod outbox;
mod reaper;
mod subscribe;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use daq::controlhost::{Mode, Tag};
use tracing::{info, warn};

use crate::shutdown::Shutdown;
use crate::stats::{Counters, StatusReport, TagStatus};
use crate::wire::DEFAULT_MAX_MESSAGE_SIZE;

use conn::Conn;
use outbox::{Class, Outbox, QueueLimits};
use reaper::Reaper;

/// Dispatcher settings. The defaults suit a shore-station Ligier.
#[derive(Debug, Clone)]
pub struct LigierConfig {
    pub bind: SocketAddr,
    /// Largest accepted payload; a longer prefix closes the connection.
    pub max_message_size: u32,
    /// Per-subscriber bound for `w` ("any") messages, in bytes and count;
    /// the oldest are dropped beyond it.
    pub any_queue_bytes: usize,
    pub any_queue_messages: usize,
    /// Per-subscriber bound for `a` ("all") messages; beyond it the
    /// publisher waits ...
    pub all_queue_bytes: usize,
    /// ... for at most this long, then the subscriber is disconnected.
    pub all_wait: Duration,
    /// Period of the status log lines (None: never).
    pub status_interval: Option<Duration>,
    /// Connections served at once; more are closed right after accept,
    /// with a warning in the log (at most one per status interval).
    pub max_connections: usize,
    /// Called after a wave of connections has ended and their threads
    /// are joined, to make the allocator give freed memory back to the OS
    /// (the binary sets it: only it knows its allocator). See `reaper`.
    pub release_memory: Option<fn()>,
}

impl Default for LigierConfig {
    fn default() -> LigierConfig {
        LigierConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, crate::DEFAULT_PORT)),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            any_queue_bytes: 16 << 20,
            any_queue_messages: 10_000,
            all_queue_bytes: 64 << 20,
            all_wait: Duration::from_secs(10),
            status_interval: Some(Duration::from_secs(60)),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            release_memory: None,
        }
    }
}

impl LigierConfig {
    fn limits(&self) -> QueueLimits {
        QueueLimits {
            any_bytes: self.any_queue_bytes,
            any_msgs: self.any_queue_messages.max(1),
            all_bytes: self.all_queue_bytes,
            all_wait: self.all_wait,
        }
    }
}

/// A subscriber of one tag, as the publishers see it.
#[derive(Clone)]
struct Route {
    outbox: Arc<Outbox>,
    class: Class,
    conn: Arc<Conn>,
}

type RouteTable = HashMap<Tag, Vec<Route>>;

/// Default `max_connections`: far more than a shore station uses (a few
/// dozen), few enough that even a flood of idle peers stays cheap.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;

/// Distinct tags with their own counters; a flood of made-up tags beyond
/// this shares one "(other)" row so that memory stays bounded.
const MAX_TAG_ROWS: usize = 4096;

/// Per-tag counters, shared by readers (in), writers (out) and outboxes
/// (drops); each thread caches the `Arc`s it uses.
#[derive(Default)]
pub(crate) struct TagRegistry {
    map: Mutex<BTreeMap<Tag, Arc<Counters>>>,
    other: Arc<Counters>,
}

impl TagRegistry {
    pub fn get(&self, tag: Tag) -> Arc<Counters> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&tag) {
            return Arc::clone(c);
        }
        if map.len() >= MAX_TAG_ROWS {
            return Arc::clone(&self.other);
        }
        Arc::clone(map.entry(tag).or_default())
    }
}

/// State shared by the acceptor and every connection thread.
struct Server {
    config: LigierConfig,
    started: Instant,
    stop: Shutdown,
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    /// Held for a whole routing-table rebuild.
    rebuilding: Mutex<()>,
    routes: RwLock<Arc<RouteTable>>,
    /// Bumped on every routing change; readers reload when it moves.
    route_generation: AtomicU64,
    tags: Arc<TagRegistry>,
    next_id: AtomicU64,
    refused: AtomicU64,
    /// Connections turned away by `max_connections`.
    over_limit: AtomicU64,
    /// Joins the connection threads.
    reaper: Reaper,
}

impl Server {
    fn current_routes(&self) -> (u64, Arc<RouteTable>) {
        let generation = self.route_generation.load(Ordering::Acquire);
        let table = self.routes.read().unwrap_or_else(|e| e.into_inner());
        (generation, Arc::clone(&table))
    }

    /// Rebuild the routing table from every connection's subscription.
    /// Rebuilds are serialised (each takes its snapshot of the connections
    /// after the previous one installed its table, so none installs a
    /// stale one), but the connection map is locked only to copy it:
    /// accepting and closing connections never wait for a rebuild.
    /// Subscriptions are deduplicated, so this is linear in their size.
    fn rebuild_routes(&self) {
        let _serial = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        let conns: Vec<Arc<Conn>> = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut table: RouteTable = HashMap::new();
        for conn in &conns {
            let Some(outbox) = conn.outbox() else {
                continue;
            };
            for (mode, tag) in conn.subscription().entries {
                let class = match mode {
                    Mode::All => Class::All,
                    Mode::Any => Class::Any,
                };
                table.entry(tag).or_default().push(Route {
                    outbox: Arc::clone(&outbox),
                    class,
                    conn: Arc::clone(conn),
                });
            }
        }
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        self.route_generation.fetch_add(1, Ordering::Release);
    }

    fn register(&self, conn: Arc<Conn>) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn.id, conn);
    }

    fn unregister(&self, conn: &Conn) {
        let removed = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn.id);
        if removed.is_some() && conn.outbox().is_some() {
            self.rebuild_routes();
        }
    }

    fn report(&self) -> StatusReport {
        let conns: Vec<Arc<Conn>> = self
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let (_, routes) = self.current_routes();
        let mut tags: Vec<TagStatus> = self
            .tags
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(tag, c)| TagStatus {
                tag: tag.to_string(),
                subscribers: routes.get(tag).map_or(0, |r| r.len() as u64),
                counters: c.snapshot(),
            })
            .collect();
        let other = self.tags.other.snapshot();
        if other.msgs_in > 0 {
            tags.push(TagStatus {
                tag: "(other)".into(),
                subscribers: 0,
                counters: other,
            });
        }
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            connections_total: self.next_id.load(Ordering::Relaxed),
            connections_refused: self.refused.load(Ordering::Relaxed),
            connections_over_limit: self.over_limit.load(Ordering::Relaxed),
            connections: conns.iter().map(|c| c.status()).collect(),
            tags,
        }
    }
}

/// Entry point: `Ligier::start(config)` binds and serves in the background.
pub struct Ligier;

impl Ligier {
    pub fn start(config: LigierConfig) -> io::Result<LigierHandle> {
        let listener = TcpListener::bind(config.bind)?;
        let addr = listener.local_addr()?;
        let server = Arc::new(Server {
            config,
            started: Instant::now(),
            stop: Shutdown::new(),
            conns: Mutex::new(BTreeMap::new()),
            rebuilding: Mutex::new(()),
            routes: RwLock::new(Arc::new(HashMap::new())),
            route_generation: AtomicU64::new(0),
            tags: Arc::default(),
            next_id: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            over_limit: AtomicU64::new(0),
            reaper: Reaper::new(),
        });
        info!(%addr, "ligier listening");
        let acceptor = {
            let server = Arc::clone(&server);
            thread::Builder::new()
                .name("ligier-accept".into())
                .spawn(move || accept_loop(&server, listener))?
        };
        let status = match server.config.status_interval {
            Some(period) if !period.is_zero() => {
                let server = Arc::clone(&server);
                Some(
                    thread::Builder::new()
                        .name("ligier-status".into())
                        .spawn(move || status_loop(&server, period))?,
                )
            }
            _ => None,
        };
        let reaper = {
            let server = Arc::clone(&server);
            thread::Builder::new()
                .name("ligier-reaper".into())
                .spawn(move || server.reaper.run(server.config.release_memory))?
        };
        Ok(LigierHandle {
            addr,
            server,
            threads: vec![Some(acceptor), status, Some(reaper)],
        })
    }
}

/// A running dispatcher. Dropping it stops it.
pub struct LigierHandle {
    addr: SocketAddr,
    server: Arc<Server>,
    threads: Vec<Option<JoinHandle<()>>>,
}

impl LigierHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn status(&self) -> StatusReport {
        self.server.report()
    }

    /// Close the listener and every connection, as a killed JLigier would
    /// (clients see their sockets close and start reconnecting).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if self.server.stop.is_triggered() {
            return;
        }
        self.server.stop.trigger();
        // Wake the blocking accept() with a throw-away connection.
        let wake = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
            }
            SocketAddr::V6(a) if a.ip().is_unspecified() => {
                SocketAddr::from((Ipv6Addr::LOCALHOST, a.port()))
            }
            other => other,
        };
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let conns: Vec<Arc<Conn>> = self
            .server
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for conn in conns {
            conn.close(&self.server, "ligier shutting down", false);
        }
        self.server.reaper.stop();
        for t in self.threads.iter_mut().filter_map(Option::take) {
            let _ = t.join();
        }
        info!(addr = %self.addr, "ligier stopped");
    }
}

impl Drop for LigierHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn accept_loop(server: &Arc<Server>, listener: TcpListener) {
    let mut last_refusal_log: Option<Instant> = None;
    for stream in listener.incoming() {
        if server.stop.is_triggered() {
            break;
        }
        match stream {
            Ok(stream) => {
                let open = server.conns.lock().unwrap_or_else(|e| e.into_inner()).len();
                if open >= server.config.max_connections {
                    refuse(server, stream, open, &mut last_refusal_log);
                    continue;
                }
                let id = server.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                if let Err(e) = Conn::spawn(server, id, stream) {
                    warn!(conn = id, "cannot serve new connection: {e}");
                }
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                warn!("accept failed: {e}");
                if server.stop.sleep(Duration::from_millis(50)) {
                    break;
                }
            }
        }
    }
}

/// Close a connection beyond `max_connections` at once. ControlHost has no
/// error message, so the peer just sees the socket close; the log says why
/// (once per status interval, with the count since).
fn refuse(server: &Server, stream: TcpStream, open: usize, last_log: &mut Option<Instant>) {
    let n = server.over_limit.fetch_add(1, Ordering::Relaxed) + 1;
    let every = server
        .config
        .status_interval
        .unwrap_or(Duration::from_secs(60));
    if last_log.is_none_or(|t| t.elapsed() >= every) {
        *last_log = Some(Instant::now());
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        warn!(
            %peer,
            open,
            refused_so_far = n,
            "connection refused: {open} connections open, the limit is {} (--max-connections)",
            server.config.max_connections
        );
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// The tags worth a status line: those with messages in or drops since
/// the last report (`last`: per tag, messages in and drops then). The rest
/// are only counted, so a Ligier that once saw thousands of tags does not
/// log thousands of lines per interval.
fn active_tags<'a>(
    report: &'a StatusReport,
    last: &HashMap<String, (u64, u64)>,
) -> (Vec<&'a TagStatus>, usize) {
    let (active, quiet): (Vec<&TagStatus>, Vec<&TagStatus>) = report.tags.iter().partition(|t| {
        let before = last.get(&t.tag).copied().unwrap_or((0, 0));
        (t.counters.msgs_in, t.counters.drops) != before
    });
    (active, quiet.len())
}

fn status_loop(server: &Server, period: Duration) {
    let mut last: HashMap<String, (u64, u64)> = HashMap::new();
    while !server.stop.sleep(period) {
        let report = server.report();
        let secs = period.as_secs_f64();
        let (active, quiet) = active_tags(&report, &last);
        for t in active {
            let c = &t.counters;
            let (msgs_before, drops_before) = last.get(&t.tag).copied().unwrap_or((0, 0));
            info!(
                tag = %t.tag,
                subscribers = t.subscribers,
                msgs_in = c.msgs_in,
                bytes_in = c.bytes_in,
                msgs_out = c.msgs_out,
                bytes_out = c.bytes_out,
                drops = c.drops,
                rate_hz = format_args!("{:.1}", (c.msgs_in - msgs_before) as f64 / secs),
                new_drops = c.drops - drops_before,
                "ligier status"
            );
        }
        last = report
            .tags
            .iter()
            .map(|t| (t.tag.clone(), (t.counters.msgs_in, t.counters.drops)))
            .collect();
        for c in report.connections.iter().filter(|c| c.counters.drops > 0) {
            info!(
                conn = c.id,
                peer = %c.peer,
                name = c.name.as_deref().unwrap_or("-"),
                drops = c.counters.drops,
                drops_by_tag = ?c.drops_by_tag,
                queued = c.queued_msgs,
                "ligier status: subscriber dropping messages"
            );
        }
        info!(
            connections = report.connections.len(),
            accepted = report.connections_total,
            closed_for_errors = report.connections_refused,
            refused_over_limit = report.connections_over_limit,
            tags = report.tags.len(),
            quiet_tags = quiet,
            "ligier status"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::CounterSnapshot;

    fn tag(name: &str, msgs_in: u64, drops: u64) -> TagStatus {
        TagStatus {
            tag: name.into(),
            subscribers: 0,
            counters: CounterSnapshot {
                msgs_in,
                drops,
                ..CounterSnapshot::default()
            },
        }
    }

    #[test]
    fn status_lines_are_for_active_tags_only() {
        let mut report = StatusReport {
            version: String::new(),
            uptime_s: 0.0,
            connections_total: 0,
            connections_refused: 0,
            connections_over_limit: 0,
            connections: Vec::new(),
            tags: (0..20_000).map(|i| tag(&format!("T{i}"), 1, 0)).collect(),
        };
        let first: HashMap<String, (u64, u64)> = HashMap::new();
        assert_eq!(active_tags(&report, &first).0.len(), 20_000);
        let last: HashMap<String, (u64, u64)> = report
            .tags
            .iter()
            .map(|t| (t.tag.clone(), (t.counters.msgs_in, t.counters.drops)))
            .collect();
        report.tags[7].counters.msgs_in += 5;
        report.tags[9].counters.drops += 1;
        let (active, quiet) = active_tags(&report, &last);
        let names: Vec<&str> = active.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(names, ["T7", "T9"]);
        assert_eq!(quiet, 19_998);
    }
}
