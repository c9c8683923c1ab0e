//! `type = "detector_state"`: the detector's health at a glance — which
//! DOMs have which alert conditions active, per DU and condition — kept
//! incrementally in differential dataflow.
//!
//! The monitors' DOM-level alerts (`dom_inactive:<dom>`, `time_sync:<dom>`,
//! …) become a collection of active `(dom_id, condition)` pairs (+1 when a
//! condition starts firing, −1 when it resolves; a reminder of a pair the
//! node does not know counts as its start, so a restarted run learns what
//! still fires). It is joined with the detector, arranged by DOM
//! (`dom_id → (du, floor)`), and reduced to the count of DOMs per
//! `(du, condition)`, per condition, and the set of conditions per DOM.
//! Differential computes each data time's answer from the changes alone,
//! and its answer at a time does not depend on how updates were batched
//! or spread over workers, so `-w 1` and `-w 2` give the same table.
//!
//! Re-keying: with summaryslices among its inputs the node sees each
//! run's detector id and run number. At the data time of a run's first
//! summaryslice it takes that run's detector (the DB's, through the run's
//! calibrations; a replay waits for it, a live run takes it once fetched)
//! and, when its DOMs or their places differ, retracts the old detector
//! and inserts the new one: the join moves every active pair to its new
//! DU and floor, pairs of DOMs the new detector lacks leave the counts,
//! and the DOM map takes the new layout. Without a DB (`--detector`) the
//! one layout stays.
//!
//! Outputs: rows `timestamp,du,condition,doms` (table `detector_state`) at
//! each data time a count changes (`du` = `all` for the whole detector; a
//! cleared count is a row with 0), and the table of the last data time,
//! published for the gauges `km3mon_doms_affected{du,condition}` and
//! `km3mon_alerts_firing{condition}`, `km3mon ctl health`, the chatbot's
//! `status` and the web's Detector page. The same table goes out as a
//! `health` item at each data time it changes: `alerts_notify` takes it as
//! an input and counts and places (DU, floor) its grouped texts by it, in
//! data time with the alerts (never from the published copy, whose moment
//! of reading would depend on the workers' timing).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use differential_dataflow::AsCollection;
use pipeline::health::{DetectorHealth, DomHealth, HealthSnapshot};
use pipeline::item::{AlertState, Item, Row, Time, TICK_NS};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Map, ToStream};
use timely::dataflow::operators::Concatenate;
use timely::dataflow::Stream;

use crate::shell::{ordered, partitioned, Monitor, Out};
use pipeline::runtime::state::StateStore;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorState {
    /// Table name of the rows.
    #[serde(default = "default_table")]
    pub table: String,
}

fn default_table() -> String {
    "detector_state".into()
}

impl NodeConfig for DetectorState {
    const TYPE: &'static str = "detector_state";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "DOMs per DU and alert condition right now (differential dataflow): gauges, ctl health, the Detector page";
    const EXAMPLE: &'static str = r#"inputs = ["dom_activity_example", "summaryslices"]"#;
}

pub const HEADER: [&str; 4] = ["timestamp", "du", "condition", "doms"];

/// An alert reduced to what the table needs: (dom, condition, firing).
type Seen = (u32, String, bool);

/// A DOM of the detector: (dom, (du, floor)).
type Located = (u32, (u32, i32));

/// An update of the active pairs: ((dom, condition), time, ±1).
type Update = ((u32, String), Time, isize);

/// The `(condition, dom)` of a DOM-level alert key (`condition:dom_id`).
pub fn dom_condition(key: &str) -> Option<(String, u32)> {
    let (cond, dom) = key.split_once(':')?;
    Some((cond.to_string(), dom.parse().ok()?))
}

