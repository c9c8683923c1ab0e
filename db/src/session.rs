//! The session id ("sid"): where it comes from, what a valid one looks
//! like, the cookie file (spec integrations.md §1.2).
//!
//! Resolution order (the spec's recommendation, which is km3db ≥ 0.13's
//! order without the built-in ids): `[DB] cookie` (or `--cookie`) →
//! `KM3NET_DB_COOKIE` → the file `KM3NET_DB_COOKIE_FILE` →
//! `~/.km3netdb_cookie` → a login with `KM3NET_DB_USERNAME` /
//! `KM3NET_DB_PASSWORD`. Ids the server refused are skipped, so a
//! re-resolution moves on to the next source instead of deleting a file.

use std::path::{Path, PathBuf};

/// Where a session id came from (for messages; never the id itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SidSource {
    Config,
    EnvCookie,
    CookieFile(PathBuf),
    Login(String),
}

impl std::fmt::Display for SidSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SidSource::Config => write!(f, "[DB] cookie"),
            SidSource::EnvCookie => write!(f, "KM3NET_DB_COOKIE"),
            SidSource::CookieFile(p) => write!(f, "cookie file {}", p.display()),
            SidSource::Login(u) => write!(f, "login as {u:?}"),
        }
    }
}

/// A session id and its origin.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    pub sid: String,
    pub source: SidSource,
}

impl std::fmt::Debug for Session {
    // The id is a credential: only its user part goes to logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Session({} from {})",
            describe_sid(&self.sid),
            self.source
        )
    }
}

/// The inputs of the resolution, taken from the process once so that
/// tests can give their own.
#[derive(Debug, Clone, Default)]
pub struct SessionEnv {
    /// `[DB] cookie` of the site config, or a command-line option.
    pub config_cookie: Option<String>,
    pub env_cookie: Option<String>,
    pub env_cookie_file: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl SessionEnv {
    /// From the process environment (after `.env` files were loaded).
    pub fn from_process(config_cookie: Option<String>) -> SessionEnv {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        SessionEnv {
            config_cookie: config_cookie.filter(|c| !c.trim().is_empty()),
            env_cookie: var("KM3NET_DB_COOKIE"),
            env_cookie_file: var("KM3NET_DB_COOKIE_FILE").map(PathBuf::from),
            home: var("HOME").map(PathBuf::from),
            username: var("KM3NET_DB_USERNAME"),
            password: std::env::var("KM3NET_DB_PASSWORD").ok(),
        }
    }

    /// `~/.km3netdb_cookie`.
    pub fn home_cookie_file(&self) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(".km3netdb_cookie"))
    }

    /// Where a login writes its id: `KM3NET_DB_COOKIE_FILE`, else
    /// `~/.km3netdb_cookie` (as km3db does).
    pub fn login_cookie_file(&self) -> Option<PathBuf> {
        self.env_cookie_file
            .clone()
            .or_else(|| self.home_cookie_file())
    }

    /// Credentials for a login, if both are set.
    pub fn credentials(&self) -> Option<(String, String)> {
        Some((self.username.clone()?, self.password.clone()?))
    }

    /// The first session id not in `refused`, without a login.
    pub fn resolve_stored(&self, refused: &[String]) -> Option<Session> {
        let ok = |sid: &String| !refused.contains(sid);
        if let Some(sid) = self.config_cookie.as_deref().and_then(last_token) {
            if ok(&sid) {
                return Some(Session {
                    sid,
                    source: SidSource::Config,
                });
            }
        }
        if let Some(sid) = self.env_cookie.as_deref().and_then(last_token) {
            if ok(&sid) {
                return Some(Session {
                    sid,
                    source: SidSource::EnvCookie,
                });
            }
        }
        let files = [self.env_cookie_file.clone(), self.home_cookie_file()];
        for path in files.into_iter().flatten() {
            match read_cookie_file(&path) {
                Ok(Some(sid)) if ok(&sid) => {
                    return Some(Session {
                        sid,
                        source: SidSource::CookieFile(path),
                    })
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("DB cookie file {}: {e}", path.display()),
            }
        }
        None
    }
}

