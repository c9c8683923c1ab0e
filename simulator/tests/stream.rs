//! The simulator as a library: reproducible, independent of the thread
//! count, in data-time order, with the configured cadences.

use std::time::Duration;

use simulator::{SimConfig, SimMessage, Simulator, Start};

fn config(seed: u64) -> SimConfig {
    let mut config = SimConfig::new(daq::detector::Detector::generate(9, 3, 18, 31));
    config.seed = seed;
    config.duration = Some(Duration::from_secs(2));
    config.msg_interval = Duration::from_secs(1);
    config
}

fn stream(config: SimConfig) -> Vec<SimMessage> {
    Simulator::new(config).unwrap().collect()
}

#[test]
fn same_seed_same_stream_whatever_the_threads() {
    let one = stream(config(4));
    let mut threaded = config(4);
    threaded.threads = 3;
    assert!(one == stream(threaded));
    assert!(one != stream(config(5)));
}

#[test]
fn cadences_and_order() {
    let messages = stream(config(1));
    let count = |tag: &str| messages.iter().filter(|m| m.tag.as_str() == tag).count();
    assert_eq!(count("IO_SUM"), 20);
    assert_eq!(count("IO_TSSN"), 20);
    assert_eq!(count("IO_MONIT"), 20 * (54 + 3));
    assert!(count("IO_EVT") > 40);
    assert!(messages.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
    assert_eq!(messages[0].time_ns, simulator::DEFAULT_START_NS);
}

#[test]
fn faults_leave_the_rest_of_the_stream_alone() {
    // A fault on one DOM must not reshuffle the others' data: every DOM
    // has its own random stream.
    let plain = stream(config(2));
    let mut faulty = config(2);
    faulty.faults = vec!["dom-silent@1s:2/3".parse().unwrap()];
    let faulty = stream(faulty);
    let monit = |ms: &[SimMessage]| -> Vec<Vec<u8>> {
        ms.iter()
            .filter(|m| m.tag.as_str() == "IO_MONIT")
            .map(|m| m.payload.clone())
            .collect()
    };
    let (a, b) = (monit(&plain), monit(&faulty));
    assert_eq!(a.len(), b.len() + 10);
    let b: std::collections::HashSet<_> = b.into_iter().collect();
    assert!(b.iter().all(|p| a.contains(p)));
}

#[test]
fn start_now_follows_the_clock() {
    let mut c = config(1);
    c.start = Start::Now;
    c.duration = Some(Duration::from_millis(100));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let first = Simulator::new(c).unwrap().next().unwrap();
    assert!(first.time_ns <= now + 1_000_000_000 && first.time_ns + 1_000_000_000 >= now);
}
