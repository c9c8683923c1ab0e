//! Tests of `log_stats` (its own file: stats.rs stays under 600 lines).

use super::*;
use crate::shell::run_by_hand;
use pipeline::item::{time_of_ns, AlertState, MsgItem};

const MIDNIGHT_NS: u64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z

fn msg(s: &str) -> Item {
    Item::Msg(Box::new(MsgItem { text: s.into() }))
}

fn monitor(max_errors: u64, tx: Option<WriterQueue<Job>>) -> StatsMonitor {
    StatsMonitor {
        interval: 600,
        max_errors,
        window: 600,
        close_at_end: true,
        day: None,
        stats: DayStats::default(),
        last_plot: None,
        book: AlertBook::new("log_stats", 0),
        errors: BTreeMap::new(),
        tx,
    }
}

const KNOWN_LOG: &str = "\
2024-01-01T10:00:00+0000 192.168.0.110 Q01 WARNING late packet
2024-01-01T10:00:01+0000 192.168.0.111 F01 ERROR Error \"x\"; trigger ev_error.
2024-01-01T10:00:02+0000 192.168.0.111 F01 ERROR Error \"y\"; trigger ev_error.
2024-01-01T10:00:03+0000 192.168.0.112 F02 WARNING slow
2024-01-01T10:00:04+0000 192.168.0.113 W01 STATUS wrote
2024-01-01T10:00:05+0000 192.168.0.114 A01 ERROR beacon
ALERT (MONITORING) 2024-01-01T10:00:06Z: invalid time sync for DOM 1
just text";

#[test]
fn statistics_of_a_known_log() {
    let mut s = DayStats::new(19_723);
    for l in KNOWN_LOG.lines() {
        s.add(l);
    }
    assert_eq!(
        (s.date.as_str(), s.lines, s.unstructured),
        ("2024-01-01", 8, 2)
    );
    let c = |k: &str, l: &str| DayStats::count(&s.categories, k, l);
    let p = |k: &str, l: &str| DayStats::count(&s.processes, k, l);
    assert_eq!(
        (c("DataFilter", "ERROR"), c("DataFilter", "WARNING")),
        (2, 1)
    );
    assert_eq!(
        (c("DataQueue", "WARNING"), c("DataWriter", "STATUS")),
        (1, 1)
    );
    assert_eq!(c("AcousticDataFilter", "ERROR"), 1);
    assert_eq!((c("Other", "ALERT"), c("Other", "UNKNOWN")), (1, 1));
    assert_eq!(
        (p("F01", "ERROR"), p("F02", "WARNING"), p("F01", "WARNING")),
        (2, 1, 0)
    );
    assert_eq!(p("-", "ALERT") + p("-", "UNKNOWN"), 2);
}

