//! The dispatcher over real loopback TCP: delivery, order, fan-out, many
//! connections, bad clients, slow clients, request mode, status.

mod common;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use daq::controlhost::{encode_message, tags, Mode, Prefix, Subscription};
use ligier::{query_status, Client, ClientConfig};

#[test]
fn our_client_round_trip_is_byte_identical_and_ordered_per_publisher() {
    let ligier = start(config());
    let addr = ligier.local_addr().to_string();
    let mut sub = Client::connect(ClientConfig::new(&addr)).unwrap();
    // "all" mode: with 1 MiB messages an "any" queue could legitimately
    // drop while this debug-built reader falls behind.
    sub.subscribe(
        Subscription::new()
            .with(Mode::All, tag("IO_EVT"))
            .with(Mode::All, tag("MSG")),
    )
    .unwrap();
    wait_subscribers(&ligier, "MSG", 1);

    let sizes = [0usize, 1, 8, 100, 2000, 65_536, 1 << 20];
    let publishers: Vec<_> = (0..3u32)
        .map(|p| {
            let addr = addr.clone();
            thread::spawn(move || {
                let mut client = Client::connect(ClientConfig::new(addr)).unwrap();
                for seq in 0..200u32 {
                    let len = sizes[(seq as usize + p as usize) % sizes.len()].max(8);
                    let name = if seq % 2 == 0 { "IO_EVT" } else { "MSG" };
                    client.send(tag(name), &numbered(p, seq, len)).unwrap();
                    if seq % 7 == 0 {
                        client.flush().unwrap();
                    }
                }
                client.send(tag("IO_TSL0"), b"not subscribed").unwrap();
                client.close().unwrap()
            })
        })
        .collect();
    let mut next = [0u32; 3];
    for _ in 0..600 {
        let msg = sub
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("message");
        let (p, seq) = seq_of(msg.payload());
        assert_eq!(seq, next[p as usize], "publisher {p} out of order");
        next[p as usize] += 1;
        let len = sizes[(seq as usize + p as usize) % sizes.len()].max(8);
        assert_eq!(msg.payload(), &numbered(p, seq, len)[..]);
        let expected_tag = if seq % 2 == 0 { "IO_EVT" } else { "MSG" };
        assert_eq!(msg.tag(), tag(expected_tag));
        assert_eq!(msg.prefix(), &Prefix::new(msg.tag(), len).encode()[..]);
    }
    for p in publishers {
        let stats = p.join().unwrap();
        assert_eq!(stats.msgs_out, 201);
    }
    assert!(sub
        .recv_timeout(Duration::from_millis(200))
        .unwrap()
        .is_none());
    wait_for("output counted", Duration::from_secs(5), || {
        ligier
            .status()
            .tags
            .iter()
            .any(|t| t.tag == "IO_EVT" && t.counters.msgs_out == 300)
    });
    let status = ligier.status();
    let evt = status.tags.iter().find(|t| t.tag == "IO_EVT").unwrap();
    assert_eq!(evt.counters.msgs_in, 300);
    assert_eq!(evt.counters.msgs_out, 300);
    assert_eq!(evt.counters.drops, 0);
    let tsl = status.tags.iter().find(|t| t.tag == "IO_TSL0").unwrap();
    assert_eq!((tsl.counters.msgs_in, tsl.counters.msgs_out), (3, 0));
}

#[test]
fn fan_out_to_many_subscribers() {
    let ligier = start(config());
    let mut subs: Vec<Raw> = (0..50)
        .map(|_| Raw::subscriber(&ligier, Mode::Any, &["IO_SUM"]))
        .collect();
    wait_subscribers(&ligier, "IO_SUM", 50);
    let mut publisher = Raw::connect(&ligier);
    for seq in 0..100 {
        publisher.send(tag("IO_SUM"), &numbered(0, seq, 1000 + seq as usize));
    }
    for sub in &mut subs {
        for seq in 0..100 {
            let (t, payload) = sub.recv();
            assert_eq!(t, tag("IO_SUM"));
            assert_eq!(payload, numbered(0, seq, 1000 + seq as usize));
        }
    }
    let status = ligier.status();
    let row = status.tags.iter().find(|t| t.tag == "IO_SUM").unwrap();
    assert_eq!(row.subscribers, 50);
    assert_eq!(row.counters.msgs_out, 5000);
}

