//! The shore-station deployment (deploy/, docs/deploy.md) as a person
//! would set it up, minus systemd and docker themselves: the units are
//! checked by `systemd-analyze verify`, the compose file by Debian's
//! `docker-compose config` (both installed by scripts/test), and the
//! services are started as local processes with exactly the commands and
//! environment the unit files declare (parsed from them; only the install
//! paths, the ports and `0.0.0.0` are substituted). A `km3mon ligier` plus
//! `km3mon simulate` stand in for the DAQ's data and log Ligiers.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, km3mon, scratch};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tool scripts/test installs; a clear failure when it is missing.
fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found: run scripts/test (it installs it with apt-get)");
}

struct Proc {
    child: Child,
    log: PathBuf,
    /// `Type=notify` units: systemd's end of NOTIFY_SOCKET.
    notify: Option<std::os::unix::net::UnixDatagram>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[Service]` keys of a unit file (one line each in ours).
fn service_keys(unit: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("deploy/systemd").join(unit)).unwrap();
    let mut in_service = false;
    let mut keys = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                keys.insert(k.to_string(), v.to_string());
            }
        }
    }
    keys
}

/// An EnvironmentFile: KEY=VALUE lines, `#` comments, quotes stripped.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// systemd's `${VAR}` expansion, one word at a time.
fn expand(word: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('}').expect("closing brace") + i;
        let var = &rest[i + 2..end];
        out.push_str(env.get(var).map(String::as_str).unwrap_or(""));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The local stand-ins for the install paths of the units.
struct Site {
    root: PathBuf,
    etc: PathBuf,
    var: PathBuf,
}

impl Site {
    fn substitute(&self, word: &str) -> String {
        word.replace("/usr/local/bin/km3mon", &km3mon().display().to_string())
            .replace("/etc/km3mon", &self.etc.display().to_string())
            .replace("/var/lib/km3mon", &self.var.display().to_string())
            .replace("0.0.0.0", "127.0.0.1")
    }

    /// Starts a unit's ExecStart= with the environment of its
    /// EnvironmentFile= (and nothing else but PATH, as systemd would).
    fn start(&self, unit: &str) -> Proc {
        let keys = service_keys(unit);
        let env_file = self.substitute(&keys["EnvironmentFile"]);
        let env = parse_env(&std::fs::read_to_string(&env_file).unwrap());
        let argv: Vec<String> = keys["ExecStart"]
            .split_whitespace()
            .map(|w| self.substitute(&expand(w, &env)))
            .collect();
        let log = self.root.join(format!("{unit}.log"));
        let mut cmd = Command::new(&argv[0]);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&env);
        // What systemd adds for Type=notify with WatchdogSec= (the
        // watchdog shortened from the unit's 60 s, to see pings soon).
        let notify = (keys.get("Type").map(String::as_str) == Some("notify")).then(|| {
            assert!(keys.contains_key("WatchdogSec"), "{unit}: no watchdog");
            let path = self.root.join(format!("{unit}.notify"));
            let _ = std::fs::remove_file(&path);
            let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            cmd.env("NOTIFY_SOCKET", &path)
                .env("WATCHDOG_USEC", "2000000");
            sock
        });
        let child = cmd
            .args(&argv[1..])
            .current_dir(&self.var)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{unit}: {argv:?}: {e}"));
        Proc { child, log, notify }
    }
}

/// The next sd_notify datagram.
fn notified(p: &Proc) -> String {
    let mut buf = [0u8; 512];
    let n = p
        .notify
        .as_ref()
        .expect("a notify unit")
        .recv(&mut buf)
        .expect("an sd_notify message within 60 s");
    String::from_utf8_lossy(&buf[..n]).to_string()
}

/// `GET path` (HTTP/1.0, so the body ends with the connection).
fn get(port: u16, path: &str, auth: Option<(&str, &str)>) -> (u16, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Vec::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    if let Some((u, p)) = auth {
        req += &format!(
            "Authorization: Basic {}\r\n",
            web::auth::base64_encode(format!("{u}:{p}").as_bytes())
        );
    }
    req += "\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return (0, Vec::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Vec::new());
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, raw[end + 4..].to_vec())
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn set_key(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut out = Vec::new();
    let mut in_section = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_section = line.trim() == format!("[{section}]");
        }
        if in_section && line.starts_with(&format!("{key} =")) {
            out.push(format!("{key} = {value}"));
        } else {
            out.push(line.to_string());
        }
    }
    out.join("\n") + "\n"
}

