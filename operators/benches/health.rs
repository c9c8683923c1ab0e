//! The detector-health graph (`graphs/km3mon.toml`) on a full-size
//! detector: 115 DUs × 18 DOMs × 31 PMTs, IO_SUM at 10 Hz, IO_MONIT per
//! DOM at 10 Hz, IO_EVT at 100 Hz — generated with the `daq` encoders into
//! a temporary recording — replayed at full speed with 1 and 2 workers:
//! real-time factor and peak RSS. Then the DOM map of 4,140 DOMs drawn.
//!
//!   cargo bench -p km3mon-operators --bench health [-- SECONDS]
//!
//! Each replay runs in a child process of this benchmark so that its peak
//! RSS (VmHWM) is its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use daq::detector::Detector;
use pipeline::runtime::{run, Mode, RunOptions};
use pipeline::site::SiteConfig;
use pipeline::Graph;

/// As the `km3mon` binary.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) of this process so far.
fn cpu_s() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (100 Hz).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit(')').next()?.to_string();
            let f: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse().ok())
                .collect();
            Some((f.first()? + f.get(1)?) as f64 / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// In the child: replay `rec` through the graph, print
/// "elapsed_s rss_kb cpu_s".
fn child(workers: usize, rec: &Path, detx: &Path, out: &Path) {
    let graph_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../graphs/km3mon.toml");
    let site = SiteConfig::example();
    let graph = Graph::load(&graph_path, &site, &operators::registry()).unwrap_or_else(|d| {
        panic!("{d}");
    });
    let mut opts = RunOptions::new(
        Mode::Replay {
            files: vec![rec.to_path_buf()],
            speed: None,
        },
        out.to_path_buf(),
    );
    opts.workers = workers;
    opts.detector = Some(detx.to_path_buf());
    opts.progress = false;
    opts.handle_signals = false;
    let start = Instant::now();
    let report = run(&graph, opts).expect("replay");
    let elapsed = start.elapsed().as_secs_f64();
    for line in report.metrics.summary() {
        eprintln!("  {line}");
    }
    println!("{elapsed} {} {}", vm_hwm_kb(), cpu_s());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Ok(w) = std::env::var("HEALTH_BENCH_CHILD") {
        child(
            w.parse().expect("workers"),
            Path::new(&args[1]),
            Path::new(&args[2]),
            Path::new(&args[3]),
        );
        return;
    }
    let seconds: u64 = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let dir: PathBuf = std::env::temp_dir().join(format!("km3mon-health-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let det = Detector::generate(99, 115, 18, 31);
    let detx = dir.join("full.detx");
    det.write_detx_file(&detx, 5).unwrap();
    let rec = dir.join("full.rec");
    let t = Instant::now();
    let plan = operators::shell::synth::Plan::new(1_700_000_000, seconds);
    let n = operators::shell::synth::write_recording(&rec, &det, &plan).unwrap();
    let bytes = std::fs::metadata(&rec).unwrap().len();
    println!(
        "stream: {} DOMs, {seconds} s of data, {n} messages, {:.0} MB (generated in {:.1} s)",
        det.n_optical_modules(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    for workers in [1usize, 2] {
        let out = dir.join(format!("out-w{workers}"));
        let o = Command::new(std::env::current_exe().unwrap())
            .env("HEALTH_BENCH_CHILD", workers.to_string())
            .args([&rec, &detx, &out])
            .output()
            .expect("child");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8_lossy(&o.stdout);
        let mut it = text.split_whitespace();
        let elapsed: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        let rss_kb: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        let cpu: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        // On a shared machine the wall time depends on the others' load;
        // the CPU time does not (the replay's own cost).
        println!(
            "-w {workers}: {elapsed:.2} s for {seconds} s of data = {:.1}x real time, peak RSS {:.0} MB, {:.0} MB/s, CPU {cpu:.2} s = {:.1}x per core",
            seconds as f64 / elapsed,
            rss_kb / 1024.0,
            bytes as f64 / 1e6 / elapsed,
            seconds as f64 / cpu
        );
        eprint!("{}", String::from_utf8_lossy(&o.stderr));
    }
    // The DOM map alone, for the 230 DUs x 18 floors = 4,140 DOMs.
    let big = Detector::generate(99, 230, 18, 31);
    let layout = operators::shell::DomLayout::of(&big);
    let value = |dom: u32| Some(150.0 + f64::from(dom % 200));
    let plot = pipeline::plot::Plot {
        name: "dom_rates".into(),
        spec: pipeline::plot::PlotSpec::DomMap(pipeline::plot::DomMap {
            title: "DOM Rates for DetID-99".into(),
            data_time_ns: 1_700_000_000_000_000_000,
            colorbar_label: "rate [kHz]".into(),
            vmin: 150.0,
            vmax: 350.0,
            colormap: pipeline::plot::Colormap::Coolwarm,
            under: pipeline::plot::Rgb(153, 50, 204),
            over: pipeline::plot::Rgb(255, 20, 147),
            missing: pipeline::plot::Rgb(0, 0, 0),
            dus: layout.dus.clone(),
            max_floor: layout.max_floor,
            doms: layout.cells(value),
            categories: Vec::new(),
            columns: None,
        }),
        json: Some(layout.json(1_700_000_000_000_000_000, value)),
    };
    let plots = dir.join("plots");
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        operators::sinks::plot::render_to_dir(&plots, &plot).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "DOM map of {} DOMs (PNG + JSON, atomic): median {:.1} ms, min {:.1} ms",
        layout.doms.len(),
        times[times.len() / 2],
        times[0]
    );
    if std::env::var_os("HEALTH_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("kept {}", dir.display());
    }
}
