//! What the web's /status and /metrics learn from the pipeline: in-process
//! (`km3mon run`/`demo`) straight from the control plane, standalone
//! (`km3mon serve`) as JSON over the pipeline's control socket — the same
//! rows `km3mon ctl --json status` prints, so both servers show the same
//! states (STOPPED, FAILED with its reason).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline::control::socket::{self, Request};
use pipeline::control::{Control, NodeStatus};
use pipeline::runtime::metrics::Metrics;
use pipeline::runtime::prom;

/// A control-plane row as the web shows it.
pub fn to_web(st: NodeStatus) -> web::NodeStatus {
    web::NodeStatus {
        name: st.name,
        records_in: st.records_in,
        records_out: st.records_out,
        drops: st.drops_by_reason,
        lag_seconds: st.lag_seconds,
        last_output_utc: st.last_output_utc,
        busy_seconds: Some(st.busy_seconds),
        group: Some(st.group),
        control_state: Some(st.state),
        reason: st.reason,
        uptime_seconds: Some(st.uptime_seconds),
        restarts: Some(st.restarts),
        ..Default::default()
    }
}

/// The run's series for a web server without a separate `--metrics`
/// endpoint.
pub fn run_collectors(metrics: &Arc<Metrics>) -> Vec<Arc<dyn web::Collector>> {
    prom::run_collectors(metrics)
        .into_iter()
        .map(Arc::from)
        .collect()
}

/// `km3mon serve`'s own process and build.
pub fn serve_collectors() -> Vec<Arc<dyn web::Collector>> {
    vec![
        Arc::new(prom::BuildInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            commit: env!("KM3MON_GIT_COMMIT").into(),
            build_date: env!("KM3MON_BUILD_DATE").into(),
        }),
        Arc::new(prom::ProcessCollector),
    ]
}

/// How long one question to the socket may take; the page shows the
/// last answer meanwhile.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

fn ask(path: &Path, command: &str, user: &str) -> std::io::Result<pipeline::control::Reply> {
    socket::request(
        path,
        &Request {
            command: command.into(),
            user: user.into(),
        },
        ASK_TIMEOUT,
    )
}

/// `km3mon serve`'s status source: `status`, `silences` and `latency` over the
/// pipeline's control socket every 2 s, and a controller that forwards the
/// status page's buttons there (the audit line names the web user).
pub fn socket_status(path: PathBuf) -> Arc<dyn web::StatusSource> {
    let silences = Arc::new(Mutex::new(serde_json::Value::Array(Vec::new())));
    let s = silences.clone();
    let p = path.clone();
    let fetch = move || {
        let r =
            ask(&p, "status", "web").map_err(|e| format!("control socket {}: {e}", p.display()))?;
        if !r.ok {
            return Err(r.error.unwrap_or(r.text));
        }
        if let Ok(x) = ask(&p, "silences", "web") {
            *s.lock().expect("silences") = serde_json::to_value(x.silences).unwrap_or_default();
        }
        // A pipeline older than the `latency` command answers an error.
        let latencies = ask(&p, "latency", "web").map_or(Vec::new(), |x| x.latencies);
        Ok((r.nodes.into_iter().map(to_web).collect(), latencies))
    };
    let origin = format!("control socket {}", path.display());
    web::PolledSource::new(
        origin,
        Duration::from_secs(2),
        fetch,
        Some(Arc::new(SocketController { path, silences })),
    )
}

struct SocketController {
    path: PathBuf,
    silences: Arc<Mutex<serde_json::Value>>,
}

impl web::Controller for SocketController {
    fn execute(&self, command: &str, user: &str) -> web::ControlOutcome {
        match ask(&self.path, command, user) {
            Ok(r) => web::ControlOutcome {
                ok: r.ok,
                text: r.text.clone(),
                body: serde_json::to_value(&r).unwrap_or_default(),
            },
            Err(e) => {
                let text = format!("control socket {}: {e}", self.path.display());
                web::ControlOutcome {
                    ok: false,
                    body: serde_json::json!({ "ok": false, "error": text }),
                    text,
                }
            }
        }
    }
    fn silences(&self) -> serde_json::Value {
        self.silences.lock().expect("silences").clone()
    }
}

/// The /status page's view of this process's nodes, with the control
/// plane behind its buttons.
///
/// `db_line`: the KM3NeT DB's last status (detector and calibrations from
/// the DB), shown as a row `km3db` whose state says whether the last
/// answer was fresh.
pub fn in_process_status(
    control: Arc<Control>,
    db_line: Option<Arc<dyn Fn() -> String + Send + Sync>>,
) -> Arc<dyn web::StatusSource> {
    let c = control.clone();
    Arc::new(web::ControlledSource {
        nodes: move || {
            let db = db_line.as_ref().map(|f| {
                let line = f();
                web::NodeStatus {
                    name: "km3db".into(),
                    state: if line.starts_with("DB ok") {
                        "running".into()
                    } else {
                        "waiting".into()
                    },
                    reason: Some(line),
                    ..Default::default()
                }
            });
            c.nodes().into_iter().map(to_web).chain(db).collect()
        },
        latencies: Some(Box::new({
            let c = control.clone();
            move || c.latencies()
        })),
        controller: Arc::new(crate::cmd_ctl::WebController(control)),
    })
}
