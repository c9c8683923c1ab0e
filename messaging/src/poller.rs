//! REST-bot mode: poll the configured channel's history and answer the
//! commands in it.
//!
//! The configured channel's id is looked up (with paging — the original
//! searched the first page only **[quirk, fixed]**); then every
//! `poll_interval` the messages newer than the newest seen timestamp are
//! fetched (`oldest` is exclusive on Rocket.Chat). Messages are
//! de-duplicated by id in a bounded memory, so a slow request or an
//! inclusive server never answers a command twice (the original's thread
//! per poll could **[quirk, fixed]**). Messages of the bot itself and of
//! `rocket.cat` are skipped; replies go to the same room. Errors back off
//! (up to a minute) and are counted; the thread never panics on them.
//! Token refresh is the client's business.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bot::{Bot, Request};

/// One chat message as the history lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `_id`
    pub id: String,
    /// `rid`
    pub room: String,
    /// `u.username`
    pub user: String,
    /// `msg`
    pub text: String,
    /// `ts`, ISO-8601 UTC with milliseconds (sorts as text).
    pub ts: String,
}

/// What the poller needs of a chat server (implemented by the Rocket.Chat
/// REST client).
pub trait ChatApi: Send {
    /// The bot's own user name (its messages are skipped).
    fn own_name(&self) -> String;
    /// The id of the channel called `name`, searching every page.
    fn channel_id(&mut self, name: &str) -> Result<Option<String>, String>;
    /// Messages of `room` newer than `oldest` (all recent ones when
    /// `None`), in any order.
    fn history(&mut self, room: &str, oldest: Option<&str>) -> Result<Vec<ChatMessage>, String>;
    fn post(&mut self, room: &str, text: &str) -> Result<(), String>;
}

/// Counters, shared with whoever shows them (`/status`, logs).
#[derive(Debug, Default)]
pub struct PollerStats {
    pub polls: AtomicU64,
    pub messages: AtomicU64,
    pub commands: AtomicU64,
    pub errors: AtomicU64,
    pub reply_failures: AtomicU64,
}

/// How many message ids are remembered for de-duplication.
const SEEN_CAPACITY: usize = 2048;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub struct Poller<A: ChatApi> {
    api: A,
    bot: Arc<Bot>,
    interval: Duration,
    room: Option<String>,
    oldest: Option<String>,
    seen: HashSet<String>,
    order: VecDeque<String>,
    failures: u32,
    pub stats: Arc<PollerStats>,
}

impl<A: ChatApi> Poller<A> {
    pub fn new(api: A, bot: Arc<Bot>, interval: Duration) -> Poller<A> {
        Poller {
            api,
            bot,
            interval: interval.max(Duration::from_millis(50)),
            room: None,
            oldest: None,
            seen: HashSet::new(),
            order: VecDeque::new(),
            failures: 0,
            stats: Arc::new(PollerStats::default()),
        }
    }

    /// One round: look the channel up if needed, fetch, answer. Returns
    /// how long to wait before the next round (longer after errors).
    pub fn step(&mut self) -> Duration {
        match self.try_step() {
            Ok(()) => {
                self.failures = 0;
                self.interval
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                let wait = self
                    .interval
                    .saturating_mul(1 << self.failures.min(10))
                    .min(MAX_BACKOFF);
                tracing::warn!(
                    "chatbot: {e} (failure {} in a row; next try in {:.1} s)",
                    self.failures,
                    wait.as_secs_f64()
                );
                wait
            }
        }
    }

