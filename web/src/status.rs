//! Where /status gets the pipeline's nodes from. The web crate does not
//! depend on the pipeline: `km3mon run/demo` hand in a [`StatusSource`]
//! fed by their metrics registry; standalone `km3mon serve` scrapes the
//! pipeline's `--metrics` endpoint (Prometheus text) instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            error: Some("no pipeline attached to this server (set [WebServer] metrics_url)".into()),
            nodes: Vec::new(),
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
        }
    }
}

/// Parses the pipeline's Prometheus families (`km3mon_records_in_total`,
/// `…_out_total`, `km3mon_dropped_total{reason}`, `km3mon_busy_seconds_total`,
/// `km3mon_event_time_lag_seconds`, and `km3mon_last_output_seconds` /
/// `km3mon_node_state` when present) into nodes, in first-seen order.
pub fn parse_prometheus(text: &str) -> Vec<NodeStatus> {
    let mut order: Vec<String> = Vec::new();
    let mut nodes: HashMap<String, NodeStatus> = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((lhs, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (metric, labels) = match lhs.split_once('{') {
            Some((m, rest)) => (m, parse_labels(rest.trim_end_matches('}'))),
            None => (lhs, BTreeMap::new()),
        };
        let Some(node) = labels.get("node") else {
            continue;
        };
        if !nodes.contains_key(node) {
            order.push(node.clone());
        }
        let n = nodes.entry(node.clone()).or_insert_with(|| NodeStatus {
            name: node.clone(),
            ..Default::default()
        });
        match metric {
            "km3mon_records_in_total" => n.records_in = value as u64,
            "km3mon_records_out_total" => n.records_out = value as u64,
            "km3mon_dropped_total" => {
                let r = labels.get("reason").cloned().unwrap_or("other".into());
                *n.drops.entry(r).or_default() += value as u64;
            }
            "km3mon_busy_seconds_total" => n.busy_seconds = Some(value),
            "km3mon_event_time_lag_seconds" => n.lag_seconds = Some(value),
            "km3mon_last_output_seconds" | "km3mon_last_output_time_seconds" => {
                n.last_output_utc = Some(value)
            }
            "km3mon_node_state" if value > 0.0 => {
                if let Some(s) = labels.get("state") {
                    n.state = s.clone();
                }
            }
            _ => {}
        }
    }
    order.into_iter().filter_map(|n| nodes.remove(&n)).collect()
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((k, r)) = rest.split_once("=\"") {
        let mut val = String::new();
        let mut chars = r.char_indices();
        let mut end = r.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        val.push(if e == 'n' { '\n' } else { e });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => val.push(c),
            }
        }
        out.insert(k.trim().trim_start_matches(',').trim().to_string(), val);
        rest = &r[end..];
    }
    out
}

/// Scrapes a Prometheus endpoint in the background; requests read the
/// cached result, so a slow or dead pipeline never slows a page down.
pub struct PromScraper {
    url: String,
    cache: RwLock<StatusSnapshot>,
}

impl PromScraper {
    pub fn new(url: String) -> Arc<PromScraper> {
        let cache = RwLock::new(StatusSnapshot {
            source: url.clone(),
            ok: false,
            error: Some("not scraped yet".into()),
            nodes: Vec::new(),
        });
        Arc::new(PromScraper { url, cache })
    }

    /// Plain HTTP/1.0 GET of an `http://host:port/path` URL (the pipeline's
    /// endpoint is loopback HTTP; no TLS, no redirects).
    async fn fetch(&self) -> Result<String, String> {
        let rest = self
            .url
            .strip_prefix("http://")
            .ok_or("metrics_url must start with http://")?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        let mut s = tokio::net::TcpStream::connect(hostport)
            .await
            .map_err(|e| format!("connect {hostport}: {e}"))?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.take(16 << 20)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or("malformed HTTP response")?;
        if !head.starts_with("HTTP/1.") || head.split(' ').nth(1) != Some("200") {
            return Err(format!("HTTP {}", head.lines().next().unwrap_or("")));
        }
        Ok(body.to_string())
    }

    pub async fn run(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let res = tokio::time::timeout(Duration::from_secs(5), self.fetch()).await;
            let mut c = self.cache.write().expect("status cache");
            match res {
                Ok(Ok(body)) => {
                    c.nodes = parse_prometheus(&body);
                    c.ok = true;
                    c.error = None;
                }
                Ok(Err(e)) => {
                    c.ok = false;
                    c.error = Some(e);
                }
                Err(_) => {
                    c.ok = false;
                    c.error = Some("timeout".into());
                }
            }
        }
    }
}

impl StatusSource for PromScraper {
    fn snapshot(&self) -> StatusSnapshot {
        self.cache.read().expect("status cache").clone()
    }
    fn start(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        tokio::spawn(self.run(Duration::from_secs(2), shutdown));
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
    fn parses_pipeline_metrics() {
        let text = r#"# HELP km3mon_records_in_total Records received by the node.
# TYPE km3mon_records_in_total counter
km3mon_records_in_total{node="src"} 10
km3mon_records_in_total{node="rates"} 7
km3mon_records_out_total{node="src"} 10
km3mon_dropped_total{node="src",reason="overflow"} 2
km3mon_dropped_total{node="src",reason="corrupt"} 0
km3mon_busy_seconds_total{node="rates"} 0.250000
km3mon_event_time_lag_seconds{node="rates"} 3.500
"#;
        let n = parse_prometheus(text);
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].name, "src");
        assert_eq!(n[0].drops["overflow"], 2);
        assert_eq!(n[1].lag_seconds, Some(3.5));
        assert_eq!(n[1].busy_seconds, Some(0.25));
        let t = Tracker::default();
        let mut n = n;
        t.fill(&mut n);
        assert_eq!(n[0].state, "running");
        assert_eq!(n[0].last_output_utc, None);
        n[0].records_out = 11;
        t.fill(&mut n);
        assert!(n[0].last_output_utc.is_some());
    }

    #[test]
    fn labels_with_escapes() {
        let l = parse_labels(r#"node="a\"b",reason="x""#);
        assert_eq!(l["node"], "a\"b");
        assert_eq!(l["reason"], "x");
    }
}
