//! The wire: blocking GETs with ureq (rustls), at most two requests in
//! flight per process (spec §1.7), a timeout per request, retries with
//! exponential back-off on network errors and HTTP 5xx, and a "down"
//! state after the retries so that callers fall back to their cache at
//! once instead of each waiting out its own retries.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::DbError;

/// Requests in flight in this process, across all clients.
static SLOTS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());
pub const MAX_IN_FLIGHT: usize = 2;

struct Slot;

impl Slot {
    fn take() -> Slot {
        let (m, cv) = &SLOTS;
        let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_IN_FLIGHT {
            n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (m, cv) = &SLOTS;
        let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        cv.notify_one();
    }
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub timeout: Duration,
    /// Extra attempts after a network error or HTTP 5xx.
    pub retries: u32,
    /// First pause between attempts; doubles each time.
    pub backoff: Duration,
    /// Accept any TLS certificate (km3db's default; opt-in here).
    pub insecure: bool,
    /// Connect over IPv4 only (the production DB has no IPv6).
    pub ipv4_only: bool,
}

pub struct Http {
    agent: ureq::Agent,
    opts: HttpOptions,
    /// Until when requests fail at once, and the pause that led there.
    down: Mutex<Option<(Instant, Duration)>>,
}

/// Longest pause of the "down" state.
const MAX_DOWN: Duration = Duration::from_secs(300);

impl Http {
    pub fn new(opts: HttpOptions) -> Http {
        let mut b = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .http_status_as_error(false)
            // The login reply and DETX of a big detector are a few MB at most;
            // streams may be larger (the default 10 MB limit is per body read).
            .max_redirects(0);
        if opts.insecure {
            b = b.tls_config(
                ureq::tls::TlsConfig::builder()
                    .disable_verification(true)
                    .build(),
            );
        }
        if opts.ipv4_only {
            b = b.ip_family(ureq::config::IpFamily::Ipv4Only);
        }
        Http {
            agent: ureq::Agent::new_with_config(b.build()),
            opts,
            down: Mutex::new(None),
        }
    }

    /// Clears the "down" state (tests, `km3mon db` retrying by hand).
    pub fn reset(&self) {
        *self.down.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// GET `url` with an optional `Cookie: sid=…`; (status, body). Statuses
    /// below 500 are returned to the caller; 5xx and network errors are
    /// retried and end as [`DbError::Unavailable`].
    pub fn get(&self, url: &str, sid: Option<&str>) -> Result<(u16, String), DbError> {
        if let Some((until, _)) = *self.down.lock().unwrap_or_else(|e| e.into_inner()) {
            let now = Instant::now();
            if now < until {
                return Err(DbError::Unavailable(format!(
                    "backing off for {} s after errors",
                    (until - now).as_secs() + 1
                )));
            }
        }
        let mut pause = self.opts.backoff;
        let mut last = String::new();
        for attempt in 0..=self.opts.retries {
            if attempt > 0 {
                std::thread::sleep(pause);
                pause = pause.saturating_mul(2);
            }
            match self.once(url, sid) {
                Ok((s, body)) if s < 500 => {
                    *self.down.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    return Ok((s, body));
                }
                Ok((s, body)) => last = format!("HTTP {s}: {}", crate::error::clip(&body)),
                Err(e) => last = e,
            }
            tracing::debug!("DB {}: attempt {}: {last}", redact(url), attempt + 1);
        }
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        let hold = match *down {
            Some((_, d)) => (d * 2).min(MAX_DOWN),
            None => self.opts.backoff.max(Duration::from_secs(1)) * 4,
        };
        *down = Some((Instant::now() + hold, hold));
        Err(DbError::Unavailable(format!("{}: {last}", redact(url))))
    }

    fn once(&self, url: &str, sid: Option<&str>) -> Result<(u16, String), String> {
        let _slot = Slot::take();
        // The DB's answer time, without the wait for a slot above.
        let start = Instant::now();
        let r = self.request(url, sid);
        request_latency()
            .get(&[latency::outcome(&r)])
            .record_duration(start.elapsed());
        r
    }

    fn request(&self, url: &str, sid: Option<&str>) -> Result<(u16, String), String> {
        let mut req = self.agent.get(url);
        if let Some(sid) = sid {
            req = req.header("Cookie", format!("sid={sid}"));
        }
        let mut resp = req.call().map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            // An incomplete body is an error, not data (km3db used the
            // partial body [quirk]).
            .map_err(|e| format!("reading the reply: {e}"))?;
        Ok((status, body))
    }
}

/// Every request to the DB, by outcome (docs/web.md).
fn request_latency() -> std::sync::Arc<latency::Family> {
    static F: std::sync::OnceLock<std::sync::Arc<latency::Family>> = std::sync::OnceLock::new();
    F.get_or_init(|| latency::global().histogram_of(&latency::DB_REQUEST))
        .clone()
}

/// A URL for logs: the login's query (credentials) removed.
pub fn redact(url: &str) -> String {
    match url.split_once("home.htm?") {
        Some((base, _)) => format!("{base}home.htm?…"),
        None => url.to_string(),
    }
}
