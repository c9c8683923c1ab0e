//! Alert routing under a storm: 10,000 distinct keys firing at once (a
//! full detector losing time sync), then resolving — through the router
//! with one chat route. Measures alerts/s and prints how many messages
//! came out (grouping must keep it to a handful).
//!
//!   cargo bench -p km3mon-messaging --bench route

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use messaging::config::AlertsConfig;
use messaging::route::{Output, Router};
use pipeline::item::{Alert, AlertState};

const S: u64 = 1_000_000_000;
const T0: u64 = 1_704_067_200 * S;
const FLOORS: u32 = 18;

fn config(routes: &str) -> AlertsConfig {
    toml::from_str(&format!(
        "enabled = true\ngroup_window = 10\nshifters = [\"cnorris\"]\n[chat]\nmode = \"webhook\"\nwebhook_url_env = \"X\"\n{routes}"
    ))
    .expect("config")
}

const ONE_ROUTE: &str = "[[route]]\nname = \"shift\"\nsinks = [\"chat\"]\nthrottle = 1800\n";
const THREE_ROUTES: &str = "[[route]]\nname = \"shift\"\nmatch = [\"time_sync:*\", \"dom_inactive:*\"]\nsinks = [\"chat\"]\nthrottle = 1800\n[[route]]\nname = \"log\"\nsinks = [\"log\"]\n[[route]]\nname = \"experts\"\nmin_severity = \"critical\"\nsinks = [\"chat\"]\n";

/// `n` time-sync alerts of DOMs spread over DUs of 18 floors.
fn storm(n: u32, state: AlertState, at_s: u64) -> Vec<Alert> {
    (0..n)
        .map(|i| {
            let (du, floor) = (i / FLOORS + 1, (i % FLOORS + 1) as i32);
            let dom = 800_000_000 + i;
            Alert {
                time_utc_ns: T0 + at_s * S,
                monitor: "timesync".into(),
                key: format!("time_sync:{dom}"),
                state,
                reminder: false,
                message: format!(
                    "invalid time sync for DU{du} floor {floor} (DOM {dom}): White Rabbit bit cleared in IO_TSSN"
                ),
                du: Some(du),
                floor: Some(floor),
                wording: Default::default(),
            }
        })
        .collect()
}

/// Firing storm, window, resolved storm, window: (messages, text bytes).
fn run(cfg: &AlertsConfig, firing: &[Alert], resolved: &[Alert]) -> (usize, usize) {
    let mut r = Router::new(cfg);
    let mut out = Output::default();
    for a in firing {
        r.push(a, T0, &mut out);
    }
    r.tick(T0 + 10 * S, &mut out);
    for a in resolved {
        r.push(a, T0 + 100 * S, &mut out);
    }
    r.tick(T0 + 110 * S, &mut out);
    let bytes = out.messages.iter().map(|m| m.msg.text.len()).sum();
    (out.messages.len(), bytes)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_storm");
    for (name, routes) in [("1 route", ONE_ROUTE), ("3 routes", THREE_ROUTES)] {
        let cfg = config(routes);
        for n in [1_000u32, 10_000] {
            let firing = storm(n, AlertState::Firing, 0);
            let resolved = storm(n, AlertState::Resolved, 100);
            let (msgs, bytes) = run(&cfg, &firing, &resolved);
            println!(
                "{name}, {n} keys firing then resolved: {msgs} messages ({bytes} bytes of text)"
            );
            g.throughput(Throughput::Elements(2 * u64::from(n)));
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| black_box(run(&cfg, &firing, &resolved)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
