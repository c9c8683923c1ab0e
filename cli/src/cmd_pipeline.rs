//! `km3mon check | graph | run | replay`: validate, draw and run dataflow
//! graphs (see docs/graph-language.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use std::sync::Arc;

mod site_notes;
mod summary;

use pipeline::control::Control;
use pipeline::runtime::metrics::Metrics;
use pipeline::runtime::{self, Cluster, Mode, RunOptions};
use pipeline::site::SiteConfig;
use pipeline::{Diagnostics, Graph};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Site config (pipeline.toml); default: the built-in pipeline.toml.example.
    #[arg(long, value_name = "SITE")]
    config: Option<PathBuf>,
    /// The graph to validate; default: the built-in km3mon.toml.
    graph: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct GraphArgs {
    #[arg(long, value_name = "SITE")]
    config: Option<PathBuf>,
    /// The graph to print as Graphviz DOT; default: the built-in km3mon.toml.
    graph: Option<PathBuf>,
}

/// Options shared by `run` and `replay`.
#[derive(clap::Args)]
struct Common {
    /// The graph to run; default: the built-in km3mon.toml (the full suite,
    /// as `km3mon init` writes it).
    #[arg(long, value_name = "GRAPH")]
    graph: Option<PathBuf>,
    /// Site config (pipeline.toml); default: the built-in pipeline.toml.example.
    #[arg(long, value_name = "SITE")]
    config: Option<PathBuf>,
    /// DETX file; overrides the site config's `[Detector] file`.
    #[arg(long, value_name = "FILE.detx")]
    detector: Option<PathBuf>,
    /// Every output of the graph (plots, data files, logs) goes under DIR.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Worker threads per process.
    #[arg(short = 'w', long = "workers", value_name = "N", default_value_t = 1)]
    workers: usize,
    /// Cluster mode: a file with one `host:port` per process.
    #[arg(long, value_name = "FILE", requires = "process")]
    hostfile: Option<PathBuf>,
    /// Cluster mode: this process's index in the hostfile (from 0).
    #[arg(long, value_name = "I", requires = "hostfile")]
    process: Option<usize>,
    /// Serve Prometheus metrics on ADDR (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Time between metric summaries in the log (90s, 5m, …; a bare
    /// number is seconds).
    #[arg(long, value_name = "SPAN", default_value = "60s", value_parser = timespan::parse)]
    log_interval: Duration,
    /// Capacity of each source's ingress queue (batches).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    queue: usize,
    /// Time between state saves (state is also saved at shutdown).
    #[arg(long, value_name = "SPAN", default_value = "60s", value_parser = timespan::parse)]
    state_interval: Duration,
    /// Serve the web pages from this process on ADDR (plots, logs and the
    /// live node status). `run` does so by default when --config has a
    /// [WebServer] section (on its `bind`); `replay` only with --web.
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "no_web")]
    web: Option<SocketAddr>,
    /// Do not start the web server.
    #[arg(long)]
    no_web: bool,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Operator state directory; default OUT/state.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Milliseconds between wall-clock heartbeats of the sources.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    heartbeat_ms: u64,
    /// How far live data may lag the wall clock and still count at its own time.
    #[arg(long, value_name = "SPAN", default_value = "5s", value_parser = timespan::parse)]
    lateness: Duration,
    /// The control socket for `km3mon ctl` (mode 0600); default OUT/km3mon.sock.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    common: Common,
    /// Operator state directory; default: none (a replay starts fresh).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// `max` (as fast as possible) or a factor of real time (1, 10, …).
    #[arg(long, value_name = "max|F", default_value = "max")]
    speed: String,
    /// Recordings (`km3mon record`) or .dat dumps, recognised from their
    /// content; FIFOs work, and `-` reads standard input.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Exit 0 even when corrupt input was dropped (it is still counted in
    /// the summary). Without it, dropped corrupt input fails the replay.
    #[arg(long)]
    allow_corrupt: bool,
    /// Testing aid: hand the records over in random batches and move the
    /// frontier in random coarse steps (0: one jump from the first time
    /// to the end). The outputs must be byte-identical to a plain replay's.
    #[arg(long, value_name = "SEED", hide_short_help = true)]
    batch_seed: Option<u64>,
    /// Skip the records before this data time (UTC, e.g.
    /// 2024-01-01T00:00:10Z): to continue a replay stopped with
    /// --stop-at at that time.
    #[arg(long, value_name = "TIME", value_parser = data_time)]
    start_at: Option<u64>,
    /// Stop before the first record at or after this data time: a *stop*,
    /// not an end of input. With --state-dir, open windows, counts and
    /// pending timers are saved instead of flushed, and a replay of the
    /// rest with the same state directory (--start-at TIME) gives the
    /// outputs of one uninterrupted replay (docs/state.md).
    #[arg(long, value_name = "TIME", value_parser = data_time)]
    stop_at: Option<u64>,
}

