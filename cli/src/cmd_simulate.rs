//! `km3mon simulate`: a shore station's DAQ streams for any detector, into
//! a Ligier or a recording. Argument parsing and signal wiring only; the
//! simulator is the `simulator` crate (docs/simulator.md).

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use daq::detector::Detector;
use ligier::{ClientConfig, Speed};
use simulator::units::{format_utc, parse_duration};
use simulator::{FaultSpec, GenerateSpec, LiveConfig, SimConfig, Simulator, Start};
use tracing::info;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["detector", "generate_detector"])))]
#[command(group(clap::ArgGroup::new("sink").required(true).args(["ligier", "output", "detector_manager"]).multiple(true)))]
pub struct SimulateArgs {
    /// Detector to simulate (DETX v1–v5).
    #[arg(long, value_name = "FILE.detx")]
    detector: Option<PathBuf>,
    /// Generate a detector instead: DUSxFLOORS[xPMTS], e.g. 115x18 (ORCA
    /// building block) or 230x18 (ARCA); prefix orca: or arca: to choose
    /// the geometry (default: ARCA above 115 DUs).
    #[arg(long, value_name = "DUSxFLOORS")]
    generate_detector: Option<GenerateSpec>,
    /// Detector id of a generated detector (default 133 for ORCA, 160 for
    /// ARCA).
    #[arg(long, value_name = "N", requires = "generate_detector")]
    det_id: Option<i32>,
    /// Also save the detector as DETX v5, so that the monitors use the
    /// same one.
    #[arg(long, value_name = "FILE.detx")]
    write_detector: Option<PathBuf>,
    /// Publish live into this Ligier.
    #[arg(long, value_name = "HOST[:PORT]", conflicts_with = "output")]
    ligier: Option<String>,
    /// Write a ControlHost recording instead (readable by `km3mon dump`,
    /// `publish` and `replay`); produced as fast as possible.
    #[arg(short = 'o', long, value_name = "RECORDING")]
    output: Option<PathBuf>,
    /// Also write the true track of every muon event (JSON lines keyed by
    /// frame index and trigger counter; docs/reco.md) — with -o only.
    #[arg(long, value_name = "FILE.jsonl", requires = "output")]
    truth: Option<PathBuf>,
    /// Data time to simulate, e.g. 90s, 10m, 1h. Default: 1m into a file,
    /// endless into a Ligier.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Live pacing: 1 = real time, 10 = ten times faster, max = as fast as
    /// the Ligier takes it.
    #[arg(long, default_value = "1")]
    speed: Speed,
    /// Seed of every random draw: same options and seed, same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Data time of the first timeslice: UTC such as 2024-05-01T12:00:00Z,
    /// or "now". Default: 2024-01-01T00:00:00Z into a file (reproducible),
    /// now into a Ligier (the monitors compare data time with their clock).
    #[arg(long, value_name = "UTC|now")]
    start: Option<Start>,
    /// Number of the first run.
    #[arg(long, default_value_t = 1)]
    run: u32,
    /// Start a new run after this much data time ("none": never).
    #[arg(long, default_value = "1h", value_parser = parse_run_length)]
    run_length: RunLength,
    /// Mean rate of triggered events (IO_EVT), Hz.
    #[arg(long, value_name = "HZ", default_value_t = 50.0)]
    trigger_rate: f64,
    /// Mean time between two log lines (MSG) of one DAQ process.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    msg_interval: Duration,
    /// Mean time between two bioluminescence bursts on one DOM.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    burst_interval: Duration,
    /// Inject a fault (repeatable): KIND[@START[+DURATION]][:TARGET] with
    /// KIND one of dom-silent[:DOMID|:DU/FLOOR], du-timesync[:DU],
    /// trigger-zero, corrupt-frames[:TAG,...], ligier-disconnect,
    /// ahrs-drift[:DU] (the DU's compass headings turn 2°/min),
    /// rttc-jump[:DU] (+500 ps on --detector-manager),
    /// acoustics-silent[:DU] (km3mon demo: no TOAs of the DU). START is
    /// data time after the beginning (default 60s); DURATION defaults to
    /// the end (1s for corrupt-frames, 5s for ligier-disconnect).
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<FaultSpec>,
    /// Threads advancing the DOMs (the output is the same for any
    /// number). One thread already makes ARCA-230 about 25× real time, and
    /// on a busy machine more threads only add contention.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// Name shown in the Ligier's status (`_MyId`).
    #[arg(long, default_value = "km3mon-simulate")]
    name: String,
    /// Also serve a stand-in Detector Manager monitoring interface
    /// (`monshortdef`/`monshort`, the base CLBs' White Rabbit values of
    /// every DU) on HOST:PORT, e.g. 127.0.0.1:1302, for the rttc node.
    /// Without --ligier and -o: the stand-in alone, for --duration of wall
    /// clock (rttc-jump faults counted from the start) or until a signal.
    #[arg(long, value_name = "HOST:PORT")]
    detector_manager: Option<String>,
}

