//! Ligier restarts: the client, the subscriber thread and the mirror come
//! back on their own, and count the gap.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use daq::controlhost::{Mode, Subscription};
use ligier::{
    run_mirror, Client, ClientConfig, ClientError, MirrorConfig, Shutdown, SubscriberThread,
};

fn quick(addr: impl ToString) -> ClientConfig {
    let mut cfg = ClientConfig::new(addr.to_string());
    cfg.backoff_initial = Duration::from_millis(20);
    cfg.backoff_max = Duration::from_millis(200);
    cfg
}

fn evt() -> Subscription {
    Subscription::new().with(Mode::Any, tag("IO_EVT"))
}

/// Receive until a message numbered above `past` arrived; returns the
/// sequence numbers seen.
fn receive_past(sub: &SubscriberThread, past: u32) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seqs = Vec::new();
    while seqs.last().is_none_or(|&s| s <= past) {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = sub
            .messages()
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("nothing past {past} arrived; got {seqs:?}"));
        seqs.push(seq_of(msg.payload()).1);
    }
    seqs
}

#[test]
fn client_and_mirror_survive_restarts_of_both_ligiers() {
    let upstream = start(config());
    let downstream = start(config());
    let (up_addr, down_addr) = (upstream.local_addr(), downstream.local_addr());

    let stop = Shutdown::new();
    let mirror = {
        let config = MirrorConfig {
            from: quick(up_addr).name("test-mirror"),
            to: quick(down_addr).name("test-mirror"),
            subscription: evt(),
            log_interval: None,
        };
        let stop = stop.clone();
        thread::spawn(move || run_mirror(config, stop))
    };
    let sub = SubscriberThread::spawn(quick(down_addr), evt(), 10_000).unwrap();
    wait_subscribers(&upstream, "IO_EVT", 1);
    wait_subscribers(&downstream, "IO_EVT", 1);

    let published = Arc::new(AtomicU32::new(0));
    let publisher = {
        let (stop, published) = (stop.clone(), Arc::clone(&published));
        thread::spawn(move || {
            let mut client = Client::new(quick(up_addr)).with_shutdown(stop.clone());
            for seq in 0.. {
                match client.publish(tag("IO_EVT"), &numbered(0, seq, 200)) {
                    Ok(()) => published.store(seq, Ordering::Relaxed),
                    Err(ClientError::Stopped) => break,
                    Err(e) => panic!("publisher: {e}"),
                }
                if stop.sleep(Duration::from_millis(5)) {
                    break;
                }
            }
            client.stats()
        })
    };

    let mut seqs = receive_past(&sub, 10);
    // Kill the upstream Ligier: publisher and mirror lose it.
    upstream.shutdown();
    thread::sleep(Duration::from_millis(300));
    let upstream = start_at(config(), up_addr);
    seqs.extend(receive_past(&sub, published.load(Ordering::Relaxed) + 5));
    // Kill the downstream Ligier: mirror and subscriber lose it.
    downstream.shutdown();
    thread::sleep(Duration::from_millis(300));
    let downstream = start_at(config(), down_addr);
    seqs.extend(receive_past(&sub, published.load(Ordering::Relaxed) + 5));
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "order broken: {seqs:?}"
    );

    stop.trigger();
    let stopped = Instant::now();
    let mirror = mirror.join().unwrap().unwrap();
    let publisher = publisher.join().unwrap();
    let sub_stats = sub.stop();
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        stopped.elapsed()
    );

    assert!(mirror.upstream.reconnects >= 1, "{mirror:?}");
    assert!(mirror.upstream.disconnected_s > 0.0);
    assert!(mirror.downstream.reconnects >= 1, "{mirror:?}");
    assert!(mirror.downstream.disconnected_s > 0.0);
    assert!(publisher.reconnects >= 1, "{publisher:?}");
    assert!(sub_stats.reconnects >= 1, "{sub_stats:?}");
    assert!(sub_stats.disconnected_s > 0.0);
    assert!(mirror.forwarded_msgs >= 50);
    drop((upstream, downstream));
}

#[test]
fn client_started_before_the_ligier_connects_when_it_appears() {
    init_logs();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut client = Client::new(quick(addr));
    client.subscribe(evt()).unwrap();
    assert!(client
        .recv_timeout(Duration::from_millis(300))
        .unwrap()
        .is_none());
    let ligier = start_at(config(), addr);
    wait_for("first connection", Duration::from_secs(5), || {
        client.recv_timeout(Duration::from_millis(20)).unwrap();
        client.is_connected()
    });
    wait_subscribers(&ligier, "IO_EVT", 1);
    let mut publisher = Raw::connect(&ligier);
    publisher.send(tag("IO_EVT"), b"late but there");
    let msg = client
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(msg.payload(), b"late but there");
    let stats = client.stats();
    assert_eq!((stats.connects, stats.reconnects), (1, 0));
}

#[test]
fn stop_interrupts_a_blocked_receive_promptly() {
    let ligier = start(config());
    let sub = SubscriberThread::spawn(quick(ligier.local_addr()), evt(), 4).unwrap();
    wait_subscribers(&ligier, "IO_EVT", 1);
    // Fill the channel so the I/O thread blocks handing a message over.
    let mut publisher = Raw::connect(&ligier);
    for seq in 0..10 {
        publisher.send(tag("IO_EVT"), &numbered(0, seq, 50));
    }
    wait_for("channel full", Duration::from_secs(5), || {
        sub.messages().is_full()
    });
    let start_time = Instant::now();
    sub.stop();
    assert!(start_time.elapsed() < Duration::from_secs(1));

    let mut client = Client::connect(quick(ligier.local_addr())).unwrap();
    client.subscribe(evt()).unwrap();
    let stop = client.shutdown_handle();
    let trigger = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        stop.trigger();
    });
    let start_time = Instant::now();
    assert!(matches!(client.recv(), Err(ClientError::Stopped)));
    assert!(start_time.elapsed() < Duration::from_secs(1));
    trigger.join().unwrap();
}
