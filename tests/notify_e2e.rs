//! Alerts to people end to end: a simulator recording in which three DOMs
//! of DU 2 fall silent for 50 s, replayed through graphs/km3mon.toml with
//! the `alerts_notify` node delivering in the replay (`in_replay = true`)
//! to a chat server, gives exactly one grouped firing message naming the
//! DU and later one resolved message; `alerts_routing.jsonl` says where each went
//! and that it was delivered. Without `in_replay` nothing is posted and
//! the lines say so. And `km3mon check` points at bad `[Alerts]` keys in
//! the site config.
//!
//! No real Rocket.Chat server can run here: the chat peer is `testchat`,
//! a local HTTP server that implements the Rocket.Chat REST endpoints
//! km3mon uses (login, channels.list with paging, chat.postMessage) and
//! records what was posted. Loopback only; every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn km3mon(args: &[&str]) -> Output {
    Command::new(common::km3mon())
        .args(args)
        .current_dir(repo())
        .env("KM3MON_LOG", "warn")
        .output()
        .expect("run km3mon")
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A 2-minute recording of a 3-DU detector: DU 2 floors 1–3 silent from
/// 10 s to 60 s. Returns (recording, detector file).
fn silent_doms(dir: &Path) -> (PathBuf, PathBuf) {
    let faults: Vec<String> = ["2/1", "2/2", "2/3"]
        .iter()
        .flat_map(|f| ["--fault".to_string(), format!("dom-silent@10s+50s:{f}")])
        .collect();
    let faults: Vec<&str> = faults.iter().map(String::as_str).collect();
    common::simulate(dir, "3x18", "2m", &faults)
}

