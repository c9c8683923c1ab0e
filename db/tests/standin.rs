//! The client against the DB stand-in (`testdb`, written from the spec:
//! no real KM3NeT DB can run here): login and cookie file, the session-id
//! resolution order, 401/403 handling, outages and the cache, streams and
//! calibrations. Needs KM3MON_TESTDATA (skipped without).

use std::path::Path;
use std::time::Duration;

use km3db::session::{cookie_file_line, SessionEnv, SidSource};
use km3db::{CalibIds, Client, DbConfig, DbError, DetectorService, Origin};
use testdb::{Fault, Options, TestDb};

fn server() -> Option<TestDb> {
    if std::env::var_os("KM3MON_TESTDATA").is_none() {
        eprintln!("KM3MON_TESTDATA not set: skipped");
        return None;
    }
    Some(TestDb::start(Options::from_env().unwrap()).unwrap())
}

fn cfg(db: &TestDb) -> DbConfig {
    DbConfig {
        url: db.url(),
        timeout: 5.0,
        retries: 0,
        backoff: 0.05,
        ..DbConfig::default()
    }
}

fn home() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn env_with_home(h: &Path) -> SessionEnv {
    SessionEnv {
        home: Some(h.to_path_buf()),
        ..SessionEnv::default()
    }
}

const STALE: &str = "_km3mon_127.0.0.1_00000000000000000000dead";

#[test]
fn login_writes_the_cookie_file_in_km3db_format_with_mode_0600() {
    let Some(db) = server() else { return };
    let h = home();
    let env = SessionEnv {
        username: Some("km3mon".into()),
        password: Some("km3mon".into()),
        ..env_with_home(h.path())
    };
    let mut c = Client::new(cfg(&db), env);
    let t = c.streams().unwrap();
    assert_eq!(t.columns[0], "STREAM");
    assert_eq!(c.logins(), 1);
    let path = h.path().join(".km3netdb_cookie");
    let text = std::fs::read_to_string(&path).unwrap();
    let sid = db.requests().last().unwrap().sid.clone().unwrap();
    assert_eq!(text, cookie_file_line(&sid));
    assert!(!text.ends_with('\n'));
    assert_eq!(text.split('\t').count(), 7);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // The login request carried the credentials and persist=y.
    let login = db.request_lines("/home.htm");
    assert_eq!(login, ["/home.htm?usr=km3mon&pwd=km3mon&persist=y"]);
}

#[test]
fn wrong_password_is_a_login_error() {
    let Some(db) = server() else { return };
    let h = home();
    let env = SessionEnv {
        username: Some("km3mon".into()),
        password: Some("wrong & #secret".into()),
        ..env_with_home(h.path())
    };
    let mut c = Client::new(cfg(&db), env);
    let e = c.streams().unwrap_err();
    assert!(matches!(e, DbError::Login { .. }), "{e}");
    assert!(e.to_string().contains("wrong user name or password"), "{e}");
    // Percent-encoded: the password did not split the query.
    assert_eq!(
        db.request_lines("/home.htm"),
        ["/home.htm?usr=km3mon&pwd=wrong%20%26%20%23secret&persist=y"]
    );
    assert!(!h.path().join(".km3netdb_cookie").exists());
}

