//! `/metrics` of a live graph, read by a real Prometheus text-format
//! parser (the Python `prometheus_client` package, which scripts/test
//! installs into the test venv) and checked against Prometheus' naming
//! rules and docs/web.md: every family once, every series once, counters
//! `_total`, units last (`_seconds`, `_bytes`), Unix times
//! `_timestamp_seconds`, every name documented.
//!
//! The graph is `km3mon demo` (Ligier, simulator, the shipped graph, the
//! web server): without `--metrics` its web server exports the web's, the
//! pipeline's and the process's series on one endpoint — the place where
//! a name exported twice would show.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str, auth: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    if head.to_ascii_lowercase().contains("chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((n, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(n.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        body.to_string()
    }
}

/// The families as the Python parser sees them:
/// (name, type, [(sample name, labels, value)]).
type Family = (
    String,
    String,
    Vec<(String, BTreeMap<String, String>, String)>,
);

fn parse_with_python(text: &str) -> Vec<Family> {
    const SCRIPT: &str = "import json, sys\n\
from prometheus_client.parser import text_string_to_metric_families\n\
out = [[f.name, f.type, [[s.name, s.labels, repr(s.value)] for s in f.samples]]\n\
       for f in text_string_to_metric_families(sys.stdin.read())]\n\
print(json.dumps(out))\n";
    let py = common::python();
    let mut child = Command::new(&py)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test Python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Python prometheus_client parser refused /metrics (or is not installed in {}: \
         run scripts/test):\n{}\n--- text ---\n{text}",
        py.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `/metrics` text parsed by the Python parser, with the checks every
/// scrape must pass: the naming rules, every name in docs/web.md's
/// metrics table, every series once. (families, declared names)
fn checked(text: &str) -> (Vec<Family>, BTreeSet<String>) {
    let families = parse_with_python(text);
    let declared = check_names(text);
    let docs = documented();
    let undocumented: Vec<&String> = declared.iter().filter(|n| !docs.contains(*n)).collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/web.md's metrics table: {undocumented:?}"
    );
    let mut seen = BTreeSet::new();
    let mut dup = Vec::new();
    for (_, _, samples) in &families {
        for (name, labels, _) in samples {
            if !seen.insert((name.clone(), labels.clone())) {
                dup.push(format!("{name}{labels:?}"));
            }
        }
    }
    assert!(dup.is_empty(), "series exported twice: {dup:?}");
    (families, declared)
}

