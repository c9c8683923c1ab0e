//! The run-calibration seam: where nodes that calibrate hits (positions,
//! t0s) get the detector of each run. `km3mon run/replay` without
//! `--detector` installs one backed by the KM3NeT DB; the framework only
//! carries it.

use std::sync::Arc;

use daq::detector::Detector;

/// Blocking (it may ask a database): call it from an I/O thread, never
/// from a dataflow worker.
pub trait RunCalibration: Send + Sync {
    /// The detector to calibrate `run` of `det_id` with.
    fn for_run(&self, det_id: i32, run: i32) -> anyhow::Result<Arc<Detector>>;
    /// Short description for logs and plots.
    fn describe(&self) -> String;
}