#[test]
fn days_close_at_midnight_and_plots_are_written() {
    let replay = pipeline::runtime::Mode::Replay {
        files: Vec::new(),
        speed: None,
    };
    let metrics = std::sync::Arc::new(pipeline::runtime::metrics::NodeMetrics::new());
    let (tx, rx) = pipeline::runtime::queue::writer_queue(64, &replay, metrics, "test");
    let mut m = monitor(0, Some(tx));
    let before = time_of_ns(MIDNIGHT_NS - 60_000_000_000);
    let after = time_of_ns(MIDNIGHT_NS + 60_000_000_000);
    run_by_hand(
        &mut m,
        vec![
            (
                before,
                vec![msg("t 1.1.1.1 F01 ERROR a"), msg("t 1.1.1.1 Q01 WARNING b")],
            ),
            (after, vec![msg("t 1.1.1.1 W01 ERROR c")]),
        ],
    );
    let jobs: Vec<Job> = rx.try_iter().collect();
    let finals: Vec<_> = jobs
        .iter()
        .filter(|j| j.final_)
        .map(|j| j.stats.date.as_str())
        .collect();
    assert_eq!(finals, ["2023-12-31", "2024-01-01"]);
    let first = jobs.iter().find(|j| j.final_).unwrap();
    assert_eq!(first.stats.lines, 2);
    let dir = std::env::temp_dir().join(format!("km3mon-logstats-{}", std::process::id()));
    write_day(&dir, "MSG", &first.stats).unwrap();
    let png = std::fs::read(dir.join("MSG_2023-12-31.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let json: DayStats =
        serde_json::from_str(&std::fs::read_to_string(dir.join("MSG_2023-12-31.json")).unwrap())
            .unwrap();
    assert_eq!(json, first.stats);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn error_rate_alert_fires_and_resolves() {
    let mut m = monitor(2, None);
    let t0 = time_of_ns(MIDNIGHT_NS);
    let input = (0..3)
        .map(|i| {
            (
                t0 + i * 10,
                vec![
                    msg("t 1.1.1.1 F01 ERROR boom"),
                    msg("t 1.1.1.1 Q01 ERROR one-off"),
                ],
            )
        })
        .chain([(t0 + 2000, vec![msg("t 1.1.1.1 F01 INFO ok")])])
        .collect();
    let out = run_by_hand(&mut m, input);
    let alerts: Vec<_> = out
        .iter()
        .filter_map(|(t, i)| match i {
            Item::Alert(a) => Some((*t, a.key.as_str(), a.state)),
            _ => None,
        })
        .collect();
    assert_eq!(alerts.len(), 4, "{alerts:?}");
    assert_eq!(alerts[0], (t0 + 20, "msg_errors:F01", AlertState::Firing));
    assert_eq!(alerts[1], (t0 + 20, "msg_errors:Q01", AlertState::Firing));
    // The first ERROR (t0) leaves the 60 s window at t0 + 600 ticks:
    // then 2 ≤ max_errors remain, resolved at that data time.
    assert_eq!(
        alerts[2],
        (t0 + 600, "msg_errors:F01", AlertState::Resolved)
    );
    assert_eq!(
        alerts[3],
        (t0 + 600, "msg_errors:Q01", AlertState::Resolved)
    );
}

/// Issue 15, problem 2: an ERROR burst of one process, then 160 s of
/// other lines; the resolution comes at burst end + error_window (to
/// the tick) in every replay, however the input is batched and
/// however the frontier moves (20 random runs + the single jump).
#[test]
fn resolution_at_the_window_end_in_every_replay() {
    use crate::shell::{drive, random_steps};
    let t0 = time_of_ns(MIDNIGHT_NS);
    let mut input: Vec<(Time, Vec<Item>)> = (0..12)
        .map(|i| (t0 + i * 5, vec![msg("t 1.1.1.1 F01 ERROR burst")]))
        .collect();
    // 55 s burst end, then INFO lines every 2 s up to 215 s.
    input.extend((0..80).map(|i| (t0 + 600 + i * 20, vec![msg("t 1.1.1.1 F01 INFO ok")])));
    let alerts = |out: Vec<(Time, Item)>| -> Vec<(Time, String, AlertState)> {
        out.into_iter()
            .filter_map(|(t, i)| match i {
                Item::Alert(a) => Some((t, a.key, a.state)),
                _ => None,
            })
            .collect()
    };
    let reference = alerts(drive(&mut monitor(10, None), random_steps(&input, 0)));
    // 11 > 10 at the 11th ERROR (t0 + 50); back to 10 when the second
    // (t0 + 5) leaves the 60 s window, at t0 + 605.
    assert_eq!(
        reference,
        [
            (t0 + 50, "msg_errors:F01".to_string(), AlertState::Firing),
            (t0 + 605, "msg_errors:F01".to_string(), AlertState::Resolved),
        ]
    );
    for seed in 1..=20 {
        let got = alerts(drive(&mut monitor(10, None), random_steps(&input, seed)));
        assert_eq!(got, reference, "replay {seed}");
    }
}
