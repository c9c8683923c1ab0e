//! Hit calibration (spec `detector-files.md` §6): raw DAQ time plus the PMT
//! t0, with the PMT's place and direction attached, and optionally the
//! ToT-dependent time-slewing correction.
//!
//! Slewing is opt-in because the original tools disagree: km3pipe (the
//! z-t plot) applies it while calibrating, ROyFit only inside its fit, and
//! a monitor must reproduce whichever its reference does.

use super::model::Detector;

/// Time slewing in ns by ToT (ns) 0…255, to subtract from the hit time;
/// km3pipe `calib.py` variant 3, identical in NeRCA/KM3io.jl
/// (spec `monitors.md` §9.4).
#[rustfmt::skip]
pub const SLEWING_TABLE: [f64; 256] = [
    8.01, 7.52, 7.05, 6.59, 6.15, 5.74, 5.33, 4.95, 4.58, 4.22, 3.89, 3.56, 3.25, 2.95, 2.66, 2.39,
    2.12, 1.87, 1.63, 1.40, 1.19, 0.98, 0.78, 0.60, 0.41, 0.24, 0.07, -0.10, -0.27, -0.43, -0.59, -0.75,
    -0.91, -1.08, -1.24, -1.41, -1.56, -1.71, -1.85, -1.98, -2.11, -2.23, -2.35, -2.47, -2.58, -2.69, -2.79, -2.89,
    -2.99, -3.09, -3.19, -3.28, -3.37, -3.46, -3.55, -3.64, -3.72, -3.80, -3.88, -3.96, -4.04, -4.12, -4.20, -4.27,
    -4.35, -4.42, -4.49, -4.56, -4.63, -4.70, -4.77, -4.84, -4.90, -4.97, -5.03, -5.10, -5.16, -5.22, -5.28, -5.34,
    -5.40, -5.46, -5.52, -5.58, -5.63, -5.69, -5.74, -5.80, -5.85, -5.91, -5.96, -6.01, -6.06, -6.11, -6.16, -6.21,
    -6.26, -6.31, -6.36, -6.41, -6.45, -6.50, -6.55, -6.59, -6.64, -6.68, -6.72, -6.77, -6.81, -6.85, -6.89, -6.93,
    -6.98, -7.02, -7.06, -7.09, -7.13, -7.17, -7.21, -7.25, -7.28, -7.32, -7.36, -7.39, -7.43, -7.46, -7.50, -7.53,
    -7.57, -7.60, -7.63, -7.66, -7.70, -7.73, -7.76, -7.79, -7.82, -7.85, -7.88, -7.91, -7.94, -7.97, -7.99, -8.02,
    -8.05, -8.07, -8.10, -8.13, -8.15, -8.18, -8.20, -8.23, -8.25, -8.28, -8.30, -8.32, -8.34, -8.37, -8.39, -8.41,
    -8.43, -8.45, -8.47, -8.49, -8.51, -8.53, -8.55, -8.57, -8.59, -8.61, -8.62, -8.64, -8.66, -8.67, -8.69, -8.70,
    -8.72, -8.74, -8.75, -8.76, -8.78, -8.79, -8.81, -8.82, -8.83, -8.84, -8.86, -8.87, -8.88, -8.89, -8.90, -8.92,
    -8.93, -8.94, -8.95, -8.96, -8.97, -8.98, -9.00, -9.01, -9.02, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04,
    -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04,
    -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04,
    -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04, -9.04,
];

/// Slewing correction for a ToT (ns); ToTs beyond the table use its last
/// value, as the reference implementations do.
pub fn slew(tot: u32) -> f64 {
    let index = (tot as usize).min(SLEWING_TABLE.len() - 1);
    SLEWING_TABLE[index]
}

/// A hit with detector time and geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibratedHit {
    pub dom_id: u32,
    pub channel: usize,
    pub du: u32,
    pub floor: i32,
    pub pmt_id: u32,
    /// Raw time + PMT t0 (− slewing when asked for), ns.
    pub time: f64,
    pub tot: u32,
    /// PMT position, m.
    pub pos: [f64; 3],
    /// PMT axis.
    pub dir: [f64; 3],
    /// The PMT t0 that was added, ns.
    pub t0: f64,
}

/// The hit does not belong to this detector description — almost always
/// the wrong DETX for the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalibError {
    #[error("DOM {dom_id} is not in the detector description")]
    UnknownDom { dom_id: u32 },
    #[error("DOM {dom_id} has {n_pmts} PMTs, no channel {channel}")]
    UnknownChannel {
        dom_id: u32,
        channel: usize,
        n_pmts: usize,
    },
}

impl Detector {
    /// Calibrates a raw hit without slewing: `time_ns + t0(PMT)`.
    pub fn calibrate(
        &self,
        dom_id: u32,
        channel: usize,
        time_ns: f64,
        tot: u32,
    ) -> Result<CalibratedHit, CalibError> {
        let module = self
            .module(dom_id)
            .ok_or(CalibError::UnknownDom { dom_id })?;
        let pmt = module.pmts.get(channel).ok_or(CalibError::UnknownChannel {
            dom_id,
            channel,
            n_pmts: module.pmts.len(),
        })?;
        Ok(CalibratedHit {
            dom_id,
            channel,
            du: module.du,
            floor: module.floor,
            pmt_id: pmt.pmt_id,
            time: time_ns + pmt.t0,
            tot,
            pos: pmt.pos,
            dir: pmt.dir,
            t0: pmt.t0,
        })
    }

    /// As [`Detector::calibrate`], then subtracts [`slew`]`(tot)`.
    pub fn calibrate_with_slewing(
        &self,
        dom_id: u32,
        channel: usize,
        time_ns: f64,
        tot: u32,
    ) -> Result<CalibratedHit, CalibError> {
        let mut hit = self.calibrate(dom_id, channel, time_ns, tot)?;
        hit.time -= slew(tot);
        Ok(hit)
    }
}
