//! What a node sees while it builds: the scope, its name, the run's
//! environment (mode, output and state directories, detector file, clock
//! settings, shutdown flag) and its metrics.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use timely::dataflow::{Scope, Stream};

use super::metrics::{Metrics, NodeMetrics};
use super::progress::Progress;
use super::state::StateStore;
use crate::control::{Control, NodeControl};
use crate::item::{Item, Time};

/// Every edge: batches of [`Item`]s at DAQ-time timestamps.
pub type ItemStream<'s> = Stream<'s, Time, Vec<Item>>;

/// Live from a Ligier, or replaying files.
#[derive(Debug, Clone)]
pub enum Mode {
    Live,
    Replay {
        files: Vec<PathBuf>,
        /// `None` = as fast as possible; `Some(f)` = f × real time.
        speed: Option<f64>,
    },
}

/// Settings shared by all nodes and workers of one run.
#[derive(Clone)]
pub struct RunEnv {
    pub mode: Mode,
    pub out_dir: PathBuf,
    pub state_dir: Option<PathBuf>,
    /// The site config file (`--config`), if one was given.
    pub site_config: Option<PathBuf>,
    /// DETX file from `--detector` or the site config's `[Detector] file`.
    pub detector: Option<PathBuf>,
    /// The detector of `detector`, parsed once and shared by every node.
    pub detector_model: Option<Arc<daq::detector::Detector>>,
    /// Each run's calibrated detector, when it comes from a database.
    pub calibration: Option<Arc<dyn super::calibration::RunCalibration>>,
    /// The same, fetched ahead by one I/O thread and shared: what nodes
    /// on workers ask (never the blocking `calibration` itself).
    pub calibrations: Option<Arc<super::calibration::RunCalibrations>>,
    /// How often live sources advance their capability with the wall clock.
    pub heartbeat: Duration,
    /// How far behind the wall clock live data may arrive and still be
    /// placed at its own time.
    pub lateness: Duration,
    /// Capacity of every source's ingress queue.
    pub queue_capacity: usize,
    /// Operators persist their state at least this often.
    pub state_interval: Duration,
    /// Replay with random batches and frontier steps (`--batch-seed`,
    /// see [`super::chaos`]).
    pub batch_seed: Option<u64>,
    /// Replay only (`--start-at`): records before this time are skipped.
    pub start_at: Option<Time>,
    /// Replay only (`--stop-at`): the sources stop before the first
    /// record at or after this time, and the run ends as a *stop*.
    pub stop_at: Option<Time>,
    pub shutdown: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
    pub progress: Arc<Progress>,
    /// The run's control plane (node states, silences).
    pub control: Arc<Control>,
    /// Objects the workers of this process share for one run, by key:
    /// see [`RunEnv::shared`].
    pub shared: Arc<Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>>,
}

impl RunEnv {
    /// The object under `key` for this run and process, made by the
    /// first caller (`true` with it): what a node's workers share, such
    /// as one loader feeding every worker's stage.
    pub fn shared<T: Any + Send + Sync>(
        &self,
        key: &str,
        make: impl FnOnce() -> T,
    ) -> (Arc<T>, bool) {
        let mut map = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = map.get(key).and_then(|a| a.clone().downcast::<T>().ok()) {
            return (t, false);
        }
        let t = Arc::new(make());
        map.insert(key.to_string(), t.clone());
        (t, true)
    }

    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// The run is being stopped (a signal, `km3mon ctl`'s shutdown, or a
    /// replay's `--stop-at`) rather than ending with its input.
    pub fn stopping(&self) -> bool {
        self.stop_at.is_some() || self.shutdown_requested()
    }

    /// A stop that suspends: the run stops and has a state directory, so
    /// operators persist what is open (windows, accumulators, timers)
    /// instead of flushing it, and the next run continues it (module
    /// [`crate::shell`], "Stop"). Without a state directory a stop is an
    /// end of input.
    pub fn suspends(&self) -> bool {
        self.state_dir.is_some() && self.stopping()
    }
}

pub struct BuildContext<'s> {
    pub scope: Scope<'s, Time>,
    pub node: String,
    pub env: Arc<RunEnv>,
    pub metrics: Arc<NodeMetrics>,
    /// This node's control block (state, failure reports).
    pub(crate) control: Arc<NodeControl>,
    pub(crate) io: Rc<RefCell<Vec<JoinHandle<()>>>>,
}

impl<'s> BuildContext<'s> {
    /// This worker's global index.
    pub fn index(&self) -> usize {
        self.scope.index()
    }

    pub fn peers(&self) -> usize {
        self.scope.peers()
    }

    /// The worker that owns connections, file readers and sink files.
    pub fn is_leader(&self) -> bool {
        self.index() == 0
    }

    /// Starts an I/O thread; the run joins it after the dataflow completes,
    /// so a sink's writer flushes before the process exits.
    pub fn spawn_io(&self, what: &str, f: impl FnOnce() + Send + 'static) -> anyhow::Result<()> {
        // The node's span: the thread's log lines name the node and group.
        let span = self.metrics.span();
        let h = std::thread::Builder::new()
            .name(format!("{}:{what}", self.node))
            .spawn(move || span.in_scope(f))?;
        self.io.borrow_mut().push(h);
        Ok(())
    }

    /// Reports that this node failed (its status turns `FAILED (reason)`
    /// until an operator starts it again). From an I/O thread, use a clone
    /// of [`BuildContext::node_control`].
    pub fn fail(&self, reason: impl Into<String>) {
        self.control.fail(reason);
    }

    /// This node's control block, `Send + Sync`: for I/O threads that
    /// report failures, or nodes that look at their own state.
    pub fn node_control(&self) -> Arc<NodeControl> {
        self.control.clone()
    }

    /// The run's detector, for nodes that need the layout (DOM → DU and
    /// floor, PMTs per module); an error names the missing option.
    pub fn detector(&self) -> anyhow::Result<Arc<daq::detector::Detector>> {
        self.env.detector_model.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "this node needs the detector layout: pass --detector FILE.detx or set [Detector] file in the site config"
            )
        })
    }

    /// The bounded queue to this node's writer thread: a replay blocks
    /// when it is full, live drops and counts (see `runtime::queue`).
    pub fn writer_queue<T>(
        &self,
        what: &'static str,
    ) -> (super::queue::WriterQueue<T>, crossbeam_channel::Receiver<T>) {
        super::queue::writer_queue(
            super::queue::DEFAULT_CAPACITY,
            &self.env.mode,
            self.metrics.clone(),
            what,
        )
    }

    /// A path under `--out`.
    pub fn out_path(&self, rel: &Path) -> PathBuf {
        self.env.out_dir.join(rel)
    }

    /// This node's part of the state directory.
    pub fn state(&self) -> StateStore {
        StateStore::new(
            self.env.state_dir.clone(),
            &self.node,
            self.index(),
            self.peers(),
            self.env.state_interval,
        )
    }
}