#[test]
fn two_hundred_and_forty_connections_at_once() {
    let ligier = start(config());
    let mut subs: Vec<Raw> = (0..200)
        .map(|i| {
            let name = if i % 2 == 0 { "IO_EVT" } else { "IO_SUM" };
            Raw::subscriber(&ligier, Mode::Any, &[name])
        })
        .collect();
    wait_subscribers(&ligier, "IO_EVT", 100);
    wait_subscribers(&ligier, "IO_SUM", 100);
    let publishers: Vec<_> = (0..40u32)
        .map(|p| {
            let mut raw = Raw::connect(&ligier);
            thread::spawn(move || {
                for seq in 0..10 {
                    let name = if p % 2 == 0 { "IO_EVT" } else { "IO_SUM" };
                    raw.send(tag(name), &numbered(p, seq, 300));
                }
                raw
            })
        })
        .collect();
    let publishers: Vec<Raw> = publishers.into_iter().map(|t| t.join().unwrap()).collect();
    wait_for("240 connections", Duration::from_secs(10), || {
        ligier.status().connections.len() >= 240
    });
    for sub in &mut subs {
        let mut next = std::collections::HashMap::new();
        for _ in 0..200 {
            let (_, payload) = sub.recv();
            let (p, seq) = seq_of(&payload);
            let expected = next.entry(p).or_insert(0u32);
            assert_eq!(seq, *expected);
            *expected += 1;
        }
        assert_eq!(next.len(), 20);
    }
    drop(publishers);
    drop(subs);
    wait_for("all connections gone", Duration::from_secs(10), || {
        ligier.status().connections.is_empty()
    });
}

#[test]
fn clients_vanishing_mid_message_affect_nobody_else() {
    let ligier = start(config());
    let mut sub = Raw::subscriber(&ligier, Mode::Any, &["MSG"]);
    wait_subscribers(&ligier, "MSG", 1);
    for cut in [3usize, 16, 20] {
        let mut rogue = Raw::connect(&ligier);
        let wire = encode_message(tag("MSG"), &[b'x'; 100]);
        rogue.stream.write_all(&wire[..cut]).unwrap();
        drop(rogue);
    }
    // A subscriber that disappears with a full queue.
    let gone = Raw::subscriber(&ligier, Mode::Any, &["MSG"]);
    wait_subscribers(&ligier, "MSG", 2);
    let mut publisher = Raw::connect(&ligier);
    publisher.send(tag("MSG"), b"first");
    gone.stream.shutdown(std::net::Shutdown::Both).unwrap();
    drop(gone);
    publisher.send(tag("MSG"), b"second");
    assert_eq!(sub.recv().1, b"first");
    assert_eq!(sub.recv().1, b"second");
    assert!(
        sub.try_recv(Duration::from_millis(200)).is_none(),
        "partial message leaked"
    );
    wait_for("rogues closed", Duration::from_secs(5), || {
        ligier.status().connections.len() == 2
    });
}

