//! Online muon reconstruction: the single-DU ROyFit of the original's live
//! reco (spec `reco.md`), the `royfit` node and the `time_residuals` node.
//! The math (`model`, `select`, `fit`) does not know timely.

pub mod fit;
pub mod model;
pub mod select;
#[cfg(test)]
pub mod validation;
