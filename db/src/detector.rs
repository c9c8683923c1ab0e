//! The detector of a shore station from the DB: the uncalibrated layout
//! (refreshed per `[DB] refresh_hours`) and each run's calibrated DETX
//! (the run table's calibration set ids, or the RunCalibration API), with
//! the disk cache as the fallback when the DB cannot be reached.
//!
//! Blocking: call it from an I/O thread, never from a dataflow worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use daq::detector::Detector;

use crate::cache::{human_age, Cache};
use crate::client::Client;
use crate::error::DbError;
use crate::runs::{CalibIds, RunRow};

/// Where an answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Db,
    /// Cached and still fresh enough not to ask.
    Cache,
    /// Cached, used because the DB failed (the reason).
    Fallback(String),
}

pub struct DetectorService {
    /// Serial number ("44") or OID ("D_ORCA006"), as configured.
    pub(crate) det: String,
    client: Mutex<Client>,
    pub(crate) cache: Option<Cache>,
    ids: Mutex<HashMap<i32, CalibIds>>,
    status: Mutex<String>,
}

impl DetectorService {
    pub fn new(client: Client, det: &str, cache: Option<Cache>) -> DetectorService {
        DetectorService {
            det: det.trim().to_string(),
            client: Mutex::new(client),
            cache,
            ids: Mutex::new(HashMap::new()),
            status: Mutex::new("DB: nothing fetched yet".into()),
        }
    }

    pub fn det(&self) -> &str {
        &self.det
    }

    pub fn describe(&self) -> String {
        let base = self.client().base_url().to_string();
        format!("KM3NeT DB {base}, detector {}", self.det)
    }

