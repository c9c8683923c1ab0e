//! Framework overhead: records/s through source → exchange by tag →
//! windowed count (`tag_rates`) → CSV sink, for 1 and 2 workers, against
//! the raw rate of reading and decoding the same file with `daq::dump`.
//!
//!   cargo bench -p km3mon-operators --bench overhead [-- MESSAGES]
//!
//! The data: a recording of the sample frames (summaryslices, events, SN
//! timeslices) re-stamped at D messages per 100 ms tick of data time, for
//! D = 1 (the worst case: every record its own timestamp, so every timely
//! message carries one record) and D = 1000 (a full detector's IO_MONIT
//! stream alone is ~4000 records per tick).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use daq::controlhost::{encode_message, Tag};
use daq::dump::DumpReader;
use pipeline::runtime::{run, Mode, RunOptions};
use pipeline::site::SiteConfig;
use pipeline::Graph;

fn testdata() -> PathBuf {
    std::env::var_os("KM3MON_TESTDATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
        PathBuf::from,
    )
}

fn write_recording(path: &Path, n: usize, per_tick: usize) -> u64 {
    let mut frames = Vec::new();
    for tag in ["IO_SUM", "IO_EVT", "IO_TSSN"] {
        for r in DumpReader::open(testdata().join(format!("daq/{tag}.dat"))).expect("sample dump") {
            frames.push((tag, r.expect("sample record").payload));
        }
    }
    let mut out = Vec::new();
    for i in 0..n {
        let (tag, frame) = &frames[i % frames.len()];
        let mut p = frame.clone();
        let tick = i / per_tick;
        let secs = 1_700_000_000u32 + (tick / 10) as u32;
        p[14..18].copy_from_slice(&(7000 + (i / 100_000) as u32).to_le_bytes());
        p[22..26].copy_from_slice(&secs.to_le_bytes());
        p[26..30].copy_from_slice(&((tick % 10) as u32 * 6_250_000).to_le_bytes());
        out.extend(encode_message(Tag::new(tag).expect("tag"), &p));
    }
    std::fs::write(path, &out).expect("write recording");
    out.len() as u64
}

/// Baseline: read every record and decode its payload.
fn decode_rate(path: &Path) -> (usize, Duration) {
    let start = Instant::now();
    let mut n = 0;
    for r in DumpReader::open(path).expect("open") {
        let r = r.expect("record");
        std::hint::black_box(r.decode().expect("decode"));
        n += 1;
    }
    (n, start.elapsed())
}

/// Baseline without decoding: what the framework's source itself does
/// (read the record, peek the header time).
fn read_rate(path: &Path) -> (usize, Duration) {
    let start = Instant::now();
    let mut n = 0;
    for r in DumpReader::open(path).expect("open") {
        let r = r.expect("record");
        std::hint::black_box(r.utc_ns());
        n += 1;
    }
    (n, start.elapsed())
}

const GRAPH: &str = r#"
[nodes.src]
type = "files"
[nodes.count]
type = "tag_rates"
inputs = ["src"]
interval = 10
[nodes.csv]
type = "csv"
inputs = ["count"]
path = "rates.csv"
"#;

/// CPU time (user + system) of this process so far, all threads: on the
/// shared box the wall time depends on the others' load, the CPU time
/// much less. (The run's wall time also comes in steps of the runtime's
/// 100 ms supervision loop.)
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name in parentheses: fields 14 and 15 are utime
    // and stime, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn framework(path: &Path, workers: usize, out: &Path) -> (u64, Duration, f64) {
    let graph = Graph::parse(
        "bench.toml",
        GRAPH,
        &SiteConfig::example(),
        &operators::registry(),
    )
    .expect("graph");
    let _ = std::fs::remove_dir_all(out);
    let mut o = RunOptions::new(
        Mode::Replay {
            files: vec![path.to_path_buf()],
            speed: None,
        },
        out.to_path_buf(),
    );
    o.workers = workers;
    o.progress = false;
    o.handle_signals = false;
    let cpu = cpu_seconds();
    let report = run(&graph, o).expect("run");
    let cpu = cpu_seconds() - cpu;
    let counted = report
        .metrics
        .node("count")
        .records_in
        .load(std::sync::atomic::Ordering::Relaxed);
    (counted, report.elapsed, cpu)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = std::env::temp_dir().join(format!("km3mon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    for per_tick in [1, 1000] {
        measure(&dir, n, per_tick);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn measure(dir: &Path, n: usize, per_tick: usize) {
    let rec = dir.join("stream.rec");
    let bytes = write_recording(&rec, n, per_tick);
    println!(
        "data: {n} messages, {per_tick} per 100 ms tick, {:.1} MB",
        bytes as f64 / 1e6
    );
    // Warm the page cache.
    let _ = read_rate(&rec);

    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    let (dn, dt) = decode_rate(&rec);
    let decode = rate(dn as u64, dt);
    println!(
        "baseline read+decode : {:>10.0} records/s  ({:.3} s)",
        decode,
        dt.as_secs_f64()
    );
    let (rn, rt) = read_rate(&rec);
    println!(
        "baseline read+time   : {:>10.0} records/s  ({:.3} s)",
        rate(rn as u64, rt),
        rt.as_secs_f64()
    );
    for w in [1, 2] {
        let (fn_, ft, cpu) = framework(&rec, w, &dir.join(format!("out{w}")));
        assert_eq!(fn_ as usize, n, "every record reaches the window operator");
        let fr = rate(fn_, ft);
        // Time the framework adds on top of decoding the same records.
        let overhead = (ft.as_secs_f64() - dt.as_secs_f64()) / dt.as_secs_f64() * 100.0;
        println!(
            "framework -w {w}       : {:>10.0} records/s  ({:.3} s, cpu {:.2} s)  ratio framework/decode {:.2}  overhead vs decode {:+.1} %",
            fr,
            ft.as_secs_f64(),
            cpu,
            fr / decode,
            overhead
        );
    }
}
