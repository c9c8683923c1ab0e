//! The detector of `km3mon run/replay` from the KM3NeT DB when neither
//! `--detector` nor `[Detector] file` gives one and a node needs it: the
//! detector id from DETECTOR_ID (environment, `.env`, the site config's
//! `[env]`) or else the det_id of the first frame of the replayed files;
//! the layout (uncalibrated DETX) fetched now (cached under the state
//! directory), each run's calibration fetched on the run change by the
//! nodes' I/O threads through [`DbCalibration`].
//!
//! A live run without DETECTOR_ID learns the detector id from the first
//! DAQ frame the sources see ([`FrameCheck`]): a thread of its own fetches
//! the layout (retrying with back-off while the DB does not answer) and
//! then the runtime starts the nodes that need it (`runtime::later`).
//! With a detector id known, frames of another detector are reported once.
//!
//! The fetch is never on a dataflow worker. ztplot asks from its plot
//! thread: in a replay the worker waits for that thread (so the replay's
//! results do not depend on the network's speed), live the plot queue
//! absorbs the wait and overflows (counted) rather than slowing intake.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context;
use daq::detector::Detector;
use km3db::cache::Cache;
use km3db::{Client, DetectorService, Origin};
use pipeline::runtime::calibration::{FrameWatch, RunCalibration};
use pipeline::runtime::later::{DetectorLater, Found};
use pipeline::runtime::Mode;
use pipeline::site::{lookup_env, SiteConfig};

/// The run calibration of every run from the DB.
pub struct DbCalibration {
    pub service: Arc<DetectorService>,
    /// The detector's serial number when DETECTOR_ID is one.
    serial: Option<i32>,
}

impl RunCalibration for DbCalibration {
    fn for_run(&self, det_id: i32, run: i32) -> anyhow::Result<Arc<Detector>> {
        if let Some(s) = self.serial.filter(|&s| s != det_id) {
            anyhow::bail!("the data is of detector {det_id}, the DB detector is {s} (DETECTOR_ID)");
        }
        let (det, ids) = self.service.run_detector(run)?;
        tracing::info!("run {run}: calibration {} from the DB", ids.query());
        Ok(det)
    }
    fn describe(&self) -> String {
        self.service.describe()
    }
}

/// What [`attach`] found.
pub struct FromDb {
    /// The layout DETX, written under the cache folder; `None` while a
    /// live run waits for its first frame (`later` is then set).
    pub detx: Option<PathBuf>,
    pub calibration: Option<Arc<DbCalibration>>,
    pub later: Option<Arc<DetectorLater>>,
    /// Reports frames of another detector; live without DETECTOR_ID it
    /// also starts the fetch on the first frame.
    pub watch: Arc<FrameCheck>,
    pub state: Arc<DbState>,
}

/// The DB's line for the log and /status.
#[derive(Default)]
pub struct DbState {
    calibration: OnceLock<Arc<DbCalibration>>,
    note: Mutex<String>,
}