/// Metric names in docs/web.md's metrics table (`| \`name\` | …`).
fn documented() -> BTreeSet<String> {
    let docs =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/web.md"))
            .unwrap();
    // Every `name` in the first cell of a table row.
    docs.lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split(" | ").next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|n| n.starts_with("km3mon_") || n.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

/// Checks the exposition `text` (as served) against the naming rules;
/// returns the family names of the `# TYPE` lines.
fn check_names(text: &str) -> BTreeSet<String> {
    let mut declared = BTreeSet::new();
    let mut problems = Vec::new();
    let help: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for l in text.lines() {
        let Some(t) = l.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = t.split_once(' ').unwrap();
        if !declared.insert(name.to_string()) {
            problems.push(format!("{name}: declared twice"));
        }
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok_chars || !(name.starts_with("km3mon_") || name.starts_with("process_")) {
            problems.push(format!("{name}: not a km3mon_/process_ snake_case name"));
        }
        match kind {
            "counter" if !name.ends_with("_total") => {
                problems.push(format!("{name}: a counter without _total"))
            }
            "gauge" | "histogram" if name.ends_with("_total") => {
                problems.push(format!("{name}: _total on a {kind}"))
            }
            _ => {}
        }
        let base = name.strip_suffix("_total").unwrap_or(name);
        for unit in ["seconds", "bytes"] {
            if base.contains(&format!("_{unit}")) && !base.ends_with(&format!("_{unit}")) {
                problems.push(format!("{name}: the unit {unit} is not last"));
            }
        }
        let h = help.get(name).copied().unwrap_or("");
        if h.contains("(Unix s)")
            && !name.ends_with("_timestamp_seconds")
            && name != "process_start_time_seconds"
        {
            problems.push(format!("{name}: a Unix time not named _timestamp_seconds"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    declared
}

#[test]
fn metrics_parse_follow_the_naming_rules_and_are_documented() {
    let dir = common::scratch("metrics", "demo");
    let port = common::free_port();
    let child = Command::new(common::km3mon())
        .args([
            "demo",
            "--generate-detector",
            "2x3",
            "--port",
            &port.to_string(),
        ])
        .arg("--dir")
        .arg(&dir)
        .env("KM3MON_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start km3mon demo");
    let mut demo = Guard(child);
    let mut line = String::new();
    BufReader::new(demo.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // `http://ADDR/  user U  password P`
    let w: Vec<&str> = line.split_whitespace().collect();
    assert!(w.len() == 5 && w[0].starts_with("http://"), "{line}");
    let addr = w[0].trim_start_matches("http://").trim_end_matches('/');
    let auth = web::auth::base64_encode(format!("{}:{}", w[2], w[4]).as_bytes());

    // Until the data has reached the decoders.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let t = get(addr, "/metrics", &auth);
        let flowing = t.lines().any(|l| {
            l.starts_with("km3mon_node_records_out_total{node=\"summaryslices\"}")
                && !l.ends_with(" 0")
        });
        if flowing || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let (families, declared) = checked(&text);
    // Counters of the parsed families carry their samples as `_total`.
    for (name, kind, samples) in &families {
        if kind == "counter" {
            assert!(
                samples
                    .iter()
                    .all(|(s, _, _)| s == &format!("{name}_total")
                        || s == &format!("{name}_created")),
                "{name}: {samples:?}"
            );
        }
    }

    // What a demo must export.
    for must in [
        "km3mon_build_info",
        "km3mon_node_records_in_total",
        "km3mon_node_records_out_total",
        "km3mon_node_dropped_records_total",
        "km3mon_node_busy_seconds_total",
        "km3mon_node_last_output_timestamp_seconds",
        "km3mon_node_event_time_lag_seconds",
        "km3mon_node_state",
        "km3mon_node_restarts_total",
        "km3mon_web_requests_total",
        "km3mon_plot_age_seconds",
        "km3mon_doms_affected",
        "km3mon_alerts_firing",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
    ] {
        assert!(declared.contains(must), "{must} missing from\n{text}");
    }
    // One drops family, by reason; the node states of the graph.
    let state_of = |node: &str| {
        families
            .iter()
            .find(|(n, _, _)| n == "km3mon_node_state")
            .unwrap()
            .2
            .iter()
            .filter(|(_, l, v)| l["node"] == node && v.parse::<f64>() == Ok(1.0))
            .map(|(_, l, _)| (l["group"].clone(), l["state"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        state_of("dom_rates"),
        [("monitoring_process".to_string(), "running".to_string())],
        "{:?}",
        families.iter().find(|(n, _, _)| n == "km3mon_node_state")
    );
    assert!(!declared.iter().any(|n| n.contains("dropped_detail")));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The shipped example with alerts on, a 10 s inactivity threshold, the
/// chat as an incoming webhook at `hook`, and one route sending inactive
/// DOMs to the chat and the log.
fn delayed_chat_site(dir: &std::path::Path, hook: &str) -> PathBuf {
    let example = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipeline.toml.example"),
    )
    .unwrap();
    let mut doc: toml::Table = toml::from_str(&example).unwrap();
    let mut act = doc["DOMActivity"].as_table().unwrap().clone();
    act.insert("inactive_after".into(), 10.into());
    doc.insert("DOMActivity".into(), act.into());
    let extra: toml::Table = toml::from_str(&format!(
        r#"
enabled = true
group_window = 3
channel = "operations"
[chat]
mode = "webhook"
webhook_url = "{hook}"
[[route]]
name = "shift"
match = ["dom_inactive:*"]
sinks = ["chat", "log"]
"#
    ))
    .unwrap();
    let alerts = doc
        .get_mut("Alerts")
        .and_then(|v| v.as_table_mut())
        .unwrap();
    alerts.extend(extra);
    let p = dir.join("site.toml");
    std::fs::write(&p, toml::to_string(&doc).unwrap()).unwrap();
    p
}

/// The latency table of a running demo (`km3mon ctl --json latency`).
fn latencies(run: &std::path::Path) -> Vec<serde_json::Value> {
    let o = Command::new(common::km3mon())
        .args(["ctl", "--json", "--out"])
        .arg(run)
        .arg("latency")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["latencies"].as_array().cloned().unwrap_or_default()
}

fn row<'a>(
    rows: &'a [serde_json::Value],
    name: &str,
    labels: &str,
) -> Option<&'a serde_json::Value> {
    rows.iter()
        .find(|r| r["name"] == name && r["labels"] == labels)
}

/// A live demo whose chat answers every request after a known delay (the
/// stand-in chat server `testchat`, an incoming webhook: one request per
/// message; no real chat server can run here): the chat sink's delivery
/// histogram has its p50 within 10 % of that delay, the log sink's is far
/// below it, the alert latency (data time → delivered) is at least the
/// delay, and `/metrics` still parses with every name once, the buckets
/// around the delay included.
#[test]
fn a_slow_chat_shows_in_its_delivery_histogram() {
    const DELAY: f64 = 0.7;
    let dir = common::scratch("metrics", "slow-chat");
    let chat = testchat::TestChat::start(testchat::Options::default()).unwrap();
    chat.set_delay(Duration::from_secs_f64(DELAY));
    let site = delayed_chat_site(&dir, &chat.hook_url());
    let run = dir.join("run");
    let port = common::free_port().to_string();
    let demo = common::start_demo(
        [
            "--generate-detector",
            "3x6",
            "--port",
            &port,
            "--config",
            site.to_str().unwrap(),
            "--dir",
            run.to_str().unwrap(),
            "--fault",
            "dom-silent@5s+20s:2/1",
            "--fault",
            "dom-silent@5s+20s:2/2",
        ],
        &[],
    );
    let _guard = demo.guard;
    let w: Vec<&str> = demo.line.split_whitespace().collect();
    let addr = w[0].trim_start_matches("http://").trim_end_matches('/');
    let auth = web::auth::base64_encode(format!("{}:{}", demo.user, demo.password).as_bytes());

    // The firing message and its "resolved": two deliveries per sink.
    let deadline = Instant::now() + Duration::from_secs(90);
    let rows = loop {
        let rows = latencies(&run);
        let delivered = |sink: &str| {
            row(
                &rows,
                "km3mon_alert_delivery_seconds",
                &format!("sink={sink}"),
            )
            .map_or(0, |r| r["count"].as_u64().unwrap())
        };
        if delivered("chat") >= 2 && delivered("log") >= 2 {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "no two deliveries per sink within 90 s: {rows:#?}\nchat: {:#?}",
            chat.messages("operations")
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let chat_row = row(&rows, "km3mon_alert_delivery_seconds", "sink=chat").unwrap();
    let p50 = chat_row["p50"].as_f64().unwrap();
    assert!(
        (p50 - DELAY).abs() <= 0.1 * DELAY,
        "chat delivery p50 {p50} s, the chat's delay {DELAY} s: {chat_row}"
    );
    let log_p50 = row(&rows, "km3mon_alert_delivery_seconds", "sink=log").unwrap()["p50"]
        .as_f64()
        .unwrap();
    assert!(log_p50 < 0.1 * DELAY, "log sink p50 {log_p50} s");
    let latency = row(&rows, "km3mon_alert_latency_seconds", "sink=chat").unwrap();
    assert!(latency["p50"].as_f64().unwrap() >= 0.9 * DELAY, "{latency}");
    // Every node that emitted has a lag distribution.
    assert!(
        row(&rows, "km3mon_node_frontier_lag_seconds", "node=dom_rates").is_some(),
        "{rows:#?}"
    );

    let text = get(addr, "/metrics", &auth);
    let (families, declared) = checked(&text);
    let bucket = |le: f64| {
        let (_, kind, samples) = families
            .iter()
            .find(|(n, _, _)| n == "km3mon_alert_delivery_seconds")
            .expect("the delivery histogram");
        assert_eq!(kind, "histogram");
        samples
            .iter()
            .find(|(s, l, _)| {
                s == "km3mon_alert_delivery_seconds_bucket"
                    && l["sink"] == "chat"
                    && l["le"].parse::<f64>() == Ok(le)
            })
            .map(|(_, _, v)| v.parse::<f64>().unwrap())
            .unwrap()
    };
    // 0.7 s lies between the buckets 0.5 and 1: histogram_quantile sees it.
    assert_eq!(bucket(0.5), 0.0, "{text}");
    assert!(bucket(1.0) >= 2.0, "{text}");
    for must in [
        "km3mon_node_frontier_lag_seconds",
        "km3mon_alert_latency_seconds",
        "km3mon_alert_delivery_attempts_total",
        "km3mon_ligier_queue_seconds",
    ] {
        assert!(declared.contains(must), "{must} missing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `GET /metrics` of a plain `--metrics` endpoint (HTTP/1.0, no login).
fn get_plain(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // One write: a server may answer as soon as its first read returns.
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(head.contains("version=0.0.4"), "{head}");
    body.to_string()
}

/// `km3mon ligier --metrics`: a subscriber that never reads (its "any"
/// queue of 10 messages overflows) and one that reads; the endpoint shows
/// the drops of the tag, the publish → write queueing time of the "any"
/// class, and parses with every name documented and every series once.
#[test]
fn ligier_metrics_show_queueing_and_drops_per_tag() {
    use daq::controlhost::{Mode, Subscription, Tag};
    let (port, mport) = (common::free_port(), common::free_port());
    let _ligier = Guard(
        Command::new(common::km3mon())
            .args(["ligier", "--port", &port.to_string(), "--metrics"])
            .arg(format!("127.0.0.1:{mport}"))
            .args(["--any-queue-messages", "10", "--status-interval", "0"])
            .env("KM3MON_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    common::wait_port(port);
    common::wait_port(mport);
    let addr = format!("127.0.0.1:{port}");
    let tag = Tag::new("IO_SUM").unwrap();
    let sub = || {
        let mut c = ligier::Client::connect(ligier::ClientConfig::new(&addr)).unwrap();
        c.subscribe(Subscription::new().with(Mode::Any, tag))
            .unwrap();
        c
    };
    let _stalled = sub();
    let mut reader = sub();
    std::thread::sleep(Duration::from_millis(300));
    // 400 × 64 kB: far more than the stalled reader's socket buffers.
    const N: usize = 400;
    let publisher = std::thread::spawn(move || {
        let mut p = ligier::Client::connect(ligier::ClientConfig::new(&addr)).unwrap();
        let payload = vec![7u8; 64 * 1024];
        for _ in 0..N {
            p.send(tag, &payload).unwrap();
        }
        p.flush().unwrap();
        // Keep the connection until the reader is done.
        std::thread::sleep(Duration::from_secs(2));
    });
    let mut got = 0;
    while got < N {
        match reader.recv_timeout(Duration::from_secs(3)).unwrap() {
            Some(_) => got += 1,
            None => break,
        }
    }
    publisher.join().unwrap();
    assert!(got > 0, "the reading subscriber got nothing");

    let text = get_plain(&format!("127.0.0.1:{mport}"));
    let (families, declared) = checked(&text);
    let value = |sample: &str, label: (&str, &str)| -> f64 {
        families
            .iter()
            .flat_map(|(_, _, s)| s)
            .find(|(n, l, _)| n == sample && l.get(label.0).map(String::as_str) == Some(label.1))
            .unwrap_or_else(|| panic!("no {sample}{{{}={}}} in\n{text}", label.0, label.1))
            .2
            .parse()
            .unwrap()
    };
    assert_eq!(
        value("km3mon_ligier_messages_in_total", ("tag", "IO_SUM")),
        N as f64
    );
    assert!(
        value("km3mon_ligier_dropped_messages_total", ("tag", "IO_SUM")) > 0.0,
        "{text}"
    );
    assert!(
        value("km3mon_ligier_queue_seconds_count", ("class", "any")) >= got as f64,
        "{text}"
    );
    assert!(declared.contains("process_resident_memory_bytes"));
    assert!(declared.contains("km3mon_build_info"));
}