/// A data time on the command line, in ticks.
fn data_time(text: &str) -> Result<u64, String> {
    pipeline::item::parse_time(text)
}

fn load_site(config: Option<&Path>) -> Result<SiteConfig, Diagnostics> {
    match config {
        Some(p) => SiteConfig::load(p),
        None => Ok(SiteConfig::example()),
    }
}

/// Site config and graph (the built-in one without a path), or the
/// diagnostics printed and a failure code.
fn load(graph: Option<&Path>, config: Option<&Path>) -> Result<(SiteConfig, Graph), ExitCode> {
    let report = |d: Diagnostics| {
        eprintln!("{d}");
        ExitCode::FAILURE
    };
    let site = load_site(config).map_err(report)?;
    let registry = operators::registry();
    let g = match graph {
        Some(p) => Graph::load(p, &site, &registry),
        None => Graph::parse(
            crate::builtin::GRAPH_NAME,
            crate::builtin::GRAPH,
            &site,
            &registry,
        ),
    }
    .map_err(report)?;
    Ok((site, g))
}

fn graph_name(graph: Option<&Path>) -> String {
    graph.map_or(crate::builtin::GRAPH_NAME.to_string(), |p| {
        p.display().to_string()
    })
}

pub fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (site, g) = match load(args.graph.as_deref(), args.config.as_deref()) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    if let Err(e) = crate::cmd_db::db_config(args.config.as_deref()) {
        eprintln!("{e:#}");
        return Ok(ExitCode::FAILURE);
    }
    if let Some(config) = &args.config {
        let text = match &args.graph {
            Some(p) => std::fs::read_to_string(p)?,
            None => crate::builtin::GRAPH.to_string(),
        };
        for line in site_notes::notes(config, &site, &text) {
            eprintln!("{line}");
        }
    }
    let names: Vec<String> = g
        .nodes
        .iter()
        .map(|n| format!("{} ({})", n.name, n.type_name))
        .collect();
    println!(
        "{}: ok, {} nodes: {}",
        graph_name(args.graph.as_deref()),
        g.nodes.len(),
        names.join(", ")
    );
    let graph_text = match &args.graph {
        Some(p) => std::fs::read_to_string(p).unwrap_or_default(),
        None => crate::builtin::GRAPH.to_string(),
    };
    let loaded = crate::dotenv::files(args.config.as_deref());
    for line in crate::dotenv::report(&site, &graph_text, &loaded) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_graph(args: GraphArgs) -> anyhow::Result<ExitCode> {
    let (_, g) = match load(args.graph.as_deref(), args.config.as_deref()) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    print!("{}", pipeline::graph::to_dot(&g));
    Ok(ExitCode::SUCCESS)
}

pub fn run_run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let state = Some(
        args.state_dir
            .clone()
            .unwrap_or_else(|| args.common.out.join("state")),
    );
    let mut opts = options(&args.common, Mode::Live, state)?;
    opts.heartbeat = Duration::from_millis(args.heartbeat_ms.max(10));
    opts.lateness = args.lateness;
    let control = Arc::new(Control::new(
        Some(&args.common.out),
        opts.state_dir.as_deref(),
    ));
    // Before the graph loads: a second instance on the same --out stops
    // here, before it touches any output.
    // Cluster processes beyond the first get a socket of their own (they
    // may share a host and an --out).
    let path = args.control.clone().or_else(|| {
        args.common
            .process
            .filter(|&p| p > 0)
            .map(|p| args.common.out.join(format!("km3mon.p{p}.sock")))
    });
    let socket = crate::cmd_ctl::start_socket(control.clone(), path.as_deref(), &args.common.out)?;
    opts.control = Some(control);
    let r = execute(&args.common, opts, false);
    drop(socket);
    r
}

