//! `km3mon ligier | mirror | record | publish`: the ControlHost tools.
//! Argument parsing and signal wiring only; the work is in the `ligier`
//! crate.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context};
use daq::controlhost::{Mode, Subscription, Tag};
use ligier::publish::{publish_files_with_progress, PublishConfig, Speed};
use ligier::record::{record, RecordConfig};
use ligier::{query_status, ClientConfig, Ligier, LigierConfig, MirrorConfig};
use pipeline::runtime::progress::{Bar, Progress};
use tracing::info;

#[derive(clap::Args)]
pub struct LigierArgs {
    /// TCP port to listen on.
    #[arg(long, default_value_t = ligier::DEFAULT_PORT)]
    port: u16,
    /// Address to listen on (0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Largest accepted payload (suffixes K, M, G); longer prefixes close
    /// the connection.
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    max_message_size: u64,
    /// Per-subscriber queue of "any" (w) messages, in bytes; the oldest
    /// are dropped beyond it.
    #[arg(long, default_value = "16M", value_parser = parse_size)]
    any_queue_bytes: u64,
    /// Per-subscriber queue of "any" (w) messages, in messages.
    #[arg(long, default_value_t = 10_000)]
    any_queue_messages: usize,
    /// Per-subscriber queue of "all" (a) messages, in bytes; beyond it the
    /// publisher waits.
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    all_queue_bytes: u64,
    /// How long a publisher waits for a full "all" subscriber before that
    /// subscriber is disconnected (90s, 5m, …; a bare number is seconds).
    #[arg(long, default_value = "10s", value_parser = timespan::parse)]
    all_wait: Duration,
    /// Time between status log lines (0: none).
    #[arg(long, default_value = "60s", value_parser = timespan::parse)]
    status_interval: Duration,
    /// Connections served at once; more are closed at once, with a warning
    /// in the log.
    #[arg(long, value_name = "N", default_value_t = ligier::server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Do not serve: print the counters of the Ligier at HOST[:PORT].
    #[arg(long, value_name = "HOST[:PORT]")]
    status: Option<String>,
    /// With --status: print the raw JSON report.
    #[arg(long, requires = "status")]
    json: bool,
}

#[derive(clap::Args)]
pub struct MirrorArgs {
    /// Ligier to subscribe to.
    #[arg(long, value_name = "HOST[:PORT]")]
    from: String,
    /// Ligier to republish into.
    #[arg(long, value_name = "HOST[:PORT]")]
    to: String,
    /// Tags to copy (space- or comma-separated).
    #[arg(long, default_value = "IO_EVT IO_SUM IO_TSSN MSG IO_MONIT")]
    tags: String,
    /// Subscription mode upstream: any (w, may drop when we fall behind)
    /// or all (a, upstream waits for us).
    #[arg(long, default_value = "any", value_parser = parse_mode)]
    mode: Mode,
    /// Name shown in the Ligiers' status (`_MyId`).
    #[arg(long, default_value = "km3mon-mirror")]
    name: String,
    /// Time between progress log lines (0: none; 90s, 5m, …).
    #[arg(long, default_value = "60s", value_parser = timespan::parse)]
    log_interval: Duration,
}

#[derive(clap::Args)]
pub struct RecordArgs {
    /// Ligier to subscribe to.
    #[arg(long, value_name = "HOST[:PORT]", default_value = "127.0.0.1:5553")]
    ligier: String,
    /// Tags to record (space- or comma-separated).
    #[arg(long)]
    tags: String,
    /// Recording file (ControlHost messages back to back).
    #[arg(short, long)]
    output: PathBuf,
    /// Append to an existing recording.
    #[arg(long)]
    append: bool,
    /// Subscription mode: any (w) or all (a).
    #[arg(long, default_value = "any", value_parser = parse_mode)]
    mode: Mode,
    /// Longest time received data stays unflushed (1s, 500ms, …).
    #[arg(long, default_value = "1s", value_parser = timespan::parse)]
    flush_interval: Duration,
    /// Name shown in the Ligier's status (`_MyId`).
    #[arg(long, default_value = "km3mon-record")]
    name: String,
}

#[derive(clap::Args)]
pub struct PublishArgs {
    /// Ligier to publish into.
    #[arg(long, value_name = "HOST[:PORT]", default_value = "127.0.0.1:5553")]
    ligier: String,
    /// Recordings (tags from their prefixes) or .dat dumps (need --tag).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Tag of a .dat dump (IO_EVT, IO_SUM, IO_TSSN, IO_MONIT, ...).
    #[arg(long)]
    tag: Option<Tag>,
    /// Replay speed: "max", or a factor of real time (1, 10, 0.5) following
    /// the DAQ header times.
    #[arg(long, default_value = "1")]
    speed: Speed,
    /// Name shown in the Ligier's status (`_MyId`).
    #[arg(long, default_value = "km3mon-publish")]
    name: String,
}

