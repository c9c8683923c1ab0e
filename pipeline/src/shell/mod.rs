//! The monitor shell: data and event-time timers, one at a time, in data
//! time order, whatever the batching, worker count or replay speed.
//!
//! Every operator that keeps state over time (a monitor, a router, an
//! ordered sink) implements [`Monitor`] and is built with [`ordered`] (or
//! [`ordered_items`], [`ordered_sink`]). The shell
//!
//! * buffers the input per timestamp until the frontier has passed it,
//!   then hands the records of that timestamp over **sorted by a stable
//!   key** ([`Monitor::on_data`]), so arrival order never matters
//!   ([`ordered_combined`] combines records on arrival instead, e.g. into
//!   counts, so that a monitor that only adds up its input does not hold
//!   every record until the frontier passes);
//! * keeps the monitor's **timers** ([`Out::timer`]) and fires each one
//!   ([`Monitor::on_timer`]) in time order with the data.
//!
//! # The one convention
//!
//! **A timer at `T` fires after all data at times ≤ `T` and before any
//! data at times > `T`** (Flink's rule: the timer fires when the
//! watermark passes `T`). In timely terms: once the input frontier is
//! beyond `T`. A window `[a, b)` therefore closes with a timer at `b − 1`,
//! its last tick, and emits there.
//!
//! The sequence a monitor sees is a function of its input records alone:
//! a frontier that jumps from the first to the last time fires every
//! timer in between, each at its own time, interleaved with the data.
//!
//! # End of input
//!
//! When the frontier becomes empty (a replay ended), timers fire up to
//! the **last data time** and not beyond (a "silent for 20 s" timer due
//! after the last record would otherwise declare every DOM silent at the
//! end of every replay); the remaining timers are dropped and
//! [`Monitor::on_end`] is called once, stamped at the last data time, to
//! flush what is partial. Live, the frontier never empties: the
//! heartbeat advances it, so the same timers fire while no data comes.
//!
//! # Stop (not an end)
//!
//! A run *stopped* with a state directory (SIGINT/SIGTERM, `km3mon
//! replay --stop-at`: [`crate::runtime::RunEnv::suspends`]) also ends
//! with an empty frontier, but its input is only paused: timers fire up
//! to the last data time as at an end, then [`Monitor::on_stop`] is
//! called instead of `on_end` (nothing partial is flushed), the monitor
//! saves its state and the shell saves the timers still pending
//! (`STATE_DIR/<node>~timers-<operator>.w<k>.json`). The next run with that state
//! directory restores both before its first record, so a run stopped at
//! any point and restarted gives the outputs of one uninterrupted run.
//! Without a state directory a stop is an end (flushed, not saved).
//!
//! # Capabilities
//!
//! The operator holds one capability, downgraded to the input frontier
//! after each activation. Every pending record and timer is at or after
//! that frontier, so a monitor may emit at the time of whatever it is
//! handling and at any later time.

mod engine;
pub mod window;

pub use engine::{drive, random_steps, Engine, Out, Step};

use crate::item::{Item, Time};
use crate::operator::BuildContext;
use crate::runtime::context::ItemStream;
use crate::runtime::state::StateStore;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

