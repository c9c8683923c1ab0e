//! `POST /api/control`: stop, start and restart pipeline nodes and silence
//! alerts from the status page.
//!
//! The web crate does not depend on the pipeline (see `status`): the
//! binary hands in a [`Controller`] (through
//! [`StatusSource::controller`](crate::StatusSource::controller)) that
//! forwards the command line to the pipeline's one command parser, so the
//! web, `km3mon ctl` and the chatbot speak the same language.
//!
//! Guards: the server's HTTP Basic authentication must be on (control
//! without a login is refused, 403), the request must be
//! `Content-Type: application/json` (a cross-site form cannot send that
//! without a CORS preflight, which this server never grants), and an
//! `Origin` header, when sent, must name this server. The audit line names
//! the Basic-auth user.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::AppState;

/// What a command returned.
#[derive(Debug, Clone)]
pub struct ControlOutcome {
    pub ok: bool,
    /// The human rendering (as `km3mon ctl` prints it).
    pub text: String,
    /// The structured reply, returned to the client as is.
    pub body: Value,
}

/// Executes control commands on behalf of a user; the binary adapts the
/// pipeline's `Control` to this.
pub trait Controller: Send + Sync + 'static {
    /// Parses and applies one command line (`stop dom_rates`, …).
    fn execute(&self, command: &str, user: &str) -> ControlOutcome;
    /// The active silences, for the status page.
    fn silences(&self) -> Value {
        Value::Array(Vec::new())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    command: String,
}

/// Longest accepted request body.
const MAX_BODY: usize = 16 * 1024;

fn refuse(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({ "ok": false, "error": message }))).into_response()
}

/// The Basic-auth user name of a request (already verified by the auth
/// middleware).
fn basic_user(h: &HeaderMap) -> Option<String> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = crate::auth::base64_decode(b64.trim())?;
    let colon = raw.iter().position(|&c| c == b':')?;
    Some(String::from_utf8_lossy(&raw[..colon]).into_owned())
}

/// An `Origin`, when present, must be this server (scheme and host:port of
/// the `Host` header).
fn same_origin(h: &HeaderMap) -> bool {
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = h.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

pub(crate) async fn api_control(State(app): State<AppState>, req: Request) -> Response {
    let Some(ctl) = app.status.controller() else {
        return refuse(
            StatusCode::NOT_IMPLEMENTED,
            "no pipeline attached: control works on the server of `km3mon run` and `km3mon demo`",
        );
    };
    if app.cfg.auth.is_none() {
        return refuse(
            StatusCode::FORBIDDEN,
            "control from the web needs a login: set [WebServer] username and password in the site config",
        );
    }
    let headers = req.headers().clone();
    let json_ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_ct {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the command as JSON: Content-Type: application/json, {\"command\": \"…\"}",
        );
    }
    if !same_origin(&headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross-origin control request refused",
        );
    }
    let Some(user) = basic_user(&headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "no Basic-auth user");
    };
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let body: Body = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"command\": \"…\"}}: {e}"),
            )
        }
    };
    let who = format!("{user} (web)");
    // Commands write the audit file and the silence state: off the
    // async workers.
    let out = tokio::task::spawn_blocking(move || ctl.execute(&body.command, &who)).await;
    match out {
        Ok(o) => {
            let code = if o.ok {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            let mut body = o.body;
            if let Value::Object(m) = &mut body {
                m.entry("text").or_insert(Value::String(o.text));
                m.entry("ok").or_insert(Value::Bool(o.ok));
            }
            (code, Json(body)).into_response()
        }
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "the command panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origin_and_user() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!(
                "Basic {}",
                crate::auth::base64_encode(b"km3net:pw:x")
            ))
            .unwrap(),
        );
        assert_eq!(basic_user(&h).as_deref(), Some("km3net"));
    }
}
