//! Monitors: one module each. A monitor reads items, keeps its state on
//! the [`crate::shell`], draws its plots and raises its alerts — the alert
//! keys (`dom_inactive:<dom_id>`, …) and their wording live in the module
//! that raises them.

pub mod acoustics;
pub mod ahrs;
pub mod detector_state;
pub mod dom_activity;
pub mod dom_rates;
pub mod log_stats;
pub mod pmt_rates;
pub mod reco;
pub mod rttc;
pub mod tag_rates;
pub mod timeslice_rates;
pub mod timesync;
pub mod trigger_rates;
pub mod triggermap;
pub mod ztplot;