#[derive(Clone, Copy)]
struct RunLength(Option<Duration>);

fn parse_run_length(s: &str) -> Result<RunLength, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(RunLength(None));
    }
    parse_duration(s).map(|d| RunLength(Some(d).filter(|d| !d.is_zero())))
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let detector = match (&args.detector, &args.generate_detector) {
        (Some(path), _) => Detector::from_file(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        (None, Some(spec)) => spec.build(args.det_id),
        (None, None) => bail!("give --detector FILE.detx or --generate-detector DUSxFLOORS"),
    };
    if let Some(path) = &args.write_detector {
        detector
            .write_detx_file(path, 5)
            .with_context(|| format!("writing {}", path.display()))?;
        info!(path = %path.display(), "detector written");
    }
    let live = args.ligier.is_some();
    let config = SimConfig {
        detector: Arc::new(detector),
        seed: args.seed,
        start: args.start.unwrap_or(if live {
            Start::Now
        } else {
            Start::At(simulator::DEFAULT_START_NS)
        }),
        duration: args.duration.or(if live {
            None
        } else {
            Some(Duration::from_secs(60))
        }),
        run: args.run,
        run_length: args.run_length.0,
        trigger_rate_hz: args.trigger_rate,
        msg_interval: args.msg_interval,
        burst_interval: args.burst_interval,
        faults: args.faults,
        threads: args.threads,
    };
    // Built once here to report the plan (and bad fault targets) before
    // anything is written; the live runner builds its own from the config.
    let plan = Simulator::new(config.clone())?;
    let d = &config.detector;
    info!(
        det_id = d.det_id(),
        dus = d.dus().len(),
        doms = d.n_optical_modules(),
        seed = config.seed,
        start = %format_utc(plan.start_ns()),
        "simulating"
    );
    for fault in plan.faults() {
        info!("{}", fault.describe(plan.start_ns()));
    }
    let dm_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _dm = match &args.detector_manager {
        Some(addr) => {
            let dm = simulator::dm::DetectorManager::start(addr, d.dus(), config.seed)
                .with_context(|| format!("detector manager on {addr}"))?;
            info!("detector manager stand-in on http://{}", dm.addr());
            dm.play_faults(plan.faults(), plan.start_ns(), dm_stop.clone());
            Some(dm)
        }
        None => None,
    };
    let stop = crate::signals::stop_on_signals()?;
    let stats = match (&args.ligier, &args.output) {
        (Some(addr), _) => {
            drop(plan);
            let live = LiveConfig {
                sim: config,
                ligier: ClientConfig::new(ligier::with_default_port(addr)).name(args.name),
                speed: args.speed,
            };
            simulator::run_to_ligier(live, stop)?
        }
        (None, Some(path)) => {
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let mut truth = match &args.truth {
                Some(t) => Some(BufWriter::new(
                    File::create(t).with_context(|| format!("creating {}", t.display()))?,
                )),
                None => None,
            };
            // Seconds of data written, on a terminal.
            let per_second = 1_000_000_000 / simulator::config::SLICE_NS;
            let total = plan.config().duration.map_or(0, |d| d.as_secs());
            let bar = pipeline::runtime::progress::Bar::steps(total, "s of data");
            let stats = simulator::write_recording_with_progress(
                plan,
                &mut out,
                truth.as_mut().map(|w| w as &mut dyn std::io::Write),
                &stop,
                &mut |slices| bar.set_steps(slices / per_second),
            );
            bar.done();
            let stats = stats.with_context(|| format!("writing {}", path.display()))?;
            out.get_ref().sync_all().ok();
            stats
        }
        (None, None) if args.detector_manager.is_some() => {
            // The Detector Manager stand-in alone (e.g. for an rttc test):
            // served for --duration of wall clock, or until a signal.
            let until = args.duration.map(|d| std::time::Instant::now() + d);
            while !stop.is_triggered() && until.is_none_or(|u| std::time::Instant::now() < u) {
                stop.sleep(Duration::from_millis(100));
            }
            dm_stop.store(true, std::sync::atomic::Ordering::Relaxed);
            return Ok(ExitCode::SUCCESS);
        }
        (None, None) => {
            bail!("give --ligier HOST:PORT, -o RECORDING or --detector-manager HOST:PORT")
        }
    };
    info!("{}", stats.summary());
    dm_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(ExitCode::SUCCESS)
}
