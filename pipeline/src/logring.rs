//! The recent log lines of each node, for `km3mon ctl logs NODE` (the
//! supervisorctl `tail` habit). A `tracing` layer: an event inside a
//! node's span (the runtime opens one per node, see
//! [`NodeMetrics::busy`](crate::runtime::metrics::NodeMetrics::busy) and
//! `BuildContext::spawn_io`) is formatted once and kept in that node's ring
//! of [`CAPACITY`] lines. Every level the subscriber lets through is kept.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Lines kept per node.
pub const CAPACITY: usize = 1000;

/// The name of the span the runtime opens for a node; its fields are
/// `node` and `group`.
pub const NODE_SPAN: &str = "node";

/// A node's span: every log line inside it carries the node and group.
pub fn node_span(node: &str, group: &str) -> tracing::Span {
    tracing::info_span!(NODE_SPAN, node = %node, group = %group)
}

/// One kept line; `seq` grows by one per line over the whole process, so
/// a follower asks for what came after the last one it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub seq: u64,
    pub text: String,
}

#[derive(Default)]
pub struct LogRing {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    nodes: HashMap<String, VecDeque<Line>>,
}

impl LogRing {
    /// The process's ring, which the CLI's subscriber fills.
    pub fn global() -> Arc<LogRing> {
        static RING: OnceLock<Arc<LogRing>> = OnceLock::new();
        RING.get_or_init(Default::default).clone()
    }

    pub fn push(&self, node: &str, text: String) {
        let mut g = self.inner.lock().expect("log ring lock");
        g.next += 1;
        let seq = g.next;
        let q = g.nodes.entry(node.to_string()).or_default();
        if q.len() == CAPACITY {
            q.pop_front();
        }
        q.push_back(Line { seq, text });
    }

    /// The last `tail` lines of `node` with `seq > after`, oldest first.
    pub fn lines(&self, node: &str, tail: usize, after: u64) -> Vec<Line> {
        let g = self.inner.lock().expect("log ring lock");
        let Some(q) = g.nodes.get(node) else {
            return Vec::new();
        };
        let newer: Vec<&Line> = q.iter().filter(|l| l.seq > after).collect();
        let skip = newer.len().saturating_sub(tail);
        newer.into_iter().skip(skip).cloned().collect()
    }

    /// The sequence number of the newest line of any node.
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().expect("log ring lock").next
    }
}

/// The layer that fills a [`LogRing`].
pub struct RingLayer(Arc<LogRing>);

impl RingLayer {
    pub fn new(ring: Arc<LogRing>) -> RingLayer {
        RingLayer(ring)
    }
    /// A layer filling [`LogRing::global`].
    pub fn global() -> RingLayer {
        RingLayer(LogRing::global())
    }
}

/// The node name, stored in the span's extensions when it opens.
struct NodeName(String);

#[derive(Default)]
struct Fields {
    node: Option<String>,
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, f: &Field, v: &str) {
        match f.name() {
            "node" => self.node = Some(v.to_string()),
            "message" => self.message.push_str(v),
            n => {
                let _ = write!(self.rest, " {n}={v}");
            }
        }
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        match f.name() {
            "node" => self.node = Some(format!("{v:?}")),
            "message" => {
                let _ = write!(self.message, "{v:?}");
            }
            n => {
                let _ = write!(self.rest, " {n}={v:?}");
            }
        }
    }
}

impl<S> Layer<S> for RingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != NODE_SPAN {
            return;
        }
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let (Some(node), Some(span)) = (f.node, ctx.span(id)) {
            span.extensions_mut().insert(NodeName(node));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(node) = scope
            .from_root()
            .filter_map(|s| s.extensions().get::<NodeName>().map(|n| n.0.clone()))
            .last()
        else {
            return;
        };
        let mut f = Fields::default();
        event.record(&mut f);
        let mut line = String::new();
        let _ = SystemTime.format_time(&mut Writer::new(&mut line));
        let meta = event.metadata();
        let _ = write!(
            line,
            " {:>5} {}: {}{}",
            meta.level(),
            meta.target(),
            f.message,
            f.rest
        );
        self.0.push(&node, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn lines_inside_a_node_span_are_kept_per_node() {
        let ring = Arc::new(LogRing::default());
        let sub = tracing_subscriber::registry().with(RingLayer::new(ring.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::info!("outside any node");
            let a = node_span("dom_rates", "monitoring_process");
            let b = node_span("plots", "output");
            for i in 0..(CAPACITY + 5) {
                a.in_scope(|| tracing::warn!(dom = 806451572, "line {i}"));
            }
            b.in_scope(|| {
                let inner = tracing::info_span!("write");
                inner.in_scope(|| tracing::error!("cannot write"));
            });
        });
        let a = ring.lines("dom_rates", usize::MAX, 0);
        assert_eq!(a.len(), CAPACITY);
        assert!(a[0].text.ends_with("line 5 dom=806451572"), "{}", a[0].text);
        assert!(a[0].text.contains(" WARN "), "{}", a[0].text);
        let last = ring.lines("dom_rates", 2, 0);
        assert_eq!(last.len(), 2);
        let want = format!("line {} dom", CAPACITY + 4);
        assert!(last[1].text.contains(&want), "{}", last[1].text);
        let b = ring.lines("plots", 10, 0);
        assert_eq!(b.len(), 1);
        assert!(b[0].text.contains("cannot write"));
        assert!(ring.lines("plots", 10, b[0].seq).is_empty());
        assert!(ring.lines("nobody", 10, 0).is_empty());
        assert_eq!(ring.last_seq(), b[0].seq);
    }
}
