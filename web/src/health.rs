//! `/api/status`, the `/status` page and `/metrics`: the pipeline's nodes
//! (from the [`StatusSource`](crate::status::StatusSource)), the plots'
//! ages, recent alerts, and the server's own counters.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::pages::{esc, json_block};
use crate::timefmt::{iso, now_secs};
use crate::App;

/// Last lines of `alerts.jsonl` kept on the status page.
const ALERTS_SHOWN: usize = 20;

fn recent_alerts(app: &App) -> Vec<Value> {
    let Ok(text) = std::fs::read_to_string(&app.cfg.alerts_file) else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let skip = lines.len().saturating_sub(ALERTS_SHOWN);
    lines[skip..]
        .iter()
        .rev()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| json!({ "raw": l })))
        .collect()
}

/// Everything /status shows, as JSON. Credentials never appear here:
/// only whether authentication is on.
pub fn status_json(app: &App) -> Value {
    let mut snap = app.status.snapshot();
    app.tracker.fill(&mut snap.nodes);
    let now = now_secs();
    let plots: Vec<Value> = app
        .plots
        .all()
        .into_iter()
        .map(|p| {
            let age = now - p.updated;
            let limit = app.cfg.stale_after_for(&p.name).as_secs_f64();
            json!({
                "name": p.name, "updated": p.updated, "data_time": p.data_time,
                "age_seconds": age, "stale_after": limit, "stale": age > limit,
            })
        })
        .collect();
    json!({
        "server": {
            "version": env!("CARGO_PKG_VERSION"),
            "auth": app.cfg.auth.is_some(),
            "started_utc": app.started,
            "now_utc": now,
            "plots_dir": app.cfg.plots_dir,
            "logs_dir": app.cfg.logs_dir,
            "sse_clients": app.counters.sse_clients.load(Ordering::Relaxed),
        },
        "pipeline": snap,
        "control": {
            "available": app.status.controller().is_some() && app.cfg.auth.is_some(),
            "silences": app.status.controller().map_or(Value::Array(Vec::new()), |c| c.silences()),
        },
        "plots": plots,
        "alerts": recent_alerts(app),
    })
}

pub fn render_page(app: &App) -> String {
    let s = status_json(app);
    let mut body = String::from("<div class=\"container\">");
    if app.cfg.auth.is_none() {
        body.push_str(
            "<div class=\"banner warn\" id=\"auth-warning\"><b>Authentication is OFF.</b> \
             Anyone who can reach this server sees every page. Set <code>[WebServer] username</code> \
             and <code>password</code> in the site config.</div>",
        );
    }
    body.push_str(&control_panel(app));
    body.push_str("<div id=\"status-root\">");
    body.push_str(&render_tables(&s));
    body.push_str("</div></div>\n");
    body.push_str(&json_block("status-data", &s));
    crate::pages::frame(&app.cfg, "status", &body, &["status.js"])
}

fn opt_secs(v: &Value) -> String {
    v.as_f64().map_or("–".into(), |x| format!("{x:.1} s"))
}

/// The tables of the status page; status.js redraws the same from
/// /api/status.
fn render_tables(s: &Value) -> String {
    let mut h = String::new();
    let p = &s["pipeline"];
    let _ = write!(
        h,
        "<h3>Pipeline nodes</h3><p class=\"muted\">source: {}{}</p>",
        esc(p["source"].as_str().unwrap_or("")),
        p["error"].as_str().map_or(String::new(), |e| format!(
            " — <span class=\"err\">{}</span>",
            esc(e)
        ))
    );
    h.push_str(&render_nodes(s));
    h.push_str(&render_latencies(s));
    h.push_str("<h3>Plots</h3><table class=\"grid\"><tr><th>plot</th><th>data time</th><th>updated</th><th>age</th><th></th></tr>");
    for pl in s["plots"].as_array().into_iter().flatten() {
        let stale = pl["stale"].as_bool().unwrap_or(false);
        let _ = write!(
            h,
            "<tr{}><td><a href=\"plot_{n}.html\">{n}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if stale { " class=\"stale\"" } else { "" },
            pl["data_time"].as_f64().map_or("–".into(), iso),
            pl["updated"].as_f64().map_or("–".into(), iso),
            opt_secs(&pl["age_seconds"]),
            if stale { "STALE" } else { "ok" },
            n = esc(pl["name"].as_str().unwrap_or("")),
        );
    }
    h.push_str("</table><h3>Recent alerts</h3><ul class=\"alerts\">");
    for a in s["alerts"].as_array().into_iter().flatten() {
        let _ = write!(h, "<li><code>{}</code></li>", esc(&a.to_string()));
    }
    h.push_str("</ul>");
    h
}

