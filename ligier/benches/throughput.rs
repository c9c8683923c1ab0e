//! Throughput of the Ligier against a plain loopback byte pump.
//!
//! `cargo bench -p km3mon-ligier --bench throughput` (release build, ~1 min).
//! For each message size, the ceiling is a pump thread that copies one TCP
//! stream into another with no parsing at all; the same publisher (writes
//! of pre-encoded ~1 MiB batches) and the same consumers (reads that only
//! count bytes) are then run through the Ligier with 1, 10 and 100 "all"
//! subscribers, so nothing is dropped and every delivered byte is counted.
//! `LIGIER_BENCH_SECS` sets the publishing time per run (default 1.5).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use daq::controlhost::{encode_message, tags, Mode, Subscription, Tag};
use ligier::{Ligier, LigierConfig};

const SIZES: [usize; 3] = [100, 2_000, 64_000];
const FAN_OUT: [usize; 3] = [1, 10, 100];

/// Messages back to back, about 1 MiB (at least one message).
fn batch(size: usize) -> (Vec<u8>, u64) {
    let one = encode_message(Tag::new("BENCH").unwrap(), &vec![0xA5; size]);
    let count = ((1 << 20) / one.len()).max(1);
    (one.repeat(count), count as u64)
}

/// Publish whole batches for `secs`; returns (messages, bytes) sent.
fn publish(mut stream: TcpStream, size: usize, secs: f64) -> (u64, u64) {
    let (batch, per_batch) = batch(size);
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut batches = 0u64;
    while Instant::now() < end {
        stream.write_all(&batch).expect("publish");
        batches += 1;
    }
    let _ = stream.shutdown(Shutdown::Write);
    (batches * per_batch, batches * batch.len() as u64)
}

/// Count bytes until `target` (unknown until the publisher is done) has
/// arrived; returns when that happened.
fn consume(mut stream: TcpStream, target: Arc<AtomicU64>) -> Instant {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0u64;
    loop {
        if got >= target.load(Ordering::Acquire) {
            return Instant::now();
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                // The pump passes the publisher's end of stream on, which
                // can overtake the publisher announcing its total.
                while target.load(Ordering::Acquire) == u64::MAX {
                    thread::sleep(Duration::from_millis(1));
                }
                let total = target.load(Ordering::Acquire);
                assert!(got >= total, "stream ended after {got} of {total} bytes");
                return Instant::now();
            }
            Ok(n) => got += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("consumer: {e}"),
        }
    }
}

struct Run {
    msgs: u64,
    bytes: u64,
    secs: f64,
}

impl Run {
    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    fn msgs_per_s(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
}

/// Publisher → consumers, timing from the first byte to the last delivery.
fn drive(publisher: TcpStream, consumers: Vec<TcpStream>, size: usize, secs: f64) -> Run {
    let target = Arc::new(AtomicU64::new(u64::MAX));
    let n = consumers.len() as u64;
    let readers: Vec<_> = consumers
        .into_iter()
        .map(|s| {
            let target = Arc::clone(&target);
            thread::spawn(move || consume(s, target))
        })
        .collect();
    let start = Instant::now();
    let (msgs, bytes) = publish(publisher, size, secs);
    target.store(bytes, Ordering::Release);
    let end = readers
        .into_iter()
        .map(|r| r.join().unwrap())
        .max()
        .unwrap();
    Run {
        msgs: msgs * n,
        bytes: bytes * n,
        secs: (end - start).as_secs_f64(),
    }
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn pump_run(size: usize, secs: f64) -> Run {
    let input = TcpListener::bind("127.0.0.1:0").unwrap();
    let output = TcpListener::bind("127.0.0.1:0").unwrap();
    let consumer = connect(output.local_addr().unwrap());
    let publisher = connect(input.local_addr().unwrap());
    let (mut from, _) = input.accept().unwrap();
    let (mut to, _) = output.accept().unwrap();
    to.set_nodelay(true).unwrap();
    let pump = thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = from.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            to.write_all(&buf[..n]).unwrap();
        }
    });
    let run = drive(publisher, vec![consumer], size, secs);
    pump.join().unwrap();
    run
}

fn ligier_run(size: usize, subscribers: usize, secs: f64) -> Run {
    let ligier = Ligier::start(LigierConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        status_interval: None,
        all_wait: Duration::from_secs(60),
        ..LigierConfig::default()
    })
    .unwrap();
    let addr = ligier.local_addr();
    let sub = Subscription::new().with(Mode::All, Tag::new("BENCH").unwrap());
    let mut hello = encode_message(tags::subscribe(), &sub.to_payload());
    hello.extend(encode_message(tags::always(), &[]));
    let consumers: Vec<TcpStream> = (0..subscribers)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(&hello).unwrap();
            s
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ligier
        .status()
        .connections
        .iter()
        .filter(|c| c.subscription.contains("BENCH"))
        .count()
        < subscribers
    {
        assert!(Instant::now() < deadline, "subscribers not registered");
        thread::sleep(Duration::from_millis(5));
    }
    let run = drive(connect(addr), consumers, size, secs);
    let drops: u64 = ligier.status().tags.iter().map(|t| t.counters.drops).sum();
    assert_eq!(drops, 0, "an 'all' run dropped messages");
    ligier.shutdown();
    run
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let secs: f64 = std::env::var("LIGIER_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.5);
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    println!("ligier throughput, {secs} s of publishing per run, {cores} cores");
    println!(
        "{:>8} {:>6} {:>14} {:>12} {:>16} {:>10}",
        "size_B", "subs", "msgs/s", "MB/s", "per-sub MB/s", "vs pump"
    );
    for size in SIZES {
        let pump = pump_run(size, secs);
        println!(
            "{:>8} {:>6} {:>14.0} {:>12.1} {:>16.1} {:>10}",
            size,
            "pump",
            pump.msgs_per_s(),
            pump.mb_per_s(),
            pump.mb_per_s(),
            "1.00"
        );
        for subs in FAN_OUT {
            let run = ligier_run(size, subs, secs);
            println!(
                "{:>8} {:>6} {:>14.0} {:>12.1} {:>16.1} {:>10.2}",
                size,
                subs,
                run.msgs_per_s(),
                run.mb_per_s(),
                run.mb_per_s() / subs as f64,
                run.mb_per_s() / pump.mb_per_s()
            );
        }
    }
    println!("MB/s and msgs/s count delivered bytes/messages summed over subscribers;");
    println!("'vs pump' = delivered MB/s divided by the byte pump's MB/s for the same size.");
}