#[test]
fn malformed_prefixes_close_only_the_offender() {
    let mut cfg = config();
    cfg.max_message_size = 1 << 20;
    let ligier = start(cfg);
    let mut sub = Raw::subscriber(&ligier, Mode::Any, &["MSG"]);
    wait_subscribers(&ligier, "MSG", 1);
    let good = Prefix::new(tag("MSG"), 4).encode();
    let mut negative = good;
    negative[8..12].copy_from_slice(&(-4i32).to_be_bytes());
    let huge = Prefix::new(tag("MSG"), (1 << 20) + 1).encode();
    let mut non_ascii = good;
    non_ascii[0] = 0xC3;
    let mut empty_tag = good;
    empty_tag[..8].fill(0);
    let bad_subscription = encode_message(tags::subscribe(), b" x IO_EVT");
    let mut publisher = Raw::connect(&ligier);
    for (what, bytes) in [
        ("negative length", negative.to_vec()),
        ("huge length", huge.to_vec()),
        ("non-ASCII tag", non_ascii.to_vec()),
        ("empty tag", empty_tag.to_vec()),
        ("bad subscription", bad_subscription),
    ] {
        let mut rogue = Raw::connect(&ligier);
        rogue.stream.write_all(&bytes).unwrap();
        rogue.stream.write_all(b"data").unwrap();
        assert!(
            rogue.closed_within(Duration::from_secs(5)),
            "{what}: not closed"
        );
        publisher.send(tag("MSG"), what.as_bytes());
        assert_eq!(sub.recv().1, what.as_bytes(), "{what}: others affected");
    }
    assert_eq!(ligier.status().connections_refused, 5);
    assert_eq!(ligier.status().connections.len(), 2);
}

#[test]
fn slow_any_subscriber_does_not_stall_a_fast_one() {
    let mut cfg = config();
    cfg.any_queue_bytes = 1 << 20;
    cfg.any_queue_messages = 100;
    let ligier = start(cfg);
    let mut slow = Raw::subscriber(&ligier, Mode::Any, &["IO_TSL0"]);
    // "all", so that even this debug-built reader loses nothing however
    // the scheduler treats it; the publisher then runs at its pace.
    let mut fast = Raw::subscriber(&ligier, Mode::All, &["IO_TSL0"]);
    wait_subscribers(&ligier, "IO_TSL0", 2);
    let count = 600u32;
    let size = 32 << 10;
    let mut publisher = Raw::connect(&ligier);
    let start_time = Instant::now();
    let sender = thread::spawn(move || {
        for seq in 0..count {
            publisher.send(tag("IO_TSL0"), &numbered(1, seq, size));
        }
        publisher
    });
    for seq in 0..count {
        let (_, payload) = fast.recv();
        assert_eq!(seq_of(&payload), (1, seq), "fast subscriber lost a message");
    }
    let _publisher = sender.join().unwrap();
    assert!(start_time.elapsed() < Duration::from_secs(20));
    let status = ligier.status();
    let row = status.tags.iter().find(|t| t.tag == "IO_TSL0").unwrap();
    assert!(row.counters.drops > 0, "slow subscriber dropped nothing");
    let slow_row = status
        .connections
        .iter()
        .find(|c| c.counters.drops > 0)
        .expect("a connection with drops");
    assert_eq!(
        slow_row.drops_by_tag.get("IO_TSL0"),
        Some(&slow_row.counters.drops)
    );
    assert_eq!(row.counters.drops, slow_row.counters.drops);
    // The slow one still gets messages, in order, once it reads: the
    // newest ones, since the oldest were dropped.
    let mut last = None;
    while let Some((_, payload)) = slow.try_recv(Duration::from_millis(300)) {
        let (_, seq) = seq_of(&payload);
        assert!(last.is_none_or(|l| seq > l));
        last = Some(seq);
    }
    assert_eq!(last, Some(count - 1));
}

#[test]
fn all_subscriber_that_never_reads_is_disconnected_after_the_limit() {
    let mut cfg = config();
    cfg.all_queue_bytes = 256 << 10;
    cfg.all_wait = Duration::from_millis(300);
    let ligier = start(cfg);
    let mut stuck = Raw::subscriber(&ligier, Mode::All, &["IO_SUM"]);
    let mut fast = Raw::subscriber(&ligier, Mode::Any, &["IO_SUM"]);
    wait_subscribers(&ligier, "IO_SUM", 2);
    let count = 1000u32;
    let mut publisher = Raw::connect(&ligier);
    let sender = thread::spawn(move || {
        for seq in 0..count {
            publisher.send(tag("IO_SUM"), &numbered(2, seq, 32 << 10));
        }
        publisher
    });
    for seq in 0..count {
        let (_, payload) = fast.recv();
        assert_eq!(seq_of(&payload), (2, seq));
    }
    let _publisher = sender.join().unwrap();
    assert!(stuck.closed_within(Duration::from_secs(10)));
    let status = ligier.status();
    assert_eq!(status.connections_refused, 1);
    assert_eq!(status.connections.len(), 2, "stuck subscriber still listed");
}

