//! One client connection: its reader thread (publications and control
//! messages) and, once it subscribes, its writer thread.

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown as NetShutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Instant;

use daq::controlhost::{encode_message, Subscription, Tag, PREFIX_LEN};
use tracing::{debug, info, warn};

use super::ingest::{Frame, Ingest};
use super::outbox::{Class, Entry, Outbox, PushError};
use super::subscribe::{self, MAX_SUBSCRIPTION_TAGS};
use super::{RouteTable, Server, MAX_TAG_ROWS};
use crate::stats::{ConnectionStatus, Counters};
use crate::wire::ReadError;

/// Connection threads need little stack; hundreds of them should not
/// reserve the default 2 MiB each.
const THREAD_STACK: usize = 256 << 10;
/// Longest `_MyId` nickname kept.
const MAX_NAME: usize = 64;

pub(super) struct Conn {
    pub id: u64,
    peer: SocketAddr,
    /// Kept to shut the socket down from any thread.
    stream: TcpStream,
    counters: Arc<Counters>,
    connected_at: Instant,
    name: Mutex<Option<String>>,
    subscription: Mutex<Subscription>,
    /// Created (with its writer thread) on the first request that needs to
    /// send something back; pure publishers never get one.
    outbox: OnceLock<Arc<Outbox>>,
    closed: AtomicBool,
}

impl Conn {
    pub fn spawn(server: &Arc<Server>, id: u64, stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let input = stream.try_clone()?;
        let conn = Arc::new(Conn {
            id,
            peer,
            stream,
            counters: Arc::new(Counters::default()),
            connected_at: Instant::now(),
            name: Mutex::new(None),
            subscription: Mutex::new(Subscription::new()),
            outbox: OnceLock::new(),
            closed: AtomicBool::new(false),
        });
        server.register(Arc::clone(&conn));
        info!(conn = id, %peer, "connection accepted");
        let spawned = {
            let (server2, conn) = (Arc::clone(server), Arc::clone(&conn));
            let builder = thread::Builder::new()
                .name(format!("ligier-read-{id}"))
                .stack_size(THREAD_STACK);
            server
                .reaper
                .spawn(builder, move || read_loop(&server2, &conn, input))
        };
        if let Err(e) = spawned {
            conn.close(server, &format!("no reader thread: {e}"), true);
            return Err(e);
        }
        Ok(())
    }

    pub fn outbox(&self) -> Option<Arc<Outbox>> {
        self.outbox.get().cloned()
    }