impl Node for DetectorState {
    fn accepts(&self) -> Vec<StreamKind> {
        // Summaryslices: the run and detector of the data (re-keying).
        vec![StreamKind::Alerts, StreamKind::Summaryslices]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Table)
    }
    fn outputs(&self) -> Vec<StreamKind> {
        // The rows (CSV) and the table itself (`alerts_notify`'s texts).
        vec![StreamKind::Table, StreamKind::Health]
    }
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            (String::new(), Resource::Detector),
            (String::new(), Resource::DetectorHealth),
        ]
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("detector_state needs an input"))?;
        let det = ctx.detector()?;
        // The gauges come with the nodes' series (runtime::prom).
        let health = ctx.env.control.attach_health();

        // 0. The run's detector, from the summaryslices' headers.
        let runs = input.clone().flat_map(|item| match item {
            Item::Summaryslice(_) => item.daq_run(),
            _ => None,
        });
        let layout_of = |d: &daq::detector::Detector| -> Vec<(u32, i32, u32)> {
            let mut l: Vec<_> = d
                .modules()
                .iter()
                .map(|m| (m.du, m.floor, m.dom_id))
                .collect();
            l.sort_unstable();
            l
        };
        let mut watch = Some(RunWatch {
            layout: layout_of(&det),
            current: None,
            calibrations: ctx.env.calibrations.clone(),
            replay: !matches!(ctx.env.mode, pipeline::runtime::Mode::Live),
        });
        let leader = ctx.index() == 0;
        let rekeys = partitioned(
            ctx,
            runs,
            "detector_state_runs",
            |_: &(i32, i32)| 0,
            |r: &(i32, i32)| *r,
            move || if leader { watch.take() } else { None },
        );

        // 1. Alerts → transitions of the active pairs, per DOM.
        let seen = input.flat_map(|item| match item {
            Item::Alert(a) => {
                dom_condition(&a.key).map(|(c, d)| (d, c, a.state == AlertState::Firing))
            }
            _ => None,
        });
        // A stopped run's active pairs: each worker keeps those of the
        // DOMs routed to it (`Exchange` sends a DOM to `dom % peers`) and
        // enters them into the collection at time 0, with the detector,
        // so the counts go on from where they were (the table, restored
        // too, writes no row for them).
        let (index, peers) = (ctx.index() as u64, ctx.peers() as u64);
        let restored: BTreeSet<(u32, String)> = ctx
            .state()
            .part(PAIRS_PART)
            .load_all::<Vec<(u32, String)>>()
            .into_values()
            .flatten()
            .filter(|(dom, _)| u64::from(*dom) % peers == index)
            .collect();
        let again: Vec<((u32, String), Time, isize)> =
            restored.iter().map(|k| (k.clone(), 0, 1)).collect();
        let mut pairs = Some(Pairs {
            active: restored,
            key: format!("w{index}"),
            store: None,
        });
        let updates = partitioned(
            ctx,
            seen,
            "detector_state_pairs",
            |s: &Seen| u64::from(s.0),
            |s: &Seen| s.clone(),
            move || pairs.take(),
        );

        // 2. The collection, joined with the arranged detector, reduced.
        let active = ctx
            .scope
            .concatenate([again.to_stream(ctx.scope), updates])
            .as_collection();
        let rows: Vec<(Located, Time, isize)> = if ctx.is_leader() {
            det.modules()
                .iter()
                .map(|m| ((m.dom_id, (m.du, m.floor)), 0, 1))
                .collect()
        } else {
            Vec::new()
        };
        let moves = rekeys.clone().flat_map(|r| match r {
            Rekey::Dom(located, t, d) => Some((located, t, d)),
            Rekey::Layout(..) => None,
        });
        let detector = ctx
            .scope
            .concatenate([rows.to_stream(ctx.scope), moves])
            .as_collection();
        let located = active
            .join(detector)
            .map(|(dom, (cond, (du, floor)))| (dom, du, floor, cond));
        let per_du = located.clone().map(|(_, du, _, c)| (du, c)).count();
        let per_condition = located.clone().map(|(_, _, _, c)| c).count();
        let per_dom = located
            .map(|(dom, du, floor, c)| ((dom, du, floor), c))
            .reduce(|_dom, conds, out| {
                out.push((
                    conds.iter().map(|(c, _)| (*c).clone()).collect::<Vec<_>>(),
                    1,
                ))
            });

        // 3. The changes of each data time, in time order, on worker 0.
        let changes = ctx.scope.concatenate([
            per_du
                .inner
                .map(|(((du, c), n), t, d)| (Change::Du(du, c, n as u64), t, d as i64)),
            per_condition
                .inner
                .map(|((c, n), t, d)| (Change::Total(c, n as u64), t, d as i64)),
            per_dom.inner.map(|(((dom, du, floor), cs), t, d)| {
                (Change::Dom(dom, du, floor, cs), t, d as i64)
            }),
            rekeys.flat_map(|r| match r {
                Rekey::Layout(l, t) => Some((Change::Layout(l), t, 1)),
                Rekey::Dom(..) => None,
            }),
        ]);
        let changes = at_own_time(changes);
        let layout = layout_of(&det);
        let snap = ctx
            .state()
            .load_all::<HealthSnapshot>()
            .remove(TABLE_KEY)
            .unwrap_or(HealthSnapshot {
                layout,
                ..Default::default()
            });
        let doms = snap.doms.iter().map(|d| (d.dom_id, d.clone())).collect();
        if leader {
            // Before the first alert, `ctl health` and /detector.html
            // show the detector ("216 DOMs, no alert condition so
            // far"), not an empty one.
            health.publish(Arc::new(snap.clone()));
        }
        let table = Table {
            name: self.table.clone(),
            health,
            snap,
            doms,
        };
        Ok(Some(ordered(
            ctx,
            changes,
            "detector_state",
            |c: &(Change, i64)| c.clone(),
            table,
        )))
    }
}

