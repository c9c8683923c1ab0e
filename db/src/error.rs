//! What can go wrong talking to the DB, each with what to do about it.

/// A DB request's failure. Every message says what the operator can do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// No session id from the config, the environment, a cookie file or
    /// credentials.
    #[error("no DB session: run `km3mon db login` or set KM3NET_DB_COOKIE (or KM3NET_DB_USERNAME and KM3NET_DB_PASSWORD)")]
    NoSession,
    /// The server refused the session id(s) (HTTP 401/403) even after one
    /// re-resolution: the client stays in this state until a new id shows up.
    #[error("DB session invalid: {0}; run `km3mon db login` or set a fresh KM3NET_DB_COOKIE")]
    SessionInvalid(String),
    #[error("DB login as {user:?} failed: {why}")]
    Login { user: String, why: String },
    /// Network error, timeout or HTTP 5xx after the retries, or the client
    /// is backing off after such errors.
    #[error("DB unreachable: {0}")]
    Unavailable(String),
    #[error("DB: HTTP {status} for {url}: {body}")]
    Http {
        status: u16,
        url: String,
        body: String,
    },
    /// A body starting with `ERROR`.
    #[error("DB: {url}: the server says {msg:?}")]
    Server { url: String, msg: String },
    /// An empty body: the DB has no data for this query.
    #[error("DB: no data for {0}")]
    NoData(String),
    #[error("DB: {what}: {msg}")]
    Parse { what: String, msg: String },
    /// An API v2 envelope whose `Error.Code` is not `OK`.
    #[error("DB API v2 {endpoint}: {code}: {message}")]
    Api {
        endpoint: String,
        code: String,
        message: String,
    },
}

impl DbError {
    /// Worth falling back to cached data (the link or the session is gone),
    /// as opposed to a query the DB answered with "no".
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            DbError::Unavailable(_) | DbError::SessionInvalid(_) | DbError::NoSession
        )
    }
}

/// Keeps bodies in messages short.
pub(crate) fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