/// The shipped example with a 20 s inactivity threshold and alerts to the
/// chat at `url` (REST bot mode), one route for inactive DOMs.
fn site_config(dir: &Path, url: &str) -> PathBuf {
    let example = std::fs::read_to_string(repo().join("pipeline.toml.example")).unwrap();
    for needle in [
        "inactive_after = 300",
        "enabled = false\nreminder_interval",
        "shifters = []",
        "channel = \"operations_fr\"",
        "password = \"change-me\"\nchannel",
    ] {
        assert!(
            example.contains(needle),
            "pipeline.toml.example changed: {needle}"
        );
    }
    let text = example
        .replace("inactive_after = 300", "inactive_after = 20")
        .replace(
            "enabled = false\nreminder_interval",
            "enabled = true\nreminder_interval",
        )
        .replace("shifters = []", "shifters = [\"cnorris\", \"bspencer\"]")
        .replace("channel = \"operations_fr\"", "channel = \"operations\"")
        .replace(
            "password = \"change-me\"\nchannel",
            "password = \"monitoring\"\nchannel",
        )
        + &format!(
            r#"
[Alerts.chat]
mode = "rest"
url = "{url}"
timeout = 5

[[Alerts.route]]
name = "shift"
match = ["dom_inactive:*"]
sinks = ["chat"]
throttle = 600
"#
        );
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// graphs/km3mon.toml, with or without delivery in a replay.
fn graph(dir: &Path, in_replay: bool) -> PathBuf {
    let shipped = std::fs::read_to_string(repo().join("graphs/km3mon.toml")).unwrap();
    let anchor = "alerts = \"@config.Alerts\"";
    assert!(shipped.contains(anchor));
    let text = shipped.replace(anchor, &format!("{anchor}\nin_replay = {in_replay}"));
    let p = dir.join(format!("km3mon-{in_replay}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn replay(graph: &Path, site: &Path, detx: &Path, rec: &Path, out: &Path) -> Output {
    ok(
        km3mon(&[
            "replay",
            "--graph",
            graph.to_str().unwrap(),
            "--config",
            site.to_str().unwrap(),
            "--detector",
            detx.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            rec.to_str().unwrap(),
        ]),
        "km3mon replay",
    )
}

/// The routing lines (alerts_notify's own file).
fn routing_lines(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("data/alerts_routing.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|v| v.get("route").is_some())
        .collect()
}

#[test]
fn silent_doms_of_one_du_give_one_grouped_message_and_one_resolved() {
    let dir = common::scratch("notify-e2e", "grouped");
    let (rec, detx) = silent_doms(&dir);
    let chat = testchat::TestChat::start(testchat::Options::default()).unwrap();
    let site = site_config(&dir, &chat.url());

    // Delivering replay.
    let out = dir.join("out");
    replay(&graph(&dir, true), &site, &detx, &rec, &out);
    let posted: Vec<String> = chat
        .messages("operations")
        .into_iter()
        .filter(|m| m.username == "monitoring")
        .map(|m| m.text)
        .collect();
    assert_eq!(posted.len(), 2, "{posted:#?}");
    assert!(
        posted[0].starts_with(
            "@cnorris @bspencer: FIRING (warning): DU 2: 3 DOMs inactive (floors 1–3)"
        ),
        "{}",
        posted[0]
    );
    assert!(
        posted[1].starts_with(
            "@cnorris @bspencer: RESOLVED (warning): DU 2: 3 DOMs sending data again (floors 1–3)"
        ),
        "{}",
        posted[1]
    );
    let lines = routing_lines(&out);
    let summary: Vec<(String, String, String, usize, bool)> = lines
        .iter()
        .map(|l| {
            (
                l["route"].as_str().unwrap().to_string(),
                l["sink"].as_str().unwrap_or("").to_string(),
                l["notice"].as_str().unwrap().to_string(),
                l["keys"].as_array().map_or(0, Vec::len),
                l["delivered"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let row = |notice: &str| {
        (
            "shift".to_string(),
            "chat".to_string(),
            notice.to_string(),
            3,
            true,
        )
    };
    assert_eq!(summary, [row("firing"), row("resolved")], "{lines:#?}");
    // The monitors' own lines are still there, one per DOM and state.
    let text = std::fs::read_to_string(out.join("data/alerts.jsonl")).unwrap();
    let dom_lines = text
        .lines()
        .filter(|l| l.contains("\"monitor\"") && l.contains("dom_inactive:"))
        .count();
    assert_eq!(dom_lines, 6, "{text}");

    // Without in_replay: routed and written down, nothing posted.
    let before = chat.messages("operations").len();
    let dry = dir.join("dry");
    replay(&graph(&dir, false), &site, &detx, &rec, &dry);
    assert_eq!(
        chat.messages("operations").len(),
        before,
        "a replay paged the shift"
    );
    let lines = routing_lines(&dry);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for l in &lines {
        assert_eq!(l["delivered"], false);
        assert!(l["error"].as_str().unwrap().contains("in_replay"), "{l}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The chat server is down for the whole replay: the replay still ends
/// (delivery never blocks the graph), every routed message is written down
/// as not delivered with the connection error, and the run's summary counts
/// them as `undelivered` drops (the same counter /status shows).
#[test]
fn chat_server_down_is_counted_and_never_blocks_the_graph() {
    let dir = common::scratch("notify-e2e", "down");
    let (rec, detx) = silent_doms(&dir);
    // A port nobody listens on.
    let port = common::free_port();
    let site = site_config(&dir, &format!("http://127.0.0.1:{port}"));
    let out = dir.join("out");
    let run = replay(&graph(&dir, true), &site, &detx, &rec, &out);
    let lines = routing_lines(&out);
    let delivery: Vec<_> = lines
        .iter()
        .filter(|l| l.get("delivered").is_some())
        .collect();
    assert_eq!(delivery.len(), 2, "{lines:#?}");
    for l in &delivery {
        assert_eq!(l["delivered"], false, "{l}");
        assert!(l["error"].as_str().is_some_and(|e| !e.is_empty()), "{l}");
    }
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("undelivered/chat"),
        "the summary does not count the undelivered messages:\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `text` to `path`, runs `km3mon check` of the shipped graph with
/// it as the site config, expects a refusal and returns what it printed.
fn check_refuses(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    let out = km3mon(&[
        "check",
        "graphs/km3mon.toml",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "check accepted:\n{text}");
    String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout)
}

#[test]
fn check_points_at_bad_alerts_keys_in_the_site_config() {
    let dir = common::scratch("notify-e2e", "check");
    let example = std::fs::read_to_string(repo().join("pipeline.toml.example")).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, &example).unwrap();
    let out = km3mon(&[
        "check",
        "graphs/km3mon.toml",
        "--config",
        good.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l == needle).expect(needle) + 1;
    let bad_text = format!(
        "{example}\n[[Alerts.route]]\nname = \"shift\"\nmin_severity = \"urgent\"\nsinks = [\"log\"]\n"
    );
    let bad = dir.join("bad.toml");
    let stderr = check_refuses(&bad, &bad_text);
    let l = line_of(&bad_text, "min_severity = \"urgent\"");
    let at = format!(
        "{}:{l}:16: Alerts.route[0].min_severity: unknown variant `urgent`",
        bad.display()
    );
    assert!(stderr.contains(&at), "expected `{at}` in:\n{stderr}");

    let bad_text = format!(
        "{example}\n[Alerts.email]\nenabled = true\nfrom = \"km3mon@example.org\"\n\n[[Alerts.route]]\nname = \"shift\"\nsinks = [\"log\", \"chta\"]\nthrotle = 60\n"
    );
    let stderr = check_refuses(&bad, &bad_text);
    // Unknown keys are refused before the other checks run.
    let l = line_of(&bad_text, "throtle = 60");
    let at = format!(
        "{}:{l}:1: Alerts.route[0].throtle: unknown field `throtle`",
        bad.display()
    );
    assert!(stderr.contains(&at), "expected `{at}` in:\n{stderr}");

    let bad_text = bad_text.replace("throtle = 60\n", "");
    let stderr = check_refuses(&bad, &bad_text);
    let l = line_of(&bad_text, "sinks = [\"log\", \"chta\"]");
    let at = format!(
        "{}:{l}:17: Alerts.route[0].sinks[1]: unknown sink `chta`",
        bad.display()
    );
    assert!(stderr.contains(&at), "expected `{at}` in:\n{stderr}");
    let l = line_of(&bad_text, "[Alerts.email]");
    let at = format!(
        "{}:{l}:1: Alerts.email: e-mail is enabled but has no recipients",
        bad.display()
    );
    assert!(stderr.contains(&at), "expected `{at}` in:\n{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
