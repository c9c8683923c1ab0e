//! The DB client: a session id found or made on first use, the request
//! families of spec §1.3, and the 401/403 rule: re-resolve once (skipping
//! the refused id, never deleting a file), then "session invalid".

use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::apiv2;
use crate::config::DbConfig;
use crate::error::{clip, DbError};
use crate::http::{redact, Http};
use crate::runs::{CalibIds, RunRow};
use crate::session::{self, Session, SessionEnv, SidSource};
use crate::tsv::Table;

/// Left raw in selector values, as km3db sends them (UPIs with `/`, OIDs,
/// dotted numbers); everything else is percent-encoded (`[`, `&`, spaces).
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/')
    .remove(b':')
    .remove(b',');

/// Credentials: everything but unreserved characters is encoded.
const CREDENTIAL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How long a "session invalid" verdict stands before stored ids are
/// looked at again (a `km3mon db login` elsewhere fixes it).
const INVALID_HOLD: Duration = Duration::from_secs(60);

/// The session's health, for logs and status lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    Unresolved,
    Active(String),
    Invalid(String),
}

pub struct Client {
    cfg: DbConfig,
    base: String,
    env: SessionEnv,
    http: Http,
    session: Option<Session>,
    /// Ids the server refused.
    refused: Vec<String>,
    invalid: Option<(Instant, String)>,
    logins: u32,
}

impl Client {
    pub fn new(cfg: DbConfig, env: SessionEnv) -> Client {
        Client {
            base: cfg.base(),
            http: Http::new(cfg.http_options()),
            cfg,
            env,
            session: None,
            refused: Vec::new(),
            invalid: None,
            logins: 0,
        }
    }

    /// With the session inputs of the process environment.
    pub fn from_process(cfg: DbConfig) -> Client {
        let env = SessionEnv::from_process(cfg.cookie.clone());
        Client::new(cfg, env)
    }

    pub fn config(&self) -> &DbConfig {
        &self.cfg
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Successful logins by this client.
    pub fn logins(&self) -> u32 {
        self.logins
    }

    pub fn session_state(&self) -> SessionState {
        if let Some((_, why)) = &self.invalid {
            return SessionState::Invalid(why.clone());
        }
        match &self.session {
            Some(s) => SessionState::Active(format!(
                "{} from {}",
                session::describe_sid(&s.sid),
                s.source
            )),
            None => SessionState::Unresolved,
        }
    }

    /// The URL of the login request (credentials percent-encoded).
    pub fn login_url(&self, user: &str, password: &str) -> String {
        let mut url = format!(
            "{}/home.htm?usr={}&pwd={}&persist=y",
            self.base,
            utf8_percent_encode(user, CREDENTIAL),
            utf8_percent_encode(password, CREDENTIAL)
        );
        if let Some(bits) = self.cfg.freenetbits {
            url.push_str(&format!("&freenetbits={bits}"));
        }
        url
    }

    /// Logs in and returns the new id; does not write a cookie file.
    pub fn login(&mut self, user: &str, password: &str) -> Result<String, DbError> {
        let (status, body) = self.http.get(&self.login_url(user, password), None)?;
        let fail = |why: String| DbError::Login {
            user: user.to_string(),
            why,
        };
        if status != 200 {
            return Err(fail(format!("HTTP {status}: {}", clip(&body))));
        }
        let sid = session::sid_from_login_reply(&body).ok_or_else(|| {
            fail("wrong user name or password (no session id in the reply)".into())
        })?;
        self.logins += 1;
        Ok(sid)
    }

    /// Logs in with the environment's credentials and stores the id in the
    /// cookie file (`KM3NET_DB_COOKIE_FILE`, else `~/.km3netdb_cookie`).
    fn login_from_env(&mut self) -> Result<Option<Session>, DbError> {
        let Some((user, password)) = self.env.credentials() else {
            return Ok(None);
        };
        let sid = self.login(&user, &password)?;
        if let Some(path) = self.env.login_cookie_file() {
            match session::write_cookie_file(&path, &sid) {
                Ok(()) => tracing::info!(
                    "DB: logged in as {user:?}; session saved in {}",
                    path.display()
                ),
                Err(e) => tracing::warn!("DB: cannot write cookie file {}: {e}", path.display()),
            }
        }
        Ok(Some(Session {
            sid,
            source: SidSource::Login(user),
        }))
    }

    /// The current session, resolving it if needed. `allow_login`: the
    /// credentials may be used (at most once per request).
    fn resolve(&mut self, allow_login: bool) -> Result<Session, DbError> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let found = match self.env.resolve_stored(&self.refused) {
            Some(s) => Some(s),
            None if allow_login => self.login_from_env()?,
            None => None,
        };
        match found {
            Some(s) => {
                tracing::debug!("DB: using {s:?}");
                self.session = Some(s.clone());
                Ok(s)
            }
            None if !self.refused.is_empty() => Err(DbError::SessionInvalid(
                "the server refused every session id found".into(),
            )),
            None => Err(DbError::NoSession),
        }
    }

