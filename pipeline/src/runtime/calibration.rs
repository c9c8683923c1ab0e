//! The run-calibration seam: where nodes that calibrate hits (positions,
//! t0s) get the detector of each run. `km3mon run/replay` without
//! `--detector` installs one backed by the KM3NeT DB; the framework only
//! carries it.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use daq::detector::Detector;

/// Blocking (it may ask a database): call it from an I/O thread, never
/// from a dataflow worker.
pub trait RunCalibration: Send + Sync {
    /// The detector to calibrate `run` of `det_id` with.
    fn for_run(&self, det_id: i32, run: i32) -> anyhow::Result<Arc<Detector>>;
    /// Short description for logs and plots.
    fn describe(&self) -> String;
}

/// What the sources saw: the detector id and run number of the DAQ
/// frames, reported by the runtime on every change (per worker, so maybe
/// more than once for one change). Must not block: it is called on a
/// dataflow worker.
pub trait FrameWatch: Send + Sync {
    fn frame(&self, det_id: i32, run: i32);
}

/// A run's calibration, fetched or failed.
pub type Fetched = Result<Arc<Detector>, String>;

enum Slot {
    Pending,
    Done(Fetched, Instant),
}

struct Shared {
    slots: Mutex<HashMap<(i32, i32), Slot>>,
    ready: Condvar,
}

/// Each run's calibration, fetched by one I/O thread and shared by every
/// node and worker of the run. Workers never call the (blocking)
/// [`RunCalibration`]: live they ask [`RunCalibrations::try_get`] and
/// carry on with what they have while the fetch runs; a replay waits in
/// [`RunCalibrations::wait`] so its outputs do not depend on how fast the
/// database answers. The runtime asks for a run as soon as a source sees
/// its first frame, ahead of the nodes that need it.
pub struct RunCalibrations {
    source: Arc<dyn RunCalibration>,
    shared: Arc<Shared>,
    tx: Mutex<std::sync::mpsc::Sender<(i32, i32)>>,
}

/// A live run asks again for a run whose fetch failed after this long
/// (the database may be back); a replay never does (same answer for every
/// worker and every run of the replay).
const RETRY_FAILED: Duration = Duration::from_secs(60);

impl RunCalibrations {
    pub fn new(source: Arc<dyn RunCalibration>) -> Arc<RunCalibrations> {
        let (tx, rx) = std::sync::mpsc::channel::<(i32, i32)>();
        let shared = Arc::new(Shared {
            slots: Mutex::new(HashMap::new()),
            ready: Condvar::new(),
        });
        let (s, src) = (shared.clone(), source.clone());
        // Ends when the last handle (the run's environment) is dropped.
        let spawned = std::thread::Builder::new()
            .name("calibration".into())
            .spawn(move || {
                for (det, run) in rx {
                    let got = src.for_run(det, run).map_err(|e| format!("{e:#}"));
                    if let Err(e) = &got {
                        tracing::warn!("calibration of run {run}: {e}");
                    }
                    let mut slots = s.slots.lock().unwrap_or_else(|p| p.into_inner());
                    slots.insert((det, run), Slot::Done(got, Instant::now()));
                    s.ready.notify_all();
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the calibration thread: {e}");
        }
        Arc::new(RunCalibrations {
            source,
            shared,
            tx: Mutex::new(tx),
        })
    }

    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// Starts fetching `run` unless it is fetched or on its way; never
    /// blocks. `retry`: ask again for a run that failed a while ago.
    fn request_with(&self, det_id: i32, run: i32, retry: bool) {
        let mut slots = self.shared.slots.lock().unwrap_or_else(|p| p.into_inner());
        let ask = match slots.get(&(det_id, run)) {
            None => true,
            Some(Slot::Done(Err(_), at)) => retry && at.elapsed() >= RETRY_FAILED,
            Some(_) => false,
        };
        if ask {
            slots.insert((det_id, run), Slot::Pending);
            let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            if tx.send((det_id, run)).is_err() {
                slots.insert(
                    (det_id, run),
                    Slot::Done(
                        Err("the calibration thread is not running".into()),
                        Instant::now(),
                    ),
                );
            }
        }
    }

    /// Starts fetching `run` (see [`RunCalibrations::try_get`]).
    pub fn request(&self, det_id: i32, run: i32) {
        self.request_with(det_id, run, false)
    }

    /// The run's calibration if it is there (`None`: still on its way;
    /// the fetch is started if nobody asked yet). For live runs.
    pub fn try_get(&self, det_id: i32, run: i32) -> Option<Fetched> {
        self.request_with(det_id, run, true);
        let slots = self.shared.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.get(&(det_id, run)) {
            Some(Slot::Done(r, _)) => Some(r.clone()),
            _ => None,
        }
    }

    /// The run's calibration, waiting for the fetch. For replays: the
    /// answer is the same whenever the worker asks.
    pub fn wait(&self, det_id: i32, run: i32) -> Fetched {
        self.request(det_id, run);
        let mut slots = self.shared.slots.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(Slot::Done(r, _)) = slots.get(&(det_id, run)) {
                return r.clone();
            }
            slots = self
                .shared
                .ready
                .wait(slots)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Slow(AtomicUsize);
    impl RunCalibration for Slow {
        fn for_run(&self, det_id: i32, run: i32) -> anyhow::Result<Arc<Detector>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            anyhow::ensure!(run != 2, "run {run} of {det_id} has no calibration");
            Ok(Arc::new(Detector::new(det_id, 3, Vec::new())?))
        }
        fn describe(&self) -> String {
            "slow".into()
        }
    }

    #[test]
    fn one_fetch_per_run_live_does_not_wait_and_a_replay_does() {
        let src = Arc::new(Slow(AtomicUsize::new(0)));
        let c = RunCalibrations::new(src.clone());
        // Live: the first answer is "not yet", and asking again does not
        // ask the database again.
        assert!(c.try_get(44, 1).is_none());
        assert!(c.try_get(44, 1).is_none());
        assert!(c.wait(44, 1).is_ok());
        assert!(c.try_get(44, 1).is_some_and(|r| r.is_ok()));
        let e = c.wait(44, 2).unwrap_err();
        assert!(e.contains("run 2 of 44 has no calibration"), "{e}");
        // A failure is not asked again at once.
        assert!(c.try_get(44, 2).is_some_and(|r| r.is_err()));
        assert_eq!(src.0.load(Ordering::SeqCst), 2);
    }
}
