//! Where /status gets the pipeline's nodes from. The web crate does not
//! depend on the pipeline: `km3mon run/demo` hand in a [`StatusSource`]
//! fed by their control plane; standalone `km3mon serve` asks the
//! pipeline's control socket for the same rows as JSON ([`PolledSource`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::timefmt::now_secs;

/// One graph node.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct NodeStatus {
    pub name: String,
    /// `running`, `idle`, `waiting`, `finished`, … (derived when empty).
    pub state: String,
    pub records_in: u64,
    pub records_out: u64,
    /// Dropped records by reason (`overflow`, `corrupt`, …).
    pub drops: BTreeMap<String, u64>,
    /// Wall clock minus the node's event-time frontier.
    pub lag_seconds: Option<f64>,
    /// When the node last emitted (Unix s); derived from `records_out`
    /// growth when the source does not know it.
    pub last_output_utc: Option<f64>,
    pub busy_seconds: Option<f64>,
    /// Control group (`logging`, `monitoring_process`, …), when the
    /// pipeline has a control plane (`km3mon run`/`demo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `RUNNING`, `STOPPED` or `FAILED` (the operator's view; `state`
    /// above is the activity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_state: Option<String>,
    /// Why a node failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds in the current control state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct StatusSnapshot {
    /// Human-readable origin of the figures (`in-process`, a URL, `none`).
    pub source: String,
    /// False when the source could not be read (shown on /status).
    pub ok: bool,
    pub error: Option<String>,
    pub nodes: Vec<NodeStatus>,
    /// p50/p99/max of the pipeline's lag and latency distributions.
    pub latencies: Vec<latency::Row>,
}

/// Anything that can describe the pipeline's nodes right now. Called per
/// request: must be cheap and must not block for long.
pub trait StatusSource: Send + Sync + 'static {
    fn snapshot(&self) -> StatusSnapshot;
    /// Background work (scraping), spawned on the server's runtime when it
    /// starts; it should end when `shutdown` turns true.
    fn start(self: Arc<Self>, _shutdown: watch::Receiver<bool>) {}
    /// Who executes `POST /api/control` (none: the page shows no buttons).
    fn controller(&self) -> Option<Arc<dyn crate::control::Controller>> {
        None
    }
}

/// A closure as a source plus a controller: `km3mon run/demo` with their
/// in-process control plane.
pub struct ControlledSource<F> {
    pub nodes: F,
    pub controller: Arc<dyn crate::control::Controller>,
    /// The latency table (none: the page shows none).
    pub latencies: Option<Box<dyn Fn() -> Vec<latency::Row> + Send + Sync>>,
}

impl<F> StatusSource for ControlledSource<F>
where
    F: Fn() -> Vec<NodeStatus> + Send + Sync + 'static,
{
    fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            source: "in-process".into(),
            ok: true,
            error: None,
            nodes: (self.nodes)(),
            latencies: self.latencies.as_ref().map_or(Vec::new(), |f| f()),
        }
    }
    fn controller(&self) -> Option<Arc<dyn crate::control::Controller>> {
        Some(self.controller.clone())
    }
}

/// No pipeline attached.
pub struct NoPipeline;

impl StatusSource for NoPipeline {
    fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            source: "none".into(),
            ok: true,
            error: Some("no pipeline attached to this server (start `km3mon run` with the same --out, or set [WebServer] control_socket)".into()),
            nodes: Vec::new(),
            latencies: Vec::new(),
        }
    }
}

/// A closure as a source: `km3mon run` maps its metrics registry here.
pub struct FnSource<F>(pub F);

impl<F> StatusSource for FnSource<F>
where
    F: Fn() -> Vec<NodeStatus> + Send + Sync + 'static,
{
    fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            source: "in-process".into(),
            ok: true,
            error: None,
            nodes: (self.0)(),
            latencies: Vec::new(),
        }
    }
}

/// Asks a pipeline for its nodes in the background (a blocking call, e.g.
/// `status` over the pipeline's control socket, on a blocking thread);
/// requests read the cached answer, so a slow or dead pipeline never slows
/// a page down. `km3mon serve` uses it.
pub struct PolledSource {
    origin: String,
    fetch: Box<dyn Fn() -> Result<Polled, String> + Send + Sync>,
    controller: Option<Arc<dyn crate::control::Controller>>,
    every: Duration,
    cache: RwLock<StatusSnapshot>,
}

