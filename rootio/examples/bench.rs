//! `cargo run --release -p km3mon-rootio --features write --example bench -- REPS FILE.root…`:
//! reads the runs REPS times as replay does (time order, records in wire
//! encoding) and the same records written as a `.dat` dump (DAQ frames
//! back to back, through `daq::dump::DumpReader`), then both again with
//! every record decoded into the `daq` types (what the monitors do with
//! them). Prints MB/s, entries/s, the ROOT/.dat ratios and the peak RSS
//! after the ROOT passes (before the `.dat` ones).
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

/// Counts live heap bytes and their peak: the reader's own memory, apart
/// from what the allocator keeps (RSS).
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Peak live heap during the ROOT passes.
static ROOT_PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(now, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

use daq::dump::{DumpReader, Record};
use rootio::{Order, RunReader};

/// CPU seconds (user + system) of the process so far, all threads.
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = after.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Wall seconds, CPU seconds and records of one reader's passes.
type Pass = (f64, f64, u64);

/// Passes over the ROOT files and the dump; `decode` also decodes frames.
fn passes(
    reps: usize,
    files: &[String],
    dat: &std::path::Path,
    decode: bool,
) -> Result<[Pass; 2], Box<dyn std::error::Error>> {
    let use_record = |r: Record| -> Result<(), Box<dyn std::error::Error>> {
        if decode {
            std::hint::black_box(daq::frame::decode_frame(&r.payload)?);
        } else {
            std::hint::black_box(r);
        }
        Ok(())
    };
    PEAK.store(LIVE.load(Relaxed), Relaxed);
    let (t, c) = (Instant::now(), cpu_s());
    let mut n = 0u64;
    for _ in 0..reps {
        for f in files {
            for r in RunReader::open(f, Order::Time)? {
                use_record(r?)?;
                n += 1;
            }
        }
    }
    let root = (t.elapsed().as_secs_f64(), cpu_s() - c, n);
    ROOT_PEAK.fetch_max(PEAK.load(Relaxed), Relaxed);
    let (t, c) = (Instant::now(), cpu_s());
    let mut m = 0u64;
    for _ in 0..reps {
        for r in DumpReader::open(dat)? {
            use_record(r?)?;
            m += 1;
        }
    }
    Ok([root, (t.elapsed().as_secs_f64(), cpu_s() - c, m)])
}

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
    let mb = |bytes: u64, s: f64| bytes as f64 * reps as f64 / s / 1e6;
    for decode in [false, true] {
        let [(root_s, root_cpu, n), (dat_s, dat_cpu, m)] = passes(reps, &files, &dat, decode)?;
        let what = if decode {
            "records + decode"
        } else {
            "records"
        };
        println!(
            "{what}: ROOT {n} entries in {root_s:.2} s ({root_cpu:.2} CPU s): {:.1} MB/s of ROOT file, {:.1} MB/s of frame data, {:.0} entries/s",
            mb(root_bytes, root_s),
            mb(dat_bytes, root_s),
            n as f64 / root_s
        );
        println!(
            "{what}: .dat {m} records in {dat_s:.2} s ({dat_cpu:.2} CPU s): {:.1} MB/s, {:.0} records/s",
            mb(dat_bytes, dat_s),
            m as f64 / dat_s
        );
        println!(
            "{what}: ROOT/.dat speed {:.2} (wall), {:.2} (per CPU second)",
            (n as f64 / root_s) / (m as f64 / dat_s),
            (n as f64 / root_cpu) / (m as f64 / dat_cpu)
        );
        if !decode {
            println!(
                "peak RSS after the ROOT passes: {:.1} MB, peak heap in them {:.1} MB (ROOT files {:.1} MB)",
                peak_rss_mb(),
                ROOT_PEAK.load(Relaxed) as f64 / 1e6,
                root_bytes as f64 / 1e6
            );
        }
    }
    std::fs::remove_file(&dat).ok();
    Ok(())
}
