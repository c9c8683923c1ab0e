//! Compiles a validated [`Graph`] into a timely dataflow and runs it on N
//! worker threads, or as one process of a timely cluster.

pub mod calibration;
pub mod chaos;
pub mod context;
pub mod io;
pub mod later;
pub mod metrics;
pub mod progress;
pub mod prom;
pub mod queue;
pub mod source;
pub mod split;
pub mod state;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Concatenate;
use timely::{CommunicationConfig, WorkerConfig};

use crate::control::{Control, NodeControl};
use crate::graph::Graph;
use crate::item::{Item, Time};
pub use context::{BuildContext, ItemStream, Mode, RunEnv};
use metrics::{Metrics, NodeMetrics};
use progress::{Bar, Progress};

/// Several processes running one graph (timely's cluster communication).
#[derive(Debug, Clone)]
pub struct Cluster {
    pub process: usize,
    /// `host:port` of every process, in process order.
    pub addresses: Vec<String>,
}

impl Cluster {
    /// A hostfile has one `host:port` per line; blank lines and `#`
    /// comments are ignored.
    pub fn from_hostfile(path: &std::path::Path, process: usize) -> anyhow::Result<Cluster> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read hostfile {}: {e}", path.display()))?;
        let addresses: Vec<String> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        anyhow::ensure!(
            !addresses.is_empty(),
            "hostfile {} lists no processes",
            path.display()
        );
        anyhow::ensure!(
            process < addresses.len(),
            "--process {process} but the hostfile lists {} processes",
            addresses.len()
        );
        Ok(Cluster { process, addresses })
    }
}

pub struct RunOptions {
    pub mode: Mode,
    pub workers: usize,
    pub cluster: Option<Cluster>,
    pub out_dir: PathBuf,
    pub state_dir: Option<PathBuf>,
    /// The site config file (`--config`), if one was given: state that
    /// belongs beside it (the shifters set from the chat) is found from it.
    pub site_config: Option<PathBuf>,
    pub detector: Option<PathBuf>,
    /// Each run's calibrated detector (the KM3NeT DB); `None`: the
    /// detector above for every run.
    pub calibration: Option<Arc<dyn calibration::RunCalibration>>,
    /// A live run without a detector yet: the nodes that need one (and
    /// those downstream) start once this is filled (module [`later`]).
    pub detector_later: Option<Arc<later::DetectorLater>>,
    /// Told the detector id and run of the DAQ frames on every change.
    pub frame_watch: Option<Arc<dyn calibration::FrameWatch>>,
    pub heartbeat: Duration,
    pub lateness: Duration,
    pub queue_capacity: usize,
    pub state_interval: Duration,
    /// Replay only: random batches and frontier steps from this seed
    /// ([`chaos`]; outputs must not change).
    pub batch_seed: Option<u64>,
    /// Replay only: skip records before this time ([`RunEnv::start_at`]).
    pub start_at: Option<Time>,
    /// Replay only: stop (not end) before this time ([`RunEnv::stop_at`]).
    pub stop_at: Option<Time>,
    pub metrics_addr: Option<SocketAddr>,
    pub log_interval: Duration,
    /// Draw the replay progress bar (only if stderr is a terminal).
    pub progress: bool,
    /// Install SIGINT/SIGTERM handlers (off in benchmarks and unit tests).
    pub handle_signals: bool,
    /// The registry to count into, when someone else in the process reads
    /// it too (the web server's status page in `km3mon run` and `demo`).
    pub metrics: Option<Arc<Metrics>>,
    /// A stop flag owned by the caller (`km3mon demo` stops the simulator
    /// and the Ligier on the same signal); set it to end a live run.
    pub shutdown: Option<Arc<AtomicBool>>,
    /// The control plane shared with the control socket, the web server
    /// and the chatbot; `run` creates one (audit under `out_dir`,
    /// silences in `state_dir`) when `None`. Every node is registered.
    pub control: Option<Arc<Control>>,
    /// Called from the main loop each time every worker has completed a
    /// step since the last call (so never while a worker hangs in an
    /// operator): the first call means the graph is built and running.
    /// `km3mon run` feeds systemd's watchdog from it.
    pub alive: Option<Box<dyn FnMut() + Send>>,
}

