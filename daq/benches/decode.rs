//! Decode throughput per frame type on the KM3NeT sample dumps.
//!
//! Every benchmark decodes all sample frames of its type per iteration and
//! declares that many elements, so that `mean / elements` is the time per
//! frame, averaged over the samples exactly as `bench/km3pipe_decode.py`
//! averages km3pipe. `bench/decode_vs_km3pipe` reads the estimates and
//! prints the ratios.
//!
//! Samples: `$KM3MON_TESTDATA/daq/*.dat`, else `../shared/testdata` beside
//! the workspace.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Bencher, BenchmarkId, Criterion, Throughput};
use daq::dump::{Container, DumpReader};
use daq::event::{Event, EventView};
use daq::frame::{decode_frame, peek_header};
use daq::summary::Summaryslice;
use daq::timeslice::{Timeslice, TimesliceView};
use daq::tmch::{TmchPacket, TmchView};

fn testdata() -> PathBuf {
    match std::env::var_os("KM3MON_TESTDATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
    }
}

fn sample(name: &str) -> Vec<u8> {
    let path = testdata().join("daq").join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (set KM3MON_TESTDATA to the testdata folder)",
            path.display()
        )
    })
}

/// The payloads of a dump, split outside the timed loops.
fn payloads(name: &str) -> Vec<Vec<u8>> {
    DumpReader::new(&sample(name)[..])
        .map(|r| r.expect("sample dumps are clean").payload)
        .collect()
}

/// Criterion's default 5 s per benchmark would put `bench/decode_vs_km3pipe`
/// far beyond its budget; these frames take nanoseconds, so 1 s of samples
/// is plenty. Command-line flags still override this.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
}

fn elements(n: usize) -> Throughput {
    Throughput::Elements(n as u64)
}

/// Decode every item per iteration. The result is only looked at through a
/// reference: moving a decoded value out of its `Result` into `black_box`
/// costs a copy (300 bytes for a TMCH packet) that belongs to the harness,
/// not to the decoder. Every item must decode: error paths are not timed.
fn each<'a, T, E: std::fmt::Debug>(
    b: &mut Bencher<'_>,
    items: &'a [Vec<u8>],
    decode: impl Fn(&'a [u8]) -> Result<T, E>,
) {
    for item in items {
        decode(item).expect("sample decodes");
    }
    b.iter(|| {
        for item in items {
            black_box(&decode(black_box(item)));
        }
    })
}

fn events(c: &mut Criterion) {
    let frames = payloads("IO_EVT.dat");
    let mut group = c.benchmark_group("event");
    group.throughput(elements(frames.len()));
    group.bench_function("decode", |b| each(b, &frames, Event::decode));
    group.bench_function("view", |b| each(b, &frames, EventView::new));
    // What a consumer that looks at every hit pays with the view: the fair
    // comparison with a reader that materialises all hits.
    group.bench_function("view_all_hits", |b| {
        b.iter(|| {
            for f in &frames {
                let view = EventView::new(black_box(f)).unwrap();
                let mut sum = 0u64;
                for h in view.triggered_hits().iter() {
                    sum += u64::from(h.time) ^ h.trigger_mask;
                }
                for h in view.snapshot_hits().iter() {
                    sum += u64::from(h.time) + u64::from(h.dom_id);
                }
                black_box(sum);
            }
        })
    });
    group.finish();
}

fn summaryslices(c: &mut Criterion) {
    let slices = payloads("IO_SUM.dat");
    let n_frames: usize = slices
        .iter()
        .map(|s| Summaryslice::decode(s).unwrap().frames.len())
        .sum();
    let mut group = c.benchmark_group("summaryslice");
    group.throughput(elements(slices.len()));
    group.bench_function("decode", |b| each(b, &slices, Summaryslice::decode));
    group.finish();
    // The same work counted per DOM frame: the ≤ 50 ns target is per
    // summary frame, and km3pipe's figure is derived the same way.
    let mut group = c.benchmark_group("summary_frame");
    group.throughput(elements(n_frames));
    group.bench_function("decode", |b| each(b, &slices, Summaryslice::decode));
    group.finish();
}

