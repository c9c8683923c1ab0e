//! Simulator throughput without the CLI: `cargo run --release -p km3mon-simulator
//! --example throughput -- 230x18 60 [FILE]` simulates 60 s of a generated
//! ARCA-230 into FILE (default: a sink that discards) and prints messages/s,
//! MB/s and the real-time factor. `THREADS=2` advances the DOMs on two
//! threads.

use std::io::{self, BufWriter, Write};
use std::time::Duration;

use simulator::{write_recording, GenerateSpec, SimConfig, Simulator};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let spec: GenerateSpec = args
        .get(1)
        .map_or("115x18", String::as_str)
        .parse()
        .expect("DUSxFLOORS");
    let seconds: u64 = args.get(2).map_or(Ok(30), |s| s.parse()).expect("seconds");
    let mut config = SimConfig::new(spec.build(None));
    config.duration = Some(Duration::from_secs(seconds));
    config.threads = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let sim = Simulator::new(config).expect("valid config");
    let stop = ligier::Shutdown::new();
    let stats = match args.get(3) {
        Some(path) => {
            let mut out =
                BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create"));
            let stats = write_recording(sim, &mut out, &stop).expect("write");
            out.flush().expect("flush");
            stats
        }
        None => write_recording(sim, &mut io::sink(), &stop).expect("write"),
    };
    println!("{}", stats.summary());
    for (tag, (n, bytes)) in &stats.per_tag {
        println!(
            "  {tag:<8} {n:>9} messages {:>9.1} MB {:>9.0} B/message",
            *bytes as f64 / 1e6,
            *bytes as f64 / *n as f64
        );
    }
}
