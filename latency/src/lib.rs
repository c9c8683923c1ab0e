//! Latency distributions: what /status and the run summary show as
//! p50/p99/max, and what Prometheus scrapes as histograms.
//!
//! One [`Latency`] keeps both views of the same samples: an hdrhistogram
//! (quantiles at 1 % resolution, whatever the range: an event-time lag of
//! seconds live and of years in a replay of old data) and counts in the
//! fixed [`BUCKETS`], the same for every family, so that Grafana's
//! `histogram_quantile` works and two families can be compared.
//!
//! Families live in a [`Registry`]. The process-wide one ([`global`]) holds
//! what exists once per process whatever the graph: the chat/e-mail
//! delivery threads, the DB and Detector Manager clients, the Ligier's
//! subscriber queues, the plot renderers. Every exporter of a process
//! encodes it once ([`GlobalCollector`]); a node's own lag stays with the
//! node's metrics (one run, one node).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use serde::{Deserialize, Serialize};

/// Upper bounds (seconds) of the Prometheus buckets of every family
/// (`+Inf` follows): 1 ms to 1 h.
pub const BUCKETS: [f64; 20] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A family's name, help and label names: one place for each, used where
/// it is measured and where a run declares it.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

pub const ALERT_DELIVERY: Spec = Spec {
    name: "km3mon_alert_delivery_seconds",
    help: "Submission to the sink's delivery thread to delivered: its queue, retries \
           and the sink's own answer time.",
    labels: &["sink"],
};
pub const ALERT_LATENCY: Spec = Spec {
    name: "km3mon_alert_latency_seconds",
    help: "Wall clock at delivery minus the data time of the newest alert in the message.",
    labels: &["sink"],
};
/// A counter (`_total` is appended).
pub const ALERT_ATTEMPTS: Spec = Spec {
    name: "km3mon_alert_delivery_attempts",
    help: "Delivery attempts, by sink and final outcome (delivered, failed).",
    labels: &["sink", "outcome"],
};
pub const DB_REQUEST: Spec = Spec {
    name: "km3mon_db_request_duration_seconds",
    help: "Requests to the KM3NeT DB: request sent to the whole reply read, by outcome \
           (ok, http_error, error).",
    labels: &["outcome"],
};
pub const DETECTOR_MANAGER_REQUEST: Spec = Spec {
    name: "km3mon_detector_manager_request_duration_seconds",
    help: "Requests to the Detector Manager's monitoring interface: sent to the whole \
           reply read, by outcome (ok, http_error, error).",
    labels: &["outcome"],
};
pub const PLOT_LATENCY: Spec = Spec {
    name: "km3mon_plot_latency_seconds",
    help: "Wall clock when the plot file was written minus the data time it shows.",
    labels: &["plot"],
};

/// Declares the process-wide families a monitoring run can measure, so
/// that its /metrics lists each (`# TYPE`, no samples yet) before the
/// first alert is delivered or the first request made: dashboards and
/// alert rules over them (`histogram_quantile` on `_bucket`) are valid
/// from the start. Idempotent.
pub fn declare_run_families() {
    let g = global();
    for s in [
        ALERT_DELIVERY,
        ALERT_LATENCY,
        DB_REQUEST,
        DETECTOR_MANAGER_REQUEST,
        PLOT_LATENCY,
    ] {
        g.histogram_of(&s);
    }
    g.counter_of(&ALERT_ATTEMPTS);
}

/// Samples are kept in microseconds; 2 significant digits bound the
/// quantiles' error to 1 % at about 16 kB per live histogram.
const UNIT: f64 = 1e6;
const SIGFIG: u8 = 2;

/// What /status shows of one distribution (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} p99 {} max {} (n={})",
            human(self.p50),
            human(self.p99),
            human(self.max),
            self.count
        )
    }
}

/// `0.8ms`, `12.3s`, `2.1h`, `3.2d`: latencies live span ms to seconds,
/// replays of old data years.
pub fn human(s: f64) -> String {
    match s {
        s if s < 1.0 => format!("{:.1}ms", s * 1e3),
        s if s < 600.0 => format!("{s:.2}s"),
        s if s < 3.0 * 3600.0 => format!("{:.1}min", s / 60.0),
        s if s < 3.0 * 86400.0 => format!("{:.1}h", s / 3600.0),
        s => format!("{:.1}d", s / 86400.0),
    }
}

/// Wall clock now minus `unix_ns` (a data time), in seconds: the latency
/// of something done now about data of that time.
pub fn since_unix_ns(unix_ns: u64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    now - unix_ns as f64 / 1e9
}

