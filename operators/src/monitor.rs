//! The shell shared by the whole-detector monitors: data in time order,
//! one worker, deterministic.
//!
//! A monitor implements [`Monitor`]: it sees the records of each timestamp
//! once all of them have arrived (the frontier has passed), sorted by a
//! stable key, and is told when the frontier advances so it can close
//! windows. Everything it emits is stamped by the monitor itself; a stamp
//! chosen as "last tick of a window that the previous frontier had not yet
//! passed" is always valid, which keeps the output identical for any
//! number of workers (items from two workers reach the merging worker in
//! any order, which is why the shell sorts them).

use std::collections::BTreeMap;

use pipeline::item::{Item, Time};
use pipeline::operator::{BuildContext, ItemStream};
use pipeline::runtime::state::StateStore;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

/// What a monitor emits during one step.
pub struct Out {
    floor: Time,
    items: Vec<(Time, Item)>,
}

impl Out {
    /// Emits `item` at `t`. A stamp below the operator's capability is
    /// raised to it (a programming error in debug builds).
    pub fn give(&mut self, t: Time, item: Item) {
        debug_assert!(
            t >= self.floor,
            "stamp {t} below the capability {}",
            self.floor
        );
        self.items.push((t.max(self.floor), item));
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// For unit tests of monitors: a sink that accepts every stamp.
    pub fn collector() -> Out {
        Out {
            floor: 0,
            items: Vec::new(),
        }
    }

    pub fn take(&mut self) -> Vec<(Time, Item)> {
        std::mem::take(&mut self.items)
    }
}

/// A whole-detector monitor.
pub trait Monitor<D>: 'static {
    /// All records of timestamp `t`, sorted; called in time order.
    fn on_data(&mut self, t: Time, data: Vec<D>, out: &mut Out);
    /// Every record before `f` has been seen; `None` = end of the stream.
    fn on_progress(&mut self, f: Option<Time>, out: &mut Out);
    /// Persist what must survive a restart (called when the store's
    /// interval has passed and at the end).
    fn save(&mut self, _store: &StateStore) {}
}

/// Builds `monitor` on the stream: everything is exchanged to worker 0,
/// buffered per timestamp until complete, sorted by `key` and handed over
/// in time order. The other workers only follow the frontier.
pub fn ordered<'s, D, K, M>(
    ctx: &BuildContext<'s>,
    input: Stream<'s, Time, Vec<D>>,
    name: &str,
    key: fn(&D) -> K,
    monitor: M,
) -> ItemStream<'s>
where
    D: timely::ExchangeData,
    K: Ord + 'static,
    M: Monitor<D>,
{
    let metrics = ctx.metrics.clone();
    let state = ctx.state();
    let mut monitor = (ctx.index() == 0).then_some(monitor);
    input.unary_frontier::<CapacityContainerBuilder<Vec<Item>>, _, _, _>(
        Exchange::new(|_: &D| 0),
        name,
        move |cap, _info| {
            let mut held = Some(cap);
            let mut pending: BTreeMap<Time, Vec<D>> = BTreeMap::new();
            let mut last_frontier: Option<Option<Time>> = None;
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    // Our upstreams send from one capability: a singleton stamp.
                    let Some(&t) = cap.least() else { return };
                    pending.entry(t).or_default().append(data);
                });
                let f = frontier.frontier().iter().min().copied();
                let Some(h) = held.as_mut() else { return };
                if let Some(m) = monitor.as_mut() {
                    let mut out = Out {
                        floor: *h.time(),
                        items: Vec::new(),
                    };
                    metrics.busy(|| {
                        while let Some((&t, _)) = pending.first_key_value() {
                            if f.is_some_and(|f| t >= f) {
                                break;
                            }
                            let mut data = pending.pop_first().expect("non-empty").1;
                            data.sort_by_key(key);
                            m.on_data(t, data, &mut out);
                        }
                        if last_frontier != Some(f) {
                            last_frontier = Some(f);
                            m.on_progress(f, &mut out);
                        }
                    });
                    // Stable sort: items of one stamp keep the monitor's order.
                    out.items.sort_by_key(|(t, _)| *t);
                    let mut items = out.items.into_iter().peekable();
                    while let Some((t, item)) = items.next() {
                        let at = h.delayed(&t);
                        let mut session = output.session(&at);
                        session.give(item);
                        while let Some((_, next)) = items.next_if(|(t2, _)| *t2 == t) {
                            session.give(next);
                        }
                    }
                    if f.is_none() || state.due() {
                        m.save(&state);
                    }
                } else {
                    pending.clear();
                }
                match f {
                    Some(f) if f > *h.time() => h.downgrade(&f),
                    Some(_) => {}
                    None => held = None,
                }
            }
        },
    )
}

/// [`ordered`] over the framework's items.
pub fn ordered_items<'s, M: Monitor<Item>>(
    ctx: &BuildContext<'s>,
    input: ItemStream<'s>,
    name: &str,
    monitor: M,
) -> ItemStream<'s> {
    ordered(ctx, input, name, Item::order_key, monitor)
}

/// Drives a monitor by hand in unit tests: `(time, items)` in time order,
/// then the end of the stream; returns everything emitted, by stamp.
pub fn run_by_hand<D, M: Monitor<D>>(
    monitor: &mut M,
    input: Vec<(Time, Vec<D>)>,
) -> Vec<(Time, Item)> {
    let mut out = Out::collector();
    let mut by_time: BTreeMap<Time, Vec<D>> = BTreeMap::new();
    for (t, d) in input {
        by_time.entry(t).or_default().extend(d);
    }
    for (t, d) in by_time {
        monitor.on_data(t, d, &mut out);
        monitor.on_progress(Some(t + 1), &mut out);
    }
    monitor.on_progress(None, &mut out);
    let mut items = out.take();
    items.sort_by_key(|(t, _)| *t);
    items
}
