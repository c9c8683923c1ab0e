//! The one way data enters a dataflow: an I/O thread (socket or file
//! reader) feeds a bounded crossbeam channel; a timely source operator on
//! the leader worker drains it without blocking and advances its capability.
//!
//! * Replay: the reader sends batches with a low watermark (the earliest
//!   time it may still send) and blocks when the queue is full — files
//!   wait, nothing is lost. End of input drops the capability, which closes
//!   every window.
//! * Live: the reader never blocks — a full queue drops the message and
//!   counts it as `overflow` — and the operator advances its capability to
//!   `wall clock − lateness` on every heartbeat, so windows close while the
//!   detector is silent. Shutdown drops the capability.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::scheduling::SyncActivator;

use super::context::{BuildContext, ItemStream};
use super::metrics::{DropReason, NodeMetrics};
use crate::item::{Item, Time, TICK_NS};

/// Batches in flight between a replay reader and its source operator.
pub const REPLAY_QUEUE: usize = 8;

/// A batch from the I/O thread.
pub struct Feed {
    pub items: Vec<(Time, Item)>,
    /// No later feed holds an item before this time.
    pub low: Time,
}

/// The I/O thread's end of the ingress queue.
pub struct Ingress {
    /// `None` only while dropping.
    tx: Option<Sender<Feed>>,
    activator: SyncActivator,
    metrics: Arc<NodeMetrics>,
}

impl Ingress {
    /// Replay: waits while the queue is full. False when the dataflow is gone.
    pub fn send(&self, feed: Feed) -> bool {
        if self.tx.as_ref().is_none_or(|tx| tx.send(feed).is_err()) {
            return false;
        }
        let _ = self.activator.activate();
        true
    }

    /// Live: drops (and counts) when the queue is full. False when the
    /// dataflow is gone.
    pub fn offer(&self, feed: Feed) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(feed) {
            Ok(()) => {
                let _ = self.activator.activate();
                true
            }
            Err(TrySendError::Full(f)) => {
                self.metrics
                    .drop_record(DropReason::Overflow, f.items.len() as u64);
                let _ = self.activator.activate();
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }
}

impl Drop for Ingress {
    /// Closing the queue must wake the operator, or it would never see the
    /// end of input and never drop its capability.
    fn drop(&mut self) {
        drop(self.tx.take());
        let _ = self.activator.activate();
    }
}

/// Current wall-clock time in ticks.
pub fn wall_ticks() -> Time {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64 / TICK_NS)
}

/// Keeps the records of `feed` in `[start, stop)`; true when the reader
/// has reached `stop` (its records come in time order: nothing later is
/// wanted, and the source ends there — a stop, see [`RunEnv::stopping`]).
///
/// [`RunEnv::stopping`]: super::RunEnv::stopping
fn clip_feed(feed: &mut Feed, start: Option<Time>, stop: Option<Time>) -> bool {
    let reached = stop.is_some_and(|s| feed.low >= s || feed.items.iter().any(|(t, _)| *t >= s));
    if start.is_some() || reached {
        feed.items
            .retain(|(t, _)| start.is_none_or(|a| *t >= a) && stop.is_none_or(|b| *t < b));
    }
    reached
}