pub fn run_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let speed = match args.speed.as_str() {
        "max" => None,
        s => {
            let f: f64 = s.parse().map_err(|_| {
                anyhow::anyhow!("--speed must be `max` or a positive number, not `{s}`")
            })?;
            anyhow::ensure!(f > 0.0 && f.is_finite(), "--speed must be positive");
            Some(f)
        }
    };
    for f in &args.files {
        // FIFOs and `-` (standard input) are streams like any other.
        if f.as_os_str() == "-" {
            continue;
        }
        match std::fs::metadata(f) {
            Ok(m) if m.is_dir() => anyhow::bail!("{}: is a directory", f.display()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                anyhow::bail!("no such file: {}", f.display())
            }
            Err(e) => anyhow::bail!("{}: {e}", f.display()),
        }
    }
    let opts = options(
        &args.common,
        Mode::Replay {
            files: args.files.clone(),
            speed,
        },
        args.state_dir.clone(),
    )?;
    let mut opts = opts;
    opts.batch_seed = args.batch_seed;
    opts.start_at = args.start_at;
    opts.stop_at = args.stop_at;
    execute(&args.common, opts, args.allow_corrupt)
}

fn options(c: &Common, mode: Mode, state_dir: Option<PathBuf>) -> anyhow::Result<RunOptions> {
    let mut o = RunOptions::new(mode, c.out.clone());
    o.workers = c.workers.max(1);
    o.cluster = match (&c.hostfile, c.process) {
        (Some(h), Some(p)) => Some(Cluster::from_hostfile(h, p)?),
        _ => None,
    };
    o.state_dir = state_dir;
    o.metrics_addr = c.metrics;
    o.log_interval = c.log_interval.max(Duration::from_secs(1));
    o.queue_capacity = c.queue.max(1);
    o.state_interval = c.state_interval;
    Ok(o)
}

