//! Alert sinks.
//!
//! * `type = "alerts_jsonl"`: appends every alert event to a JSON Lines file
//!   (`data/alerts.jsonl`): `{"time_utc", "monitor", "key", "state",
//!   "message"}`, `time_utc` = data time, ISO 8601 with `Z`; reminders are
//!   `firing` lines whose message starts with "still firing since".
//! * `type = "alerts_msg"`: publishes each alert as a MSG line
//!   `ALERT (MONITORING) <UTC>: <message>` into a Ligier (the DAQ log
//!   Ligier, as the original's time-sync monitor did), with the `ligier`
//!   crate's reconnecting client. A replay does not publish unless
//!   `in_replay = true`: replaying archived data must not page the shift.
//!
//! Both run on the shell (`crate::shell`): alerts reach worker 0, in
//! data-time order and sorted within a time; the I/O is on a thread of
//! their own.

use std::path::{Path, PathBuf};

use crossbeam_channel::Receiver;
use pipeline::item::{Alert, AlertState, Item, Time};
use pipeline::operator::{
    check_relative_file, BuildContext, ItemStream, Mode, Node, NodeConfig, Resource, Role,
};
use pipeline::runtime::queue::WriterQueue;
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};

use crate::shell::iso_ns;
use crate::shell::{ordered_sink, Monitor, Out};

/// A sink on the shell: the alerts of each completed timestamp, sorted
/// (by their full order, so two workers' alerts of one time always come
/// out alike), to an I/O thread; the end of input closes the channel.
pub(crate) struct AlertsTo {
    pub tx: Option<WriterQueue<Vec<Alert>>>,
}

impl AlertsTo {
    pub fn sorted(data: Vec<Item>) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = data
            .into_iter()
            .filter_map(|i| match i {
                Item::Alert(a) => Some(*a),
                _ => None,
            })
            .collect();
        alerts.sort();
        alerts
    }
}

impl Monitor<Item> for AlertsTo {
    fn on_data(&mut self, _t: Time, data: Vec<Item>, _out: &mut Out) {
        let alerts = AlertsTo::sorted(data);
        if let (Some(tx), false) = (&self.tx, alerts.is_empty()) {
            let n = alerts.len() as u64;
            tx.send(alerts, n);
        }
    }
    fn on_end(&mut self, _last: Option<Time>, _out: &mut Out) {
        // Closing the channel ends the writer thread.
        self.tx = None;
    }
}

/// One line of `alerts.jsonl` (field order as documented).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct AlertLine {
    pub time_utc: String,
    pub monitor: String,
    pub key: String,
    pub state: String,
    pub message: String,
}

impl From<&Alert> for AlertLine {
    fn from(a: &Alert) -> AlertLine {
        AlertLine {
            time_utc: iso_ns(a.time_utc_ns),
            monitor: a.monitor.clone(),
            key: a.key.clone(),
            state: a.state.name().to_string(),
            message: a.message.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsJsonl {
    #[serde(default = "default_path")]
    pub path: PathBuf,
}

fn default_path() -> PathBuf {
    PathBuf::from("data/alerts.jsonl")
}

impl NodeConfig for AlertsJsonl {
    const TYPE: &'static str = "alerts_jsonl";
    const ROLE: Role = Role::Sink;
    const ABOUT: &'static str = "appends alert events to a JSON Lines file";
    const EXAMPLE: &'static str = r#"inputs = ["dom_activity_example"]
path = "data/alerts.jsonl""#;
}

impl Node for AlertsJsonl {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![("path".into(), Resource::file(&self.path))]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Alerts]
    }
    fn produces(&self) -> Option<StreamKind> {
        None
    }
    fn check(&self) -> Vec<(String, String)> {
        check_relative_file("path", &self.path)
            .into_iter()
            .collect()
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("alerts_jsonl needs an input"))?;
        let mut tx = None;
        if ctx.is_leader() {
            let (s, r) = ctx.writer_queue("alerts_jsonl writer queue full");
            let path = ctx.out_path(&self.path);
            let control = ctx.node_control();
            let live = matches!(ctx.env.mode, pipeline::runtime::Mode::Live);
            ctx.spawn_io("writer", move || append_lines(&path, r, &control, live))?;
            tx = Some(s);
        }
        ordered_sink(ctx, input, "alerts_jsonl", AlertsTo { tx });
        Ok(None)
    }
}

