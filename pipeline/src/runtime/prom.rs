//! The run's metrics in the Prometheus text format, encoded by the
//! `prometheus-client` crate (escaping, `_total` suffixes, types): one name
//! per series, listed in docs/web.md.
//!
//! The counters themselves stay plain atomics in [`NodeMetrics`] (one
//! relaxed add per batch on the workers); the [`Collector`]s here read them
//! at scrape time. [`RunCollector`] is what a run exports: build info,
//! process, every node's counters and control state; the web server adds
//! it to its own `/metrics` when the run has no `--metrics` endpoint, so a
//! series is exported by one endpoint only (two scrape jobs would
//! otherwise count every record twice).

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::metrics::{DropReason, Metrics};
use crate::control::NodeState;

/// The `Content-Type` of the text format (0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A label set: `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

/// Encodes `collectors` as one exposition.
pub fn exposition(collectors: impl IntoIterator<Item = Box<dyn Collector>>) -> String {
    let mut registry = Registry::default();
    for c in collectors {
        registry.register_collector(c);
    }
    let mut out = String::new();
    // Writing into a String cannot fail; a collector's error would be a bug.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!("metrics encoding failed: {e}");
    }
    out
}

/// One counter family; `name` without `_total` (the encoder appends it).
pub fn counters<N: EncodeCounterValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, N)>,
) -> fmt::Result {
    let mut fam = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(v).encode(fam.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge family.
pub fn gauges<N: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, N)>,
) -> fmt::Result {
    let mut fam = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(v).encode(fam.encode_family(&labels)?)?;
    }
    Ok(())
}

/// `km3mon_build_info{version,commit,build_date} 1`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub version: String,
    pub commit: String,
    pub build_date: String,
}

impl Collector for BuildInfo {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        gauges(
            &mut enc,
            "km3mon_build_info",
            "The km3mon binary: version, git commit, build date.",
            [(
                vec![
                    ("version", self.version.clone()),
                    ("commit", self.commit.clone()),
                    ("build_date", self.build_date.clone()),
                ],
                1u64,
            )],
        )
    }
}

/// The process's CPU time, memory, start time and file descriptors under
/// the names every Prometheus client library uses (`process_*`), read from
/// /proc at scrape time.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessCollector;

/// What /proc says about this process.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
}

impl ProcessStats {
    /// `None` where /proc is absent (not Linux).
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may contain spaces and parentheses:
        // the fields after it start behind the last `)`.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state): field N is f[N - 3].
        let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        // SAFETY: sysconf only reads a configuration value.
        let (tick, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let (tick, page) = (tick.max(1) as f64, page.max(1) as u64);
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("Max open files"))?
                    .split_whitespace()
                    .nth(3)?
                    .parse()
                    .ok()
            });
        Some(ProcessStats {
            cpu_seconds: (num(14)? + num(15)?) as f64 / tick,
            start_time_seconds: boot as f64 + num(22)? as f64 / tick,
            virtual_bytes: num(23)?,
            resident_bytes: num(24)? * page,
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
            max_fds,
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let Some(p) = ProcessStats::read() else {
            return Ok(());
        };
        let one = |v| [(Labels::new(), v)];
        counters(
            &mut enc,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            one(p.cpu_seconds),
        )?;
        gauges(
            &mut enc,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            one(p.resident_bytes as f64),
        )?;
        gauges(
            &mut enc,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            one(p.virtual_bytes as f64),
        )?;
        gauges(
            &mut enc,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            one(p.start_time_seconds),
        )?;
        gauges(
            &mut enc,
            "process_open_fds",
            "Number of open file descriptors.",
            one(p.open_fds as f64),
        )?;
        if let Some(m) = p.max_fds {
            gauges(
                &mut enc,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                one(m as f64),
            )?;
        }
        Ok(())
    }
}

/// Everything a run exports: build info (when the binary set it), the
/// process, and [`NodeCollector`].
pub fn run_collectors(metrics: &Arc<Metrics>) -> Vec<Box<dyn Collector>> {
    let mut v: Vec<Box<dyn Collector>> = Vec::new();
    if let Some(b) = metrics.build_info() {
        v.push(Box::new(b));
    }
    v.push(Box::new(ProcessCollector));
    v.push(Box::new(NodeCollector(metrics.clone())));
    // Declared before their first sample, so dashboards can rely on them.
    latency::declare_run_families();
    v.push(Box::new(latency::GlobalCollector));
    v
}

