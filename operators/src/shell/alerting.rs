//! The alert state machine every monitor uses: each condition has a stable
//! key and goes `firing` → (a reminder every `reminder` of data time while
//! it holds) → `resolved`. Raising a condition that already fires, or
//! clearing one that does not, emits nothing — so a condition checked on
//! every timeslice never floods.

use std::collections::BTreeMap;

use pipeline::item::{Alert, AlertState, Item, Time, Wording, TICK_NS};
use serde::{Deserialize, Serialize};

use crate::shell::Out;
use crate::shell::{iso_ns, ns_of};

/// The first tick whose start is at or after `ns`.
pub fn tick_at_or_after(ns: u64) -> Time {
    ns.div_ceil(TICK_NS)
}

/// A condition that currently fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub since_ns: u64,
    pub last_sent_ns: u64,
    pub message: String,
    /// DU and floor of a DOM-level condition (reminders carry them too).
    #[serde(default)]
    pub place: Option<(u32, i32)>,
}

/// A kind of alert a monitor raises: its key pattern and what the
/// condition is, in words. Each monitor module declares its kinds in one
/// `pub const ALERTS` beside the code that raises them, and builds its
/// [`AlertBook`] with them; the router then words its messages from the
/// alerts themselves (docs/alerts.md lists the keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertKind {
    /// `dom_inactive:<dom_id>`: the condition (before `:`) and what follows.
    pub key: &'static str,
    /// The condition holding, as a summary line says it: `DU 5: 30 DOMs
    /// inactive`, `DU 2 floor 3: DOM … inactive`.
    pub firing: &'static str,
    /// The condition over: `… sending data again`.
    pub resolved: &'static str,
}

impl AlertKind {
    /// The condition: the key before `:`.
    pub fn condition(&self) -> &'static str {
        self.key.split_once(':').map_or(self.key, |(c, _)| c)
    }

    /// A condition of a whole DU (`…:<du>`).
    pub fn per_du(&self) -> bool {
        self.key.ends_with(":<du>")
    }
}

/// The firing conditions of one monitor (serialisable: it is part of the
/// monitor's state, so a restart neither repeats nor forgets an alert).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertBook {
    #[serde(skip)]
    monitor: String,
    /// 0 = no reminders.
    #[serde(skip)]
    reminder_ns: u64,
    #[serde(skip)]
    kinds: &'static [AlertKind],
    firing: BTreeMap<String, Firing>,
}

impl AlertBook {
    pub fn new(monitor: &str, reminder_s: u64) -> AlertBook {
        AlertBook {
            monitor: monitor.to_string(),
            reminder_ns: reminder_s.saturating_mul(1_000_000_000),
            kinds: &[],
            firing: BTreeMap::new(),
        }
    }

    /// The kinds of alert this book raises (the monitor's `ALERTS`), which
    /// give every alert its [`Wording`].
    pub fn with_kinds(mut self, kinds: &'static [AlertKind]) -> AlertBook {
        self.kinds = kinds;
        self
    }

    fn kind(&self, key: &str) -> Option<&AlertKind> {
        let condition = key.split_once(':').map_or(key, |(c, _)| c);
        self.kinds.iter().find(|k| k.condition() == condition)
    }

    /// Takes the firing set of a restored book, keeping this one's settings.
    pub fn restore(&mut self, saved: AlertBook) {
        self.firing = saved.firing;
    }

    pub fn is_firing(&self, key: &str) -> bool {
        self.firing.contains_key(key)
    }

    pub fn firing(&self) -> impl Iterator<Item = (&String, &Firing)> {
        self.firing.iter()
    }

    fn alert(
        &self,
        key: &str,
        now_ns: u64,
        state: AlertState,
        reminder: bool,
        message: String,
        place: Option<(u32, i32)>,
    ) -> Alert {
        let kind = self.kind(key);
        Alert {
            time_utc_ns: now_ns,
            monitor: self.monitor.clone(),
            key: key.to_string(),
            state,
            reminder,
            message,
            du: place.map(|p| p.0),
            // A condition of a whole DU (`rttc:<du>`) names no floor, even
            // where the monitor keeps the floor it looked at.
            floor: place
                .filter(|_| !kind.is_some_and(AlertKind::per_du))
                .map(|p| p.1),
            wording: kind
                .map(|k| Wording {
                    firing: k.firing.to_string(),
                    resolved: k.resolved.to_string(),
                })
                .unwrap_or_default(),
        }
    }

    /// The condition holds at `now_ns`: an alert if it was not firing.
    pub fn raise(
        &mut self,
        key: &str,
        now_ns: u64,
        message: impl FnOnce() -> String,
    ) -> Option<Alert> {
        self.raise_at(key, now_ns, None, message)
    }

    /// [`AlertBook::raise`] for a condition of one DOM at (DU, floor):
    /// routing groups such alerts by DU.
    pub fn raise_at(
        &mut self,
        key: &str,
        now_ns: u64,
        place: Option<(u32, i32)>,
        message: impl FnOnce() -> String,
    ) -> Option<Alert> {
        if self.firing.contains_key(key) {
            return None;
        }
        let message = message();
        self.firing.insert(
            key.to_string(),
            Firing {
                since_ns: now_ns,
                last_sent_ns: now_ns,
                message: message.clone(),
                place,
            },
        );
        Some(self.alert(key, now_ns, AlertState::Firing, false, message, place))
    }