/// Builds a source fed by `start`, which is called once, on the leader
/// worker only, with the sending end; it should spawn the I/O thread with
/// [`BuildContext::spawn_io`]. `live` selects the heartbeat clock.
pub fn channel_source<'s>(
    ctx: &BuildContext<'s>,
    live: bool,
    start: impl FnOnce(Ingress) -> anyhow::Result<()>,
) -> anyhow::Result<ItemStream<'s>> {
    let leader = ctx.is_leader();
    let env = ctx.env.clone();
    let metrics = ctx.metrics.clone();
    // Replay blocks instead of dropping, so a short queue suffices; keeping
    // few payloads in flight also keeps them in the allocator's warm memory
    // (a deep queue cost more in page faults than the whole decode).
    let capacity = if live {
        env.queue_capacity
    } else {
        env.queue_capacity.min(REPLAY_QUEUE)
    };
    let (tx, rx): (Sender<Feed>, Receiver<Feed>) = crossbeam_channel::bounded(capacity.max(1));
    let handoff: Rc<RefCell<Option<SyncActivator>>> = Rc::new(RefCell::new(None));
    let handoff_in = handoff.clone();
    let scope = ctx.scope;
    let stream = source::<_, CapacityContainerBuilder<Vec<Item>>, _, _>(
        ctx.scope,
        &ctx.node,
        move |cap, info| {
            let mut cap = if leader { Some(cap) } else { None };
            let mut chaos = env
                .batch_seed
                .filter(|_| !live && leader)
                .map(super::chaos::Chaos::new);
            *handoff_in.borrow_mut() =
                Some(scope.worker().sync_activator_for(info.address.to_vec()));
            let activator = scope.activator_for(info.address.clone());
            let heartbeat = env.heartbeat;
            let lateness = (env.lateness.as_nanos() as u64) / TICK_NS;
            if live && leader {
                activator.activate();
            }
            // `--start-at` / `--stop-at` (replay only).
            let clip = (!live).then_some((env.start_at, env.stop_at));
            move |output| {
                let Some(c) = cap.as_mut() else { return };
                if let Some(ch) = chaos.as_mut() {
                    // `--batch-seed`: random batches and frontier steps.
                    let mut ended = env.shutdown_requested();
                    while !ended && ch.wants_more() {
                        match rx.try_recv() {
                            Ok(mut feed) => {
                                ended = clip.is_some_and(|(a, b)| clip_feed(&mut feed, a, b));
                                ch.push(feed);
                            }
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => ended = true,
                        }
                    }
                    for (t, batch) in ch.batches() {
                        // (Never below the capability: it stays behind
                        // every record held and every one still to come.)
                        let at = c.delayed(&t.max(*c.time()));
                        output.session(&at).give_iterator(batch.into_iter());
                    }
                    if let Some(f) = ch.frontier(*c.time(), ended) {
                        c.downgrade(&f);
                    }
                    if ended && ch.is_empty() {
                        cap = None;
                    } else if ended || !ch.is_empty() {
                        activator.activate();
                    }
                    return;
                }
                let mut batches = 0;
                let mut run: Vec<Item> = Vec::new();
                loop {
                    match rx.try_recv() {
                        Ok(mut feed) => {
                            let stop = clip.is_some_and(|(a, b)| clip_feed(&mut feed, a, b));
                            let mut items = feed.items.into_iter().peekable();
                            while let Some((t, item)) = items.next() {
                                let t = if t < *c.time() {
                                    metrics.drop_record(DropReason::Late, 1);
                                    *c.time()
                                } else {
                                    t
                                };
                                // Consecutive items of one time go as one
                                // container (not cut to the builder's ~80
                                // items: fewer batches for every operator).
                                run.push(item);
                                while let Some((t2, _)) = items.peek() {
                                    if (*t2).max(*c.time()) != t {
                                        break;
                                    }
                                    run.push(items.next().expect("peeked").1);
                                }
                                output.session(&c.delayed(&t)).give_container(&mut run);
                                run.clear();
                            }
                            if stop {
                                cap = None;
                                return;
                            }
                            if feed.low > *c.time() {
                                c.downgrade(&feed.low);
                            }
                            batches += 1;
                            if batches >= 64 {
                                // Let downstream operators run; come back soon.
                                activator.activate();
                                break;
                            }
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            cap = None;
                            return;
                        }
                    }
                }
                if env.shutdown_requested() {
                    cap = None;
                    return;
                }
                if live {
                    let now = wall_ticks().saturating_sub(lateness);
                    if now > *c.time() {
                        c.downgrade(&now);
                    }
                    activator.activate_after(heartbeat);
                }
            }
        },
    );
    let activator = handoff
        .borrow_mut()
        .take()
        .ok_or_else(|| anyhow::anyhow!("source operator was not constructed"))?;
    if leader {
        start(Ingress {
            tx: Some(tx),
            activator,
            metrics: ctx.metrics.clone(),
        })?;
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(times: &[Time], low: Time) -> Feed {
        let items = times
            .iter()
            .map(|&t| {
                let row = crate::item::Row {
                    table: String::new(),
                    header: Vec::new(),
                    cells: Vec::new(),
                };
                (t, Item::Row(Box::new(row)))
            })
            .collect();
        Feed { items, low }
    }

    fn times(f: &Feed) -> Vec<Time> {
        f.items.iter().map(|(t, _)| *t).collect()
    }

    #[test]
    fn start_and_stop_keep_the_records_in_between_and_end_at_the_stop() {
        let mut f = feed(&[3, 5, 7, 9], 3);
        assert!(!clip_feed(&mut f, Some(5), Some(10)));
        assert_eq!(times(&f), [5, 7, 9]);
        let mut f = feed(&[9, 10, 11], 9);
        assert!(clip_feed(&mut f, None, Some(10)), "a record at the stop");
        assert_eq!(times(&f), [9]);
        let mut f = feed(&[], 12);
        assert!(clip_feed(&mut f, None, Some(10)), "the watermark passed it");
        let mut f = feed(&[1, 2], 1);
        assert!(!clip_feed(&mut f, None, None));
        assert_eq!(times(&f), [1, 2]);
    }
}