/// One answer of a [`PolledSource`]'s pipeline: its nodes and latency
/// table.
pub type Polled = (Vec<NodeStatus>, Vec<latency::Row>);

impl PolledSource {
    /// `origin` names where the figures come from (shown on /status).
    pub fn new(
        origin: String,
        every: Duration,
        fetch: impl Fn() -> Result<Polled, String> + Send + Sync + 'static,
        controller: Option<Arc<dyn crate::control::Controller>>,
    ) -> Arc<PolledSource> {
        let cache = RwLock::new(StatusSnapshot {
            source: origin.clone(),
            ok: false,
            error: Some("not asked yet".into()),
            nodes: Vec::new(),
            latencies: Vec::new(),
        });
        Arc::new(PolledSource {
            origin,
            fetch: Box::new(fetch),
            controller,
            every,
            cache,
        })
    }

    /// Asks once and caches the answer (also called by the background task).
    pub fn refresh(&self) {
        let res = (self.fetch)();
        let mut c = self.cache.write().expect("status cache");
        c.source = self.origin.clone();
        match res {
            Ok((nodes, latencies)) => {
                c.nodes = nodes;
                c.latencies = latencies;
                c.ok = true;
                c.error = None;
            }
            Err(e) => {
                c.ok = false;
                c.error = Some(e);
            }
        }
    }
}

impl StatusSource for PolledSource {
    fn snapshot(&self) -> StatusSnapshot {
        self.cache.read().expect("status cache").clone()
    }
    fn start(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                let me = self.clone();
                if tokio::task::spawn_blocking(move || me.refresh())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    fn controller(&self) -> Option<Arc<dyn crate::control::Controller>> {
        self.controller.clone()
    }
}

/// Fills what a source left open: the last output time (the moment
/// `records_out` was last seen growing) and a state.
#[derive(Default)]
pub struct Tracker {
    seen: Mutex<HashMap<String, (u64, f64)>>,
}

/// A node that has not emitted for this long is `idle`.
const IDLE_AFTER: f64 = 300.0;

impl Tracker {
    pub fn fill(&self, nodes: &mut [NodeStatus]) {
        let now = now_secs();
        let mut seen = self.seen.lock().expect("tracker lock");
        for n in nodes.iter_mut() {
            let e = seen
                .entry(n.name.clone())
                .or_insert((n.records_out, f64::NAN));
            if n.records_out > e.0 {
                *e = (n.records_out, now);
            }
            if n.last_output_utc.is_none() && e.1.is_finite() {
                n.last_output_utc = Some(e.1);
            }
            if n.state.is_empty() {
                n.state = if n.records_in == 0 && n.records_out == 0 {
                    "waiting".into()
                } else if n.last_output_utc.is_some_and(|t| now - t > IDLE_AFTER) {
                    "idle".into()
                } else {
                    "running".into()
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_fills_state_and_last_output() {
        let mut n = vec![
            NodeStatus {
                name: "src".into(),
                records_in: 10,
                records_out: 10,
                ..Default::default()
            },
            NodeStatus {
                name: "idle".into(),
                ..Default::default()
            },
        ];
        let t = Tracker::default();
        t.fill(&mut n);
        assert_eq!(n[0].state, "running");
        assert_eq!(n[1].state, "waiting");
        assert_eq!(n[0].last_output_utc, None);
        n[0].records_out = 11;
        t.fill(&mut n);
        assert!(n[0].last_output_utc.is_some());
    }

    #[test]
    fn polled_source_caches_answers_and_errors() {
        let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let c = calls.clone();
        let src = PolledSource::new(
            "test".into(),
            Duration::from_secs(1),
            move || match c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => Ok((
                    vec![NodeStatus {
                        name: "a".into(),
                        ..Default::default()
                    }],
                    Vec::new(),
                )),
                _ => Err("gone".into()),
            },
            None,
        );
        assert!(!src.snapshot().ok);
        src.refresh();
        let s = src.snapshot();
        assert!(s.ok && s.nodes[0].name == "a");
        src.refresh();
        let s = src.snapshot();
        // The last good nodes stay visible beside the error.
        assert_eq!(
            (s.ok, s.error.as_deref(), s.nodes.len()),
            (false, Some("gone"), 1)
        );
    }
}
