//! `km3mon replay --batch-seed N`: the replay source hands its records
//! over in random batches and moves its frontier in random coarse steps,
//! so that a test (the compliance suite) or a developer can check that a
//! graph's outputs do not depend on batching: every output file must be
//! byte-identical to a plain replay's.
//!
//! * Seed 0 is the coarsest run there is: every record, in random
//!   batches, while the frontier stays before the first time; it jumps
//!   from there straight to the end of input (every timer in between
//!   fires at once). The whole input is held in memory: for test inputs.
//! * Any other seed: batches of 1–16 records of one time (the records of
//!   one time split across batches), a few batches per activation so the
//!   operators downstream run in between, and the frontier held back and
//!   moved now and then to a random time up to what the reader allows.
//!
//! The same seed gives the same batches (xorshift, no dependency); the
//! scheduling between workers still differs from run to run.

use std::collections::VecDeque;

use super::source::Feed;
use crate::item::{Item, Time};

/// Records buffered ahead of the frontier (seeds other than 0).
const HOLD: usize = 4096;

pub struct Chaos {
    rng: u64,
    jump: bool,
    held: VecDeque<(Time, Item)>,
    /// No later feed holds a record before this time.
    low: Time,
}

impl Chaos {
    pub fn new(seed: u64) -> Chaos {
        Chaos {
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            jump: seed == 0,
            held: VecDeque::new(),
            low: 0,
        }
    }

    fn next(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }

    /// Whether to take another feed from the reader now.
    pub fn wants_more(&self) -> bool {
        self.jump || self.held.len() < HOLD
    }

    pub fn push(&mut self, feed: Feed) {
        self.held.extend(feed.items);
        self.low = self.low.max(feed.low);
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The batches to give in this activation: each one holds records of
    /// one time (several batches may share a time).
    pub fn batches(&mut self) -> Vec<(Time, Vec<Item>)> {
        let mut out = Vec::new();
        for _ in 0..1 + self.next(4) {
            let Some(&(t, _)) = self.held.front() else {
                break;
            };
            let n = 1 + self.next(16) as usize;
            let mut batch = Vec::new();
            while batch.len() < n && self.held.front().is_some_and(|(t2, _)| *t2 == t) {
                batch.push(self.held.pop_front().expect("front").1);
            }
            out.push((t, batch));
        }
        out
    }

    /// Where to move the frontier from `now`, if anywhere: never past a
    /// record still held or one the reader may still send; with seed 0,
    /// never (the capability is dropped at the end of input).
    pub fn frontier(&mut self, now: Time, ended: bool) -> Option<Time> {
        if self.jump {
            return None;
        }
        let limit = match (self.held.front(), ended) {
            (Some(&(t, _)), _) => t.min(self.low),
            (None, true) => return None,
            (None, false) => self.low,
        };
        if limit <= now || self.next(3) != 0 {
            return None;
        }
        Some(now + 1 + self.next(limit - now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(times: &[Time], low: Time) -> Feed {
        Feed {
            items: times
                .iter()
                .map(|&t| {
                    let cells = vec![t.to_string()];
                    let row = crate::item::Row {
                        table: "t".into(),
                        header: vec!["t".into()],
                        cells,
                    };
                    (t, Item::Row(Box::new(row)))
                })
                .collect(),
            low,
        }
    }

    #[test]
    fn batches_hold_one_time_and_the_frontier_never_passes_a_held_record() {
        for seed in 1..50 {
            let mut c = Chaos::new(seed);
            c.push(feed(&[5, 5, 5, 7, 9, 9], 9));
            let mut now = 0;
            let mut given = Vec::new();
            let mut steps = 0;
            while !c.is_empty() {
                for (t, b) in c.batches() {
                    assert!(
                        t >= now,
                        "seed {seed}: record at {t} behind the frontier {now}"
                    );
                    assert!(!b.is_empty());
                    given.extend(b.iter().map(|_| t));
                }
                if let Some(f) = c.frontier(now, true) {
                    assert!(f > now);
                    now = f;
                    steps += 1;
                }
            }
            assert_eq!(given, [5, 5, 5, 7, 9, 9]);
            assert!(now <= 9, "seed {seed}");
            let _ = steps;
        }
    }

    #[test]
    fn seed_zero_never_moves_the_frontier() {
        let mut c = Chaos::new(0);
        c.push(feed(&[1, 2, 3], 4));
        while !c.is_empty() {
            c.batches();
            assert_eq!(c.frontier(0, false), None);
        }
    }
}
