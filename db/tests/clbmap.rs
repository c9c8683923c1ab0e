//! The typed, cached CLB map against the DB stand-in (`testdb`, written
//! from the spec: no real KM3NeT DB can run here). Needs KM3MON_TESTDATA
//! (skipped without).

use km3db::cache::Cache;
use km3db::session::SessionEnv;
use km3db::{Client, DbConfig, DetectorService, Origin};
use testdb::{Options, TestDb};

fn service(db: &TestDb, det: &str, cache: &std::path::Path) -> DetectorService {
    let cfg = DbConfig {
        url: db.url(),
        timeout: 5.0,
        retries: 0,
        backoff: 0.05,
        ..DbConfig::default()
    };
    let env = SessionEnv {
        config_cookie: Some(db.sid()),
        ..SessionEnv::default()
    };
    DetectorService::new(Client::new(cfg, env), det, Some(Cache::new(cache)))
}

/// DU/floor ↔ DOM id ↔ CLB UPI/serial of detector 49 (by serial number:
/// the OID comes from the detector list), then from the day's cache
/// without a request, then — the server down — from the cache with the
/// reason; a detector the DB does not know is a clear error.
#[test]
fn clb_map_typed_cached_and_kept_through_an_outage() {
    if std::env::var_os("KM3MON_TESTDATA").is_none() {
        eprintln!("KM3MON_TESTDATA not set: skipped");
        return;
    }
    let mut db = TestDb::start(Options::from_env().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = service(&db, "49", dir.path());
    assert_eq!(s.det_oid().unwrap(), "D_ORCA006");
    let (map, origin) = s.clb_map().unwrap();
    assert_eq!(origin, Origin::Db);
    let det = daq::detector::Detector::from_file(
        std::path::Path::new(&std::env::var("KM3MON_TESTDATA").unwrap()).join("detx/detx_v5.detx"),
    )
    .unwrap();
    assert_eq!(map.len(), det.modules().len());
    for m in det.modules() {
        let clb = map.by_dom_id(m.dom_id).expect("every DOM in the map");
        assert_eq!((clb.du, clb.floor), (m.du, m.floor));
        assert_eq!(map.by_upi(&clb.upi).unwrap().dom_id, m.dom_id);
        assert_eq!(map.at(m.du, m.floor).unwrap().serial, clb.serial);
    }
    assert_eq!(
        db.request_lines("/streamds"),
        [
            "/streamds/detectors.txt",
            "/streamds/clbmap.txt?detoid=D_ORCA006"
        ]
    );
    // Within refresh_hours: the cache, no request.
    let n = db.requests().len();
    let (again, origin) = service(&db, "49", dir.path()).clb_map().unwrap();
    assert_eq!(origin, Origin::Cache);
    assert_eq!(*again, *map);
    assert_eq!(db.requests().len(), n);
    // Stale cache (refresh_hours 0) and the DB down: the cached map,
    // with the reason.
    db.stop();
    let cfg = DbConfig {
        url: db.url(),
        timeout: 2.0,
        retries: 0,
        backoff: 0.05,
        refresh_hours: 0.0,
        ..DbConfig::default()
    };
    let env = SessionEnv {
        config_cookie: Some(db.sid()),
        ..SessionEnv::default()
    };
    let down = DetectorService::new(Client::new(cfg, env), "49", Some(Cache::new(dir.path())));
    let (kept, origin) = down.clb_map().unwrap();
    assert_eq!(*kept, *map);
    let Origin::Fallback(why) = origin else {
        panic!("{origin:?}")
    };
    assert!(
        why.contains("DB unreachable") && why.contains("clbmap"),
        "{why}"
    );
}

/// A detector the DB does not list: a clear error naming the serial.
#[test]
fn unknown_detector_is_named() {
    if std::env::var_os("KM3MON_TESTDATA").is_none() {
        eprintln!("KM3MON_TESTDATA not set: skipped");
        return;
    }
    let db = TestDb::start(Options::from_env().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = service(&db, "77", dir.path()).clb_map().unwrap_err();
    assert!(format!("{e:#}").contains("serial number 77"), "{e:#}");
}
