//! The detector and each run's calibration from the KM3NeT DB, end to end,
//! against the DB stand-in (`testdb`, written from the spec: no real DB can
//! run here): a replay configured with nothing but DETECTOR_ID gives the
//! outputs of a replay with `--detector` and the DB's DETX; a recording
//! spanning two runs with different calibration sets asks for both DETX
//! and plots each run with its own t0s; with the server down the cached
//! detector keeps the graph running and a warning says so; `km3mon db`;
//! `.env` and `km3mon check`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{km3mon, testdata};
use testdb::{Options, TestDb};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("km3mon-db-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A `km3mon` command with a clean DB environment (no cookie of the
/// machine, HOME in `dir`).
fn cmd(dir: &Path) -> Command {
    let mut c = Command::new(km3mon());
    c.current_dir(dir)
        .env("HOME", dir)
        .env("KM3MON_LOG", "info")
        .env_remove("KM3NET_DB_COOKIE")
        .env_remove("KM3NET_DB_COOKIE_FILE")
        .env_remove("KM3NET_DB_USERNAME")
        .env_remove("KM3NET_DB_PASSWORD")
        .env_remove("KM3NET_DB_URL")
        .env_remove("DETECTOR_ID");
    c
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// IO_EVT.dat with every event moved to `run`, `dt` seconds later.
fn events_of_run(dir: &Path, run: i32, dt: u32) -> PathBuf {
    let mut wire = std::fs::read(testdata().join("daq/IO_EVT.dat")).unwrap();
    let mut at = 0;
    let le = |b: &[u8], i: usize| i32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    while at < wire.len() {
        let len = le(&wire, at) as usize;
        // Preamble (8), version (2), then det_id, run, frame index, seconds.
        assert_eq!(le(&wire, at + 10), 44);
        assert_eq!(le(&wire, at + 14), 6760);
        wire[at + 14..at + 18].copy_from_slice(&run.to_le_bytes());
        let s = u32::from_le_bytes(wire[at + 22..at + 26].try_into().unwrap()) + dt;
        wire[at + 22..at + 26].copy_from_slice(&s.to_le_bytes());
        at += len;
    }
    let p = dir.join(format!("run{run}.dat"));
    std::fs::write(&p, wire).unwrap();
    p
}

/// The stand-in with run 6761 calibrated by the set `T0_B`, whose t0s are
/// those of `T0_A` plus 3 ns per floor.
fn two_set_db() -> TestDb {
    let mut opts = Options::from_env().unwrap();
    for r in opts.detectors[0].runs.iter_mut().filter(|r| r.run >= 6761) {
        r.t0 = Some("T0_B".into());
    }
    opts.t0_shifts.insert("T0_B".into(), 3.0);
    TestDb::start(opts).unwrap()
}

fn replay(dir: &Path, out: &str, db: Option<&TestDb>, extra: &[&str], files: &[&Path]) -> Output {
    let mut c = cmd(dir);
    if let Some(db) = db {
        c.env("DETECTOR_ID", "44")
            .env("KM3NET_DB_URL", db.url())
            .env("KM3NET_DB_COOKIE", db.sid());
    }
    c.args(["replay", "--graph"])
        .arg(root().join("graphs/km3mon.toml"))
        .args(["--out", out])
        .args(extra)
        .args(files);
    c.output().unwrap()
}

fn selection_png(out: &Path, run: i32) -> Vec<u8> {
    let sel = out.join("plots/event_selection");
    let name = std::fs::read_dir(&sel)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(&format!("ztplot_00000044_{run:08}_")) && n.ends_with(".png"))
        .unwrap_or_else(|| panic!("no event-selection plot of run {run} in {}", sel.display()));
    std::fs::read(sel.join(name)).unwrap()
}

#[test]
fn two_runs_two_calibrations_from_detector_id_alone() {
    let dir = tmp("two-runs");
    let a = testdata().join("daq/IO_EVT.dat");
    let b = events_of_run(&dir, 6761, 100);
    let db = two_set_db();
    ok(
        replay(&dir, "db", Some(&db), &[], &[&a, &b]),
        "replay from the DB",
    );
    assert_eq!(
        db.request_lines("/detx"),
        [
            "/detx/44?tcal=0&pcal=0&rcal=0",
            "/detx/44?tcal=T0_A&pcal=POS_A&rcal=ROT_A",
            "/detx/44?tcal=T0_B&pcal=POS_A&rcal=ROT_A"
        ]
    );
    assert_eq!(
        db.request_lines("/streamds/runs"),
        [
            "/streamds/runs.txt?detid=44&run=6760",
            "/streamds/runs.txt?detid=44&run=6761"
        ]
    );
    // The DB's DETX of each run, and the same replays with --detector.
    for (run, name) in [(6760, "a.detx"), (6761, "b.detx")] {
        ok(
            cmd(&dir)
                .env("KM3NET_DB_URL", db.url())
                .env("KM3NET_DB_COOKIE", db.sid())
                .args(["db", "detx", "44", "--run", &run.to_string(), "-o", name])
                .output()
                .unwrap(),
            "km3mon db detx",
        );
    }
    // Hand-computed: floor f's t0s of set B are set A's plus 3 ns × f.
    let da = daq::detector::Detector::from_file(dir.join("a.detx")).unwrap();
    let dbx = daq::detector::Detector::from_file(dir.join("b.detx")).unwrap();
    let m = da.module_at(1, 18).unwrap();
    assert!((dbx.module(m.dom_id).unwrap().pmts[30].t0 - (m.pmts[30].t0 + 54.0)).abs() < 1e-6);
    ok(
        replay(&dir, "fa", None, &["--detector", "a.detx"], &[&a]),
        "replay A",
    );
    ok(
        replay(&dir, "fb", None, &["--detector", "b.detx"], &[&b]),
        "replay B",
    );
    ok(
        replay(&dir, "wrong", None, &["--detector", "a.detx"], &[&b]),
        "replay B with A",
    );
    let out = dir.join("db");
    assert_eq!(
        selection_png(&out, 6760),
        selection_png(&dir.join("fa"), 6760)
    );
    assert_eq!(
        selection_png(&out, 6761),
        selection_png(&dir.join("fb"), 6761)
    );
    // …and the t0s make a visible difference.
    assert_ne!(
        selection_png(&out, 6761),
        selection_png(&dir.join("wrong"), 6761)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn same_outputs_as_with_the_dbs_detx_and_server_down_changes_nothing_but_a_warning() {
    let dir = tmp("done-when");
    let mut db = TestDb::start(Options::from_env().unwrap()).unwrap();
    let example = std::fs::read_to_string(root().join("pipeline.toml.example")).unwrap();
    // A cached layout is refetched after refresh_hours: ~0 here, so that
    // the second replay has to ask (and fall back).
    let mut site = example.clone();
    for (from, to) in [
        (
            "url = \"https://km3netdbweb.in2p3.fr\"".to_string(),
            format!("url = \"{}\"", db.url()),
        ),
        (
            "refresh_hours = 24".into(),
            "refresh_hours = 0.000001".into(),
        ),
        ("retries = 2".into(), "retries = 0".into()),
    ] {
        assert!(site.contains(&from), "pipeline.toml.example lacks {from}");
        site = site.replacen(&from, &to, 1);
    }
    std::fs::write(dir.join("site.toml"), site).unwrap();
    let evt = testdata().join("daq/IO_EVT.dat");
    let sum = testdata().join("daq/IO_SUM.dat");
    let run = |out: &str, extra: &[&str]| {
        let mut c = cmd(&dir);
        c.env("DETECTOR_ID", "44")
            .env("KM3NET_DB_COOKIE", testdb::DEFAULT_SID)
            .args(["replay", "--graph"])
            .arg(root().join("graphs/km3mon.toml"))
            .args(["--config", "site.toml", "--out", out])
            .args(extra)
            .arg(&evt)
            .arg(&sum);
        c.output().unwrap()
    };
    ok(run("db", &["--state-dir", "state"]), "replay from the DB");
    ok(
        cmd(&dir)
            .env("KM3NET_DB_COOKIE", testdb::DEFAULT_SID)
            .args([
                "db",
                "--config",
                "site.toml",
                "detx",
                "44",
                "-o",
                "db44.detx",
            ])
            .output()
            .unwrap(),
        "km3mon db detx",
    );
    ok(
        run("file", &["--detector", "db44.detx"]),
        "replay with --detector",
    );
    let n = db.requests().len();
    db.stop();
    // The second replay needs the DB cache of the first (state/db/), not
    // the monitors' state: with it, a replay continues the previous run's
    // windows and maps (docs/state.md), and this one replays the same
    // data again.
    for f in std::fs::read_dir(dir.join("state")).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::remove_file(f).unwrap();
        }
    }
    let down = ok(
        run("down", &["--state-dir", "state"]),
        "replay with the DB down",
    );
    let log = String::from_utf8_lossy(&down.stderr);
    assert!(log.contains("running on the last good data"), "{log}");
    assert_eq!(n, 4, "{:?}", db.request_lines("/"));
    for out in ["file", "down"] {
        for rel in [
            "plots/ztplot.png",
            "plots/dom_rates.png",
            "plots/triggermap.png",
            "plots/dom_activity.json",
            "data/trigger_rates.csv",
        ] {
            let a = std::fs::read(dir.join("db").join(rel));
            let b = std::fs::read(dir.join(out).join(rel));
            assert!(a.is_ok(), "{rel} missing");
            assert!(a.ok() == b.ok(), "{out}/{rel} differs from the DB replay's");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn db_get_prints_the_run_table_and_errors_say_what_to_do() {
    let dir = tmp("get");
    let db = TestDb::start(Options::from_env().unwrap()).unwrap();
    let out = ok(
        cmd(&dir)
            .env("KM3NET_DB_URL", db.url())
            .env("KM3NET_DB_COOKIE", db.sid())
            .args(["db", "get", "runs", "detid=44"])
            .output()
            .unwrap(),
        "db get runs",
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("RUN\tUNIXSTARTTIME\t"), "{text}");
    assert_eq!(lines.len(), 11);
    assert!(lines[6].starts_with("6760\t"));
    let out = cmd(&dir)
        .env("KM3NET_DB_URL", db.url())
        .args(["db", "runs", "44"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no DB session: run `km3mon db login` or set KM3NET_DB_COOKIE"),
        "{err}"
    );
    // Login without a terminal: the environment's credentials.
    let out = ok(
        cmd(&dir)
            .env("KM3NET_DB_URL", db.url())
            .env("KM3NET_DB_USERNAME", "km3mon")
            .env("KM3NET_DB_PASSWORD", "km3mon")
            .args(["db", "login"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap(),
        "db login",
    );
    let cookie = std::fs::read_to_string(dir.join(".km3netdb_cookie")).unwrap();
    let sid = cookie.rsplit('\t').next().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("KM3NET_DB_COOKIE={sid}")
    );
    // …and the cookie file is what the next command uses.
    ok(
        cmd(&dir)
            .env("KM3NET_DB_URL", db.url())
            .args(["db", "runs", "44", "--json"])
            .output()
            .unwrap(),
        "db runs with the cookie file",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dotenv_beside_the_config_and_check_reports_the_originals_variables() {
    let dir = tmp("dotenv");
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::copy(root().join("pipeline.toml.example"), conf.join("site.toml")).unwrap();
    std::fs::write(
        conf.join(".env"),
        "COMPOSE_PROJECT_NAME=monitoring\nDETECTOR_ID=49\nDAQ_LIGIER_IP=192.0.2.10\nKM3NET_DB_COOKIE=_x_1.2.3.4_abc\n",
    )
    .unwrap();
    // The working directory's .env loses against the config's.
    std::fs::write(dir.join(".env"), "DETECTOR_ID=1\nLOGGING_PORT=8082\n").unwrap();
    let check = |env: &[(&str, &str)]| {
        let mut c = cmd(&dir);
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(["check", "--config", "conf/site.toml"])
            .arg(root().join("graphs/km3mon.toml"));
        String::from_utf8(ok(c.output().unwrap(), "check").stdout).unwrap()
    };
    let out = check(&[]);
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not reported:\n{out}"))
            .to_string()
    };
    assert!(line("DETECTOR_ID").contains("= \"49\": used"), "{out}");
    assert!(
        line("DAQ_LIGIER_IP").contains("192.0.2.10\": used: referenced by the graph"),
        "{out}"
    );
    assert!(line("COMPOSE_PROJECT_NAME").contains("unused"), "{out}");
    assert!(line("LOGGING_PORT").contains("\"8082\": unused"), "{out}");
    assert!(
        line("KM3NET_DB_COOKIE").contains("set (14 characters): used"),
        "{out}"
    );
    assert!(!out.contains("_x_1.2.3.4_abc"), "the cookie is a secret");
    for name in [
        "TAGS_TO_MIRROR",
        "MONITORING_LIGIER_PORT",
        "DETECTOR_MANAGER_IP",
        "WEBSERVER_PORT",
        "LOG_LIGIER_PORT",
        "DAQ_LIGIER_PORT",
        "LOG_LIGIER_IP",
    ] {
        line(name);
    }
    // A real environment variable wins.
    let out = check(&[("DETECTOR_ID", "44")]);
    assert!(out.contains("DETECTOR_ID = \"44\": used"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_without_calibration_keeps_the_previous_one_and_says_so() {
    let dir = tmp("no-calib");
    let a = testdata().join("daq/IO_EVT.dat");
    let b = events_of_run(&dir, 6799, 100);
    // Run 6799 is not in the stand-in's run table.
    let db = TestDb::start(Options::from_env().unwrap()).unwrap();
    let out = ok(replay(&dir, "db", Some(&db), &[], &[&a, &b]), "replay");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("calibration for run 6799") && log.contains("keeping the previous one"),
        "{log}"
    );
    // Plotted all the same, with the previous run's calibration.
    selection_png(&dir.join("db"), 6799);
    assert_eq!(db.request_lines("/detx").len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// royfit fits each run with that run's calibration from the DB (the
/// stand-in's set `T0_B` of run 6761 shifts floor f by 3 ns × f): the
/// residual rows and fit lines of run 6761 are those of a `--detector`
/// replay with run 6761's DETX and differ from a replay with run 6760's;
/// the fit waits for each run's calibration, so `-w 1` and `-w 2` write
/// the same files.
#[test]
fn royfit_fits_each_run_with_its_own_calibration_from_the_db() {
    let dir = tmp("royfit-runs");
    let a = testdata().join("daq/IO_EVT.dat");
    let b = events_of_run(&dir, 6761, 100);
    let db = two_set_db();
    for (out, w) in [("db1", "1"), ("db2", "2")] {
        ok(
            replay(&dir, out, Some(&db), &["-w", w], &[&a, &b]),
            "replay from the DB",
        );
    }
    for (run, name) in [(6760, "a.detx"), (6761, "b.detx")] {
        ok(
            cmd(&dir)
                .env("KM3NET_DB_URL", db.url())
                .env("KM3NET_DB_COOKIE", db.sid())
                .args(["db", "detx", "44", "--run", &run.to_string(), "-o", name])
                .output()
                .unwrap(),
            "km3mon db detx",
        );
    }
    ok(
        replay(&dir, "fa", None, &["--detector", "a.detx"], &[&a]),
        "replay A",
    );
    ok(
        replay(&dir, "fb", None, &["--detector", "b.detx"], &[&b]),
        "replay B",
    );
    ok(
        replay(&dir, "wrong", None, &["--detector", "a.detx"], &[&b]),
        "replay B with A",
    );
    let read = |out: &str, file: &str| {
        std::fs::read_to_string(dir.join(out).join(file))
            .unwrap_or_else(|e| panic!("{out}/{file}: {e}"))
    };
    // Residual rows (run first) and fit lines of one run.
    let rows = |out: &str, run: i32| -> Vec<String> {
        read(out, "data/reco_timeres.csv")
            .lines()
            .filter(|l| l.starts_with(&format!("{run},")))
            .map(String::from)
            .collect()
    };
    let fits = |out: &str, run: i32| -> Vec<String> {
        read(out, "data/royfit.jsonl")
            .lines()
            .filter(|l| l.contains(&format!("\"run\":{run},")))
            .map(String::from)
            .collect()
    };
    assert!(!rows("fb", 6761).is_empty(), "royfit fitted nothing");
    assert_eq!(rows("db1", 6760), rows("fa", 6760));
    assert_eq!(fits("db1", 6760), fits("fa", 6760));
    assert_eq!(rows("db1", 6761), rows("fb", 6761));
    assert_eq!(fits("db1", 6761), fits("fb", 6761));
    // …and the calibration makes a difference in the residuals.
    assert_ne!(rows("db1", 6761), rows("wrong", 6761));
    for f in ["data/reco_timeres.csv", "data/royfit.jsonl"] {
        assert_eq!(read("db1", f), read("db2", f), "{f}: -w 1 vs -w 2");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// DETECTOR_ID names another detector than the frames': the replay runs
/// on, and the log says so once (not once per frame, run or worker).
#[test]
fn frames_of_another_detector_than_detector_id_are_reported_once() {
    let dir = tmp("mismatch");
    let db = TestDb::start(Options::from_env().unwrap()).unwrap();
    let a = testdata().join("daq/IO_EVT.dat");
    let b = events_of_run(&dir, 6761, 100);
    let out = cmd(&dir)
        .env("DETECTOR_ID", "49")
        .env("KM3NET_DB_URL", db.url())
        .env("KM3NET_DB_COOKIE", db.sid())
        .args(["replay", "-w", "2", "--graph"])
        .arg(root().join("graphs/km3mon.toml"))
        .args(["--out", "o"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let n = log
        .lines()
        .filter(|l| l.contains("the DAQ frames are of detector 44, but the detector in use is 49"))
        .count();
    assert_eq!(n, 1, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
