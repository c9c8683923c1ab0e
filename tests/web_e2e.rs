//! `km3mon serve` end to end: every route over HTTP (auth on and off,
//! traversal attempts, missing files, empty databases, event streams), and
//! in headless Chromium driven over the DevTools protocol (overview with
//! auth, images rendering, a plot updating without reload, the live log).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, km3mon};

const USER: &str = "shifter";
const PASS: &str = "s3cr3t-Pa55";

// ---------------------------------------------------------------- fixtures

/// A minimal valid PNG (RGB, stored deflate blocks), so browsers render it.
fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    }
    // Each scanline: filter byte 0, then the pixels.
    let line: Vec<u8> = std::iter::once(0)
        .chain(rgb.iter().copied().cycle().take(3 * w as usize))
        .collect();
    let raw: Vec<u8> = line.repeat(h as usize);
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push((i + 1 == blocks.len()) as u8);
        z.extend_from_slice(&(b.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Writes a plot the way the monitors do: temporary file, then rename.
fn write_plot(out: &Path, name: &str, w: u32, h: u32, rgb: [u8; 3]) {
    let dir = out.join("plots");
    let tmp = dir.join(format!("{name}_tmp.png"));
    std::fs::write(&tmp, png(w, h, rgb)).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.png"))).unwrap();
    std::fs::write(
        dir.join(format!("{name}.json")),
        format!(r#"{{"det_id":49,"time_utc":"2024-03-01T12:00:00Z","plot":"{name}"}}"#),
    )
    .unwrap();
}

struct Site {
    dir: PathBuf,
    out: PathBuf,
}

impl Site {
    /// A temporary site: config with or without credentials, output tree.
    fn new(tag: &str, auth: bool, extra: &str) -> Site {
        let dir = std::env::temp_dir().join(format!("km3web-e2e-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.join("out");
        for d in ["plots/event_selection", "logs", "data"] {
            std::fs::create_dir_all(out.join(d)).unwrap();
        }
        let creds = if auth {
            format!("username = \"{USER}\"\npassword = \"{PASS}\"\n")
        } else {
            String::new()
        };
        let cfg = format!(
            "[WebServer]\n{creds}output_dir = \"out\"\nstale_after = 3600\npoll_ms = 100\n{extra}\n\
             [LocalDBService]\nfilename = \"data/monitoring.sqlite3\"\n\
             [ELOGService]\npassword = \"elog-secret-xyz\"\n"
        );
        std::fs::write(dir.join("site.toml"), cfg).unwrap();
        std::fs::write(dir.join("secret.txt"), "TOP-SECRET-CONTENT").unwrap();
        Site { dir, out }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(site: &Site) -> Server {
        let port = free_port();
        let mut child = Command::new(km3mon())
            .args(["serve", "--config"])
            .arg(site.dir.join("site.toml"))
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start km3mon serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), format!("http://127.0.0.1:{port}/"));
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------- HTTP client

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        web::auth::base64_encode(format!("{user}:{pass}").as_bytes())
    )
}

/// GET with the path sent verbatim (no client-side normalisation of `..`).
fn get(port: u16, path: &str, auth: Option<&str>) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    // Read the head, then exactly the body: Chromium's DevTools server
    // keeps the connection open despite `Connection: close`.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = raw[split + 4..].to_vec();
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        while body.len() < len {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed mid-body");
            body.extend_from_slice(&buf[..n]);
        }
        body.truncate(len);
    } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        while !body.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
            let n =
                usize::from_str_radix(std::str::from_utf8(&rest[..p]).unwrap().trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[p + 2..p + 2 + n]);
            rest = &rest[p + 4 + n..];
        }
        body = out;
    } else {
        s.read_to_end(&mut body).unwrap();
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// Reads server-sent events from `path` until `done` says so.
fn sse_until(
    port: u16,
    path: &str,
    auth: Option<&str>,
    done: impl Fn(&str) -> bool,
    during: impl FnOnce(),
) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{auth}\r\n"
    )
    .unwrap();
    let mut seen = String::new();
    let mut during = Some(during);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        if let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        if seen.contains("event:") {
            if let Some(f) = during.take() {
                f();
            }
        }
        if done(&seen) {
            return seen;
        }
    }
    panic!("event stream {path} never satisfied the test; got:\n{seen}");
}

