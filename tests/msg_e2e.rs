//! The DAQ log through `km3mon replay`: a simulator recording over UTC
//! midnight gives two dated archives (no live file left: a replay closes
//! its last day), and a statistics plot + JSON per day whose counts add up
//! to the MSG lines of the recording.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use common::km3mon;

fn tmp(name: &str) -> PathBuf {
    common::scratch("msg-e2e", name)
}

const GRAPH: &str = r#"
[nodes.log]
type = "ligier"
host = "127.0.0.1"
tags = ["IO_MONIT", "IO_SUM", "MSG"]

[nodes.msg_dumper]
type = "msg_dumper"
inputs = ["log"]

[nodes.log_stats]
type = "log_stats"
inputs = ["log"]
max_errors = 1000

[nodes.alerts]
type = "alerts_jsonl"
inputs = ["log_stats"]
"#;

/// 2023-12-31T23:59:50Z … 2024-01-01T00:00:10Z.
fn recording(dir: &std::path::Path) -> (PathBuf, Vec<String>) {
    let detector = daq::detector::Detector::generate(133, 2, 3, 31);
    let mut config = simulator::SimConfig::new(detector);
    config.start = simulator::Start::At(simulator::DEFAULT_START_NS - 10_000_000_000);
    config.duration = Some(std::time::Duration::from_secs(20));
    config.msg_interval = std::time::Duration::from_millis(300);
    let path = dir.join("midnight.dat");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut lines = Vec::new();
    for m in simulator::Simulator::new(config).unwrap() {
        out.write_all(&daq::controlhost::Prefix::new(m.tag, m.payload.len()).encode())
            .unwrap();
        out.write_all(&m.payload).unwrap();
        if m.tag.as_str() == "MSG" {
            lines.push(String::from_utf8(m.payload).unwrap());
        }
    }
    out.flush().unwrap();
    (path, lines)
}

#[test]
fn replay_over_midnight_gives_two_archives_and_two_plots() {
    let dir = tmp("midnight");
    let (rec, sent) = recording(&dir);
    assert!(sent.len() > 50, "{} MSG lines", sent.len());
    let graph = dir.join("g.toml");
    std::fs::write(&graph, GRAPH).unwrap();
    let out = dir.join("out");
    let run = Command::new(km3mon())
        .args(["replay", "--graph"])
        .arg(&graph)
        .arg("--out")
        .arg(&out)
        .arg(&rec)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let logs = out.join("logs");
    assert!(
        !logs.join("MSG.log").exists(),
        "a replay closes its last day"
    );
    let mut archived = Vec::new();
    for (date, text_date) in [
        ("2023-12-31", "2023-12-31T23:59:"),
        ("2024-01-01", "2024-01-01T00:00:"),
    ] {
        let text = std::fs::read_to_string(logs.join(format!("MSG_{date}.log"))).unwrap();
        for line in text.lines() {
            let (head, payload) = line.split_once("]: ").unwrap();
            assert!(head.starts_with("MSG.log ["), "{line}");
            assert!(
                payload.starts_with(text_date),
                "{line} in the archive of {date}"
            );
            archived.push(payload.to_string());
        }
        let png = std::fs::read(logs.join(format!("MSG_{date}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(logs.join(format!("MSG_{date}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(json["date"], date);
        assert_eq!(
            json["lines"].as_u64().unwrap() as usize,
            text.lines().count()
        );
        let errors: u64 = json["categories"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|l| l["ERROR"].as_u64())
            .sum();
        assert_eq!(
            errors as usize,
            text.lines().filter(|l| l.contains(" ERROR ")).count()
        );
    }
    // Every line exactly once, in the order sent.
    assert_eq!(archived, sent);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Live: a DAQ line and a monitor alert published into the log Ligier (as
/// `alerts_msg` does) both reach `logs/MSG.log`, classified, within a
/// heartbeat or so; the live file is dated today (wall clock).
#[test]
fn live_log_ligier_lines_and_alerts_reach_msg_log() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = tmp("live");
    let port = common::free_port();
    let ligier = common::start_ligier(port);
    let graph = dir.join("g.toml");
    std::fs::write(
        &graph,
        format!(
            "[nodes.log]\ntype = \"ligier\"\nhost = \"127.0.0.1\"\nport = {port}\ntags = [\"MSG\"]\n\n\
             [nodes.msg_dumper]\ntype = \"msg_dumper\"\ninputs = [\"log\"]\n"
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let mut run = Command::new(km3mon())
        .args(["run", "--graph"])
        .arg(&graph)
        .arg("--out")
        .arg(&out)
        .env("KM3MON_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut publisher = ligier::Client::new(ligier::ClientConfig::new(format!("127.0.0.1:{port}")));
    let tag = daq::controlhost::Tag::new("MSG").unwrap();
    let daq_line =
        "2024-01-01T00:00:12+0000 192.168.0.111 F01 ERROR Error \"late\"; trigger ev_error.";
    let alert = operators::sinks::alerts::msg_line(&pipeline::item::Alert {
        time_utc_ns: 1_704_067_212_000_000_000,
        monitor: "timesync".into(),
        key: "time_sync:1".into(),
        state: pipeline::item::AlertState::Firing,
        reminder: false,
        message: "invalid time sync for DOM 1".into(),
        du: None,
        floor: None,
        wording: Default::default(),
    });
    publisher.publish(tag, daq_line.as_bytes()).unwrap();
    publisher.publish(tag, alert.as_bytes()).unwrap();
    let live = out.join("logs/MSG.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&live).unwrap_or_default();
        if text.lines().count() >= 2 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = run.kill();
    let _ = run.wait();
    drop(ligier);
    assert_eq!(
        text,
        format!("MSG.log [DataFilter]: {daq_line}\nMSG.log [Other]: {alert}\n")
    );
    let today = std::fs::read_to_string(out.join("logs/.MSG.log.day")).unwrap();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(today, operators::shell::msg::date((secs / 86_400) as i64));
    let _ = std::fs::remove_dir_all(&dir);
}
