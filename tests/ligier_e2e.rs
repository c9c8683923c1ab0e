//! Ligier, mirror, record and publish end to end: the `km3mon` binary and
//! the KM3NeT Python ControlHost clients (PyPI `controlhost`, km3pipe) as
//! independent peers, over loopback TCP. Every wait is bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, km3mon, python, testdata};
use daq::controlhost::{encode_message, Mode, Subscription, Tag};
use ligier::{query_status, Client, ClientConfig, Ligier, LigierConfig, StatusReport};

/// The Python side: subscribe and print `TAG HEX` per message, or publish
/// deterministic payloads. `lib` picks the client implementation.
const PEER_PY: &str = r#"
import sys
mode, lib, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if lib == "km3pipe":
    from km3pipe.controlhost import Client
else:
    from controlhost import Client

def payload(i, size):
    return bytes((i * 7 + k) % 256 for k in range(size))

if mode == "sub":
    count, tags = int(sys.argv[4]), sys.argv[5:]
    c = Client("127.0.0.1", port)
    if lib != "km3pipe":
        c._connect()
    for t in tags:
        c.subscribe(t)
    c.socket.settimeout(30)
    for _ in range(count):
        prefix, data = c.get_message()
        print(str(prefix.tag), data.hex(), flush=True)
else:
    tag, sizes = sys.argv[4], [int(s) for s in sys.argv[5:]]
    c = Client("127.0.0.1", port)
    for i, size in enumerate(sizes):
        c.put_message(tag, payload(i, size))
    c.socket.close()
"#;

fn py_payload(i: usize, size: usize) -> Vec<u8> {
    (0..size).map(|k| ((i * 7 + k) % 256) as u8).collect()
}

/// A child process killed when the test ends, whatever happens.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn km3mon(args: &[&str]) -> Proc {
        Proc(
            Command::new(km3mon())
                .args(args)
                .env("KM3MON_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start km3mon"),
        )
    }

    fn python(args: &[&str]) -> Proc {
        Proc(
            Command::new(python())
                .arg("-c")
                .arg(PEER_PY)
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start python"),
        )
    }

    /// Send SIGTERM and expect a clean exit within `timeout`.
    fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.wait(timeout)
    }

    fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit in {timeout:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Collect stdout and stderr while waiting, so that a chatty child
    /// never blocks on a full pipe.
    fn output(mut self, timeout: Duration) -> Output {
        use std::io::Read;
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut buf);
                }
                buf
            })
        };
        let stdout = drain(
            self.0
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = drain(
            self.0
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let status = self.wait(timeout);
        Output {
            status,
            stdout: stdout.join().unwrap(),
            stderr: stderr.join().unwrap(),
        }
    }
}

