//! A stand-in Detector Manager monitoring interface (spec integrations.md
//! §2), for tests and `km3mon simulate --detector-manager ADDR`: plain
//! HTTP on 127.0.0.1 (or any address given), no authentication.
//!
//! * `GET /monshortdef?name=<session>&paths=<p1>,<p2>,…` defines a
//!   session; the body is exactly `OK` (no newline) when every path is a
//!   known variable — `/mon/clb/outparams/wr_mu/<du>/0` or
//!   `/mon/clb/outparams/wr_delta/<du>/0/<i>` (i = 0…3) of a DU of the
//!   detector — else an error text.
//! * `GET /monshort/<session>` answers a JSON array with one object
//!   `{"path": …, "value": …}` per defined path, in definition order; an
//!   unknown session is HTTP 404 (a restarted DM forgets its sessions).
//!
//! Values in ps: `wr_mu` ≈ 1.2 µs + 40 ns per DU, the four delays a few
//! ns, each with a little noise, so RTTC = wr_mu − Σ wr_delta is stable
//! per DU. Fault switches: a jump of one DU's RTTC, "restart" (sessions
//! forgotten), "down" (every answer HTTP 503), a broken body.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::rng::Rng;

/// The state the switches change.
#[derive(Default)]
struct State {
    sessions: HashMap<String, Vec<String>>,
    /// DU → ps added to its wr_mu.
    jumps: HashMap<u32, f64>,
    down: bool,
    garbage: bool,
    requests: Vec<String>,
    polls: u64,
}

