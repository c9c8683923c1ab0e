//! A stand-in Rocket.Chat server: the REST endpoints km3mon uses (login,
//! `channels.list` with paging, `channels.history`, `chat.postMessage`)
//! and an incoming webhook (`POST /hooks/<id>/<token>`), plus a small HTML
//! page at `/` to read a channel and post into it as anyone.
//!
//! No real Rocket.Chat server can run on a test machine, so km3mon's chat
//! tests run against this one. It records every request (for assertions)
//! and has fault switches: slow answers, HTTP 500 for the next N requests,
//! expired tokens (401 until a fresh login). "Server down" is simply: not
//! running.
//!
//! ```no_run
//! let chat = testchat::TestChat::start(testchat::Options::default()).unwrap();
//! println!("{}", chat.url());
//! chat.post_as("jdoe", "operations", "@monitoring status");
//! ```
//!
//! `km3mon testchat` runs it from the command line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod page;
mod server;

/// What the server starts with.
#[derive(Debug, Clone)]
pub struct Options {
    /// 127.0.0.1 port; 0 = any free one.
    pub port: u16,
    /// (user name, password) pairs that may log in.
    pub users: Vec<(String, String)>,
    /// Public channels, in listing order.
    pub channels: Vec<String>,
    /// Largest `channels.list` page (Rocket.Chat caps `count` too); small so
    /// that clients must page.
    pub max_page_size: usize,
    /// Incoming webhook `/hooks/<id>/<token>` and the channel it posts to.
    pub hook_id: String,
    pub hook_token: String,
    pub hook_channel: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 0,
            users: vec![("monitoring".into(), "monitoring".into())],
            // `operations` sits on the second page of two.
            channels: ["general", "random", "shore", "operations", "operations_fr"]
                .map(String::from)
                .to_vec(),
            max_page_size: 2,
            hook_id: "km3mon".into(),
            hook_token: "testtoken".into(),
            hook_channel: "operations".into(),
        }
    }
}

/// One request as the server saw it (before any fault switch acted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Raw query string ("" if none).
    pub query: String,
    pub auth_token: Option<String>,
    pub user_id: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    /// Room id of the channel.
    pub rid: String,
    pub channel: String,
    pub username: String,
    pub text: String,
    /// ISO-8601 UTC with milliseconds, as Rocket.Chat's REST API gives it.
    pub ts: String,
    pub ts_ms: i64,
}

#[derive(Debug)]
pub(crate) struct Channel {
    pub id: String,
    pub name: String,
    pub messages: Vec<Message>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub users: HashMap<String, String>,
    /// The first user: the bot, for the page's hint.
    pub bot: String,
    /// auth token → user name.
    pub tokens: HashMap<String, String>,
    pub channels: Vec<Channel>,
    pub requests: Vec<Request>,
    pub max_page_size: usize,
    pub hook: (String, String, String),
    /// Delay for every request.
    pub delay: Duration,
    /// Extra delay for the next N requests.
    pub slow_next: (u32, Duration),
    pub fail_next: u32,
    pub logins: u64,
    pub counter: u64,
    pub last_ts_ms: i64,
}

impl State {
    pub fn channel_mut(&mut self, name_or_id: &str) -> Option<&mut Channel> {
        let name = name_or_id.trim_start_matches('#');
        self.channels
            .iter_mut()
            .find(|c| c.id == name_or_id || c.name == name)
    }

    pub fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}{:08x}{:04}", std::process::id(), self.counter)
    }

    /// Appends a message; timestamps strictly increase so that `oldest`
    /// (exclusive) never skips one.
    pub fn add_message(&mut self, channel: &str, username: &str, text: &str) -> Option<Message> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let ts_ms = now.max(self.last_ts_ms + 1);
        let id = self.next_id("m");
        let chan = self.channel_mut(channel)?;
        let msg = Message {
            id,
            rid: chan.id.clone(),
            channel: chan.name.clone(),
            username: username.to_string(),
            text: text.to_string(),
            ts: iso_ms(ts_ms),
            ts_ms,
        };
        chan.messages.push(msg.clone());
        self.last_ts_ms = ts_ms;
        Some(msg)
    }
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, State> {
    // A panicking handler must not take the whole test server down.
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running server; stops when dropped.
pub struct TestChat {
    addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestChat {
    /// Binds 127.0.0.1 and serves on a thread of its own.
    pub fn start(opts: Options) -> anyhow::Result<TestChat> {
        let mut state = State {
            users: opts.users.iter().cloned().collect(),
            bot: opts.users.first().map(|u| u.0.clone()).unwrap_or_default(),
            max_page_size: opts.max_page_size.max(1),
            hook: (opts.hook_id, opts.hook_token, opts.hook_channel.clone()),
            ..State::default()
        };
        let mut names = opts.channels.clone();
        if !names.contains(&opts.hook_channel) {
            names.push(opts.hook_channel);
        }
        for name in names {
            let id = state.next_id("r");
            state.channels.push(Channel {
                id,
                name,
                messages: Vec::new(),
            });
        }
        let state = Arc::new(Mutex::new(state));
        let listener = std::net::TcpListener::bind(("127.0.0.1", opts.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let app = server::router(state.clone());
        let thread = std::thread::Builder::new()
            .name("testchat".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return tracing::error!("testchat: no runtime: {e}"),
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return tracing::error!("testchat: {e}"),
                    };
                    let served = axum::serve(listener, app).with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    });
                    if let Err(e) = served.await {
                        tracing::error!("testchat: {e}");
                    }
                });
            })?;
        Ok(TestChat {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The incoming-webhook URL.
    pub fn hook_url(&self) -> String {
        let s = lock(&self.state);
        format!("{}/hooks/{}/{}", self.url(), s.hook.0, s.hook.1)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// Messages of a channel (name or room id), oldest first.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        lock(&self.state)
            .channel_mut(channel)
            .map(|c| c.messages.clone())
            .unwrap_or_default()
    }

    /// Room id of a channel.
    pub fn room_id(&self, channel: &str) -> Option<String> {
        lock(&self.state).channel_mut(channel).map(|c| c.id.clone())
    }

    /// Post as any user (no login needed); `None` for an unknown channel.
    pub fn post_as(&self, user: &str, channel: &str, text: &str) -> Option<Message> {
        lock(&self.state).add_message(channel, user, text)
    }

    /// Successful logins so far.
    pub fn logins(&self) -> u64 {
        lock(&self.state).logins
    }

    /// Delay every answer (0 = off).
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.state).delay = delay;
    }

    /// Delay only the next `n` answers.
    pub fn slow_next(&self, n: u32, delay: Duration) {
        lock(&self.state).slow_next = (n, delay);
    }

    /// Answer the next `n` requests with HTTP 500.
    pub fn fail_next(&self, n: u32) {
        lock(&self.state).fail_next = n;
    }

    /// Forget every token: the next authenticated call gets 401.
    pub fn expire_tokens(&self) {
        lock(&self.state).tokens.clear();
    }

    /// Stop serving (also done on drop).
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestChat {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Milliseconds since the epoch → `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn iso_ms(ms: i64) -> String {
    timefmt::iso_ms(ms)
}