pub fn run_ligier(args: LigierArgs) -> anyhow::Result<ExitCode> {
    if let Some(addr) = &args.status {
        let report = query_status(&ligier::with_default_port(addr), Duration::from_secs(5))?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{report}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = LigierConfig {
        bind: SocketAddr::new(args.bind, args.port),
        max_message_size: u32::try_from(args.max_message_size)
            .ok()
            .filter(|&n| n <= i32::MAX as u32)
            .context("--max-message-size must be below 2 GiB")?,
        any_queue_bytes: args.any_queue_bytes as usize,
        any_queue_messages: args.any_queue_messages,
        all_queue_bytes: args.all_queue_bytes as usize,
        all_wait: args.all_wait,
        status_interval: Some(args.status_interval).filter(|d| !d.is_zero()),
        max_connections: args.max_connections.max(1),
        release_memory: Some(crate::release_free_memory),
    };
    let stop = crate::signals::stop_on_signals()?;
    let handle = Ligier::start(config.clone())
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    stop.wait();
    handle.shutdown();
    Ok(ExitCode::SUCCESS)
}

pub fn run_mirror(args: MirrorArgs) -> anyhow::Result<ExitCode> {
    let subscription = subscription(&args.tags, args.mode)?;
    let config = MirrorConfig {
        from: ClientConfig::new(ligier::with_default_port(&args.from)).name(args.name.clone()),
        to: ClientConfig::new(ligier::with_default_port(&args.to)).name(args.name),
        subscription,
        log_interval: Some(args.log_interval).filter(|d| !d.is_zero()),
    };
    let stop = crate::signals::stop_on_signals()?;
    info!(from = %config.from.addr, to = %config.to.addr, "mirror running");
    let stats = ligier::run_mirror(config, stop)?;
    info!(
        forwarded = stats.forwarded_msgs,
        bytes = stats.forwarded_bytes,
        upstream_reconnects = stats.upstream.reconnects,
        downstream_reconnects = stats.downstream.reconnects,
        "mirror stopped"
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run_record(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let config = RecordConfig {
        ligier: ClientConfig::new(ligier::with_default_port(&args.ligier)).name(args.name),
        subscription: subscription(&args.tags, args.mode)?,
        output: args.output,
        append: args.append,
        flush_interval: args.flush_interval,
    };
    let stop = crate::signals::stop_on_signals()?;
    record(config, stop)?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let config = PublishConfig {
        ligier: ClientConfig::new(ligier::with_default_port(&args.ligier)).name(args.name),
        files: args.files,
        tag: args.tag,
        speed: args.speed,
    };
    let stop = crate::signals::stop_on_signals()?;
    // The replay's bar (shown on a terminal only): bytes, rate, ETA and the
    // data time reached.
    let progress = Progress::default();
    let bar = Bar::new();
    let mut drawn = std::time::Instant::now();
    let stats = publish_files_with_progress(config, stop.clone(), &mut |p| {
        progress.bytes_total.store(p.bytes_total, Ordering::Relaxed);
        progress.bytes_read.store(p.bytes_done, Ordering::Relaxed);
        progress.records.store(p.messages, Ordering::Relaxed);
        if let Some(t) = p.utc_ns {
            progress.data_ns.store(t, Ordering::Relaxed);
        }
        if drawn.elapsed() >= std::time::Duration::from_millis(100) {
            drawn = std::time::Instant::now();
            bar.draw(&progress);
        }
    });
    bar.finish(&progress);
    let stats = stats?;
    info!(
        files = stats.files,
        messages = stats.messages,
        bytes = stats.bytes,
        skipped = stats.skipped,
        "publish finished"
    );
    Ok(if stop.is_triggered() {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

fn subscription(tags: &str, mode: Mode) -> anyhow::Result<Subscription> {
    let mut sub = Subscription::new();
    for name in tags.split([' ', ',', '\t']).filter(|t| !t.is_empty()) {
        let tag = Tag::new(name).with_context(|| format!("bad tag {name:?}"))?;
        sub = sub.with(mode, tag);
    }
    if sub.entries.is_empty() {
        bail!("no tags given");
    }
    Ok(sub)
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "any" | "w" => Ok(Mode::Any),
        "all" | "a" => Ok(Mode::All),
        _ => Err(format!("mode must be 'any' or 'all', not {s:?}")),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        _ => (s, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("expected a byte count such as 65536, 64K or 16M, not {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_the_default_port() {
        assert_eq!(ligier::with_default_port("localhost"), "localhost:5553");
        assert_eq!(ligier::with_default_port("10.0.0.1:5554"), "10.0.0.1:5554");
        assert_eq!(ligier::with_default_port("::1"), "[::1]:5553");
        assert_eq!(ligier::with_default_port("[::1]:7"), "[::1]:7");
    }

    #[test]
    fn sizes_and_tags_parse() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("lots").is_err());
        let sub = subscription("IO_EVT, MSG", Mode::Any).unwrap();
        assert_eq!(sub.to_payload(), b" w IO_EVT w MSG");
        assert!(subscription(" ", Mode::Any).is_err());
    }
}
