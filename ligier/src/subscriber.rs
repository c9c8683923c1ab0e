//! A client on its own I/O thread, feeding a bounded channel.
//!
//! This is how a pipeline source consumes a Ligier: the worker drains the
//! channel without ever blocking on the network. When the channel is full
//! the I/O thread waits (checking its stop flag), the socket stops being
//! read, and the Ligier's "any" queue for us drops the oldest messages —
//! counted there, where the status report shows them.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, SendTimeoutError};
use daq::controlhost::Subscription;
use tracing::error;

use crate::client::{Client, ClientConfig, ClientCounters, ClientError, ClientStats};
use crate::shutdown::Shutdown;
use crate::wire::Message;

pub struct SubscriberThread {
    messages: Receiver<Message>,
    stop: Shutdown,
    counters: Arc<ClientCounters>,
    thread: Option<JoinHandle<()>>,
}

impl SubscriberThread {
    /// Connect (in the background, retrying), subscribe, and forward every
    /// message into a channel of `capacity` messages.
    pub fn spawn(
        config: ClientConfig,
        subscription: Subscription,
        capacity: usize,
    ) -> std::io::Result<SubscriberThread> {
        let stop = Shutdown::new();
        let mut client = Client::new(config).with_shutdown(stop.clone());
        let counters = client.counters();
        let (tx, rx) = bounded(capacity.max(1));
        let thread_stop = stop.clone();
        let thread = thread::Builder::new()
            .name("ligier-subscriber".into())
            .spawn(move || {
                if let Err(e) = client.subscribe(subscription) {
                    if !matches!(e, ClientError::Stopped) {
                        error!("ligier subscriber: {e}");
                    }
                    return;
                }
                loop {
                    let mut msg = match client.recv() {
                        Ok(msg) => msg,
                        Err(ClientError::Stopped) => return,
                        Err(e) => {
                            error!("ligier subscriber stopped: {e}");
                            return;
                        }
                    };
                    loop {
                        match tx.send_timeout(msg, Duration::from_millis(100)) {
                            Ok(()) => break,
                            Err(SendTimeoutError::Timeout(m)) if !thread_stop.is_triggered() => {
                                msg = m
                            }
                            Err(_) => return,
                        }
                    }
                }
            })?;
        Ok(SubscriberThread {
            messages: rx,
            stop,
            counters,
            thread: Some(thread),
        })
    }

    pub fn messages(&self) -> &Receiver<Message> {
        &self.messages
    }

    pub fn stats(&self) -> ClientStats {
        self.counters.snapshot()
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.stop.clone()
    }

    /// Stop the I/O thread and wait for it (within about a poll interval).
    pub fn stop(mut self) -> ClientStats {
        self.stop_now();
        self.stats()
    }

    fn stop_now(&mut self) {
        self.stop.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SubscriberThread {
    fn drop(&mut self) {
        self.stop_now();
    }
}
