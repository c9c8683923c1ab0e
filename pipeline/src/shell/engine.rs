//! The shell's ordering and timer logic, free of timely so that unit
//! tests drive it by hand with any frontier steps they like.

use std::collections::{BTreeMap, BTreeSet};

use super::Monitor;
use crate::item::{Item, Time};

/// What a monitor emits during one step, and the timers it asks for.
pub struct Out<O = Item> {
    floor: Time,
    now: Time,
    /// A timer registered now may not fire before this time.
    timer_floor: Time,
    items: Vec<(Time, O)>,
    timers: Vec<Time>,
}

impl<O> Out<O> {
    pub(crate) fn new(floor: Time) -> Out<O> {
        Out {
            floor,
            now: floor,
            timer_floor: floor,
            items: Vec::new(),
            timers: Vec::new(),
        }
    }

    /// For unit tests of monitors: accepts every stamp.
    pub fn collector() -> Out<O> {
        Out::new(0)
    }

    /// Emits `item` at `t` (≥ the time being handled). A stamp below
    /// the operator's capability is raised to it (a programming error in
    /// debug builds).
    pub fn give(&mut self, t: Time, item: O) {
        debug_assert!(
            t >= self.floor,
            "stamp {t} below the capability {}",
            self.floor
        );
        self.items.push((t.max(self.floor), item));
    }

    /// Asks for [`Monitor::on_timer`] at `at`. From `on_data(t)` any
    /// `at ≥ t` is valid (a timer at `t` fires right after the data of
    /// `t`); from `on_timer(T)` any `at > T`. An earlier time is raised to
    /// the earliest valid one.
    pub fn timer(&mut self, at: Time) {
        self.timers.push(at.max(self.timer_floor));
    }

    /// The data time being handled (the record's or the timer's).
    pub fn now(&self) -> Time {
        self.now
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Everything emitted so far, sorted by stamp (stable within one).
    pub fn take(&mut self) -> Vec<(Time, O)> {
        let mut items = std::mem::take(&mut self.items);
        items.sort_by_key(|(t, _)| *t);
        items
    }

    pub(crate) fn into_items(mut self) -> Vec<(Time, O)> {
        self.take()
    }
}

/// Pending records and timers of one monitor.
pub struct Engine<D, K> {
    key: fn(&D) -> K,
    pending: BTreeMap<Time, Vec<D>>,
    timers: BTreeSet<Time>,
    last_data: Option<Time>,
    ended: bool,
}

impl<D, K: Ord> Engine<D, K> {
    pub fn new(key: fn(&D) -> K) -> Engine<D, K> {
        Engine {
            key,
            pending: BTreeMap::new(),
            timers: BTreeSet::new(),
            last_data: None,
            ended: false,
        }
    }

    /// Records that arrived at `t`.
    pub fn push(&mut self, t: Time, mut data: Vec<D>) {
        if self.ended {
            return;
        }
        self.last_data = self.last_data.max(Some(t));
        self.pending.entry(t).or_default().append(&mut data);
    }

    /// The input frontier is `f` (`None`: the input ended): hands over
    /// every record and fires every timer the frontier has passed, in
    /// time order (data at `t` before a timer at `t`).
    pub fn advance<O, M: Monitor<D, O>>(&mut self, m: &mut M, f: Option<Time>, out: &mut Out<O>) {
        if self.ended {
            return;
        }
        // Timers fire while the frontier is beyond them; at the end, up to
        // the last data time only.
        let timer_due = |t: Time, last: Option<Time>| match f {
            Some(f) => t < f,
            None => last.is_some_and(|l| t <= l),
        };
        loop {
            let data = self
                .pending
                .first_key_value()
                .map(|(&t, _)| t)
                .filter(|&t| f.is_none_or(|f| t < f));
            let timer = self
                .timers
                .first()
                .copied()
                .filter(|&t| timer_due(t, self.last_data));
            match (data, timer) {
                (Some(d), tm) if tm.is_none_or(|tm| d <= tm) => {
                    let mut records = self.pending.pop_first().expect("non-empty").1;
                    records.sort_by_key(self.key);
                    out.now = d;
                    out.timer_floor = d;
                    m.on_data(d, records, out);
                }
                (_, Some(tm)) => {
                    self.timers.pop_first();
                    out.now = tm;
                    out.timer_floor = tm + 1;
                    m.on_timer(tm, out);
                }
                _ => {}
            }
            self.timers.extend(out.timers.drain(..));
            if data.is_none() && timer.is_none() {
                break;
            }
        }
        if f.is_none() {
            self.ended = true;
            self.timers.clear();
            let last = self.last_data;
            out.now = last.unwrap_or(out.floor).max(out.floor);
            out.timer_floor = Time::MAX;
            m.on_end(last, out);
            out.timers.clear();
        }
    }

    /// Timers waiting (for tests and metrics).
    pub fn timers(&self) -> usize {
        self.timers.len()
    }
}

/// One step of a hand-driven run.
pub enum Step<D> {
    /// Records arriving at a time.
    Data(Time, Vec<D>),
    /// The input frontier moves to this time (`None`: the input ends).
    Frontier(Option<Time>),
}

/// Drives `monitor` through `steps` as the timely operator would (records
/// of one time keep their order in `steps`). A run should end with
/// `Step::Frontier(None)`. Returns what it emitted, by stamp.
pub fn drive<D, O, M: Monitor<D, O>>(monitor: &mut M, steps: Vec<Step<D>>) -> Vec<(Time, O)> {
    let mut engine: Engine<D, ()> = Engine::new(|_| ());
    let mut out = Out::collector();
    for s in steps {
        match s {
            Step::Data(t, d) => engine.push(t, d),
            Step::Frontier(f) => engine.advance(monitor, f, &mut out),
        }
    }
    out.take()
}
