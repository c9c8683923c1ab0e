//! One subscriber's outgoing queue and the thread that drains it.
//!
//! Entries are ranges of shared, reference-counted read chunks (see
//! `ingest`): fanning a message out to a hundred subscribers queues a
//! hundred references, never a hundred copies. Publishers add a whole read
//! batch under one lock and wake the writer once; the writer takes
//! everything deliverable in one lock, merges ranges that are contiguous in
//! the same chunk, and hands them to the kernel with vectored writes.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use daq::controlhost::Tag;

use super::TagRegistry;
use crate::stats::Counters;

/// One queued message: `data[start..start + len]`, prefix + payload as
/// received.
pub(crate) struct Entry {
    pub data: Arc<Vec<u8>>,
    pub start: usize,
    pub len: usize,
    pub tag: Tag,
    pub class: Class,
    /// When the publisher's read batch holding it was handed to the
    /// dispatcher: the start of its publish → write queueing time.
    pub queued: Instant,
}

/// How an entry was queued, which decides what happens when the queue is
/// full and whether it needs a `_Gime` credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// `w` subscription: the oldest such entry is dropped when full.
    Any,
    /// `a` subscription: the publisher waits for room, up to a limit.
    All,
    /// Answer to this connection's own control request (`_ShowSta`).
    Reply,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub any_bytes: usize,
    pub any_msgs: usize,
    pub all_bytes: usize,
    pub all_wait: Duration,
}

#[derive(Debug)]
pub(crate) enum PushError {
    Closed,
    /// The "all" queue stayed full for the whole allowed wait.
    TooSlow(Duration),
}

pub(crate) struct Outbox {
    state: Mutex<State>,
    /// The writer sleeps here while nothing is deliverable.
    ready: Condvar,
    /// Publishers of "all" messages sleep here while the queue is full.
    space: Condvar,
    limits: QueueLimits,
    /// The owning connection's counters.
    counters: Arc<Counters>,
    tags: Arc<TagRegistry>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Entry>,
    any_msgs: usize,
    any_bytes: usize,
    all_bytes: usize,
    /// `_Always` received: deliver without waiting for `_Gime` credits.
    push_mode: bool,
    credits: u64,
    closed: bool,
    /// Waiters are tracked so that the hot path only pays for a futex wake
    /// when somebody actually sleeps.
    writer_waiting: bool,
    publishers_waiting: usize,
    drops_by_tag: HashMap<Tag, u64>,
    tag_counters: HashMap<Tag, Arc<Counters>>,
}

impl Entry {
    /// What queueing this entry holds in memory: its share of the chunk
    /// it lives in (a chunk may be larger than the messages in it) and the
    /// queue slot. The queue bounds count this, so that they bound memory.
    fn cost(&self) -> usize {
        let (used, capacity) = (self.data.len().max(1), self.data.capacity());
        let share = (self.len as u128 * capacity as u128).div_ceil(used as u128) as usize;
        share.max(self.len) + std::mem::size_of::<Entry>()
    }
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Any => "any",
            Class::All => "all",
            Class::Reply => "reply",
        }
    }
}

/// Publish → written to the subscriber's socket, per subscriber class
/// (`/metrics` of `km3mon ligier --metrics`, docs/web.md).
fn queue_latency(class: Class) -> &'static latency::Latency {
    static F: OnceLock<[Arc<latency::Latency>; 3]> = OnceLock::new();
    let all = F.get_or_init(|| {
        let f = latency::global().histogram(
            "km3mon_ligier_queue_seconds",
            "Publish (the publisher's read) to written to the subscriber's socket, by \
             subscriber class (any: w, all: a, reply: answers to _ShowSta).",
            &["class"],
        );
        [Class::Any, Class::All, Class::Reply].map(|c| f.get(&[c.name()]))
    });
    &all[class as usize]
}

/// One lock per class and batch: the writer's hot path.
fn record_queueing(batch: &[Entry]) {
    let now = Instant::now();
    for class in [Class::Any, Class::All, Class::Reply] {
        let mut of_class = batch.iter().filter(|e| e.class == class).peekable();
        if of_class.peek().is_some() {
            queue_latency(class).record_all(
                of_class.map(|e| now.saturating_duration_since(e.queued).as_secs_f64()),
            );
        }
    }
}

