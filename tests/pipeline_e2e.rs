//! Graph check, replay, determinism (runs, workers, cluster processes) and
//! a live run against a real Ligier that is killed and restarted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{free_port, km3mon, testdata};
use daq::controlhost::{encode_message, Tag};
use daq::dump::DumpReader;

fn tmp(name: &str) -> PathBuf {
    common::scratch("pipe", name)
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(km3mon())
        .args(args)
        .env("KM3MON_LOG", "warn")
        .output()
        .expect("run km3mon");
    out
}

fn wait(mut child: Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn graph_file(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("g.toml");
    std::fs::write(&p, body).unwrap();
    p
}

const RATES_GRAPH: &str = r#"
[nodes.daq]
type = "ligier"
host = "127.0.0.1"
port = PORT
tags = ["IO_EVT", "IO_SUM", "IO_TSSN", "IO_MONIT", "MSG"]

[nodes.rates]
type = "tag_rates"
inputs = ["daq"]
interval = INTERVAL

[nodes.csv]
type = "csv"
inputs = ["rates"]
path = "data/rates.csv"
"#;

fn rates_graph(dir: &Path, port: u16, interval: u64) -> PathBuf {
    graph_file(
        dir,
        &RATES_GRAPH
            .replace("PORT", &port.to_string())
            .replace("INTERVAL", &interval.to_string()),
    )
}

#[test]
fn check_reports_a_typo_with_line_and_column_and_fails() {
    let dir = tmp("typo");
    let g = graph_file(
        &dir,
        &RATES_GRAPH
            .replace("PORT", "5553")
            .replace("interval = INTERVAL", "intervall = 10"),
    );
    let out = run(&["check", g.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:11:1: nodes.rates.intervall: unknown field `intervall`, expected `interval` or `table`",
        g.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(err.trim_end().ends_with("1 error"), "{err}");

    let fixed = rates_graph(&dir, 5553, 10);
    let out = run(&["check", fixed.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 3 nodes"));
}

#[test]
fn shipped_graphs_check_and_draw() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for g in ["graphs/km3mon.toml", "graphs/tag_rates.toml"] {
        let p = root.join(g);
        let out = run(&["check", p.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{g}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(&["graph", root.join("graphs/km3mon.toml").to_str().unwrap()]);
    assert!(out.status.success());
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(dot.starts_with("digraph km3mon {"), "{dot}");
    assert!(
        dot.contains("\"daq\" -> \"tag_rates\" [label=\"messages\"];"),
        "{dot}"
    );
    assert!(
        dot.contains("\"tag_rates\" -> \"tag_rates_csv\" [label=\"table\"];"),
        "{dot}"
    );
}

#[test]
fn replay_of_the_sample_dumps_counts_every_message_and_byte() {
    let dir = tmp("samples");
    let out_dir = dir.join("out");
    let g = rates_graph(&dir, 5553, 10);
    let mut args = vec![
        "replay",
        "--graph",
        g.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let files = common::sample_dumps();
    args.extend(files.iter().map(String::as_str));
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(out_dir.join("data/rates.csv")).unwrap();
    // Counts and byte totals equal the sample files (3 events = 8190 B,
    // 3 summaryslices = 9507 B, 3 SN timeslices = 2410 B, 6 CLB packets
    // of 244 B); timestamps are window ends in UTC seconds.
    assert_eq!(
        csv,
        "timestamp,tag,run,messages,bytes,rate_hz,bytes_per_s,run_change\n\
         550,IO_MONIT,86,6,1464,0.600,146.4,0\n\
         1574424020,IO_TSSN,6760,1,90,0.100,9.0,0\n\
         1574424030,IO_SUM,6760,3,9507,0.300,950.7,0\n\
         1574424030,IO_TSSN,6760,2,2320,0.200,232.0,0\n\
         1574432880,IO_EVT,6760,3,8190,0.300,819.0,0\n"
    );
}

/// The DAQ frames of the sample dumps, by tag.
fn sample_frames() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    for tag in ["IO_SUM", "IO_EVT", "IO_TSSN"] {
        for r in DumpReader::open(testdata().join(format!("daq/{tag}.dat"))).unwrap() {
            v.push((tag, r.unwrap().payload));
        }
    }
    v
}

/// Writes a recording of `n` messages, 10 per second of data time from
/// `base_s`, with the run going up every `per_run` messages and an
/// (untimed) MSG line every 50th message.
fn write_recording(path: &Path, n: usize, base_s: u32, run0: u32, per_run: usize) {
    let frames = sample_frames();
    let mut out = Vec::new();
    for i in 0..n {
        let (tag, frame) = &frames[i % frames.len()];
        let mut p = frame.clone();
        // Versioned frames: header at 10 (det_id, run, frame index, utc s, ticks).
        let run = run0 + (i / per_run) as u32;
        let secs = base_s + (i / 10) as u32;
        let ticks = (i % 10) as u32 * 6_250_000;
        p[14..18].copy_from_slice(&run.to_le_bytes());
        p[22..26].copy_from_slice(&secs.to_le_bytes());
        p[26..30].copy_from_slice(&ticks.to_le_bytes());
        let h = daq::frame::peek_header(&p).expect("header");
        assert_eq!(
            (h.run as u32, h.utc_ns()),
            (run, u64::from(secs) * 1_000_000_000 + u64::from(ticks) * 16)
        );
        out.extend(encode_message(Tag::new(tag).unwrap(), &p));
        if i % 50 == 0 {
            out.extend(encode_message(
                Tag::new("MSG").unwrap(),
                format!("line {i}").as_bytes(),
            ));
        }
    }
    std::fs::write(path, out).unwrap();
}

fn replay_csv(dir: &Path, name: &str, files: &[&Path], extra: &[&str]) -> String {
    let out_dir = dir.join(name);
    let g = rates_graph(dir, 5553, 10);
    let mut args: Vec<String> = [
        "replay",
        "--graph",
        g.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(files.iter().map(|f| f.display().to_string()));
    let out = Command::new(km3mon())
        .args(&args)
        .env("KM3MON_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(out_dir.join("data/rates.csv")).unwrap()
}

#[test]
fn replay_is_deterministic_across_runs_and_workers() {
    let dir = tmp("determinism");
    let rec = dir.join("stream.rec");
    write_recording(&rec, 3000, 1_700_000_000, 7000, 1200);
    let dumps = common::sample_dumps();
    let dump_paths: Vec<&Path> = dumps.iter().map(Path::new).collect();
    let mut files = vec![rec.as_path()];
    files.extend(dump_paths);

    let a = replay_csv(&dir, "a", &files, &["-w", "1"]);
    let b = replay_csv(&dir, "b", &files, &["-w", "1"]);
    let c = replay_csv(&dir, "c", &files, &["-w", "2"]);
    assert_eq!(a, b, "two identical replays differ");
    assert_eq!(a, c, "-w 1 and -w 2 differ");

    // 300 s of data in 10 s windows, 3 tags + MSG, runs 7000..7002.
    let lines: Vec<&str> = a.lines().collect();
    assert!(lines.len() > 100, "{a}");
    let sum_rows: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(",IO_SUM,"))
        .collect();
    let total: u64 = sum_rows
        .iter()
        .map(|l| l.split(',').nth(3).unwrap().parse::<u64>().unwrap())
        .sum();
    // The generator cycles over 9 sample frames, the first 3 of them IO_SUM.
    let generated = (0..3000).filter(|i| i % 9 < 3).count() as u64;
    assert_eq!(
        total,
        generated + 3,
        "every IO_SUM message counted once (generated + 3 of the sample dump)"
    );
    let changes: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.ends_with(",1"))
        .collect();
    // Each of the three generated tags sees the run go up twice, plus the
    // jump of IO_EVT/IO_SUM/IO_TSSN from the sample run 6760 to 7000.
    assert_eq!(changes.len(), 9, "{changes:#?}");
}

#[test]
fn two_cluster_processes_write_what_one_process_writes() {
    let dir = tmp("cluster");
    let rec = dir.join("stream.rec");
    write_recording(&rec, 2000, 1_700_000_000, 7000, 700);
    let single = replay_csv(&dir, "single", &[rec.as_path()], &["-w", "2"]);

    let hostfile = dir.join("hosts");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .unwrap();
    let g = rates_graph(&dir, 5553, 10);
    let spawn = |i: usize| {
        Command::new(km3mon())
            .args(["replay", "--graph", g.to_str().unwrap(), "--out"])
            .arg(dir.join(format!("p{i}")))
            .args([
                "--hostfile",
                hostfile.to_str().unwrap(),
                "--process",
                &i.to_string(),
                "-w",
                "1",
            ])
            .arg(&rec)
            .env("KM3MON_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let p0 = spawn(0);
    let p1 = spawn(1);
    assert!(wait(p0, Duration::from_secs(60), "process 0").success());
    assert!(wait(p1, Duration::from_secs(60), "process 1").success());
    let clustered = std::fs::read_to_string(dir.join("p0/data/rates.csv")).unwrap();
    assert_eq!(single, clustered);
    assert!(
        !dir.join("p1/data/rates.csv").exists(),
        "only the leader process writes sinks"
    );
}

fn now_s() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

fn publish(port: u16, file: &Path) {
    let p = Command::new(km3mon())
        .args([
            "publish",
            "--ligier",
            &format!("127.0.0.1:{port}"),
            "--speed",
            "1",
        ])
        .arg(file)
        .env("KM3MON_LOG", "warn")
        .spawn()
        .unwrap();
    assert!(wait(p, Duration::from_secs(30), "publish").success());
}

#[test]
fn live_run_survives_a_ligier_restart_and_shuts_down_cleanly() {
    let dir = tmp("live");
    let port = free_port();
    let g = rates_graph(&dir, port, 1);
    let out_dir = dir.join("out");
    let ligier = common::start_ligier(port);
    let metrics_port = free_port();
    let run = Command::new(km3mon())
        .args([
            "run",
            "--graph",
            g.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--heartbeat-ms",
            "100",
        ])
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .env("KM3MON_LOG", "warn")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    // Phase 1: 3 s of data stamped "now", run 500.
    let rec1 = dir.join("one.rec");
    write_recording(&rec1, 30, now_s(), 500, 1000);
    publish(port, &rec1);

    // The Ligier dies and comes back on the same port.
    drop(ligier);
    std::thread::sleep(Duration::from_millis(500));
    let ligier = common::start_ligier(port);
    std::thread::sleep(Duration::from_millis(1500)); // the client's backoff

    // Phase 2: later data, run 501.
    let rec2 = dir.join("two.rec");
    let phase2 = now_s();
    write_recording(&rec2, 30, phase2, 501, 1000);
    publish(port, &rec2);
    std::thread::sleep(Duration::from_millis(1500));

    // Metrics are served while running.
    let mut body = String::new();
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        s.read_to_string(&mut body).unwrap();
    }
    assert!(
        body.contains("km3mon_node_records_out_total{node=\"daq\"}"),
        "{body}"
    );

    Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    let status = wait(run, Duration::from_secs(20), "km3mon run after SIGTERM");
    assert!(status.success(), "{status:?}");
    drop(ligier);

    let csv = std::fs::read_to_string(out_dir.join("data/rates.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let count = |run: &str| -> u64 {
        rows.iter()
            .filter(|r| r[2] == run)
            .map(|r| r[3].parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(count("500"), 30, "{csv}");
    assert_eq!(count("501"), 30, "{csv}");
    assert!(
        rows.iter()
            .any(|r| r[0].parse::<u32>().unwrap() > phase2 && r[2] == "501"),
        "{csv}"
    );
    assert!(
        rows.iter().any(|r| r[2] == "501" && r[7] == "1"),
        "run change 500 → 501 flagged: {csv}"
    );
}

#[test]
fn operator_state_survives_a_restart() {
    let dir = tmp("state");
    let state = dir.join("state");
    let (one, two) = (dir.join("one.rec"), dir.join("two.rec"));
    write_recording(&one, 100, 1_700_000_000, 500, 1000);
    write_recording(&two, 100, 1_700_001_000, 501, 1000);
    let s = state.to_str().unwrap();
    replay_csv(&dir, "first", &[one.as_path()], &["--state-dir", s]);
    assert!(state.join("rates.w0.json").exists());
    // The restarted run knows the last run per tag, so it flags the change
    // in its very first window; without the state it cannot.
    let restored = replay_csv(
        &dir,
        "second",
        &[two.as_path()],
        &["--state-dir", s, "-w", "2"],
    );
    let fresh = replay_csv(&dir, "fresh", &[two.as_path()], &[]);
    let first_window = |csv: &str| -> Vec<String> {
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        let t0 = rows[0].split(',').next().unwrap().to_string();
        rows.iter()
            .filter(|r| r.starts_with(&format!("{t0},")))
            .map(|r| r.to_string())
            .collect()
    };
    let restored = first_window(&restored);
    assert_eq!(restored.len(), 4, "{restored:?}");
    assert!(
        restored
            .iter()
            .all(|r| r.ends_with(",1") || r.contains(",MSG,")),
        "{restored:?}"
    );
    assert!(first_window(&fresh).iter().all(|r| r.ends_with(",0")));
}
