//! Per-node counters, served as Prometheus text and logged periodically.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::prom::{self, BuildInfo};
use crate::control::Control;
use crate::item::{Time, TICK_NS};

/// Why a record was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    /// A bounded ingress queue was full.
    Overflow,
    /// The payload could not be decoded.
    Corrupt,
    /// A DOM id not in the detector.
    UnknownDom,
    /// Older than the source's capability (live data later than the allowed lateness).
    Late,
    /// The node was stopped by an operator (`km3mon ctl stop`).
    Stopped,
    /// A message for people that no sink could deliver (after its retries,
    /// or because the delivery queue was full).
    Undelivered,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::Overflow,
        DropReason::Corrupt,
        DropReason::UnknownDom,
        DropReason::Late,
        DropReason::Stopped,
        DropReason::Undelivered,
    ];
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Overflow => "overflow",
            DropReason::Corrupt => "corrupt",
            DropReason::UnknownDom => "unknown_dom",
            DropReason::Late => "late",
            DropReason::Stopped => "stopped",
            DropReason::Undelivered => "undelivered",
        }
    }
}

/// Counters of one node (summed over this process's workers).
#[derive(Default, Debug)]
pub struct NodeMetrics {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    drops: [AtomicU64; 6],
    pub busy_ns: AtomicU64,
    /// Drops by reason and detail (e.g. corrupt: truncated), for the
    /// reasons where "why exactly" matters to whoever fixes the source.
    details: Mutex<BTreeMap<(DropReason, String), u64>>,
    /// Output frontier in ticks; `u64::MAX` = none yet / finished.
    pub frontier: AtomicU64,
    /// Wall clock of the last output, Unix ms; 0 = none yet.
    last_output_ms: AtomicU64,
    /// The node's log span (node and group on every line), set by the
    /// runtime; [`NodeMetrics::busy`] enters it.
    span: OnceLock<tracing::Span>,
    /// Wall clock − output frontier, sampled at every frontier change.
    pub lag: latency::Latency,
}

impl NodeMetrics {
    pub fn new() -> NodeMetrics {
        let m = NodeMetrics::default();
        m.frontier.store(u64::MAX, Ordering::Relaxed);
        m
    }
    pub fn add_in(&self, n: usize) {
        self.records_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_out(&self, n: usize) {
        if n > 0 {
            self.records_out.fetch_add(n as u64, Ordering::Relaxed);
            let ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            self.last_output_ms.fetch_max(ms, Ordering::Relaxed);
        }
    }
    /// Wall clock (Unix s) of the last output.
    pub fn last_output_utc(&self) -> Option<f64> {
        match self.last_output_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms as f64 / 1e3),
        }
    }
    pub fn drop_record(&self, reason: DropReason, n: u64) {
        self.drops[reason as usize].fetch_add(n, Ordering::Relaxed);
    }
    /// Counts a drop under `reason` and, separately, under `detail`.
    pub fn drop_detail(&self, reason: DropReason, detail: &str, n: u64) {
        self.drop_record(reason, n);
        let mut d = self.details.lock().expect("metrics lock");
        *d.entry((reason, detail.to_string())).or_default() += n;
    }
    /// Drops by (reason, detail).
    pub fn drop_details(&self) -> BTreeMap<(DropReason, String), u64> {
        self.details.lock().expect("metrics lock").clone()
    }
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }
    /// Sets the output frontier; a change is a sample of the lag
    /// distribution (the workers of one node see the same change: the
    /// first to store it records it).
    pub fn set_frontier(&self, t: Option<Time>) {
        let new = t.unwrap_or(u64::MAX);
        let old = self.frontier.swap(new, Ordering::Relaxed);
        // 0: the frontier before any data (1970), not a lag.
        if new != old && new != u64::MAX && new != 0 {
            if let Some(l) = lag_at(new) {
                self.lag.record(l);
            }
        }
    }
    /// Sets the node's log span (once; later calls are ignored).
    pub fn set_span(&self, span: tracing::Span) {
        let _ = self.span.set(span);
    }
    /// The node's log span (none outside a run).
    pub fn span(&self) -> tracing::Span {
        self.span.get().cloned().unwrap_or_else(tracing::Span::none)
    }
    /// Runs `f` inside the node's log span and adds its duration to the
    /// busy time.
    pub fn busy<R>(&self, f: impl FnOnce() -> R) -> R {
        let _span = self.span.get().map(|s| s.enter());
        let start = Instant::now();
        let r = f();
        self.busy_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }
    /// Wall clock − frontier, in seconds.
    pub fn lag_seconds(&self) -> Option<f64> {
        let f = self.frontier.load(Ordering::Relaxed);
        if f == u64::MAX {
            return None;
        }
        lag_at(f)
    }
}

/// Wall clock − `frontier` (ticks), in seconds.
fn lag_at(frontier: Time) -> Option<f64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_nanos() as f64;
    Some((now - (frontier as f64) * TICK_NS as f64) / 1e9)
}

/// All nodes of the run, in graph order.
#[derive(Default)]
pub struct Metrics {
    nodes: Mutex<Vec<(String, Arc<NodeMetrics>)>>,
    /// `km3mon_build_info`: the binary knows it, this crate not.
    build: OnceLock<BuildInfo>,
    /// The run's control plane, for the nodes' states.
    control: OnceLock<Arc<Control>>,
}

