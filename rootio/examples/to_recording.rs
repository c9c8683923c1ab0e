//! `cargo run --release -p km3mon-rootio --example to_recording -- FILE.root OUT.dat`:
//! writes the entries of an archived run, in time order, as a ControlHost
//! recording (tagged messages back to back, what `km3mon record` writes),
//! which `km3mon replay`, `dump` and `publish` read like a live run.
use std::io::Write;

use daq::controlhost::encode_message;
use rootio::{Order, RunReader};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let input = args.next().ok_or("FILE.root")?;
    let output = args.next().ok_or("OUT.dat")?;
    let run = RunReader::open(&input, Order::Time)?;
    if let Some(warning) = run.incomplete() {
        eprintln!("warning: {warning}");
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(&output)?);
    let mut n = 0u64;
    for record in run {
        let record = record?;
        let tag = record.tag.ok_or("untagged record")?;
        out.write_all(&encode_message(tag, &record.payload))?;
        n += 1;
    }
    out.flush()?;
    println!("{output}: {n} messages");
    Ok(())
}
