//! `type = "tag_rates"`: messages and bytes per tag per interval of data
//! time — km3mon's fixed `timeslice_rates` (spec §3.14), for every tag.
//!
//! Fixes of the original: the DAQ header is read with its version field
//! (det id and run were misread), windows are event-time windows closed
//! by a shell timer at their end (not a sleeping thread), and every row carries the run;
//! a run change shows as a row with `run_change = 1` (the last run per tag
//! is operator state, so a restart does not invent or miss one).
//!
//! Rows: `timestamp,tag,run,messages,bytes,rate_hz,bytes_per_s,run_change`
//! where `timestamp` = UTC Unix seconds at the end of the window. A window
//! with no message of a tag has no row for it.

use std::collections::BTreeMap;

use pipeline::item::{Item, Row, Time, TICKS_PER_SECOND};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Role};
use pipeline::runtime::state::StateStore;
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};

use daq::controlhost::Tag;

use crate::shell::{ordered_combined, Monitor, Out, Tumbling};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRates {
    /// Window length in seconds of data time.
    #[serde(default = "default_interval", deserialize_with = "timespan::de::secs")]
    pub interval: u64,
    /// Table name of the rows (the CSV sink does not need it; JSON and
    /// SQLite sinks will).
    #[serde(default = "default_table")]
    pub table: String,
}

fn default_interval() -> u64 {
    10
}

fn default_table() -> String {
    "tag_rates".to_string()
}

pub const HEADER: [&str; 8] = [
    "timestamp",
    "tag",
    "run",
    "messages",
    "bytes",
    "rate_hz",
    "bytes_per_s",
    "run_change",
];

impl NodeConfig for TagRates {
    const TYPE: &'static str = "tag_rates";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str = "messages and bytes per tag per interval, with run changes";
    const EXAMPLE: &'static str = r#"inputs = ["daq"]
interval = 10"#;
}

/// Counts of one window by (tag, run); saved as a list (JSON map keys
/// are strings).
#[derive(Default, Clone, Serialize, Deserialize)]
#[serde(from = "Vec<((String, Option<u32>), Counts)>")]
#[serde(into = "Vec<((String, Option<u32>), Counts)>")]
struct WindowCounts(BTreeMap<(String, Option<u32>), Counts>);

impl From<Vec<((String, Option<u32>), Counts)>> for WindowCounts {
    fn from(v: Vec<((String, Option<u32>), Counts)>) -> WindowCounts {
        WindowCounts(v.into_iter().collect())
    }
}

impl From<WindowCounts> for Vec<((String, Option<u32>), Counts)> {
    fn from(w: WindowCounts) -> Self {
        w.0.into_iter().collect()
    }
}

/// What survives a restart: the last run per tag and the open windows
/// (their close timers are the shell's).
#[derive(Serialize, Deserialize)]
struct Saved {
    last_run: BTreeMap<String, u32>,
    windows: Tumbling<WindowCounts>,
}

#[derive(Default, Clone, Copy, Serialize, Deserialize)]
struct Counts {
    messages: u64,
    bytes: u64,
}

impl Node for TagRates {
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Messages]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Table)
    }
    fn check(&self) -> Vec<(String, String)> {
        if self.interval == 0 {
            vec![("interval".into(), "must be at least 1 second".into())]
        } else {
            Vec::new()
        }
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("tag_rates needs an input"))?;
        let mut monitor = TagRatesMonitor {
            windows: Tumbling::new(self.interval * TICKS_PER_SECOND),
            interval: self.interval as f64,
            table: self.table.clone(),
            header: HEADER.iter().map(|s| s.to_string()).collect(),
            last_run: BTreeMap::new(),
        };
        if ctx.is_leader() {
            monitor.restore(ctx.state().load_all::<serde_json::Value>());
        }
        // Counted where the messages arrive, so their payloads are freed
        // at once (buffering them until the frontier passes cost 2× in
        // page faults); the shell orders the small per-time counts.
        Ok(Some(ordered_combined(
            ctx,
            input,
            "tag_rates",
            |p: &Partial| (p.0, p.1),
            count,
            monitor,
        )))
    }
}