    /// GET `<base>/<rel>` with the session; the body of a 2xx reply.
    pub fn get_text(&mut self, rel: &str) -> Result<String, DbError> {
        if let Some((since, why)) = &self.invalid {
            if since.elapsed() < INVALID_HOLD {
                return Err(DbError::SessionInvalid(why.clone()));
            }
        }
        let url = format!("{}/{}", self.base, rel.trim_start_matches('/'));
        let mut retried = false;
        let logins_before = self.logins;
        loop {
            // The credentials serve at most once per request.
            let s = match self.resolve(self.logins == logins_before) {
                Ok(s) => s,
                Err(DbError::SessionInvalid(why)) => {
                    self.invalid = Some((Instant::now(), why.clone()));
                    return Err(DbError::SessionInvalid(why));
                }
                Err(e) => return Err(e),
            };
            let (status, body) = self.http.get(&url, Some(&s.sid))?;
            if status == 401 || status == 403 {
                tracing::warn!(
                    "DB refused the {} from {} (HTTP {status})",
                    session::describe_sid(&s.sid),
                    s.source
                );
                self.refused.push(s.sid.clone());
                self.session = None;
                if retried {
                    let why = format!(
                        "HTTP {status} for the {} from {}",
                        session::describe_sid(&s.sid),
                        s.source
                    );
                    self.invalid = Some((Instant::now(), why.clone()));
                    return Err(DbError::SessionInvalid(why));
                }
                retried = true;
                continue;
            }
            self.invalid = None;
            if !(200..300).contains(&status) {
                return Err(DbError::Http {
                    status,
                    url: redact(&url),
                    body: clip(&body),
                });
            }
            return Ok(body);
        }
    }

    /// `streamds/<stream>.txt?k=v&…` as the server sends it.
    pub fn stream_text(
        &mut self,
        stream: &str,
        selectors: &[(&str, &str)],
    ) -> Result<String, DbError> {
        let rel = format!("streamds/{stream}.txt{}", query(selectors));
        let body = self.get_text(&rel)?;
        if body.trim().is_empty() {
            return Err(DbError::NoData(rel));
        }
        if body.starts_with("ERROR") {
            return Err(DbError::Server {
                url: rel,
                msg: clip(&body),
            });
        }
        Ok(body)
    }

    /// A stream parsed into a [`Table`].
    pub fn stream(&mut self, stream: &str, selectors: &[(&str, &str)]) -> Result<Table, DbError> {
        let rel = format!("streamds/{stream}.txt{}", query(selectors));
        let body = self.stream_text(stream, selectors)?;
        Table::parse(&body, &rel)
    }

    /// The stream index (`streamds`).
    pub fn streams(&mut self) -> Result<Table, DbError> {
        let body = self.get_text("streamds")?;
        Table::parse(&body, "streamds")
    }

