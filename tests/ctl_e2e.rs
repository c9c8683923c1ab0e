//! `km3mon ctl` and the control plane end to end.
//!
//! * The gate, in process: the shipped graph replays the sample dumps once
//!   as is and once with `dom_rates` stopped; the stopped node processes
//!   nothing (its input is counted as dropped, `stopped`) and writes no
//!   plot, while every other output is byte-identical.
//! * Live: `km3mon demo` (its own Ligier on 127.0.0.1 fed by the
//!   simulator, the full graph, the web server) steered through its
//!   control socket with the `km3mon ctl` binary and through the web's
//!   `POST /api/control`.
//!
//! Loopback only; every wait is bounded.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::Guard;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use pipeline::control::Control;
use pipeline::runtime::metrics::{DropReason, Metrics};
use pipeline::runtime::{self, Mode, RunOptions};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Replays the sample dumps through graphs/km3mon.toml into `out`, with
/// `stopped` nodes stopped from the start.
fn replay(out: &Path, stopped: &[&str]) -> (Arc<Metrics>, Arc<Control>) {
    let site = pipeline::site::SiteConfig::example();
    let graph = pipeline::Graph::load(
        &repo().join("graphs/km3mon.toml"),
        &site,
        &operators::registry(),
    )
    .expect("the shipped graph loads");
    let metrics = Arc::new(Metrics::default());
    let control = Arc::new(Control::new(Some(out), None));
    for name in stopped {
        let spec = graph.node(name).expect("a node of the graph");
        control.register(
            name,
            &spec.type_name,
            &spec.group,
            spec.role,
            metrics.node(name),
        );
        assert!(control.execute(&format!("stop {name}"), "test").ok);
    }
    let files = common::sample_dumps()
        .into_iter()
        .map(PathBuf::from)
        .collect();
    let mut opts = RunOptions::new(Mode::Replay { files, speed: None }, out.to_path_buf());
    opts.detector = Some(common::testdata().join("detx/detx_v4.detx"));
    opts.progress = false;
    opts.handle_signals = false;
    opts.metrics = Some(metrics.clone());
    opts.control = Some(control.clone());
    runtime::run(&graph, opts).expect("the replay runs");
    (metrics, control)
}