/// Adds one message to the counts of its time. A handful of (tag, run)
/// keys: a scan, and a `Copy` tag, spare an allocation per message.
fn count(counts: &mut Vec<Partial>, item: Item) {
    let Item::Message(m) = item else { return };
    // Tags come from ControlHost prefixes: 1–8 printable characters.
    let Ok(tag) = Tag::new(&m.tag) else { return };
    match counts.iter_mut().find(|p| p.0 == tag && p.1 == m.run) {
        Some(p) => {
            p.2 += 1;
            p.3 += m.payload.len() as u64;
        }
        None => counts.push((tag, m.run, 1, m.payload.len() as u64)),
    }
}

/// Counted on the leader, where the sources deliver every message:
/// routing by tag moved most of them (IO_MONIT) to another worker only
/// to add up their lengths.
pub struct TagRatesMonitor {
    windows: Tumbling<WindowCounts>,
    interval: f64,
    table: String,
    header: Vec<String>,
    /// The last run per tag (state: a restart neither invents nor misses
    /// a run change).
    last_run: BTreeMap<String, u32>,
}

impl TagRatesMonitor {
    /// From the saved state: `{"state": Saved}`, or (before the open
    /// windows were saved) the last run per tag as the whole map.
    fn restore(&mut self, mut saved: BTreeMap<String, serde_json::Value>) {
        match saved.remove("state") {
            Some(v) => match serde_json::from_value::<Saved>(v) {
                Ok(s) => {
                    self.last_run = s.last_run;
                    self.windows.restore(s.windows);
                }
                Err(e) => tracing::warn!("tag_rates: saved state ignored: {e}"),
            },
            None => {
                self.last_run = saved
                    .into_iter()
                    .filter_map(|(tag, run)| Some((tag, u32::try_from(run.as_u64()?).ok()?)))
                    .collect()
            }
        }
    }

    fn close(&mut self, end: Time, counts: WindowCounts, out: &mut Out) {
        let end_s = end / TICKS_PER_SECOND;
        for ((tag, run), c) in counts.0 {
            let change = match (run, self.last_run.get(&tag)) {
                (Some(r), Some(prev)) if *prev != r => "1",
                _ => "0",
            };
            if let Some(r) = run {
                self.last_run.insert(tag.clone(), r);
            }
            out.give(
                end - 1,
                Item::Row(Box::new(Row {
                    table: self.table.clone(),
                    header: self.header.clone(),
                    cells: vec![
                        end_s.to_string(),
                        tag,
                        run.map_or(String::new(), |r| r.to_string()),
                        c.messages.to_string(),
                        c.bytes.to_string(),
                        format!("{:.3}", c.messages as f64 / self.interval),
                        format!("{:.1}", c.bytes as f64 / self.interval),
                        change.to_string(),
                    ],
                })),
            );
        }
    }
}

/// Messages and bytes of one (tag, run) at one time.
type Partial = (Tag, Option<u32>, u64, u64);

impl Monitor<Partial> for TagRatesMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Partial>, out: &mut Out) {
        let counts = self.windows.at(t, out);
        for (tag, run, messages, bytes) in data {
            let c = match counts
                .0
                .iter_mut()
                .find(|((t, r), _)| t == tag.as_str() && *r == run)
            {
                Some((_, c)) => c,
                None => counts.0.entry((tag.as_str().to_string(), run)).or_default(),
            };
            c.messages += messages;
            c.bytes += bytes;
        }
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        if let Some((w, counts)) = self.windows.close(t) {
            self.close(w.end, counts, out);
        }
    }

    /// The last window, partial, is written at its regular end (its
    /// `timestamp`), as before: a replay of a short file still has rows.
    fn on_end(&mut self, _last: Option<Time>, out: &mut Out) {
        for (w, counts) in self.windows.drain() {
            self.close(w.end, counts, out);
        }
    }

    /// Stopped: the open windows are saved (below), not written partial.
    fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out) {}

    fn save(&mut self, store: &StateStore) {
        let saved = Saved {
            last_run: self.last_run.clone(),
            windows: self.windows.clone(),
        };
        store.save(&BTreeMap::from([("state".to_string(), saved)]));
    }
}
