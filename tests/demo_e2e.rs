//! `km3mon demo` end to end (one process: Ligier, simulator, the full
//! graph, the web server): it prints its URL and login, the overview plots
//! appear and are served within a minute, pages need the login, SIGTERM
//! stops it with status 0. And fault → alert: a simulator recording with
//! each fault, replayed through graphs/km3mon.toml, raises the alert the
//! monitors promise (docs/simulator.md, "Faults").
//!
//! Loopback only; every wait is bounded.

mod common;

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::Guard;
use std::time::{Duration, Instant};

fn scratch(test: &str) -> PathBuf {
    common::scratch("demo-e2e", test)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Kills the demo if the test fails half-way, so no process outlives it.
/// `GET path` over plain HTTP/1.1: (status, body).
fn get(port: u16, path: &str, auth: Option<(&str, &str)>) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the demo");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some((u, p)) = auth {
        req += &format!(
            "Authorization: Basic {}\r\n",
            web::auth::base64_encode(format!("{u}:{p}").as_bytes())
        );
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    let mut body = raw[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    (status, body)
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

#[test]
fn demo_serves_the_overview_and_stops_on_sigterm() {
    // A folder the demo creates itself (mode 0700).
    let dir = scratch("demo").join("demo");
    let port = common::free_port();
    let started = common::start_demo(
        [
            OsStr::new("--port"),
            OsStr::new(&port.to_string()),
            OsStr::new("--dir"),
            dir.as_os_str(),
        ],
        &[],
    );
    let mut demo = started.guard;

    // The one stdout line: `http://127.0.0.1:PORT/  user NAME  password PASS`.
    let line = started.line;
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 5, "unexpected URL line {line:?}");
    assert_eq!(words[0], format!("http://127.0.0.1:{port}/"));
    assert_eq!((words[1], words[3]), ("user", "password"));
    let creds = (words[2], words[4]);
    assert!(
        creds.1.len() >= 12,
        "a generated password, not {:?}",
        creds.1
    );

    // The password is readable by its owner only.
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&dir), 0o700, "the demo folder");
    assert_eq!(mode(&dir.join("pipeline.toml")), 0o600, "the site config");
    second_demo_is_refused_untouched(&dir);

    let (status, body) = get(port, "/", Some(creds));
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("dom_rates"));
    assert_eq!(get(port, "/", None).0, 401, "pages need the login");
    assert_eq!(get(port, "/", Some((creds.0, "wrong"))).0, 401);

    // The overview plots appear on disk and are served, within a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    // …and the AHRS tab's (identity constants of the demo, 10-s windows).
    // …and the RTTC tab's (the demo's Detector Manager stand-in).
    let mut missing = vec![
        "dom_rates.png",
        "trigger_rates.png",
        "yaw_calib_du1.png",
        "rttc.png",
        // …and the Acoustics tab's (`[Acoustics] at_start`: the last
        // window at the first data, not after the first 10-min cycle).
        "Online_Acoustic_Monitoring.png",
    ];
    while !missing.is_empty() {
        missing.retain(|p| {
            !dir.join("plots").join(p).is_file() || {
                let (status, body) = get(port, &format!("/plots/{p}"), Some(creds));
                status != 200 || !body.starts_with(b"\x89PNG")
            }
        });
        assert!(
            Instant::now() < deadline,
            "not served within 60 s: {missing:?} (plots: {:?})",
            std::fs::read_dir(dir.join("plots"))
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let status = common::terminate(&mut demo.0, Duration::from_secs(60), "demo");
    assert!(status.success(), "demo exited with {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The calibration tabs of a running demo in headless Chromium: the
/// Acoustics, AHRS and RTTC pages show their plots (every image loaded,
/// none a "not written yet" placeholder). The Acoustics plot comes from
/// the demo's KM3NeT DB stand-in (`testdb`, written from the spec; no
/// real DB here) at the first data (`[Acoustics] at_start = true` of the
/// example site config). Bounded: 90 s for the plots, 20 s per page.
#[test]
fn demo_tabs_show_the_calibration_plots_in_chromium() {
    let Some(chromium) = common::browser::find_chromium() else {
        panic!("chromium not found: install it (scripts/test does), or set KM3MON_CHROMIUM");
    };
    let base = scratch("tabs");
    let dir = base.join("demo");
    let port = common::free_port();
    let demo = common::start_demo(
        [
            OsStr::new("--port"),
            OsStr::new(&port.to_string()),
            OsStr::new("--dir"),
            dir.as_os_str(),
            OsStr::new("--generate-detector"),
            OsStr::new("2x18"),
        ],
        &[],
    );
    let mut guard = demo.guard;
    let plots = [
        ("acoustics", vec!["Online_Acoustic_Monitoring"]),
        (
            "ahrs",
            vec!["yaw_calib_du1", "pitch_calib_du2", "roll_calib_du1"],
        ),
        ("rttc", vec!["rttc"]),
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    for name in plots.iter().flat_map(|(_, p)| p) {
        while !dir.join(format!("plots/{name}.png")).is_file() {
            assert!(Instant::now() < deadline, "{name}.png not within 90 s");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let b = common::browser::Browser::launch(&chromium, &base.join("chrome-profile"));
    let mut page = b.page();
    page.call("Network.enable", serde_json::json!({}));
    let auth = web::auth::base64_encode(format!("{}:{}", demo.user, demo.password).as_bytes());
    page.call(
        "Network.setExtraHTTPHeaders",
        serde_json::json!({ "headers": { "Authorization": format!("Basic {auth}") } }),
    );
    page.call("Page.enable", serde_json::json!({}));
    for (tab, names) in &plots {
        page.navigate(&format!("http://127.0.0.1:{port}/{tab}.html"));
        for name in names {
            let ready = format!(
                "(() => {{ const f = document.querySelector('figure[data-plot={name}]');                  const i = f && f.querySelector('img');                  return !!i && !f.classList.contains('missing') && i.complete && i.naturalWidth > 0; }})()"
            );
            page.wait_true(&ready, &format!("{tab}.html shows {name}"));
        }
    }
    // rttc.png: one panel per DU (2 DUs, one row); the browser shows the
    // picture at the size of the grid its JSON describes.
    page.navigate(&format!("http://127.0.0.1:{port}/rttc.html"));
    let shown = page.eval(
        "new Promise(r => { const i = document.querySelector('figure[data-plot=rttc] img');              const done = () => r([i.naturalWidth, i.naturalHeight]);              if (i.complete && i.naturalWidth > 0) done(); else i.onload = done; })",
    );
    let json = std::fs::read_to_string(dir.join("plots/rttc.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let labels: Vec<&str> = doc["dus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["DU 1", "DU 2"], "{json}");
    assert_eq!(doc["layout"]["panels"], 2, "{json}");
    assert_eq!(shown, doc["layout"]["size_px"], "{json}");
    // The acoustics plot is the matrix of the demo's DUs (2 DUs × 3 beacons).
    let json = std::fs::read_to_string(dir.join("plots/Online_Acoustic_Monitoring.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["status"], "ok", "{json}");
    assert_eq!(doc["doms"].as_array().map(Vec::len), Some(2 * 19), "{json}");
    drop(b);
    let status = common::terminate(&mut guard.0, Duration::from_secs(60), "demo");
    assert!(status.success(), "demo exited with {status}");
    let _ = std::fs::remove_dir_all(&base);
}

/// A second demo on the running one's folder stops before it rewrites any
/// of that demo's files (it used to write a new password and Ligier port
/// first, and only then find the control socket taken).
fn second_demo_is_refused_untouched(dir: &std::path::Path) {
    let files = ["pipeline.toml", "km3mon.toml", "detector.detx"];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    let mut second = Guard(
        Command::new(common::km3mon())
            .args(["demo", "--port", "0", "--dir"])
            .arg(dir)
            .env("KM3MON_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a second demo"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = second.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the second demo did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    second
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "second demo: {status}");
    assert!(err.contains("another km3mon instance"), "{err}");
    for (f, b) in files.iter().zip(&before) {
        assert!(
            std::fs::read(dir.join(f)).unwrap() == *b,
            "{f} was rewritten"
        );
    }
}

/// A 2-minute recording of a 3-DU detector with `fault`, replayed through
/// the suite with a 20 s inactive-DOM threshold: the alert keys that fired.
fn fault_alerts(test: &str, fault: &str) -> (Vec<String>, String) {
    let dir = scratch(test);
    let out = dir.join("out");
    let (rec, detx) = common::simulate(&dir, "3x18", "2m", &["--fault", fault]);
    let example = std::fs::read_to_string(repo().join("pipeline.toml.example")).unwrap();
    assert!(example.contains("inactive_after = 300"));
    let site = dir.join("site.toml");
    std::fs::write(
        &site,
        example.replace("inactive_after = 300", "inactive_after = 20"),
    )
    .unwrap();
    let replay = common::run_ok(&[
        "replay",
        "--graph",
        "graphs/km3mon.toml",
        "--config",
        site.to_str().unwrap(),
        "--detector",
        detx.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        rec.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&replay.stderr).to_string();
    let alerts = std::fs::read_to_string(out.join("data/alerts.jsonl")).unwrap_or_default();
    let firing = alerts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON alert line"))
        .filter(|v| v["state"] == "firing")
        .map(|v| v["key"].as_str().unwrap_or_default().to_string())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    (firing, stderr)
}

fn assert_fires(keys: &[String], prefix: &str, fault: &str) {
    assert!(
        keys.iter().any(|k| k.starts_with(prefix)),
        "{fault}: no `{prefix}…` alert fired; fired: {keys:?}"
    );
}

#[test]
fn dom_silent_raises_dom_inactive() {
    let (keys, stderr) = fault_alerts("silent", "dom-silent@10s");
    assert_fires(&keys, "dom_inactive:", "dom-silent");
    // The replay summary names what fired.
    assert!(stderr.contains("alerts raised:"), "no summary in {stderr}");
    assert!(
        stderr.contains("dom_inactive"),
        "summary without the alert: {stderr}"
    );
}

#[test]
fn du_timesync_raises_time_sync() {
    let (keys, _) = fault_alerts("timesync", "du-timesync@10s");
    assert_fires(&keys, "time_sync:", "du-timesync");
}

#[test]
fn trigger_zero_raises_trigger_rate_zero() {
    let (keys, _) = fault_alerts("trigger", "trigger-zero@10s");
    assert_fires(&keys, "trigger_rate_zero", "trigger-zero");
}

/// `ahrs-drift` turns one DU: in a replay of a 2-minute recording with
/// identity constants (the simulator's compasses are ideal), the yaw of
/// that DU's floors climbs at 2°/min after the fault starts, the other
/// DUs' yaw stays put; `data/ahrs_calibration.csv` has one row per DOM
/// and 10-s window.
#[test]
fn ahrs_drift_turns_the_dus_yaw() {
    let dir = scratch("ahrs");
    let out = dir.join("out");
    let (rec, detx) = common::simulate(&dir, "3x18", "2m", &["--fault", "ahrs-drift@30s:2"]);
    let det = daq::detector::Detector::from_file(&detx).unwrap();
    let cols = "DOMID\tACC_OFFSET_X\tACC_OFFSET_Y\tACC_OFFSET_Z\tMAG_XMIN\tMAG_XMAX\tMAG_YMIN\tMAG_YMAX\tMAG_ZMIN\tMAG_ZMAX\tACC_ROT_XX\tACC_ROT_XY\tACC_ROT_XZ\tACC_ROT_YX\tACC_ROT_YY\tACC_ROT_YZ\tACC_ROT_ZX\tACC_ROT_ZY\tACC_ROT_ZZ\tMAG_ROT_XX\tMAG_ROT_XY\tMAG_ROT_XZ\tMAG_ROT_YX\tMAG_ROT_YY\tMAG_ROT_YZ\tMAG_ROT_ZX\tMAG_ROT_ZY\tMAG_ROT_ZZ";
    let ident = "0\t0\t0\t0\t0\t0\t0\t0\t0\t1\t0\t0\t0\t1\t0\t0\t0\t1\t1\t0\t0\t0\t1\t0\t0\t0\t1";
    let mut table = format!("{cols}\n");
    for m in det.optical_modules() {
        table.push_str(&format!("{}\t{ident}\n", m.dom_id));
    }
    let constants = dir.join("ahrs.tsv");
    std::fs::write(&constants, table).unwrap();
    let example = std::fs::read_to_string(repo().join("pipeline.toml.example")).unwrap();
    let block = "[CalibrateAHRS]\ntime_range = 72\n";
    assert!(example.contains(block), "pipeline.toml.example changed");
    let site = dir.join("site.toml");
    std::fs::write(
        &site,
        example
            .replace("interval = 600\n", "interval = 10\n")
            .replace("db = true\n", "db = false\n")
            .replace(
                "constants = \"\"",
                &format!("constants = \"{}\"", constants.display()),
            ),
    )
    .unwrap();
    common::run_ok(&[
        "replay",
        "--graph",
        "graphs/km3mon.toml",
        "--config",
        site.to_str().unwrap(),
        "--detector",
        detx.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        rec.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(out.join("data/ahrs_calibration.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("time_utc,du,floor,dom_id,yaw,pitch,roll")
    );
    // (du, floor) → yaw per window, in time order.
    let mut yaw: std::collections::BTreeMap<(u32, i32), Vec<f64>> = Default::default();
    let mut rows = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        yaw.entry((f[1].parse().unwrap(), f[2].parse().unwrap()))
            .or_default()
            .push(f[4].parse().unwrap());
        rows += 1;
    }
    // 3 DUs × 18 floors, 12 windows of 10 s (the last one cut at the end).
    assert_eq!(yaw.len(), 54);
    assert_eq!(rows, 54 * 12, "one row per DOM and window");
    let turn = |v: &[f64]| {
        let d = v[v.len() - 2] - v[1];
        (d + 540.0).rem_euclid(360.0) - 180.0
    };
    for ((du, floor), v) in &yaw {
        let t = turn(v);
        if *du == 2 {
            // Windows 2…11 end at 20…110 s; the drift starts at 30 s: ~2.7°.
            assert!((2.0..3.5).contains(&t), "DU2 floor {floor}: turned {t}°");
        } else {
            assert!(t.abs() < 0.5, "DU{du} floor {floor}: turned {t}°");
        }
    }
    for p in ["yaw", "pitch", "roll"] {
        for du in 1..=3 {
            let json = out.join(format!("plots/{p}_calib_du{du}.json"));
            let doc: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
            assert_eq!(
                doc["floors"].as_array().unwrap().len(),
                18,
                "{}",
                json.display()
            );
            assert!(out.join(format!("plots/{p}_calib_du{du}.png")).is_file());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
