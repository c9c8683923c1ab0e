//! MSG lines/s through parse → archive (file on disk, rotation at
//! midnight) → daily statistics, on one thread, as the writer and the
//! statistics operator do them (without the dataflow around them).
//!
//! `cargo run --release -p km3mon-operators --example msg_throughput -- [LINES] [DIR]`

use std::time::Instant;

use operators::monitors::log_stats::DayStats;
use operators::sinks::msg_dumper::{format_line, Archive};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
    let dir = args.get(2).map_or_else(
        || std::env::temp_dir().join(format!("km3mon-msg-bench-{}", std::process::id())),
        std::path::PathBuf::from,
    );
    let _ = std::fs::remove_dir_all(&dir);
    // Lines in the simulator's layout, spread over two days.
    let levels = ["INFO", "STATUS", "WARNING", "ERROR", "NOTICE"];
    let procs = [
        ("192.168.0.110", "Q01"),
        ("192.168.0.111", "F01"),
        ("192.168.0.115", "W01"),
    ];
    let day0 = 19_723i64; // 2024-01-01
    let lines: Vec<(i64, String)> = (0..n)
        .map(|i| {
            let s = i * 172_800 / n;
            let (ip, p) = procs[(i % 3) as usize];
            let text = format!(
                "2024-01-{:02}T{:02}:{:02}:{:02}+0000 {ip} {p} {} Timeslice {i} incomplete: no data from DOM 808447031 within 200 ms",
                1 + s / 86_400,
                s / 3600 % 24,
                s / 60 % 60,
                s % 60,
                levels[(i % 5) as usize]
            );
            (day0 + (s / 86_400) as i64, text)
        })
        .collect();
    let bytes: usize = lines.iter().map(|l| l.1.len()).sum();

    let began = Instant::now();
    let mut archive = Archive::open(&dir, "MSG")?;
    let mut stats = DayStats::new(day0);
    let mut buf = Vec::new();
    // Batches as the sink hands them over (one per 100 ms timestamp ≈ a few lines).
    for chunk in lines.chunks(64) {
        for (day, text) in chunk {
            if stats.date != operators::shell::msg::date(*day) {
                stats = DayStats::new(*day);
            }
            stats.add(text);
            format_line("MSG", text, &mut buf);
        }
        archive.append(chunk[0].0, &buf)?;
        buf.clear();
    }
    archive.close_before(i64::MAX)?;
    let secs = began.elapsed().as_secs_f64();
    println!(
        "{n} lines ({:.1} MB) in {secs:.3} s: {:.0} lines/s, {:.1} MB/s; archives: {}",
        bytes as f64 / 1e6,
        n as f64 / secs,
        bytes as f64 / 1e6 / secs,
        std::fs::read_dir(&dir)?.count()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
