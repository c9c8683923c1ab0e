//! ztplot unit tests: calibration against hand-computed values, cuts,
//! the top-10 rule with ties, the SQLite table, the plot thread.

use std::path::PathBuf;
use std::sync::Arc;

use daq::detector::Detector;
use daq::event::{Event, SnapshotHit, TriggeredHit};
use daq::frame::DaqHeader;

use super::hits::{self, calibrate, passes_cuts, trigger_flags};
use super::selection::{Limits, Row, SelectionDb, Sizes};

fn testdata() -> PathBuf {
    std::env::var_os("KM3MON_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"))
}

fn detx() -> Detector {
    Detector::from_file(testdata().join("detx/detx_v4.detx")).unwrap()
}

/// The three events of IO_EVT.dat (frames back to back: 5724, 1950, 516 bytes).
fn sample_events() -> Vec<(Vec<u8>, Event)> {
    let bytes = std::fs::read(testdata().join("daq/IO_EVT.dat")).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let frame = bytes[at..at + len].to_vec();
        let ev = Event::decode(&frame).unwrap();
        out.push((frame, ev));
        at += len;
    }
    out
}

#[test]
fn calibration_matches_hand_computed_values() {
    let det = detx();
    let evs = sample_events();
    assert_eq!(evs.len(), 3);
    let ev = &evs[2].1;
    let cal = calibrate(&det, ev);
    assert_eq!(cal.uncalibrated, 0);
    let find = |dom: u32, ch: u8| {
        *cal.hits
            .iter()
            .find(|h| h.dom_id == dom && h.channel == ch && h.triggered)
            .unwrap()
    };
    // DETX line 2049: DOM 808974811 (DU 4, floor 8), PMT 10411 (channel 0):
    // z +97.552, t0 +207657.040. Hit: time 93291924, ToT 26 → slew 0.07.
    let h = find(808974811, 0);
    assert_eq!((h.du, h.floor), (4, 8));
    assert!(
        (h.time - (93291924.0 + 207657.040 - 0.07)).abs() < 1e-6,
        "{}",
        h.time
    );
    assert!((h.z - 97.552).abs() < 1e-9);
    // DETX line 2657: DOM 808981864 (DU 5, floor 8), channel 14 (PMT 13430):
    // z +97.271, t0 +207862.573. Hit: time 93291789, ToT 22 → slew 0.78.
    let h = find(808981864, 14);
    assert_eq!((h.du, h.floor), (5, 8));
    assert!(
        (h.time - (93291789.0 + 207862.573 - 0.78)).abs() < 1e-6,
        "{}",
        h.time
    );
    assert!((h.z - 97.271).abs() < 1e-9);
    // Every triggered hit is in the snapshot and flagged.
    assert_eq!(cal.hits.iter().filter(|h| h.triggered).count(), 6);
}

#[test]
fn raw_frame_is_re_encoded_byte_for_byte() {
    for (frame, ev) in sample_events() {
        assert_eq!(ev.encode(), frame);
    }
}

#[test]
fn selection_cuts_count_dus_and_doms_with_triggered_hits() {
    let det = detx();
    let evs = sample_events();
    // Event 3: triggered hits on 3 DOMs (808974811, 808981864, 809007627).
    let (dus, doms) = hits::triggered_spread(&det, &evs[2].1);
    assert_eq!(doms, 3);
    assert!(passes_cuts(&det, &evs[2].1, dus, doms));
    assert!(!passes_cuts(&det, &evs[2].1, dus + 1, doms));
    assert!(!passes_cuts(&det, &evs[2].1, dus, doms + 1));
    // The site defaults (3 DUs, 24 DOMs): only the big first event.
    let pass: Vec<bool> = evs
        .iter()
        .map(|(_, e)| passes_cuts(&det, e, 3, 24))
        .collect();
    assert_eq!(pass, [true, false, false]);
}

#[test]
fn multiplicity_groups_hits_within_20_ns_of_the_first() {
    let mk = |dom, t| hits::ZtHit {
        dom_id: dom,
        du: 1,
        floor: 1,
        channel: 0,
        time: t,
        z: 0.0,
        triggered: false,
        multiplicity: 0,
    };
    let mut v = vec![
        mk(1, 0.0),
        mk(1, 15.0),
        mk(1, 20.0),
        mk(1, 21.0),
        mk(2, 5.0),
        mk(1, 100.0),
    ];
    hits::set_multiplicity(&mut v);
    let m: Vec<(u32, f64, u32)> = v
        .iter()
        .map(|h| (h.dom_id, h.time, h.multiplicity))
        .collect();
    assert_eq!(
        m,
        [
            (1, 0.0, 3),
            (1, 15.0, 3),
            (1, 20.0, 3),
            (1, 21.0, 1),
            (1, 100.0, 1),
            (2, 5.0, 1)
        ]
    );
}

