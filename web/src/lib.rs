//! km3mon's web front end: the original's plot pages, top 10, log archive
//! and live log (frontail's job), plus status, metrics and an API, in one
//! axum server with embedded assets.
//!
//! Library use (`km3mon run/demo`): [`serve`] on a tokio runtime, or
//! [`spawn`] from synchronous code; standalone: [`run_until_signal`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::{broadcast, watch};

mod assets;
pub mod auth;
pub mod chat;
pub mod config;
pub mod conn;
pub mod control;
mod detector;
mod files;
mod health;
pub mod layout;
mod livelog;
mod logs;
mod pages;
mod plots;
pub mod status;
pub mod timefmt;
mod top10;

pub use chat::{ChatCommands, CommandHandler, CommandRequest};
pub use config::{Credentials, Page, WebConfig};
pub use control::{ControlOutcome, Controller};
pub use prometheus_client::collector::Collector;
pub use status::{
    ControlledSource, FnSource, NoPipeline, NodeStatus, Polled, PolledSource, StatusSnapshot,
    StatusSource,
};

#[derive(Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    auth_failures: AtomicU64,
    sse_clients: AtomicU64,
}

pub(crate) struct App {
    cfg: WebConfig,
    plots: Arc<plots::PlotIndex>,
    log: Arc<livelog::LiveLog>,
    db: top10::Db,
    status: Arc<dyn StatusSource>,
    tracker: status::Tracker,
    counters: Counters,
    started: f64,
    shutdown: watch::Receiver<bool>,
    chat: Option<ChatCommands>,
    collectors: Vec<Arc<dyn Collector>>,
    detector: Arc<detector::Feed>,
}

/// What a server may offer beyond the pages, filled by the binary.
#[derive(Clone, Default)]
pub struct Extras {
    /// `POST /chat/command`, the chatbot's outgoing-webhook endpoint.
    pub chat: Option<ChatCommands>,
    /// More series for `/metrics` (the pipeline's, when it has no
    /// `--metrics` endpoint of its own; the process's for `km3mon serve`).
    pub collectors: Vec<Arc<dyn Collector>>,
}

pub(crate) type AppState = Arc<App>;

/// A running server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// Waits until the server has shut down (after the shutdown future).
    pub async fn join(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Binds `cfg.bind` and serves until `shutdown` completes; open event
/// streams end then too, so the shutdown is prompt. Must run inside a
/// tokio runtime.
pub async fn serve(
    cfg: WebConfig,
    status: Arc<dyn StatusSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<ServerHandle> {
    serve_with(cfg, status, Extras::default(), shutdown).await
}

/// [`serve`] with [`Extras`].
pub async fn serve_with(
    cfg: WebConfig,
    status: Arc<dyn StatusSource>,
    extras: Extras,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind(cfg.bind).await?;
    let addr = listener.local_addr()?;
    match &cfg.auth {
        None => tracing::warn!(
            "web: HTTP authentication is OFF: set [WebServer] username and password in the site config"
        ),
        Some(c) if c.password == "change-me" => tracing::warn!(
            "web: [WebServer] password is still the example's placeholder: change it in the site config"
        ),
        Some(_) => {}
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let plots = plots::PlotIndex::new(cfg.plots_dir.clone());
    let log = livelog::LiveLog::new(cfg.logs_dir.join("MSG.log"));
    tokio::spawn(plots.clone().watch(cfg.poll_interval, stop_rx.clone()));
    let log_every = cfg.poll_interval.min(Duration::from_millis(250));
    tokio::spawn(log.clone().watch(log_every, stop_rx.clone()));
    status.clone().start(stop_rx.clone());
    let app = Arc::new(App {
        db: top10::Db::new(cfg.db_file.clone(), cfg.db_table.clone()),
        cfg,
        plots,
        log,
        status,
        tracker: status::Tracker::default(),
        counters: Counters::default(),
        started: timefmt::now_secs(),
        shutdown: stop_rx,
        chat: extras.chat,
        collectors: extras.collectors,
        detector: detector::Feed::new(),
    });
    tokio::spawn(detector::watch_health(
        app.clone(),
        Duration::from_secs(1),
        app.shutdown.clone(),
    ));
    let limits = conn::Limits {
        header_timeout: app.cfg.header_timeout,
        max_connections: app.cfg.max_connections,
    };
    let router = router(app);
    let task = tokio::spawn(async move {
        let stop_rx2 = stop_tx.subscribe();
        let graceful = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        tokio::spawn(graceful);
        conn::serve(listener, router, limits, stop_rx2, Duration::from_secs(5)).await
    });
    Ok(ServerHandle { addr, task })
}

/// A server on its own runtime thread, for synchronous callers.
pub struct BackgroundServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BackgroundServer {
    pub fn stop(mut self) {
        self.stop_inner();
    }
    fn stop_inner(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Starts a server on a dedicated two-thread runtime; returns once bound.
pub fn spawn(cfg: WebConfig, status: Arc<dyn StatusSource>) -> std::io::Result<BackgroundServer> {
    spawn_with(cfg, status, Extras::default())
}

/// [`spawn`] with [`Extras`].
pub fn spawn_with(
    cfg: WebConfig,
    status: Arc<dyn StatusSource>,
    extras: Extras,
) -> std::io::Result<BackgroundServer> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("web".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("web-rt")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                match serve_with(cfg, status, extras, async move {
                    let _ = stop_rx.await;
                })
                .await
                {
                    Ok(h) => {
                        let _ = addr_tx.send(Ok(h.addr));
                        if let Err(e) = h.join().await {
                            tracing::error!("web server: {e}");
                        }
                    }
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                    }
                }
            });
        })?;
    let addr = addr_rx
        .recv()
        .map_err(|_| std::io::Error::other("web server thread died"))??;
    Ok(BackgroundServer {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// `km3mon serve`: serves until SIGINT or SIGTERM. `on_bound` gets the
/// address (to print the URL).
pub fn run_until_signal(
    cfg: WebConfig,
    status: Arc<dyn StatusSource>,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    run_until_signal_with(cfg, status, Extras::default(), on_bound)
}

/// [`run_until_signal`] with [`Extras`].
pub fn run_until_signal_with(
    cfg: WebConfig,
    status: Arc<dyn StatusSource>,
    extras: Extras,
    on_bound: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let signal = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("web: shutting down");
        };
        let bind = cfg.bind;
        let h = serve_with(cfg, status, extras, signal)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
        on_bound(h.addr);
        h.join().await?;
        Ok(())
    })
}

fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                 script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

fn not_found(app: &App, what: &str) -> Response {
    let mut r = html(pages::not_found(&app.cfg, what));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

pub(crate) fn router(app: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/{page}", get(page))
        .route("/status", get(status_page))
        .route("/plots/{*path}", get(plot_file))
        .route("/logs/{*path}", get(log_file))
        .route("/static/{file}", get(assets::serve))
        .route("/api/status", get(api_status))
        .route("/api/plots", get(api_plots))
        .route("/api/control", post(control::api_control))
        .route("/api/events", get(plot_events))
        .route("/api/detector", get(api_detector))
        .route("/api/detector/events", get(detector_events))
        .route("/api/livelog", get(livelog_events))
        .route("/metrics", get(metrics))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require,
        ))
        // After the Basic-auth layer: the chat server authenticates with
        // the webhook token instead.
        .route("/chat/command", post(chat::command))
        // Health checks (docker, load balancers) need no login; the answer
        // reveals nothing.
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn(auth::headers))
        .with_state(app)
}

async fn fallback(State(app): State<AppState>, uri: axum::http::Uri) -> Response {
    not_found(&app, uri.path())
}

async fn index(State(app): State<AppState>) -> Response {
    page(State(app), UrlPath("index.html".into())).await
}

/// Every `/<name>.html`: the fixed pages, `plot_<name>.html`, and the plot
/// grids of the site config.
async fn page(State(app): State<AppState>, UrlPath(file): UrlPath<String>) -> Response {
    let Some(name) = file.strip_suffix(".html") else {
        return not_found(&app, &file);
    };
    match name {
        "top10" => {
            let a = app.clone();
            let res = tokio::task::spawn_blocking(move || {
                Ok::<_, rusqlite::Error>(vec![
                    ("Number of Hits", a.db.top("n_hits")?),
                    ("Overlays", a.db.top("overlays")?),
                ])
            })
            .await;
            let body = match res {
                Ok(Ok(cats)) => top10::render(&cats, &app.cfg.plots_dir, timefmt::now_secs()),
                Ok(Err(e)) => {
                    tracing::warn!("top10: {e}");
                    "<div class=\"container\"><div class=\"banner warn\">The event selection database cannot be read right now.</div></div>".into()
                }
                Err(_) => String::new(),
            };
            html(pages::frame(&app.cfg, "top10", &body, &[]))
        }
        "logs" => html(pages::frame(
            &app.cfg,
            "logs",
            &logs::render(&app.cfg.logs_dir),
            &[],
        )),
        "live" | "livelog" => html(pages::live(&app.cfg)),
        "status" => html(health::render_page(&app)),
        "detector" => html(detector::render(&app)),
        _ => {
            if let Some(plot) = name.strip_prefix("plot_") {
                if pages::valid_plot_name(plot) {
                    return html(pages::single(&app.cfg, plot, &app.plots.all()));
                }
                return not_found(&app, &file);
            }
            match pages::grid(&app.cfg, name, &app.plots.all()) {
                Some(h) => html(h),
                None => not_found(&app, &file),
            }
        }
    }
}

