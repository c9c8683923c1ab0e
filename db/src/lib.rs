//! km3db: the KM3NeT database web API client (spec integrations.md §1).
//!
//! * [`session`]: the session id — resolution order, the cookie file
//!   (mode 0600), the login reply;
//! * [`client::Client`]: requests with the `sid` cookie, one
//!   re-resolution on HTTP 401/403, then a "session invalid" state;
//!   streams ([`tsv::Table`]), API v2 ([`apiv2`]), DETX, runs;
//! * [`http`]: ≤ 2 requests in flight per process, timeouts, retries with
//!   back-off, a "down" state after repeated failures;
//! * [`detector::DetectorService`]: the station's detector and each run's
//!   calibration with a disk [`cache`], for the monitoring graph;
//! * [`clbmap`]: the detector's CLB map (DU/floor ↔ DOM id ↔ CLB UPI and
//!   serial) and other slowly changing streams, cached per day.
//!
//! Blocking by design: no async runtime, no dataflow. Callers in a
//! dataflow run it on an I/O thread.
//!
//! ```no_run
//! use km3db::{Client, DbConfig};
//! let mut db = Client::from_process(DbConfig::default());
//! let runs = db.runs("44", None)?;
//! println!("{} runs, last {}", runs.len(), runs.last().map_or(0, |r| r.run));
//! # Ok::<(), km3db::DbError>(())
//! ```

pub mod apiv2;
pub mod cache;
pub mod clbmap;
pub mod client;
pub mod config;
pub mod detector;
pub mod error;
pub mod http;
pub mod runs;
pub mod session;
pub mod tsv;

pub use client::{Client, SessionState};
pub use config::DbConfig;
pub use detector::{DetectorService, Origin};
pub use error::DbError;
pub use runs::{CalibIds, RunRow};
pub use session::SessionEnv;
pub use tsv::Table;