#[test]
fn trigger_flags_as_the_original() {
    assert_eq!(trigger_flags(22), "MX 3DM 3DS");
    assert_eq!(trigger_flags(2), "3DS");
    assert_eq!(trigger_flags(1 << 5), "");
}

fn s(o: i64, h: i64, t: i64) -> Sizes {
    Sizes {
        overlays: o,
        n_hits: h,
        n_triggered_hits: t,
    }
}

#[test]
fn top10_rule_on_a_sequence_with_ties() {
    let mut table: Vec<Sizes> = Vec::new();
    let mut entered = Vec::new();
    // Ten events fill the table whatever their size (limits are 0) …
    for i in 1..=10 {
        let e = s(i, 100 + i, 10 + i);
        if Limits::of(&table).is_candidate(&e) {
            table.push(e);
            entered.push(i);
        }
    }
    assert_eq!(entered.len(), 10);
    // … then the 10th best of each column is the bar: (1, 101, 11).
    let l = Limits::of(&table);
    assert_eq!(l.0, s(1, 101, 11));
    // Ties with the 10th best do not enter; one column beating it does.
    assert!(!l.is_candidate(&s(1, 101, 11)));
    assert!(!l.is_candidate(&s(0, 0, 0)));
    assert!(l.is_candidate(&s(2, 0, 0)));
    assert!(l.is_candidate(&s(0, 102, 0)));
    assert!(l.is_candidate(&s(0, 0, 12)));
    table.push(s(0, 0, 12));
    // The triggered-hits list moved up; the others did not.
    assert_eq!(Limits::of(&table).0, s(1, 101, 12));
    // Strictly greater: an all-zero event does not even enter an empty table.
    assert!(!Limits::default().is_candidate(&s(0, 0, 0)));
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("km3mon-zt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn row(tc: i64, sizes: Sizes) -> Row {
    Row {
        sizes,
        n_dus: 2,
        plot_filename: format!("/plots/event_selection/x{tc}.png"),
        run_id: 6760,
        det_id: 44,
        frame_index: 1,
        trigger_counter: tc,
        utc_timestamp: 1_574_432_873,
    }
}

#[test]
fn sqlite_rows_limits_and_no_duplicates() {
    let d = tmpdir("db");
    let path = d.join("data/monitoring.sqlite3");
    {
        let mut db = SelectionDb::open(&path, "event_selection").unwrap();
        assert_eq!(db.limits().unwrap(), Limits::default());
        for tc in 1..=12 {
            assert!(db.insert(&row(tc, s(tc, 10 * tc, tc))).unwrap());
        }
        assert!(!db.insert(&row(5, s(99, 99, 99))).unwrap(), "duplicate");
        assert_eq!(db.count().unwrap(), 12);
        assert_eq!(db.limits().unwrap().0, s(3, 30, 3));
    }
    // Reopened (a restart): same rows, WAL mode kept.
    let db = SelectionDb::open(&path, "event_selection").unwrap();
    assert_eq!(db.count().unwrap(), 12);
    let c = rusqlite::Connection::open(&path).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // The original's columns, in order (the web's top-10 page reads them).
    let cols: Vec<String> = c
        .prepare("SELECT name FROM pragma_table_info('event_selection')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        cols,
        [
            "overlays",
            "n_hits",
            "n_triggered_hits",
            "n_dus",
            "plot_filename",
            "run_id",
            "det_id",
            "frame_index",
            "trigger_counter",
            "utc_timestamp"
        ]
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn legacy_table_with_text_values_and_duplicates_still_works() {
    let d = tmpdir("legacy");
    let path = d.join("m.sqlite3");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "CREATE TABLE event_selection (overlays INT, n_hits INT, n_triggered_hits INT, n_dus INT, \
         plot_filename TEXT, run_id INT, det_id INT, frame_index INT, trigger_counter INT, utc_timestamp INT);
         INSERT INTO event_selection VALUES ('7','70','7','1','/plots/a.png','1','44','1','1','0');
         INSERT INTO event_selection VALUES ('7','70','7','1','/plots/a.png','1','44','1','1','0');",
    )
    .unwrap();
    drop(c);
    let mut db = SelectionDb::open(&path, "event_selection").unwrap();
    // The legacy duplicates block the unique index; the insert guard
    // still recognises the event (text values compare as integers).
    let mut dup = row(1, s(1, 1, 1));
    dup.run_id = 1;
    assert!(!db.insert(&dup).unwrap());
    assert_eq!(db.limits().unwrap(), Limits::default());
    let mut r = row(2, s(8, 80, 8));
    r.run_id = 1;
    assert!(db.insert(&r).unwrap());
    assert_eq!(db.count().unwrap(), 3);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn plot_thread_writes_png_candidates_and_skips_routine_plots() {
    use super::worker::{file_stem, Setup, State};
    let d = tmpdir("worker");
    let det = Arc::new(detx());
    let cfg: super::ZtPlot = serde_json::from_str(r#"{"db": "data/m.sqlite3"}"#).unwrap();
    let setup = Setup {
        cfg,
        db: d.join("data/m.sqlite3"),
        dir: d.join("plots"),
        source: Box::new(super::calib_source::Static(det)),
        metrics: Arc::new(pipeline::runtime::metrics::NodeMetrics::new()),
        control: control(),
        elog: None,
    };
    let mut st = State::new(setup);
    let evs = sample_events();
    for (_, e) in &evs {
        st.event(e);
    }
    assert!(d.join("plots/ztplot.png").is_file());
    // All three enter an empty table (limits 0).
    for (frame, e) in &evs {
        let stem = file_stem(44, 6760, e.header.frame_index, e.trigger_counter);
        let dat = d.join(format!("plots/event_selection/{stem}.dat"));
        assert_eq!(&std::fs::read(&dat).unwrap(), frame);
        assert!(d
            .join(format!("plots/event_selection/{stem}.png"))
            .is_file());
    }
    // The same events again (a replay): no new rows.
    for (_, e) in &evs {
        st.event(e);
    }
    let c = rusqlite::Connection::open(d.join("data/m.sqlite3")).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM event_selection", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn synthetic_event_without_detector_doms_is_plotted_empty() {
    let det = detx();
    let ev = Event {
        version: Some(4),
        header: DaqHeader {
            det_id: 44,
            run: 1,
            ..Default::default()
        },
        trigger_counter: 1,
        trigger_mask: 2,
        overlays: 0,
        triggered_hits: vec![TriggeredHit {
            dom_id: 1,
            channel_id: 0,
            time: 10,
            tot: 20,
            trigger_mask: 2,
        }],
        snapshot_hits: vec![SnapshotHit {
            dom_id: 1,
            channel_id: 0,
            time: 10,
            tot: 20,
        }],
    };
    let cal = calibrate(&det, &ev);
    assert_eq!((cal.hits.len(), cal.uncalibrated), (0, 1));
    assert!(!passes_cuts(&det, &ev, 1, 1));
}

fn control() -> Arc<pipeline::control::NodeControl> {
    pipeline::control::Control::default().register(
        "ztplot",
        "ztplot",
        "output",
        pipeline::operator::Role::Sink,
        Arc::new(pipeline::runtime::metrics::NodeMetrics::new()),
    )
}

#[test]
fn unwritable_output_fails_the_node_once_naming_the_file() {
    use super::worker::{Setup, State};
    let d = tmpdir("unwritable");
    // The plot folder's place is taken by a file: every plot fails.
    std::fs::write(d.join("plots"), "not a folder").unwrap();
    let cfg: super::ZtPlot = serde_json::from_str(r#"{"db": "data/m.sqlite3"}"#).unwrap();
    let control = control();
    let setup = Setup {
        cfg,
        db: d.join("data/m.sqlite3"),
        dir: d.join("plots"),
        source: Box::new(super::calib_source::Static(Arc::new(detx()))),
        metrics: Arc::new(pipeline::runtime::metrics::NodeMetrics::new()),
        control: control.clone(),
        elog: None,
    };
    let mut st = State::new(setup);
    for (_, e) in &sample_events() {
        st.event(e);
    }
    match control.state() {
        pipeline::control::NodeState::Failed(why) => {
            assert!(
                why.contains(&d.join("plots").display().to_string()),
                "{why}"
            )
        }
        other => panic!("expected FAILED, got {other:?}"),
    }
}

#[test]
fn a_database_that_cannot_be_opened_is_retried_and_the_selection_resumes() {
    use super::worker::{file_stem, Setup, State};
    let d = tmpdir("db-reopen");
    // The database's folder is taken by a file: the database cannot open.
    std::fs::write(d.join("data"), "not a folder").unwrap();
    let db = d.join("data/m.sqlite3");
    let cfg: super::ZtPlot = serde_json::from_str(r#"{"db": "data/m.sqlite3"}"#).unwrap();
    let control = control();
    let mut st = State::new(Setup {
        cfg,
        db: db.clone(),
        dir: d.join("plots"),
        source: Box::new(super::calib_source::Static(Arc::new(detx()))),
        metrics: Arc::new(pipeline::runtime::metrics::NodeMetrics::new()),
        control: control.clone(),
        elog: None,
    });
    let evs = sample_events();
    for (_, e) in &evs {
        st.event(e);
    }
    // The routine plot is drawn, the selection is off and the node says why.
    assert!(d.join("plots/ztplot.png").is_file());
    assert!(!d.join("plots/event_selection").exists());
    match control.state() {
        pipeline::control::NodeState::Failed(why) => {
            assert!(why.contains(&db.display().to_string()), "{why}")
        }
        other => panic!("expected FAILED, got {other:?}"),
    }
    // The cause goes away: within the back-off the database opens, the
    // top 10 fills and the node runs again.
    std::fs::remove_file(d.join("data")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let stem = file_stem(
        44,
        6760,
        evs[0].1.header.frame_index,
        evs[0].1.trigger_counter,
    );
    let first = d.join(format!("plots/event_selection/{stem}.dat"));
    while !first.is_file() {
        assert!(
            std::time::Instant::now() < deadline,
            "database never reopened"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        for (_, e) in &evs {
            st.event(e);
        }
    }
    let c = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = c
        .query_row("SELECT count(*) FROM event_selection", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(control.state(), pipeline::control::NodeState::Running);
    let _ = std::fs::remove_dir_all(d);
}

/// A stand-in ELOG (no real one can run here; written from spec
/// integrations.md §6.2): answers every POST with 302 to a new entry and
/// hands the raw requests to the test.
fn elog_standin() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut c) = conn else { return };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let _ = write!(
                c,
                "HTTP/1.1 302 Found\r\nLocation: /Operations+FR/{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                n + 1
            );
            let _ = tx.send(format!("{head}\r\n{}", String::from_utf8_lossy(&body)));
        }
    });
    (url, rx)
}

#[test]
fn each_new_top10_event_is_posted_to_the_elog_once() {
    use super::worker::{Setup, State};
    use messaging::elog::{password_hash, ElogConfig, ElogSender};
    let d = tmpdir("elog");
    let det = Arc::new(detx());
    let (url, rx) = elog_standin();
    let cfg: super::ZtPlot = serde_json::from_str(r#"{"db": "data/m.sqlite3"}"#).unwrap();
    let run = |expect_posts: usize| {
        let (sender, deliver) = ElogSender::new(
            ElogConfig {
                url: url.clone(),
                logbook: "Operations+FR".into(),
                username: "km3net".into(),
                password: "swordfish".into(),
                author: "km3mon".into(),
                entry_type: "Monitoring".into(),
                timeout: std::time::Duration::from_secs(5),
                attempts: 2,
                backoff: std::time::Duration::from_millis(10),
            },
            10,
        );
        let counts = sender.counts.clone();
        let thread = std::thread::spawn(deliver);
        let mut st = State::new(Setup {
            cfg: cfg.clone(),
            db: d.join("data/m.sqlite3"),
            dir: d.join("plots"),
            source: Box::new(super::calib_source::Static(det.clone())),
            metrics: Arc::new(pipeline::runtime::metrics::NodeMetrics::new()),
            control: control(),
            elog: Some(sender),
        });
        for (_, e) in &sample_events() {
            st.event(e);
        }
        drop(st);
        thread.join().unwrap();
        assert_eq!(
            counts.posted.load(std::sync::atomic::Ordering::Relaxed),
            expect_posts as u64
        );
        (0..expect_posts)
            .map(|_| rx.recv().unwrap())
            .collect::<Vec<_>>()
    };
    // All three sample events enter an empty table: three entries.
    let posts = run(3);
    let first = &posts[0];
    assert!(first.starts_with("POST /Operations+FR HTTP/1.1"), "{first}");
    assert!(first.contains("multipart/form-data; boundary="), "{first}");
    let hash = password_hash("swordfish");
    for (name, value) in [
        ("exp", "Operations+FR"),
        ("cmd", "Submit"),
        ("Subject", "New massive event!"),
        ("Author", "km3mon"),
        ("Type", "Monitoring"),
        ("unm", "km3net"),
        ("upwd", hash.as_str()),
    ] {
        let part = format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
        assert!(first.contains(&part), "{name} missing in {first}");
    }
    assert!(first.contains("name=\"When\"\r\n\r\n1"), "{first}");
    assert!(
        first.contains("name=\"attfile1\"; filename=\"ztplot_00000044_00006760_FI"),
        "{first}"
    );
    assert!(
        first.contains("\u{FFFD}PNG\r\n"),
        "the z-t plot is attached"
    );
    assert!(
        first.contains("name=\"Text\"; filename=\"Text\""),
        "{first}"
    );
    assert!(first.contains("A new event entered the top 10"), "{first}");
    // The same events again: none enters (already in the table), no post.
    run(0);
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(300))
        .is_err());
    let _ = std::fs::remove_dir_all(d);
}
