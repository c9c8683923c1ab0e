//! The shell's ordering and timer logic, free of timely so that unit
//! tests drive it by hand with any frontier steps they like.

use std::collections::{BTreeSet, VecDeque};

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
    /// Records by time, ascending: a deque, as records mostly arrive in
    /// time order (one push at the back, no node per timestamp).
    pending: VecDeque<(Time, Vec<D>)>,
    timers: BTreeSet<Time>,
    last_data: Option<Time>,
    ended: bool,
}

impl<D, K: Ord> Engine<D, K> {
    pub fn new(key: fn(&D) -> K) -> Engine<D, K> {
        Engine {
            key,
            pending: VecDeque::new(),
            timers: BTreeSet::new(),
            last_data: None,
            ended: false,
        }
    }

    /// Records that arrived at `t`.
    pub fn push(&mut self, t: Time, mut data: Vec<D>) {
        self.push_with(t, |batch| {
            if batch.is_empty() && data.capacity() <= 4 * data.len() + 64 {
                // The arriving container itself: no copy (unless it is
                // mostly empty: a pending time would pin its capacity).
                std::mem::swap(batch, &mut data);
            } else {
                batch.append(&mut data);
            }
        });
    }

    /// Adds what arrived at `t` to the records pending at `t` with
    /// `add` (which may combine them: see [`super::ordered_combined`]).
    pub fn push_with(&mut self, t: Time, add: impl FnOnce(&mut Vec<D>)) {
        if self.ended {
            return;
        }
        self.last_data = self.last_data.max(Some(t));
        let i = match self.pending.back() {
            Some((b, _)) if *b == t => self.pending.len() - 1,
            Some((b, _)) if *b > t => match self.pending.binary_search_by_key(&t, |(b, _)| *b) {
                Ok(i) => i,
                Err(i) => {
                    self.pending.insert(i, (t, Vec::new()));
                    i
                }
            },
            _ => {
                self.pending.push_back((t, Vec::new()));
                self.pending.len() - 1
            }
        };
        add(&mut self.pending[i].1);
    }

    /// The input frontier is `f` (`None`: the input ended): hands over
    /// every record and fires every timer the frontier has passed, in
    /// time order (data at `t` before a timer at `t`).
    pub fn advance<O, M: Monitor<D, O>>(&mut self, m: &mut M, f: Option<Time>, out: &mut Out<O>) {
        self.advance_or_stop(m, f, false, out)
    }

