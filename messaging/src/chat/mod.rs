//! Chat sinks: the Rocket.Chat REST bot ([`rest`]) and incoming webhooks
//! of Rocket.Chat, Mattermost and Slack ([`webhook`]).

pub mod rest;
pub mod webhook;