    fn try_step(&mut self) -> Result<(), String> {
        let room = match &self.room {
            Some(r) => r.clone(),
            None => {
                let name = self.bot.channel().to_string();
                let id = self
                    .api
                    .channel_id(&name)?
                    .ok_or_else(|| format!("channel `{name}` not found on the chat server"))?;
                self.bot.set_room_id(&id);
                // What was said before the bot started is not for it.
                let backlog = self.api.history(&id, None)?;
                for m in &backlog {
                    self.remember(&m.id);
                    self.advance(&m.ts);
                }
                tracing::info!(
                    "chatbot: serving #{name} (room {id}) as @{}",
                    self.api.own_name()
                );
                self.room = Some(id.clone());
                id
            }
        };
        self.stats.polls.fetch_add(1, Ordering::Relaxed);
        let mut msgs = self.api.history(&room, self.oldest.as_deref())?;
        msgs.sort_by(|a, b| a.ts.cmp(&b.ts));
        let me = self.api.own_name();
        for m in msgs {
            self.advance(&m.ts);
            if !self.remember(&m.id) {
                continue;
            }
            self.stats.messages.fetch_add(1, Ordering::Relaxed);
            if m.user.eq_ignore_ascii_case(&me) || m.user == "rocket.cat" {
                continue;
            }
            let req = Request {
                user: m.user.clone(),
                channel: m.room.clone(),
                text: m.text.clone(),
                message_id: Some(m.id.clone()),
                require_mention: true,
            };
            // A bug in one command must not end the polling.
            let bot = &self.bot;
            let answer =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bot.handle(&req)))
                    .unwrap_or_else(|_| {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!("chatbot: the command {:?} of {} failed", m.text, m.user);
                        Some(format!("@{}: that went wrong on my side, sorry", m.user))
                    });
            if let Some(reply) = answer {
                self.stats.commands.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.api.post(&room, &reply) {
                    // The command was carried out; only the answer is lost.
                    self.stats.reply_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("chatbot: cannot reply to {} ({}): {e}", m.user, m.id);
                }
            }
        }
        Ok(())
    }

    /// True when `id` was not seen before.
    fn remember(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() == SEEN_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }

    fn advance(&mut self, ts: &str) {
        if self.oldest.as_deref().is_none_or(|o| ts > o) {
            self.oldest = Some(ts.to_string());
        }
    }

    /// Polls until `stop` is set (checked every 100 ms).
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            let wait = self.step();
            let until = Instant::now() + wait;
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                std::thread::sleep((until - now).min(Duration::from_millis(100)));
            }
        }
    }
}

/// The poller on a thread of its own.
pub fn spawn<A: ChatApi + 'static>(
    api: A,
    bot: Arc<Bot>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(Arc<PollerStats>, std::thread::JoinHandle<()>)> {
    let p = Poller::new(api, bot, interval);
    let stats = p.stats.clone();
    let h = std::thread::Builder::new()
        .name("chatbot".into())
        .spawn(move || p.run(stop))?;
    Ok((stats, h))
}

/// The Rocket.Chat REST client as the poller's chat server. `botname` is
/// the bot's user name (with a personal access token the client does not
/// know it).
pub struct RestChat {
    pub client: crate::chat::rest::RestClient,
    pub botname: String,
}

impl ChatApi for RestChat {
    fn own_name(&self) -> String {
        self.botname.clone()
    }
    fn channel_id(&mut self, name: &str) -> Result<Option<String>, String> {
        self.client.channel_id(name).map_err(|e| e.to_string())
    }
    fn history(&mut self, room: &str, oldest: Option<&str>) -> Result<Vec<ChatMessage>, String> {
        let msgs = self
            .client
            .history(room, oldest)
            .map_err(|e| e.to_string())?;
        Ok(msgs
            .into_iter()
            .map(|m| ChatMessage {
                room: if m.room_id.is_empty() {
                    room.to_string()
                } else {
                    m.room_id
                },
                id: m.id,
                user: m.username,
                text: m.text,
                ts: m.ts,
            })
            .collect())
    }
    fn post(&mut self, room: &str, text: &str) -> Result<(), String> {
        self.client.post(room, text).map_err(|e| e.to_string())
    }
}

/// Starts REST-bot mode from the site config: a client of its own (the
/// chat sink has another), polling every `[Alerts.chat] poll_interval`.
pub fn start_rest(
    alerts: &crate::config::AlertsConfig,
    bot: Arc<Bot>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Arc<PollerStats>, std::thread::JoinHandle<()>)> {
    let client = crate::chat::rest::RestClient::new(alerts)?;
    let api = RestChat {
        client,
        botname: alerts.botname.clone(),
    };
    let interval = Duration::from_secs_f64(alerts.chat().poll_interval.max(0.05));
    Ok(spawn(api, bot, interval, stop)?)
}
