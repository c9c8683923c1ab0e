//! What one sample costs (issue 20: the price of the latency histograms):
//! `Latency::record` (a mutex, the hdrhistogram and the fixed buckets) and
//! the way the hot paths reach it (a family row looked up per sample, as
//! the delivery threads and plot renderers do). Multiplied by the samples
//! a run records (the `n=` of its summary lines), it bounds the
//! histograms' share of a run's CPU (BENCHMARKS.md).
//!
//!     cargo bench -p km3mon-latency --bench record

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

fn record(c: &mut Criterion) {
    let l = latency::Latency::new();
    let mut x = 0.0f64;
    c.bench_function("Latency::record", |b| {
        b.iter(|| {
            // Values across the range a live run and a replay see.
            x = if x > 1e6 { 1e-4 } else { x * 1.7 + 1e-4 };
            l.record(black_box(x));
        })
    });
    let r: &'static latency::Registry = Box::leak(Box::default());
    let f = r.histogram("km3mon_bench_seconds", "Bench.", &["sink"]);
    c.bench_function("Family::get + record", |b| {
        b.iter(|| f.get(black_box(&["chat"])).record(black_box(0.25)))
    });
}

criterion_group!(benches, record);
criterion_main!(benches);