/// Most messages taken per batch: bounds the writer's private backlog.
const MAX_BATCH: usize = 4096;
/// Slices per `writev` (Linux allows 1024).
const MAX_IOV: usize = 512;

impl Outbox {
    pub fn new(limits: QueueLimits, counters: Arc<Counters>, tags: Arc<TagRegistry>) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            space: Condvar::new(),
            limits,
            counters,
            tags,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue one entry.
    pub fn push(&self, entry: Entry) -> Result<(), PushError> {
        let mut one = vec![entry];
        self.push_many(&mut one)
    }

    /// Queue a publisher's batch in order, under one lock, with one wake-up.
    /// `entries` is left empty (entries after an error are discarded).
    pub fn push_many(&self, entries: &mut Vec<Entry>) -> Result<(), PushError> {
        let mut st = self.lock();
        for entry in entries.drain(..) {
            if st.closed {
                return Err(PushError::Closed);
            }
            let len = entry.cost();
            match entry.class {
                Class::Any => {
                    while st.any_msgs > 0
                        && (st.any_msgs >= self.limits.any_msgs
                            || st.any_bytes + len > self.limits.any_bytes)
                    {
                        self.drop_oldest_any(&mut st);
                    }
                    st.any_msgs += 1;
                    st.any_bytes += len;
                }
                Class::All => {
                    if st.all_bytes > 0 && st.all_bytes + len > self.limits.all_bytes {
                        st = self.wait_for_space(st, len)?;
                    }
                    st.all_bytes += len;
                }
                Class::Reply => {}
            }
            st.queue.push_back(entry);
        }
        if st.writer_waiting {
            drop(st);
            self.ready.notify_one();
        }
        Ok(())
    }

