//! Telling people what the monitors found, and letting them answer.
//!
//! * [`config`]: the `[Alerts]` section of the site config, typed.
//! * [`shifters`]: who is on shift (state file beside the site config).
//! * [`bot`]: the chatbot's commands and authorisation; [`poller`]: its
//!   REST-bot mode (polling the channel).
//! * [`route`]: the [`route::Router`] — which alerts reach people, grouped,
//!   throttled, silenced, as firing / reminder / resolved messages.
//! * [`message`]: what a route hands to a sink ([`message::Outgoing`]) and
//!   what a sink reports back ([`message::Outcome`]); the [`message::Transport`]
//!   contract every sink implements.
//!
//! The crate knows the pipeline's alert type and control interface, not the
//! operators: the `alerts_notify` graph node (in `operators`) feeds it.

pub mod bot;
pub mod chat;
pub mod config;
pub mod deliver;
pub mod elog;
pub mod email;
pub mod message;
pub mod poller;
pub mod route;
pub mod shifters;
