//! Online muon reconstruction: the single-DU ROyFit of the original's live
//! reco (spec `reco.md`), the `royfit` node and the `time_residuals` node.
//! The math (`model`, `select`, `fit`) does not know timely.

mod calib;
pub mod draw;
pub mod event;
pub mod fit;
pub mod model;
pub mod output;
pub mod residual_draw;
pub mod royfit;
pub mod select;
pub mod time_residuals;
#[cfg(test)]
pub mod truth;
#[cfg(test)]
pub mod validation;