impl DbState {
    pub fn status(&self) -> String {
        match self.calibration.get() {
            Some(c) => c.service.status(),
            None => self.note.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
    fn note(&self, s: String) {
        *self.note.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
}

/// Compares each run's detector id with the one in use (warning once),
/// and — live without DETECTOR_ID — takes the first one for good.
pub struct FrameCheck {
    det: OnceLock<i32>,
    warned: AtomicBool,
    fetch: Option<LateFetch>,
}

/// What the fetch thread of a live run without DETECTOR_ID needs.
struct LateFetch {
    started: AtomicBool,
    config: Option<PathBuf>,
    cache_dir: PathBuf,
    later: Arc<DetectorLater>,
    state: Arc<DbState>,
    shutdown: Arc<AtomicBool>,
}

impl FrameWatch for FrameCheck {
    fn frame(&self, det_id: i32, run: i32) {
        let first = *self.det.get_or_init(|| det_id);
        if first != det_id && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "run {run}: the DAQ frames are of detector {det_id}, but the detector in use is {first}: \
                 its DB calibration does not fit (reported once; check DETECTOR_ID)"
            );
        }
        if let Some(f) = self.fetch.as_ref().filter(|_| first == det_id) {
            if !f.started.swap(true, Ordering::SeqCst) {
                f.start(det_id);
            }
        }
    }
}

impl LateFetch {
    /// Off the workers: a thread that fetches the layout, retrying with a
    /// doubling pause (10 s to 5 min) while the DB does not answer.
    fn start(&self, det: i32) {
        let (config, cache_dir) = (self.config.clone(), self.cache_dir.clone());
        let (later, state, shutdown) = (
            self.later.clone(),
            self.state.clone(),
            self.shutdown.clone(),
        );
        tracing::info!("detector {det} from the first DAQ frame: fetching it from the KM3NeT DB");
        state.note(format!(
            "detector {det} (from the DAQ frames): fetching from the DB"
        ));
        let spawned = std::thread::Builder::new()
            .name("db:detector".into())
            .spawn(move || {
                let mut pause = Duration::from_secs(10);
                loop {
                    match fetch(config.as_deref(), &det.to_string(), &cache_dir) {
                        Ok((path, detector, calibration)) => {
                            let _ = state.calibration.set(calibration.clone());
                            later.set(Found {
                                detx: path,
                                detector: Arc::new(detector),
                                calibration: Some(calibration as Arc<dyn RunCalibration>),
                            });
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(
                                "{e:#}; the nodes that need the detector wait; next try in {}s",
                                pause.as_secs()
                            );
                            state.note(format!(
                                "DB unreachable, the nodes that need detector {det} wait: {e:#}"
                            ));
                        }
                    }
                    let until = std::time::Instant::now() + pause;
                    while std::time::Instant::now() < until {
                        if shutdown.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    pause = (pause * 2).min(Duration::from_secs(300));
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the DB thread: {e}");
        }
    }
}

/// The detector id: DETECTOR_ID, else the first frame header of a replay;
/// `None` live (the first frame will tell).
fn detector_id(site: &SiteConfig, mode: &Mode) -> anyhow::Result<Option<(String, String)>> {
    if let Some(d) = lookup_env(site, "DETECTOR_ID").filter(|d| !d.trim().is_empty()) {
        return Ok(Some((d.trim().to_string(), "DETECTOR_ID".into())));
    }
    match mode {
        Mode::Live => return Ok(None),
        Mode::Replay { files, .. } => {
            for f in files {
                if let Some(id) = first_det_id(f) {
                    return Ok(Some((
                        id.to_string(),
                        format!("the frame headers of {}", f.display()),
                    )));
                }
            }
        }
    }
    anyhow::bail!(
        "a node of the graph needs the detector: pass --detector FILE.detx, set [Detector] file, \
         or set DETECTOR_ID (environment, .env or the site config's [env]) to fetch it from the KM3NeT DB"
    )
}

/// det_id of the first DAQ frame among the first records of a file.
fn first_det_id(path: &Path) -> Option<i32> {
    let tags: Vec<String> = [
        "IO_EVT", "IO_SUM", "IO_TSSN", "IO_TS", "IO_TSL", "IO_TSL0", "IO_TSL1", "IO_TSL2",
    ]
    .map(String::from)
    .to_vec();
    let reader = rootio::RecordReader::open_tags(path, &tags).ok()?;
    reader
        .take(1000)
        .filter_map(Result::ok)
        .find_map(|r| match r.decode() {
            Ok(daq::dump::Payload::Frame(f)) => Some(f.header().det_id),
            _ => None,
        })
}

/// The layout of `det` from the DB (or its cache), written to
/// `<cache_dir>/layout.detx`, and the run calibration service.
fn fetch(
    config: Option<&Path>,
    det: &str,
    cache_dir: &Path,
) -> anyhow::Result<(PathBuf, Detector, Arc<DbCalibration>)> {
    let cfg = crate::cmd_db::db_config(config)?;
    let url = cfg.base();
    let service = Arc::new(DetectorService::new(
        Client::from_process(cfg),
        det,
        Some(Cache::new(cache_dir)),
    ));
    let (text, origin) = service.base().with_context(|| {
        format!("detector {det} from the KM3NeT DB at {url} (or pass --detector FILE.detx)")
    })?;
    let detx = cache_dir.join("layout.detx");
    pipeline::runtime::io::write_atomic(&detx, text.as_bytes())
        .with_context(|| format!("cannot write {}", detx.display()))?;
    let model = Detector::from_file(&detx)
        .map_err(|e| anyhow::anyhow!("detector {}: {e}", detx.display()))?;
    match origin {
        Origin::Fallback(why) => {
            tracing::warn!("detector {det}: DB not reachable, running on the last good data: {why}")
        }
        Origin::Cache => tracing::info!(
            "detector {det}: cached copy of the KM3NeT DB's ({})",
            cache_dir.display()
        ),
        Origin::Db => tracing::info!("detector {det} fetched from the KM3NeT DB at {url}"),
    }
    let calibration = Arc::new(DbCalibration {
        serial: det.parse().ok(),
        service,
    });
    Ok((detx, model, calibration))
}

/// Resolves the detector from the DB; an error says what to do. Live
/// without DETECTOR_ID the answer waits for the first frame.
pub fn attach(
    site: &SiteConfig,
    config: Option<&Path>,
    mode: &Mode,
    state_dir: &Path,
    shutdown: Arc<AtomicBool>,
) -> anyhow::Result<FromDb> {
    let cache_dir = state_dir.join("db");
    let state = Arc::new(DbState::default());
    let Some((det, from)) = detector_id(site, mode)? else {
        // Fail now on a bad [DB] section rather than at the first frame.
        crate::cmd_db::db_config(config)?;
        let later = Arc::new(DetectorLater::default());
        tracing::info!(
            "no DETECTOR_ID: the nodes that need the detector start after the first DAQ frame \
             (its det_id, fetched from the KM3NeT DB)"
        );
        state.note("waiting for the first DAQ frame (no DETECTOR_ID)".into());
        let watch = Arc::new(FrameCheck {
            det: OnceLock::new(),
            warned: AtomicBool::new(false),
            fetch: Some(LateFetch {
                started: AtomicBool::new(false),
                config: config.map(Path::to_path_buf),
                cache_dir,
                later: later.clone(),
                state: state.clone(),
                shutdown,
            }),
        });
        return Ok(FromDb {
            detx: None,
            calibration: None,
            later: Some(later),
            watch,
            state,
        });
    };
    let (detx, _, calibration) =
        fetch(config, &det, &cache_dir).with_context(|| format!("detector from {from}"))?;
    let _ = state.calibration.set(calibration.clone());
    let known = OnceLock::new();
    if let Ok(n) = det.parse::<i32>() {
        let _ = known.set(n);
    }
    Ok(FromDb {
        detx: Some(detx),
        calibration: Some(calibration),
        later: None,
        watch: Arc::new(FrameCheck {
            det: known,
            warned: AtomicBool::new(false),
            fetch: None,
        }),
        state,
    })
}