/// The `outcome` label of a request family: `ok` (HTTP status below 400),
/// `http_error` (an answer with an error status), `error` (no answer).
pub fn outcome<T>(r: &Result<(u16, T), impl Sized>) -> &'static str {
    match r {
        Ok((s, _)) if *s < 400 => "ok",
        Ok(_) => "http_error",
        Err(_) => "error",
    }
}

struct Inner {
    hist: Histogram<u64>,
    /// Non-cumulative counts per bucket of [`BUCKETS`], then `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
}

/// One distribution of durations.
pub struct Latency(Mutex<Inner>);

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl fmt::Debug for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Latency({:?})", self.summary())
    }
}

impl Latency {
    pub fn new() -> Latency {
        Latency(Mutex::new(Inner {
            hist: Histogram::new(SIGFIG).expect("2 significant digits are valid"),
            buckets: [0; BUCKETS.len() + 1],
            sum: 0.0,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `seconds` (negative and NaN count as 0: a clock step must
    /// not lose the sample).
    pub fn record(&self, seconds: f64) {
        self.record_all([seconds]);
    }

    pub fn record_duration(&self, d: Duration) {
        self.record(d.as_secs_f64());
    }

    /// Records many samples under one lock (the Ligier's writers record a
    /// whole batch at once).
    pub fn record_all(&self, seconds: impl IntoIterator<Item = f64>) {
        let mut g = self.lock();
        for s in seconds {
            let s = if s > 0.0 { s } else { 0.0 };
            // `record` grows the histogram (saturating_record would clamp
            // to its current range); beyond i64::MAX / 2 it cannot grow.
            let v = ((s * UNIT) as u64).min(i64::MAX as u64 / 2);
            if g.hist.record(v).is_err() {
                g.hist.saturating_record(v);
            }
            let i = BUCKETS.partition_point(|b| *b < s);
            g.buckets[i] += 1;
            g.sum += s;
        }
    }

    /// `None` before the first sample.
    pub fn summary(&self) -> Option<Summary> {
        let g = self.lock();
        let n = g.hist.len();
        (n > 0).then(|| summary_of(&g.hist))
    }

    /// (sum, count, per-bucket counts with their upper bounds).
    fn buckets(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let g = self.lock();
        let bounds = BUCKETS.iter().copied().chain([f64::INFINITY]);
        let rows = bounds.zip(g.buckets.iter().copied()).collect();
        (g.sum, g.buckets.iter().sum(), rows)
    }
}

/// p50, p99 and max of a histogram of microseconds, in seconds.
fn summary_of(h: &Histogram<u64>) -> Summary {
    Summary {
        count: h.len(),
        p50: h.value_at_quantile(0.5) as f64 / UNIT,
        p99: h.value_at_quantile(0.99) as f64 / UNIT,
        max: h.max() as f64 / UNIT,
    }
}

/// A label set as `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

/// One histogram family: a [`Latency`] per label values.
pub struct Family {
    pub name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    rows: Mutex<BTreeMap<Vec<String>, Arc<Latency>>>,
}

impl Family {
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Family {
        Family {
            name,
            help,
            labels,
            rows: Mutex::new(BTreeMap::new()),
        }
    }

    /// The distribution of these label values (in the order of the
    /// family's label names), made on first use.
    pub fn get(&self, values: &[&str]) -> Arc<Latency> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.entry(key).or_default().clone()
    }

    /// Every distribution with its labels.
    pub fn rows(&self) -> Vec<(Labels, Arc<Latency>)> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.iter()
            .map(|(values, l)| {
                let labels = self.labels.iter().copied().zip(values.iter().cloned());
                (labels.collect(), l.clone())
            })
            .collect()
    }

    /// Encodes the family; one without rows yet is declared alone (`#
    /// HELP`, `# TYPE`): a family exists in a process once something there
    /// can measure it ([`declare_run_families`], first use).
    pub fn encode(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let rows = self.rows();
        if rows.is_empty() {
            enc.encode_descriptor(self.name, self.help, None, MetricType::Histogram)?;
            return Ok(());
        }
        histograms(enc, self.name, self.help, rows)
    }
}

/// One histogram family from `(labels, distribution)` rows; nothing when
/// there are none.
pub fn histograms<L: AsRef<Latency>>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels, L)>,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut fam = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, l) in rows {
        let (sum, count, buckets) = l.as_ref().buckets();
        fam.encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

impl AsRef<Latency> for Latency {
    fn as_ref(&self) -> &Latency {
        self
    }
}

/// A counter family kept beside the histograms (e.g. delivery attempts).
pub struct Counts {
    pub name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    rows: Mutex<BTreeMap<Vec<String>, Arc<AtomicU64>>>,
}

impl Counts {
    pub fn add(&self, values: &[&str], n: u64) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.entry(key).or_default().fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.get(&key).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Like [`Family::encode`]: declared even without rows.
    fn encode(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let mut fam = enc.encode_descriptor(self.name, self.help, None, MetricType::Counter)?;
        for (values, c) in rows.iter() {
            let labels: Labels = self
                .labels
                .iter()
                .copied()
                .zip(values.iter().cloned())
                .collect();
            prometheus_client::encoding::EncodeMetric::encode(
                &prometheus_client::metrics::counter::ConstCounter::new(c.load(Ordering::Relaxed)),
                fam.encode_family(&labels)?,
            )?;
        }
        Ok(())
    }
}

/// One row of the latency table of /status and the run summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The family (`km3mon_alert_delivery_seconds`, …).
    pub name: String,
    /// `sink=chat`, `plot=dom_rates`, … (`,`-separated).
    pub labels: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// Histogram and counter families by name.
#[derive(Default)]
pub struct Registry {
    histograms: Mutex<Vec<Arc<Family>>>,
    counts: Mutex<Vec<Arc<Counts>>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<&str> = h.iter().map(|f| f.name).collect();
        write!(f, "Registry({names:?})")
    }
}

impl Registry {
    /// The histogram family `name`, made on first use (later calls return
    /// the same family; its help and label names are the first call's).
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Family> {
        let mut v = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = v.iter().find(|f| f.name == name) {
            return f.clone();
        }
        let f = Arc::new(Family::new(name, help, labels));
        v.push(f.clone());
        f
    }

