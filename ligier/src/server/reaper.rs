//! Connection threads are joined as they end, and once a wave of them has
//! ended the allocator is asked to give the freed memory back.
//!
//! Why: mimalloc (the `km3mon` binary's allocator) hands free pages back
//! to the OS only after a delay, and only when some thread later calls
//! into it. A Ligier whose connections have all closed goes quiet, so
//! nothing ever did: the memory of hundreds of closed connections stayed
//! resident, and how much depended on how many of their threads had been
//! alive at once, so the figure varied with the machine's load. Joining
//! first makes sure each thread has fully exited (its thread-local heap
//! handed back) before the collection.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread::{Builder, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

/// A wave of closes is over when no thread has ended for this long ...
const QUIET: Duration = Duration::from_millis(100);
/// ... or, during an endless stream of short connections, this long after
/// the first unreaped end (finished threads keep their stacks until joined).
const MAX_DELAY: Duration = Duration::from_secs(1);

pub(super) struct Reaper {
    handles: Mutex<Vec<JoinHandle<()>>>,
    ended: Sender<()>,
    events: Receiver<()>,
    stopping: AtomicBool,
}

impl Reaper {
    pub fn new() -> Reaper {
        let (ended, events) = crossbeam_channel::unbounded();
        Reaper {
            handles: Mutex::new(Vec::new()),
            ended,
            events,
            stopping: AtomicBool::new(false),
        }
    }

    /// Start a connection thread that the reaper joins when it ends.
    pub fn spawn(&self, builder: Builder, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let ended = self.ended.clone();
        let handle = builder.spawn(move || {
            f();
            let _ = ended.send(());
        })?;
        self.lock().push(handle);
        Ok(())
    }

    /// Wake the reaper so that it returns (threads still running are left
    /// detached: they end on their own once their sockets are shut).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.ended.send(());
    }

    /// The reaper thread's loop: join ended threads, then call `release`
    /// (if any) once per wave.
    pub fn run(&self, release: Option<fn()>) {
        let (mut ended, mut joined) = (0u64, 0u64);
        let mut first_unreaped: Option<Instant> = None;
        while !self.stopping.load(Ordering::SeqCst) {
            let wait = match first_unreaped {
                Some(t) => QUIET.min(MAX_DELAY.saturating_sub(t.elapsed())),
                None => Duration::from_secs(3600),
            };
            match self.events.recv_timeout(wait) {
                Ok(()) => {
                    ended += 1;
                    first_unreaped.get_or_insert_with(Instant::now);
                    if first_unreaped.is_some_and(|t| t.elapsed() < MAX_DELAY) {
                        continue;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let finished: Vec<JoinHandle<()>> = {
                let mut handles = self.lock();
                let (done, running) = handles.drain(..).partition(|h| h.is_finished());
                *handles = running;
                done
            };
            let reaped = finished.len() as u64;
            for handle in finished {
                let _ = handle.join();
            }
            joined += reaped;
            // A thread that said it ended may not have exited yet: look
            // again shortly, and collect once all of the wave are joined.
            if joined >= ended {
                first_unreaped = None;
                if let Some(release) = release.filter(|_| reaped > 0) {
                    release();
                }
            } else {
                first_unreaped = Some(Instant::now());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    static RELEASES: AtomicUsize = AtomicUsize::new(0);

    fn count_release() {
        RELEASES.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn ended_threads_are_joined_and_memory_released_once_per_wave() {
        let reaper = Arc::new(Reaper::new());
        let runner = {
            let reaper = Arc::clone(&reaper);
            std::thread::spawn(move || reaper.run(Some(count_release)))
        };
        let gate = Arc::new(std::sync::Barrier::new(41));
        for i in 0..40 {
            let gate = Arc::clone(&gate);
            let builder = Builder::new().name(format!("t{i}"));
            reaper
                .spawn(builder, move || {
                    gate.wait();
                })
                .unwrap();
        }
        assert_eq!(reaper.lock().len(), 40);
        assert_eq!(RELEASES.load(Ordering::SeqCst), 0, "nothing ended yet");
        gate.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while (RELEASES.load(Ordering::SeqCst) == 0 || !reaper.lock().is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(reaper.lock().is_empty(), "every ended thread is joined");
        let releases = RELEASES.load(Ordering::SeqCst);
        // One wave: one release (a slow machine may split it in two).
        assert!((1..=2).contains(&releases), "{releases} releases");
        reaper.stop();
        runner.join().unwrap();
    }
}