fn timeslices(c: &mut Criterion) {
    let frames = payloads("IO_TSSN.dat");
    let mut group = c.benchmark_group("timeslice");
    group.throughput(elements(frames.len()));
    group.bench_function("decode", |b| each(b, &frames, Timeslice::decode));
    group.bench_function("view", |b| each(b, &frames, TimesliceView::new));
    group.bench_function("view_all_hits", |b| {
        b.iter(|| {
            for f in &frames {
                let view = TimesliceView::new(black_box(f)).unwrap();
                let mut sum = 0u64;
                for frame in view.frames() {
                    for h in frame.hits().iter() {
                        sum += u64::from(h.time) + u64::from(h.tot);
                    }
                }
                black_box(sum);
            }
        })
    });
    group.finish();
}

fn tmch(c: &mut Criterion) {
    let packets = payloads("IO_MONIT.dat");
    let mut group = c.benchmark_group("tmch");
    group.throughput(elements(packets.len()));
    group.bench_function("decode", |b| each(b, &packets, TmchPacket::decode));
    group.bench_function("view", |b| each(b, &packets, TmchView::new));
    group.finish();
}

fn headers(c: &mut Criterion) {
    let frames: Vec<Vec<u8>> = ["IO_EVT.dat", "IO_SUM.dat", "IO_TSSN.dat"]
        .iter()
        .flat_map(|name| payloads(name))
        .collect();
    let mut group = c.benchmark_group("peek_header");
    group.throughput(elements(frames.len()));
    group.bench_function("all_samples", |b| {
        each(b, &frames, |f| peek_header(f).ok_or("not a DAQ frame"))
    });
    group.finish();
}

/// The samples repeated to about `target` bytes, as one in-memory dump.
fn repeated(names: &[&str], target: usize) -> Vec<u8> {
    let one: Vec<u8> = names.iter().flat_map(|name| sample(name)).collect();
    let mut out = Vec::with_capacity(target + one.len());
    while out.len() < target {
        out.extend_from_slice(&one);
    }
    out
}

fn dump_reader(c: &mut Criterion) {
    const SIZE: usize = 8 << 20;
    let daq = repeated(&["IO_EVT.dat", "IO_SUM.dat", "IO_TSSN.dat"], SIZE);
    let monit = repeated(&["IO_MONIT.dat"], SIZE);
    let mut group = c.benchmark_group("dump_reader");
    group.sample_size(20);
    for (name, data, container) in [
        ("daq_frames", &daq, Container::DaqFrames),
        ("io_monit", &monit, Container::LengthPrefixed),
    ] {
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::new("read", name), data, |b, data| {
            b.iter(|| {
                let reader = DumpReader::new(&data[..]).with_container(container);
                black_box(reader.map(|r| r.unwrap().payload.len()).sum::<usize>())
            })
        });
        group.bench_with_input(BenchmarkId::new("read_decode", name), data, |b, data| {
            b.iter(|| {
                let reader = DumpReader::new(&data[..]).with_container(container);
                for record in reader {
                    black_box(record.unwrap().decode().unwrap());
                }
            })
        });
    }
    group.finish();
    // For comparison with the reader: splitting the same bytes by the
    // preamble lengths and decoding every frame, nothing copied.
    let mut group = c.benchmark_group("dump_reader");
    group.throughput(Throughput::Bytes(daq.len() as u64));
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("split_decode", "daq_frames"), |b| {
        b.iter(|| {
            let mut rest = &daq[..];
            while let Some(n) = daq::frame::frame_len(rest) {
                let (frame, tail) = rest.split_at(n);
                black_box(decode_frame(frame).unwrap());
                rest = tail;
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = events, summaryslices, timeslices, tmch, headers, dump_reader
}
criterion_main!(benches);
