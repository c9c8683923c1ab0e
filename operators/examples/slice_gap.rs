//! The worked example of CONTRIBUTING.md, compiled (and run by
//! `cargo run -p km3mon-operators --example slice_gap`) so that it cannot rot.
//!
//! `slice_gap`: summaryslices per window of data time (a table row per
//! window), and the alert `no_summaryslices` when none arrived for
//! `silent_after` seconds of data time — raised by a timer, so it fires at
//! the same data time in a replay and live (where the heartbeat moves the
//! frontier while the detector is silent).

use std::sync::Arc;

use operators::shell::alerting::AlertKind;
use operators::shell::alerting::{tick_at_or_after, AlertBook};
use operators::shell::ns_of;
use operators::shell::{drive, ordered_items, random_steps, Monitor, Out, Tumbling};
use pipeline::item::{Item, Row, Time, TICKS_PER_SECOND, TICK_NS};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Role};
use pipeline::runtime::state::StateStore;
use pipeline::StreamKind;
use serde::Deserialize;

/// The alerts this monitor raises, in words (docs/alerts.md).
pub const ALERTS: &[AlertKind] = &[AlertKind {
    key: "no_summaryslices",
    firing: "no summaryslices",
    resolved: "summaryslices again",
}];

// 1. The config struct: serde, unknown keys refused, defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceGap {
    /// Window length, s of data time.
    #[serde(default = "ten")]
    pub interval: u64,
    /// Seconds without a summaryslice before the alert fires.
    pub silent_after: u64,
}

fn ten() -> u64 {
    10
}

// 2. Its name and role: the `type = "slice_gap"` of a graph.
impl NodeConfig for SliceGap {
    const TYPE: &'static str = "slice_gap";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str = "summaryslices per window; alert when they stop";
}

// 3. The contract: kinds in and out, checks, resources, build.
impl Node for SliceGap {
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Summaryslices]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Table)
    }
    fn outputs(&self) -> Vec<StreamKind> {
        vec![StreamKind::Table, StreamKind::Alerts]
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if self.interval == 0 {
            e.push(("interval".into(), "at least 1 s".into()));
        }
        if self.silent_after == 0 {
            e.push(("silent_after".into(), "at least 1 s".into()));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("slice_gap needs an input"))?;
        let mut m = GapMonitor::new(self, &ctx.node);
        if let Some(book) = ctx.state().load_all::<AlertBook>().remove("alerts") {
            m.alerts.restore(book);
        }
        // Worker 0, records sorted per timestamp, timers in time order.
        Ok(Some(ordered_items(ctx, input, "slice_gap", m)))
    }
}

// 4. The monitor: data and timers, in data-time order.
pub struct GapMonitor {
    windows: Tumbling<u64>,
    silent_ns: u64,
    last_ns: Option<u64>,
    alerts: AlertBook,
}

impl GapMonitor {
    pub fn new(c: &SliceGap, node: &str) -> GapMonitor {
        GapMonitor {
            windows: Tumbling::new(c.interval * TICKS_PER_SECOND),
            silent_ns: c.silent_after * 1_000_000_000,
            last_ns: None,
            alerts: AlertBook::new(node, 0).with_kinds(ALERTS),
        }
    }

    fn row(end: Time, n: u64, partial: bool) -> Item {
        Item::Row(Box::new(Row {
            table: "slice_gap".into(),
            header: vec!["timestamp".into(), "summaryslices".into(), "partial".into()],
            cells: vec![
                (end / TICKS_PER_SECOND).to_string(),
                n.to_string(),
                u8::from(partial).to_string(),
            ],
        }))
    }
}

impl Monitor<Item> for GapMonitor {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        for item in data {
            let Item::Summaryslice(s) = item else {
                continue;
            };
            // Counting opens the window and registers its close timer.
            *self.windows.at(t, out) += 1;
            let now = s.header.utc_ns();
            self.last_ns = Some(now);
            if let Some(a) = self.alerts.clear("no_summaryslices", now, || {
                "summaryslices arrive again".into()
            }) {
                out.give(t, Item::Alert(Box::new(a)));
            }
            // Silent from now on? Then the alert is due at this tick.
            out.timer(tick_at_or_after(now + self.silent_ns + TICK_NS));
        }
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        if let Some((w, n)) = self.windows.close(t) {
            out.give(t, GapMonitor::row(w.end, n, false));
        }
        let now = ns_of(t);
        if self.last_ns.is_some_and(|l| now > l + self.silent_ns) {
            let silent = self.silent_ns / 1_000_000_000;
            if let Some(a) = self.alerts.raise("no_summaryslices", now, || {
                format!("no summaryslice for more than {silent} s")
            }) {
                out.give(t, Item::Alert(Box::new(a)));
            }
        }
    }

    // The replay ended: the last window is partial, and says so.
    fn on_end(&mut self, _last: Option<Time>, out: &mut Out) {
        for (w, n) in self.windows.drain() {
            out.give(out.now(), GapMonitor::row(w.end, n, true));
        }
    }

    fn save(&mut self, store: &StateStore) {
        store.save(&std::collections::BTreeMap::from([(
            "alerts".to_string(),
            &self.alerts,
        )]));
    }
}

// 5. Test it by hand: any batching and frontier steps, one answer.
fn main() {
    let t0: u64 = 1_700_000_000; // s
    let slice = |s: u64| {
        let ss = daq::summary::Summaryslice {
            version: Some(6),
            header: daq::frame::DaqHeader {
                det_id: 7,
                run: 1,
                frame_index: s as i32,
                utc_seconds: s as u32,
                wr_status_msb: false,
                utc_16ns_ticks: 0,
            },
            frames: Vec::new(),
        };
        (s * TICKS_PER_SECOND, vec![Item::Summaryslice(Arc::new(ss))])
    };
    // One slice a second, none from +20 s to +50 s.
    let input: Vec<_> = (0..60)
        .filter(|i| !(20..50).contains(i))
        .map(|i| slice(t0 + i))
        .collect();
    let cfg = SliceGap {
        interval: 10,
        silent_after: 5,
    };
    let run = |seed| {
        drive(
            &mut GapMonitor::new(&cfg, "slice_gap"),
            random_steps(&input, seed),
        )
    };
    let reference = run(0);
    for seed in 1..50 {
        assert_eq!(
            format!("{:?}", run(seed)),
            format!("{reference:?}"),
            "seed {seed}"
        );
    }
    for (t, item) in &reference {
        match item {
            Item::Row(r) => println!("{t}: row {}", r.cells.join(",")),
            Item::Alert(a) => println!("{t}: {} {} {}", a.key, a.state.name(), a.message),
            _ => {}
        }
    }
    let alerts: Vec<_> = reference
        .iter()
        .filter_map(|(t, i)| matches!(i, Item::Alert(_)).then_some(*t))
        .collect();
    // Last slice at +19 s: silent for more than 5 s at +24.1 s; back at +50 s.
    assert_eq!(
        alerts,
        [
            (t0 + 24) * TICKS_PER_SECOND + 1,
            (t0 + 50) * TICKS_PER_SECOND
        ]
    );
}
