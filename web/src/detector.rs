//! The Detector page (`/detector.html`): the `detector_state` node's table
//! — DOMs per DU and alert condition — and a DOM map coloured by the
//! number of active conditions, live over server-sent events.
//!
//! The web crate does not know the pipeline: the table comes from the
//! control plane's `health` command through the status source's
//! [`Controller`](crate::Controller) (in-process for `km3mon run`, over the
//! control socket for `km3mon serve`), asked once a second; a change is
//! pushed to every open page.

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::pages::esc;
use crate::timefmt::iso;
use crate::App;

/// The page that shows each condition (the column headers link it).
const PLOTS: &[(&str, &str)] = &[
    ("dom_inactive", "plot_dom_activity.html"),
    ("time_sync", "plot_timesync.html"),
    ("hrv", "compact.html"),
];

/// The latest table and the channel that announces a new one.
pub(crate) struct Feed {
    last: RwLock<Arc<Value>>,
    tx: broadcast::Sender<Arc<Value>>,
}

impl Feed {
    pub(crate) fn new() -> Arc<Feed> {
        Arc::new(Feed {
            last: RwLock::new(Arc::new(
                json!({ "available": false, "error": "not asked yet" }),
            )),
            tx: broadcast::channel(16).0,
        })
    }
    pub(crate) fn current(&self) -> Arc<Value> {
        self.last.read().expect("detector feed").clone()
    }
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Value>> {
        self.tx.subscribe()
    }
}

/// What `health` answered, as the page's JSON.
fn ask(app: &App) -> Value {
    match app.status.controller() {
        None => json!({ "available": false, "error": "no pipeline attached to this server" }),
        Some(c) => {
            let r = c.execute("health", "web");
            if r.ok {
                let mut v = r.body.get("health").cloned().unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("available".into(), true.into());
                    m.insert("text".into(), r.text.into());
                }
                v
            } else {
                json!({ "available": false, "error": r.text })
            }
        }
    }
}

/// Asks every `every` and publishes changes, until shutdown.
pub(crate) async fn watch_health(app: Arc<App>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let a = app.clone();
        let Ok(v) = tokio::task::spawn_blocking(move || ask(&a)).await else {
            return;
        };
        let feed = &app.detector;
        if *feed.current() != v {
            let v = Arc::new(v);
            *feed.last.write().expect("detector feed") = v.clone();
            let _ = feed.tx.send(v);
        }
    }
}

/// The table and the map, drawn by the server (detector.js draws the same
/// from each pushed table).
pub(crate) fn render(app: &App) -> String {
    let v = app.detector.current();
    let mut h =
        String::from("<div class=\"container\"><h2>Detector</h2><div id=\"detector-root\">");
    h.push_str(&render_body(&v));
    h.push_str("</div></div>\n");
    h.push_str(&crate::pages::json_block("detector-data", &v));
    crate::pages::frame(&app.cfg, "detector", &h, &["detector.js"])
}

/// What a page receives on every change: the table and its rendering.
pub(crate) fn event_data(v: &Value) -> Value {
    json!({ "table": v, "html": render_body(v) })
}