/// The trigger-rate history in the saved state: its end times (s).
fn history(state: &Path) -> Vec<u64> {
    let Ok(t) = std::fs::read_to_string(state.join("trigger_rates.w0.json")) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
    v["state"]["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|e| e[0].as_u64()).collect())
        .unwrap_or_default()
}

/// The top-10 events (det_id, run, frame index, trigger counter) of the
/// z-t plot's selection table; empty while the database is not there.
fn top10(db: &Path) -> Vec<(i64, i64, i64, i64)> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(conn) = rusqlite::Connection::open_with_flags(db, flags) else {
        return Vec::new();
    };
    let Ok(mut stmt) =
        conn.prepare("SELECT det_id, run_id, frame_index, trigger_counter FROM event_selection")
    else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map(|rows| rows.flatten().collect())
        .unwrap_or_default()
}

/// docs/deploy.md's path with the systemd units: `km3mon init`, edit
/// `.env`, start — plots on the web page, `ctl status` shows the graph,
/// /metrics exports every metric the Grafana dashboard asks for, JSON log
/// lines carry node names, and a SIGKILLed run restarted as
/// `Restart=on-failure` would resumes with its state (trigger-rate history,
/// top 10).
#[test]
fn services_from_the_unit_files_show_plots_and_survive_sigkill() {
    let root = scratch("deploy", "units");
    let site = Site {
        etc: root.join("etc"),
        var: root.join("var"),
        root: root.clone(),
    };
    std::fs::create_dir_all(&site.var).unwrap();
    let init = Command::new(km3mon())
        .args(["init", site.etc.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let steps = String::from_utf8_lossy(&init.stdout);
    assert!(
        steps.contains("next steps") && steps.contains(".env"),
        "{steps}"
    );

    // The stand-in DAQ: one Ligier for data and log, fed by the simulator.
    let daq_port = free_port();
    let detx = root.join("detector.detx");
    let _daq = spawn_plain(
        &root,
        "daq-ligier",
        &["ligier", "--port", &daq_port.to_string()],
    );
    wait_for("the DAQ Ligier", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", daq_port)).is_ok()
    });
    let _sim = spawn_plain(
        &root,
        "simulate",
        &[
            "simulate",
            "--generate-detector",
            "4x6",
            "--write-detector",
            detx.to_str().unwrap(),
            "--ligier",
            &format!("127.0.0.1:{daq_port}"),
            "--msg-interval",
            "2s",
        ],
    );

    // "Edit .env": the Ligier addresses, ports, the web password.
    let (mon, webp, metp) = (free_port(), free_port(), free_port());
    let mut env = std::fs::read_to_string(site.etc.join("example.env")).unwrap();
    for (k, v) in [
        ("DAQ_LIGIER_IP", "127.0.0.1".to_string()),
        ("DAQ_LIGIER_PORT", daq_port.to_string()),
        ("LOG_LIGIER_IP", "127.0.0.1".to_string()),
        ("LOG_LIGIER_PORT", daq_port.to_string()),
        ("MONITORING_LIGIER_PORT", mon.to_string()),
        ("WEBSERVER_PORT", webp.to_string()),
        ("METRICS_PORT", metp.to_string()),
        ("KM3MON_WEB_PASSWORD", "s3cret-deploy".to_string()),
    ] {
        let line = env
            .lines()
            .find(|l| l.starts_with(&format!("{k}=")))
            .unwrap();
        env = env.replace(line, &format!("{k}={v}"));
    }
    std::fs::write(site.etc.join(".env"), env).unwrap();
    // The site config: the detector, and plots every few seconds so that
    // the test need not wait the production intervals.
    let mut cfg = std::fs::read_to_string(site.etc.join("pipeline.toml")).unwrap();
    cfg = set_key(
        &cfg,
        "Detector",
        "file",
        &format!("{:?}", detx.display().to_string()),
    );
    for sec in ["DOMRates", "DOMActivity", "PMTRates", "TimesliceRate"] {
        cfg = set_key(&cfg, sec, "interval", "2");
    }
    cfg = set_key(&cfg, "TriggerRate", "interval", "2");
    std::fs::write(site.etc.join("pipeline.toml"), cfg).unwrap();
    wait_for(
        "the simulator's detector file",
        Duration::from_secs(30),
        || detx.exists(),
    );

    let _ligier = site.start("km3mon-ligier.service");
    let _mirror = site.start("km3mon-ligiermirror.service");
    let _logmirror = site.start("km3mon-ligierlogmirror.service");
    let mut run = site.start("km3mon.service");
    let auth = Some(("km3net", "s3cret-deploy"));
    // Type=notify: READY once the graph runs, then the watchdog pings.
    let first = notified(&run);
    assert!(first.contains("READY=1"), "{first}");
    let t = Instant::now();
    assert!(notified(&run).contains("WATCHDOG=1"));
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the first ping came late"
    );

    // Plots on the web page.
    wait_for(
        "dom_rates on the overview page",
        Duration::from_secs(90),
        || {
            let (s, body) = get(webp, "/api/plots", auth);
            s == 200 && String::from_utf8_lossy(&body).contains("\"dom_rates\"")
        },
    );
    let (s, page) = get(webp, "/", auth);
    assert_eq!(s, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("plots/dom_rates.png"), "{page}");
    let (s, png) = get(webp, "/plots/dom_rates.png", auth);
    assert_eq!((s, &png[..4]), (200, &b"\x89PNG"[..]));
    assert_eq!(get(webp, "/", None).0, 401, "pages need the login");
    assert_eq!(get(webp, "/healthz", None), (200, b"ok\n".to_vec()));

    // `km3mon ctl status` over the run's socket.
    let ctl = Command::new(km3mon())
        .args(["ctl", "--out", site.var.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&ctl.stdout);
    assert!(ctl.status.success(), "{ctl:?}");
    assert!(status.contains("monitoring_process:dom_rates") && status.contains("RUNNING"));

    // Every metric the dashboard queries, and the node names it filters
    // on, on the run's /metrics or the web's.
    let (s, metrics) = get(metp, "/metrics", None);
    assert_eq!(s, 200);
    let mut metrics = String::from_utf8_lossy(&metrics).to_string();
    // The plots' series are the web server's (one exporter per series).
    let (s, web_metrics) = get(webp, "/metrics", auth);
    assert_eq!(s, 200);
    metrics += &String::from_utf8_lossy(&web_metrics);
    let dash =
        std::fs::read_to_string(repo().join("deploy/grafana/km3mon-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&dash).unwrap();
    let mut queried = 0;
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for name in metric_names(expr) {
                queried += 1;
                // A histogram's buckets are declared under its family.
                let name = name.strip_suffix("_bucket").unwrap_or(&name);
                // Declared (`# TYPE`): a family without samples yet (no
                // drop of that detail so far) is still exported.
                assert!(
                    metrics.contains(&format!("# TYPE {name} ")),
                    "panel {:?} queries {name}, which /metrics does not export",
                    p["title"]
                );
            }
            for node in ["alerts_notify", "alerts_msg"] {
                if expr.contains(&format!("node=\"{node}\"")) {
                    assert!(metrics.contains(&format!("node=\"{node}\"")), "{node}");
                }
            }
        }
    }
    assert!(queried >= 8, "the dashboard queries {queried} metrics");
    assert!(metrics.contains("km3mon_build_info{version=\""));

    // The .env asks for JSON logs: lines from nodes name them.
    let log = std::fs::read_to_string(&run.log).unwrap();
    let from_nodes = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["span"]["node"].is_string() && v["span"]["group"].is_string())
        .count();
    assert!(from_nodes > 0, "no JSON log line names its node:\n{log}");

    // SIGKILL, then start again as Restart=on-failure would: the state
    // saved before (every --state-interval) is read back.
    let state = site.var.join("state");
    wait_for(
        "trigger-rate history in the state",
        Duration::from_secs(60),
        || history(&state).len() >= 2,
    );
    let before = history(&state);
    let sel_db = site.var.join("data/monitoring.sqlite3");
    wait_for("a top-10 event", Duration::from_secs(60), || {
        !top10(&sel_db).is_empty()
    });
    let top10_before = top10(&sel_db);
    run.child.kill().unwrap();
    run.child.wait().unwrap();
    let run2 = site.start("km3mon.service");
    wait_for("the restarted web server", Duration::from_secs(60), || {
        get(webp, "/healthz", None).0 == 200
    });
    // A run that started anew would save a history beginning after the
    // restart; the resumed one still has the entries from before.
    wait_for(
        "state saved again after the restart",
        Duration::from_secs(60),
        || history(&state).last() > before.last(),
    );
    let after = history(&state);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the trigger-rate history started anew instead of resuming"
    );
    let log2 = std::fs::read_to_string(&run2.log).unwrap();
    assert!(!log2.contains("unreadable state"), "{log2}");
    // The top 10 go on from the events selected before the kill.
    let top10_after = top10(&sel_db);
    for event in &top10_before {
        assert!(
            top10_after.contains(event),
            "top-10 event {event:?} lost in the restart: {top10_after:?}"
        );
    }
    drop(run2);
    drop(run);
    let _ = std::fs::remove_dir_all(&root);
}