#[test]
fn new_subscription_replaces_the_old_one() {
    let ligier = start(config());
    let mut sub = Raw::subscriber(&ligier, Mode::Any, &["IO_EVT"]);
    wait_subscribers(&ligier, "IO_EVT", 1);
    let mut publisher = Raw::connect(&ligier);
    publisher.send(tag("IO_EVT"), b"evt-1");
    assert_eq!(sub.recv().1, b"evt-1");
    let replacement = Subscription::new().with(Mode::Any, tag("MSG"));
    sub.send(tags::subscribe(), &replacement.to_payload());
    wait_subscribers(&ligier, "MSG", 1);
    publisher.send(tag("IO_EVT"), b"evt-2");
    publisher.send(tag("MSG"), b"msg-1");
    assert_eq!(sub.recv(), (tag("MSG"), b"msg-1".to_vec()));
}

#[test]
fn request_mode_sends_one_message_per_gime() {
    let ligier = start(config());
    let mut sub = Raw::connect(&ligier);
    let subscription = Subscription::new().with(Mode::Any, tag("MSG"));
    sub.send(tags::subscribe(), &subscription.to_payload());
    wait_subscribers(&ligier, "MSG", 1);
    let mut publisher = Raw::connect(&ligier);
    for text in ["a", "b", "c", "d"] {
        publisher.send(tag("MSG"), text.as_bytes());
    }
    assert!(sub.try_recv(Duration::from_millis(200)).is_none());
    sub.send(tags::gime(), b"");
    assert_eq!(sub.recv().1, b"a");
    assert!(sub.try_recv(Duration::from_millis(200)).is_none());
    sub.send(tags::gime(), b"");
    assert_eq!(sub.recv().1, b"b");
    sub.send(tags::always(), b"");
    assert_eq!(sub.recv().1, b"c");
    assert_eq!(sub.recv().1, b"d");
}

#[test]
fn status_is_served_over_controlhost() {
    let ligier = start(config());
    let addr = ligier.local_addr().to_string();
    let mut sub = Raw::subscriber(&ligier, Mode::Any, &["IO_EVT"]);
    sub.send(tags::my_id(), b"test-subscriber");
    wait_subscribers(&ligier, "IO_EVT", 1);
    let mut publisher = Raw::connect(&ligier);
    publisher.send(tag("IO_EVT"), &[7; 100]);
    sub.recv();
    // Unsupported control messages are ignored, not forwarded.
    publisher.send(tag("_WhereIs"), b"x");
    wait_for("output counted", Duration::from_secs(5), || {
        ligier
            .status()
            .tags
            .iter()
            .any(|t| t.counters.msgs_out == 1)
    });
    let report = query_status(&addr, Duration::from_secs(5)).unwrap();
    let row = report.tags.iter().find(|t| t.tag == "IO_EVT").unwrap();
    assert_eq!((row.counters.msgs_in, row.counters.bytes_in), (1, 116));
    assert_eq!(row.counters.msgs_out, 1);
    assert!(report
        .connections
        .iter()
        .any(|c| c.name.as_deref() == Some("test-subscriber") && c.push_mode));
    let text = report.to_string();
    assert!(
        text.contains("IO_EVT") && text.contains("test-subscriber"),
        "{text}"
    );
    assert!(sub.try_recv(Duration::from_millis(100)).is_none());
}
