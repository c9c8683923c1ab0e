//! A full disk during a live run: a real Ligier on 127.0.0.1, the
//! simulator, and `km3mon run` of the full suite writing into a small
//! tmpfs that is filled up. Only the nodes that write turn FAILED, each
//! once and naming its file; the monitors keep counting; every error line
//! names a file, no file twice; when space comes back the writers retry
//! (with back-off) and run again; no temporary files are left. Needs
//! `mount` (root, as in CI's container); says so and passes trivially
//! where it is not allowed.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::live::{root, status};
use common::{free_port, km3mon, scratch, testdata};
use common::{start_ligier, wait_port, Guard};

/// Unmounts the test's tmpfs, whatever happens.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// (name, control_state, reason) of every node.
fn nodes(port: u16) -> Vec<(String, String, String)> {
    let Some(s) = status(port) else {
        return Vec::new();
    };
    s["pipeline"]["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    let f = |k: &str| n[k].as_str().unwrap_or("").to_string();
                    (f("name"), f("control_state"), f("reason"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn records_in(port: u16, node: &str) -> u64 {
    status(port).map_or(0, |s| {
        s["pipeline"]["nodes"]
            .as_array()
            .and_then(|a| a.iter().find(|n| n["name"] == node))
            .and_then(|n| n["records_in"].as_u64())
            .unwrap_or(0)
    })
}

fn wait(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn live_full_disk_fails_the_writers_once_and_they_recover_when_space_returns() {
    let dir = scratch("full-live", "disk");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    }
    let _mount = Mount(out.clone());
    // Fill it: nothing is left for the run's files.
    let filler = out.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while f.write_all(&[0u8; 65536]).is_ok() {}
    drop(f);

    let lig = free_port();
    let web_port = free_port();
    let log = dir.join("run.log");
    let _ligier = start_ligier(lig);
    let detx = testdata().join("detx/detx_v4.detx");
    let mut run = Guard(
        Command::new(km3mon())
            .current_dir(&dir)
            .env("KM3MON_LOG", "info")
            .env("DAQ_LIGIER_IP", "127.0.0.1")
            .env("LOG_LIGIER_IP", "127.0.0.1")
            .env("DAQ_LIGIER_PORT", lig.to_string())
            .env("LOG_LIGIER_PORT", lig.to_string())
            .args(["run", "--graph"])
            .arg(root().join("graphs/km3mon.toml"))
            .arg("--detector")
            .arg(&detx)
            .args(["--out", "out", "--state-interval", "2s"])
            .args(["--web", &format!("127.0.0.1:{web_port}")])
            .args(["--heartbeat-ms", "200", "--lateness", "2s"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_port(web_port);
    let _sim = Guard(
        Command::new(km3mon())
            .args(["simulate", "--detector"])
            .arg(&detx)
            .args(["--ligier", &format!("127.0.0.1:{lig}")])
            .args(["--msg-interval", "1s"])
            .env("KM3MON_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let failed = |p: u16| -> Vec<(String, String)> {
        nodes(p)
            .into_iter()
            .filter(|(_, s, _)| s == "FAILED")
            .map(|(n, _, r)| (n, r))
            .collect()
    };
    // The CSV of the tag rates, the plots and the MSG archive all fail.
    wait("the writers fail", Duration::from_secs(60), || {
        let f = failed(web_port);
        ["plots", "msg_dumper"]
            .iter()
            .all(|n| f.iter().any(|(name, _)| name == n))
    });
    for (name, why) in failed(web_port) {
        assert!(
            why.starts_with("cannot write ") && why.contains("out/"),
            "{name}: the reason names the file: {why}"
        );
    }
    // The monitors keep counting.
    let before = records_in(web_port, "dom_rates");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        records_in(web_port, "dom_rates") > before,
        "dom_rates stopped"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    let mut files = std::collections::HashSet::new();
    for l in errors
        .iter()
        .filter(|l| !l.contains("only counted from now on"))
    {
        let file = l
            .split_whitespace()
            .find(|w| w.starts_with("out/") || w.contains("/out/"))
            .unwrap_or_else(|| panic!("an error line names no file: {l}"))
            .trim_end_matches(':');
        assert!(files.insert(file.to_string()), "{file} twice: {errors:#?}");
    }
    assert!(text.contains("cannot write state"), "state saves: {text}");

    // Space again: every writer runs again (back-off ≤ 32 s by then, and
    // a plot writer only retries at its next render, which a loaded CI
    // machine can delay by tens of seconds).
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let n = nodes(web_port);
        let down: Vec<_> = n.iter().filter(|(_, s, _)| s != "RUNNING").collect();
        if !n.is_empty() && down.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let df = Command::new("df").arg("-k").arg(&out).output().unwrap();
            panic!(
                "not running again within 150 s: {down:#?}\n{}",
                String::from_utf8_lossy(&df.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("writes again"), "{text}");
    assert!(out.join("logs/MSG.log").exists());
    let st = common::terminate(&mut run.0, Duration::from_secs(20), "km3mon run");
    assert!(st.success(), "{st:?}");
    let mut left = Vec::new();
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if is_temporary(&e.file_name().to_string_lossy()) {
                left.push(e.path());
            }
        }
    }
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// A temporary file of an atomic write: hidden (`.NAME.RANDOM`, where the
/// filesystem has no unnamed temporary files) or an older `.tmp` name.
/// The MSG archive's day sidecar (`.MSG.log.day`) is the one hidden output.
fn is_temporary(name: &str) -> bool {
    (name.starts_with('.') && !name.ends_with(".log.day")) || name.contains(".tmp")
}