fn render_body(v: &Value) -> String {
    let mut h = String::new();
    if v["available"] != true {
        let _ = write!(
            h,
            "<p class=\"muted\" id=\"detector-missing\">No detector table: {}</p>",
            esc(v["error"].as_str().unwrap_or(""))
        );
        return h;
    }
    let totals = v["totals"].as_object().cloned().unwrap_or_default();
    let conds: Vec<String> = v["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    let doms = v["doms"].as_array().map_or(0, Vec::len);
    let several = v["doms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["conditions"].as_array().map_or(0, Vec::len) >= 2)
        .count();
    let _ = write!(
        h,
        "<p id=\"detector-summary\">Data time {}: <b>{doms}</b> of {} DOMs with active conditions, {several} with several.</p>",
        v["time_utc"].as_f64().map_or("–".into(), iso),
        // Base modules (floor 0) are in the layout but are not DOMs.
        v["layout"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l[1].as_i64().is_some_and(|floor| floor > 0))
            .count(),
    );
    h.push_str("<table class=\"grid detector\" id=\"detector-table\"><tr><th>DU</th>");
    for c in &conds {
        match PLOTS.iter().find(|(k, _)| k == c) {
            Some((_, page)) => {
                let _ = write!(h, "<th><a href=\"{page}\">{}</a></th>", esc(c));
            }
            None => {
                let _ = write!(h, "<th>{}</th>", esc(c));
            }
        }
    }
    h.push_str("</tr>");
    if let Some(rows) = v["by_du"].as_object() {
        // JSON keys are text: "10" would sort before "2".
        let mut rows: Vec<(&String, &Value)> = rows.iter().collect();
        rows.sort_by_key(|(du, _)| du.parse::<u64>().unwrap_or(u64::MAX));
        for (du, row) in rows {
            let _ = write!(h, "<tr data-du=\"{}\"><th>DU {}</th>", esc(du), esc(du));
            for c in &conds {
                let n = row[c.as_str()].as_u64().unwrap_or(0);
                let _ = write!(
                    h,
                    "<td data-condition=\"{}\"{}>{}</td>",
                    esc(c),
                    if n > 0 { " class=\"bad\"" } else { "" },
                    if n > 0 { n.to_string() } else { "–".into() }
                );
            }
            h.push_str("</tr>");
        }
    }
    h.push_str("<tr class=\"total\"><th>all</th>");
    for c in &conds {
        let n = totals.get(c).and_then(Value::as_u64).unwrap_or(0);
        let _ = write!(h, "<td data-condition=\"{}\">{n}</td>", esc(c));
    }
    h.push_str("</tr></table>");
    h.push_str(&map(v));
    h
}

/// The DOM map: a column per DU, a cell per floor (top = highest),
/// coloured by the number of active conditions of the DOM.
fn map(v: &Value) -> String {
    let layout: Vec<(u64, i64, u64)> = v["layout"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l[0].as_u64()?, l[1].as_i64()?, l[2].as_u64()?)))
        .collect();
    let active: std::collections::HashMap<u64, Vec<String>> = v["doms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some((
                d["dom_id"].as_u64()?,
                d["conditions"]
                    .as_array()?
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect(),
            ))
        })
        .collect();
    let mut dus: Vec<u64> = layout.iter().map(|l| l.0).collect();
    dus.dedup();
    let floors = layout.iter().map(|l| l.1).max().unwrap_or(0).max(0);
    let (cw, ch) = (14, 10);
    let width = 40 + dus.len() * cw;
    let height = 20 + (floors as usize + 1) * ch;
    let mut s = format!(
        "<h3>DOM map</h3><p class=\"muted\">colour = number of active conditions: \
         <span class=\"n0\">0</span> <span class=\"n1\">1</span> <span class=\"n2\">2</span> <span class=\"n3\">3+</span></p>\
         <svg id=\"dom-map\" class=\"dom-map\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    for (i, du) in dus.iter().enumerate() {
        if dus.len() <= 40 || i % 5 == 0 {
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" font-size=\"8\">{du}</text>",
                40 + i * cw,
                height - 2
            );
        }
    }
    for (du, floor, dom) in &layout {
        let x = 40 + dus.iter().position(|d| d == du).unwrap_or(0) * cw;
        let y = 4 + (floors - floor) as usize * ch;
        let conds = active.get(dom).cloned().unwrap_or_default();
        let n = conds.len().min(3);
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{}\" class=\"n{n}\" data-dom=\"{dom}\" data-n=\"{}\"><title>DU {du} floor {floor} DOM {dom}{}</title></rect>",
            cw - 2,
            ch - 2,
            conds.len(),
            if conds.is_empty() {
                String::new()
            } else {
                format!(": {}", esc(&conds.join(", ")))
            }
        );
    }
    s.push_str("</svg>");
    s
}
