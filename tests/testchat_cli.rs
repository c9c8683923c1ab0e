//! `km3mon testchat` as a user starts it: the URL on stdout, a config
//! snippet on stderr that km3mon's own `[Alerts]` parser accepts, the page
//! and the REST login answering over real HTTP on 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 request, `Connection: close`; (status line, body).
fn http(addr: &str, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.lines().next().unwrap_or("").to_string();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn post_form(addr: &str, path: &str, form: &str) -> (String, String) {
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    )
}

#[test]
fn testchat_prints_its_url_and_a_working_config() {
    let mut child = Command::new(common::km3mon())
        .args([
            "testchat",
            "--port",
            "0",
            "--channel",
            "alerts_test",
            "--bot",
            "mybot",
            "--password",
            "pw1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Server(child);
    let mut url = String::new();
    BufReader::new(stdout).read_line(&mut url).unwrap();
    let url = url.trim().to_string();
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // The snippet ends with "Ctrl-C stops it."; read up to there.
    let mut help = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let end = line.contains("Ctrl-C");
        help += &line;
        help.push('\n');
        if end {
            break;
        }
    }
    let start = help.find("[Alerts]\n").expect(&help);
    let end = help.find("or, for the incoming webhook").expect(&help);
    let snippet = &help[start..end];
    let site: toml::Value = toml::from_str(snippet).expect(snippet);
    let alerts: messaging::config::AlertsConfig = site["Alerts"].clone().try_into().expect(snippet);
    assert_eq!(
        (alerts.botname.as_str(), alerts.channel.as_str()),
        ("mybot", "alerts_test")
    );
    assert_eq!(
        alerts.chat().url.as_deref(),
        Some(url.trim_end_matches('/'))
    );

    // The bot's credentials log in; others do not.
    let (status, body) = post_form(&addr, "/api/v1/login", "username=mybot&password=pw1");
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(body.contains("\"authToken\""), "{body}");
    let (status, _) = post_form(&addr, "/api/v1/login", "username=mybot&password=nope");
    assert!(status.contains(" 401 "), "{status}");

    // A person posts through the page's form and sees it on the page.
    let (status, _) = post_form(
        &addr,
        "/post",
        "channel=alerts_test&user=jdoe&text=%40mybot+hi+%3Cthere%3E",
    );
    assert!(status.contains(" 303 "), "{status}");
    let (_, page) = http(
        &addr,
        &format!("GET /?channel=alerts_test HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    assert!(
        page.contains("jdoe</span>: @mybot hi &lt;there&gt;"),
        "{page}"
    );
}