/// Differential's updates carry their time, which may be later than their
/// batch's: each goes out at its own time, as the shell expects.
fn at_own_time<'s>(
    updates: Stream<'s, Time, Vec<(Change, Time, i64)>>,
) -> Stream<'s, Time, Vec<(Change, i64)>> {
    updates.unary::<CapacityContainerBuilder<Vec<(Change, i64)>>, _, _, _>(
        Pipeline,
        "detector_state_restamp",
        |_, _| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let mut by_time: BTreeMap<Time, Vec<(Change, i64)>> = BTreeMap::new();
                    for (c, t, d) in data.drain(..) {
                        by_time.entry(t).or_default().push((c, d));
                    }
                    for (t, batch) in by_time {
                        output
                            .session(&cap.delayed(&t, 0))
                            .give_iterator(batch.into_iter());
                    }
                });
            }
        },
    )
}

/// A change of the detector at a run change.
#[derive(Debug, Clone)]
enum Rekey {
    /// ±1 of a DOM's place, at its time.
    Dom(Located, Time, isize),
    /// The new layout (du, floor, dom), sorted.
    Layout(Vec<(u32, i32, u32)>, Time),
}

/// On worker 0, in time order: the detector of each run seen.
struct RunWatch {
    layout: Vec<(u32, i32, u32)>,
    current: Option<(i32, i32)>,
    calibrations: Option<Arc<pipeline::runtime::calibration::RunCalibrations>>,
    replay: bool,
}