/// A full disk: live, the lines wait and are retried with back-off (the
/// node FAILED naming the file meanwhile); a replay gives the file up.
/// The alerts are logged either way.
fn append_lines(
    path: &Path,
    rx: Receiver<Vec<Alert>>,
    control: &pipeline::control::NodeControl,
    live: bool,
) {
    use crossbeam_channel::RecvTimeoutError;
    let mut out = pipeline::runtime::io::RetryingAppender::new(path, live);
    out.create(control);
    loop {
        let alerts = match out.retry_in() {
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(a) => a,
                Err(RecvTimeoutError::Timeout) => {
                    out.flush(control);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(a) => a,
                Err(_) => break,
            },
        };
        let mut buf = Vec::new();
        for a in &alerts {
            if serde_json::to_writer(&mut buf, &AlertLine::from(a)).is_ok() {
                buf.push(b'\n');
            }
            match a.state {
                AlertState::Firing => tracing::warn!("ALERT {}: {}", a.key, a.message),
                AlertState::Resolved => tracing::info!("resolved {}: {}", a.key, a.message),
            }
        }
        out.push(&buf, control);
    }
    out.finish(control);
}

/// The MSG text of an alert, in the original's form.
pub fn msg_line(a: &Alert) -> String {
    let what = match (a.state, a.reminder) {
        (AlertState::Resolved, _) => format!("RESOLVED {}", a.message),
        (AlertState::Firing, _) => a.message.clone(),
    };
    format!("ALERT (MONITORING) {}: {what}", iso_ns(a.time_utc_ns))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsMsg {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_tag")]
    pub tag: String,
    /// Also publish when replaying files (default: only live).
    #[serde(default)]
    pub in_replay: bool,
}

fn default_port() -> u16 {
    ligier::DEFAULT_PORT
}
fn default_tag() -> String {
    "MSG".into()
}

impl NodeConfig for AlertsMsg {
    const TYPE: &'static str = "alerts_msg";
    const ROLE: Role = Role::Sink;
    const ABOUT: &'static str =
        "publishes alerts as `ALERT (MONITORING) …` MSG lines into a Ligier";
    const EXAMPLE: &'static str = r#"inputs = ["dom_activity_example"]
host = "127.0.0.1"
port = 5553"#;
}

impl Node for AlertsMsg {
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Alerts]
    }
    fn produces(&self) -> Option<StreamKind> {
        None
    }
    fn check(&self) -> Vec<(String, String)> {
        match daq::controlhost::Tag::new(&self.tag) {
            Ok(_) => Vec::new(),
            Err(e) => vec![("tag".into(), format!("bad tag `{}`: {e}", self.tag))],
        }
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("alerts_msg needs an input"))?;
        let publish = !matches!(ctx.env.mode, Mode::Replay { .. }) || self.in_replay;
        let mut tx = None;
        if ctx.is_leader() && publish {
            let (s, r) = ctx.writer_queue::<Vec<Alert>>("alerts_msg publisher queue full");
            let tag = daq::controlhost::Tag::new(&self.tag)
                .map_err(|e| anyhow::anyhow!("bad tag {}: {e}", self.tag))?;
            let config = ligier::ClientConfig::new(format!("{}:{}", self.host, self.port))
                .name("km3mon-alerts");
            let env = ctx.env.clone();
            ctx.spawn_io("publisher", move || {
                let mut client = ligier::Client::new(config);
                let stop = client.shutdown_handle();
                for alerts in r {
                    for a in &alerts {
                        if env.shutdown_requested() && !stop.is_triggered() {
                            // Let queued lines go out, but do not hang on a
                            // dead Ligier at shutdown.
                            stop.trigger();
                        }
                        if let Err(e) = client.publish(tag, msg_line(a).as_bytes()) {
                            tracing::error!("alerts_msg: {e}");
                            return;
                        }
                    }
                }
            })?;
            tx = Some(s);
        }
        ordered_sink(ctx, input, "alerts_msg", AlertsTo { tx });
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_formats() {
        let a = Alert {
            time_utc_ns: 1_574_424_024_000_000_000,
            monitor: "timesync".into(),
            key: "time_sync:1".into(),
            state: AlertState::Firing,
            reminder: false,
            message: "invalid time sync for DOM 1".into(),
            du: None,
            floor: None,
            wording: Default::default(),
        };
        assert_eq!(
            msg_line(&a),
            "ALERT (MONITORING) 2019-11-22T12:00:24Z: invalid time sync for DOM 1"
        );
        let json = serde_json::to_string(&AlertLine::from(&a)).unwrap();
        assert_eq!(
            json,
            r#"{"time_utc":"2019-11-22T12:00:24Z","monitor":"timesync","key":"time_sync:1","state":"firing","message":"invalid time sync for DOM 1"}"#
        );
    }
}
