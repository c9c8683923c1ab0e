//! The hand-off from a node's operator (on a dataflow worker) to its
//! writer thread (`ctx.spawn_io`): bounded, so that a hung or slow disk
//! cannot grow the process's memory without limit.
//!
//! What happens when it is full depends on the mode, the same for every
//! sink (ARCHITECTURE.md, "Writer queues"):
//! - **replay: block.** The worker waits for the writer, so the files do
//!   not depend on the disk's speed (time is data time: the same input
//!   gives the same bytes). A hung disk stalls the replay, which has
//!   nothing else to do.
//! - **live: drop and count.** The item is dropped and counted as an
//!   `Overflow` drop of the node with a detail naming the queue, so a slow
//!   disk never stalls the monitors that share the worker; the writer
//!   marks the node FAILED itself when a write fails.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::context::Mode;
use super::metrics::{DropReason, NodeMetrics};

/// Items a writer queue holds unless a node says otherwise: batches of
/// rows, lines or plots, each the output of one timestamp.
pub const DEFAULT_CAPACITY: usize = 1024;

pub struct WriterQueue<T> {
    tx: Sender<T>,
    block: bool,
    metrics: Arc<NodeMetrics>,
    what: &'static str,
}

/// A queue of `capacity` items; `what` names it in the drop counts
/// ("csv writer queue full").
pub fn writer_queue<T>(
    capacity: usize,
    mode: &Mode,
    metrics: Arc<NodeMetrics>,
    what: &'static str,
) -> (WriterQueue<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let block = matches!(mode, Mode::Replay { .. });
    (
        WriterQueue {
            tx,
            block,
            metrics,
            what,
        },
        rx,
    )
}

impl<T> WriterQueue<T> {
    /// Hands `item` (holding `records` records: what a drop counts) to the
    /// writer. A writer that has ended (it gave its file up) takes nothing
    /// more and that is not counted here: the writer reports its losses.
    pub fn send(&self, item: T, records: u64) {
        if self.block {
            let _ = self.tx.send(item);
        } else if let Err(TrySendError::Full(_)) = self.tx.try_send(item) {
            self.metrics
                .drop_detail(DropReason::Overflow, self.what, records);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn live_drops_and_counts_when_full_a_replay_waits() {
        let metrics = Arc::new(NodeMetrics::new());
        let (q, rx) = writer_queue(2, &Mode::Live, metrics.clone(), "test queue full");
        for i in 0..5 {
            q.send(i, 10);
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1]);
        assert_eq!(metrics.drops(DropReason::Overflow), 30);
        let details = metrics.drop_details();
        assert_eq!(
            details.get(&(DropReason::Overflow, "test queue full".to_string())),
            Some(&30)
        );

        let replay = Mode::Replay {
            files: Vec::new(),
            speed: None,
        };
        let metrics = Arc::new(NodeMetrics::new());
        let (q, rx) = writer_queue(1, &replay, metrics.clone(), "test queue full");
        let sender = std::thread::spawn(move || {
            for i in 0..3 {
                q.send(i, 1);
            }
        });
        // The sender waits for the slow writer; nothing is lost.
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !sender.is_finished(),
            "a replay must wait when the queue is full"
        );
        assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
        sender.join().unwrap();
        assert_eq!(metrics.drops(DropReason::Overflow), 0);
    }
}