impl Metrics {
    pub fn node(&self, name: &str) -> Arc<NodeMetrics> {
        let mut nodes = self.nodes.lock().expect("metrics lock");
        if let Some((_, m)) = nodes.iter().find(|(n, _)| n == name) {
            return m.clone();
        }
        let m = Arc::new(NodeMetrics::new());
        nodes.push((name.to_string(), m.clone()));
        m
    }

    /// The binary's version, git commit and build date, exported as the
    /// labels of `km3mon_build_info`.
    pub fn set_build_info(&self, version: &str, commit: &str, date: &str) {
        let _ = self.build.set(BuildInfo {
            version: version.into(),
            commit: commit.into(),
            build_date: date.into(),
        });
    }

    pub fn build_info(&self) -> Option<BuildInfo> {
        self.build.get().cloned()
    }

    /// The control plane whose node states `km3mon_node_state` exports
    /// (the runtime attaches the run's; later calls are ignored).
    pub fn attach_control(&self, control: Arc<Control>) {
        let _ = self.control.set(control);
    }

    pub fn control(&self) -> Option<&Arc<Control>> {
        self.control.get()
    }

    pub fn snapshot(&self) -> Vec<(String, Arc<NodeMetrics>)> {
        self.nodes.lock().expect("metrics lock").clone()
    }

    /// The run's exposition (Prometheus text format).
    pub fn prometheus(self: &Arc<Self>) -> String {
        prom::exposition(prom::run_collectors(self))
    }

    /// One log line per node.
    pub fn summary(&self) -> Vec<String> {
        self.snapshot()
            .iter()
            .map(|(node, m)| {
                let drops: BTreeMap<_, _> = DropReason::ALL
                    .iter()
                    .map(|r| (r.name(), m.drops(*r)))
                    .filter(|(_, v)| *v > 0)
                    .collect();
                let details: Vec<String> = m
                    .drop_details()
                    .into_iter()
                    .map(|((r, d), v)| format!("{}/{d}={v}", r.name()))
                    .collect();
                let details = if details.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", details.join(", "))
                };
                format!(
                    "{node}: in {} out {} drops {:?}{details} busy {:.3}s lag {}{}",
                    m.records_in.load(Ordering::Relaxed),
                    m.records_out.load(Ordering::Relaxed),
                    drops,
                    m.busy_ns.load(Ordering::Relaxed) as f64 / 1e9,
                    m.lag_seconds()
                        .map_or("-".to_string(), |l| format!("{l:.1}s")),
                    m.lag
                        .summary()
                        .map_or(String::new(), |s| format!(" (lag {s})")),
                )
            })
            .collect()
    }

    /// The end-of-run lines of the process-wide distributions (plots,
    /// alert delivery, DB, Detector Manager, Ligier queues): one per
    /// series, a family of many series folded (see
    /// [`latency::Registry::run_summary`]); the periodic log has only
    /// [`Metrics::summary`], one line per node.
    pub fn latency_summary(&self) -> Vec<String> {
        latency::global()
            .run_summary(RUN_SUMMARY_SERIES)
            .into_iter()
            .map(|r| format!("latency {}{{{}}}: {}", r.name, r.labels, r.summary))
            .collect()
    }

    /// The latency table of /status and `status`: every node's frontier
    /// lag, then the process-wide families (plots, alert delivery, DB,
    /// Detector Manager, Ligier queues).
    pub fn latencies(&self) -> Vec<latency::Row> {
        node_latencies(self.snapshot().iter().map(|(n, m)| (n.as_str(), &**m)))
    }
}

/// Series per family printed at the end of a run before it is folded.
const RUN_SUMMARY_SERIES: usize = 5;

/// The family of the nodes' lag distributions.
pub const NODE_LAG: &str = "km3mon_node_frontier_lag_seconds";

/// [`Metrics::latencies`] of these nodes.
pub fn node_latencies<'a>(
    nodes: impl IntoIterator<Item = (&'a str, &'a NodeMetrics)>,
) -> Vec<latency::Row> {
    nodes
        .into_iter()
        .filter_map(|(n, m)| {
            Some(latency::Row {
                name: NODE_LAG.into(),
                labels: format!("node={n}"),
                summary: m.lag.summary()?,
            })
        })
        .chain(latency::global().summaries())
        .collect()
}

/// Serves `GET /metrics` (any path, really) on `addr` from a thread.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    serve_text(addr, move || metrics.prometheus())
}

/// Serves what `body` returns (Prometheus text) on `addr` from a thread:
/// a run's `--metrics`, the Ligier's `--metrics`.
pub fn serve_text(
    addr: SocketAddr,
    body: impl Fn() -> String + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                // Read the whole request head before answering: closing a
                // socket with unread bytes resets it, and a client that
                // sends its request in several writes gets EPIPE.
                let mut buf = [0u8; 2048];
                let mut got = 0;
                while got < buf.len() {
                    match s.read(&mut buf[got..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                    if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let body = body();
                let _ = write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
                    prom::CONTENT_TYPE,
                    body.len()
                );
            }
        })?;
    Ok(local)
}
