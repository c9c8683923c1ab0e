//! The KM3NeT DAQ wire layer.
//!
//! Everything km3mon reads arrives as bytes in one of the formats of the
//! wire-formats spec: ControlHost messages carrying DAQ frames (events,
//! summaryslices, timeslices), CLB monitoring packets and log lines. This
//! crate decodes and encodes them exactly, never panics on bad input, and
//! knows nothing of timely, graphs or sockets, so any tool can use it.
//!
//! Detector description files (DETX v1–v5) and the CLB map live in
//! [`detector`].

pub mod controlhost;
pub mod detector;
pub mod dump;
pub mod error;
pub mod event;
pub mod frame;
pub mod msg;
pub mod summary;
pub mod timeslice;
pub mod tmch;

pub use error::DecodeError;