fn execute(c: &Common, mut opts: RunOptions, allow_corrupt: bool) -> anyhow::Result<ExitCode> {
    let (site, g) = match load(c.graph.as_deref(), c.config.as_deref()) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    opts.site_config = c.config.clone();
    opts.detector = c.detector.clone().or_else(|| site.detector_file());
    let mut db = None;
    if opts.detector.is_none() && g.nodes.iter().any(|n| n.node.needs_detector()) {
        let state = opts
            .state_dir
            .clone()
            .unwrap_or_else(|| c.out.join("state"));
        let shutdown = opts.shutdown.get_or_insert_with(Default::default).clone();
        let found =
            crate::db_graph::attach(&site, c.config.as_deref(), &opts.mode, &state, shutdown)?;
        opts.detector = found.detx;
        opts.calibration = found
            .calibration
            .map(|c| c as Arc<dyn pipeline::runtime::calibration::RunCalibration>);
        opts.detector_later = found.later;
        opts.frame_watch = Some(found.watch);
        db = Some(found.state);
    }
    if let Some(d) = &opts.detector {
        // Fail before starting rather than in the middle of a worker.
        let det = daq::detector::Detector::from_file(d)
            .map_err(|e| anyhow::anyhow!("detector {}: {e}", d.display()))?;
        tracing::info!(
            "detector {} (det_id {}, {} modules)",
            d.display(),
            det.det_id(),
            det.modules().len()
        );
    }
    let replay = matches!(opts.mode, Mode::Replay { .. });
    let metrics = Arc::new(Metrics::default());
    metrics.set_build_info(
        env!("CARGO_PKG_VERSION"),
        env!("KM3MON_GIT_COMMIT"),
        env!("KM3MON_BUILD_DATE"),
    );
    opts.metrics = Some(metrics.clone());
    if !replay {
        opts.alive = crate::sdnotify::hook();
    }
    let state_dir = opts.state_dir.clone();
    let control = opts
        .control
        .get_or_insert_with(|| Arc::new(Control::new(Some(&c.out), state_dir.as_deref())))
        .clone();
    // The chatbot answers in a live run only (a replay has no one to steer).
    let bot = if replay {
        None
    } else {
        crate::chatbot::start(c.config.as_deref(), state_dir.as_deref(), control.clone())?
    };
    let extras = bot.as_ref().map(|b| b.extras.clone()).unwrap_or_default();
    if extras.chat.is_some() && (c.no_web || (c.web.is_none() && c.config.is_none())) {
        tracing::warn!("chatbot: webhook mode needs the web server (--web or [WebServer])");
    }
    let db_line = db
        .clone()
        .map(|d| Arc::new(move || d.status()) as Arc<dyn Fn() -> String + Send + Sync>);
    let mut extras = extras;
    if c.metrics.is_none() {
        // No --metrics endpoint: the web's /metrics exports the run's series.
        extras.collectors = crate::web_status::run_collectors(&metrics);
    }
    let web = start_web(c, !replay, control.clone(), extras, db_line)?;
    let marks = replay.then(|| summary::Marks::before_run(&g, &c.out));
    let result = runtime::run(&g, opts);
    if !replay {
        crate::sdnotify::stopping();
    }
    if let Some(b) = bot {
        b.stop();
    }
    if let Some(w) = web {
        w.stop();
    }
    let report = result?;
    if let Some(db) = db {
        tracing::info!("{}", db.status());
    }
    for line in report.metrics.summary() {
        tracing::info!("{line}");
    }
    for line in report.metrics.latency_summary() {
        tracing::info!("{line}");
    }
    let mut failure = None;
    if let Some(m) = marks {
        // On stderr with the progress bar; stdout stays for data.
        for line in m.lines(&report.metrics) {
            eprintln!("{line}");
        }
        failure = summary::failure(&control.nodes(), &report.metrics, allow_corrupt);
    }
    tracing::info!(
        "finished in {:.2}s{}",
        report.elapsed.as_secs_f64(),
        if report.interrupted {
            " (interrupted)"
        } else {
            ""
        }
    );
    // The last line says why the exit status is not 0.
    Ok(match failure {
        Some(why) => {
            eprintln!("{why}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    })
}

/// The in-process web server of `run`/`replay`: on `--web ADDR`, or for a
/// live run whose `--config` has a [WebServer] section (the built-in
/// example's is not enough: two runs on one host would fight over 8080)
/// without `control_socket` (which says a separate `km3mon serve` runs).
fn start_web(
    c: &Common,
    live: bool,
    control: Arc<Control>,
    extras: web::Extras,
    db_line: Option<Arc<dyn Fn() -> String + Send + Sync>>,
) -> anyhow::Result<Option<web::BackgroundServer>> {
    if c.no_web {
        return Ok(None);
    }
    let explicit = c.web.is_some();
    let cfg = match (&c.web, &c.config) {
        (Some(addr), config) => {
            let mut cfg = match config {
                Some(p) => web::WebConfig::load(p, Some(&c.out))?,
                None => web::WebConfig::for_output(&c.out),
            };
            cfg.bind = *addr;
            cfg
        }
        (None, Some(p)) if live && has_web_section(p) => {
            let cfg = web::WebConfig::load(p, Some(&c.out))?;
            if cfg.control_socket.is_some() {
                return Ok(None);
            }
            cfg
        }
        _ => return Ok(None),
    };
    let bind = cfg.bind;
    let status = crate::web_status::in_process_status(control, db_line);
    match web::spawn_with(cfg, status, extras) {
        Ok(server) => {
            tracing::info!("web pages on http://{}/", server.addr);
            Ok(Some(server))
        }
        Err(e) if explicit => anyhow::bail!("web server: cannot listen on {bind}: {e}"),
        // The monitoring matters more than its pages: carry on without.
        Err(e) => {
            tracing::warn!(
                "web server not started: cannot listen on {bind}: {e} (--no-web silences this)"
            );
            Ok(None)
        }
    }
}

fn has_web_section(config: &Path) -> bool {
    std::fs::read_to_string(config)
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
        .is_some_and(|t| t.contains_key("WebServer"))
}
