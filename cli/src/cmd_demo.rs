//! `km3mon demo`: the whole suite on 127.0.0.1 in one process — a Ligier,
//! the simulator publishing live into it, the full `graphs/km3mon.toml`
//! and the web server — with nothing configured by hand (docs/demo.md).
//!
//! Everything the demo needs is written into its directory first (the
//! detector, the site config, the graph), so that a user can stop the demo
//! and rerun any piece by hand with the same files.

use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use daq::detector::Detector;
use ligier::{ClientConfig, Ligier, LigierConfig, Shutdown, Speed};
use pipeline::control::Control;
use pipeline::runtime::{self, metrics::Metrics, Mode, RunOptions};
use pipeline::site::SiteConfig;
use pipeline::Graph;
use simulator::{FaultSpec, GenerateSpec, LiveConfig, SimConfig, Start};
use tracing::{info, warn};

// The graph the demo runs, built in so that the demo works from any
// working directory.
use crate::builtin::GRAPH;

/// The demo redraws every plot at least this often (s of data time); the
/// example config's 300 s trigger-rate bins and 60 s trigger map would
/// leave the overview page empty for minutes.
const DEMO_INTERVAL_S: i64 = 10;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Web server port on 127.0.0.1; a free one is chosen (and printed) when
    /// it is taken.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Where everything goes (plots/, data/, logs/, state/, the detector and
    /// the generated site config); default: a new folder in the temp dir.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Detector to simulate and monitor (DETX v1–v5).
    #[arg(long, value_name = "FILE.detx", conflicts_with = "generate_detector")]
    detector: Option<PathBuf>,
    /// Generate the detector instead: DUSxFLOORS (see `km3mon simulate`).
    /// 12x18 is 216 DOMs: a small detector that a laptop runs in real time.
    #[arg(long, value_name = "DUSxFLOORS", default_value = "12x18")]
    generate_detector: GenerateSpec,
    /// Site config to start from (default: the built-in example). Its
    /// Ligier addresses, detector and output folder are replaced by the
    /// demo's; its [WebServer] password is kept unless it is the example's.
    #[arg(long, value_name = "SITE")]
    config: Option<PathBuf>,
    /// Inject a fault into the simulated stream (repeatable; the syntax of
    /// `km3mon simulate --fault`), e.g. dom-silent@30s.
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<FaultSpec>,
    /// Simulation pacing: 1 = real time (the monitors compare data time
    /// with the wall clock, so faster runs ahead of it).
    #[arg(long, default_value = "1")]
    speed: Speed,
    /// Mean rate of triggered events, Hz.
    #[arg(long, value_name = "HZ", default_value_t = 50.0)]
    trigger_rate: f64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Worker threads of the pipeline.
    #[arg(short = 'w', long = "workers", value_name = "N", default_value_t = 1)]
    workers: usize,
    /// The control socket for `km3mon ctl` (mode 0600); default DIR/km3mon.sock.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// A Rocket.Chat server for alerts and the chatbot (REST mode), e.g.
    /// the `km3mon testchat` at http://127.0.0.1:3000: bot `monitoring`
    /// (password `monitoring` unless the site config has one), channel
    /// --chat-channel, operators from the config (the example's:
    /// operator1, operator2). See docs/chatbot.md.
    #[arg(long, value_name = "URL")]
    chat_url: Option<String>,
    /// With --chat-url: the channel for alerts and commands (testchat's
    /// page opens on `operations`).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "operations",
        requires = "chat_url"
    )]
    chat_channel: String,
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = demo_dir(args.dir.as_deref())?;
    // The control socket first: a demo already running in DIR answers on
    // it, and this one must stop before it rewrites any of that demo's
    // files (its password, its Ligier port, its detector).
    let control = Arc::new(Control::new(Some(&dir), Some(&dir.join("state"))));
    let socket = crate::cmd_ctl::start_socket(control.clone(), args.control.as_deref(), &dir)?;
    let detector = match &args.detector {
        Some(p) => Detector::from_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => args.generate_detector.build(None),
    };
    let detx = dir.join("detector.detx");
    detector
        .write_detx_file(&detx, 5)
        .with_context(|| format!("writing {}", detx.display()))?;

    // Signals first: a Ctrl-C at any later point stops everything cleanly;
    // a second one exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }

    let ligier = Ligier::start(LigierConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        status_interval: None,
        release_memory: Some(crate::release_free_memory),
        ..LigierConfig::default()
    })
    .context("cannot start the Ligier")?;
    let ligier_addr = ligier.local_addr();

    // The RTTC tab's source: a stand-in Detector Manager for the DUs.
    let dm = simulator::dm::DetectorManager::start("127.0.0.1:0", detector.dus(), args.seed)
        .context("cannot start the Detector Manager stand-in")?;
    // `--fault rttc-jump…` acts on it (the same targets as the simulator's:
    // same detector, seed and order).
    let faults = simulator::fault::resolve(&args.faults, &detector, args.seed, 0)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    dm.play_faults(&faults, 0, stop.clone());
    // The Acoustics tab's source: a stand-in KM3NeT DB serving `toashort`
    // (beacon pings) for this detector, runs hourly around now.
    let silent = faults.iter().find_map(|f| match (f.kind, &f.target) {
        (simulator::FaultKind::AcousticsSilent, simulator::fault::ResolvedTarget::Du(du)) => {
            Some(*du)
        }
        _ => None,
    });
    let db = start_testdb(&detector, &detx, silent)?;
    let site_path = dir.join("pipeline.toml");
    let creds = write_site_config(&args, &site_path, &dir, &detx, ligier_addr, dm.addr())?;
    point_at_testdb(&site_path, &db)?;
    let graph_path = dir.join("km3mon.toml");
    std::fs::write(&graph_path, GRAPH)
        .with_context(|| format!("writing {}", graph_path.display()))?;
    let site = SiteConfig::load(&site_path).map_err(|d| anyhow::anyhow!("{d}"))?;
    let graph = Graph::load(&graph_path, &site, &operators::registry())
        .map_err(|d| anyhow::anyhow!("{d}"))?;

    let metrics = Arc::new(Metrics::default());
    metrics.set_build_info(
        env!("CARGO_PKG_VERSION"),
        env!("KM3MON_GIT_COMMIT"),
        env!("KM3MON_BUILD_DATE"),
    );
    let bot = crate::chatbot::start(Some(&site_path), Some(&dir.join("state")), control.clone())?;
    let mut extras = bot.as_ref().map(|b| b.extras.clone()).unwrap_or_default();
    extras.collectors = crate::web_status::run_collectors(&metrics);
    let web = start_web(&site_path, &dir, args.port, control.clone(), extras)?;
    info!(
        "demo: {} DOMs, Ligier on {ligier_addr}, everything under {}",
        detector.n_optical_modules(),
        dir.display()
    );
    // The one line on stdout, for people and scripts.
    println!(
        "http://{}/  user {}  password {}",
        web.addr, creds.0, creds.1
    );

    let sim_stop = Shutdown::new();
    let sim = start_simulator(&args, detector, ligier_addr, sim_stop.clone(), stop.clone())?;

    let mut opts = RunOptions::new(Mode::Live, dir.clone());
    opts.workers = args.workers.max(1);
    opts.detector = Some(detx);
    opts.state_dir = Some(dir.join("state"));
    // Alert texts read the shifters the chatbot stores beside it.
    opts.site_config = Some(site_path.clone());
    opts.metrics = Some(metrics);
    opts.control = Some(control);
    opts.shutdown = Some(stop.clone());
    opts.handle_signals = false;
    let result = runtime::run(&graph, opts);

    // The pipeline has flushed its sinks; now stop the producers and the
    // server in the reverse order of their start.
    stop.store(true, Ordering::SeqCst);
    sim_stop.trigger();
    if sim.join().is_err() {
        warn!("demo: the simulator thread panicked");
    }
    if let Some(b) = bot {
        b.stop();
    }
    web.stop();
    drop(socket);
    ligier.shutdown();
    let report = result?;
    for line in report.metrics.summary() {
        info!("{line}");
    }
    info!("demo stopped; outputs kept in {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `--dir` (created) or a new folder in the temp dir, mode 0700: it holds
/// the web password and the control socket, and the temp dir is shared.
fn demo_dir(dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt as _};
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("km3mon-demo-{}", std::process::id())),
    };
    if dir.is_dir() {
        // The user's own folder keeps its mode (it may be their working
        // directory); the secrets in it are 0600 anyway.
        let mode = std::fs::metadata(&dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            warn!(
                "demo: {} is readable by other users (mode {:o}); its plots and logs are too",
                dir.display(),
                mode & 0o777
            );
        }
    } else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    // Absolute, because the site config written there must not depend on
    // the working directory of whoever reruns a piece of it.
    Ok(std::fs::canonicalize(&dir)?)
}