fn spawn_plain(root: &Path, what: &str, args: &[&str]) -> Proc {
    let log = root.join(format!("{what}.log"));
    let child = Command::new(km3mon())
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Proc {
        child,
        log,
        notify: None,
    }
}

/// `km3mon_…` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("km3mon_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The compose file as Debian's docker-compose reads it (with the
/// example.env as the site's .env): valid, with the original's services.
#[test]
fn docker_compose_accepts_the_compose_file() {
    let dir = scratch("deploy", "compose");
    let c = dir.join("deploy/compose");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::copy(
        repo().join("deploy/compose/compose.yaml"),
        c.join("compose.yaml"),
    )
    .unwrap();
    std::fs::copy(repo().join("deploy/compose/example.env"), c.join(".env")).unwrap();
    let out = Command::new(tool("docker-compose"))
        .args(["-f", "compose.yaml", "config"])
        .current_dir(&c)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for svc in ["ligier:", "ligiermirror:", "ligierlogmirror:", "backend:"] {
        assert!(
            text.contains(&format!("\n  {svc}")),
            "service {svc} missing:\n{text}"
        );
    }
    // The .env reached the commands, quotes and all.
    assert!(
        text.contains("--tags=IO_EVT IO_SUM IO_TSSN MSG IO_MONIT"),
        "{text}"
    );
    for vol in ["logs", "data", "plots", "state"] {
        assert!(text.contains(&format!("/srv/km3mon/{vol}")), "volume {vol}");
    }
    assert!(text.contains("/healthz"));
    // And it does fail on a broken file.
    std::fs::write(
        c.join("compose.yaml"),
        "services:\n  backend:\n    restart: sometimes\n",
    )
    .unwrap();
    let bad = Command::new(tool("docker-compose"))
        .args(["-f", "compose.yaml", "config"])
        .current_dir(&c)
        .output()
        .unwrap();
    assert!(
        !bad.status.success(),
        "docker-compose accepted a broken file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every unit passes `systemd-analyze verify` without a single complaint
/// (unknown keys and bad values are only warnings there, so the test wants
/// an empty stderr). The units' paths are looked up under a scratch root
/// with the km3mon binary and the system's unit files.
#[test]
fn systemd_analyze_verifies_every_unit() {
    let root = scratch("deploy", "systemd");
    let units = root.join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
    // A hard link: a copy of the debug binary is hundreds of MB.
    let bin = root.join("usr/local/bin/km3mon");
    if std::fs::hard_link(km3mon(), &bin).is_err() {
        std::fs::copy(km3mon(), &bin).unwrap();
    }
    std::fs::copy("/usr/bin/env", root.join("usr/bin/env")).unwrap();
    let cp = Command::new("cp")
        .args(["-r", "/lib/systemd/system"])
        .arg(root.join("usr/lib/systemd/"))
        .status()
        .unwrap();
    assert!(cp.success());
    let mut names = Vec::new();
    for e in std::fs::read_dir(repo().join("deploy/systemd")).unwrap() {
        let p = e.unwrap().path();
        let n = p.file_name().unwrap().to_str().unwrap().to_string();
        if n.ends_with(".service") || n.ends_with(".target") {
            std::fs::copy(&p, units.join(&n)).unwrap();
            names.push(units.join(&n));
        }
    }
    assert_eq!(names.len(), 5, "{names:?}");
    let verify = |files: &[PathBuf]| {
        Command::new(tool("systemd-analyze"))
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .args(files)
            .output()
            .unwrap()
    };
    let out = verify(&names);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
    // A typo is caught.
    let bad = units.join("km3mon.service");
    let text = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(
        &bad,
        text.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"),
    )
    .unwrap();
    let out = verify(&[bad]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NoNewPrivilege"),
        "systemd-analyze did not notice the typo"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// An original km3mon `backend/pipeline.toml` (every section and key of the
/// original's key index, shared/spec/monitors.md §9.1, with its example
/// values) and the variables of its `.env`: `check` accepts it, and says
/// once per key what has no effect and what replaces it.
#[test]
fn check_accepts_the_original_site_config() {
    let dir = scratch("deploy", "original");
    let cfg = dir.join("pipeline.toml");
    std::fs::copy(repo().join("tests/fixtures/original-pipeline.toml"), &cfg).unwrap();
    let out = Command::new(km3mon())
        .args(["check", "--config", cfg.to_str().unwrap()])
        .env_clear()
        .envs([
            ("DETECTOR_ID", "49"),
            ("DAQ_LIGIER_IP", "192.168.0.110"),
            ("DAQ_LIGIER_PORT", "5553"),
            ("LOG_LIGIER_IP", "192.168.0.119"),
            ("LOG_LIGIER_PORT", "5553"),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Every node of the built-in graph (graphs/km3mon.toml) is accepted.
    let graph = std::fs::read_to_string(repo().join("graphs/km3mon.toml")).unwrap();
    let nodes = graph.lines().filter(|l| l.starts_with("[nodes.")).count();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("ok, {nodes} nodes")), "{stdout}");
    let warned = |s: &str, k: &str| {
        err.lines()
            .filter(|l| {
                l.starts_with("warning:") && l.contains(&format!("[{s}] {k} has no effect"))
            })
            .count()
    };
    for (s, k, replaced_by) in [
        ("PMTRates", "plot_path", "--out/plots"),
        ("TriggerRate", "data_path", "--out/data"),
        ("RecoPlotter", "max_events", "reco"),
        ("TimesliceRate", "filename", "timeslice_rates.png"),
    ] {
        assert_eq!(warned(s, k), 1, "[{s}] {k}:\n{err}");
        let line = err
            .lines()
            .find(|l| l.contains(&format!("[{s}] {k} has")))
            .unwrap();
        assert!(line.contains(replaced_by), "{line}");
    }
    // Keys that do take effect get no such warning.
    for (s, k) in [
        ("DOMRates", "lowest_rate"),
        ("TriggerRate", "interval"),
        ("Alerts", "shifters"),
        // The z-t plot posts top-10 events to the ELOG (docs/db.md).
        ("ZTPlot", "logbook"),
        // The ahrs_calibration node's plot range.
        ("CalibrateAHRS", "time_range"),
        ("ZTPlot", "elog"),
        ("ELOGService", "username"),
        ("ELOGService", "password"),
        ("ELOGService", "url"),
    ] {
        assert_eq!(warned(s, k), 0, "[{s}] {k}:\n{err}");
    }
    assert!(
        err.contains("[LocalDBService] filename = \"/data/monitoring.sqlite3\""),
        "{err}"
    );
    // The original's [Alerts] (enabled, botname, password) keeps its
    // meaning: the REST bot on the collaboration's chat server.
    let chat = err
        .lines()
        .find(|l| l.contains("without [Alerts.chat]"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        chat.starts_with("note:")
            && chat.contains("alerts go to https://chat.km3net.de as the REST bot"),
        "{chat}"
    );
    assert!(!err.contains("original-secret") && !err.contains("botpassword"));
    let _ = std::fs::remove_dir_all(&dir);
}
