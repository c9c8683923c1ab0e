//! The HTTP side: routes, the recording/fault middleware, the handlers.

use std::collections::HashMap;
use std::io::Write;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::data;
use crate::{lock, Fault, Request, Shared};

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/home.htm", get(login))
        .route("/streamds", get(index))
        .route("/streamds/{file}", get(stream))
        .route("/detx/{det}", get(detx))
        .route("/apiv2.1.0/{endpoint}/s", get(apiv2))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_and_fault,
        ))
        .with_state(state)
}

fn sid_of(headers: &HeaderMap) -> Option<String> {
    let cookie = headers.get("cookie")?.to_str().ok()?;
    cookie
        .split(';')
        .filter_map(|c| c.trim().strip_prefix("sid="))
        .next()
        .map(str::to_string)
}

/// Records the request, then applies the fault switches and the session
/// check (everything but the login needs an accepted id).
async fn record_and_fault(
    State(s): State<Shared>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let sid = sid_of(req.headers());
    let record = Request {
        path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        sid: sid.clone(),
    };
    let (delay, fault, authed) = {
        let mut st = lock(&s);
        if let Some(p) = &st.log {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = writeln!(f, "{}", record.line());
            }
        }
        let authed =
            record.path == "/home.htm" || sid.as_ref().is_some_and(|x| st.sids.contains(x));
        st.requests.push(record);
        (st.delay, st.fault, authed)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Fault::Status(code) = fault {
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (code, format!("testdb: injected HTTP {}", code.as_u16())).into_response();
    }
    if !authed {
        return (
            StatusCode::UNAUTHORIZED,
            "Unauthorized: invalid or missing session",
        )
            .into_response();
    }
    next.run(req).await
}

fn text(body: String) -> Response {
    ([("content-type", "text/plain; charset=utf-8")], body).into_response()
}

async fn login(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut st = lock(&s);
    let (user, pwd) = (
        q.get("usr").cloned().unwrap_or_default(),
        q.get("pwd").cloned().unwrap_or_default(),
    );
    if q.get("persist").map(String::as_str) != Some("y")
        || !st.opts.users.iter().any(|(u, p)| *u == user && *p == pwd)
    {
        return text("Bad username or password".into());
    }
    st.counter += 1;
    let name: String = user
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let sid = format!(
        "_{name}_127.0.0.1_{:08x}{:08x}",
        std::process::id(),
        st.counter
    );
    st.sids.insert(sid.clone());
    text(format!("sid={sid}"))
}

async fn index(State(s): State<Shared>) -> Response {
    let path = lock(&s).opts.streamds.clone();
    match path.map(std::fs::read_to_string) {
        Some(Ok(t)) => text(t),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "testdb: streamds_output.txt not found (KM3MON_TESTDATA/db or KM3MON_PYTHON's km3net_testdata)").into_response(),
    }
}

fn find<'a>(dets: &'a [data::DetectorSpec], id: &str) -> Option<&'a data::DetectorSpec> {
    dets.iter()
        .find(|d| d.oid == id || d.serial.to_string() == id)
}

