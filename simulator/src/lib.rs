//! A DAQ simulator for km3mon: what a KM3NeT shore station publishes on
//! its Ligier — `IO_SUM`, `IO_MONIT`, `IO_EVT`, `IO_TSSN` and `MSG` — for
//! any detector, at the real cadences, reproducible from a seed, with
//! faults to inject. See docs/simulator.md.
//!
//! ```no_run
//! use simulator::{SimConfig, Simulator};
//! let detector = daq::detector::Detector::generate(133, 115, 18, 31);
//! let mut config = SimConfig::new(detector);
//! config.duration = Some(std::time::Duration::from_secs(10));
//! for msg in Simulator::new(config).unwrap() {
//!     println!("{} {} bytes at {}", msg.tag.as_str(), msg.payload.len(), msg.time_ns);
//! }
//! ```
//!
//! Same configuration ⇒ same bytes: every random draw comes from the
//! simulator's own generator ([`rng`]), one independent stream per DOM and
//! per subsystem, and data time starts at a fixed instant unless told
//! otherwise.

pub mod config;
mod corrupt;
pub mod dm;
pub mod dom;
pub mod event;
pub mod fault;
pub mod msg;
pub mod output;
pub mod rng;
pub mod sim;
pub mod units;

pub use config::{GenerateSpec, SimConfig, Site, Start, DEFAULT_START_NS, SLICE_NS};
pub use fault::{Fault, FaultKind, FaultSpec};
pub use output::{
    run_to_ligier, write_recording, write_recording_with_progress, write_recording_with_truth,
    LiveConfig, RunStats,
};
pub use sim::{SimMessage, Simulator};

/// Keys of the independent random streams (see [`rng::Rng::new`]).
pub(crate) const STREAM_EVENTS: u64 = 1;
pub(crate) const STREAM_LOG: u64 = 2;
pub(crate) const STREAM_CORRUPTION: u64 = 3;
pub(crate) const STREAM_DM: u64 = 4;
pub(crate) const STREAM_FAULT_TARGETS: u64 = 1 << 20;
pub(crate) const STREAM_DOMS: u64 = 1 << 32;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Ligier(#[from] ligier::ClientError),
}
