//! royfit's detector for each run: the site config's DETX for every run,
//! or — with the KM3NeT DB (`km3mon run/replay` without `--detector`) —
//! each run's calibrated detector from the run's shared
//! [`RunCalibrations`], which an I/O thread fills (the runtime asks for a
//! run as soon as a source sees its first frame).
//!
//! A replay waits for the run's answer, so the fits are the same whatever
//! the database's speed and the worker count. Live never waits: until the
//! answer is there, and when the fetch failed, the previous run's
//! detector is used (the layout before the first), and the log says so
//! once per run; a failed run is asked again after a while.

use std::sync::Arc;

use daq::detector::Detector;
use pipeline::runtime::calibration::RunCalibrations;

pub(super) struct RunDetector {
    pub layout: Arc<Detector>,
    pub source: Option<Arc<RunCalibrations>>,
    pub replay: bool,
    /// Logs on one worker only.
    pub leader: bool,
    /// The run, its detector, and whether that is the run's own answer.
    current: Option<((i32, i32), Arc<Detector>, bool)>,
    warned: Option<(i32, i32)>,
}

impl RunDetector {
    pub fn new(
        layout: Arc<Detector>,
        source: Option<Arc<RunCalibrations>>,
        replay: bool,
        leader: bool,
    ) -> RunDetector {
        RunDetector {
            layout,
            source,
            replay,
            leader,
            current: None,
            warned: None,
        }
    }

    /// The detector to fit an event of `run` of `det_id` with.
    pub fn get(&mut self, det_id: i32, run: i32) -> Arc<Detector> {
        let key = (det_id, run);
        if let Some((k, d, true)) = &self.current {
            if *k == key {
                return d.clone();
            }
        }
        let Some(src) = &self.source else {
            return self.layout.clone();
        };
        let fetched = if self.replay {
            Some(src.wait(det_id, run))
        } else {
            src.try_get(det_id, run)
        };
        let previous = self
            .current
            .as_ref()
            .map_or_else(|| self.layout.clone(), |c| c.1.clone());
        let what = if self.current.is_some() {
            "the previous run's calibration"
        } else {
            "the uncalibrated detector"
        };
        let (d, own) = match fetched {
            Some(Ok(d)) => {
                if self.leader && self.warned == Some(key) {
                    tracing::info!("royfit: run {run}: its calibration is here now");
                }
                (d, true)
            }
            Some(Err(e)) => {
                if self.leader && self.warned != Some(key) {
                    tracing::warn!(
                        "royfit: no calibration for run {run} ({e}): fitting with {what}"
                    );
                }
                self.warned = Some(key);
                // A replay's answer is final; live asks again later.
                (previous, self.replay)
            }
            None => {
                if self.leader && self.warned != Some(key) {
                    tracing::info!(
                        "royfit: calibration of run {run} still on its way: fitting with {what}"
                    );
                }
                self.warned = Some(key);
                (previous, false)
            }
        };
        self.current = Some((key, d.clone(), own));
        d
    }
}
