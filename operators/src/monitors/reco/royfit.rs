//! `type = "royfit"`: the single-DU muon fit of the original's live reco
//! on every sampled event (spec `reco.md`; docs/reco.md).
//!
//! Two stages. The fit is stateless per event, so events are exchanged by
//! (frame index, trigger counter) and fitted on every worker (`-w N`
//! scales it). The results meet on worker 0 in data-time order, sorted by
//! event identity, where the outputs are made: the residual rows
//! (`reco_timeres` table, for a csv sink and `time_residuals`), the lines
//! of `royfit.jsonl` and at most one `ztplot_roy.png` per `plot_interval`
//! of data time (decided from the events' own times).

use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender, TrySendError};
use daq::detector::Detector;
use pipeline::item::Item;
use pipeline::operator::{
    check_relative, BuildContext, ItemStream, Node, NodeConfig, Resource, Role,
};
use pipeline::runtime::context::Mode;
use pipeline::runtime::metrics::DropReason;
use pipeline::StreamKind;
use serde::Deserialize;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use super::calib::RunDetector;
use super::event::{exchange_key, fit_event, floor_distance, EventFit, EventParams};
use super::output::{self, RoyOut};
use super::select::SelectParams;
use crate::shell::ordered;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoyFit {
    /// Events with fewer DOMs with triggered hits are not fitted.
    #[serde(default = "four")]
    pub min_doms: usize,
    /// Share of events fitted, chosen by a hash of the event's identity
    /// (the original fitted a random half).
    #[serde(default = "one")]
    pub fraction: f64,
    /// Seconds of data time between two `ztplot_roy.png`.
    #[serde(default = "sixty", deserialize_with = "timespan::de::secs")]
    pub plot_interval: u64,
    /// The display's gate: ΣQ below this…
    #[serde(default = "two_hundred")]
    pub plot_max_q_sum: f64,
    /// …at least this many DOMs with triggered hits (original: > 6)…
    #[serde(default = "seven")]
    pub plot_min_doms: usize,
    /// …and at least this many DUs with hits (original: > 1).
    #[serde(default = "two")]
    pub plot_min_dus: usize,
    /// Floor distance of the hit selection in m; default: the detector's
    /// (median over its DUs; v0.6.3 used 9 m everywhere).
    #[serde(default)]
    pub floor_distance: Option<f64>,
    /// Test a DOM's last n-fold chain too (the original never did).
    #[serde(default)]
    pub nfold_last_chain: bool,
    /// Fewer selected hits on a DU: no fit (v0.6.3: 3; such fits have
    /// more parameters than hits and leave residuals of 0).
    #[serde(default = "three")]
    pub min_hits: usize,
    /// Iterations of the minimiser.
    #[serde(default = "five_hundred")]
    pub max_iter: usize,
    /// One line per fitted DU, under `--out`.
    #[serde(default = "jsonl")]
    pub jsonl: PathBuf,
    /// Plot directory under `--out` (`ztplot_roy.png|json`).
    #[serde(default = "plots")]
    pub dir: PathBuf,
    /// Displays waiting for the plot thread (live: beyond, skipped).
    #[serde(default = "queue")]
    pub queue: usize,
}

fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn one() -> f64 {
    1.0
}
fn sixty() -> u64 {
    60
}
fn two_hundred() -> f64 {
    200.0
}
fn seven() -> usize {
    7
}
fn two() -> usize {
    2
}
fn five_hundred() -> usize {
    500
}
fn jsonl() -> PathBuf {
    PathBuf::from("data/royfit.jsonl")
}
fn plots() -> PathBuf {
    PathBuf::from("plots")
}
fn queue() -> usize {
    16
}

impl NodeConfig for RoyFit {
    const TYPE: &'static str = "royfit";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "single-DU muon fit (ROyFit): reco_timeres rows, royfit.jsonl and ztplot_roy.png";
    const EXAMPLE: &'static str = r#"inputs = ["events"]
jsonl = "data/royfit_example.jsonl"
plot_interval = 10"#;
}

impl RoyFit {
    fn params(&self, det: &Detector) -> EventParams {
        EventParams {
            min_doms: self.min_doms,
            fraction: self.fraction,
            select: SelectParams {
                floor_distance: self.floor_distance.unwrap_or_else(|| floor_distance(det)),
                nfold_last_chain_bug: !self.nfold_last_chain,
                min_hits: self.min_hits,
                ..SelectParams::default()
            },
            max_iter: self.max_iter,
        }
    }
}