/// Per node: records in/out, drops by reason, busy time, last output,
/// event-time lag, control state and restarts; and the gauges of the
/// detector's table when the graph keeps one. Everything is looked up at
/// scrape time, so a collector made before the graph is built (the web
/// server's) sees what the nodes publish later.
#[derive(Clone)]
pub struct NodeCollector(pub Arc<Metrics>);

impl fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeCollector")
    }
}

/// The control states as `km3mon_node_state`'s `state` label values.
const STATES: [&str; 3] = ["running", "stopped", "failed"];

impl Collector for NodeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let m = &self.0;
        let nodes = m.snapshot();
        let node = |n: &str| vec![("node", n.to_string())];
        counters(
            &mut enc,
            "km3mon_node_records_in",
            "Records received by the node.",
            nodes
                .iter()
                .map(|(n, x)| (node(n), x.records_in.load(Relaxed))),
        )?;
        counters(
            &mut enc,
            "km3mon_node_records_out",
            "Records emitted by the node.",
            nodes
                .iter()
                .map(|(n, x)| (node(n), x.records_out.load(Relaxed))),
        )?;
        counters(
            &mut enc,
            "km3mon_node_dropped_records",
            "Records dropped by the node, by reason and (where known) detail; \
             detail=\"\" counts the drops of a reason without one.",
            nodes.iter().flat_map(|(n, x)| {
                let details = x.drop_details();
                DropReason::ALL.iter().flat_map(move |r| {
                    let mut rows: Vec<(Labels, u64)> = Vec::new();
                    let mut detailed = 0;
                    for ((dr, d), v) in &details {
                        if dr == r {
                            detailed += v;
                            rows.push((
                                vec![
                                    ("node", n.clone()),
                                    ("reason", r.name().into()),
                                    ("detail", d.clone()),
                                ],
                                *v,
                            ));
                        }
                    }
                    rows.insert(
                        0,
                        (
                            vec![
                                ("node", n.clone()),
                                ("reason", r.name().into()),
                                ("detail", String::new()),
                            ],
                            x.drops(*r).saturating_sub(detailed),
                        ),
                    );
                    rows
                })
            }),
        )?;
        counters(
            &mut enc,
            "km3mon_node_busy_seconds",
            "Time spent in the node's logic.",
            nodes
                .iter()
                .map(|(n, x)| (node(n), x.busy_ns.load(Relaxed) as f64 / 1e9)),
        )?;
        gauges(
            &mut enc,
            "km3mon_node_last_output_timestamp_seconds",
            "Wall clock (Unix s) of the node's last output.",
            nodes
                .iter()
                .filter_map(|(n, x)| Some((node(n), x.last_output_utc()?))),
        )?;
        gauges(
            &mut enc,
            "km3mon_node_event_time_lag_seconds",
            "Wall clock minus the node's output frontier (DAQ time).",
            nodes
                .iter()
                .filter_map(|(n, x)| Some((node(n), x.lag_seconds()?))),
        )?;
        latency::histograms(
            &mut enc,
            super::metrics::NODE_LAG,
            "Wall clock minus the node's output frontier (DAQ time), sampled at every \
             change of the frontier.",
            nodes.iter().map(|(n, x)| (node(n), &x.lag)),
        )?;
        if let Some(control) = m.control() {
            let ctl = control.node_controls();
            gauges(
                &mut enc,
                "km3mon_node_state",
                "1 for the node's control state (running, stopped, failed), 0 for the others.",
                ctl.iter().flat_map(|c| {
                    let now = match c.state() {
                        NodeState::Running => "running",
                        NodeState::Stopped => "stopped",
                        NodeState::Failed(_) => "failed",
                    };
                    STATES.iter().map(move |s| {
                        (
                            vec![
                                ("node", c.name.clone()),
                                ("group", c.group.clone()),
                                ("state", s.to_string()),
                            ],
                            (*s == now) as u64,
                        )
                    })
                }),
            )?;
            if let Some(h) = control.health() {
                h.encode(&mut enc)?;
            }
            counters(
                &mut enc,
                "km3mon_node_restarts",
                "Restarts of the node by an operator (km3mon ctl restart).",
                control
                    .nodes()
                    .into_iter()
                    .map(|s| (vec![("node", s.name)], s.restarts)),
            )?;
        }
        Ok(())
    }
}