    pub fn subscription(&self) -> Subscription {
        self.subscription
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Only the reader thread calls this, so creation cannot race.
    fn ensure_outbox(self: &Arc<Self>, server: &Arc<Server>) -> Result<Arc<Outbox>, String> {
        if let Some(outbox) = self.outbox.get() {
            return Ok(Arc::clone(outbox));
        }
        let outbox = Arc::new(Outbox::new(
            server.config.limits(),
            Arc::clone(&self.counters),
            Arc::clone(&server.tags),
        ));
        let mut output = self
            .stream
            .try_clone()
            .map_err(|e| format!("cannot clone socket for writing: {e}"))?;
        let (server2, conn, out) = (Arc::clone(server), Arc::clone(self), Arc::clone(&outbox));
        let builder = thread::Builder::new()
            .name(format!("ligier-write-{}", self.id))
            .stack_size(THREAD_STACK);
        server
            .reaper
            .spawn(builder, move || {
                if let Err(e) = out.run_writer(&mut output) {
                    let abrupt = is_abrupt_close(&e);
                    conn.close(&server2, &format!("write failed: {e}"), !abrupt);
                }
            })
            .map_err(|e| format!("no writer thread: {e}"))?;
        let _ = self.outbox.set(Arc::clone(&outbox));
        Ok(outbox)
    }

    /// Close once: shut the socket (both threads then end), discard the
    /// queue, leave the routing table, and say why in the log.
    pub fn close(&self, server: &Server, reason: &str, error: bool) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // Bookkeeping first, so that the status is final by the time the
        // peer sees its socket close.
        if error {
            server.refused.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(outbox) = self.outbox.get() {
            outbox.close();
        }
        server.unregister(self);
        let _ = self.stream.shutdown(NetShutdown::Both);
        let c = self.counters.snapshot();
        let name = self.name.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let name = name.as_deref().unwrap_or("-");
        if error {
            warn!(
                conn = self.id, peer = %self.peer, name, msgs_in = c.msgs_in, msgs_out = c.msgs_out,
                drops = c.drops, "closing connection: {reason}"
            );
        } else {
            info!(
                conn = self.id, peer = %self.peer, name, msgs_in = c.msgs_in, msgs_out = c.msgs_out,
                drops = c.drops, "connection closed: {reason}"
            );
        }
    }

    pub fn status(&self) -> ConnectionStatus {
        let outbox = self.outbox.get();
        let (queued_msgs, queued_bytes) = outbox.map_or((0, 0), |o| o.queued());
        let drops_by_tag = outbox
            .map(|o| {
                o.drops_by_tag()
                    .into_iter()
                    .map(|(t, n)| (t.to_string(), n))
                    .collect()
            })
            .unwrap_or_default();
        ConnectionStatus {
            id: self.id,
            peer: self.peer.to_string(),
            name: self.name.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            subscription: String::from_utf8_lossy(&self.subscription().to_payload()).into_owned(),
            push_mode: outbox.is_some_and(|o| o.is_push_mode()),
            connected_s: self.connected_at.elapsed().as_secs_f64(),
            queued_msgs,
            queued_bytes,
            counters: self.counters.snapshot(),
            drops_by_tag,
        }
    }
}

/// The messages of one read batch destined for one subscriber.
struct Stage {
    outbox: Arc<Outbox>,
    conn: Arc<Conn>,
    entries: Vec<Entry>,
}

/// Per-reader state that keeps the publication path free of global locks:
/// the routing table of a known generation, one stage per subscriber
/// reached so far, and the stages of the last tag seen.
struct Reader {
    generation: u64,
    routes: Arc<RouteTable>,
    stages: Vec<Stage>,
    stage_of: HashMap<usize, usize>,
    last: Option<(Tag, Vec<(usize, Class)>)>,
    tag_counters: HashMap<Tag, Arc<Counters>>,
    /// (tag, messages, bytes) received in this batch.
    tag_in: Vec<(Tag, u64, u64)>,
    warned_control: bool,
}

fn read_loop(server: &Arc<Server>, conn: &Arc<Conn>, mut stream: TcpStream) {
    let mut ingest = Ingest::new(server.config.max_message_size);
    let mut frames = Vec::new();
    // Nothing here allocates until the peer sends something: with a
    // per-thread allocator (mimalloc), a thread that never allocates
    // never gets a heap, so an idle connection costs little more than its
    // stack.
    let (generation, routes) = server.current_routes();
    let mut reader = Reader {
        generation,
        routes,
        stages: Vec::new(),
        stage_of: HashMap::new(),
        last: None,
        tag_counters: HashMap::new(),
        tag_in: Vec::new(),
        warned_control: false,
    };
    let (reason, error) = loop {
        match ingest.read_batch(&mut stream, &mut frames) {
            Ok(data) => {
                if let Err(reason) = reader.handle_batch(server, conn, &data, &frames) {
                    break (reason, true);
                }
            }
            Err(ReadError::Closed) => break ("closed by peer".to_string(), false),
            Err(ReadError::Io(e)) if is_abrupt_close(&e) => break (e.to_string(), false),
            Err(e) if server.stop.is_triggered() => break (e.to_string(), false),
            Err(e) => break (e.to_string(), true),
        }
    };
    conn.close(server, &reason, error);
}

impl Reader {
    fn handle_batch(
        &mut self,
        server: &Arc<Server>,
        conn: &Arc<Conn>,
        data: &Arc<Vec<u8>>,
        frames: &[Frame],
    ) -> Result<(), String> {
        for f in frames {
            if f.tag.is_control() {
                // Keep order with what this connection published before.
                self.dispatch(server, conn);
                let payload = &data[f.start + PREFIX_LEN..f.start + f.len];
                self.control(server, conn, f.tag, payload)?;
                continue;
            }
            match self.tag_in.iter_mut().find(|(t, _, _)| *t == f.tag) {
                Some((_, n, b)) => {
                    *n += 1;
                    *b += f.len as u64;
                }
                None => self.tag_in.push((f.tag, 1, f.len as u64)),
            }
            if server.route_generation.load(Ordering::Acquire) != self.generation {
                self.dispatch(server, conn);
                (self.generation, self.routes) = server.current_routes();
                self.stages.clear();
                self.stage_of.clear();
                self.last = None;
            }
            if self.last.as_ref().is_none_or(|(t, _)| *t != f.tag) {
                self.last = Some((f.tag, self.slots(f.tag)));
            }
            let (_, slots) = self.last.as_ref().expect("just set");
            for &(slot, class) in slots {
                self.stages[slot].entries.push(Entry {
                    data: Arc::clone(data),
                    start: f.start,
                    len: f.len,
                    tag: f.tag,
                    class,
                });
            }
        }
        self.dispatch(server, conn);
        Ok(())
    }