    /// The run table of a detector (serial number or OID), or one run of it.
    pub fn runs(&mut self, det: &str, run: Option<i32>) -> Result<Vec<RunRow>, DbError> {
        let run_s = run.map(|r| r.to_string());
        let mut sel = vec![("detid", det)];
        if let Some(r) = &run_s {
            sel.push(("run", r.as_str()));
        }
        let t = self.stream("runs", &sel)?;
        RunRow::from_table(&t)
    }

    /// DETX text of a detector with the given calibration set ids
    /// (`CalibIds::default()`: uncalibrated, `tcal=0&pcal=0&rcal=0`).
    pub fn detx(&mut self, det: &str, ids: &CalibIds) -> Result<String, DbError> {
        let rel = format!("detx/{}?{}", enc(det), ids.query());
        let body = self.get_text(&rel)?;
        if body.trim().is_empty() {
            return Err(DbError::NoData(rel));
        }
        if body.starts_with("ERROR") {
            return Err(DbError::Server {
                url: rel,
                msg: clip(&body),
            });
        }
        Ok(body)
    }

    /// An API v2 endpoint's `Data` array; selectors starting with a
    /// comparison (`>=100`) are appended without `=`.
    pub fn apiv2(
        &mut self,
        endpoint: &str,
        selectors: &[(&str, &str)],
    ) -> Result<Vec<Value>, DbError> {
        let mut rel = format!("apiv2.1.0/{endpoint}/s?");
        for (k, v) in selectors {
            rel.push('&');
            rel.push_str(k);
            if !apiv2::starts_with_operator(v) {
                rel.push('=');
            }
            rel.push_str(&enc(v));
        }
        let body = self.get_text(&rel)?;
        apiv2::data(&body, endpoint)
    }

    /// The calibration set ids of a run from the RunCalibration API (km3db
    /// ≥ 0.13; `det_oid` must be the OID, e.g. `D_ORCA006`).
    pub fn run_calibration(&mut self, det_oid: &str, run: i32) -> Result<CalibIds, DbError> {
        let r = run.to_string();
        let data = self.apiv2(
            "RunCalibration",
            &[("DetOId", det_oid), ("Run", &r), ("Ranking", "1")],
        )?;
        Ok(CalibIds::from_run_calibration(&data))
    }

    /// OID ↔ serial number from the `detectors` stream.
    pub fn detector_oid(&mut self, serial: i32) -> Result<String, DbError> {
        let t = self.stream("detectors", &[])?;
        (0..t.rows.len())
            .find(|&i| t.get(i, "SERIALNUMBER").and_then(|s| s.parse::<i32>().ok()) == Some(serial))
            .and_then(|i| t.get(i, "OID").map(str::to_string))
            .ok_or_else(|| DbError::NoData(format!("detector with serial number {serial}")))
    }

    /// Forgets a back-off, so that the next request goes out at once.
    pub fn reset_backoff(&self) {
        self.http.reset();
    }
}

fn enc(v: &str) -> String {
    utf8_percent_encode(v, VALUE).to_string()
}

/// `?k1=v1&k2=v2` (km3db's order), or "" without selectors.
pub fn query(selectors: &[(&str, &str)]) -> String {
    if selectors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = selectors
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_stay_raw_where_km3db_sends_them_raw() {
        assert_eq!(
            query(&[
                ("container_upi", "3.4.3.2/V2-2-1/2.267"),
                ("p", "wr_delta[0]")
            ]),
            "?container_upi=3.4.3.2/V2-2-1/2.267&p=wr_delta%5B0%5D"
        );
        assert_eq!(query(&[]), "");
    }

    #[test]
    fn login_url_encodes_credentials() {
        let c = Client::new(
            DbConfig {
                url: "http://127.0.0.1:1/".into(),
                freenetbits: Some(16),
                ..DbConfig::default()
            },
            SessionEnv::default(),
        );
        assert_eq!(
            c.login_url("j doe", "p&w#d+1"),
            "http://127.0.0.1:1/home.htm?usr=j%20doe&pwd=p%26w%23d%2B1&persist=y&freenetbits=16"
        );
    }
}