    fn wait_for_space<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        len: usize,
    ) -> Result<MutexGuard<'a, State>, PushError> {
        // The writer may be asleep on entries queued earlier in this batch.
        if st.writer_waiting {
            self.ready.notify_one();
        }
        let deadline = Instant::now() + self.limits.all_wait;
        while st.all_bytes > 0 && st.all_bytes + len > self.limits.all_bytes {
            let now = Instant::now();
            if now >= deadline {
                return Err(PushError::TooSlow(self.limits.all_wait));
            }
            st.publishers_waiting += 1;
            st = self
                .space
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            st.publishers_waiting -= 1;
            if st.closed {
                return Err(PushError::Closed);
            }
        }
        Ok(st)
    }

    fn drop_oldest_any(&self, st: &mut State) {
        let Some(pos) = st.queue.iter().position(|e| e.class == Class::Any) else {
            st.any_msgs = 0;
            st.any_bytes = 0;
            return;
        };
        let entry = st.queue.remove(pos).expect("position is in range");
        st.any_msgs -= 1;
        st.any_bytes -= entry.cost();
        self.counters.add_drop();
        *st.drops_by_tag.entry(entry.tag).or_default() += 1;
        let tags = &self.tags;
        st.tag_counters
            .entry(entry.tag)
            .or_insert_with(|| tags.get(entry.tag))
            .add_drop();
    }

    fn wake_writer(&self, st: MutexGuard<'_, State>) {
        let waiting = st.writer_waiting;
        drop(st);
        if waiting {
            self.ready.notify_one();
        }
    }

    /// `_Always`: deliver everything as it comes.
    pub fn set_push_mode(&self) {
        let mut st = self.lock();
        st.push_mode = true;
        self.wake_writer(st);
    }

    /// `_Gime`: one more message may be sent in request mode.
    pub fn add_credit(&self) {
        let mut st = self.lock();
        st.credits = st.credits.saturating_add(1);
        self.wake_writer(st);
    }

    /// Stop accepting and wake everybody; queued messages are discarded.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.queue.clear();
        drop(st);
        self.ready.notify_all();
        self.space.notify_all();
    }

    pub fn is_push_mode(&self) -> bool {
        self.lock().push_mode
    }

    /// (messages, bytes) waiting in the queue.
    pub fn queued(&self) -> (u64, u64) {
        let st = self.lock();
        (
            st.queue.len() as u64,
            st.queue.iter().map(|e| e.len as u64).sum(),
        )
    }

    pub fn drops_by_tag(&self) -> Vec<(Tag, u64)> {
        self.lock()
            .drops_by_tag
            .iter()
            .map(|(t, n)| (*t, *n))
            .collect()
    }

    /// Move everything deliverable into `batch`, sleeping until there is
    /// something. Returns false once the outbox is closed.
    fn next_batch(&self, batch: &mut Vec<Entry>) -> bool {
        let mut st = self.lock();
        loop {
            if st.closed {
                return false;
            }
            let mut freed_all = false;
            while batch.len() < MAX_BATCH {
                let Some(front) = st.queue.front() else {
                    break;
                };
                let class = front.class;
                if class != Class::Reply && !st.push_mode {
                    if st.credits == 0 {
                        break;
                    }
                    st.credits -= 1;
                }
                let entry = st.queue.pop_front().expect("front exists");
                match class {
                    Class::Any => {
                        st.any_msgs -= 1;
                        st.any_bytes -= entry.cost();
                    }
                    Class::All => {
                        st.all_bytes -= entry.cost();
                        freed_all = true;
                    }
                    Class::Reply => {}
                }
                batch.push(entry);
            }
            if freed_all && st.publishers_waiting > 0 {
                self.space.notify_all();
            }
            if !batch.is_empty() {
                return true;
            }
            st.writer_waiting = true;
            st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
            st.writer_waiting = false;
        }
    }

    /// The writer thread's body: drain until closed or the socket fails.
    pub fn run_writer(&self, stream: &mut TcpStream) -> io::Result<()> {
        let mut batch = Vec::new();
        let mut segments = Vec::new();
        let mut per_tag: Vec<(Tag, u64, u64)> = Vec::new();
        let mut tag_counters: HashMap<Tag, Arc<Counters>> = HashMap::new();
        while self.next_batch(&mut batch) {
            segments.clear();
            for (i, e) in batch.iter().enumerate() {
                match segments.last_mut() {
                    Some(seg) if continues(&batch, seg, e) => seg.end += e.len,
                    _ => segments.push(Segment {
                        entry: i,
                        start: e.start,
                        end: e.start + e.len,
                    }),
                }
            }
            write_segments(stream, &batch, &segments)?;
            record_queueing(&batch);
            let mut bytes = 0u64;
            per_tag.clear();
            for e in &batch {
                bytes += e.len as u64;
                match per_tag.iter_mut().find(|(t, _, _)| *t == e.tag) {
                    Some((_, n, b)) => {
                        *n += 1;
                        *b += e.len as u64;
                    }
                    None => per_tag.push((e.tag, 1, e.len as u64)),
                }
            }
            for &(tag, n, b) in &per_tag {
                let tags = &self.tags;
                tag_counters
                    .entry(tag)
                    .or_insert_with(|| tags.get(tag))
                    .add_out(n, b);
            }
            self.counters.add_out(batch.len() as u64, bytes);
            batch.clear();
        }
        Ok(())
    }
}

/// A run of bytes to write: `batch[entry].data[start..end]`, possibly
/// spanning several consecutive messages of the same chunk.
struct Segment {
    entry: usize,
    start: usize,
    end: usize,
}

fn continues(batch: &[Entry], seg: &Segment, next: &Entry) -> bool {
    Arc::ptr_eq(&batch[seg.entry].data, &next.data) && seg.end == next.start
}

