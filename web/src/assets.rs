//! Static assets compiled into the binary: the shore network may be
//! closed, so nothing is fetched from a CDN.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "plots.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/plots.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/live.js"),
    ),
    (
        "detector.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/detector.js"),
    ),
    (
        "status.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/status.js"),
    ),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == file) {
        Some((_, ct, body)) => ([(header::CONTENT_TYPE, *ct)], *body).into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}
