//! ControlHost over TCP: the dispatcher (a JLigier replacement), the
//! reconnecting client every source uses, and the tools built on them
//! (mirror, recorder, publisher).
//!
//! The bytes themselves (prefix, tags, `_Subscri` strings) are defined once
//! in [`daq::controlhost`]; this crate only moves them.

pub mod client;
pub mod mirror;
pub mod publish;
pub mod record;
pub mod server;
pub mod shutdown;
pub mod stats;
pub mod status;
pub mod subscriber;
pub mod wire;

pub use client::{Client, ClientConfig, ClientCounters, ClientError, ClientStats};
pub use mirror::{run_mirror, MirrorConfig, MirrorStats};
pub use publish::{publish_files, PublishConfig, PublishError, PublishStats, Speed};
pub use record::{record, RecordConfig, RecordError, RecordStats};
pub use server::{Ligier, LigierConfig, LigierHandle};
pub use shutdown::Shutdown;
pub use stats::StatusReport;
pub use status::query_status;
pub use subscriber::SubscriberThread;
pub use wire::{FrameReader, Message, ReadError};

/// The ControlHost dispatcher port every KM3NeT client assumes.
pub const DEFAULT_PORT: u16 = 5553;