impl Monitor<(i32, i32), Rekey> for RunWatch {
    fn on_data(&mut self, t: Time, data: Vec<(i32, i32)>, out: &mut Out<Rekey>) {
        let Some(cal) = self.calibrations.clone() else {
            return;
        };
        for run in data {
            if self.current == Some(run) {
                continue;
            }
            let (det_id, number) = run;
            // A replay waits (its table must not depend on the DB's
            // speed); live, the first record after the fetch re-keys.
            let got = if self.replay {
                cal.wait(det_id, number)
            } else {
                match cal.try_get(det_id, number) {
                    Some(r) => r,
                    None => continue,
                }
            };
            self.current = Some(run);
            let det = match got {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(
                        "detector_state: no detector for run {number} of detector {det_id} \
                         ({e}): the table keeps the previous layout"
                    );
                    continue;
                }
            };
            let mut layout: Vec<(u32, i32, u32)> = det
                .modules()
                .iter()
                .map(|m| (m.du, m.floor, m.dom_id))
                .collect();
            layout.sort_unstable();
            if layout == self.layout {
                continue;
            }
            tracing::info!(
                "detector_state: run {number} of detector {det_id}: {} DOMs, re-keying the table",
                layout.iter().filter(|(_, floor, _)| *floor > 0).count()
            );
            let located = |&(du, floor, dom): &(u32, i32, u32)| (dom, (du, floor));
            for l in &self.layout {
                out.give(t, Rekey::Dom(located(l), t, -1));
            }
            for l in &layout {
                out.give(t, Rekey::Dom(located(l), t, 1));
            }
            out.give(t, Rekey::Layout(layout.clone(), t));
            self.layout = layout;
        }
    }
}

/// The state part of the active pairs (one key per worker).
const PAIRS_PART: &str = "pairs";

/// The active pairs of this worker's DOMs.
struct Pairs {
    active: BTreeSet<(u32, String)>,
    /// This worker's key in the pairs part of the node's state.
    key: String,
    /// That part's store, made once: it remembers a failing save, so a
    /// full disk is logged once, not at every save.
    store: Option<StateStore>,
}

impl Monitor<Seen, Update> for Pairs {
    fn on_data(&mut self, t: Time, data: Vec<Seen>, out: &mut Out<Update>) {
        for (dom, cond, firing) in data {
            let key = (dom, cond);
            if firing {
                if !self.active.contains(&key) {
                    self.active.insert(key.clone());
                    out.give(t, (key, t, 1));
                }
            } else if self.active.remove(&key) {
                out.give(t, (key, t, -1));
            }
        }
    }

    /// Stopped: the pairs are kept (saved), not flushed.
    fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out<Update>) {}

    fn save(&mut self, store: &StateStore) {
        let active: Vec<&(u32, String)> = self.active.iter().collect();
        self.store
            .get_or_insert_with(|| store.part(PAIRS_PART))
            .save(&BTreeMap::from([(self.key.clone(), active)]));
    }
}

/// One change of the reduced collections.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Change {
    /// DOMs of (du, condition).
    Du(u32, String, u64),
    /// DOMs of a condition, detector-wide.
    Total(String, u64),
    /// A DOM's active conditions.
    Dom(u32, u32, i32, Vec<String>),
    /// The detector's layout after a run change (du, floor, dom).
    Layout(Vec<(u32, i32, u32)>),
}

/// The materialised table on worker 0.
struct Table {
    name: String,
    health: Arc<DetectorHealth>,
    snap: HealthSnapshot,
    doms: BTreeMap<u32, DomHealth>,
}

impl Table {
    fn row(&self, t: Time, du: &str, cond: &str, n: u64) -> Item {
        Item::Row(Box::new(Row {
            table: self.name.clone(),
            header: HEADER.iter().map(|s| s.to_string()).collect(),
            cells: vec![
                (t * TICK_NS / 1_000_000_000).to_string(),
                du.to_string(),
                cond.to_string(),
                n.to_string(),
            ],
        }))
    }
}