/// Every route the server has, with a path that exists.
const PAGES: &[&str] = &[
    "/",
    "/index.html",
    "/plot_dom_rates.html",
    "/trigger.html",
    "/ahrs.html",
    "/rttc.html",
    "/reco.html",
    "/acoustics.html",
    "/sn.html",
    "/compact.html",
    "/top10.html",
    "/logs.html",
    "/live.html",
    "/status",
    "/status.html",
    "/plots/dom_rates.png",
    "/logs/MSG.log",
    "/api/status",
    "/api/plots",
    "/metrics",
    "/static/app.css",
    "/static/plots.js",
];

fn populate(site: &Site) {
    write_plot(&site.out, "dom_rates", 40, 30, [200, 30, 30]);
    write_plot(&site.out, "dom_activity", 40, 30, [30, 200, 30]);
    for du in [10, 2, 1] {
        write_plot(
            &site.out,
            &format!("pmt_rates_du{du}"),
            40,
            30,
            [30, 30, 200],
        );
    }
    let mut log = String::new();
    for i in 0..300 {
        log.push_str(&format!(
            "MSG.log [DataFilter]: 2024-03-01 12:00:{:02} 10.0.0.1 DataFilter STATUS line {i}\n",
            i % 60
        ));
    }
    std::fs::write(site.out.join("logs/MSG.log"), log).unwrap();
}

// ------------------------------------------------------------------ tests

#[test]
fn every_route_requires_auth_and_keeps_secrets() {
    let site = Site::new("auth", true, "");
    populate(&site);
    let srv = Server::start(&site);
    let good = basic(USER, PASS);
    for path in PAGES
        .iter()
        .chain(["/nonexistent.html", "/plots/x/../../secret.txt"].iter())
    {
        let r = get(srv.port, path, None);
        assert_eq!(r.status, 401, "{path} without credentials");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"Login Required\"")
        );
        for bad in [
            basic(USER, "wrong"),
            basic("root", PASS),
            "Basic !!!".into(),
            basic(USER, ""),
        ] {
            assert_eq!(
                get(srv.port, path, Some(&bad)).status,
                401,
                "{path} with {bad}"
            );
        }
    }
    for path in PAGES {
        let r = get(srv.port, path, Some(&good));
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        // The original's no-cache headers, on every response.
        assert_eq!(r.header("pragma"), Some("no-cache"), "{path}");
        assert_eq!(r.header("expires"), Some("0"), "{path}");
        assert!(
            r.header("cache-control").unwrap().contains("no-cache"),
            "{path}"
        );
        let t = r.text();
        assert!(
            !t.contains(PASS) && !t.contains("elog-secret-xyz"),
            "{path} leaks a secret"
        );
    }
    // The one exception: health checks (docker, load balancers) log in
    // nowhere, and the answer says nothing but "ok".
    for auth in [None, Some(basic(USER, "wrong"))] {
        let r = get(srv.port, "/healthz", auth.as_deref());
        assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
        assert_eq!(r.header("pragma"), Some("no-cache"));
    }
    let status = get(srv.port, "/status", Some(&good)).text();
    assert!(!status.contains("Authentication is OFF"));
    let api: serde_json::Value =
        serde_json::from_slice(&get(srv.port, "/api/status", Some(&good)).body).unwrap();
    assert_eq!(api["server"]["auth"], true);
}