/// The silence form and the place where command replies appear; outside
/// `status-root`, which status.js redraws every 2 s.
fn control_panel(app: &App) -> String {
    match (app.status.controller().is_some(), app.cfg.auth.is_some()) {
        (false, _) => String::new(),
        (true, false) => "<p class=\"muted\" id=\"control-off\">Controls are off: they need the \
             login (<code>[WebServer] username</code> and <code>password</code>).</p>"
            .into(),
        (true, true) => "<form id=\"silence-form\" class=\"control\">\
             <b>Silence alerts</b> matching <input name=\"pattern\" placeholder=\"timesync:*\" required size=\"18\"> \
             for <input name=\"duration\" placeholder=\"2h\" required size=\"5\"> \
             because <input name=\"reason\" placeholder=\"DU 7 in maintenance\" size=\"28\"> \
             <button type=\"submit\">silence</button></form>\
             <pre id=\"control-reply\" class=\"control-reply\" hidden></pre>"
            .into(),
    }
}

/// Stop/start/restart of a node (`state` = its control state: the button
/// that would change nothing is disabled) or of a group (`state` empty).
fn buttons(target: &str, state: &str) -> String {
    ["stop", "start", "restart"]
        .iter()
        .map(|v| {
            let off = matches!((*v, state), ("stop", "STOPPED") | ("start", "RUNNING"));
            format!(
                "<button type=\"button\" class=\"ctl\" data-cmd=\"{v} {t}\"{}>{v}</button>",
                if off { " disabled" } else { "" },
                t = esc(target)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The node table, grouped by control group when there is a control
/// plane; status.js draws the same.
fn render_nodes(s: &Value) -> String {
    let mut h = String::new();
    let nodes: Vec<&Value> = s["pipeline"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let ctl = s["control"]["available"].as_bool().unwrap_or(false);
    let mut groups: Vec<&str> = Vec::new();
    for n in &nodes {
        let g = n["group"].as_str().unwrap_or("");
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    h.push_str("<table class=\"grid nodes\"><tr><th>node</th><th>control</th><th>uptime</th><th>restarts</th><th>activity</th><th>in</th><th>out</th><th>drops</th><th>event-time lag</th><th>last output</th>");
    if ctl {
        h.push_str("<th></th>");
    }
    h.push_str("</tr>");
    for g in groups {
        if !g.is_empty() {
            let _ = write!(
                h,
                "<tr class=\"group\"><th colspan=\"10\">{}</th>{}</tr>",
                esc(g),
                if ctl {
                    format!(
                        "<th title=\"every node of {0}\">{1}</th>",
                        esc(g),
                        buttons(&format!("{g}:*"), "")
                    )
                } else {
                    String::new()
                }
            );
        }
        for n in nodes
            .iter()
            .filter(|n| n["group"].as_str().unwrap_or("") == g)
        {
            let drops: u64 = n["drops"]
                .as_object()
                .map_or(0, |d| d.values().filter_map(Value::as_u64).sum());
            let cs = n["control_state"].as_str().unwrap_or("");
            let reason = n["reason"].as_str().map_or(String::new(), |r| {
                format!(" <span class=\"err\">({})</span>", esc(r))
            });
            let name = esc(n["name"].as_str().unwrap_or(""));
            let _ = write!(
                h,
                "<tr data-node=\"{name}\"><td>{name}</td><td class=\"ctl-{cl}\">{cs}{reason}</td><td>{}</td><td>{}</td><td class=\"state-{st}\">{st}</td><td>{}</td><td>{}</td><td>{drops}</td><td>{}</td><td>{}</td>{}</tr>",
                n["uptime_seconds"].as_f64().map_or("–".into(), hms),
                n["restarts"].as_u64().map_or("–".into(), |r| r.to_string()),
                n["records_in"],
                n["records_out"],
                opt_secs(&n["lag_seconds"]),
                n["last_output_utc"].as_f64().map_or("–".into(), iso),
                if ctl {
                    format!("<td>{}</td>", buttons(n["name"].as_str().unwrap_or(""), cs))
                } else {
                    String::new()
                },
                cs = esc(cs),
                cl = esc(&cs.to_ascii_lowercase()),
                st = esc(n["state"].as_str().unwrap_or("")),
            );
        }
    }
    h.push_str("</table>");
    let silences: Vec<&Value> = s["control"]["silences"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if !silences.is_empty() {
        h.push_str("<h3>Silences</h3><table class=\"grid silences\"><tr><th>pattern</th><th>until</th><th>by</th><th>reason</th><th></th></tr>");
        for x in silences {
            let p = x["pattern"].as_str().unwrap_or("");
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p),
                x["until_utc"].as_f64().map_or("–".into(), iso),
                esc(x["user"].as_str().unwrap_or("")),
                esc(x["reason"].as_str().unwrap_or("")),
                if ctl {
                    format!(
                        "<button type=\"button\" class=\"ctl\" data-cmd=\"unsilence {}\">unsilence</button>",
                        esc(p)
                    )
                } else {
                    String::new()
                }
            );
        }
        h.push_str("</table>");
    }
    h
}

/// The latency table (status.js draws the same): p50/p99/max of each
/// distribution the pipeline measures.
fn render_latencies(s: &Value) -> String {
    let rows: Vec<&Value> = s["pipeline"]["latencies"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut h = String::from(
        "<h3>Latency</h3><table class=\"grid latency\"><tr><th>distribution</th><th>labels</th>\
         <th>n</th><th>p50</th><th>p99</th><th>max</th></tr>",
    );
    let t = |v: &Value| v.as_f64().map_or("–".into(), latency::human);
    for r in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r["name"].as_str().unwrap_or("")),
            esc(r["labels"].as_str().unwrap_or("")),
            r["count"],
            t(&r["p50"]),
            t(&r["p99"]),
            t(&r["max"]),
        );
    }
    h.push_str("</table>");
    h
}

/// `H:MM:SS` (days folded into the hours).
fn hms(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Prometheus text (the `prometheus-client` encoder): the server's
/// counters and every plot's age and data time, then what the binary
/// handed in ([`crate::Extras::collectors`]: the pipeline's series when the
/// run has no `--metrics` endpoint of its own, so each series has one
/// exporter).
pub fn prometheus(app: &std::sync::Arc<App>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(WebCollector(app.clone())));
    for c in &app.collectors {
        registry.register_collector(Box::new(Shared(c.clone())));
    }
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
        tracing::error!("web: metrics encoding failed: {e}");
    }
    out
}

struct Shared(std::sync::Arc<dyn Collector>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Collector for Shared {
    fn encode(&self, enc: DescriptorEncoder) -> std::fmt::Result {
        self.0.encode(enc)
    }
}

struct WebCollector(std::sync::Arc<App>);

impl std::fmt::Debug for WebCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebCollector")
    }
}

type Rows = Vec<(Vec<(&'static str, String)>, f64)>;

fn family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: Rows,
) -> std::fmt::Result {
    let mut fam = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        let e = fam.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(v).encode(e)?,
            _ => ConstGauge::new(v).encode(e)?,
        }
    }
    Ok(())
}

