//! A live run and the KM3NeT DB, end to end: a real Ligier on 127.0.0.1,
//! the simulator publishing detector 44 (runs 6760, 6761, … of 8 s each),
//! and `km3mon run` of the full suite with neither `--detector` nor
//! DETECTOR_ID, against the DB stand-in (`testdb`, written from the spec:
//! no real KM3NeT DB can run here). The run learns the detector id from
//! the first frame, fetches it and starts the nodes that need it; the DB
//! is then stopped mid-run: the nodes keep running on the last good data,
//! /api/status and the log say so; when the DB comes back, the next run's
//! calibration is fetched again.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::live::{root, row, wait_for};
use common::{free_port, km3mon, scratch, testdata};
use common::{start_ligier, wait_port, Guard};
use testdb::{Options, TestDb};

#[test]
fn live_run_takes_the_detector_from_the_frames_and_rides_out_a_db_outage() {
    let dir = scratch("db-live", "outage");
    let opts = Options::from_env().unwrap();
    let mut db = TestDb::start(opts.clone()).unwrap();
    let db_port = db.addr().port();
    // The example site config without DETECTOR_ID, at the stand-in, with
    // short DB timeouts (the "down" state then lasts a second).
    let mut site = std::fs::read_to_string(root().join("pipeline.toml.example")).unwrap();
    for (from, to) in [
        ("DETECTOR_ID = \"44\"\n".to_string(), String::new()),
        (
            "url = \"https://km3netdbweb.in2p3.fr\"".into(),
            format!("url = \"{}\"", db.url()),
        ),
        ("timeout = 30 ".into(), "timeout = 2 ".into()),
        ("retries = 2 ".into(), "retries = 0 ".into()),
        ("backoff = 1 ".into(), "backoff = 0.25 ".into()),
    ] {
        assert!(site.contains(&from), "pipeline.toml.example lacks {from:?}");
        site = site.replacen(&from, &to, 1);
    }
    std::fs::write(dir.join("site.toml"), site).unwrap();
    let lig = free_port();
    let web_port = free_port();
    let log = dir.join("run.log");

    let _ligier = start_ligier(lig);
    let mut run = Guard(
        Command::new(km3mon())
            .current_dir(&dir)
            .env("HOME", &dir)
            .env("KM3MON_LOG", "info")
            .env_remove("DETECTOR_ID")
            .env_remove("KM3NET_DB_URL")
            .env_remove("KM3NET_DB_COOKIE_FILE")
            .env("KM3NET_DB_COOKIE", db.sid())
            .env("DAQ_LIGIER_IP", "127.0.0.1")
            .env("LOG_LIGIER_IP", "127.0.0.1")
            .env("DAQ_LIGIER_PORT", lig.to_string())
            .env("LOG_LIGIER_PORT", lig.to_string())
            .args(["run", "--graph"])
            .arg(root().join("graphs/km3mon.toml"))
            .args(["--config", "site.toml", "--out", "out"])
            .args(["--web", &format!("127.0.0.1:{web_port}")])
            .args(["--heartbeat-ms", "200", "--lateness", "2s"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_port(web_port);
    // Before any frame: waiting, and /status says why.
    let km3db = row(web_port, "km3db").expect("a km3db status row");
    assert!(
        km3db["reason"]
            .as_str()
            .unwrap_or("")
            .contains("waiting for the first DAQ frame"),
        "{km3db}"
    );
    let _sim = Guard(
        Command::new(km3mon())
            .args(["simulate", "--detector"])
            .arg(testdata().join("detx/detx_v4.detx"))
            .args(["--ligier", &format!("127.0.0.1:{lig}")])
            .args(["--run", "6760", "--run-length", "8s"])
            .env("KM3MON_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let long = Duration::from_secs(40);
    wait_for("the detector from the first frame", &log, long, |l| {
        l.contains("detector 44 from the first DAQ frame") && l.contains("detector 44 known")
    });
    wait_for("run 6760's calibration", &log, long, |l| {
        l.contains("run 6760: calibration tcal=T0_A")
    });
    assert_eq!(
        db.request_lines("/detx"),
        [
            "/detx/44?tcal=0&pcal=0&rcal=0",
            "/detx/44?tcal=T0_A&pcal=POS_A&rcal=ROT_A"
        ]
    );

    // The DB goes away mid-run.
    db.stop();
    let stopped = Instant::now();
    let before = row(web_port, "dom_rates").expect("dom_rates row");
    wait_for("run 6761 without the DB", &log, long, |l| {
        l.contains("calibration of run 6761") && l.contains("6761")
    });
    let km3db = row(web_port, "km3db").unwrap();
    assert_eq!(km3db["state"], "waiting", "{km3db}");
    assert!(
        km3db["reason"].as_str().unwrap_or("").contains("6761"),
        "/status names the run whose calibration failed: {km3db}"
    );
    // Everything else keeps running.
    std::thread::sleep(Duration::from_secs(2));
    let after = row(web_port, "dom_rates").unwrap();
    assert_eq!(after["control_state"], "RUNNING", "{after}");
    assert!(
        after["records_in"].as_u64() > before["records_in"].as_u64(),
        "dom_rates stopped counting while the DB was down: {before} → {after}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("panicked"), "{text}");

    // The DB comes back on the same address: the next run is calibrated.
    let _db2 = TestDb::start(Options {
        port: db_port,
        ..opts
    })
    .unwrap();
    wait_for("run 6762's calibration after the outage", &log, long, |l| {
        l.contains("run 6762: calibration tcal=T0_A")
    });
    // /status follows (a late lookup of the failed run may still meet the
    // client's back-off for a moment).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let km3db = row(web_port, "km3db").unwrap();
        if km3db["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "{km3db}");
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "outage: {:.1} s from the stop to the recovery",
        stopped.elapsed().as_secs_f64()
    );
    let st = common::terminate(&mut run.0, Duration::from_secs(20), "km3mon run");
    assert!(st.success(), "km3mon run exit {st:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