/// Writes the demo's site config: the chosen one (or the example) with the
/// Ligier, detector and output folder of this demo, short plot intervals,
/// and credentials. Returns (user, password).
/// Identity AHRS constants for every optical DOM of the detector (the
/// file format of docs/monitors.md "AHRS calibration").
fn write_ahrs_constants(detx: &Path, path: &Path) -> anyhow::Result<()> {
    let det = Detector::from_file(detx).map_err(|e| anyhow::anyhow!("{e}"))?;
    let q = ["X", "Y", "Z"];
    let mut cols = vec!["DOMID".to_string()];
    let mut ident = Vec::new();
    for a in q {
        cols.push(format!("ACC_OFFSET_{a}"));
        ident.push("0");
    }
    for a in q {
        cols.push(format!("MAG_{a}MIN"));
        cols.push(format!("MAG_{a}MAX"));
        ident.extend(["0", "0"]);
    }
    for m in ["ACC", "MAG"] {
        for i in q {
            for j in q {
                cols.push(format!("{m}_ROT_{i}{j}"));
                ident.push(if i == j { "1" } else { "0" });
            }
        }
    }
    let mut text = cols.join("\t") + "\n";
    for m in det.optical_modules() {
        text.push_str(&format!("{}\t{}\n", m.dom_id, ident.join("\t")));
    }
    pipeline::runtime::io::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `testdb` with the demo's detector (OID `D_DEMO`, its det_id as serial)
/// and runs every hour from 1 h before now to a day after; `silent_du`
/// (fault `acoustics-silent`) hears no beacon.
fn start_testdb(
    detector: &Detector,
    detx: &Path,
    silent_du: Option<u32>,
) -> anyhow::Result<testdb::TestDb> {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let first = now_s / 3600 * 3600 - 3600;
    let runs = (0..26)
        .map(|k| testdb::RunSpec {
            run: 1 + k,
            unix_start_ms: (first + 3600 * i64::from(k)) * 1000,
            t0: None,
            pos: None,
            rot: None,
        })
        .collect();
    let opts = testdb::Options {
        port: 0,
        users: Vec::new(),
        sids: vec![testdb::DEFAULT_SID.into()],
        detectors: vec![testdb::DetectorSpec {
            serial: detector.det_id(),
            oid: "D_DEMO".into(),
            detx: detx.to_path_buf(),
            runs,
        }],
        t0_shifts: Default::default(),
        runs_with_calib_columns: false,
        streamds: None,
        clbmap: None,
        ahrscalib: None,
        compasses: Default::default(),
        toa_silent_du: silent_du,
    };
    testdb::TestDb::start(opts).context("cannot start the KM3NeT DB stand-in")
}

/// `[DB]` of the demo's site config → the stand-in; `[Acoustics]`: one
/// cycle per 600 s of data time for the window just ended (the stand-in's
/// TOAs are there at once).
fn point_at_testdb(site: &Path, db: &testdb::TestDb) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(site)?;
    let mut doc: toml::Table = toml::from_str(&text)?;
    let t = section(&mut doc, "DB");
    t.insert("url".into(), db.url().into());
    t.insert("cookie".into(), db.sid().into());
    t.insert("retries".into(), 0.into());
    let a = section(&mut doc, "Acoustics");
    a.insert("delay".into(), 0.into());
    a.insert("db".into(), true.into());
    std::fs::write(site, toml::to_string(&doc)?)?;
    if std::env::var_os("KM3NET_DB_URL").is_some() {
        warn!("demo: ignoring KM3NET_DB_URL from the environment");
        std::env::set_var("KM3NET_DB_URL", db.url());
    }
    Ok(())
}