/// Each case: which source wins, seen in the Cookie the server received.
#[test]
fn resolution_order() {
    let Some(db) = server() else { return };
    let h = home();
    let file = h.path().join("cookie.txt");
    std::fs::write(&file, cookie_file_line("_a_1.2.3.4_f1")).unwrap();
    std::fs::write(h.path().join(".km3netdb_cookie"), "_a_1.2.3.4_h1\n").unwrap();
    let full = SessionEnv {
        config_cookie: Some("_a_1.2.3.4_c1".into()),
        env_cookie: Some(cookie_file_line("_a_1.2.3.4_e1")),
        env_cookie_file: Some(file.clone()),
        home: Some(h.path().to_path_buf()),
        username: Some("km3mon".into()),
        password: Some("km3mon".into()),
    };
    let cases: Vec<(SessionEnv, &str, SidSource)> = vec![
        (full.clone(), "_a_1.2.3.4_c1", SidSource::Config),
        (
            SessionEnv {
                config_cookie: None,
                ..full.clone()
            },
            "_a_1.2.3.4_e1",
            SidSource::EnvCookie,
        ),
        (
            SessionEnv {
                config_cookie: None,
                env_cookie: None,
                ..full.clone()
            },
            "_a_1.2.3.4_f1",
            SidSource::CookieFile(file.clone()),
        ),
        (
            SessionEnv {
                config_cookie: None,
                env_cookie: None,
                env_cookie_file: None,
                ..full.clone()
            },
            "_a_1.2.3.4_h1",
            SidSource::CookieFile(h.path().join(".km3netdb_cookie")),
        ),
    ];
    for (env, sid, source) in cases {
        let s = env.resolve_stored(&[]).unwrap();
        assert_eq!((s.sid.as_str(), &s.source), (sid, &source));
        db.accept(sid);
        let mut c = Client::new(cfg(&db), env);
        c.streams().unwrap();
        assert_eq!(db.requests().last().unwrap().sid.as_deref(), Some(sid));
        assert_eq!(c.logins(), 0);
    }
    // Nothing stored: the credentials log in.
    let h2 = home();
    let env = SessionEnv {
        username: Some("km3mon".into()),
        password: Some("km3mon".into()),
        ..env_with_home(h2.path())
    };
    assert!(env.resolve_stored(&[]).is_none());
    let mut c = Client::new(cfg(&db), env);
    c.streams().unwrap();
    assert_eq!(c.logins(), 1);
    // Nothing at all: the error says what to do.
    let mut c = Client::new(cfg(&db), env_with_home(home().path()));
    let e = c.streams().unwrap_err().to_string();
    assert!(
        e.contains("km3mon db login") && e.contains("KM3NET_DB_COOKIE"),
        "{e}"
    );
}

#[test]
fn expired_cookie_logs_in_once_and_succeeds() {
    let Some(db) = server() else { return };
    let h = home();
    std::fs::write(h.path().join(".km3netdb_cookie"), cookie_file_line(STALE)).unwrap();
    let env = SessionEnv {
        username: Some("km3mon".into()),
        password: Some("km3mon".into()),
        ..env_with_home(h.path())
    };
    let mut c = Client::new(cfg(&db), env);
    let runs = c.runs("44", None).unwrap();
    assert_eq!(runs.len(), 10);
    let paths: Vec<String> = db.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        ["/streamds/runs.txt", "/home.htm", "/streamds/runs.txt"]
    );
    assert_eq!(db.requests()[0].sid.as_deref(), Some(STALE));
    assert_eq!(c.logins(), 1);
    // The new id replaced the stale one (as km3db does after a login).
    let now = std::fs::read_to_string(h.path().join(".km3netdb_cookie")).unwrap();
    assert_ne!(now, cookie_file_line(STALE));
}

#[test]
fn refused_user_cookie_gives_session_invalid_and_leaves_the_file_alone() {
    let Some(db) = server() else { return };
    let h = home();
    let file = h.path().join("my_cookie");
    std::fs::write(&file, cookie_file_line(testdb::DEFAULT_SID)).unwrap();
    let before = std::fs::metadata(&file).unwrap().modified().unwrap();
    let env = SessionEnv {
        env_cookie_file: Some(file.clone()),
        ..env_with_home(h.path())
    };
    db.set_fault(Fault::Status(403));
    let mut c = Client::new(cfg(&db), env);
    let e = c.streams().unwrap_err();
    assert!(matches!(e, DbError::SessionInvalid(_)), "{e}");
    assert!(e.to_string().contains("DB session invalid"), "{e}");
    assert!(matches!(c.session_state(), km3db::SessionState::Invalid(_)));
    // One request: nothing else to try; and no request storm afterwards.
    assert_eq!(db.requests().len(), 1);
    assert!(matches!(c.streams(), Err(DbError::SessionInvalid(_))));
    assert_eq!(db.requests().len(), 1);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        cookie_file_line(testdb::DEFAULT_SID)
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        before
    );
}

#[test]
fn streams_follow_the_tsv_rules() {
    let Some(db) = server() else { return };
    let env = SessionEnv {
        env_cookie: Some(db.sid()),
        ..SessionEnv::default()
    };
    let mut c = Client::new(cfg(&db), env);
    // The sample lacks its last newline; the answer too.
    let raw = c.stream_text("clbmap", &[("detoid", "D_ORCA003")]).unwrap();
    assert!(!raw.ends_with('\n'));
    let t = c.stream("clbmap", &[("detoid", "D_ORCA003")]).unwrap();
    assert_eq!(t.get(0, "UPI"), Some("3.4.3.2/V2-2-1/2.267"));
    assert!(matches!(
        c.stream("clbmap", &[("detoid", "D_NONE")]),
        Err(DbError::NoData(_))
    ));
    assert!(matches!(
        c.stream("nosuch", &[]),
        Err(DbError::Server { .. })
    ));
    let idx = c.streams().unwrap();
    assert_eq!(idx.rows.len(), 30);
    assert_eq!(c.detector_oid(49).unwrap(), "D_ORCA006");
}

