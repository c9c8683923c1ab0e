//! The dispatcher against hostile or broken clients: a huge subscription
//! must not stall other clients, and connections beyond the limit are
//! refused. Real sockets on 127.0.0.1; every wait is bounded.

mod common;

use std::time::Duration;

use common::{config, start, tag, wait_for, Raw};
use daq::controlhost::tags;
use ligier::{query_status, LigierConfig};

/// `n` entries over `distinct` tags, km3pipe's spelling.
fn subscription(n: usize, distinct: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!(" w T{}", i % distinct).into_bytes())
        .collect()
}

#[test]
fn a_huge_subscription_does_not_stall_new_clients() {
    let ligier = start(config());
    let addr = ligier.local_addr().to_string();
    // 100 000 entries over 100 tags (600 kB). Routing used to be quadratic
    // in the entries and held the connection map meanwhile, so accept()
    // stalled: a reconnecting monitor waited seconds to minutes.
    let mut hostile = Raw::connect(&ligier);
    let payload = subscription(100_000, 100);
    let sender = std::thread::spawn(move || {
        hostile.send(tags::subscribe(), &payload);
        hostile
    });
    let status = query_status(&addr, Duration::from_secs(5))
        .expect("a new client is answered while the subscription is processed");
    assert!(status.connections.len() >= 2);
    let mut hostile = sender.join().unwrap();
    hostile.send(tags::always(), b"");
    // The subscription took effect, one entry per tag.
    wait_for("the subscription", Duration::from_secs(10), || {
        ligier.status().connections.iter().any(|c| {
            let words: Vec<&str> = c.subscription.split_whitespace().collect();
            words.len() == 200 && words.contains(&"T99")
        })
    });
    let mut publisher = Raw::connect(&ligier);
    publisher.send(tag("T42"), b"hello");
    let (t, p) = hostile.recv();
    assert_eq!((t, p.as_slice()), (tag("T42"), &b"hello"[..]));
}

#[test]
fn too_many_distinct_tags_are_refused() {
    let ligier = start(config());
    let mut hostile = Raw::connect(&ligier);
    hostile.send(tags::subscribe(), &subscription(5000, 5000));
    assert!(
        hostile.closed_within(Duration::from_secs(10)),
        "a 5000-tag subscription closes the connection"
    );
    assert_eq!(ligier.status().connections_refused, 1);
    // Others are unaffected.
    query_status(&ligier.local_addr().to_string(), Duration::from_secs(5)).unwrap();
}

#[test]
fn connections_beyond_the_limit_are_refused() {
    let ligier = start(LigierConfig {
        max_connections: 3,
        ..config()
    });
    let held: Vec<Raw> = (0..3).map(|_| Raw::connect(&ligier)).collect();
    wait_for("3 connections", Duration::from_secs(10), || {
        ligier.status().connections.len() == 3
    });
    let mut extra = Raw::connect(&ligier);
    assert!(extra.closed_within(Duration::from_secs(10)));
    let status = ligier.status();
    assert_eq!(status.connections_over_limit, 1);
    assert_eq!(status.connections.len(), 3);
    assert!(status.to_string().contains("--max-connections"), "{status}");
    // Room again once one goes.
    drop(held);
    wait_for("connections closed", Duration::from_secs(10), || {
        ligier.status().connections.is_empty()
    });
    query_status(&ligier.local_addr().to_string(), Duration::from_secs(5)).unwrap();
}