impl Monitor<(Change, i64)> for Table {
    /// Retractions first, then insertions: a count that moves from 3 to
    /// 4 is `−(k, 3)`, `+(k, 4)` at one time.
    fn on_data(&mut self, t: Time, mut data: Vec<(Change, i64)>, out: &mut Out) {
        data.sort_by_key(|(_, d)| *d);
        // Time 0 is a restored run's pairs entering the collection again:
        // they rebuild the saved table, which already says all of it.
        if t == 0 {
            return;
        }
        let before_du = self.snap.by_du.clone();
        let before_total = self.snap.totals.clone();
        for (change, d) in data {
            match change {
                Change::Du(du, c, n) => {
                    let row = self.snap.by_du.entry(du).or_default();
                    if d > 0 {
                        row.insert(c, n);
                    } else if row.get(&c) == Some(&n) {
                        row.remove(&c);
                    }
                    if row.is_empty() {
                        self.snap.by_du.remove(&du);
                    }
                }
                Change::Total(c, n) => {
                    if !self.snap.conditions.contains(&c) {
                        self.snap.conditions.push(c.clone());
                        self.snap.conditions.sort();
                    }
                    if d > 0 {
                        self.snap.totals.insert(c, n);
                    } else if self.snap.totals.get(&c) == Some(&n) {
                        self.snap.totals.remove(&c);
                    }
                }
                Change::Layout(layout) => self.snap.layout = layout,
                Change::Dom(dom, du, floor, conditions) => {
                    if d > 0 {
                        self.doms.insert(
                            dom,
                            DomHealth {
                                dom_id: dom,
                                du,
                                floor,
                                conditions,
                            },
                        );
                    } else if self
                        .doms
                        .get(&dom)
                        .is_some_and(|x| x.conditions == conditions)
                    {
                        self.doms.remove(&dom);
                    }
                }
            }
        }
        // The rows of what changed, in (du, condition) order; `all` last.
        let keys: BTreeSet<(u32, String)> = before_du
            .iter()
            .chain(self.snap.by_du.iter())
            .flat_map(|(du, r)| r.keys().map(move |c| (*du, c.clone())))
            .collect();
        for (du, c) in keys {
            let old = before_du
                .get(&du)
                .and_then(|r| r.get(&c))
                .copied()
                .unwrap_or(0);
            let new = self
                .snap
                .by_du
                .get(&du)
                .and_then(|r| r.get(&c))
                .copied()
                .unwrap_or(0);
            if old != new {
                out.give(t, self.row(t, &du.to_string(), &c, new));
            }
        }
        let conds: BTreeSet<&String> = before_total.keys().chain(self.snap.totals.keys()).collect();
        for c in conds {
            let old = before_total.get(c).copied().unwrap_or(0);
            let new = self.snap.totals.get(c).copied().unwrap_or(0);
            if old != new {
                out.give(t, self.row(t, "all", c, new));
            }
        }
        self.snap.time_utc = Some((t * TICK_NS) as f64 / 1e9);
        self.snap.doms = self.doms.values().cloned().collect();
        // One table, two readers: the gauges/`ctl health`/the Detector
        // page (published) and the alert router (the `health` stream, in
        // data time with the alerts), so their counts cannot differ.
        let shared = Arc::new(self.snap.clone());
        self.health.publish(shared.clone());
        out.give(t, Item::Health(shared));
    }

    /// Stopped: nothing to flush; the table is saved.
    fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out) {}

    fn save(&mut self, store: &StateStore) {
        store.save(&BTreeMap::from([(TABLE_KEY.to_string(), &self.snap)]));
    }
}

/// The table's key in the node's state.
const TABLE_KEY: &str = "table";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(
            dom_condition("dom_inactive:808447031"),
            Some(("dom_inactive".into(), 808447031))
        );
        assert_eq!(dom_condition("trigger_rate_zero"), None);
        assert_eq!(dom_condition("msg_errors:JDataFilter"), None);
    }

    #[test]
    fn pairs_count_reminders_once_and_ignore_unknown_resolves() {
        let mut p = Pairs {
            active: BTreeSet::new(),
            key: "w0".into(),
            store: None,
        };
        let out = pipeline::shell::run_by_hand(
            &mut p,
            vec![
                (10, vec![(1, "time_sync".into(), true)]),
                (
                    20,
                    vec![(1, "time_sync".into(), true), (2, "x".into(), false)],
                ),
                (30, vec![(1, "time_sync".into(), false)]),
            ],
        );
        let diffs: Vec<(Time, isize)> = out.iter().map(|(t, (_, _, d))| (*t, *d)).collect();
        assert_eq!(diffs, vec![(10, 1), (30, -1)]);
    }
}