    /// The condition no longer holds: a `resolved` alert if it was firing.
    pub fn clear(
        &mut self,
        key: &str,
        now_ns: u64,
        message: impl FnOnce() -> String,
    ) -> Option<Alert> {
        let f = self.firing.remove(key)?;
        let message = message();
        Some(self.alert(key, now_ns, AlertState::Resolved, false, message, f.place))
    }

    /// `raise` or `clear`.
    pub fn set(
        &mut self,
        key: &str,
        holds: bool,
        now_ns: u64,
        firing: impl FnOnce() -> String,
        resolved: impl FnOnce() -> String,
    ) -> Option<Alert> {
        self.set_at(key, holds, now_ns, None, firing, resolved)
    }

    /// `raise_at` or `clear`.
    pub fn set_at(
        &mut self,
        key: &str,
        holds: bool,
        now_ns: u64,
        place: Option<(u32, i32)>,
        firing: impl FnOnce() -> String,
        resolved: impl FnOnce() -> String,
    ) -> Option<Alert> {
        if holds {
            self.raise_at(key, now_ns, place, firing)
        } else {
            self.clear(key, now_ns, resolved)
        }
    }

    /// When the next reminder is due (ns), if any condition fires.
    pub fn next_reminder_ns(&self) -> Option<u64> {
        if self.reminder_ns == 0 {
            return None;
        }
        self.firing
            .values()
            .map(|f| f.last_sent_ns.saturating_add(self.reminder_ns))
            .min()
    }

    /// From a monitor's `on_data(t)` / `on_timer(t)`: the reminders due at
    /// tick `t`, emitted at `t`, and a timer for the next one — so
    /// reminders come on time also while no data arrives (live).
    pub fn remind(&mut self, t: Time, out: &mut Out) {
        for a in self.reminders(ns_of(t)) {
            out.give(t, Item::Alert(Box::new(a)));
        }
        if let Some(next) = self.next_reminder_ns() {
            out.timer(tick_at_or_after(next));
        }
    }

    /// Reminders for the conditions firing for another interval at `now_ns`.
    pub fn reminders(&mut self, now_ns: u64) -> Vec<Alert> {
        if self.reminder_ns == 0 {
            return Vec::new();
        }
        let mut due = Vec::new();
        for (key, f) in self.firing.iter_mut() {
            if now_ns >= f.last_sent_ns.saturating_add(self.reminder_ns) {
                f.last_sent_ns = now_ns;
                due.push((key.clone(), f.since_ns, f.message.clone(), f.place));
            }
        }
        due.into_iter()
            .map(|(key, since, message, place)| {
                let text = format!("still firing since {}: {message}", iso_ns(since));
                self.alert(&key, now_ns, AlertState::Firing, true, text, place)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn firing_reminders_resolved_and_no_flood() {
        let mut book = AlertBook::new("m", 60);
        assert!(book.clear("k", 0, || "x".into()).is_none());
        let a = book.raise("k", 10 * S, || "down".into()).unwrap();
        assert_eq!(
            (a.state, a.reminder, a.time_utc_ns),
            (AlertState::Firing, false, 10 * S)
        );
        for t in 11..70 {
            assert!(book.raise("k", t * S, || "down".into()).is_none());
            assert!(book.reminders(t * S).is_empty());
        }
        let r = book.reminders(70 * S);
        assert_eq!(r.len(), 1);
        assert!(
            r[0].reminder
                && r[0]
                    .message
                    .starts_with("still firing since 1970-01-01T00:00:10Z")
        );
        assert!(book.reminders(100 * S).is_empty());
        let z = book.clear("k", 101 * S, || "up".into()).unwrap();
        assert_eq!(z.state, AlertState::Resolved);
        assert!(book.clear("k", 102 * S, || "up".into()).is_none());
    }

    #[test]
    fn place_travels_with_firing_reminder_and_resolved() {
        let mut book = AlertBook::new("m", 60);
        let a = book
            .raise_at("d:1", 0, Some((5, 7)), || "x".into())
            .unwrap();
        assert_eq!((a.du, a.floor), (Some(5), Some(7)));
        let r = book.reminders(60 * S);
        assert_eq!((r[0].du, r[0].floor), (Some(5), Some(7)));
        let z = book.clear("d:1", 61 * S, || "ok".into()).unwrap();
        assert_eq!((z.du, z.floor), (Some(5), Some(7)));
        let b = book.raise("t", 0, || "x".into()).unwrap();
        assert_eq!((b.du, b.floor), (None, None));
    }

    #[test]
    fn restored_book_keeps_firing_conditions() {
        let mut book = AlertBook::new("m", 0);
        book.raise("k", S, || "down".into());
        let json = serde_json::to_string(&book).unwrap();
        let mut fresh = AlertBook::new("m", 0);
        fresh.restore(serde_json::from_str(&json).unwrap());
        assert!(fresh.raise("k", 2 * S, || "down".into()).is_none());
        assert!(fresh.reminders(u64::MAX / 2).is_empty());
    }
}