/// Every file under `dir` (relative path → bytes), but PNGs (their titles
/// carry the wall clock), SQLite files (not byte-stable) and the control
/// plane's audit file (its lines are wall-clock moments).
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x != "png" && x != "sqlite3") {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                if rel == "data/control_audit.jsonl" {
                    continue;
                }
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn a_stopped_node_drops_its_input_and_the_others_are_unchanged() {
    let base = common::scratch("ctl-e2e", "gate-base");
    let stop = common::scratch("ctl-e2e", "gate-stop");
    let (m0, _) = replay(&base, &[]);
    let (m1, c1) = replay(&stop, &["dom_rates"]);

    let n0 = m0.node("dom_rates");
    let n1 = m1.node("dom_rates");
    let input = m1
        .node("summaryslices")
        .records_out
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(input > 0, "the samples hold summaryslices");
    assert!(n0.records_in.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(n1.records_in.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(n1.records_out.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(n1.drops(DropReason::Stopped), input, "every record counted");
    assert_eq!(m0.node("dom_rates").drops(DropReason::Stopped), 0);
    let st = c1.execute("status dom_rates", "t");
    assert_eq!(st.nodes[0].state, "STOPPED");
    assert_eq!(st.nodes[0].drops_by_reason["stopped"], input);

    let a = outputs(&base);
    let b = outputs(&stop);
    assert!(a.contains_key("plots/dom_rates.json"));
    assert!(!b.contains_key("plots/dom_rates.json"));
    assert!(!stop.join("plots/dom_rates.png").exists());
    let others: Vec<&String> = a.keys().filter(|k| !k.contains("dom_rates")).collect();
    assert!(
        others.iter().any(|k| k.contains("dom_activity")),
        "{others:?}"
    );
    for k in others {
        assert!(
            b.get(k) == a.get(k),
            "{k} differs when dom_rates is stopped"
        );
    }
    assert_eq!(a.len() - 1, b.len(), "only dom_rates.json is missing");
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&stop);
}

/// A sink that cannot write reports it: `plots` when its folder is a file,
/// a CSV sink when its file is a folder; `start` clears the failure.
#[test]
fn sinks_that_cannot_write_are_failed() {
    let out = common::scratch("ctl-e2e", "failed");
    std::fs::write(out.join("plots"), "not a folder").unwrap();
    std::fs::create_dir_all(out.join("data/trigger_rates.csv")).unwrap();
    let (_, control) = replay(&out, &[]);
    let st = control.execute("status plots trigger_rates_csv tag_rates_csv", "t");
    let by_name: BTreeMap<&str, &pipeline::control::NodeStatus> =
        st.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    assert_eq!(by_name["plots"].state, "FAILED", "{}", st.text);
    let why = by_name["plots"].reason.as_deref().unwrap();
    assert!(
        why.starts_with("cannot write ") && why.contains("plots"),
        "{why}"
    );
    assert_eq!(by_name["trigger_rates_csv"].state, "FAILED", "{}", st.text);
    assert!(by_name["trigger_rates_csv"]
        .reason
        .as_deref()
        .unwrap()
        .contains("trigger_rates.csv"));
    assert_eq!(by_name["tag_rates_csv"].state, "RUNNING", "{}", st.text);
    assert!(st.text.contains("FAILED"), "{}", st.text);
    // The z-t plot writes into plots/ too: FAILED, naming its file (it
    // used to log one error per event instead).
    let zt = control.execute("status ztplot", "t");
    assert_eq!(zt.nodes[0].state, "FAILED", "{}", zt.text);
    assert!(
        zt.nodes[0].reason.as_deref().unwrap().contains("plots"),
        "{}",
        zt.text
    );
    // The reconstruction draws into plots/ on its own threads: failed too.
    let reco = control.execute("status royfit time_residuals", "t");
    assert!(
        reco.nodes.iter().all(|n| n.state == "FAILED"),
        "{}",
        reco.text
    );
    assert!(
        control
            .execute(
                "start plots trigger_rates_csv ztplot royfit time_residuals",
                "t"
            )
            .ok
    );
    assert!(!control.execute("status", "t").text.contains("FAILED"));
    let _ = std::fs::remove_dir_all(&out);
}

/// Kills the demo if the test fails half-way, so no process outlives it.
fn ctl(dir: &Path, words: &[&str]) -> Output {
    Command::new(common::km3mon())
        .arg("ctl")
        .arg("--out")
        .arg(dir)
        .args(words)
        .env("USER", "shifter")
        .output()
        .expect("run km3mon ctl")
}

fn ctl_ok(dir: &Path, words: &[&str]) -> String {
    let o = ctl(dir, words);
    assert!(
        o.status.success(),
        "ctl {words:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `ctl --json status NODE` → that node's status object.
fn node(dir: &Path, name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&ctl_ok(dir, &["--json", "status", name])).unwrap();
    v["nodes"][0].clone()
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Waits (bounded) until `p` is modified after `after`; returns the new time.
fn changed(p: &Path, after: Option<SystemTime>, within: Duration) -> SystemTime {
    let deadline = Instant::now() + within;
    loop {
        if let Some(t) = mtime(p) {
            if after.is_none_or(|a| t > a) {
                return t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} not updated within {within:?}",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `POST /api/control` over plain HTTP/1.1: (status, body).
fn post(port: u16, body: &str, ctype: &str, auth: Option<(&str, &str)>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the demo");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "POST /api/control HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some((u, p)) = auth {
        req += &format!(
            "Authorization: Basic {}\r\n",
            web::auth::base64_encode(format!("{u}:{p}").as_bytes())
        );
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

#[test]
fn ctl_steers_a_live_demo() {
    let dir = common::scratch("ctl-e2e", "demo");
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
    let creds = (started.user.as_str(), started.password.as_str());

    // The socket: only the user may steer.
    let sock = dir.join("km3mon.sock");
    let meta = std::fs::metadata(&sock).expect("the control socket exists once the URL is printed");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let plots = dir.join("plots");
    let rates = plots.join("dom_rates.png");
    let activity = plots.join("dom_activity.png");
    changed(&rates, None, Duration::from_secs(40));
    let status = ctl_ok(&dir, &["status"]);
    // One line per node of the shipped graph.
    let graph = std::fs::read_to_string(repo().join("graphs/km3mon.toml")).unwrap();
    let nodes = graph.lines().filter(|l| l.starts_with("[nodes.")).count();
    assert_eq!(status.lines().count(), nodes, "{status}");
    assert!(status.lines().all(|l| l.contains(" RUNNING ")), "{status}");
    // The detector table names the demo's detector (12x18) from the
    // start, whether an alert fired yet or not.
    let health = ctl_ok(&dir, &["health"]);
    assert!(
        health
            .lines()
            .next()
            .is_some_and(|l| l.contains(" 216 DOMs")),
        "{health}"
    );
    assert!(status.contains("monitoring_process:dom_rates "), "{status}");
    assert!(status.contains("logging:msg_dumper "), "{status}");

    // Stop one monitor: its input is dropped and counted, its plot stands
    // still, the others keep drawing.
    assert_eq!(
        ctl_ok(&dir, &["stop", "dom_rates"]).trim(),
        "monitoring_process:dom_rates: stopped"
    );
    // A window that closed just before the stop may still be drawn: wait
    // one round of the other plots, then compare over the next round.
    // (45 s: the map is drawn every 10 s of data time, but a demo on a
    // machine busy with the whole test suite lags.)
    let t1 = changed(&activity, mtime(&activity), Duration::from_secs(45));
    let frozen = mtime(&rates);
    let before = node(&dir, "dom_rates");
    changed(&activity, Some(t1), Duration::from_secs(45));
    let after = node(&dir, "dom_rates");
    assert_eq!(mtime(&rates), frozen, "dom_rates.png changed while stopped");
    assert_eq!(after["state"], "STOPPED");
    assert_eq!(after["records_in"], before["records_in"]);
    assert!(
        after["drops_by_reason"]["stopped"].as_u64().unwrap()
            > before["drops_by_reason"]["stopped"].as_u64().unwrap_or(0)
    );

    // Start: it draws again.
    ctl_ok(&dir, &["start", "dom_rates"]);
    changed(&rates, frozen, Duration::from_secs(45));
    assert_eq!(node(&dir, "dom_rates")["state"], "RUNNING");

    // A whole group, without touching the others.
    let out = ctl_ok(&dir, &["stop", "monitoring_process:*"]);
    let in_group = std::fs::read_to_string(repo().join("graphs/km3mon.toml"))
        .unwrap()
        .lines()
        .filter(|l| l.trim() == "group = \"monitoring_process\"")
        .count();
    assert!(in_group >= 7, "graphs/km3mon.toml changed its groups");
    assert_eq!(out.lines().count(), in_group, "{out}");
    let status = ctl_ok(&dir, &["status"]);
    for l in status.lines() {
        let want = if l.starts_with("monitoring_process:") {
            " STOPPED "
        } else {
            " RUNNING "
        };
        assert!(l.contains(want), "{l}");
    }
    ctl_ok(&dir, &["start", "monitoring_process:*"]);
    assert!(!ctl_ok(&dir, &["status"]).contains("STOPPED"));

    // Errors and exit codes.
    let o = ctl(&dir, &["stop", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such node `nosuch`"));
    let o = Command::new(common::km3mon())
        .args(["ctl", "--socket"])
        .arg(dir.join("nope.sock"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.sock"));

    // Silences, audited.
    ctl_ok(
        &dir,
        &["silence", "timesync:*", "2h", "DU", "7", "maintenance"],
    );
    assert!(ctl_ok(&dir, &["silences"]).starts_with("timesync:*  until "));
    ctl_ok(&dir, &["unsilence", "timesync:*"]);
    assert_eq!(ctl_ok(&dir, &["silences"]).trim(), "no active silences");

    // The web: with the login and JSON only.
    let cmd = r#"{"command": "restart dom_activity"}"#;
    assert_eq!(post(port, cmd, "application/json", None).0, 401);
    let (code, body) = post(port, cmd, "text/plain", Some(creds));
    assert_eq!(code, 415, "{body}");
    let (code, body) = post(port, cmd, "application/json", Some(creds));
    assert_eq!(code, 200, "{body}");
    assert_eq!(node(&dir, "dom_activity")["restarts"], 1);
    let (code, body) = post(
        port,
        r#"{"command": "stop"}"#,
        "application/json",
        Some(creds),
    );
    assert_eq!(code, 400);
    assert!(body.contains("needs a target"), "{body}");

    // The status page's buttons and silence form, in a browser.
    let chromium = common::browser::find_chromium()
        .expect("chromium not found: install it (scripts/test does), or set KM3MON_CHROMIUM");
    let b = common::browser::Browser::launch(&chromium, &dir.join("chrome-profile"));
    let mut page = b.page();
    page.call("Network.enable", serde_json::json!({}));
    let basic = format!(
        "Basic {}",
        web::auth::base64_encode(format!("{}:{}", creds.0, creds.1).as_bytes())
    );
    page.call(
        "Network.setExtraHTTPHeaders",
        serde_json::json!({ "headers": { "Authorization": basic } }),
    );
    page.navigate(&format!("http://127.0.0.1:{port}/status"));
    page.eval("window.confirm = () => true; true");
    let click = |page: &mut common::browser::Page, cmd: &str| {
        let sel = serde_json::Value::from(format!("button[data-cmd=\"{cmd}\"]"));
        page.wait_true(&format!("document.querySelector({sel}) !== null"), cmd);
        page.eval(&format!("document.querySelector({sel}).click(); true"));
    };
    let reply_has = |page: &mut common::browser::Page, text: &str| {
        let t = serde_json::Value::from(text);
        page.wait_true(
            &format!("(document.getElementById('control-reply').textContent || '').includes({t})"),
            text,
        );
    };
    click(&mut page, "stop monitoring_process:*");
    reply_has(&mut page, "monitoring_process:dom_rates: stopped");
    page.wait_true(
        "document.querySelector('tr[data-node=\"dom_rates\"] td.ctl-stopped') !== null",
        "the table shows dom_rates stopped",
    );
    assert_eq!(
        page.eval("document.querySelector('button[data-cmd=\"stop dom_rates\"]').disabled"),
        true,
        "a stopped node's stop button is disabled"
    );
    assert_eq!(node(&dir, "pmt_rates")["state"], "STOPPED");
    assert_eq!(node(&dir, "plots")["state"], "RUNNING");
    click(&mut page, "start dom_rates");
    reply_has(&mut page, "monitoring_process:dom_rates: started");
    assert_eq!(node(&dir, "dom_rates")["state"], "RUNNING");
    assert_eq!(node(&dir, "pmt_rates")["state"], "STOPPED");
    page.eval(
        "var f = document.getElementById('silence-form'); f.elements.pattern.value = 'dom_activity:*'; \
         f.elements.duration.value = '30m'; f.elements.reason.value = 'DU 3 swap'; f.requestSubmit(); true",
    );
    reply_has(&mut page, "silenced `dom_activity:*`");
    assert!(ctl_ok(&dir, &["silences"]).contains("dom_activity:*  until "));
    click(&mut page, "unsilence dom_activity:*");
    reply_has(&mut page, "unsilenced `dom_activity:*`");
    click(&mut page, "start monitoring_process:*");
    reply_has(&mut page, "monitoring_process:pmt_rates: started");
    assert!(!ctl_ok(&dir, &["status"]).contains("STOPPED"));
    drop(page);
    drop(b);

    let audit = std::fs::read_to_string(dir.join("data/control_audit.jsonl")).unwrap();
    let control: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["monitor"] == "control")
        .collect();
    let states: Vec<(&str, &str)> = control
        .iter()
        .map(|v| (v["key"].as_str().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states[0], ("dom_rates", "stopped"));
    assert_eq!(states[1], ("dom_rates", "started"));
    assert!(states.contains(&("timesync:*", "silenced")));
    assert!(states.contains(&("timesync:*", "unsilenced")));
    assert!(states.contains(&("dom_activity", "restarted")));
    assert!(states.contains(&("dom_activity:*", "silenced")));
    // The group start comes last, one line per node of the group.
    assert_eq!(states.last().map(|s| s.1), Some("started"));
    assert!(states.contains(&("trigger_rates", "started")));
    assert_eq!(
        control[0]["message"],
        "stop monitoring_process:dom_rates by shifter (ctl)"
    );
    let last = control.last().unwrap()["message"].as_str().unwrap();
    assert!(
        last.starts_with("start monitoring_process:")
            && last.ends_with(&format!(" by {} (web)", creds.0)),
        "{last}"
    );

    let status = common::terminate(&mut demo.0, Duration::from_secs(60), "demo");
    assert!(status.success(), "demo exited with {status}");
    assert!(!sock.exists(), "the socket is removed at exit");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (bounded) for `path` to exist.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `km3mon run` without a web login: the socket works, a second instance
/// on the same socket is refused, the web refuses control (403) and shows
/// no buttons; a standalone `km3mon serve` has no control at all (501).
#[test]
fn run_socket_is_exclusive_and_web_control_needs_a_login() {
    let dir = common::scratch("ctl-e2e", "run");
    let (ligier_port, web_port) = (common::free_port(), common::free_port());
    let start = |out: &str| {
        Command::new(common::km3mon())
            .args(["run", "--graph"])
            .arg(repo().join("graphs/tag_rates.toml"))
            .args(["--out", out, "--web", &format!("127.0.0.1:{web_port}")])
            // Nobody listens there: the source keeps reconnecting.
            .env("DAQ_LIGIER_PORT", ligier_port.to_string())
            .env("KM3MON_LOG", "warn")
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start km3mon run")
    };
    let run = Guard(start("out"));
    let sock = dir.join("out/km3mon.sock");
    wait_for(&sock);
    // The socket listens before the graph is built: wait for its nodes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = ctl_ok(&dir.join("out"), &["status"]);
        if s.lines().count() == 3 {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.starts_with("daq:daq "), "{status}");
    assert!(status.contains("monitoring_process:rates "), "{status}");
    assert!(status.contains("output:csv "), "{status}");

    let second = start("out").wait_with_output().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another km3mon instance listens on"), "{err}");
    assert!(sock.exists(), "the first instance's socket stays");

    let deadline = Instant::now() + Duration::from_secs(20);
    let (code, body) = loop {
        if TcpStream::connect(("127.0.0.1", web_port)).is_ok() {
            break post(
                web_port,
                r#"{"command": "stop all"}"#,
                "application/json",
                None,
            );
        }
        assert!(Instant::now() < deadline, "the web server never listened");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("needs a login"), "{body}");
    assert!(!ctl_ok(&dir.join("out"), &["status"]).contains("STOPPED"));

    let mut run = run;
    common::terminate(&mut run.0, Duration::from_secs(30), "km3mon run");
    assert!(!sock.exists());

    // `km3mon serve` forwards commands to the pipeline's control socket
    // (`<out>/km3mon.sock`); with no pipeline there it says so.
    let site = dir.join("site.toml");
    std::fs::write(
        &site,
        "[WebServer]\nusername = \"u\"\npassword = \"p-long-enough\"\noutput_dir = \"out\"\n",
    )
    .unwrap();
    let mut serve = Guard(
        Command::new(common::km3mon())
            .args(["serve", "--config"])
            .arg(&site)
            .args(["--bind", &format!("127.0.0.1:{web_port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start km3mon serve"),
    );
    let mut line = String::new();
    BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let cmd = r#"{"command": "status"}"#;
    assert_eq!(post(web_port, cmd, "application/json", None).0, 401);
    let (code, body) = post(
        web_port,
        cmd,
        "application/json",
        Some(("u", "p-long-enough")),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("control socket") && body.contains("km3mon.sock"),
        "{body}"
    );
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}