#[test]
fn without_credentials_serves_and_warns() {
    let site = Site::new("noauth", false, "");
    let srv = Server::start(&site);
    for path in [
        "/",
        "/top10.html",
        "/logs.html",
        "/live.html",
        "/healthz",
        "/api/plots",
        "/metrics",
    ] {
        assert_eq!(get(srv.port, path, None).status, 200, "{path}");
    }
    let status = get(srv.port, "/status", None).text();
    assert!(status.contains("Authentication is OFF"), "{status}");
    assert!(get(srv.port, "/metrics", None)
        .text()
        .contains("km3mon_web_auth_enabled 0"));
}

#[test]
fn half_configured_credentials_are_refused() {
    let site = Site::new("half", false, "username = \"only\"");
    let out = Command::new(km3mon())
        .args(["serve", "--config"])
        .arg(site.dir.join("site.toml"))
        .args(["--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("username and password"));
}

#[test]
fn traversal_is_refused() {
    let site = Site::new("trav", false, "");
    populate(&site);
    std::os::unix::fs::symlink(site.dir.join("secret.txt"), site.out.join("plots/evil.png"))
        .unwrap();
    std::os::unix::fs::symlink(site.dir.as_path(), site.out.join("logs/up")).unwrap();
    let srv = Server::start(&site);
    for path in [
        "/plots/../secret.txt",
        "/plots/../../secret.txt",
        "/plots/%2e%2e/%2e%2e/secret.txt",
        "/plots/..%2f..%2fsecret.txt",
        "/plots/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/plots/event_selection/../../../secret.txt",
        "/plots/%2fetc%2fpasswd",
        "/plots//etc/passwd",
        "/plots/..%5c..%5csecret.txt",
        "/plots/evil.png",
        "/logs/up/secret.txt",
        "/logs/../site.toml",
        "/logs/%2e%2e/site.toml",
        "/plots/a%00.png",
    ] {
        let r = get(srv.port, path, None);
        assert!(matches!(r.status, 400 | 404), "{path}: {}", r.status);
        assert!(
            !r.text().contains("TOP-SECRET") && !r.text().contains("[WebServer]"),
            "{path}"
        );
    }
    // No directory listings.
    for path in [
        "/plots/",
        "/plots/event_selection",
        "/plots/event_selection/",
        "/logs/",
        "/plots",
        "/logs",
    ] {
        assert_eq!(get(srv.port, path, None).status, 404, "{path}");
    }
    assert_eq!(get(srv.port, "/plots/nope.png", None).status, 404);
    assert_eq!(get(srv.port, "/logs/MSG_2020-01-01.log", None).status, 404);
    let ok = get(srv.port, "/plots/dom_rates.png", None);
    assert_eq!(ok.header("content-type"), Some("image/png"));
    assert!(ok.body.starts_with(b"\x89PNG"));
}

#[test]
fn pages_layouts_placeholders_and_logs() {
    let extra = "[WebServer.pages]\nmine = [[\"dom_rates\", \"absent_plot\"], \"pmt_rates_du*\"]\n";
    let site = Site::new("pages", false, extra);
    let srv = Server::start(&site);
    // Nothing written yet: placeholders, empty states, no errors.
    let idx = get(srv.port, "/", None).text();
    assert!(idx.contains("<title>KM3Mon Detector Monitor</title>"));
    assert!(idx.contains("id=\"utc-clock\""));
    for link in [
        "index.html",
        "trigger.html",
        "acoustics.html",
        "ahrs.html",
        "rttc.html",
        "reco.html",
        "sn.html",
        "top10.html",
        "compact.html",
        "logs.html",
    ] {
        assert!(
            idx.contains(&format!("href=\"{link}\"")),
            "menu lacks {link}"
        );
    }
    assert!(idx.contains("plot missing\" data-plot=\"dom_rates\""));
    assert!(idx.contains("data-pattern=\"pmt_rates_du*\""));
    let logs = get(srv.port, "/logs.html", None);
    assert_eq!(logs.status, 200);
    assert!(logs.text().contains("No archived daily log yet"));
    let top = get(srv.port, "/top10.html", None);
    assert_eq!(top.status, 200);
    assert!(top.text().contains("No event has been selected yet"));
    assert_eq!(get(srv.port, "/logs/MSG.log", None).status, 404);
    assert_eq!(get(srv.port, "/nope.html", None).status, 404);
    assert_eq!(get(srv.port, "/plot_..%2fx.html", None).status, 404);

    populate(&site);
    std::fs::write(
        site.out.join("logs/MSG_2024-03-01.log"),
        vec![b'x'; 2 * 1024 * 1024],
    )
    .unwrap();
    std::fs::write(site.out.join("logs/MSG_2024-03-02.log"), b"x").unwrap();
    std::fs::write(
        site.out.join("logs/MSG_2024-03-02.png"),
        png(10, 10, [0, 0, 0]),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(400)); // one poll
    let idx = get(srv.port, "/index.html", None).text();
    let pos = |n: &str| {
        idx.find(&format!("data-plot=\"{n}\""))
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    assert!(
        pos("pmt_rates_du1") < pos("pmt_rates_du2") && pos("pmt_rates_du2") < pos("pmt_rates_du10")
    );
    assert!(idx.contains("src=\"plots/dom_rates.png?v="));
    let mine = get(srv.port, "/mine.html", None).text();
    assert!(mine.contains("plot missing\" data-plot=\"absent_plot\""));
    assert!(mine.contains("data-plot=\"pmt_rates_du10\""));
    assert!(get(srv.port, "/rttc.html", None)
        .text()
        .contains("Cable_RTT - (TX_Slave + RX_Slave + TX_Master + RX_Master)"));
    let single = get(srv.port, "/plot_dom_rates.html", None).text();
    assert!(single.contains("href=\"plots/dom_rates.png\""));
    let logs = get(srv.port, "/logs.html", None).text();
    assert!(logs.find("MSG_2024-03-02.log").unwrap() < logs.find("MSG_2024-03-01.log").unwrap());
    assert!(logs.contains("2.0 MB") && logs.contains("src=\"logs/MSG_2024-03-02.png\""));
    let plots: serde_json::Value =
        serde_json::from_slice(&get(srv.port, "/api/plots", None).body).unwrap();
    let dr = plots["plots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "dom_rates")
        .unwrap();
    assert_eq!(dr["data_time"], 1_709_294_400.0);
    assert_eq!(dr["stale"], false);
}

#[test]
fn top10_from_the_event_selection_db() {
    let site = Site::new("top10", false, "");
    let srv = Server::start(&site);
    let db = site.out.join("data/monitoring.sqlite3");
    // No database file yet: the empty state.
    assert!(get(srv.port, "/top10.html", None)
        .text()
        .contains("No event has been selected yet"));
    selection_db::fill(&db, &site.out);
    let t = get(srv.port, "/top10.html", None).text();
    assert!(t.find("Number of Hits").unwrap() < t.find("Overlays</h2>").unwrap());
    assert!(t.contains("#1") && t.contains("#10") && !t.contains("#11"));
    assert!(t.contains("NEW!"));
    assert!(t.contains(
        "iRODS: /in2p3/km3net/data/raw/sea/KM3NeT_00000049/12/KM3NeT_00000049_00012345.root"
    ));
    assert!(t.contains("xrootd: root://ccxroot:1999//hpss/in2p3.fr/group/km3net/data/raw/sea/KM3NeT_00000049/12/KM3NeT_00000049_00012345.root"));
    assert!(t.contains("src=\"plots/event_selection/ztplot_00000049_00012345_FI7_TC1.png\""));
    assert_eq!(
        get(
            srv.port,
            "/plots/event_selection/ztplot_00000049_00012345_FI7_TC1.png",
            None
        )
        .status,
        200
    );
}

/// Writes the event-selection table as ztplot does (quoted literals,
/// type affinity), with Python's stdlib sqlite3: the web crate opens the
/// database read-only, so the test needs a writer of its own.
mod selection_db {
    use std::path::Path;
    use std::process::Command;

    pub fn fill(db: &Path, out: &Path) {
        let png = out.join("plots/event_selection/ztplot_00000049_00012345_FI7_TC1.png");
        std::fs::write(&png, super::png(20, 20, [9, 169, 222])).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let script = format!(
            r#"import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE event_selection (overlays INT, n_hits INT, n_triggered_hits INT, n_dus INT, plot_filename TEXT, run_id INT, det_id INT, frame_index INT, trigger_counter INT, utc_timestamp INT)")
for i in range(12):
    v = (str(i), str(100 + i), "5", "3", sys.argv[2], "12345", "49", "7", "1", str({now} - i * 40000))
    c.execute("INSERT INTO event_selection VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", v)
c.commit()
"#
        );
        let st = Command::new("python3")
            .args(["-c", &script])
            .arg(db)
            .arg(&png)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

#[test]
fn event_streams_push_plot_changes_and_log_lines() {
    let site = Site::new("sse", true, "");
    populate(&site);
    let srv = Server::start(&site);
    let auth = basic(USER, PASS);
    let out = site.out.clone();
    let seen = sse_until(
        srv.port,
        "/api/events",
        Some(&auth),
        |s| s.contains("\"name\":\"trigger_rates\""),
        move || write_plot(&out, "trigger_rates", 50, 20, [1, 2, 3]),
    );
    assert!(seen.contains("event: plots") || seen.contains("event:plots"));
    let log = site.out.join("logs/MSG.log");
    let seen = sse_until(
        srv.port,
        "/api/livelog",
        Some(&auth),
        |s| s.contains("brand new ERROR line"),
        move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            writeln!(f, "MSG.log [DataWriter]: brand new ERROR line").unwrap();
        },
    );
    // The backlog is the last 200 lines.
    assert!(
        seen.contains("line 299") && seen.contains("line 100\"") && !seen.contains("line 99\"")
    );
    let st: serde_json::Value =
        serde_json::from_slice(&get(srv.port, "/api/status", Some(&auth)).body).unwrap();
    assert!(st["server"]["sse_clients"].as_u64().is_some());
}

/// `POST /api/control` with the login: (status, body).
fn post_control(port: u16, command: &str) -> (u16, String) {
    let body = serde_json::json!({ "command": command }).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/control HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        basic(USER, PASS),
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let code = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, raw)
}

/// A standalone `km3mon serve` asks the pipeline's control socket (the
/// default `<out>/km3mon.sock`, here served by a real control plane in
/// this process) for its nodes as JSON — the rows of `km3mon ctl --json
/// status` — so STOPPED and FAILED appear as `km3mon run --web` shows
/// them, and the status page's buttons act on the pipeline through it.
#[test]
fn status_from_the_pipelines_control_socket() {
    use pipeline::control::{socket, Control, NodeState};
    use pipeline::operator::Role;
    use pipeline::runtime::metrics::{DropReason, Metrics};
    use std::sync::Arc;

    let site = Site::new("status", true, "");
    populate(&site);
    std::fs::write(
        site.out.join("alerts.jsonl"),
        "{\"monitor\":\"trigger_rates\",\"firing\":true,\"message\":\"zero rate\"}\n",
    )
    .unwrap();
    let metrics = Metrics::default();
    let control = Arc::new(Control::new(None, None));
    let src = metrics.node("src");
    src.add_out(10);
    src.drop_record(DropReason::Overflow, 3);
    control.register("src", "ligier", "daq", Role::Source, src);
    let rates = metrics.node("dom_rates");
    rates.add_in(10);
    control.register(
        "dom_rates",
        "dom_rates",
        "monitoring_process",
        Role::Transform,
        rates,
    );
    control.register(
        "plots",
        "plots",
        "output",
        Role::Sink,
        metrics.node("plots"),
    );
    assert!(control.execute("stop dom_rates", "test").ok);
    control.node("plots").unwrap().fail("disk full");
    let _sock = socket::serve(control.clone(), &site.out.join("km3mon.sock")).unwrap();

    let srv = Server::start(&site);
    let auth = basic(USER, PASS);
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st: serde_json::Value =
            serde_json::from_slice(&get(srv.port, "/api/status", Some(&auth)).body).unwrap();
        if st["pipeline"]["ok"] == true || Instant::now() > deadline {
            break st;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let nodes = st["pipeline"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{st}");
    assert_eq!(nodes[0]["name"], "src");
    assert_eq!(nodes[0]["drops"]["overflow"], 3);
    assert_eq!(nodes[0]["records_out"], 10);
    assert_eq!(nodes[0]["control_state"], "RUNNING");
    assert_eq!(nodes[1]["control_state"], "STOPPED");
    assert_eq!(nodes[1]["group"], "monitoring_process");
    assert_eq!(nodes[2]["control_state"], "FAILED");
    assert_eq!(nodes[2]["reason"], "disk full");
    assert_eq!(st["control"]["available"], true, "{st}");
    assert_eq!(st["alerts"][0]["message"], "zero rate");
    let page = get(srv.port, "/status", Some(&auth)).text();
    for needle in [
        "<td>dom_rates</td>",
        "STOPPED",
        "FAILED",
        "disk full",
        "zero rate",
    ] {
        assert!(page.contains(needle), "{needle} missing from /status");
    }

    // The page's start button, through the socket to the pipeline.
    let (code, body) = post_control(srv.port, "start dom_rates");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        control.node("dom_rates").unwrap().state(),
        NodeState::Running
    );

    // /metrics: the web's series and this process's; the pipeline's own
    // series are on its --metrics endpoint, not repeated here.
    let m = get(srv.port, "/metrics", Some(&auth));
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let m = m.text();
    for needle in [
        "km3mon_plot_age_seconds{plot=\"dom_rates\"}",
        "km3mon_plot_stale{plot=\"dom_rates\"} 0",
        "km3mon_plot_data_timestamp_seconds{plot=\"dom_rates\"} 1709294400",
        "# TYPE km3mon_web_requests_total counter",
        "# TYPE process_resident_memory_bytes gauge",
        "km3mon_build_info{version=\"",
    ] {
        assert!(m.contains(needle), "{needle} missing from\n{m}");
    }
    assert!(!m.contains("km3mon_node_"), "{m}");
    assert_eq!(get(srv.port, "/healthz", None).text(), "ok\n");
}

/// Without a pipeline on the socket the page says so, and says where it
/// looked.
#[test]
fn status_without_a_pipeline_names_the_socket() {
    let site = Site::new("nosock", false, "");
    populate(&site);
    let srv = Server::start(&site);
    let deadline = Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st: serde_json::Value =
            serde_json::from_slice(&get(srv.port, "/api/status", None).body).unwrap();
        if st["pipeline"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("km3mon.sock"))
            || Instant::now() > deadline
        {
            break st;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(st["pipeline"]["ok"], false, "{st}");
    let e = st["pipeline"]["error"].as_str().unwrap();
    assert!(
        e.contains("control socket") && e.contains("km3mon.sock"),
        "{e}"
    );
}

// ------------------------------------------------------- headless Chromium

use common::browser;

#[test]
fn chromium_overview_live_updates_and_live_log() {
    let Some(chromium) = browser::find_chromium() else {
        panic!(
            "chromium not found: install it with `apt-get update && apt-get install -y chromium` \
             (scripts/test does), or set KM3MON_CHROMIUM"
        );
    };
    let site = Site::new("chromium", true, "");
    populate(&site);
    write_plot(&site.out, "trigger_rates", 60, 20, [250, 180, 0]);
    write_plot(&site.out, "ztplot", 40, 40, [9, 169, 222]);
    // ztplot last written two hours ago (stale_after is one hour); two
    // plots of the overview not written yet (triggermap stays missing).
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(site.out.join("plots/ztplot.png"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::remove_file(site.out.join("plots/dom_activity.png")).unwrap();
    let srv = Server::start(&site);
    let base = format!("http://127.0.0.1:{}/", srv.port);
    let b = browser::Browser::launch(&chromium, &site.dir.join("chrome-profile"));
    let mut page = b.page();
    page.call("Network.enable", serde_json::json!({}));
    page.call(
        "Network.setExtraHTTPHeaders",
        serde_json::json!({ "headers": { "Authorization": basic(USER, PASS) } }),
    );
    page.call("Page.enable", serde_json::json!({}));
    page.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
    );
    page.navigate(&base);
    assert_eq!(page.eval("document.title"), "KM3Mon Detector Monitor");
    // Every image of the overview renders.
    page.wait_true(
        "(() => { const i = [...document.images]; return i.length >= 6 && i.every(x => x.complete && x.naturalWidth > 0); })()",
        "overview images render",
    );
    assert!(page
        .eval("document.getElementById('utc-clock').textContent")
        .as_str()
        .unwrap()
        .ends_with("UTC"));
    assert!(
        page.eval("document.querySelectorAll('figure.missing').length")
            .as_u64()
            .unwrap()
            >= 1
    );
    // A frozen monitor is obvious: its plot is marked stale.
    page.wait_true(
        "(() => { const f = document.querySelector('figure[data-plot=ztplot]'); return f.classList.contains('stale') && f.textContent.includes('STALE'); })()",
        "stale plot marked",
    );
    assert_eq!(
        page.eval("document.querySelectorAll('figure.stale').length"),
        1
    );
    // A rewritten plot replaces the image without reloading the page.
    page.eval("window.__noReload = 42");
    write_plot(&site.out, "dom_rates", 80, 30, [10, 200, 10]);
    page.wait_true(
        "document.querySelector('figure[data-plot=dom_rates] img').naturalWidth === 80 && window.__noReload === 42",
        "updated plot shown without reload",
    );
    // A plot that was missing appears in place of its placeholder.
    write_plot(&site.out, "dom_activity", 40, 30, [1, 1, 1]);
    page.wait_true(
        "!!document.querySelector('figure[data-plot=dom_activity] img') && window.__noReload === 42",
        "missing plot appears",
    );
    page.wait_true(
        "document.querySelector('figure[data-plot=dom_rates] .ptime').textContent.includes('data 2024-03-01 12:00:00 UTC')",
        "data time shown",
    );
    std::thread::sleep(Duration::from_millis(300));
    // The whole page in one picture: a viewport as tall as the document.
    let height = page
        .eval("document.documentElement.scrollHeight")
        .as_u64()
        .unwrap();
    page.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 1400, "height": height.min(6000), "deviceScaleFactor": 1, "mobile": false}),
    );
    std::thread::sleep(Duration::from_millis(300));
    let shot = page.screenshot();
    let dir = artifacts_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("overview.png"), &shot).unwrap();
    assert!(shot.starts_with(b"\x89PNG"));

    // Live log: the backlog, then a line appended to MSG.log, highlighted.
    page.navigate(&format!("{base}live.html"));
    page.wait_true(
        "document.querySelectorAll('#livelog .line').length === 200",
        "live log backlog",
    );
    let log = site.out.join("logs/MSG.log");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(
        f,
        "MSG.log [DataQueue]: 2024-03-01 12:01:00 10.0.0.2 DataQueue ERROR browser-test-line"
    )
    .unwrap();
    drop(f);
    page.wait_true(
        "(() => { const l = [...document.querySelectorAll('#livelog .line')].pop(); return !!l && l.textContent.includes('browser-test-line') && l.classList.contains('bold') && !!l.querySelector('.hl-error') && !!l.querySelector('.hl-dataqueue'); })()",
        "appended log line shown and highlighted",
    );
    let live = page.screenshot();
    std::fs::write(dir.join("livelog.png"), &live).unwrap();
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("web-artifacts")
}

/// The Detector page in headless Chromium: `km3mon serve` reads the
/// table (`health` over a real control socket, here with a table this
/// test publishes the way the `detector_state` node does); the counts are
/// shown, and a DOM turning inactive appears in the table and the map
/// without a reload.
#[test]
fn chromium_detector_page_updates_live() {
    use pipeline::control::{socket, Control};
    use pipeline::health::{DomHealth, HealthSnapshot};
    use std::sync::Arc;

    let Some(chromium) = browser::find_chromium() else {
        panic!("chromium not found: install it (scripts/test does), or set KM3MON_CHROMIUM");
    };
    let site = Site::new("detector", true, "");
    populate(&site);
    let control = Arc::new(Control::new(None, None));
    let health = control.attach_health();
    // Two DUs of three floors; DU 1 floor 1 inactive and out of sync.
    let layout: Vec<(u32, i32, u32)> = (1..=2)
        .flat_map(|du| (1..=3).map(move |f| (du, f, 100 * du + f as u32)))
        .collect();
    let snap = |inactive: &[u32]| {
        let mut s = HealthSnapshot {
            time_utc: Some(1_704_067_200.0),
            conditions: vec!["dom_inactive".into(), "time_sync".into()],
            layout: layout.clone(),
            ..Default::default()
        };
        for &dom in inactive {
            let du = dom / 100;
            *s.by_du
                .entry(du)
                .or_default()
                .entry("dom_inactive".into())
                .or_default() += 1;
            *s.totals.entry("dom_inactive".into()).or_default() += 1;
            let mut conditions = vec!["dom_inactive".to_string()];
            if dom == 101 {
                conditions.push("time_sync".into());
            }
            s.doms.push(DomHealth {
                dom_id: dom,
                du,
                floor: (dom % 100) as i32,
                conditions,
            });
        }
        s.by_du.entry(1).or_default().insert("time_sync".into(), 1);
        s.totals.insert("time_sync".into(), 1);
        s
    };
    health.publish(snap(&[101]));
    let _sock = socket::serve(control.clone(), &site.out.join("km3mon.sock")).unwrap();
    let srv = Server::start(&site);
    let b = browser::Browser::launch(&chromium, &site.dir.join("chrome-profile"));
    let mut page = b.page();
    page.call("Network.enable", serde_json::json!({}));
    page.call(
        "Network.setExtraHTTPHeaders",
        serde_json::json!({ "headers": { "Authorization": basic(USER, PASS) } }),
    );
    page.call("Page.enable", serde_json::json!({}));
    page.navigate(&format!("http://127.0.0.1:{}/detector.html", srv.port));
    page.wait_true(
        "(() => { const c = document.querySelector('#detector-table tr[data-du=\"1\"] td[data-condition=dom_inactive]'); return c && c.textContent === '1'; })()",
        "DU 1: one DOM inactive",
    );
    assert_eq!(
        page.eval(
            "document.querySelector('#dom-map rect[data-dom=\"101\"]').getAttribute('data-n')"
        ),
        "2"
    );
    assert_eq!(
        page.eval(
            "document.querySelector('#dom-map rect[data-dom=\"202\"]').getAttribute('data-n')"
        ),
        "0"
    );
    // Marks this document: a reload would lose it.
    page.eval("window.__kept = 1");
    health.publish(snap(&[101, 202]));
    page.wait_true(
        "(() => { const c = document.querySelector('#detector-table tr[data-du=\"2\"] td[data-condition=dom_inactive]'); return c && c.textContent === '1'; })()",
        "DU 2's DOM turning inactive appears",
    );
    assert_eq!(
        page.eval(
            "document.querySelector('#dom-map rect[data-dom=\"202\"]').getAttribute('data-n')"
        ),
        "1"
    );
    assert_eq!(
        page.eval("document.querySelector('#detector-table tr.total td[data-condition=dom_inactive]').textContent"),
        "2"
    );
    assert_eq!(page.eval("window.__kept"), 1, "the page reloaded");
    let png = page.screenshot();
    std::fs::create_dir_all(artifacts_dir()).unwrap();
    std::fs::write(artifacts_dir().join("detector.png"), png).unwrap();
}