    /// [`Engine::advance`], where an empty frontier is a *stop* when
    /// `stop` is true: the timers beyond the last data time are kept (for
    /// [`Engine::timers_pending`]) and [`Monitor::on_stop`] is called
    /// instead of [`Monitor::on_end`].
    pub fn advance_or_stop<O, M: Monitor<D, O>>(
        &mut self,
        m: &mut M,
        f: Option<Time>,
        stop: bool,
        out: &mut Out<O>,
    ) {
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
                .front()
                .map(|(t, _)| *t)
                .filter(|&t| f.is_none_or(|f| t < f));
            let timer = self
                .timers
                .first()
                .copied()
                .filter(|&t| timer_due(t, self.last_data));
            match (data, timer) {
                (Some(d), tm) if tm.is_none_or(|tm| d <= tm) => {
                    let mut records = self.pending.pop_front().expect("non-empty").1;
                    if records.len() > 1 {
                        // One key per record (still stable): a key reads
                        // its record's shared frame, and a comparison sort
                        // would read it ~2 log n times (4,000 TMCH packets
                        // a tick for ARCA-230).
                        records.sort_by_cached_key(self.key);
                    }
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
            if !stop {
                self.timers.clear();
            }
            let last = self.last_data;
            out.now = last.unwrap_or(out.floor).max(out.floor);
            out.timer_floor = Time::MAX;
            if stop {
                m.on_stop(last, out);
            } else {
                m.on_end(last, out);
            }
            out.timers.clear();
        }
    }

    /// Timers waiting (for tests and metrics).
    pub fn timers(&self) -> usize {
        self.timers.len()
    }

    /// The timers waiting, in time order: what a stop persists.
    pub fn timers_pending(&self) -> Vec<Time> {
        self.timers.iter().copied().collect()
    }

    /// Timers of a stopped run, restored before any data: each fires in
    /// time order with the new run's data, as it would have in one run.
    pub fn restore_timers(&mut self, timers: impl IntoIterator<Item = Time>) {
        self.timers.extend(timers);
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

/// The steps of a replay of `input` (times ascending) with random batch
/// boundaries and random coarse frontier moves, ending with the end of
/// input: what the batching-invariance tests feed a monitor. `seed` 0 is
/// the coarsest run there is: every record, then one jump from the first
/// time straight to the end of input. (xorshift: no dependency, and the
/// same steps for a seed on every machine.)
pub fn random_steps<D: Clone>(input: &[(Time, Vec<D>)], seed: u64) -> Vec<Step<D>> {
    let mut steps = Vec::new();
    if seed == 0 {
        steps.extend(input.iter().map(|(t, d)| Step::Data(*t, d.clone())));
        steps.push(Step::Frontier(None));
        return steps;
    }
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n.max(1)
    };
    for (i, (t, d)) in input.iter().enumerate() {
        // Split the records of one time into random batches.
        let mut rest = &d[..];
        while !rest.is_empty() {
            let n = 1 + next(rest.len() as u64) as usize;
            steps.push(Step::Data(*t, rest[..n].to_vec()));
            rest = &rest[n..];
        }
        if d.is_empty() {
            steps.push(Step::Data(*t, Vec::new()));
        }
        // Now and then the frontier moves, anywhere up to the next time.
        if let Some((upto, _)) = input.get(i + 1) {
            if next(3) == 0 && *upto > *t {
                steps.push(Step::Frontier(Some(t + 1 + next(upto - t))));
            }
        }
    }
    steps.push(Step::Frontier(None));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::window::Tumbling;

    /// Counts per 10-tick window, and a "silent" timer 25 ticks after
    /// every record that re-arms itself once.
    #[derive(Default)]
    struct Probe {
        windows: Option<Tumbling<u64>>,
        armed: BTreeSet<Time>,
    }

    type Rec = (Time, String);

    impl Monitor<u32, Rec> for Probe {
        fn on_data(&mut self, t: Time, data: Vec<u32>, out: &mut Out<Rec>) {
            let w = self.windows.get_or_insert_with(|| Tumbling::new(10));
            *w.at(t, out) += data.len() as u64;
            out.timer(t + 25);
            self.armed.insert(t + 25);
            out.give(t, (t, format!("data {}", data.len())));
        }
        fn on_timer(&mut self, t: Time, out: &mut Out<Rec>) {
            if let Some((w, n)) = self.windows.as_mut().and_then(|w| w.close(t)) {
                out.give(t, (t, format!("window {} {n}", w.end)));
            }
            if self.armed.remove(&t) {
                out.give(t, (t, "silent".into()));
                if t.is_multiple_of(2) {
                    out.timer(t + 3);
                }
            } else {
                out.give(t, (t, "timer".into()));
            }
        }
        fn on_end(&mut self, last: Option<Time>, out: &mut Out<Rec>) {
            let open = self.windows.as_mut().map_or(0, |w| w.drain().len());
            out.give(out.now(), (out.now(), format!("end {last:?} open {open}")));
        }
        fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out<Rec>) {}
    }

    /// A run stopped after the records before `cut` (its state and
    /// pending timers carried over, the state through serde as a state
    /// directory would), then a second run of the rest.
    fn stopped_at(cut: Time, seed: u64) -> Vec<(Time, Rec)> {
        let input = input();
        let (a, b): (Vec<_>, Vec<_>) = input.into_iter().partition(|(t, _)| *t < cut);
        let mut first = Probe::default();
        let mut engine: Engine<u32, ()> = Engine::new(|_| ());
        let mut out = Out::collector();
        for step in random_steps(&a, seed) {
            match step {
                Step::Data(t, d) => engine.push(t, d),
                Step::Frontier(None) => engine.advance_or_stop(&mut first, None, true, &mut out),
                Step::Frontier(f) => engine.advance(&mut first, f, &mut out),
            }
        }
        let saved = serde_json::to_string(&(&first.windows, &first.armed)).unwrap();
        let timers = engine.timers_pending();
        let (windows, armed) = serde_json::from_str(&saved).unwrap();
        let mut second = Probe { windows, armed };
        let mut engine: Engine<u32, ()> = Engine::new(|_| ());
        engine.restore_timers(timers);
        for step in random_steps(&b, seed) {
            match step {
                Step::Data(t, d) => engine.push(t, d),
                Step::Frontier(f) => engine.advance(&mut second, f, &mut out),
            }
        }
        out.take()
    }

    #[test]
    fn a_stop_and_a_restart_with_the_state_give_one_run() {
        let one = drive(&mut Probe::default(), random_steps(&input(), 0));
        for cut in [4, 10, 11, 12, 30, 31, 50, 71, 72, 120] {
            for seed in [0, 1, 7] {
                assert_eq!(stopped_at(cut, seed), one, "cut {cut} seed {seed}");
            }
        }
    }

    fn input() -> Vec<(Time, Vec<u32>)> {
        [3u64, 4, 9, 10, 11, 30, 31, 70, 71, 72, 120]
            .iter()
            .map(|&t| (t, (0..(t % 4) as u32 + 1).collect()))
            .collect()
    }

    #[test]
    fn any_batching_and_frontier_steps_give_the_same_sequence() {
        let reference = drive(&mut Probe::default(), random_steps(&input(), 0));
        let texts: Vec<&str> = reference.iter().map(|(_, (_, s))| s.as_str()).collect();
        // Data at 9 before the window [0, 10) closes at 9; timers beyond
        // the last data time (120) never fire; the window [120, 130) is
        // left open at the end.
        assert_eq!(&texts[..4], ["data 4", "data 1", "data 2", "window 10 7"]);
        assert!(texts.contains(&"silent"));
        assert_eq!(texts.last(), Some(&"end Some(120) open 1"));
        assert!(reference.iter().all(|(t, _)| *t <= 120));
        for seed in 1..200 {
            let got = drive(&mut Probe::default(), random_steps(&input(), seed));
            assert_eq!(got, reference, "seed {seed}");
        }
    }

    #[test]
    fn live_frontier_fires_timers_without_data() {
        let mut m = Probe::default();
        let got = drive(
            &mut m,
            vec![Step::Data(3, vec![1]), Step::Frontier(Some(100))],
        );
        let texts: Vec<&str> = got.iter().map(|(_, (_, s))| s.as_str()).collect();
        // The window's close at 9 is a timer too; the silent one at 28
        // re-arms at 31.
        assert_eq!(texts, ["data 1", "window 10 1", "timer", "silent", "timer"]);
        assert_eq!((got[3].0, got[4].0), (28, 31));
    }
}
