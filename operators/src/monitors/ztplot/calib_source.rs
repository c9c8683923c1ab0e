//! Where ztplot's calibration comes from: the DETX of the site config
//! (`--detector` / `[Detector] file`) for every run, or — when the run
//! has a [`RunCalibration`] (the KM3NeT DB, installed by `km3mon
//! run/replay` without `--detector`) — each run's own calibrated DETX.
//! The plot thread asks on every run change (the run's shared
//! [`RunCalibrations`]: one fetch per run for all nodes, already started
//! when the source saw the run) and keeps the previous detector when the
//! answer is an error (and says so on the plot).

use std::sync::Arc;

use daq::detector::Detector;
use pipeline::operator::BuildContext;
use pipeline::runtime::calibration::RunCalibrations;

pub trait CalibrationSource: Send {
    /// The detector to calibrate `run` of `det_id` with.
    fn for_run(&mut self, det_id: i32, run: i32) -> anyhow::Result<Arc<Detector>>;
    /// Short description for logs and the plot ("DETX of the site config").
    fn describe(&self) -> String;
    /// What to use when the very first run's calibration fails, with a
    /// description for the plot.
    fn fallback(&self) -> Option<(Arc<Detector>, String)> {
        None
    }
}

/// One detector for every run.
pub struct Static(pub Arc<Detector>);

impl CalibrationSource for Static {
    fn for_run(&mut self, _det_id: i32, _run: i32) -> anyhow::Result<Arc<Detector>> {
        Ok(self.0.clone())
    }
    fn describe(&self) -> String {
        "DETX of the site config".into()
    }
}

/// Each run's detector from the run's [`RunCalibrations`] (waiting for
/// it: this is the plot thread, never a worker); the layout detector when
/// even the first run's cannot be had.
pub struct PerRun {
    pub source: Arc<RunCalibrations>,
    pub layout: Arc<Detector>,
}

impl CalibrationSource for PerRun {
    fn for_run(&mut self, det_id: i32, run: i32) -> anyhow::Result<Arc<Detector>> {
        self.source.wait(det_id, run).map_err(anyhow::Error::msg)
    }
    fn describe(&self) -> String {
        self.source.describe()
    }
    fn fallback(&self) -> Option<(Arc<Detector>, String)> {
        Some((self.layout.clone(), "the uncalibrated detector".into()))
    }
}

/// The source for a ztplot node of this run.
pub fn for_node(ctx: &BuildContext<'_>, layout: Arc<Detector>) -> Box<dyn CalibrationSource> {
    match &ctx.env.calibrations {
        Some(c) => Box::new(PerRun {
            source: c.clone(),
            layout,
        }),
        None => Box::new(Static(layout)),
    }
}
