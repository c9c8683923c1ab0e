//! A stand-in KM3NeT DB web API (spec integrations.md §1): the login
//! (`home.htm?usr=…&pwd=…&persist=y` → `sid=…`), the stream index
//! (`streamds`, the km3net-testdata sample), the streams `detectors`,
//! `runs` (generated) and `clbmap` (the sample), `detx/<det>?tcal=…`
//! (the testdata DETX files, t0s shifted per calibration set), `clbmap`
//! of a generated detector (from its DETX), `integration` (each CLB's
//! compass) and `ahrscalib` (the sample), and the API
//! v2 `RunCalibration` endpoint. Every data request needs `Cookie: sid=…`
//! with an id this server issued or was given.
//!
//! No real DB can run on a test machine, so km3mon's DB tests run against
//! this one, written from the spec. It records every request and has fault
//! switches: every request answered 401/403/503, slow answers, ids
//! revoked. "Server down" is [`TestDb::stop`].
//!
//! ```no_run
//! let db = testdb::TestDb::start(testdb::Options::from_env().unwrap()).unwrap();
//! println!("KM3NET_DB_URL={} KM3NET_DB_COOKIE={}", db.url(), db.sid());
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub mod data;
mod server;

pub use data::{DetectorSpec, RunSpec};

/// What the server starts with.
#[derive(Debug, Clone)]
pub struct Options {
    /// 127.0.0.1 port; 0 = any free one.
    pub port: u16,
    /// (user, password) pairs the login accepts.
    pub users: Vec<(String, String)>,
    /// Session ids accepted from the start (besides those issued by logins).
    pub sids: Vec<String>,
    pub detectors: Vec<DetectorSpec>,
    /// t0 calibration set id → t0 shift per floor, ns (floor f: f × shift).
    pub t0_shifts: data::Shifts,
    /// Position calibration set id → the DETX of the runs calibrated with
    /// it, when their layout differs from the detector's own file (a DU
    /// renumbered, DOMs replaced).
    pub pcal_detx: std::collections::HashMap<String, PathBuf>,
    /// The run table has the calibration-set columns (else clients must
    /// ask the RunCalibration API).
    pub runs_with_calib_columns: bool,
    /// `streamds_output.txt` and `clbmap.txt` of km3net-testdata.
    pub streamds: Option<PathBuf>,
    pub clbmap: Option<PathBuf>,
    /// The `ahrscalib` stream (km3net-testdata's
    /// `streamds_ahrscalib_1605699491.txt`, or a test's own table).
    pub ahrscalib: Option<PathBuf>,
    /// CLB UPI → its compass UPI (`None`: no compass integrated). CLBs not
    /// named here get a compass of the `ahrscalib` table with a complete
    /// latest row, chosen by the CLB's serial number.
    pub compasses: std::collections::HashMap<String, Option<String>>,
    /// `toashort`: the DU whose DOMs hear no beacon (a fault), if any.
    pub toa_silent_du: Option<u32>,
}

/// The id every default server accepts (synthetic, of the valid shape).
pub const DEFAULT_SID: &str = "_km3mon_127.0.0.1_0123456789abcdef";

impl Options {
    /// The samples from `KM3MON_TESTDATA` (the DETX files and `clbmap.txt`;
    /// `streamds_output.txt` there or from the Python km3net-testdata
    /// package), user `km3mon`/`km3mon`, id [`DEFAULT_SID`].
    pub fn from_env() -> anyhow::Result<Options> {
        let td = data::testdata_dir()
            .ok_or_else(|| anyhow::anyhow!("set KM3MON_TESTDATA to the testdata folder"))?;
        Ok(Options {
            port: 0,
            users: vec![("km3mon".into(), "km3mon".into())],
            sids: vec![DEFAULT_SID.into()],
            detectors: data::default_detectors(&td),
            t0_shifts: data::Shifts::new(),
            pcal_detx: std::collections::HashMap::new(),
            runs_with_calib_columns: true,
            streamds: data::find_db_sample(Some(&td), "streamds_output.txt"),
            clbmap: data::find_db_sample(Some(&td), "clbmap.txt"),
            ahrscalib: data::find_db_sample(Some(&td), "streamds_ahrscalib_1605699491.txt"),
            compasses: std::collections::HashMap::new(),
            toa_silent_du: None,
        })
    }
}

/// One request as the server saw it (before any fault switch acted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: String,
    /// Raw query string ("" if none).
    pub query: String,
    /// The `sid` of the Cookie header, if any.
    pub sid: Option<String>,
}

impl Request {
    pub fn line(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }
}

/// A fault switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every request answered with this status (401, 403, 503, …).
    Status(u16),
}

pub(crate) struct State {
    pub opts: Options,
    pub sids: HashSet<String>,
    pub requests: Vec<Request>,
    pub fault: Fault,
    pub delay: Duration,
    pub counter: u64,
    pub log: Option<PathBuf>,
}

pub(crate) type Shared = Arc<Mutex<State>>;

pub(crate) fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running server; stops when dropped.
pub struct TestDb {
    addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestDb {
    /// Binds 127.0.0.1 and serves on a thread of its own.
    pub fn start(opts: Options) -> anyhow::Result<TestDb> {
        let state = Arc::new(Mutex::new(State {
            sids: opts.sids.iter().cloned().collect(),
            opts: opts.clone(),
            requests: Vec::new(),
            fault: Fault::None,
            delay: Duration::ZERO,
            counter: 0,
            log: None,
        }));
        let listener = std::net::TcpListener::bind(("127.0.0.1", opts.port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let app = server::router(state.clone());
        let thread = std::thread::Builder::new()
            .name("testdb".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("testdb: runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })?;
        Ok(TestDb {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first id the server accepts from the start.
    pub fn sid(&self) -> String {
        lock(&self.state)
            .opts
            .sids
            .first()
            .cloned()
            .unwrap_or_default()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// Requests whose path starts with `prefix`, as `path?query` lines.
    pub fn request_lines(&self, prefix: &str) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .map(Request::line)
            .collect()
    }

    /// Appends every request as a line to `path` from now on.
    pub fn log_to(&self, path: PathBuf) {
        lock(&self.state).log = Some(path);
    }

    pub fn set_fault(&self, f: Fault) {
        lock(&self.state).fault = f;
    }

    pub fn set_delay(&self, d: Duration) {
        lock(&self.state).delay = d;
    }

    /// Forgets every session id (they expire: 401 until a new login).
    pub fn revoke_all(&self) {
        lock(&self.state).sids.clear();
    }

    /// Accepts `sid` from now on.
    pub fn accept(&self, sid: &str) {
        lock(&self.state).sids.insert(sid.to_string());
    }

    /// Stops serving (the "server down" fault); idempotent.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.stop();
    }
}
