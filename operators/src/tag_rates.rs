//! `type = "tag_rates"`: messages and bytes per tag per interval of data
//! time — km3mon's fixed `timeslice_rates` (spec §3.14), for every tag.
//!
//! Fixes of the original: the DAQ header is read with its version field
//! (det id and run were misread), windows are event-time windows closed
//! by the frontier (not a sleeping thread), and every row carries the run;
//! a run change shows as a row with `run_change = 1` (the last run per tag
//! is operator state, so a restart does not invent or miss one).
//!
//! Rows: `timestamp,tag,run,messages,bytes,rate_hz,bytes_per_s,run_change`
//! where `timestamp` = UTC Unix seconds at the end of the window. A window
//! with no message of a tag has no row for it.

use std::collections::BTreeMap;

use pipeline::item::{Item, Row, Time, TICKS_PER_SECOND};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Role};
use pipeline::StreamKind;
use serde::Deserialize;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRates {
    /// Window length in seconds of data time.
    #[serde(default = "default_interval")]
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
}

/// Counts of one window by (tag, run).
type WindowCounts = BTreeMap<(String, Option<u32>), Counts>;

#[derive(Default, Clone, Copy)]
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
        let window: Time = self.interval * TICKS_PER_SECOND;
        let interval = self.interval as f64;
        let table = self.table.clone();
        let header: Vec<String> = HEADER.iter().map(|s| s.to_string()).collect();
        let state = ctx.state();
        // Counted on the leader, where the sources deliver every message:
        // routing by tag moved most of them (IO_MONIT) to another worker
        // only to add up their lengths.
        let leader = ctx.is_leader();
        let mut last_run: BTreeMap<String, u32> = if leader {
            state.load_all::<u32>().into_iter().collect()
        } else {
            BTreeMap::new()
        };
        let metrics = ctx.metrics.clone();
        let to_leader = Exchange::new(|_: &Item| 0);
        let out = input.unary_frontier::<CapacityContainerBuilder<Vec<Item>>, _, _, _>(
            to_leader,
            "tag_rates",
            move |_cap, _info| {
                // Open windows by index, each with a capability at its last tick.
                let mut open: BTreeMap<Time, (Capability<Time>, WindowCounts)> = BTreeMap::new();
                let mut dirty = false;
                move |(input, frontier), output| {
                    metrics.busy(|| {
                        input.for_each(|cap, data| {
                            let Some(&t) = cap.least() else { return };
                            for item in data.drain(..) {
                                let Item::Message(m) = item else { continue };
                                let w = t / window;
                                let entry = open.entry(w).or_insert_with(|| {
                                    (cap.delayed(&((w + 1) * window - 1), 0), BTreeMap::new())
                                });
                                // A handful of (tag, run) keys: a scan
                                // spares a String per message.
                                let counts = &mut entry.1;
                                let c = match counts
                                    .iter_mut()
                                    .find(|((tag, run), _)| *tag == m.tag && *run == m.run)
                                {
                                    Some((_, c)) => c,
                                    None => counts.entry((m.tag.clone(), m.run)).or_default(),
                                };
                                c.messages += 1;
                                c.bytes += m.payload.len() as u64;
                            }
                        });
                        let f = frontier.frontier().iter().min().copied();
                        while let Some((&w, _)) = open.first_key_value() {
                            // A window closes when the frontier passes its end.
                            if f.is_some_and(|f| f < (w + 1) * window) {
                                break;
                            }
                            let (cap, counts) = open.pop_first().expect("non-empty").1;
                            let end_s = (w + 1) * window / TICKS_PER_SECOND;
                            let mut session = output.session(&cap);
                            for ((tag, run), c) in counts {
                                let change = match (run, last_run.get(&tag)) {
                                    (Some(r), Some(prev)) if *prev != r => "1",
                                    _ => "0",
                                };
                                if let Some(r) = run {
                                    if last_run.insert(tag.clone(), r) != Some(r) {
                                        dirty = true;
                                    }
                                }
                                session.give(Item::Row(Row {
                                    table: table.clone(),
                                    header: header.clone(),
                                    cells: vec![
                                        end_s.to_string(),
                                        tag,
                                        run.map_or(String::new(), |r| r.to_string()),
                                        c.messages.to_string(),
                                        c.bytes.to_string(),
                                        format!("{:.3}", c.messages as f64 / interval),
                                        format!("{:.1}", c.bytes as f64 / interval),
                                        change.to_string(),
                                    ],
                                }));
                            }
                        }
                        if dirty && (f.is_none() || state.due()) {
                            state.save(&last_run);
                            dirty = false;
                        }
                    });
                }
            },
        );
        Ok(Some(out))
    }
}