impl Collector for WebCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let app = &self.0;
        let c = &app.counters;
        let one = |v: u64| vec![(Vec::new(), v as f64)];
        let (counter, gauge) = (MetricType::Counter, MetricType::Gauge);
        family(
            &mut enc,
            "km3mon_web_requests",
            "HTTP requests received.",
            counter,
            one(c.requests.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "km3mon_web_auth_failures",
            "Requests refused for missing or wrong credentials.",
            counter,
            one(c.auth_failures.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "km3mon_web_sse_clients",
            "Open server-sent-event streams.",
            gauge,
            one(c.sse_clients.load(Ordering::Relaxed)),
        )?;
        family(
            &mut enc,
            "km3mon_web_auth_enabled",
            "1 when HTTP Basic authentication is on.",
            gauge,
            one(app.cfg.auth.is_some() as u64),
        )?;
        let now = now_secs();
        let plots = app.plots.all();
        let plot = |p: &crate::plots::PlotInfo| vec![("plot", p.name.clone())];
        family(
            &mut enc,
            "km3mon_plot_age_seconds",
            "Seconds since the plot file was last written.",
            gauge,
            plots.iter().map(|p| (plot(p), now - p.updated)).collect(),
        )?;
        family(&mut enc, "km3mon_plot_data_timestamp_seconds",
            "Data time (Unix s) of the plot's newest data, from its NAME.json (else the file time).",
            gauge,
            plots.iter().map(|p| (plot(p), p.data_time.unwrap_or(p.updated))).collect())?;
        family(
            &mut enc,
            "km3mon_plot_stale",
            "1 when the plot is older than its stale_after.",
            gauge,
            plots
                .iter()
                .map(|p| {
                    let stale = now - p.updated > app.cfg.stale_after_for(&p.name).as_secs_f64();
                    (plot(p), stale as u64 as f64)
                })
                .collect(),
        )?;
        Ok(())
    }
}