/// Write every segment completely, many per `writev`.
fn write_segments(stream: &mut TcpStream, batch: &[Entry], segments: &[Segment]) -> io::Result<()> {
    let bytes = |s: &Segment| &batch[s.entry].data[s.start..s.end];
    let mut index = 0; // first segment not completely written
    let mut offset = 0; // bytes of segments[index] already written
    let mut slices = [IoSlice::new(&[]); MAX_IOV];
    while index < segments.len() {
        let mut count = 0;
        for (k, seg) in segments[index..].iter().take(MAX_IOV).enumerate() {
            let skip = if k == 0 { offset } else { 0 };
            slices[k] = IoSlice::new(&bytes(seg)[skip..]);
            count += 1;
        }
        let mut written = match stream.write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while written > 0 && index < segments.len() {
            let left = segments[index].end - segments[index].start - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: &str, len: usize, class: Class) -> Entry {
        Entry {
            data: Arc::new(vec![0; len]),
            start: 0,
            len,
            tag: Tag::new(tag).unwrap(),
            class,
            queued: Instant::now(),
        }
    }

    /// Room for 100 bytes of payload in two entries.
    fn limits() -> QueueLimits {
        QueueLimits {
            any_bytes: 100 + 2 * std::mem::size_of::<Entry>(),
            any_msgs: 3,
            all_bytes: 100,
            all_wait: Duration::from_millis(50),
        }
    }

    fn outbox(counters: Arc<Counters>) -> Outbox {
        Outbox::new(limits(), counters, Arc::new(TagRegistry::default()))
    }

    #[test]
    fn any_queue_drops_oldest() {
        let counters = Arc::new(Counters::default());
        let out = outbox(counters.clone());
        for i in 0..5 {
            out.push(entry(if i < 2 { "OLD" } else { "NEW" }, 10, Class::Any))
                .unwrap();
        }
        assert_eq!(out.queued().0, 3);
        assert_eq!(counters.snapshot().drops, 2);
        assert_eq!(out.drops_by_tag(), vec![(Tag::new("OLD").unwrap(), 2)]);
        assert_eq!(out.tags.get(Tag::new("OLD").unwrap()).snapshot().drops, 2);
        // A byte limit hit drops as many as needed.
        out.push(entry("BIG", 90, Class::Any)).unwrap();
        assert_eq!(out.queued(), (2, 100));
    }

    #[test]
    fn queues_count_the_memory_an_entry_holds() {
        // A 100-byte message in a chunk allocated for 400 holds 400.
        let mut chunk = Vec::with_capacity(400);
        chunk.resize(100, 0u8);
        let e = Entry {
            data: Arc::new(chunk),
            start: 0,
            len: 100,
            tag: Tag::new("A").unwrap(),
            class: Class::Any,
            queued: Instant::now(),
        };
        assert!(e.cost() >= 400, "{}", e.cost());
        let exact = entry("A", 100, Class::Any);
        assert_eq!(exact.cost(), 100 + std::mem::size_of::<Entry>());
    }

    #[test]
    fn all_queue_times_out_when_full() {
        let out = outbox(Arc::new(Counters::default()));
        out.push(entry("A", 60, Class::All)).unwrap();
        let start = Instant::now();
        assert!(matches!(
            out.push(entry("A", 60, Class::All)),
            Err(PushError::TooSlow(_))
        ));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn request_mode_sends_one_per_credit() {
        let out = outbox(Arc::new(Counters::default()));
        out.push(entry("A", 1, Class::Any)).unwrap();
        out.push(entry("A", 1, Class::Any)).unwrap();
        out.add_credit();
        let mut batch = Vec::new();
        assert!(out.next_batch(&mut batch));
        assert_eq!(batch.len(), 1);
        out.set_push_mode();
        batch.clear();
        assert!(out.next_batch(&mut batch));
        assert_eq!(batch.len(), 1);
        out.close();
        assert!(!out.next_batch(&mut batch));
    }

    #[test]
    fn contiguous_ranges_of_one_chunk_merge() {
        let data = Arc::new((0..30u8).collect::<Vec<_>>());
        let part = |start, len| Entry {
            data: Arc::clone(&data),
            start,
            len,
            tag: Tag::new("A").unwrap(),
            class: Class::Any,
            queued: Instant::now(),
        };
        let batch = vec![part(0, 10), part(10, 5), part(20, 10)];
        let seg = Segment {
            entry: 0,
            start: 0,
            end: 10,
        };
        assert!(continues(&batch, &seg, &batch[1]));
        let seg = Segment {
            entry: 1,
            start: 10,
            end: 15,
        };
        assert!(!continues(&batch, &seg, &batch[2]));
    }
}
