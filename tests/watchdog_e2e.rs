//! systemd's watchdog for `km3mon run` (deploy/systemd, `Type=notify`,
//! `WatchdogSec=`): a worker that hangs stops the `WATCHDOG=1` pings, so
//! systemd kills and restarts the service, while a merely idle graph keeps
//! pinging.
//!
//! No systemd runs here: the test is systemd's side of the protocol — the
//! `NOTIFY_SOCKET` datagram socket and `WATCHDOG_USEC` in the environment.
//! The hang is real: one timely worker thread of the running process is
//! stopped from outside with ptrace (`PTRACE_SEIZE` + `PTRACE_INTERRUPT`
//! stop that one thread, not the process), as a worker stuck in an
//! operator would be; the other worker and the main loop keep running.

#[path = "common/mod.rs"]
mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{km3mon, scratch, terminate};

/// A live graph with nothing to read: its Ligier source retries a closed
/// port, so the workers only step on the heartbeat (the idle case).
const GRAPH: &str = r#"
[nodes.daq]
type = "ligier"
host = "127.0.0.1"
port = 1
tags = ["IO_SUM"]

[nodes.rates]
type = "tag_rates"
inputs = ["daq"]

[nodes.csv]
type = "csv"
inputs = ["rates"]
path = "tag_rates.csv"
"#;

/// Datagrams received within `window` (all of them, not just the first).
fn messages_within(sock: &UnixDatagram, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).to_string()),
            Err(_) => break,
        }
    }
    out
}

fn pings(msgs: &[String]) -> usize {
    msgs.iter().filter(|m| m.contains("WATCHDOG=1")).count()
}

/// The thread of `pid` whose name is `name` (timely names its workers
/// `timely:work-N`).
fn thread_named(pid: u32, name: &str) -> Option<i32> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return task.file_name().to_str()?.parse().ok();
        }
    }
    None
}

/// Stops one thread until dropped (ptrace: the tracer is this thread).
struct Frozen(libc::pid_t);

impl Frozen {
    fn thread(tid: libc::pid_t) -> Frozen {
        // SAFETY: plain ptrace requests on a thread id; no memory is passed.
        unsafe {
            let seized = libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0);
            assert_eq!(
                seized,
                0,
                "ptrace(PTRACE_SEIZE) of thread {tid}: {}",
                std::io::Error::last_os_error()
            );
            let stopped = libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0);
            assert_eq!(stopped, 0, "ptrace(PTRACE_INTERRUPT) of thread {tid}");
            let mut status = 0;
            let waited = libc::waitpid(tid, &mut status, libc::__WALL);
            assert_eq!(waited, tid, "waitpid for the stopped thread {tid}");
        }
        Frozen(tid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above; detaching resumes the thread.
        unsafe {
            libc::ptrace(libc::PTRACE_DETACH, self.0, 0, 0);
        }
    }
}

#[test]
fn a_hung_worker_stops_the_watchdog_pings() {
    let dir = scratch("watchdog", "hung_worker");
    let graph = dir.join("graph.toml");
    std::fs::write(&graph, GRAPH).unwrap();
    let socket_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    let mut child = Command::new(km3mon())
        .args(["run", "--graph"])
        .arg(&graph)
        .args(["--no-web", "-w", "2", "--out"])
        .arg(dir.join("out"))
        .env("NOTIFY_SOCKET", &socket_path)
        // Pings every 0.5 s.
        .env("WATCHDOG_USEC", "1000000")
        .env("KM3MON_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let log = |dir: &Path| std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();

    // Idle but healthy: READY, then a ping every half interval.
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = sock
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no sd_notify message within 20 s: {e}\n{}", log(&dir)));
    let first = String::from_utf8_lossy(&buf[..n]);
    assert!(first.contains("READY=1"), "first message: {first}");
    let healthy = messages_within(&sock, Duration::from_secs(3));
    assert!(
        pings(&healthy) >= 3,
        "idle graph: {healthy:?}\n{}",
        log(&dir)
    );

    // Worker 1 hangs: no ping for several watchdog intervals, although the
    // process (main loop, worker 0) is alive.
    let tid = thread_named(child.id(), "timely:work-1")
        .unwrap_or_else(|| panic!("no thread timely:work-1 in /proc/{}/task", child.id()));
    let frozen = Frozen::thread(tid);
    let _ = messages_within(&sock, Duration::from_millis(600)); // one in flight
    let hung = messages_within(&sock, Duration::from_secs(3));
    assert_eq!(pings(&hung), 0, "pings while worker 1 hangs: {hung:?}");
    assert!(child.try_wait().unwrap().is_none(), "the process died");

    // systemd would have restarted it by now; here the worker resumes and
    // the pings come back, so they were stopped by the hang alone.
    drop(frozen);
    let resumed = messages_within(&sock, Duration::from_secs(5));
    assert!(pings(&resumed) >= 2, "after the hang: {resumed:?}");

    terminate(&mut child, Duration::from_secs(20), "km3mon run");
    let _ = std::fs::remove_dir_all(&dir);
}