impl RunOptions {
    pub fn new(mode: Mode, out_dir: PathBuf) -> RunOptions {
        RunOptions {
            mode,
            workers: 1,
            cluster: None,
            out_dir,
            state_dir: None,
            site_config: None,
            detector: None,
            calibration: None,
            detector_later: None,
            frame_watch: None,
            heartbeat: Duration::from_millis(500),
            lateness: Duration::from_secs(5),
            queue_capacity: 10_000,
            state_interval: Duration::from_secs(60),
            batch_seed: None,
            start_at: None,
            stop_at: None,
            metrics_addr: None,
            log_interval: Duration::from_secs(60),
            progress: true,
            handle_signals: true,
            metrics: None,
            shutdown: None,
            control: None,
            alive: None,
        }
    }
}

/// What a finished run reports.
pub struct RunReport {
    pub metrics: Arc<Metrics>,
    pub elapsed: Duration,
    pub interrupted: bool,
}

/// Runs `graph` to completion (replay: end of input; live: until SIGINT or
/// SIGTERM), then joins every I/O thread so that sinks have flushed.
pub fn run(graph: &Graph, mut opts: RunOptions) -> anyhow::Result<RunReport> {
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create output directory {}: {e}",
            opts.out_dir.display()
        )
    })?;
    if let Some(d) = &opts.state_dir {
        std::fs::create_dir_all(d)
            .map_err(|e| anyhow::anyhow!("cannot create state directory {}: {e}", d.display()))?;
    }
    let shutdown = opts.shutdown.clone().unwrap_or_default();
    if opts.handle_signals {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // A second signal while shutting down exits at once.
            signal_hook::flag::register_conditional_shutdown(sig, 130, shutdown.clone())?;
            signal_hook::flag::register(sig, shutdown.clone())?;
        }
    }
    let metrics = opts.metrics.clone().unwrap_or_default();
    let control = opts
        .control
        .clone()
        .unwrap_or_else(|| Arc::new(Control::new(Some(&opts.out_dir), opts.state_dir.as_deref())));
    for n in &graph.nodes {
        let m = metrics.node(&n.name);
        m.set_span(crate::logring::node_span(&n.name, &n.group));
        control.register(&n.name, &n.type_name, &n.group, n.role, m);
    }
    metrics.attach_control(control.clone());
    if let Some(addr) = opts.metrics_addr {
        let local = metrics::serve(addr, metrics.clone())?;
        tracing::info!("metrics on http://{local}/metrics");
    }
    let progress = Arc::new(Progress::default());
    // Loaded once for all nodes and workers; a bad file fails the run
    // before anything starts.
    let detector_model = match &opts.detector {
        Some(p) => Some(Arc::new(
            daq::detector::Detector::from_file(p)
                .map_err(|e| anyhow::anyhow!("detector {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let replay = matches!(opts.mode, Mode::Replay { .. });
    let env = Arc::new(RunEnv {
        detector_model,
        mode: opts.mode.clone(),
        out_dir: opts.out_dir.clone(),
        state_dir: opts.state_dir.clone(),
        site_config: opts.site_config.clone(),
        detector: opts.detector.clone(),
        calibration: opts.calibration.clone(),
        calibrations: opts
            .calibration
            .clone()
            .map(calibration::RunCalibrations::new),
        heartbeat: opts.heartbeat,
        lateness: opts.lateness,
        queue_capacity: opts.queue_capacity,
        state_interval: opts.state_interval,
        batch_seed: opts.batch_seed,
        start_at: opts.start_at.filter(|_| replay),
        stop_at: opts.stop_at.filter(|_| replay),
        shutdown: shutdown.clone(),
        metrics: metrics.clone(),
        progress: progress.clone(),
        control: control.clone(),
        shared: Default::default(),
    });
    let late = Arc::new(match (&opts.detector_later, &env.detector_model) {
        (Some(_), None) => later::late_nodes(graph),
        _ => Default::default(),
    });
    // The environment of the late nodes, made by the first worker that
    // sees the detector.
    let late_env: Arc<OnceLock<Arc<RunEnv>>> = Arc::default();
    let detector_later = opts.detector_later.clone().filter(|_| !late.is_empty());
    let watch = {
        let (w, env, late_env) = (opts.frame_watch.clone(), env.clone(), late_env.clone());
        // Each run's calibration is asked for as soon as a source sees
        // the run, ahead of the nodes that use it.
        Arc::new(move |det: i32, run: i32| {
            if let Some(w) = &w {
                w.frame(det, run);
            }
            let late = late_env.get().and_then(|e| e.calibrations.as_ref());
            for c in env.calibrations.iter().chain(late) {
                c.request(det, run);
            }
        }) as Watch
    };
    let watching = opts.frame_watch.is_some() || opts.calibration.is_some() || !late.is_empty();
    let watch = watching.then_some(watch);

    let workers = opts.workers.max(1);
    let communication = match &opts.cluster {
        None if workers == 1 => CommunicationConfig::Thread,
        None => CommunicationConfig::Process(workers),
        Some(c) => CommunicationConfig::Cluster {
            threads: workers,
            process: c.process,
            addresses: c.addresses.clone(),
            report: false,
            zerocopy: false,
        },
    };
    // Idle workers should park, not spin: the monitoring host runs other
    // services, and a live graph is idle most of the time.
    let config = timely::Config {
        communication,
        worker: WorkerConfig::default().idle_spin(Duration::ZERO),
    };

    let graph = Arc::new(graph.clone());
    let finished = Arc::new(AtomicUsize::new(0));
    let finished_w = finished.clone();
    // Steps completed per worker (index: the worker's index in this
    // process): the main loop tells a hung worker from an idle one.
    let steps: Arc<Vec<AtomicU64>> = Arc::new((0..workers).map(|_| AtomicU64::new(0)).collect());
    let steps_w = steps.clone();
    let start = Instant::now();
    let guards = timely::execute(
        config,
        move |worker| -> Result<Vec<std::thread::JoinHandle<()>>, String> {
            let io = Rc::new(RefCell::new(Vec::new()));
            let mut bridges: HashMap<String, later::BridgeRef> = HashMap::new();
            let built = worker.dataflow::<Time, _, _>(|scope| -> anyhow::Result<()> {
                let mut streams: HashMap<String, ItemStream<'_>> = HashMap::new();
                let mut routed: Routed<'_> = HashMap::new();
                for spec in graph.nodes.iter().filter(|n| !late.contains(&n.name)) {
                    let out = build_node(
                        scope,
                        spec,
                        &graph,
                        &streams,
                        &mut routed,
                        &env,
                        &io,
                        &watch,
                    )?;
                    if let Some(o) = out {
                        split_messages(spec, &o, &graph, &late, &mut routed);
                        streams.insert(spec.name.clone(), o);
                    }
                }
                // The streams the late nodes will read.
                for spec in graph.nodes.iter().filter(|n| late.contains(&n.name)) {
                    for i in spec.inputs.iter().filter(|i| !late.contains(*i)) {
                        if bridges.contains_key(i) {
                            continue;
                        }
                        let b = later::bridge();
                        let waiting = graph
                            .nodes
                            .iter()
                            .filter(|n| late.contains(&n.name) && n.inputs.contains(i))
                            .map(|n| env.metrics.node(&n.name))
                            .collect();
                        if let Some(s) = streams.get(i) {
                            later::tap(s.clone(), b.clone(), waiting);
                        }
                        bridges.insert(i.clone(), b);
                    }
                }
                Ok(())
            });
            if let Err(e) = built {
                finished_w.fetch_add(1, Ordering::SeqCst);
                return Err(format!("{e:#}"));
            }
            let me = &steps_w[worker.index() % steps_w.len()];
            let mut waiting = detector_later.clone();
            // Parks at most 100 ms, so an idle worker still counts steps.
            while worker.step_or_park(Some(Duration::from_millis(100))) {
                me.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = waiting.clone() else {
                    continue;
                };
                let Some(found) = slot.get() else {
                    continue;
                };
                let env2 = late_env
                    .get_or_init(|| {
                        let mut e = (*env).clone();
                        e.detector = Some(found.detx.clone());
                        e.detector_model = Some(found.detector.clone());
                        e.calibration = found.calibration.clone();
                        e.calibrations = found
                            .calibration
                            .clone()
                            .map(calibration::RunCalibrations::new);
                        Arc::new(e)
                    })
                    .clone();
                waiting = None;
                let built = worker.dataflow::<Time, _, _>(|scope| -> anyhow::Result<()> {
                    let mut streams: HashMap<String, ItemStream<'_>> = bridges
                        .drain()
                        .map(|(name, b)| (name, later::bridged(scope, b)))
                        .collect();
                    for spec in graph.nodes.iter().filter(|n| late.contains(&n.name)) {
                        let out = build_node(
                            scope,
                            spec,
                            &graph,
                            &streams,
                            &mut HashMap::new(),
                            &env2,
                            &io,
                            &watch,
                        )?;
                        if let Some(o) = out {
                            streams.insert(spec.name.clone(), o);
                        }
                    }
                    Ok(())
                });
                if let Err(e) = built {
                    finished_w.fetch_add(1, Ordering::SeqCst);
                    return Err(format!("{e:#}"));
                }
                if worker.index() == 0 {
                    tracing::info!(
                        "detector {} known: {} node(s) that need it started",
                        found.detector.det_id(),
                        late.len()
                    );
                }
            }
            finished_w.fetch_add(1, Ordering::SeqCst);
            Ok(io.take())
        },
    )
    .map_err(|e| anyhow::anyhow!("cannot start timely: {e}"))?;

    let bar = (replay && opts.progress).then(Bar::new);
    let mut last_log = Instant::now();
    let mut alive = opts.alive.take();
    let mut seen: Vec<u64> = vec![0; workers];
    while finished.load(Ordering::SeqCst) < workers {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(f) = alive.as_mut() {
            let now: Vec<u64> = steps.iter().map(|s| s.load(Ordering::Relaxed)).collect();
            if now.iter().zip(&seen).all(|(n, s)| n > s) {
                seen = now;
                f();
            }
        }
        if let Some(bar) = &bar {
            bar.draw(&progress);
        }
        if last_log.elapsed() >= opts.log_interval {
            last_log = Instant::now();
            for line in metrics.summary() {
                tracing::info!("{line}");
            }
        }
    }
    if let Some(bar) = &bar {
        bar.finish(&progress);
    }
    let mut errors = Vec::new();
    let mut io_threads = Vec::new();
    for r in guards.join() {
        match r {
            Ok(Ok(handles)) => io_threads.extend(handles),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e),
        }
    }
    for h in io_threads {
        if h.join().is_err() {
            errors.push("an I/O thread panicked".to_string());
        }
    }
    if let Some(e) = errors.into_iter().next() {
        anyhow::bail!(e);
    }
    Ok(RunReport {
        metrics,
        elapsed: start.elapsed(),
        interrupted: shutdown.load(Ordering::SeqCst),
    })
}

/// Told (det_id, run) of the DAQ frames on every change.
type Watch = Arc<dyn Fn(i32, i32) + Send + Sync>;

/// An input stream made for one reader: (producer, reader) → stream.
type Routed<'s> = HashMap<(String, String), ItemStream<'s>>;

/// A node that emits only messages, read by nodes of which some want only
/// some tags ([`crate::operator::Node::message_tags`]): one split gives
/// each reader its own stream ([`split::split_by_tag`]). Nodes built
/// later (waiting for a detector) still tap the whole stream.
fn split_messages<'s>(
    spec: &crate::graph::NodeSpec,
    out: &ItemStream<'s>,
    graph: &Graph,
    late: &std::collections::HashSet<String>,
    routed: &mut Routed<'s>,
) {
    if spec.node.outputs() != [crate::item::StreamKind::Messages] {
        return;
    }
    let readers: Vec<&crate::graph::NodeSpec> = graph
        .nodes
        .iter()
        .filter(|n| !late.contains(&n.name) && n.inputs.contains(&spec.name))
        .collect();
    let wants: Vec<Option<Vec<String>>> = readers.iter().map(|n| n.node.message_tags()).collect();
    if wants.iter().all(Option::is_none) || wants.len() > 64 {
        return;
    }
    for (r, s) in readers.iter().zip(split::split_by_tag(out.clone(), wants)) {
        routed.insert((spec.name.clone(), r.name.clone()), s);
    }
}

/// Builds one node on one worker: its inputs from `streams` (filtered to
/// the kinds it accepts, concatenated, metered and gated), its output
/// metered and gated.
#[allow(clippy::too_many_arguments)]
fn build_node<'s>(
    scope: timely::dataflow::Scope<'s, Time>,
    spec: &crate::graph::NodeSpec,
    graph: &Graph,
    streams: &HashMap<String, ItemStream<'s>>,
    routed: &mut Routed<'s>,
    env: &Arc<RunEnv>,
    io: &Rc<RefCell<Vec<std::thread::JoinHandle<()>>>>,
    watch: &Option<Watch>,
) -> anyhow::Result<Option<ItemStream<'s>>> {
    let m = env.metrics.node(&spec.name);
    let gate = env.control.node(&spec.name).expect("registered above");
    let input = if spec.inputs.is_empty() {
        None
    } else {
        let accepts = spec.node.accepts();
        let mut ins: Vec<_> = spec
            .inputs
            .iter()
            .map(|i| {
                let s = routed
                    .remove(&(i.clone(), spec.name.clone()))
                    .unwrap_or_else(|| streams[i].clone());
                let outputs = graph.node(i).map(|u| u.node.outputs()).unwrap_or_default();
                if outputs.iter().all(|k| accepts.contains(k)) {
                    s
                } else {
                    only_kinds(s, accepts.clone())
                }
            })
            .collect();
        let s = if ins.len() == 1 {
            ins.pop().expect("one input")
        } else {
            scope.concatenate(ins)
        };
        // The gate: a stopped node's input is dropped here.
        Some(meter(s, m.clone(), false, Some(gate.clone()), None))
    };
    let ctx = BuildContext {
        scope,
        node: spec.name.clone(),
        env: env.clone(),
        metrics: m.clone(),
        control: gate.clone(),
        io: io.clone(),
    };
    let _span = m.span().entered();
    let out = spec.node.build(&ctx, input).map_err(|e| {
        anyhow::anyhow!("building node `{}` ({}): {e:#}", spec.name, spec.type_name)
    })?;
    // The output is gated too: a stopped source emits nothing, and a
    // stopped monitor whose windows close on the frontier does not draw
    // empty plots. Sources' outputs tell the watch about runs.
    let watch = watch.clone().filter(|_| spec.inputs.is_empty());
    Ok(out.map(|o| meter(o, m, true, Some(gate), watch)))
}