/// The last whitespace-separated token: how km3db reads a cookie file and
/// (since 0.13.2) `KM3NET_DB_COOKIE`, so a whole cookie-file line works too.
pub fn last_token(text: &str) -> Option<String> {
    text.split_whitespace().last().map(str::to_string)
}

/// The id in a cookie file; `Ok(None)` when there is no file or it is empty.
pub fn read_cookie_file(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(last_token(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// One line in Netscape cookie-file format, TAB separated, no trailing
/// newline (km3db's format).
pub fn cookie_file_line(sid: &str) -> String {
    [".in2p3.fr", "TRUE", "/", "TRUE", "0", "sid", sid].join("\t")
}

/// Writes a cookie file with mode 0600, atomically and durably.
pub fn write_cookie_file(path: &Path, sid: &str) -> std::io::Result<()> {
    atomicfile::write_private(path, cookie_file_line(sid).as_bytes())
}

/// Whether `s` starts like a session id:
/// `_[a-z0-9-]+_(\d{1,3}.){1,3}\d{1,3}_[a-z0-9]+` (matched from the start,
/// as km3db does).
pub fn is_valid_sid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('_') else {
        return false;
    };
    let Some((user, rest)) = rest.split_once('_') else {
        return false;
    };
    if user.is_empty()
        || !user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return false;
    }
    let Some((addr, token)) = rest.split_once('_') else {
        return false;
    };
    let groups: Vec<&str> = addr.split('.').collect();
    let addr_ok = (2..=4).contains(&groups.len())
        && groups
            .iter()
            .all(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()));
    addr_ok
        && token
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The id in a login reply: after the last `sid=`, up to whitespace, `;`
/// or `&`, and only if it has the shape of an id.
pub fn sid_from_login_reply(body: &str) -> Option<String> {
    let at = body.rfind("sid=")? + 4;
    let sid: String = body[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ';' && *c != '&' && *c != '"')
        .collect();
    is_valid_sid(&sid).then_some(sid)
}

/// `_jdoe_…` → `jdoe`: the DB user name of an id, for messages.
pub fn describe_sid(sid: &str) -> String {
    match sid.split('_').nth(1) {
        Some(u) if !u.is_empty() => format!("session of {u:?}"),
        _ => "session".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "_jdoe_192.0.2.17_0123456789abcdef0123456789abcdef";

    #[test]
    fn sid_shape() {
        assert!(is_valid_sid(SID));
        assert!(is_valid_sid("_op-1_131.188_abc"));
        assert!(!is_valid_sid("jdoe_192.0.2.17_abc"));
        assert!(!is_valid_sid("_jdoe_192_abc"));
        assert!(!is_valid_sid("_JDoe_192.0.2.17_abc"));
        assert!(!is_valid_sid("_jdoe_192.0.2.17_"));
        assert!(!is_valid_sid("_jdoe_1921.0.2.17_abc"));
    }

    #[test]
    fn login_reply() {
        assert_eq!(
            sid_from_login_reply(&format!("sid={SID}")),
            Some(SID.into())
        );
        assert_eq!(
            sid_from_login_reply(&format!("<html>sid=x sid={SID}\n</html>")),
            Some(SID.into())
        );
        assert_eq!(sid_from_login_reply("Bad username or password"), None);
        assert_eq!(sid_from_login_reply("sid=garbage"), None);
    }

    #[test]
    fn cookie_line_and_last_token() {
        let line = cookie_file_line(SID);
        assert_eq!(line, format!(".in2p3.fr\tTRUE\t/\tTRUE\t0\tsid\t{SID}"));
        assert_eq!(last_token(&line).as_deref(), Some(SID));
        assert_eq!(last_token(&format!("  {SID}\n")).as_deref(), Some(SID));
        assert_eq!(last_token(" \n"), None);
    }
}
