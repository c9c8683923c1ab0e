//! KM3NeT detector descriptions: DETX files (v1–v5), the CLB map and the
//! [`Detector`] model the monitors calibrate hits with.
//!
//! The monitors must work for any detector the DB serves: the test DOMs in
//! a lab, ORCA with 6 or 115 DUs, ARCA with 230. Everything here is therefore
//! derived from the file — the number of DUs, floors per DU and PMTs per
//! module are never assumed. The only fixed data are the tables describing
//! the standard 31-PMT KM3NeT DOM in [`address`], which the monitors use
//! only for modules that actually have that layout.
//!
//! Reading: [`Detector::from_file`] / [`Detector::parse`]; writing:
//! [`Detector::to_detx_string`]; synthetic detectors for scale tests:
//! [`Detector::generate`]; calibration: [`Detector::calibrate`].

pub mod address;
mod calib;
mod clbmap;
mod detx;
mod error;
mod generate;
pub mod idhash;
mod model;
mod write;

pub use calib::{slew, CalibError, CalibratedHit, SLEWING_TABLE};
pub use clbmap::{ClbMap, ClbMapError, ClbMapErrorKind, ClbRow};
pub use error::{DetxError, DetxErrorKind, Record};
pub use generate::GeneratorLayout;
pub use idhash::IdMap;
pub use model::{Detector, ModelError, Module, Pmt, UtmReference, Validity};
pub use write::WriteError;
