//! The chatbot's authorisation matrix, shared by the test of the bot
//! itself (messaging/tests/chatbot_auth.rs) and the tests of its two chat
//! modes (tests/chatbot_matrix.rs), so the three cannot drift apart.
//! Included with `#[path]` by both packages' tests.

use std::sync::Arc;

use messaging::bot::{Bot, Role};
use messaging::shifters::Shifters;
use pipeline::control::Control;
use pipeline::operator::Role as NodeRole;
use pipeline::runtime::metrics::Metrics;

/// (command, least role allowed, whether it changes something when allowed)
pub const MATRIX: &[(&str, Role, bool)] = &[
    ("help", Role::Stranger, false),
    ("hello", Role::Stranger, false),
    ("CIAO", Role::Stranger, false),
    ("status", Role::Shifter, false),
    ("status dom_rates", Role::Shifter, false),
    ("latency", Role::Shifter, false),
    ("supervisorctl status", Role::Shifter, false),
    ("silences", Role::Shifter, false),
    ("shifters", Role::Shifter, false),
    ("stop dom_rates", Role::Operator, true),
    ("start monitoring_process:*", Role::Operator, true),
    ("restart dom_rates", Role::Operator, true),
    ("supervisorctl stop dom_rates", Role::Operator, true),
    ("supervisorctl start dom_activity", Role::Operator, true),
    (
        "silence dom_inactive:* 2h DU3 recabled",
        Role::Operator,
        true,
    ),
    ("unsilence time_sync:*", Role::Operator, true),
    ("shifters are cnorris and bspencer", Role::Operator, true),
    ("rttc-reset --du 3", Role::Operator, true),
    ("reset rttc 2", Role::Operator, true),
];

/// One user of each role: `opal` is the operator, `bobby` the shifter,
/// `bob` (a prefix of `bobby`: the original's substring quirk) nobody.
pub const USERS: &[(&str, Role)] = &[
    ("opal", Role::Operator),
    ("bobby", Role::Shifter),
    ("bob", Role::Stranger),
];

/// A bot on a fresh control plane with four nodes, `dom_activity`
/// stopped and `time_sync:*` silenced, so that `start` and `unsilence`
/// have something to change.
pub fn fresh() -> (Arc<Bot>, Arc<Control>, Arc<Shifters>) {
    let control = Arc::new(Control::new(None, None));
    let m = Metrics::default();
    for (n, g, r) in [
        ("daq", "daq", NodeRole::Source),
        ("dom_rates", "monitoring_process", NodeRole::Transform),
        ("dom_activity", "monitoring_process", NodeRole::Transform),
        ("alerts", "alerts", NodeRole::Sink),
        ("rttc", "monitoring_process", NodeRole::Source),
    ] {
        control.register(n, n, g, r, m.node(n));
    }
    // rttc takes reset requests (`rttc-reset --du N`).
    control.node("rttc").unwrap().accept_requests(|_| Ok(()));
    assert!(control.execute("stop dom_activity", "setup").ok);
    assert!(control.execute("silence time_sync:* 1h setup", "setup").ok);
    let shifters = Shifters::in_memory(&["bobby"]);
    let bot = Arc::new(Bot::new(
        "monitoring",
        "operations",
        vec!["opal".into()],
        shifters.clone(),
        control.clone(),
    ));
    (bot, control, shifters)
}

/// What a command may change: node states and restarts, silences,
/// shifters, reset requests queued for a node.
pub fn observable(control: &Control, shifters: &Shifters) -> String {
    let nodes: Vec<(String, String, u64)> = control
        .nodes()
        .into_iter()
        .map(|n| (n.name, n.state, n.restarts))
        .collect();
    let silences: Vec<String> = control.silences().into_iter().map(|s| s.pattern).collect();
    let requests = control.node("rttc").map_or(0, |n| n.pending_requests());
    format!("{nodes:?} {silences:?} {:?} {requests}", shifters.names())
}
