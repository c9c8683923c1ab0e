//! `km3mon record`: a Ligier stream to a file, wire-identical.
//!
//! The file is the received ControlHost messages back to back (16-byte
//! prefix + payload each, prefix bytes exactly as received), so any
//! ControlHost tool, `km3mon publish` and the pipeline's replay source read
//! it. It is flushed whenever the stream pauses and at least every
//! `flush_interval`, so a crash loses at most that much.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use daq::controlhost::Subscription;
use serde::Serialize;
use tracing::info;

use crate::client::{Client, ClientConfig, ClientError, ClientStats};
use crate::shutdown::Shutdown;

#[derive(Debug, Clone)]
pub struct RecordConfig {
    pub ligier: ClientConfig,
    pub subscription: Subscription,
    pub output: PathBuf,
    /// Append to an existing recording instead of replacing it.
    pub append: bool,
    pub flush_interval: Duration,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RecordStats {
    pub messages: u64,
    pub bytes: u64,
    pub client: ClientStats,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    File { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Record until `stop`; the file is complete and synced on return.
pub fn record(config: RecordConfig, stop: Shutdown) -> Result<RecordStats, RecordError> {
    let path = config.output.clone();
    let file_error = |source| RecordError::File {
        path: path.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(config.append)
        .truncate(!config.append)
        .open(&config.output)
        .map_err(file_error)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut client = Client::new(config.ligier).with_shutdown(stop);
    let mut stats = RecordStats::default();
    let mut last_flush = Instant::now();
    let poll = config
        .flush_interval
        .clamp(Duration::from_millis(10), Duration::from_millis(250));
    let result = (|| -> Result<(), RecordError> {
        client.subscribe(config.subscription)?;
        loop {
            match client.recv_timeout(poll)? {
                Some(msg) => {
                    msg.write_to(&mut out).map_err(file_error)?;
                    stats.messages += 1;
                    stats.bytes += msg.wire_len() as u64;
                    if client.has_buffered_input() && last_flush.elapsed() < config.flush_interval {
                        continue;
                    }
                }
                None if last_flush.elapsed() < config.flush_interval => continue,
                None => {}
            }
            out.flush().map_err(file_error)?;
            last_flush = Instant::now();
        }
    })();
    out.flush().map_err(file_error)?;
    out.get_ref().sync_all().map_err(file_error)?;
    stats.client = client.stats();
    info!(
        path = %config.output.display(),
        messages = stats.messages,
        bytes = stats.bytes,
        reconnects = stats.client.reconnects,
        "recording closed"
    );
    match result {
        Ok(()) | Err(RecordError::Client(ClientError::Stopped)) => Ok(stats),
        Err(e) => Err(e),
    }
}

/// Open a recording for reading with the shared dump reader.
pub fn open_recording(path: &std::path::Path) -> io::Result<daq::dump::DumpReader<File>> {
    Ok(daq::dump::DumpReader::open(path)?.with_container(daq::dump::Container::ControlHost))
}