    /// [`Registry::histogram`] of a [`Spec`].
    pub fn histogram_of(&self, s: &Spec) -> Arc<Family> {
        self.histogram(s.name, s.help, s.labels)
    }

    /// [`Registry::counter`] of a [`Spec`].
    pub fn counter_of(&self, s: &Spec) -> Arc<Counts> {
        self.counter(s.name, s.help, s.labels)
    }

    /// The counter family `name` (without `_total`), made on first use.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Counts> {
        let mut v = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = v.iter().find(|c| c.name == name) {
            return c.clone();
        }
        let c = Arc::new(Counts {
            name,
            help,
            labels,
            rows: Mutex::new(BTreeMap::new()),
        });
        v.push(c.clone());
        c
    }

    fn families(&self) -> Vec<Arc<Family>> {
        self.histograms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every distribution with at least one sample, by family and labels.
    pub fn summaries(&self) -> Vec<Row> {
        let families = self.families();
        let mut out = Vec::new();
        for f in families {
            for (labels, l) in f.rows() {
                if let Some(summary) = l.summary() {
                    out.push(Row {
                        name: f.name.to_string(),
                        labels: label_text(&labels),
                        summary,
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        out
    }

    /// The run summary's rows: [`Registry::summaries`], except that a
    /// family with more than `limit` series (a plot per DU and angle on
    /// ARCA is ~700) is one row of all its samples together (labels
    /// `all=N`) followed by its `limit` slowest series by p99, so the
    /// end of a run does not print hundreds of latency lines.
    pub fn run_summary(&self, limit: usize) -> Vec<Row> {
        let families = self.families();
        let mut out = Vec::new();
        for f in families {
            let mut rows: Vec<(String, Arc<Latency>, Summary)> = f
                .rows()
                .into_iter()
                .filter_map(|(labels, l)| {
                    let s = l.summary()?;
                    Some((label_text(&labels), l, s))
                })
                .collect();
            let row = |labels: String, summary| Row {
                name: f.name.to_string(),
                labels,
                summary,
            };
            if rows.len() > limit {
                let mut all = rows[0].1.lock().hist.clone();
                for (_, l, _) in &rows[1..] {
                    all.add(&l.lock().hist)
                        .expect("histograms of one family share bounds");
                }
                out.push(row(format!("all={}", rows.len()), summary_of(&all)));
                rows.sort_by(|a, b| b.2.p99.total_cmp(&a.2.p99).then_with(|| a.0.cmp(&b.0)));
                rows.truncate(limit);
            } else {
                rows.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.extend(rows.into_iter().map(|(labels, _, s)| row(labels, s)));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn encode(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let families = self.families();
        for f in families {
            f.encode(enc)?;
        }
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for c in counts {
            c.encode(enc)?;
        }
        Ok(())
    }
}

/// `a=x,b=y`.
pub fn label_text(labels: &Labels) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

/// The process-wide registry (see the module doc).
pub fn global() -> &'static Registry {
    static GLOBAL: OnceLock<Registry> = OnceLock::new();
    GLOBAL.get_or_init(Registry::default)
}

/// Exports [`global`]: add it to exactly one exporter per process.
#[derive(Debug, Default, Clone, Copy)]
pub struct GlobalCollector;

impl Collector for GlobalCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        global().encode(&mut enc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &'static Registry) -> String {
        #[derive(Debug)]
        struct C(&'static Registry);
        impl Collector for C {
            fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
                self.0.encode(&mut enc)
            }
        }
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register_collector(Box::new(C(r)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
        out
    }

    #[test]
    fn run_summary_folds_a_family_with_many_series() {
        static R: OnceLock<Registry> = OnceLock::new();
        let r = R.get_or_init(Registry::default);
        let plots = r.histogram("t_plot_seconds", "plots", &["plot"]);
        for du in 1..=10 {
            plots.get(&[&format!("du{du}")]).record(du as f64);
        }
        let alerts = r.histogram("t_alert_seconds", "alerts", &["sink"]);
        alerts.get(&["chat"]).record(0.5);
        let rows = r.run_summary(3);
        let labels: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.labels.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("t_alert_seconds", "sink=chat"),
                ("t_plot_seconds", "all=10"),
                ("t_plot_seconds", "plot=du10"),
                ("t_plot_seconds", "plot=du9"),
                ("t_plot_seconds", "plot=du8"),
            ]
        );
        let all = rows[1].summary;
        assert_eq!(all.count, 10);
        assert!((all.max - 10.0).abs() <= 0.1, "{all:?}");
        assert!((all.p50 - 5.0).abs() <= 0.05, "{all:?}");
    }

    #[test]
    fn quantiles_within_one_percent_and_buckets_exact() {
        let l = Latency::new();
        // 1..=1000 ms.
        l.record_all((1..=1000).map(|ms| ms as f64 / 1e3));
        let s = l.summary().unwrap();
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 0.5).abs() <= 0.005, "{s:?}");
        assert!((s.p99 - 0.99).abs() <= 0.01, "{s:?}");
        assert!((s.max - 1.0).abs() <= 0.01, "{s:?}");
        let (sum, count, b) = l.buckets();
        assert_eq!(count, 1000);
        assert!((sum - 500.5).abs() < 1e-6);
        // le=0.001: exactly the 1 ms sample; le=0.1: 100 samples in all.
        assert_eq!(b[0], (0.001, 1));
        let upto = |bound: f64| {
            b.iter()
                .filter(|(u, _)| *u <= bound)
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        assert_eq!(upto(0.1), 100);
        assert_eq!(upto(1.0), 1000);
        assert_eq!(b.last().unwrap(), &(f64::INFINITY, 0));
    }

    #[test]
    fn years_and_negative_values_are_kept() {
        let l = Latency::new();
        l.record(7.0 * 365.0 * 86400.0);
        l.record(-3.0);
        let s = l.summary().unwrap();
        assert_eq!(s.count, 2);
        assert_eq!(s.p50, 0.0);
        assert!((s.max / (7.0 * 365.0 * 86400.0) - 1.0).abs() < 0.01);
        assert_eq!(l.buckets().2.last().unwrap().1, 1);
    }

    #[test]
    fn families_encode_as_histograms_and_counters() {
        let r: &'static Registry = Box::leak(Box::default());
        let f = r.histogram("km3mon_test_seconds", "A test.", &["sink"]);
        assert!(Arc::ptr_eq(
            &f,
            &r.histogram("km3mon_test_seconds", "", &["sink"])
        ));
        r.counter("km3mon_test_attempts", "Attempts.", &["sink"])
            .add(&["chat"], 3);
        // Declared before its first sample: the descriptor alone, which
        // a Prometheus parser reads as a family without samples.
        let t = text(r);
        assert!(t.contains("# TYPE km3mon_test_seconds histogram\n"), "{t}");
        assert!(!t.contains("km3mon_test_seconds_"), "{t}");
        f.get(&["chat"]).record(0.3);
        let t = text(r);
        assert!(t.contains("# TYPE km3mon_test_seconds histogram"), "{t}");
        assert!(
            t.contains("km3mon_test_seconds_bucket{le=\"0.25\",sink=\"chat\"} 0"),
            "{t}"
        );
        assert!(
            t.contains("km3mon_test_seconds_bucket{le=\"0.5\",sink=\"chat\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("km3mon_test_seconds_bucket{le=\"+Inf\",sink=\"chat\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("km3mon_test_seconds_count{sink=\"chat\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("km3mon_test_attempts_total{sink=\"chat\"} 3"),
            "{t}"
        );
        let rows = r.summaries();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].labels, "sink=chat");
        assert!((rows[0].summary.p50 - 0.3).abs() < 0.003);
    }

    #[test]
    fn human_units() {
        assert_eq!(human(0.0123), "12.3ms");
        assert_eq!(human(2.5), "2.50s");
        assert_eq!(human(900.0), "15.0min");
        assert_eq!(human(7200.0 * 2.0), "4.0h");
        assert_eq!(human(86400.0 * 10.0), "10.0d");
    }
}