fn write_site_config(
    args: &DemoArgs,
    path: &Path,
    dir: &Path,
    detx: &Path,
    ligier: SocketAddr,
    dm: SocketAddr,
) -> anyhow::Result<(String, String)> {
    let text = match &args.config {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => pipeline::site::EXAMPLE.to_string(),
    };
    let mut doc: toml::Table = toml::from_str(&text).context("site config: invalid TOML")?;
    let (ip, port) = (ligier.ip().to_string(), ligier.port().to_string());
    let dm = dm.to_string();
    for (key, value) in [
        ("DAQ_LIGIER_IP", &ip),
        ("DAQ_LIGIER_PORT", &port),
        ("LOG_LIGIER_IP", &ip),
        ("LOG_LIGIER_PORT", &port),
        ("DETECTOR_MANAGER_IP", &dm),
    ] {
        section(&mut doc, "env").insert(key.into(), value.clone().into());
        // The process environment wins over [env]; a variable left over
        // from a real site would point the demo at the real Ligier.
        if std::env::var_os(key).is_some() {
            warn!("demo: ignoring {key} from the environment");
            std::env::set_var(key, value);
        }
    }
    section(&mut doc, "Detector").insert("file".into(), path_value(detx));
    // No KM3NeT DB here: the compasses of the simulated DOMs are ideal
    // (identity constants, the simulator's readings are calibrated ones).
    let constants = dir.join("ahrs_constants.tsv");
    write_ahrs_constants(detx, &constants)?;
    let ahrs = section(&mut doc, "CalibrateAHRS");
    ahrs.insert("db".into(), false.into());
    ahrs.insert("constants".into(), path_value(&constants));
    // Nor a DB baseline for the RTTC: the stand-in DM's samples build it.
    section(&mut doc, "RTTC").insert("db".into(), false.into());
    for (sec, key) in [
        ("DOMRates", "interval"),
        ("DOMActivity", "interval"),
        ("PMTRates", "interval"),
        ("TriggerRate", "interval"),
        ("TriggerMap", "plot_every"),
        ("CalibrateAHRS", "interval"),
    ] {
        let t = section(&mut doc, sec);
        let shorter = match t.get(key).and_then(toml::Value::as_integer) {
            Some(v) if v <= DEMO_INTERVAL_S => v,
            _ => DEMO_INTERVAL_S,
        };
        t.insert(key.into(), shorter.into());
    }
    if let Some(url) = &args.chat_url {
        let alerts = section(&mut doc, "Alerts");
        alerts.insert("enabled".into(), true.into());
        if matches!(
            alerts.get("password").and_then(toml::Value::as_str),
            None | Some("change-me")
        ) {
            // `km3mon testchat`'s bot account.
            alerts.insert("password".into(), "monitoring".into());
        }
        alerts.insert("channel".into(), args.chat_channel.clone().into());
        let chat = section(alerts, "chat");
        chat.insert("mode".into(), "rest".into());
        chat.insert("url".into(), url.clone().into());
    }
    let web = section(&mut doc, "WebServer");
    web.insert("output_dir".into(), path_value(dir));
    for k in ["plots_dir", "logs_dir", "data_dir", "bind"] {
        web.remove(k);
    }
    let user = match web.get("username").and_then(toml::Value::as_str) {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => "km3net".to_string(),
    };
    let password = match web.get("password").and_then(toml::Value::as_str) {
        Some(p) if !p.is_empty() && p != "change-me" => p.to_string(),
        _ => generate_password(),
    };
    web.insert("username".into(), user.clone().into());
    web.insert("password".into(), password.clone().into());
    let header = "# Written by `km3mon demo`; rerun pieces by hand with\n\
                  #   km3mon run --graph km3mon.toml --config pipeline.toml --out .\n";
    let body = toml::to_string(&doc).context("serialising the site config")?;
    // It holds the web password: readable by its owner only.
    pipeline::runtime::io::write_atomic_private(path, format!("{header}{body}").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((user, password))
}

/// The table `name` of `doc`, created if missing.
fn section<'a>(doc: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    let v = doc
        .entry(name.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !v.is_table() {
        *v = toml::Value::Table(toml::Table::new());
    }
    v.as_table_mut().expect("a table")
}

fn path_value(p: &Path) -> toml::Value {
    p.display().to_string().into()
}

/// 16 characters from the OS's random source (no crate needed for this);
/// the clock and pid only if /dev/urandom is missing.
fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !ok {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        let mut x = seed | 1;
        for b in &mut bytes {
            // xorshift: enough to avoid a fixed password, nothing more.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// The web server on 127.0.0.1:`port`, or on a free port when that one is
/// taken (a second demo, or a real `km3mon serve`).
fn start_web(
    site: &Path,
    dir: &Path,
    port: u16,
    control: Arc<Control>,
    extras: web::Extras,
) -> anyhow::Result<web::BackgroundServer> {
    let mut cfg = web::WebConfig::load(site, Some(dir))?;
    cfg.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let status = crate::web_status::in_process_status(control, None);
    match web::spawn_with(cfg.clone(), status.clone(), extras.clone()) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && port != 0 => {
            cfg.bind.set_port(0);
            let s = web::spawn_with(cfg, status, extras).context("cannot start the web server")?;
            eprintln!(
                "km3mon demo: port {port} is taken, serving on {} instead",
                s.addr.port()
            );
            Ok(s)
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on 127.0.0.1:{port}")),
    }
}

/// The simulator on its own thread, publishing from now on. If it fails,
/// the whole demo stops (a demo without data is no demo).
fn start_simulator(
    args: &DemoArgs,
    detector: Detector,
    ligier: SocketAddr,
    sim_stop: Shutdown,
    demo_stop: Arc<AtomicBool>,
) -> anyhow::Result<thread::JoinHandle<()>> {
    let config = SimConfig {
        detector: Arc::new(detector),
        seed: args.seed,
        start: Start::Now,
        duration: None,
        run: 1,
        run_length: Some(Duration::from_secs(3600)),
        trigger_rate_hz: args.trigger_rate,
        msg_interval: Duration::from_secs(30),
        burst_interval: Duration::from_secs(15 * 60),
        faults: args.faults.clone(),
        threads: 1,
    };
    // Bad fault targets fail here, before anything runs.
    simulator::Simulator::new(config.clone())?;
    let live = LiveConfig {
        sim: config,
        ligier: ClientConfig::new(ligier.to_string()).name("km3mon-demo-simulator"),
        speed: args.speed,
    };
    Ok(thread::Builder::new()
        .name("simulator".into())
        .spawn(move || {
            match simulator::run_to_ligier(live, sim_stop) {
                Ok(stats) => info!("simulator: {}", stats.summary()),
                Err(e) => tracing::error!("simulator: {e}"),
            }
            demo_stop.store(true, Ordering::SeqCst);
        })?)
}
