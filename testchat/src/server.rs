//! The HTTP side: routes, the recording/fault middleware, the handlers.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::{lock, Message, Request, Shared};

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(crate::page::index))
        .route("/post", post(crate::page::post_form))
        .route("/api/v1/login", post(login))
        .route("/api/v1/channels.list", get(channels_list))
        .route("/api/v1/channels.history", get(channels_history))
        .route("/api/v1/chat.postMessage", post(post_message))
        .route("/hooks/{id}/{token}", post(hook))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_and_fault,
        ))
        .with_state(state)
}

/// Records the request, then applies the fault switches.
async fn record_and_fault(
    State(s): State<Shared>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let record = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        auth_token: header("x-auth-token"),
        user_id: header("x-user-id"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let (delay, fail) = {
        let mut st = lock(&s);
        st.requests.push(record);
        let mut delay = st.delay;
        if st.slow_next.0 > 0 {
            st.slow_next.0 -= 1;
            delay += st.slow_next.1;
        }
        let fail = st.fail_next > 0;
        if fail {
            st.fail_next -= 1;
        }
        (delay, fail)
    };
    if delay > Duration::ZERO {
        tokio::time::sleep(delay).await;
    }
    if fail {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"success": false, "error": "testchat: injected failure"})),
        )
            .into_response();
    }
    next.run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"success": false, "error": msg}))).into_response()
}

/// Form (what Rocket.Chat clients send) or JSON.
fn fields(headers: &HeaderMap, body: &Bytes) -> HashMap<String, String> {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if json {
        serde_json::from_slice::<HashMap<String, Value>>(body)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
            .collect()
    } else {
        serde_urlencoded::from_bytes(body).unwrap_or_default()
    }
}

async fn login(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let f = fields(&headers, &body);
    let user = f.get("username").or_else(|| f.get("user")).cloned();
    let password = f.get("password").cloned().unwrap_or_default();
    let mut st = lock(&s);
    match user {
        Some(u) if st.users.get(&u) == Some(&password) => {
            let token = st.next_id("t");
            st.tokens.insert(token.clone(), u.clone());
            st.logins += 1;
            Json(json!({
                "status": "success",
                "data": {"authToken": token, "userId": user_id(&u), "me": {"username": u}}
            }))
            .into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"status": "error", "error": "Unauthorized", "message": "Unauthorized"})),
        )
            .into_response(),
    }
}

fn user_id(name: &str) -> String {
    format!("u-{name}")
}

/// The user a token belongs to (`None`: answer [`unauthorized`]).
fn authed(s: &Shared, headers: &HeaderMap) -> Option<String> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let st = lock(s);
    let user = st.tokens.get(h("x-auth-token")?)?;
    (h("x-user-id")? == user_id(user)).then(|| user.clone())
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"status": "error", "message": "You must be logged in to do this."})),
    )
        .into_response()
}

fn num(q: &HashMap<String, String>, key: &str) -> Option<usize> {
    q.get(key).and_then(|v| v.parse().ok())
}

async fn channels_list(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if authed(&s, &headers).is_none() {
        return unauthorized();
    }
    let st = lock(&s);
    let offset = num(&q, "offset").unwrap_or(0);
    let count = num(&q, "count")
        .unwrap_or(st.max_page_size)
        .min(st.max_page_size);
    let page: Vec<Value> = st
        .channels
        .iter()
        .skip(offset)
        .take(count)
        .map(|c| json!({"_id": c.id, "name": c.name, "t": "c", "msgs": c.messages.len()}))
        .collect();
    Json(json!({
        "channels": page, "offset": offset, "count": page.len(),
        "total": st.channels.len(), "success": true
    }))
    .into_response()
}

fn message_json(m: &Message) -> Value {
    json!({
        "_id": m.id, "rid": m.rid, "msg": m.text, "ts": m.ts,
        "u": {"_id": user_id(&m.username), "username": m.username, "name": m.username},
        "mentions": [], "_updatedAt": m.ts
    })
}

async fn channels_history(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if authed(&s, &headers).is_none() {
        return unauthorized();
    }
    let Some(room) = q.get("roomId") else {
        return error(
            StatusCode::BAD_REQUEST,
            "The parameter \"roomId\" is required",
        );
    };
    let count = num(&q, "count").unwrap_or(20);
    let inclusive = q.get("inclusive").is_some_and(|v| v == "true");
    let mut st = lock(&s);
    let Some(chan) = st.channel_mut(room).filter(|c| c.id == *room) else {
        return error(StatusCode::BAD_REQUEST, "error-room-not-found");
    };
    // Our timestamps share one fixed-width ISO form, so strings order like times.
    let newer = |m: &&Message| match q.get("oldest") {
        None => true,
        Some(o) if inclusive => m.ts.as_str() >= o.as_str(),
        Some(o) => m.ts.as_str() > o.as_str(),
    };
    let msgs: Vec<Value> = chan
        .messages
        .iter()
        .rev()
        .filter(newer)
        .take(count)
        .map(message_json)
        .collect();
    Json(json!({"messages": msgs, "success": true})).into_response()
}

async fn post_message(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(user) = authed(&s, &headers) else {
        return unauthorized();
    };
    let f = fields(&headers, &body);
    let Some(channel) = f.get("channel").or_else(|| f.get("roomId")) else {
        return error(StatusCode::BAD_REQUEST, "error-invalid-channel");
    };
    let Some(text) = f.get("text") else {
        return error(StatusCode::BAD_REQUEST, "error-invalid-message");
    };
    let mut st = lock(&s);
    match st.add_message(channel, &user, text) {
        Some(m) => Json(json!({
            "ts": m.ts_ms, "channel": m.channel, "message": message_json(&m), "success": true
        }))
        .into_response(),
        None => error(StatusCode::BAD_REQUEST, "error-invalid-channel"),
    }
}

async fn hook(
    State(s): State<Shared>,
    Path((id, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = lock(&s);
    if st.hook.0 != id || st.hook.1 != token {
        return error(
            StatusCode::NOT_FOUND,
            "Invalid integration id or token provided.",
        );
    }
    // JSON body, or Mattermost/Slack's form field `payload=<json>`.
    let payload: Value = if headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"))
    {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        fields(&headers, &body)
            .get("payload")
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null)
    };
    let Some(text) = payload["text"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "text is required");
    };
    let channel = payload["channel"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| st.hook.2.clone());
    match st.add_message(&channel, "webhook", text) {
        Some(_) => Json(json!({"success": true})).into_response(),
        None => error(StatusCode::BAD_REQUEST, "error-invalid-channel"),
    }
}
