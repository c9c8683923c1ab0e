//! `km3mon publish`: recordings and `.dat` dumps into a Ligier, paced by
//! the data's own clock.
//!
//! A recording carries its tags in its prefixes; a dump does not, so its
//! tag is given (and also picks the dump's container, spec §7). Pacing
//! uses the DAQ header (or CLB packet) time of each record: at speed `s`
//! a record `t` seconds after the file's first timed record is sent `t/s`
//! seconds after it. Records without a time (log lines) go out at once.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use daq::controlhost::{Tag, PREFIX_LEN};
use daq::dump::{detect, Container, DumpReader};
use serde::Serialize;
use tracing::{info, warn};

use crate::client::{Client, ClientConfig, ClientError, ClientStats};
use crate::shutdown::Shutdown;

/// How fast to replay: as fast as possible, or a multiple of real time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    Max,
    Factor(f64),
}

impl FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Speed, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.trim_end_matches(['x', 'X']).parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "speed must be 'max' or a positive factor such as 1 or 10, not {s:?}"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PublishConfig {
    pub ligier: ClientConfig,
    pub files: Vec<PathBuf>,
    /// Required for dumps; ignored (with a warning) for recordings.
    pub tag: Option<Tag>,
    pub speed: Speed,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PublishStats {
    pub files: u64,
    pub messages: u64,
    pub bytes: u64,
    /// Bad stretches of input skipped by the reader.
    pub skipped: u64,
    pub client: ClientStats,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{path}: {source}")]
    File { path: PathBuf, source: io::Error },
    #[error(
        "{path}: not a ControlHost recording, so --tag is needed to publish it (e.g. --tag IO_EVT)"
    )]
    NeedsTag { path: PathBuf },
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Publish every file in turn; returns when all were sent and flushed.
pub fn publish_files(config: PublishConfig, stop: Shutdown) -> Result<PublishStats, PublishError> {
    publish_files_with_progress(config, stop, &mut |_| {})
}

/// Where a publish is, after each record (for a progress bar).
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishProgress {
    /// Input bytes behind (whole files done plus the offset in the current
    /// one) and in all (0 when unknown: a pipe).
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub messages: u64,
    /// Data time of the last record, when it has one (UTC ns).
    pub utc_ns: Option<u64>,
}

/// [`publish_files`], calling `progress` after every record.
pub fn publish_files_with_progress(
    config: PublishConfig,
    stop: Shutdown,
    progress: &mut dyn FnMut(&PublishProgress),
) -> Result<PublishStats, PublishError> {
    let mut client = Client::new(config.ligier).with_shutdown(stop.clone());
    let mut stats = PublishStats::default();
    let sizes: Vec<u64> = config
        .files
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| if m.is_file() { m.len() } else { 0 }))
        .collect();
    let mut at = PublishProgress {
        bytes_total: sizes.iter().sum(),
        ..PublishProgress::default()
    };
    for (path, size) in config.files.iter().zip(&sizes) {
        let before = at.bytes_done;
        let mut report = |offset: u64, utc_ns: Option<u64>, messages: u64| {
            at.bytes_done = before + offset;
            at.utc_ns = utc_ns.or(at.utc_ns);
            at.messages = messages;
            progress(&at);
        };
        let done = publish_file(
            &mut client,
            path,
            config.tag,
            config.speed,
            &stop,
            &mut stats,
            &mut report,
        );
        at.bytes_done = before + size;
        match done {
            Ok(()) => stats.files += 1,
            Err(PublishError::Client(ClientError::Stopped)) => break,
            Err(e) => return Err(e),
        }
    }
    match client.close() {
        Ok(client_stats) => stats.client = client_stats,
        Err(ClientError::Stopped) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(stats)
}

fn publish_file(
    client: &mut Client,
    path: &PathBuf,
    tag: Option<Tag>,
    speed: Speed,
    stop: &Shutdown,
    stats: &mut PublishStats,
    progress: &mut dyn FnMut(u64, Option<u64>, u64),
) -> Result<(), PublishError> {
    let file_error = |source| PublishError::File {
        path: path.clone(),
        source,
    };
    let mut file = File::open(path).map_err(file_error)?;
    let mut head = Vec::with_capacity(PREFIX_LEN);
    (&mut file)
        .take(PREFIX_LEN as u64)
        .read_to_end(&mut head)
        .map_err(file_error)?;
    let input: Box<dyn Read + Send> = Box::new(io::Cursor::new(head.clone()).chain(file));
    let reader = if rootio::is_root(&head) {
        // A ROOT run carries its own streams; records come in time order.
        rootio::RecordReader::open(path).map_err(|e| file_error(io::Error::other(e.to_string())))?
    } else if detect(&head) == Some(Container::ControlHost) {
        if let Some(t) = tag {
            warn!(path = %path.display(), "{path:?} is a recording: its own tags are used, not --tag {t}");
        }
        rootio::RecordReader::Dump(DumpReader::new(input).with_container(Container::ControlHost))
    } else {
        let tag = tag.ok_or_else(|| PublishError::NeedsTag { path: path.clone() })?;
        rootio::RecordReader::Dump(DumpReader::new(input).with_tag(tag))
    };
    if let Some(warning) = reader.warning() {
        warn!(path = %path.display(), "{warning}");
    }
    info!(path = %path.display(), "publishing");
    let mut clock: Option<(u64, Instant)> = None;
    let (start_msgs, start_skipped) = (stats.messages, stats.skipped);
    for record in reader {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                warn!(path = %path.display(), "skipping bad input: {e}");
                stats.skipped += 1;
                continue;
            }
        };
        let Some(record_tag) = record.tag.or(tag) else {
            warn!(path = %path.display(), offset = record.offset, "record without a tag skipped");
            stats.skipped += 1;
            continue;
        };
        if let (Speed::Factor(factor), Some(t)) = (speed, record.utc_ns()) {
            let (t0, wall0) = *clock.get_or_insert((t, Instant::now()));
            let due = wall0 + Duration::from_secs_f64(t.saturating_sub(t0) as f64 * 1e-9 / factor);
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                client.flush()?;
                if wait > Duration::from_secs(10) {
                    info!(
                        "next record is due in {:.0} s (data time)",
                        wait.as_secs_f64()
                    );
                }
                if stop.sleep(wait) {
                    return Err(ClientError::Stopped.into());
                }
            }
        }
        client.send(record_tag, &record.payload)?;
        stats.messages += 1;
        stats.bytes += (PREFIX_LEN + record.payload.len()) as u64;
        progress(record.offset, record.utc_ns(), stats.messages);
    }
    client.flush()?;
    info!(
        path = %path.display(),
        messages = stats.messages - start_msgs,
        skipped = stats.skipped - start_skipped,
        "published"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse() {
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("10".parse::<Speed>(), Ok(Speed::Factor(10.0)));
        assert_eq!("2x".parse::<Speed>(), Ok(Speed::Factor(2.0)));
        assert!("0".parse::<Speed>().is_err());
        assert!("fast".parse::<Speed>().is_err());
    }
}