async fn stream(
    State(s): State<Shared>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let st = lock(&s);
    let Some(name) = file.strip_suffix(".txt") else {
        return text(format!("ERROR: format of {file:?} not supported"));
    };
    match name {
        "detectors" => text(data::detectors_tsv(&st.opts.detectors)),
        "runs" => {
            let Some(det) = q.get("detid") else {
                return text("ERROR: mandatory selector detid missing".into());
            };
            let Some(d) = find(&st.opts.detectors, det) else {
                return text(String::new());
            };
            let run = q.get("run").and_then(|r| r.parse().ok());
            text(data::runs_tsv(d, run, st.opts.runs_with_calib_columns))
        }
        "clbmap" => {
            let Some(oid) = q.get("detoid") else {
                return text("ERROR: mandatory selector detoid missing".into());
            };
            // A generated detector: its own map, from its DETX.
            if let Some(d) = st.opts.detectors.iter().find(|d| &d.oid == oid) {
                return match data::clbmap_tsv(d) {
                    Ok(t) => text(t),
                    Err(e) => {
                        (StatusCode::INTERNAL_SERVER_ERROR, format!("testdb: {e}")).into_response()
                    }
                };
            }
            match st.opts.clbmap.as_ref().map(std::fs::read_to_string) {
                Some(Ok(t)) => text(data::filter_tsv(&t, "DETOID", oid)),
                _ => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "testdb: clbmap.txt not found",
                )
                    .into_response(),
            }
        }
        "ahrscalib" => match st.opts.ahrscalib.as_ref().map(std::fs::read_to_string) {
            Some(Ok(t)) => text(t),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "testdb: streamds_ahrscalib_1605699491.txt not found",
            )
                .into_response(),
        },
        "integration" => {
            let Some(clb) = q.get("container_upi") else {
                // The whole integration table: more than a stand-in holds.
                return text("ERROR: testdb serves integration by container_upi only".into());
            };
            let compass = match st.opts.compasses.get(clb) {
                Some(c) => c.clone(),
                None => {
                    let table = st
                        .opts
                        .ahrscalib
                        .as_ref()
                        .and_then(|p| std::fs::read_to_string(p).ok())
                        .unwrap_or_default();
                    let serials = data::complete_compasses(&table);
                    let clb_serial: usize = clb
                        .rsplit('.')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    (!serials.is_empty())
                        .then(|| data::compass_upi(&serials[clb_serial % serials.len()]))
                }
            };
            text(data::integration_tsv(clb, compass.as_deref()))
        }
        "datalognumbers" => {
            let (Some(det), Some(_), Some(_)) = (q.get("detid"), q.get("minrun"), q.get("maxrun"))
            else {
                return text("ERROR: mandatory selectors detid, minrun, maxrun".into());
            };
            let Some(d) = find(&st.opts.detectors, det) else {
                return text(String::new());
            };
            let Some(p) = q.get("parameter_name") else {
                // Every parameter of every CLB: more than a stand-in holds.
                return text("ERROR: testdb serves datalognumbers by parameter_name only".into());
            };
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            match data::datalognumbers_tsv(d, p, q.get("source_name").map(String::as_str), now_ms) {
                Ok(t) => text(t),
                Err(e) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, format!("testdb: {e}")).into_response()
                }
            }
        }
        "toashort" => {
            let (Some(det), Some(r1), Some(r2)) =
                (q.get("detid"), q.get("minrun"), q.get("maxrun"))
            else {
                return text("ERROR: mandatory selectors detid, minrun, maxrun".into());
            };
            let Some(d) = find(&st.opts.detectors, det) else {
                return text(String::new());
            };
            let (Ok(r1), Ok(r2)) = (r1.parse::<i32>(), r2.parse::<i32>()) else {
                return text("ERROR: minrun and maxrun must be run numbers".into());
            };
            let dom = q.get("domid").and_then(|x| x.parse::<u32>().ok());
            match data::toashort_tsv(d, r1, r2, dom, st.opts.toa_silent_du) {
                Ok(t) => text(t),
                Err(e) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, format!("testdb: {e}")).into_response()
                }
            }
        }
        // Streams of the index this stand-in has no data for: "no data".
        _ if st
            .opts
            .streamds
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .is_some_and(|t| t.lines().any(|l| l.split('\t').next() == Some(name))) =>
        {
            text(String::new())
        }
        _ => text(format!("ERROR: unknown stream {name:?}")),
    }
}

async fn detx(
    State(s): State<Shared>,
    Path(det): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (d, shift) = {
        let st = lock(&s);
        let Some(d) = find(&st.opts.detectors, &det).cloned() else {
            return text(format!("ERROR: no detector {det:?}"));
        };
        let tcal = q.get("tcal").cloned().unwrap_or_else(|| "0".into());
        let mut d = d;
        if let Some(f) = q.get("pcal").and_then(|p| st.opts.pcal_detx.get(p)) {
            d.detx = f.clone();
        }
        (d, st.opts.t0_shifts.get(&tcal).copied().unwrap_or(0.0))
    };
    match data::detx_text(&d, shift) {
        Ok(t) => text(t),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("testdb: {e}")).into_response(),
    }
}

async fn apiv2(
    State(s): State<Shared>,
    Path(endpoint): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let st = lock(&s);
    if endpoint != "RunCalibration" {
        return axum::Json(serde_json::json!({
            "APIVersion": "2.0.0", "Error": {"Code": "UnknownEndpoint", "Message": "testdb serves RunCalibration only", "Arguments": [endpoint]}, "Data": null
        }))
        .into_response();
    }
    let det = q.get("DetOId").and_then(|d| find(&st.opts.detectors, d));
    let run = q.get("Run").and_then(|r| r.parse::<i32>().ok());
    let row = det.and_then(|d| d.runs.iter().find(|r| Some(r.run) == run));
    axum::Json(data::run_calibration_json(row)).into_response()
}
