//! `cargo run --release -p rootio --example bench -- REPS FILE.root…`:
//! reads and decodes every entry of the files REPS times in time order,
//! then the same records written as a `.dat` dump (DAQ frames back to
//! back) through `daq::dump::DumpReader`, and prints MB/s and entries/s
//! of both.
use std::io::Write;
use std::time::Instant;

use daq::dump::DumpReader;
use rootio::{Order, RunReader};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().ok_or("REPS")?.parse()?;
    let files: Vec<String> = args.collect();
    let dat = std::env::temp_dir().join(format!("rootio-bench-{}.dat", std::process::id()));
    let mut root_bytes = 0u64;
    let mut dat_file = std::io::BufWriter::new(std::fs::File::create(&dat)?);
    for f in &files {
        root_bytes += std::fs::metadata(f)?.len();
        for r in RunReader::open(f, Order::Time)? {
            dat_file.write_all(&r?.payload)?;
        }
    }
    dat_file.flush()?;
    drop(dat_file);
    let dat_bytes = std::fs::metadata(&dat)?.len();

    let t = Instant::now();
    let mut n = 0u64;
    for _ in 0..reps {
        for f in &files {
            let mut run = RunReader::open(f, Order::Time)?;
            while let Some(e) = run.next_entry() {
                std::hint::black_box(e?);
                n += 1;
            }
        }
    }
    let root_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut m = 0u64;
    for _ in 0..reps {
        for r in DumpReader::open(&dat)? {
            std::hint::black_box(r?.decode()?);
            m += 1;
        }
    }
    let dat_s = t.elapsed().as_secs_f64();
    std::fs::remove_file(&dat).ok();
    let mb = |bytes: u64, s: f64| bytes as f64 * reps as f64 / s / 1e6;
    println!(
        "ROOT: {n} entries, {:.1} MB/s of ROOT file ({:.1} MB/s of frame data), {:.0} entries/s",
        mb(root_bytes, root_s),
        mb(dat_bytes, root_s),
        n as f64 / root_s
    );
    println!(
        ".dat: {m} records, {:.1} MB/s, {:.0} records/s",
        mb(dat_bytes, dat_s),
        m as f64 / dat_s
    );
    println!(
        "ROOT/.dat speed (entries/s): {:.2}",
        (n as f64 / root_s) / (m as f64 / dat_s)
    );
    Ok(())
}
