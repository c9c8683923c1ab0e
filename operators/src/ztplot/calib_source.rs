//! Where ztplot's calibration comes from. Today: the DETX of the site
//! config (`--detector` / `[Detector] file`) for every run. Later: the
//! run's calibrated DETX from the KM3NeT database — implement
//! [`CalibrationSource`] and pass it in; the plot thread asks on every run
//! change and keeps the previous detector when the answer is an error.

use std::sync::Arc;

use daq::detector::Detector;

pub trait CalibrationSource: Send {
    /// The detector to calibrate `run` of `det_id` with.
    fn for_run(&mut self, det_id: i32, run: i32) -> anyhow::Result<Arc<Detector>>;
    /// Short description for logs and the plot ("DETX of the site config").
    fn describe(&self) -> String;
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
