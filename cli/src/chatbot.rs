//! The chatbot of `km3mon run` and `km3mon demo` (docs/chatbot.md): with
//! `[Alerts.chat] mode = "rest"` a thread polls the channel; with
//! `"webhook"` the web server's `POST /chat/command` answers the chat's
//! outgoing webhook. Either way the bot acts through the run's
//! `pipeline::control::Control`, the interface `km3mon ctl` uses.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use messaging::bot::{Bot, Request};
use messaging::config::{AlertsConfig, ChatMode};
use messaging::shifters::Shifters;
use pipeline::control::Control;

/// A running chatbot; [`ChatBot::extras`] goes to the web server.
pub struct ChatBot {
    pub extras: web::Extras,
    poller: Option<Poller>,
}

struct Poller {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    stats: Arc<messaging::poller::PollerStats>,
}

impl ChatBot {
    pub fn stop(mut self) {
        if let Some(p) = self.poller.take() {
            p.stop.store(true, Ordering::SeqCst);
            if p.thread.join().is_err() {
                tracing::warn!("chatbot: the polling thread panicked");
            }
            let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            tracing::info!(
                "chatbot: {} polls, {} messages, {} commands answered, {} poll errors, {} replies lost",
                n(&p.stats.polls),
                n(&p.stats.messages),
                n(&p.stats.commands),
                n(&p.stats.errors),
                n(&p.stats.reply_failures)
            );
        }
    }
}

/// `[Alerts]` of the site config (the built-in example without one).
pub fn alerts_config(site: Option<&Path>) -> anyhow::Result<AlertsConfig> {
    let text = match site {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => pipeline::site::EXAMPLE.to_string(),
    };
    let name = site.map_or("pipeline.toml.example".into(), |p| p.display().to_string());
    let mut doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{name}: invalid TOML"))?;
    let alerts = doc
        .remove("Alerts")
        .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
    alerts
        .try_into()
        .with_context(|| format!("{name}: [Alerts]"))
}

/// Starts the bot when the site config asks for one; `None` when chat is
/// off.
pub fn start(
    site: Option<&Path>,
    state_dir: Option<&Path>,
    control: Arc<Control>,
) -> anyhow::Result<Option<ChatBot>> {
    let alerts = alerts_config(site)?;
    let chat = alerts.chat().into_owned();
    if chat.mode == ChatMode::Off {
        return Ok(None);
    }
    let shifters = Shifters::open(Shifters::path_for(site, state_dir), &alerts.shifters);
    let bot = Arc::new(Bot::new(
        &alerts.botname,
        &alerts.channel,
        alerts.operators.clone(),
        shifters,
        control,
    ));
    match chat.mode {
        ChatMode::Off => Ok(None),
        ChatMode::Rest => {
            let stop = Arc::new(AtomicBool::new(false));
            let (stats, thread) = messaging::poller::start_rest(&alerts, bot, stop.clone())
                .context("chatbot (REST mode)")?;
            tracing::info!(
                "chatbot: polling #{} on {} every {} s as @{}",
                alerts.channel,
                chat.url.as_deref().unwrap_or("?"),
                chat.poll_interval,
                alerts.botname
            );
            Ok(Some(ChatBot {
                extras: web::Extras::default(),
                poller: Some(Poller {
                    stop,
                    thread,
                    stats,
                }),
            }))
        }
        ChatMode::Webhook => {
            let token = match &chat.command_token_env {
                Some(var) => match std::env::var(var) {
                    Ok(t) if !t.is_empty() => Some(t),
                    _ => {
                        tracing::warn!(
                            "chatbot: ${var} ([Alerts.chat] command_token_env) is not set: POST /chat/command refuses every request"
                        );
                        None
                    }
                },
                None => {
                    tracing::warn!(
                        "chatbot: no [Alerts.chat] command_token_env: POST /chat/command refuses every request"
                    );
                    None
                }
            };
            let handler: web::CommandHandler =
                Arc::new(move |r: web::CommandRequest| bot.handle(&webhook_request(r)));
            Ok(Some(ChatBot {
                extras: web::Extras {
                    chat: Some(web::ChatCommands { token, handler }),
                    ..Default::default()
                },
                poller: None,
            }))
        }
    }
}

/// An outgoing webhook's fields as a bot request. A trigger word other
/// than the `@botname` mention (which the bot strips itself) is removed.
fn webhook_request(r: web::CommandRequest) -> Request {
    let mut text = r.text.trim().to_string();
    if let Some(tw) = r.trigger_word.as_deref().filter(|t| !t.starts_with('@')) {
        if let Some(rest) = text.strip_prefix(tw) {
            text = rest.trim().to_string();
        }
    }
    let channel = if r.channel_name.is_empty() {
        r.channel_id.unwrap_or_default()
    } else {
        r.channel_name
    };
    Request {
        user: r.user_name,
        channel,
        text,
        message_id: r.message_id,
        require_mention: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str, trigger: Option<&str>) -> Request {
        webhook_request(web::CommandRequest {
            user_name: "opal".into(),
            channel_name: "operations".into(),
            text: text.into(),
            trigger_word: trigger.map(String::from),
            ..Default::default()
        })
    }

    #[test]
    fn trigger_words_are_removed_but_the_mention_is_left_to_the_bot() {
        assert_eq!(req("!km3 status", Some("!km3")).text, "status");
        assert_eq!(
            req("@monitoring status", Some("@monitoring")).text,
            "@monitoring status"
        );
        assert_eq!(req(" status ", None).text, "status");
        let r = req("hi", None);
        assert_eq!(
            (r.user.as_str(), r.channel.as_str()),
            ("opal", "operations")
        );
        assert!(!r.require_mention);
    }
}
