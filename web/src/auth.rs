//! HTTP Basic authentication for every route, and the response headers
//! every answer carries.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Credentials;
use crate::AppState;

/// Standard base64, padding optional (clients differ), via the `base64`
/// crate.
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    base64::Engine::decode(&B64, s).ok()
}

pub fn base64_encode(b: &[u8]) -> String {
    base64::Engine::encode(&B64, b)
}

/// Equality whose time depends only on the lengths, not on where the
/// first difference is (no early exit).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u8 | ((a.len() != b.len()) as u8);
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// Checks an `Authorization` header value against the credentials; both
/// parts are always compared, so a right user name costs the same time as
/// a wrong one.
pub fn check(header: Option<&HeaderValue>, creds: &Credentials) -> bool {
    let Some(v) = header.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Some(b64) = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))
    else {
        return false;
    };
    let Some(raw) = base64_decode(b64.trim()) else {
        return false;
    };
    let Some(colon) = raw.iter().position(|&c| c == b':') else {
        return false;
    };
    let user_ok = ct_eq(&raw[..colon], creds.username.as_bytes());
    let pass_ok = ct_eq(&raw[colon + 1..], creds.password.as_bytes());
    user_ok & pass_ok
}

/// Middleware: 401 with the original's realm unless the credentials match.
pub(crate) async fn require(State(app): State<AppState>, req: Request, next: Next) -> Response {
    app.counters
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(creds) = &app.cfg.auth {
        if !check(req.headers().get(header::AUTHORIZATION), creds) {
            app.counters
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"Login Required\"")],
                "Could not verify your access level for that URL.\nYou have to login with proper credentials\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// The original's no-cache headers on every response (its intended
/// `no-cache, no-store, must-revalidate`, not the `public, max-age=0` its
/// quirk left), plus `nosniff`.
pub(crate) async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate, max-age=0"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("0"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip() {
        for s in ["", "a", "ab", "abc", "km3net:change-me", "ü:∆"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{e}");
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("!!!!").is_none());
    }

    #[test]
    fn checks_credentials() {
        let c = Credentials {
            username: "km3net".into(),
            password: "pw:with:colons".into(),
        };
        let good = format!("Basic {}", base64_encode(b"km3net:pw:with:colons"));
        assert!(check(Some(&HeaderValue::from_str(&good).unwrap()), &c));
        for bad in ["km3net:pw", "km3ne:pw:with:colons", "km3net", ""] {
            let h = format!("Basic {}", base64_encode(bad.as_bytes()));
            assert!(
                !check(Some(&HeaderValue::from_str(&h).unwrap()), &c),
                "{bad}"
            );
        }
        assert!(!check(None, &c));
        assert!(!check(Some(&HeaderValue::from_static("Bearer x")), &c));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"\0"));
    }
}