/// A stateful operator driven by the shell: see the module documentation.
pub trait Monitor<D, O = Item>: 'static {
    /// All records of timestamp `t`, sorted by the shell's key; called in
    /// time order, after every timer at a time < `t`.
    fn on_data(&mut self, t: Time, data: Vec<D>, out: &mut Out<O>);

    /// A timer registered with [`Out::timer`] at `t`: every record at a
    /// time ≤ `t` has been handed over, none later. Several registrations
    /// of one time fire once.
    fn on_timer(&mut self, _t: Time, _out: &mut Out<O>) {}

    /// The input ended (replay); `last` = the last data time (`None`
    /// without any data). Timers up to `last` have fired. Flush partial
    /// windows here, and say in their output that they are partial.
    fn on_end(&mut self, _last: Option<Time>, _out: &mut Out<O>) {}

    /// The run was *stopped* with a state directory (a signal, or
    /// `--stop-at`): the input is paused, not ended, and the next run
    /// with the same state directory continues where this one stopped.
    /// Timers up to `last` have fired; the later ones are persisted by
    /// the shell. A monitor that flushes partial windows in
    /// [`Monitor::on_end`] must not do so here: it keeps them in the
    /// state its [`Monitor::save`] writes right after this call.
    /// Default: [`Monitor::on_end`] (a sink closes its files either way).
    fn on_stop(&mut self, last: Option<Time>, out: &mut Out<O>) {
        self.on_end(last, out)
    }

    /// Persist what must survive a restart: called when the store's
    /// interval has passed, and after [`Monitor::on_end`] or
    /// [`Monitor::on_stop`]. Pending timers are persisted by the shell
    /// (and restored before the next run's first record), so the state
    /// here is what the monitor holds: open windows ([`window::Tumbling`]
    /// is serde), counts, histograms, alert books.
    fn save(&mut self, _store: &StateStore) {}
}

/// Builds `monitor` on worker 0: every record is exchanged there,
/// buffered per timestamp, sorted by `key` and handed over in time order
/// with the timers. The other workers only follow the frontier.
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
    M: Monitor<D, Item>,
{
    let one = (ctx.index() == 0).then_some(monitor);
    let mut one = Some(one);
    partitioned(
        ctx,
        input,
        name,
        |_: &D| 0,
        key,
        move || one.take().flatten(),
    )
}

/// Like [`ordered`], but records are exchanged by `route` (a stable key:
/// the same record goes to the same worker in every run and process) and
/// every worker runs its own monitor from `make` on its part. Timers and
/// the end of input are per worker: the last data time at the end is the
/// last one this worker saw, so a partitioned monitor keeps per-key state
/// only.
pub fn partitioned<'s, D, K, O, M>(
    ctx: &BuildContext<'s>,
    input: Stream<'s, Time, Vec<D>>,
    name: &str,
    route: fn(&D) -> u64,
    key: fn(&D) -> K,
    make: impl FnMut() -> Option<M>,
) -> Stream<'s, Time, Vec<O>>
where
    D: timely::ExchangeData,
    K: Ord + 'static,
    O: Clone + 'static,
    M: Monitor<D, O>,
{
    let arrive = |batch: &mut Vec<D>, data: &mut Vec<D>| {
        if batch.is_empty() && data.capacity() <= 4 * data.len() + 64 {
            // The arriving container itself: no copy (unless it is
            // mostly empty: a pending time would pin its capacity).
            std::mem::swap(batch, data);
        } else {
            batch.append(data);
        }
    };
    shell(ctx, input, name, route, key, arrive, make)
}

/// Like [`ordered`], but each arriving record is combined at once into
/// the records pending at its time by `combine` (e.g. adding a message's
/// length to its tag's count), so records are not held until the
/// frontier passes them: for monitors that only add up their input. The
/// monitor gets the combined records of each time, sorted by `key`;
/// `combine` must give the same result in any arrival order (sums,
/// counts, maxima).
pub fn ordered_combined<'s, I, D, K, M>(
    ctx: &BuildContext<'s>,
    input: Stream<'s, Time, Vec<I>>,
    name: &str,
    key: fn(&D) -> K,
    combine: fn(&mut Vec<D>, I),
    monitor: M,
) -> ItemStream<'s>
where
    I: timely::ExchangeData,
    D: 'static,
    K: Ord + 'static,
    M: Monitor<D, Item>,
{
    let one = (ctx.index() == 0).then_some(monitor);
    let mut one = Some(one);
    let arrive = move |batch: &mut Vec<D>, data: &mut Vec<I>| {
        for record in data.drain(..) {
            combine(batch, record);
        }
    };
    shell(
        ctx,
        input,
        name,
        |_: &I| 0,
        key,
        arrive,
        move || one.take().flatten(),
    )
}

