//! Tumbling windows on the shell's timers: a window `[start, end)` of
//! `size` ticks closes with a timer at its last tick `end − 1`, after all
//! of its data and before any later data.
//!
//! ```
//! use pipeline::shell::window::Tumbling;
//! use pipeline::shell::{run_by_hand, Monitor, Out};
//! use pipeline::item::Time;
//!
//! /// Counts records per 10-tick window.
//! struct Count(Tumbling<u64>);
//!
//! impl Monitor<u32, (Time, u64)> for Count {
//!     fn on_data(&mut self, t: Time, data: Vec<u32>, out: &mut Out<(Time, u64)>) {
//!         *self.0.at(t, out) += data.len() as u64;
//!     }
//!     fn on_timer(&mut self, t: Time, out: &mut Out<(Time, u64)>) {
//!         if let Some((w, n)) = self.0.close(t) {
//!             out.give(t, (w.end, n));
//!         }
//!     }
//! }
//!
//! let mut m = Count(Tumbling::new(10));
//! let got = run_by_hand(&mut m, vec![(3, vec![1, 2]), (9, vec![3]), (12, vec![4])]);
//! // The window [10, 20) is partial at the end of input: not closed here.
//! assert_eq!(got, vec![(9, (10, 3))]);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Out;
use crate::item::Time;

/// One window: `[start, end)` in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub index: u64,
    pub start: Time,
    /// Exclusive.
    pub end: Time,
}

impl Window {
    /// The tick its close timer fires at (and its outputs are stamped).
    pub fn last(&self) -> Time {
        self.end - 1
    }
}

/// Open tumbling windows with an accumulator `S` each.
///
/// Serde, so that a monitor's saved state carries its open windows over
/// a stop (the shell persists their close timers): see
/// [`Tumbling::restore`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tumbling<S> {
    size: Time,
    open: BTreeMap<u64, S>,
}

impl<S: Default> Tumbling<S> {
    /// Windows of `size` ticks (at least 1), aligned to multiples of it.
    pub fn new(size: Time) -> Tumbling<S> {
        Tumbling {
            size: size.max(1),
            open: BTreeMap::new(),
        }
    }

    pub fn size(&self) -> Time {
        self.size
    }

    /// The window holding tick `t`.
    pub fn window_of(&self, t: Time) -> Window {
        let index = t / self.size;
        Window {
            index,
            start: index * self.size,
            end: (index + 1) * self.size,
        }
    }

    /// The accumulator of the window holding `t`, opened (and its close
    /// timer registered) on first use.
    pub fn at<O>(&mut self, t: Time, out: &mut Out<O>) -> &mut S {
        let w = self.window_of(t);
        self.open.entry(w.index).or_insert_with(|| {
            out.timer(w.last());
            S::default()
        })
    }

    /// Opens the window holding `t` even without data (e.g. to close empty
    /// windows in a row); registers its close timer.
    pub fn open<O>(&mut self, t: Time, out: &mut Out<O>) {
        let _ = self.at(t, out);
    }

    /// From `on_timer(t)`: the window whose last tick is `t`, if open.
    pub fn close(&mut self, t: Time) -> Option<(Window, S)> {
        let w = self.window_of(t);
        if w.last() != t {
            return None;
        }
        self.open.remove(&w.index).map(|s| (w, s))
    }

    /// From `on_end`: the windows still open, oldest first (partial: their
    /// end has not been reached by the data).
    pub fn drain(&mut self) -> Vec<(Window, S)> {
        let size = self.size;
        std::mem::take(&mut self.open)
            .into_iter()
            .map(|(index, s)| {
                (
                    Window {
                        index,
                        start: index * size,
                        end: (index + 1) * size,
                    },
                    s,
                )
            })
            .collect()
    }

    /// Takes over the open windows of a saved `Tumbling` (a stopped
    /// run's). Windows of another size (the configuration changed) are
    /// dropped with a warning: their counts would not fit the new
    /// windows. Their close timers come back with the shell's.
    pub fn restore(&mut self, saved: Tumbling<S>) {
        if saved.size == self.size {
            self.open = saved.open;
        } else if !saved.open.is_empty() {
            tracing::warn!(
                "{} saved window(s) of {} ticks dropped: the windows are now {} ticks",
                saved.open.len(),
                saved.size,
                self.size
            );
        }
    }

    /// Like [`Tumbling::restore`], for partitioned monitors that gather
    /// the parts of several workers: each saved window's accumulator is
    /// combined into this one's by `add` (opened empty if needed).
    pub fn merge(&mut self, saved: Tumbling<S>, mut add: impl FnMut(&mut S, S)) {
        if saved.size != self.size {
            return self.restore(saved);
        }
        for (index, s) in saved.open {
            add(self.open.entry(index).or_default(), s);
        }
    }

    /// Windows open now.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    pub fn is_open(&self, t: Time) -> bool {
        self.open.contains_key(&(t / self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_windows_survive_serde_and_merge_by_window() {
        let mut out: Out<()> = Out::collector();
        let mut a: Tumbling<u64> = Tumbling::new(10);
        *a.at(3, &mut out) += 2;
        *a.at(14, &mut out) += 5;
        let text = serde_json::to_string(&a).unwrap();
        let mut b: Tumbling<u64> = Tumbling::new(10);
        b.restore(serde_json::from_str(&text).unwrap());
        assert_eq!(b.close(9).map(|(w, n)| (w.end, n)), Some((10, 2)));
        // Another worker's part: added to the same window.
        b.merge(serde_json::from_str(&text).unwrap(), |x, y| *x += y);
        assert_eq!(
            b.drain()
                .iter()
                .map(|(w, n)| (w.end, *n))
                .collect::<Vec<_>>(),
            [(10, 2), (20, 10)]
        );
        // Windows of another size are dropped.
        let mut c: Tumbling<u64> = Tumbling::new(5);
        c.restore(serde_json::from_str(&text).unwrap());
        assert!(c.is_empty());
    }
}
