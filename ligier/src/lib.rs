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

/// `addr` with the standard ControlHost port appended when it names none
/// (`host`, `1.2.3.4`, `::1` or `[::1]`), so users may leave it out.
pub fn with_default_port(addr: &str) -> String {
    let has_port = match addr.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        addr.to_string()
    } else if addr.contains(':') && !addr.starts_with('[') {
        format!("[{addr}]:{DEFAULT_PORT}")
    } else {
        format!("{addr}:{DEFAULT_PORT}")
    }
}
