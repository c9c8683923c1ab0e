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
//!
//! Events, timeslices and CLB packets also have zero-copy views
//! ([`event::EventView`], [`timeslice::TimesliceView`], [`tmch::TmchView`]):
//! validated once, read in place, and the base of the owned decodes. The
//! `fuzzing` feature exposes the fuzz-target bodies (`fuzz/`, and
//! `tests/fuzz_corpus.rs`, which runs them on every `cargo test`).

pub mod controlhost;
pub mod detector;
pub mod dump;
pub mod error;
pub mod event;
pub mod frame;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod msg;
pub mod summary;
pub mod timeslice;
pub mod tmch;

pub use error::DecodeError;
