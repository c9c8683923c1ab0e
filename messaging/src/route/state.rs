//! What a router must keep across a stop: which keys people were told
//! fire (so their RESOLVED is announced after a restart), the alerts
//! collected for a group window that has not ended, throttles and
//! reminders, and the detector-state table of its clock. Saved by the
//! `alerts_notify` node in its state directory (docs/state.md).

use std::collections::BTreeMap;
use std::sync::Arc;

use pipeline::health::HealthSnapshot;
use serde::{Deserialize, Serialize};

use super::{KeyState, Pending, Router, Stats};

/// One route's memory, by the route's name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RouteState {
    pending: BTreeMap<String, Pending>,
    due_ns: Option<u64>,
    keys: BTreeMap<String, KeyState>,
}

/// A router's state, serde.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RouterState {
    next_id: u64,
    stats: Stats,
    routes: BTreeMap<String, RouteState>,
    table: Option<HealthSnapshot>,
}

impl Router {
    /// What [`Router::restore`] needs to continue after a stop.
    pub fn state(&self) -> RouterState {
        RouterState {
            next_id: self.next_id,
            stats: self.stats.clone(),
            routes: self
                .routes
                .iter()
                .map(|r| {
                    let keys = r.keys.iter().map(|(k, s)| (k.clone(), *s)).collect();
                    let state = RouteState {
                        pending: r.pending.clone(),
                        due_ns: r.due_ns,
                        keys,
                    };
                    (r.name.clone(), state)
                })
                .collect(),
            table: self.table.as_ref().map(|t| HealthSnapshot::clone(&t.snap)),
        }
    }

    /// Continues from a saved state. Routes are matched by name: a route
    /// the site config no longer has is dropped, a new one starts empty.
    pub fn restore(&mut self, mut saved: RouterState) {
        self.next_id = saved.next_id;
        self.stats = saved.stats;
        for r in &mut self.routes {
            if let Some(s) = saved.routes.remove(&r.name) {
                r.pending = s.pending;
                r.due_ns = s.due_ns;
                r.keys = s.keys.into_iter().collect();
            }
        }
        if let Some(t) = saved.table {
            self.set_table(Arc::new(t));
        }
    }
}
