//! Helpers shared by the end-to-end tests: where the sample files are, the
//! binary under test, free loopback ports.
#![allow(dead_code)]

pub mod browser;
pub mod live;
pub mod smtp;

use std::path::{Path, PathBuf};

/// The KM3NeT sample files: `$KM3MON_TESTDATA`, else `../shared/testdata`
/// beside the workspace.
pub fn testdata() -> PathBuf {
    if let Some(dir) = std::env::var_os("KM3MON_TESTDATA") {
        return PathBuf::from(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata");
    assert!(
        dir.is_dir(),
        "sample files not found at {}: set KM3MON_TESTDATA or run scripts/test",
        dir.display()
    );
    dir
}

/// The `km3mon` binary built for this test run.
pub fn km3mon() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_km3mon"))
}

/// Runs `km3mon ARGS` from the repository root (so `graphs/…` paths
/// work), logging at warn, and asserts that it succeeded.
pub fn run_ok(args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(km3mon())
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("KM3MON_LOG", "warn")
        .output()
        .expect("run km3mon");
    assert!(
        out.status.success(),
        "km3mon {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// The Python with the KM3NeT clients (`controlhost`, `km3pipe`).
pub fn python() -> PathBuf {
    if let Some(py) = std::env::var_os("KM3MON_PYTHON") {
        return PathBuf::from(py);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with the KM3NeT clients at {}: run scripts/test (it installs them) or set KM3MON_PYTHON",
        venv.display()
    );
    venv
}

/// An empty scratch folder for one test of `suite`, unique per test process.
pub fn scratch(suite: &str, test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("km3mon-{suite}-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}

/// The four DAQ sample dumps, as arguments for `km3mon replay`.
pub fn sample_dumps() -> Vec<String> {
    ["IO_EVT", "IO_SUM", "IO_TSSN", "IO_MONIT"]
        .iter()
        .map(|t| {
            testdata()
                .join(format!("daq/{t}.dat"))
                .display()
                .to_string()
        })
        .collect()
}

/// `km3net_testdata/data/online` (the ROOT samples of the PyPI package
/// km3net-testdata, which scripts/test installs into the test Python), or
/// `$KM3NET_TESTDATA_ONLINE`.
pub fn online_samples() -> PathBuf {
    if let Some(dir) = std::env::var_os("KM3NET_TESTDATA_ONLINE") {
        return PathBuf::from(dir);
    }
    let py = python();
    let out = std::process::Command::new(&py)
        .args(["-c", "import km3net_testdata, os; print(os.path.join(os.path.dirname(km3net_testdata.__file__), 'data', 'online'))"])
        .output()
        .expect("run the test Python");
    assert!(
        out.status.success(),
        "km3net-testdata is not importable by {}: run scripts/test (it installs it)",
        py.display()
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Sends SIGTERM to `child` and waits at most `within` for it to exit
/// (km3mon's runs stop cleanly on it); panics naming `what` otherwise.
#[allow(dead_code)]
pub fn terminate(
    child: &mut std::process::Child,
    within: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -TERM {what}");
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} still running {within:?} after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A child process that is killed when the test ends, passed or failed, so
/// a failing test leaves no km3mon running.
pub struct Guard(pub std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (at most 20 s) until something listens on 127.0.0.1:`port`.
#[allow(dead_code)]
pub fn wait_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Starts `km3mon ligier --port PORT` (logging at warn, output dropped)
/// and waits until it listens; killed when the guard drops.
#[allow(dead_code)]
pub fn start_ligier(port: u16) -> Guard {
    let child = std::process::Command::new(km3mon())
        .args(["ligier", "--port", &port.to_string()])
        .env("KM3MON_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start km3mon ligier");
    let guard = Guard(child);
    wait_port(port);
    guard
}

/// `km3mon simulate` of a generated detector `shape` (e.g. `3x18`) for
/// `duration` of data into `DIR/rec`, the detector saved as `DIR/d.detx`,
/// with the `extra` options (faults, rates, seed); returns (recording,
/// detector file).
#[allow(dead_code)]
pub fn simulate(dir: &Path, shape: &str, duration: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    let (rec, detx) = (dir.join("rec"), dir.join("d.detx"));
    let mut args = vec![
        "simulate",
        "--generate-detector",
        shape,
        "--write-detector",
        detx.to_str().unwrap(),
        "-o",
        rec.to_str().unwrap(),
        "--duration",
        duration,
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
    (rec, detx)
}

/// `POST path` to 127.0.0.1:`port` over HTTP/1.1 (connection closed after
/// the answer, 20 s read timeout): (status code, body).
#[allow(dead_code)]
pub fn http_post(port: u16, path: &str, body: &str, ctype: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

/// A site config `DIR/pipeline.toml` with alerts on: the REST chat bot
/// at `chat_url`, e-mail to `to` through 127.0.0.1:`smtp_port`, one route
/// `name` of the keys `pattern` to chat, e-mail and the log (throttle
/// 600 s), the given group window (s) and shifters.
#[allow(dead_code)]
pub struct AlertsSite<'a> {
    pub chat_url: &'a str,
    pub smtp_port: u16,
    pub group_window: u32,
    pub shifters: &'a [&'a str],
    pub route: &'a str,
    pub pattern: &'a str,
    pub to: &'a str,
}

#[allow(dead_code)]
pub fn alerts_site(dir: &Path, s: AlertsSite) -> PathBuf {
    let shifters: Vec<String> = s.shifters.iter().map(|n| format!("{n:?}")).collect();
    let text = format!(
        r#"
[Alerts]
enabled = true
reminder_interval = 3600
group_window = {group_window}
botname = "monitoring"
password = "monitoring"
channel = "operations"
shifters = [{shifters}]

[Alerts.chat]
mode = "rest"
url = "{chat_url}"
timeout = 5

[Alerts.email]
enabled = true
server = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "km3mon@shore.example.org"
to = ["{to}"]
timeout = 5

[[Alerts.route]]
name = "{route}"
match = ["{pattern}"]
sinks = ["chat", "email", "log"]
throttle = 600
"#,
        group_window = s.group_window,
        shifters = shifters.join(", "),
        chat_url = s.chat_url,
        smtp_port = s.smtp_port,
        to = s.to,
        route = s.route,
        pattern = s.pattern,
    );
    let p = dir.join("pipeline.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A running `km3mon demo` and what its one stdout line says.
pub struct Demo {
    pub guard: Guard,
    /// `http://127.0.0.1:PORT/  user NAME  password PASS`, as printed.
    pub line: String,
    pub user: String,
    pub password: String,
}

/// Starts `km3mon demo ARGS` (logging at warn, stderr to the test's) with
/// the extra environment `envs`, and waits for its URL line.
pub fn start_demo<I, S>(args: I, envs: &[(&str, &str)]) -> Demo
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    use std::io::BufRead as _;
    let child = std::process::Command::new(km3mon())
        .arg("demo")
        .args(args)
        .env("KM3MON_LOG", "warn")
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start km3mon demo");
    let mut guard = Guard(child);
    let mut line = String::new();
    std::io::BufReader::new(guard.0.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("the demo's URL line");
    assert!(line.starts_with("http://"), "the demo printed {line:?}");
    let words: Vec<&str> = line.split_whitespace().collect();
    let word = |i: usize| words.get(i).map_or(String::new(), |w| w.to_string());
    Demo {
        user: word(2),
        password: word(4),
        line,
        guard,
    }
}