fn km3mon_run(args: &[&str]) -> Output {
    let child = Proc(
        Command::new(km3mon())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = child.output(Duration::from_secs(30));
    assert!(
        out.status.success(),
        "km3mon {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn status(addr: &str) -> Option<StatusReport> {
    query_status(addr, Duration::from_secs(2)).ok()
}

/// Wait until a connection of the Ligier at `addr` satisfies `pred`.
fn wait_connection(
    addr: &str,
    what: &str,
    pred: impl Fn(&ligier::stats::ConnectionStatus) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if status(addr).is_some_and(|s| s.connections.iter().any(&pred)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} at {addr}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn wait_subscriber(addr: &str, tag: &str) {
    wait_connection(addr, &format!("a subscriber of {tag}"), |c| {
        c.subscription.split_whitespace().any(|w| w == tag)
    });
}

/// The three frames of the sample event dump (DAQ frames back to back).
fn sample_events() -> (std::path::PathBuf, Vec<Vec<u8>>) {
    let path = testdata().join("daq/IO_EVT.dat");
    let bytes = std::fs::read(&path).unwrap();
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        frames.push(bytes[at..at + len].to_vec());
        at += len;
    }
    assert_eq!(frames.len(), 3);
    (path, frames)
}

fn parse_python_lines(out: &Output) -> Vec<(String, Vec<u8>)> {
    assert!(
        out.status.success(),
        "python peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    BufReader::new(&out.stdout[..])
        .lines()
        .map(|l| {
            let l = l.unwrap();
            let (tag, hex) = l.split_once(' ').unwrap_or((&l, ""));
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (tag.to_string(), bytes)
        })
        .collect()
}

fn start_ligier_binary(port: u16) -> Proc {
    let proc = Proc::km3mon(&[
        "ligier",
        "--port",
        &port.to_string(),
        "--status-interval",
        "0",
    ]);
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&addr).is_none() {
        assert!(
            Instant::now() < deadline,
            "km3mon ligier did not come up on {addr}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    proc
}

/// The issue's "done when": km3mon ligier, a KM3NeT Python subscriber,
/// `km3mon publish --tag IO_EVT IO_EVT.dat`, three events byte-identical.
#[test]
fn python_subscriber_receives_published_dump_byte_identical() {
    let port = free_port();
    let _ligier = start_ligier_binary(port);
    let addr = format!("127.0.0.1:{port}");
    let (path, frames) = sample_events();
    let port_s = port.to_string();
    let sub = Proc::python(&["sub", "controlhost", &port_s, "3", "IO_EVT"]);
    wait_subscriber(&addr, "IO_EVT");
    km3mon_run(&[
        "publish",
        "--ligier",
        &addr,
        "--tag",
        "IO_EVT",
        path.to_str().unwrap(),
    ]);
    let got = parse_python_lines(&sub.output(Duration::from_secs(30)));
    assert_eq!(got.len(), 3);
    for (i, (tag, payload)) in got.iter().enumerate() {
        assert_eq!(tag, "IO_EVT");
        assert_eq!(payload, &frames[i], "event {i} differs");
    }
    let report = status(&addr).unwrap();
    let row = report.tags.iter().find(|t| t.tag == "IO_EVT").unwrap();
    assert_eq!(
        (
            row.counters.msgs_in,
            row.counters.msgs_out,
            row.counters.drops
        ),
        (3, 3, 0)
    );
}

/// km3pipe publishes into our Ligier, our client and the PyPI client
/// subscribe; our client publishes, km3pipe subscribes.
#[test]
fn km3pipe_and_controlhost_clients_interoperate_with_our_ligier() {
    let ligier = Ligier::start(LigierConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        status_interval: None,
        ..LigierConfig::default()
    })
    .unwrap();
    let addr = ligier.local_addr().to_string();
    let port = ligier.local_addr().port().to_string();
    let sizes = [0usize, 1, 16, 100, 5724, 70_000];
    let size_args: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();

    // Python publisher (km3pipe) → our client + Python subscriber (controlhost).
    let mut ours = Client::connect(ClientConfig::new(&addr)).unwrap();
    ours.subscribe(Subscription::new().with(Mode::Any, Tag::new("MSG").unwrap()))
        .unwrap();
    let n = sizes.len().to_string();
    let py_sub = Proc::python(&["sub", "controlhost", &port, &n, "MSG"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ligier
        .status()
        .connections
        .iter()
        .filter(|c| c.subscription.contains("MSG"))
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "python subscriber never subscribed"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let mut args = vec!["pub", "km3pipe", &port, "MSG"];
    args.extend(size_args.iter().map(String::as_str));
    let py_pub = Proc::python(&args).output(Duration::from_secs(30));
    assert!(
        py_pub.status.success(),
        "{}",
        String::from_utf8_lossy(&py_pub.stderr)
    );
    for (i, &size) in sizes.iter().enumerate() {
        let msg = ours
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("message");
        assert_eq!(msg.tag().as_str(), "MSG");
        assert_eq!(
            msg.payload(),
            &py_payload(i, size)[..],
            "message {i} to our client"
        );
    }
    let got = parse_python_lines(&py_sub.output(Duration::from_secs(30)));
    assert_eq!(got.len(), sizes.len());
    for (i, (tag, payload)) in got.iter().enumerate() {
        assert_eq!(tag, "MSG");
        assert_eq!(
            payload,
            &py_payload(i, sizes[i]),
            "message {i} to the controlhost client"
        );
    }

    // Our client publishes → km3pipe subscribes.
    let py_sub = Proc::python(&["sub", "km3pipe", &port, &n, "IO_SUM"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ligier
        .status()
        .connections
        .iter()
        .any(|c| c.subscription.contains("IO_SUM"))
    {
        assert!(
            Instant::now() < deadline,
            "km3pipe subscriber never subscribed"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let tag = Tag::new("IO_SUM").unwrap();
    for (i, &size) in sizes.iter().enumerate() {
        ours.send(tag, &py_payload(i, size)).unwrap();
    }
    ours.flush().unwrap();
    let got = parse_python_lines(&py_sub.output(Duration::from_secs(30)));
    assert_eq!(got.len(), sizes.len());
    for (i, (t, payload)) in got.iter().enumerate() {
        assert_eq!(t, "IO_SUM");
        assert_eq!(payload, &py_payload(i, sizes[i]), "message {i} to km3pipe");
    }
}

fn recording_of(frames: &[Vec<u8>], times: usize) -> Vec<u8> {
    let tag = Tag::new("IO_EVT").unwrap();
    let one: Vec<u8> = frames.iter().flat_map(|f| encode_message(tag, f)).collect();
    one.repeat(times)
}

fn wait_file(path: &Path, expected: &[u8]) {
    // Generous: after a restart the clients reconnect on a jittered
    // back-off, and the full suite keeps both cores busy.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let got = std::fs::read(path).unwrap_or_default();
        if got.len() >= expected.len() {
            assert_eq!(got, expected, "recording differs");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "recording has {} of {} bytes",
            got.len(),
            expected.len()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Ligier restarts with a running mirror and recorder (binaries), then the
/// recording is published again and read by a Python subscriber.
#[test]
fn mirror_and_recorder_resume_after_ligier_restarts() {
    let (up_port, down_port) = (free_port(), free_port());
    let (up, down) = (
        format!("127.0.0.1:{up_port}"),
        format!("127.0.0.1:{down_port}"),
    );
    let dir = std::env::temp_dir().join(format!("km3mon-ligier-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("io_evt.ch");
    let (dump, frames) = sample_events();
    let dump = dump.to_str().unwrap();

    let mut upstream = start_ligier_binary(up_port);
    let mut downstream = start_ligier_binary(down_port);
    let mirror = Proc::km3mon(&["mirror", "--from", &up, "--to", &down, "--tags", "IO_EVT"]);
    let recorder = Proc::km3mon(&[
        "record",
        "--ligier",
        &down,
        "--tags",
        "IO_EVT",
        "-o",
        rec.to_str().unwrap(),
    ]);
    wait_subscriber(&up, "IO_EVT");
    wait_subscriber(&down, "IO_EVT");
    let publish = || {
        km3mon_run(&[
            "publish", "--ligier", &up, "--tag", "IO_EVT", "--speed", "max", dump,
        ])
    };
    publish();
    wait_file(&rec, &recording_of(&frames, 1));

    // Kill the upstream Ligier: the mirror must come back by itself.
    drop(upstream);
    upstream = start_ligier_binary(up_port);
    wait_subscriber(&up, "IO_EVT");
    publish();
    wait_file(&rec, &recording_of(&frames, 2));

    // Kill the downstream Ligier: mirror (publisher side) and recorder
    // (subscriber) must both come back.
    drop(downstream);
    downstream = start_ligier_binary(down_port);
    wait_connection(&down, "the recorder", |c| {
        c.name.as_deref() == Some("km3mon-record") && c.subscription.contains("IO_EVT")
    });
    publish();
    wait_file(&rec, &recording_of(&frames, 3));

    assert!(recorder.terminate(Duration::from_secs(5)).success());
    assert!(mirror.terminate(Duration::from_secs(5)).success());
    assert_eq!(std::fs::read(&rec).unwrap(), recording_of(&frames, 3));

    // The recording publishes back with its own tags (no --tag needed).
    let port_s = down_port.to_string();
    let sub = Proc::python(&["sub", "controlhost", &port_s, "9", "IO_EVT"]);
    wait_connection(&down, "the python subscriber", |c| {
        c.name.is_none() && c.subscription.contains("IO_EVT")
    });
    km3mon_run(&[
        "publish",
        "--ligier",
        &down,
        "--speed",
        "max",
        rec.to_str().unwrap(),
    ]);
    let got = parse_python_lines(&sub.output(Duration::from_secs(30)));
    assert_eq!(got.len(), 9);
    for (i, (_, payload)) in got.iter().enumerate() {
        assert_eq!(payload, &frames[i % 3]);
    }
    drop((upstream, downstream));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn publish_without_tag_refuses_a_dump() {
    let (dump, _) = sample_events();
    let out = Command::new(km3mon())
        .args(["publish", "--ligier", "127.0.0.1:1", dump.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tag"), "{err}");
}
