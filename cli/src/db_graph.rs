//! The detector of `km3mon run/replay` from the KM3NeT DB when neither
//! `--detector` nor `[Detector] file` gives one and a node needs it: the
//! detector id from DETECTOR_ID (environment, `.env`, the site config's
//! `[env]`) or else the det_id of the first frame of the replayed files;
//! the layout (uncalibrated DETX) fetched now (cached under the state
//! directory), each run's calibration fetched on the run change by the
//! nodes' I/O threads through [`DbCalibration`].
//!
//! The fetch is never on a dataflow worker. ztplot asks from its plot
//! thread: in a replay the worker waits for that thread (so the replay's
//! results do not depend on the network's speed), live the plot queue
//! absorbs the wait and overflows (counted) rather than slowing intake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use daq::detector::Detector;
use km3db::cache::Cache;
use km3db::{Client, DetectorService, Origin};
use pipeline::runtime::calibration::RunCalibration;
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
    /// The layout DETX, written under the cache folder.
    pub detx: PathBuf,
    pub calibration: Arc<DbCalibration>,
}

/// The detector id: DETECTOR_ID, else the first frame header of a replay.
fn detector_id(site: &SiteConfig, mode: &Mode) -> anyhow::Result<(String, String)> {
    if let Some(d) = lookup_env(site, "DETECTOR_ID").filter(|d| !d.trim().is_empty()) {
        return Ok((d.trim().to_string(), "DETECTOR_ID".into()));
    }
    if let Mode::Replay { files, .. } = mode {
        for f in files {
            if let Some(id) = first_det_id(f) {
                return Ok((
                    id.to_string(),
                    format!("the frame headers of {}", f.display()),
                ));
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

/// Resolves the detector from the DB; an error says what to do.
pub fn attach(
    site: &SiteConfig,
    config: Option<&Path>,
    mode: &Mode,
    state_dir: &Path,
) -> anyhow::Result<FromDb> {
    let (det, from) = detector_id(site, mode)?;
    let cfg = crate::cmd_db::db_config(config)?;
    let url = cfg.base();
    let cache_dir = state_dir.join("db");
    let service = Arc::new(DetectorService::new(
        Client::from_process(cfg),
        &det,
        Some(Cache::new(&cache_dir)),
    ));
    let (text, origin) = service.base().with_context(|| {
        format!("detector {det} (from {from}) from the KM3NeT DB at {url} (or pass --detector FILE.detx)")
    })?;
    let detx = cache_dir.join("layout.detx");
    pipeline::runtime::io::write_atomic(&detx, text.as_bytes())
        .with_context(|| format!("cannot write {}", detx.display()))?;
    match origin {
        Origin::Fallback(why) => {
            tracing::warn!("detector {det}: DB not reachable, running on the last good data: {why}")
        }
        Origin::Cache => tracing::info!(
            "detector {det} (from {from}): cached copy of the KM3NeT DB's ({})",
            cache_dir.display()
        ),
        Origin::Db => {
            tracing::info!("detector {det} (from {from}) fetched from the KM3NeT DB at {url}")
        }
    }
    Ok(FromDb {
        detx,
        calibration: Arc::new(DbCalibration {
            serial: det.parse().ok(),
            service,
        }),
    })
}