/// The timely operator behind every builder: records of type `I` are
/// exchanged by `route` and added to the pending records (`D`) of their
/// time by `arrive`.
fn shell<'s, I, D, K, O, M>(
    ctx: &BuildContext<'s>,
    input: Stream<'s, Time, Vec<I>>,
    name: &str,
    route: fn(&I) -> u64,
    key: fn(&D) -> K,
    mut arrive: impl FnMut(&mut Vec<D>, &mut Vec<I>) + 'static,
    mut make: impl FnMut() -> Option<M>,
) -> Stream<'s, Time, Vec<O>>
where
    I: timely::ExchangeData,
    D: 'static,
    K: Ord + 'static,
    O: Clone + 'static,
    M: Monitor<D, O>,
{
    let metrics = ctx.metrics.clone();
    let state = ctx.state();
    let env = ctx.env.clone();
    // One part per shell: a node may build several (pmt_rates has two).
    let timers = state.part(&format!("timers-{name}"));
    let timers_key = format!("w{}", ctx.index());
    let mut engine = make().map(|m| {
        let mut e = Engine::new(key);
        // Every worker's timers: a restart with another worker count
        // still fires each (a monitor ignores a timer it has no state
        // for, as it ignores a repeated registration).
        e.restore_timers(timers.load_all::<Vec<Time>>().into_values().flatten());
        (m, e)
    });
    input.unary_frontier::<CapacityContainerBuilder<Vec<O>>, _, _, _>(
        Exchange::new(route),
        name,
        move |cap, _info| {
            let mut held = Some(cap);
            move |(input, frontier), output| {
                let Some(h) = held.as_mut() else {
                    input.for_each(|_, _| {});
                    return;
                };
                input.for_each(|cap, data| {
                    // Upstreams send from one capability: a singleton stamp.
                    let Some(&t) = cap.least() else { return };
                    if let Some((_, e)) = engine.as_mut() {
                        e.push_with(t, |batch| arrive(batch, data));
                    }
                });
                let f = frontier.frontier().iter().min().copied();
                if let Some((m, e)) = engine.as_mut() {
                    let mut out = Out::new(*h.time());
                    // Asked only at the end: a stop is known by then.
                    let stop = f.is_none() && env.suspends();
                    metrics.busy(|| e.advance_or_stop(m, f, stop, &mut out));
                    let mut items = out.into_items().into_iter().peekable();
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
                        timers.save(&std::collections::BTreeMap::from([(
                            timers_key.clone(),
                            e.timers_pending(),
                        )]));
                        state.mark_saved();
                    }
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

/// [`ordered`] over the framework's items, sorted by [`Item::order_key`].
pub fn ordered_items<'s, M: Monitor<Item>>(
    ctx: &BuildContext<'s>,
    input: ItemStream<'s>,
    name: &str,
    monitor: M,
) -> ItemStream<'s> {
    ordered(ctx, input, name, Item::order_key, monitor)
}

/// [`ordered_items`] for a sink: a monitor that emits nothing and hands
/// its records to an I/O thread. (`on_end` is where it closes its
/// channel.)
pub fn ordered_sink<'s, M: Monitor<Item>>(
    ctx: &BuildContext<'s>,
    input: ItemStream<'s>,
    name: &str,
    monitor: M,
) {
    let _ = ordered_items(ctx, input, name, monitor);
}

/// Drives a monitor by hand (unit tests): all of `input` in one batch,
/// then the end of input — the coarsest frontier there is, and the one
/// that fires every timer in between at its own time. Records of one
/// timestamp keep their order in `input`. Returns what the monitor
/// emitted, by stamp (stable within a stamp). For other frontier steps,
/// see [`drive`].
pub fn run_by_hand<D, O, M: Monitor<D, O>>(
    monitor: &mut M,
    input: Vec<(Time, Vec<D>)>,
) -> Vec<(Time, O)> {
    let mut steps: Vec<Step<D>> = input.into_iter().map(|(t, d)| Step::Data(t, d)).collect();
    steps.push(Step::Frontier(None));
    drive(monitor, steps)
}