/// Keeps the items of the kinds a consumer accepts, on an edge from a node
/// that emits several kinds.
fn only_kinds<'s>(s: ItemStream<'s>, kinds: Vec<crate::item::StreamKind>) -> ItemStream<'s> {
    s.unary::<CapacityContainerBuilder<Vec<Item>>, _, _, _>(Pipeline, "kinds", move |_, _| {
        move |input, out| {
            input.for_each(|cap, data| {
                data.retain(|i| kinds.contains(&i.kind()));
                if !data.is_empty() {
                    out.session(&cap).give_container(data);
                }
            });
        }
    })
}

/// Counts records and records the frontier on an edge, passing batches
/// through untouched — unless `gate`'s node is stopped: then batches are
/// dropped and counted (`DropReason::Stopped`; in front of the node and
/// behind it), while the frontier still advances, so downstream windows
/// keep closing. (The gate lives in the
/// meter to add no operator, and so no per-timestamp cost, to the graph.)
fn meter<'s>(
    s: ItemStream<'s>,
    m: Arc<NodeMetrics>,
    output: bool,
    gate: Option<Arc<NodeControl>>,
    watch: Option<Watch>,
) -> ItemStream<'s> {
    let mut run = None;
    s.unary_frontier::<CapacityContainerBuilder<Vec<Item>>, _, _, _>(
        Pipeline,
        "meter",
        move |_cap, _info| {
            move |(input, frontier), out| {
                input.for_each(|cap, data| {
                    if let Some(w) = &watch {
                        // The first frame of a batch: runs last minutes.
                        if let Some((det, r)) = data.iter().find_map(Item::daq_run) {
                            if run != Some((det, r)) {
                                run = Some((det, r));
                                w(det, r);
                            }
                        }
                    }
                    if gate.as_ref().is_some_and(|g| g.is_stopped()) {
                        m.drop_record(metrics::DropReason::Stopped, data.len() as u64);
                        return;
                    }
                    if output {
                        m.add_out(data.len());
                    } else {
                        m.add_in(data.len());
                    }
                    out.session(&cap).give_container(data);
                });
                if output {
                    m.set_frontier(frontier.frontier().iter().min().copied());
                }
            }
        },
    )
}