async fn status_page(State(app): State<AppState>) -> Response {
    html(health::render_page(&app))
}

async fn plot_file(State(app): State<AppState>, UrlPath(p): UrlPath<String>) -> Response {
    files::serve(&app.cfg.plots_dir, &p).await
}

async fn log_file(State(app): State<AppState>, UrlPath(p): UrlPath<String>) -> Response {
    files::serve(&app.cfg.logs_dir, &p).await
}

async fn api_status(State(app): State<AppState>) -> Response {
    Json(health::status_json(&app)).into_response()
}

async fn api_plots(State(app): State<AppState>) -> Response {
    let now = timefmt::now_secs();
    let list: Vec<serde_json::Value> = app
        .plots
        .all()
        .into_iter()
        .map(|p| {
            let limit = app.cfg.stale_after_for(&p.name).as_secs_f64();
            let mut v = serde_json::to_value(&p).unwrap_or_default();
            v["url"] = format!("plots/{}?v={}", p.file, p.v).into();
            v["stale"] = (now - p.updated > limit).into();
            v
        })
        .collect();
    Json(serde_json::json!({ "now": now, "plots": list })).into_response()
}

async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
        )],
        health::prometheus(&app),
    )
        .into_response()
}

/// Counts open event streams; decremented when the stream is dropped.
struct SseGuard(AppState);

impl SseGuard {
    fn new(app: &AppState) -> SseGuard {
        app.counters.sse_clients.fetch_add(1, Ordering::Relaxed);
        SseGuard(app.clone())
    }
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.counters.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

fn event(name: &str, data: &impl serde::Serialize) -> Result<Event, Infallible> {
    Ok(Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name)))
}

/// A stream of events from a broadcast channel that ends on shutdown.
fn sse_stream<T: Clone + Send + 'static>(
    app: &AppState,
    first: Event,
    rx: broadcast::Receiver<T>,
    map: impl Fn(Result<T, u64>) -> Event + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let guard = SseGuard::new(app);
    let stop = app.shutdown.clone();
    let rest = stream::unfold(
        (rx, stop, guard, map),
        |(mut rx, mut stop, g, map)| async move {
            if *stop.borrow() {
                return None;
            }
            let ev = tokio::select! {
                r = rx.recv() => match r {
                    Ok(v) => map(Ok(v)),
                    Err(broadcast::error::RecvError::Lagged(n)) => map(Err(n)),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = stop.changed() => return None,
            };
            Some((Ok(ev), (rx, stop, g, map)))
        },
    );
    Sse::new(stream::once(async move { Ok(first) }).chain(rest))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Plot changes. The first event lists every plot, so a page that loaded
/// a moment ago misses nothing; after a lag the client resynchronises.
async fn plot_events(State(app): State<AppState>) -> Response {
    let rx = app.plots.subscribe();
    let first = event("plots", &app.plots.all()).unwrap_or_else(|e| match e {});
    sse_stream(&app, first, rx, |r| match r {
        Ok(batch) => event("plots", &*batch).unwrap_or_else(|e| match e {}),
        Err(_) => Event::default().event("resync").data("lagged"),
    })
    .into_response()
}

async fn api_detector(State(app): State<AppState>) -> Response {
    Json(&*app.detector.current()).into_response()
}

/// The detector's table: the current one, then each change.
async fn detector_events(State(app): State<AppState>) -> Response {
    let rx = app.detector.subscribe();
    let first = event("detector", &detector::event_data(&app.detector.current()))
        .unwrap_or_else(|e| match e {});
    sse_stream(&app, first, rx, |r| match r {
        Ok(v) => event("detector", &detector::event_data(&v)).unwrap_or_else(|e| match e {}),
        Err(_) => Event::default().event("resync").data("lagged"),
    })
    .into_response()
}

/// The live log: the backlog, then new lines as they are written.
async fn livelog_events(State(app): State<AppState>) -> Response {
    let (backlog, rx) = app.log.connect();
    let first = event("init", &backlog).unwrap_or_else(|e| match e {});
    sse_stream(&app, first, rx, |r| match r {
        Ok(livelog::LogEvent::Lines(l)) => event("lines", &*l).unwrap_or_else(|e| match e {}),
        Ok(livelog::LogEvent::Rotated) => Event::default().event("rotated").data("rotated"),
        Err(n) => Event::default().event("lagged").data(n.to_string()),
    })
    .into_response()
}
