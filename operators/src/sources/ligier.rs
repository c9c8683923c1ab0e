//! `type = "ligier"`: live subscription to a Ligier (ControlHost
//! dispatcher). In replay mode the same node replays the files given to
//! `km3mon replay`, keeping its tag list, so one graph serves both.

use std::time::Duration;

use daq::controlhost::{Mode as SubMode, Subscription, Tag};
use daq::dump::Record;
use ligier::{Client, ClientConfig, ClientError};
use pipeline::item::{time_of_ns, Item, Time};
use pipeline::operator::{BuildContext, ItemStream, Mode, Node, NodeConfig, Role};
use pipeline::runtime::source::{channel_source, wall_ticks, Feed};
use pipeline::StreamKind;
use serde::Deserialize;

use super::{files::replay_source, message_of};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LigierSource {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Tags to subscribe to ("any" mode: the Ligier may drop for us rather
    /// than stall the DAQ).
    pub tags: Vec<String>,
    /// Name announced to the Ligier (`_MyId`).
    #[serde(default = "default_name")]
    pub name: String,
}

fn default_port() -> u16 {
    ligier::DEFAULT_PORT
}

fn default_name() -> String {
    "km3mon-pipeline".to_string()
}

impl NodeConfig for LigierSource {
    const TYPE: &'static str = "ligier";
    const ROLE: Role = Role::Source;
    const ABOUT: &'static str =
        "subscribes to tags of a Ligier (replays the given files in `km3mon replay`)";
    const EXAMPLE: &'static str = r#"host = "127.0.0.1"
port = 5553
tags = ["IO_SUM", "IO_EVT"]"#;
}

impl Node for LigierSource {
    fn accepts(&self) -> Vec<StreamKind> {
        Vec::new()
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Messages)
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if self.tags.is_empty() {
            errors.push((
                "tags".to_string(),
                "subscribe to at least one tag".to_string(),
            ));
        }
        for (i, t) in self.tags.iter().enumerate() {
            if let Err(e) = Tag::new(t) {
                errors.push((format!("tags[{i}]"), format!("bad tag `{t}`: {e}")));
            }
        }
        errors
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        _input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        if let Mode::Replay { files, speed } = &ctx.env.mode {
            return replay_source(ctx, self.tags.clone(), files.clone(), *speed).map(Some);
        }
        let mut sub = Subscription::new();
        for t in &self.tags {
            sub = sub.with(
                SubMode::Any,
                Tag::new(t).map_err(|e| anyhow::anyhow!("bad tag {t}: {e}"))?,
            );
        }
        let config =
            ClientConfig::new(format!("{}:{}", self.host, self.port)).name(self.name.clone());
        let env = ctx.env.clone();
        channel_source(ctx, true, |ingress| {
            let mut client = Client::new(config);
            let stop = client.shutdown_handle();
            ctx.spawn_io("subscriber", move || {
                if let Err(e) = client.subscribe(sub) {
                    tracing::error!("ligier subscription: {e}");
                    return;
                }
                let poll = env.heartbeat.min(Duration::from_millis(200));
                let mut batch: Vec<(Time, Item)> = Vec::new();
                loop {
                    if env.shutdown_requested() {
                        stop.trigger();
                        return;
                    }
                    match client.recv_timeout(poll) {
                        Ok(Some(m)) => {
                            let record = Record {
                                offset: 0,
                                payload_offset: 0,
                                tag: Some(m.tag()),
                                payload: m.payload().to_vec(),
                            };
                            let msg = message_of(m.tag().as_str().to_string(), record);
                            // Untimed messages (MSG) are stamped with the wall clock.
                            let t = msg.utc_ns.map_or_else(wall_ticks, time_of_ns);
                            batch.push((t, Item::Message(std::sync::Arc::new(msg))));
                            if batch.len() < 256 && client.has_buffered_input() {
                                continue;
                            }
                            if !ingress.offer(Feed {
                                items: std::mem::take(&mut batch),
                                low: 0,
                            }) {
                                return;
                            }
                        }
                        Ok(None) => {
                            if !batch.is_empty()
                                && !ingress.offer(Feed {
                                    items: std::mem::take(&mut batch),
                                    low: 0,
                                })
                            {
                                return;
                            }
                        }
                        Err(ClientError::Stopped) => return,
                        Err(e) => {
                            tracing::error!("ligier subscriber: {e}");
                            return;
                        }
                    }
                }
            })
        })
        .map(Some)
    }
}