    /// Stage indices (created as needed) of the subscribers of `tag`.
    fn slots(&mut self, tag: Tag) -> Vec<(usize, Class)> {
        let Some(routes) = self.routes.get(&tag) else {
            return Vec::new();
        };
        let mut slots = Vec::with_capacity(routes.len());
        for route in routes {
            let key = Arc::as_ptr(&route.outbox) as usize;
            let stages = &mut self.stages;
            let slot = *self.stage_of.entry(key).or_insert_with(|| {
                stages.push(Stage {
                    outbox: Arc::clone(&route.outbox),
                    conn: Arc::clone(&route.conn),
                    entries: Vec::new(),
                });
                stages.len() - 1
            });
            slots.push((slot, route.class));
        }
        slots
    }

    /// Hand the staged messages to their subscribers and publish the
    /// batch's input counters.
    fn dispatch(&mut self, server: &Arc<Server>, conn: &Conn) {
        for stage in &mut self.stages {
            if stage.entries.is_empty() {
                continue;
            }
            if let Err(PushError::TooSlow(wait)) = stage.outbox.push_many(&mut stage.entries) {
                stage.entries.clear();
                stage.conn.close(
                    server,
                    &format!(
                        "'all' subscriber too slow: its queue stayed above {} bytes for {:.1} s",
                        server.config.all_queue_bytes,
                        wait.as_secs_f64()
                    ),
                    true,
                );
            }
            stage.entries.clear();
        }
        let (mut msgs, mut bytes) = (0, 0);
        for (tag, n, b) in self.tag_in.drain(..) {
            msgs += n;
            bytes += b;
            if self.tag_counters.len() > MAX_TAG_ROWS {
                self.tag_counters.clear();
            }
            self.tag_counters
                .entry(tag)
                .or_insert_with(|| server.tags.get(tag))
                .add_in_many(n, b);
        }
        if msgs > 0 {
            conn.counters.add_in_many(msgs, bytes);
        }
    }

    fn control(
        &mut self,
        server: &Arc<Server>,
        conn: &Arc<Conn>,
        tag: Tag,
        payload: &[u8],
    ) -> Result<(), String> {
        match tag.as_str() {
            "_Subscri" => {
                // Parsed without any lock held: a huge subscription costs
                // only its own connection's time.
                let parsed = subscribe::parse(payload, MAX_SUBSCRIPTION_TAGS)
                    .map_err(|e| format!("bad _Subscri payload ({} bytes): {e}", payload.len()))?;
                info!(conn = conn.id, peer = %conn.peer, subscription = %parsed.summary(), "subscribed");
                *conn.subscription.lock().unwrap_or_else(|e| e.into_inner()) = parsed.subscription;
                conn.ensure_outbox(server)?;
                server.rebuild_routes();
            }
            "_Always" => conn.ensure_outbox(server)?.set_push_mode(),
            "_Gime" => conn.ensure_outbox(server)?.add_credit(),
            "_MyId" | "_UniqueI" => {
                let name: String = String::from_utf8_lossy(payload)
                    .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .chars()
                    .take(MAX_NAME)
                    .collect();
                debug!(conn = conn.id, name, "client named itself");
                *conn.name.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
            }
            "_ShowSta" => {
                let json = serde_json::to_vec(&server.report())
                    .map_err(|e| format!("cannot encode status: {e}"))?;
                let wire = encode_message(tag, &json);
                let reply = Entry {
                    len: wire.len(),
                    data: Arc::new(wire),
                    start: 0,
                    tag,
                    class: Class::Reply,
                };
                // A reply never waits and is never dropped.
                let _ = conn.ensure_outbox(server)?.push(reply);
            }
            other => {
                if !self.warned_control {
                    self.warned_control = true;
                    warn!(
                        conn = conn.id,
                        peer = %conn.peer,
                        "control message {other:?} is not supported by this dispatcher; ignored"
                    );
                }
            }
        }
        Ok(())
    }
}

/// A peer that went away without a goodbye: ordinary for clients that
/// are killed, so logged as a close rather than as a protocol error.
fn is_abrupt_close(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}
