//! `POST /chat/command`: the outgoing-webhook endpoint of the chatbot's
//! webhook mode. Rocket.Chat posts JSON, Mattermost and Slack's legacy
//! outgoing webhooks post JSON or a form; both are read. The integration's
//! `token` is the credential: it is compared in constant time with the
//! configured one, and the endpoint is exempt from HTTP Basic auth (a chat
//! server cannot send it). Without a configured token every request is
//! refused.
//!
//! The web crate does not know the bot: the binary hands in a
//! [`CommandHandler`] that takes the request and returns the reply text
//! (or nothing, for a message the bot ignores).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::AppState;

/// One command as the chat server posted it (the token already checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandRequest {
    pub user_name: String,
    pub user_id: Option<String>,
    pub channel_name: String,
    pub channel_id: Option<String>,
    pub text: String,
    /// `message_id` (Rocket.Chat) or `post_id` (Mattermost).
    pub message_id: Option<String>,
    pub trigger_word: Option<String>,
}

/// Blocking is fine: it runs on tokio's blocking pool.
pub type CommandHandler = Arc<dyn Fn(CommandRequest) -> Option<String> + Send + Sync>;

/// The chat-command endpoint's configuration.
#[derive(Clone)]
pub struct ChatCommands {
    /// The outgoing webhook's token; `None`: the endpoint refuses everything.
    pub token: Option<String>,
    pub handler: CommandHandler,
}

/// Fields of either body form, as strings.
fn fields(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.starts_with("application/x-www-form-urlencoded") {
        return serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map_err(|e| format!("bad form body: {e}"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("bad JSON body: {e}"))?;
    let obj = v.as_object().ok_or("the JSON body is not an object")?;
    Ok(obj
        .iter()
        .filter_map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((k.clone(), s))
        })
        .collect())
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, Json(serde_json::json!({ "error": why }))).into_response()
}

pub(crate) async fn command(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    app.counters.requests.fetch_add(1, Ordering::Relaxed);
    let Some(chat) = &app.chat else {
        return refuse(StatusCode::NOT_FOUND, "chat commands are not enabled");
    };
    let Some(want) = &chat.token else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no command token is configured ([Alerts.chat] command_token_env)",
        );
    };
    let fields = match fields(&headers, &body) {
        Ok(f) => f,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &e),
    };
    let get = |k: &str| {
        fields
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    let token = get("token").unwrap_or_default();
    if want.is_empty() || !crate::auth::ct_eq(token.as_bytes(), want.as_bytes()) {
        app.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("chat command refused: wrong or missing token");
        return refuse(StatusCode::UNAUTHORIZED, "wrong or missing token");
    }
    let req = CommandRequest {
        user_name: get("user_name").unwrap_or_default(),
        user_id: get("user_id"),
        channel_name: get("channel_name").unwrap_or_default(),
        channel_id: get("channel_id"),
        text: get("text").unwrap_or_default(),
        message_id: get("message_id").or_else(|| get("post_id")),
        trigger_word: get("trigger_word").filter(|t| !t.is_empty()),
    };
    if req.user_name.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "no user_name");
    }
    let handler = chat.handler.clone();
    match tokio::task::spawn_blocking(move || handler(req)).await {
        Ok(Some(text)) => Json(serde_json::json!({ "text": text })).into_response(),
        // An empty object: the chat server posts nothing.
        Ok(None) => Json(serde_json::json!({})).into_response(),
        Err(e) => {
            tracing::error!("chat command handler failed: {e}");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "the command failed")
        }
    }
}