    /// The last thing that happened, one line (for the log and /status).
    pub fn status(&self) -> String {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_status(&self, s: String) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    pub(crate) fn client(&self) -> std::sync::MutexGuard<'_, Client> {
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn key(&self, what: &str) -> String {
        let det: String = self
            .det
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{det}/{what}")
    }

    /// The uncalibrated detector (`tcal=0&pcal=0&rcal=0`): the layout.
    /// Fresh cache → no request; else the DB; on failure a cache of any
    /// age, with a warning.
    pub fn base(&self) -> anyhow::Result<(String, Origin)> {
        let key = self.key("detector.detx");
        let refresh = self.client().config().refresh();
        let cached = self.cache.as_ref().and_then(|c| c.get(&key));
        if let Some(e) = cached.as_ref().filter(|e| e.age < refresh) {
            if parse(&e.text, &e.path.display().to_string()).is_ok() {
                return Ok((e.text.clone(), Origin::Cache));
            }
        }
        let fetched = self.client().detx(&self.det, &CalibIds::default());
        match fetched.map_err(anyhow::Error::from).and_then(|t| {
            parse(&t, &format!("DB detx/{}", self.det))?;
            Ok(t)
        }) {
            Ok(text) => {
                if let Some(c) = &self.cache {
                    c.put(&key, &text);
                }
                self.set_status(format!("DB ok: detector {} fetched", self.det));
                Ok((text, Origin::Db))
            }
            Err(e) => match cached {
                Some(c) => {
                    let why = format!(
                        "{e:#}; using the cached detector {} ({} old)",
                        c.path.display(),
                        human_age(c.age)
                    );
                    tracing::warn!("DB: {why}");
                    self.set_status(format!("DB unreachable, cached detector in use: {e:#}"));
                    Ok((c.text, Origin::Fallback(why)))
                }
                None => Err(e.context(format!(
                    "detector {} from the DB (nothing cached)",
                    self.det
                ))),
            },
        }
    }

    /// The calibration set ids of `run`: the run table (one request per
    /// run change), else the RunCalibration API when the table has no
    /// calibration columns; cached on disk.
    pub fn calib_ids(&self, run: i32) -> anyhow::Result<(CalibIds, Origin)> {
        if let Some(ids) = self.ids.lock().unwrap_or_else(|e| e.into_inner()).get(&run) {
            return Ok((ids.clone(), Origin::Cache));
        }
        let key = self.key(&format!("runs/{run}.ids"));
        let fetched = self.fetch_ids(run);
        let (ids, origin) = match fetched {
            Ok(ids) => {
                if let Some(c) = &self.cache {
                    c.put(&key, &ids.query());
                }
                (ids, Origin::Db)
            }
            Err(e) if e.is_outage() => {
                let Some(c) = self.cache.as_ref().and_then(|c| c.get(&key)) else {
                    return Err(anyhow::Error::from(e)
                        .context(format!("calibration set ids of run {run} (nothing cached)")));
                };
                let ids = ids_from_query(&c.text);
                let why = format!("{e}; using the cached calibration ids of run {run}");
                tracing::warn!("DB: {why}");
                (ids, Origin::Fallback(why))
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!("calibration of run {run}")))
            }
        };
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run, ids.clone());
        Ok((ids, origin))
    }

    fn fetch_ids(&self, run: i32) -> Result<CalibIds, DbError> {
        let rows = self.client().runs(&self.det, Some(run))?;
        let row: Option<&RunRow> = rows.iter().find(|r| r.run == run);
        match row {
            Some(r) if r.has_calib_columns => Ok(r.calib_ids()),
            Some(_) => {
                let oid = match self.det.parse::<i32>() {
                    Ok(serial) => self.client().detector_oid(serial)?,
                    Err(_) => self.det.clone(),
                };
                self.client().run_calibration(&oid, run)
            }
            None => Err(DbError::NoData(format!(
                "run {run} in the run table of detector {}",
                self.det
            ))),
        }
    }

    /// The calibrated DETX text of `run`. A DETX of given calibration ids
    /// never changes, so a cached one is used without asking.
    pub fn run_detx(&self, run: i32) -> anyhow::Result<(String, CalibIds, Origin)> {
        let (ids, origin) = self.calib_ids(run).inspect_err(|e| {
            self.set_status(format!("DB: calibration of run {run} not fetched: {e:#}"));
        })?;
        if let Origin::Fallback(why) = &origin {
            self.set_status(format!(
                "DB unreachable, cached calibration of run {run} in use: {why}"
            ));
        }
        let key = self.key(&format!("detx/{}.detx", ids.key()));
        if let Some(c) = self.cache.as_ref().and_then(|c| c.get(&key)) {
            if parse(&c.text, &c.path.display().to_string()).is_ok() {
                // The DB answered for the run: say so, or /status would
                // keep showing an older failure.
                if matches!(origin, Origin::Db) {
                    self.set_status(format!(
                        "DB ok: run {run} calibrated with {} (DETX cached)",
                        ids.query()
                    ));
                }
                return Ok((c.text, ids, origin));
            }
        }
        let text = self.client().detx(&self.det, &ids).map_err(|e| {
            self.set_status(format!("DB: calibration of run {run} not fetched: {e}"));
            anyhow::Error::from(e).context(format!("DETX of run {run} ({})", ids.query()))
        })?;
        parse(&text, &format!("DB detx/{}?{}", self.det, ids.query()))?;
        if let Some(c) = &self.cache {
            c.put(&key, &text);
        }
        self.set_status(format!("DB ok: run {run} calibrated with {}", ids.query()));
        Ok((text, ids, origin))
    }

    /// [`DetectorService::run_detx`], parsed.
    pub fn run_detector(&self, run: i32) -> anyhow::Result<(Arc<Detector>, CalibIds)> {
        let (text, ids, _) = self.run_detx(run)?;
        let det = parse(&text, &format!("DB detx/{}?{}", self.det, ids.query()))?;
        Ok((Arc::new(det), ids))
    }
}

fn ids_from_query(q: &str) -> CalibIds {
    let mut ids = CalibIds::default();
    for part in q.trim().split('&') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        match k {
            "tcal" => ids.tcal = v.to_string(),
            "pcal" => ids.pcal = v.to_string(),
            "rcal" => ids.rcal = v.to_string(),
            "acal" => ids.extra.push(("acal", v.to_string())),
            "ccal" => ids.extra.push(("ccal", v.to_string())),
            "scal" => ids.extra.push(("scal", v.to_string())),
            _ => {}
        }
    }
    ids
}

pub fn parse(text: &str, name: &str) -> anyhow::Result<Detector> {
    Detector::parse(text, name).map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_the_cache_text() {
        let mut ids = CalibIds::new(Some("A1"), None, Some("R"));
        ids.extra.push(("acal", "9".into()));
        assert_eq!(ids_from_query(&ids.query()), ids);
    }
}
