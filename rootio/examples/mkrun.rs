//! `cargo run --release -p km3mon-rootio --features write --example mkrun -- OUT.root MB [zlib|lz4|lzma|zstd|none] [DOMS] [in-progress]`:
//! writes a synthetic run of about MB megabytes (summaryslices and SN
//! timeslices of DOMS DOMs, default 600, 100 hits per DOM per slice) in
//! the layout of the 2025 online files, entries in pairs of swapped frame
//! indices as a data filter stores them. With `in-progress` the file is
//! left as a writer still at work leaves it: trees saved (autosave) at
//! two thirds of the size, more baskets after, no final key list.
use daq::frame::DataType;
use rootio::km3net::Stream;
use rootio::write::gen::RunGen;
use rootio::write::{Compression, RootWriter, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("OUT.root")?;
    let mb: f64 = args.next().ok_or("MB")?.parse()?;
    let how = args.next().unwrap_or_else(|| "zlib".into());
    let compression = Compression::parse(&how).ok_or("compression: zlib|lz4|lzma|zstd|none")?;
    let doms: usize = args.next().map_or(Ok(600), |d| d.parse())?;
    let in_progress = args.next().is_some_and(|a| a == "in-progress");
    let mut saved = !in_progress;
    let mut w = RootWriter::create(
        &out,
        WriteOptions {
            compression,
            ..WriteOptions::default()
        },
    )?;
    let mut g = RunGen::new(133, 14000, doms, 1);
    let mut fi = 1;
    while (w.position() as f64) < mb * 1e6 {
        for f in [fi + 1, fi] {
            w.summaryslice(&g.summaryslice(f))?;
            w.timeslice(Stream::Sn, &g.timeslice(f, DataType::TimesliceSn, 100))?;
        }
        fi += 2;
        if !saved && (w.position() as f64) >= mb * 1e6 * 2.0 / 3.0 {
            w.autosave()?;
            saved = true;
        }
    }
    if in_progress {
        // Dropped unfinished: what a writer still at work leaves on disk.
        drop(w);
        println!(
            "{out}: {} slices written, trees saved at two thirds",
            fi - 1
        );
        return Ok(());
    }
    w.finish()?;
    println!(
        "{out}: {} slices, {} bytes",
        fi - 1,
        std::fs::metadata(&out)?.len()
    );
    Ok(())
}