#[test]
fn run_calibration_from_the_runs_table_and_from_api_v2() {
    let Some(_) = server() else { return };
    let mut opts = Options::from_env().unwrap();
    opts.detectors[0].runs[5].t0 = Some("T0_B".into());
    opts.t0_shifts.insert("T0_B".into(), 50.0);
    for with_columns in [true, false] {
        opts.runs_with_calib_columns = with_columns;
        let db = TestDb::start(opts.clone()).unwrap();
        let env = SessionEnv {
            env_cookie: Some(db.sid()),
            ..SessionEnv::default()
        };
        let svc = DetectorService::new(Client::new(cfg(&db), env), "44", None);
        let (a, ids_a) = svc.run_detector(6759).unwrap();
        let (b, ids_b) = svc.run_detector(6760).unwrap();
        assert_eq!(ids_a.query(), "tcal=T0_A&pcal=POS_A&rcal=ROT_A");
        assert_eq!(ids_b.query(), "tcal=T0_B&pcal=POS_A&rcal=ROT_A");
        let ma = a.optical_modules().nth(7).unwrap();
        let mb = b.module(ma.dom_id).unwrap();
        let want = ma.pmts[0].t0 + 50.0 * f64::from(ma.floor);
        assert!(ma.floor > 1);
        assert!(
            (mb.pmts[0].t0 - want).abs() < 1e-6,
            "{} {want}",
            mb.pmts[0].t0
        );
        let detx = db.request_lines("/detx");
        assert_eq!(
            detx,
            [
                "/detx/44?tcal=T0_A&pcal=POS_A&rcal=ROT_A",
                "/detx/44?tcal=T0_B&pcal=POS_A&rcal=ROT_A"
            ]
        );
        if !with_columns {
            let api = db.request_lines("/apiv2.1.0");
            assert_eq!(api.len(), 2, "{api:?}");
            assert!(
                api[0].contains("DetOId=D_DET044&Run=6759&Ranking=1"),
                "{api:?}"
            );
        }
    }
}

#[test]
fn outage_falls_back_to_the_cache() {
    let Some(mut db) = server() else { return };
    let cache = tempfile::tempdir().unwrap();
    let env = SessionEnv {
        env_cookie: Some(db.sid()),
        ..SessionEnv::default()
    };
    let mk = |db: &TestDb, refresh_hours: f64| {
        let cfg = DbConfig {
            refresh_hours,
            ..cfg(db)
        };
        DetectorService::new(
            Client::new(cfg, env.clone()),
            "44",
            Some(km3db::cache::Cache::new(cache.path())),
        )
    };
    let svc = mk(&db, 24.0);
    let (text, origin) = svc.base().unwrap();
    assert_eq!(origin, Origin::Db);
    svc.run_detector(6760).unwrap();
    // Fresh enough: no second request.
    let n = db.requests().len();
    assert_eq!(mk(&db, 24.0).base().unwrap().1, Origin::Cache);
    assert_eq!(db.requests().len(), n);
    db.stop();
    let svc = mk(&db, 1e-9);
    let (again, origin) = svc.base().unwrap();
    assert_eq!(again, text);
    assert!(matches!(origin, Origin::Fallback(_)), "{origin:?}");
    assert!(svc.status().contains("cached"), "{}", svc.status());
    // The run's ids and DETX come from the cache as well.
    let (_, ids) = svc.run_detector(6760).unwrap();
    assert_eq!(
        ids,
        CalibIds::new(Some("T0_A"), Some("POS_A"), Some("ROT_A"))
    );
    // A run never seen: a clear error, no panic.
    let e = svc.run_detector(6761).unwrap_err();
    assert!(format!("{e:#}").contains("unreachable"), "{e:#}");
}

#[test]
fn a_slow_server_times_out_then_backs_off() {
    let Some(db) = server() else { return };
    db.set_delay(Duration::from_millis(1500));
    let env = SessionEnv {
        env_cookie: Some(db.sid()),
        ..SessionEnv::default()
    };
    let mut c = Client::new(
        DbConfig {
            timeout: 0.3,
            ..cfg(&db)
        },
        env,
    );
    let e = c.streams().unwrap_err();
    assert!(matches!(e, DbError::Unavailable(_)), "{e}");
    // Backing off: the next call fails at once without a request.
    let n = db.requests().len();
    assert!(matches!(c.streams(), Err(DbError::Unavailable(_))));
    assert_eq!(db.requests().len(), n);
}