/// A running stand-in; stops when dropped.
pub struct DetectorManager {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// The five paths of a DU's base CLB, in the order the RTTC client
/// defines them (spec §2).
pub fn rttc_paths(du: u32) -> [String; 5] {
    [
        format!("/mon/clb/outparams/wr_mu/{du}/0"),
        format!("/mon/clb/outparams/wr_delta/{du}/0/0"),
        format!("/mon/clb/outparams/wr_delta/{du}/0/1"),
        format!("/mon/clb/outparams/wr_delta/{du}/0/2"),
        format!("/mon/clb/outparams/wr_delta/{du}/0/3"),
    ]
}

/// The nominal RTTC of a DU (ps): what the stand-in's values give without
/// noise or jump.
pub fn nominal_rttc(du: u32) -> f64 {
    nominal(du, 0) - (1..5).map(|i| nominal(du, i)).sum::<f64>()
}

fn nominal(du: u32, k: usize) -> f64 {
    match k {
        0 => 1_200_000.0 + 40_000.0 * f64::from(du),
        1 => 3_000.0,
        2 => 4_500.0,
        3 => 3_200.0,
        _ => 4_100.0,
    }
}

impl DetectorManager {
    /// Serves the DUs `dus` on `addr` (port 0: any free one).
    pub fn start(addr: &str, dus: Vec<u32>, seed: u64) -> std::io::Result<DetectorManager> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, halt) = (state.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("detector-manager".into())
            .spawn(move || {
                let mut rng = Rng::new(seed, crate::STREAM_DM);
                while !halt.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = serve(stream, &st, &dus, &mut rng);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(DetectorManager {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Plays the `rttc-jump` faults on the wall clock from now (their
    /// start and duration after the simulation start), on a thread that
    /// ends with the last one or when `stop` is set.
    pub fn play_faults(&self, faults: &[crate::Fault], start_ns: u64, stop: Arc<AtomicBool>) {
        let jumps: Vec<(u32, Duration, Option<Duration>)> = faults
            .iter()
            .filter(|f| f.kind == crate::FaultKind::RttcJump)
            .filter_map(|f| match f.target {
                crate::fault::ResolvedTarget::Du(du) => Some((
                    du,
                    Duration::from_nanos(f.from_ns.saturating_sub(start_ns)),
                    (f.until_ns != u64::MAX).then(|| Duration::from_nanos(f.until_ns - f.from_ns)),
                )),
                _ => None,
            })
            .collect();
        if jumps.is_empty() {
            return;
        }
        let state = self.state.clone();
        let t0 = std::time::Instant::now();
        let _ = std::thread::Builder::new()
            .name("dm-faults".into())
            .spawn(move || {
                let mut events: Vec<(Duration, u32, f64)> = Vec::new();
                for (du, at, len) in jumps {
                    events.push((at, du, crate::fault::RTTC_JUMP_PS));
                    if let Some(l) = len {
                        events.push((at + l, du, 0.0));
                    }
                }
                events.sort_by_key(|e| e.0);
                for (at, du, ps) in events {
                    while t0.elapsed() < at {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    lock(&state).jumps.insert(du, ps);
                }
            });
    }

    /// Adds `ps` to the RTTC of `du` from now on (0 = back to normal).
    pub fn set_jump(&self, du: u32, ps: f64) {
        lock(&self.state).jumps.insert(du, ps);
    }

    /// Forgets every session, as a restarted DM does.
    pub fn restart(&self) {
        lock(&self.state).sessions.clear();
    }

    /// Every answer HTTP 503 while set.
    pub fn set_down(&self, down: bool) {
        lock(&self.state).down = down;
    }

    /// Polls answer a body that is not JSON while set.
    pub fn set_garbage(&self, on: bool) {
        lock(&self.state).garbage = on;
    }

    /// Request lines so far (`/monshortdef?…`, `/monshort/…`).
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// Successful polls so far.
    pub fn polls(&self) -> u64 {
        lock(&self.state).polls
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DetectorManager {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(
    stream: TcpStream,
    state: &Mutex<State>,
    dus: &[u32],
    rng: &mut Rng,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    // Headers: read to the empty line, ignored.
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, body) = answer(&target, state, dus, rng);
    let mut w = stream;
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

fn answer(
    target: &str,
    state: &Mutex<State>,
    dus: &[u32],
    rng: &mut Rng,
) -> (&'static str, String) {
    let mut st = lock(state);
    st.requests.push(target.to_string());
    if st.down {
        return (
            "503 Service Unavailable",
            "detector manager unavailable".into(),
        );
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path == "/monshortdef" {
        let q: HashMap<&str, &str> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let (Some(name), Some(paths)) = (q.get("name"), q.get("paths")) else {
            return ("200 OK", "ERROR: name and paths are required".into());
        };
        let paths: Vec<String> = paths.split(',').map(String::from).collect();
        let known: Vec<String> = dus.iter().flat_map(|d| rttc_paths(*d)).collect();
        if let Some(bad) = paths.iter().find(|p| !known.contains(p)) {
            return ("200 OK", format!("ERROR: unknown variable {bad}"));
        }
        st.sessions.insert(name.to_string(), paths);
        return ("200 OK", "OK".into());
    }
    if let Some(name) = path.strip_prefix("/monshort/") {
        let Some(paths) = st.sessions.get(name).cloned() else {
            return ("404 Not Found", format!("unknown session {name}"));
        };
        if st.garbage {
            return ("200 OK", "<html>busy</html>".into());
        }
        st.polls += 1;
        let mut items = Vec::new();
        for p in &paths {
            let parts: Vec<&str> = p.split('/').collect();
            // /mon/clb/outparams/<param>/<du>/0[/<i>]
            let du: u32 = parts.get(5).and_then(|d| d.parse().ok()).unwrap_or(0);
            let k = match parts.get(4) {
                Some(&"wr_mu") => 0,
                _ => {
                    1 + parts
                        .get(7)
                        .and_then(|i| i.parse::<usize>().ok())
                        .unwrap_or(0)
                }
            };
            let noise = if k == 0 { 3.0 } else { 1.0 } * rng.normal();
            let jump = if k == 0 {
                st.jumps.get(&du).copied().unwrap_or(0.0)
            } else {
                0.0
            };
            let v = (nominal(du, k) + noise + jump).round();
            items.push(format!("{{\"path\":\"{p}\",\"value\":{v}}}"));
        }
        return ("200 OK", format!("[{}]", items.join(",")));
    }
    ("404 Not Found", format!("no such resource {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(dm: &DetectorManager, du: u32) -> f64 {
        let st = &dm.state;
        let mut rng = Rng::new(1, 99);
        let (_, body) = answer(&format!("/monshort/{SESSION_T}"), st, &[du], &mut rng);
        let v: Vec<f64> = body
            .split("\"value\":")
            .skip(1)
            .map(|x| {
                x.trim_end_matches([']', '}', ','])
                    .split(['}', ','])
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        v[0] - v[1..].iter().sum::<f64>()
    }

    const SESSION_T: &str = "t";

    /// `rttc-jump@0s+400ms:2` is played on the wall clock: +500 ps, then back.
    #[test]
    fn rttc_jump_fault_is_played() {
        let det = daq::detector::Detector::generate(7, 3, 2, 31);
        let dm = DetectorManager::start("127.0.0.1:0", det.dus(), 1).unwrap();
        let mut rng = Rng::new(1, 98);
        let def = format!(
            "/monshortdef?name={SESSION_T}&paths={}",
            rttc_paths(2).join(",")
        );
        assert_eq!(answer(&def, &dm.state, &det.dus(), &mut rng).1, "OK");
        let spec: crate::FaultSpec = "rttc-jump@0s+400ms:2".parse().unwrap();
        let faults = crate::fault::resolve(&[spec], &det, 1, 0).unwrap();
        dm.play_faults(&faults, 0, Arc::new(AtomicBool::new(false)));
        std::thread::sleep(Duration::from_millis(200));
        assert!((values(&dm, 2) - nominal_rttc(2) - 500.0).abs() < 20.0);
        std::thread::sleep(Duration::from_millis(500));
        assert!((values(&dm, 2) - nominal_rttc(2)).abs() < 20.0);
    }
}