impl Node for RoyFit {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            ("jsonl".into(), Resource::file(&self.jsonl)),
            (
                "dir".into(),
                Resource::file(&self.dir.join("ztplot_roy.png")),
            ),
            (
                "dir".into(),
                Resource::file(&self.dir.join("ztplot_roy.json")),
            ),
            (String::new(), Resource::Detector),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Events]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Table)
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e: Vec<_> = check_relative("jsonl", &self.jsonl)
            .into_iter()
            .chain(check_relative("dir", &self.dir))
            .collect();
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            e.push(("fraction".into(), "must be within (0, 1]".into()));
        }
        if self
            .floor_distance
            .is_some_and(|d| !(d > 0.0 && d.is_finite()))
        {
            e.push(("floor_distance".into(), "must be positive".into()));
        }
        if self.min_hits < 3 {
            e.push(("min_hits".into(), "must be at least 3".into()));
        }
        if self.max_iter == 0 {
            e.push(("max_iter".into(), "must be at least 1".into()));
        }
        if self.queue == 0 {
            e.push(("queue".into(), "must be at least 1".into()));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("royfit needs an input"))?;
        let det = ctx.detector()?;
        let params = self.params(&det);
        let gate = (self.plot_max_q_sum, self.plot_min_doms, self.plot_min_dus);
        let metrics = ctx.metrics.clone();
        // Each run's calibration (the KM3NeT DB), or the layout for all.
        let mut runs = RunDetector::new(
            det.clone(),
            ctx.env.calibrations.clone(),
            matches!(ctx.env.mode, Mode::Replay { .. }),
            ctx.is_leader(),
        );
        let fitted = input.unary::<CapacityContainerBuilder<Vec<EventFit>>, _, _, _>(
            Exchange::new(|i: &Item| match i {
                Item::Event(e) => exchange_key(e),
                _ => 0,
            }),
            "royfit",
            move |_, _| {
                move |input, output| {
                    input.for_each(|cap, data| {
                        let mut fits = Vec::new();
                        metrics.busy(|| {
                            for item in data.drain(..) {
                                let Item::Event(ev) = item else { continue };
                                let d = runs.get(ev.header.det_id, ev.header.run);
                                let keep = |f: &EventFit| f.displayable(gate.0, gate.1, gate.2);
                                fits.extend(fit_event(&d, &ev, &params, keep));
                            }
                        });
                        if !fits.is_empty() {
                            output.session(&cap).give_container(&mut fits);
                        }
                    });
                }
            },
        );
        let mut out = RoyOut::new(
            self.plot_interval,
            matches!(ctx.env.mode, Mode::Replay { .. }),
            ctx.metrics.clone(),
        );
        if ctx.is_leader() {
            let (s, r) = ctx.writer_queue("royfit jsonl writer queue full");
            let path = ctx.out_path(&self.jsonl);
            let control = ctx.node_control();
            let live = matches!(ctx.env.mode, Mode::Live);
            ctx.spawn_io("jsonl", move || {
                output::jsonl_writer(&path, r, &control, live)
            })?;
            out.jsonl = Some(s);
            let (s, r) = bounded(self.queue);
            let dir = ctx.out_path(&self.dir);
            let control = ctx.node_control();
            let max_z = det
                .optical_modules()
                .flat_map(|m| m.pmts.iter().map(|p| p.pos[2]))
                .fold(0.0, f64::max);
            ctx.spawn_io("plotter", move || output::plotter(&dir, max_z, r, &control))?;
            out.plot = Some(s);
        }
        Ok(Some(ordered(ctx, fitted, "royfit_out", EventFit::key, out)))
    }
}

/// Hands a display to the plot thread: a replay waits (so its files do
/// not depend on the machine's speed), live skips and counts.
pub(super) fn send_plot(
    tx: &Sender<Arc<EventFit>>,
    ev: Arc<EventFit>,
    replay: bool,
    metrics: &pipeline::runtime::metrics::NodeMetrics,
) {
    if replay {
        let _ = tx.send(ev);
    } else if let Err(TrySendError::Full(_)) = tx.try_send(ev) {
        metrics.drop_detail(DropReason::Overflow, "plot queue full", 1);
    }
}
