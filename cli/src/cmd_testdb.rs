//! `km3mon testdb`: the stand-in KM3NeT DB (crate `testdb`) on 127.0.0.1,
//! serving the km3net-testdata samples (KM3MON_TESTDATA), to try `km3mon
//! db` and a replay with the detector from the DB without the real server.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct TestdbArgs {
    /// Port on 127.0.0.1 (0: any free one).
    #[arg(long, default_value_t = 8089)]
    port: u16,
    /// Append every request (path?query) to this file.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Calibration set of detector 44's runs from 6761 on: its PMT t0s are
    /// those of the earlier runs' set plus floor × this many ns (0: one set
    /// for all runs).
    #[arg(long, value_name = "NS", default_value_t = 0.0)]
    t0_shift: f64,
    /// Also serve this detector (e.g. a generated ARCA-230 for a
    /// benchmark): OID `D_SIM<det_id>`, its CLB map, `toashort` and
    /// base-CLB `datalognumbers`, and 26 hourly runs from --runs-from.
    #[arg(long, value_name = "FILE.detx")]
    detector: Option<PathBuf>,
    /// Start of the first run of --detector, UTC Unix seconds (default: the
    /// hour before now).
    #[arg(long, value_name = "UNIX_S", requires = "detector")]
    runs_from: Option<i64>,
}

pub fn run(args: TestdbArgs) -> anyhow::Result<ExitCode> {
    let stop = crate::signals::stop_on_signals()?;
    let mut opts = testdb::Options::from_env()?;
    opts.port = args.port;
    if args.t0_shift != 0.0 {
        for r in opts.detectors[0].runs.iter_mut().filter(|r| r.run >= 6761) {
            r.t0 = Some("T0_B".into());
        }
        opts.t0_shifts.insert("T0_B".into(), args.t0_shift);
    }
    if let Some(detx) = &args.detector {
        let det = daq::detector::Detector::from_file(detx).map_err(|e| anyhow::anyhow!("{e}"))?;
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let first = args.runs_from.unwrap_or(now_s / 3600 * 3600 - 3600);
        opts.detectors.push(testdb::DetectorSpec {
            serial: det.det_id(),
            oid: format!("D_SIM{}", det.det_id()),
            detx: detx.clone(),
            runs: (0..26)
                .map(|k| testdb::RunSpec {
                    run: 1 + k,
                    unix_start_ms: (first + 3600 * i64::from(k)) * 1000,
                    t0: None,
                    pos: None,
                    rot: None,
                })
                .collect(),
        });
    }
    let db = testdb::TestDb::start(opts)?;
    if let Some(p) = args.log {
        db.log_to(p);
    }
    println!("{}/", db.url());
    eprintln!(
        "testdb: a stand-in KM3NeT DB (not the real one; samples of km3net-testdata).\n\
         Detectors 44 (detx_v4.detx, runs 6755-6764) and 49 (D_ORCA006, detx_v5.detx).\n\
         Login: km3mon / km3mon. For km3mon (shell or .env):\n\n  \
         KM3NET_DB_URL={url}\n  KM3NET_DB_COOKIE={sid}\n\n\
         e.g. KM3NET_DB_URL={url} KM3NET_DB_COOKIE={sid} km3mon db get runs detid=44\n\
         Ctrl-C stops it.",
        url = db.url(),
        sid = db.sid()
    );
    stop.wait();
    Ok(ExitCode::SUCCESS)
}
