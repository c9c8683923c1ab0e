//! HTML of the pages: the original's frame (title, dark navigation bar,
//! UTC clock) around plot grids and the other pages. Plain strings: the
//! pages are few and small, a template engine would be the largest part.

use std::collections::BTreeMap;

use crate::config::WebConfig;
use crate::layout::{self, Cell};
use crate::plots::PlotInfo;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script type="application/json">` block: `</` must not
/// close the element early.
pub fn json_block(id: &str, v: &serde_json::Value) -> String {
    let text = serde_json::to_string(v)
        .unwrap_or_else(|_| "{}".into())
        .replace("</", "<\\/");
    format!("<script type=\"application/json\" id=\"{id}\">{text}</script>\n")
}

/// The original's menu, in its order; Live log and Status replace the
/// separate frontail port and the missing status view.
const NAV: &[(&str, &str)] = &[
    ("index", "Overview"),
    ("trigger", "Trigger"),
    ("daq", "DAQ"),
    ("acoustics", "Acoustics"),
    ("ahrs", "AHRS"),
    ("rttc", "RTTC"),
    ("reco", "Reco"),
    ("sn", "SN"),
    ("top10", "Top10"),
    ("compact", "CMPCT"),
    ("logs", "Logs"),
    ("detector", "Detector"),
    ("live", "Live log"),
    ("status", "Status"),
];

/// The whole page around `body`. `active` is the page name of the menu
/// entry to highlight; `scripts` are file names under `static/`.
pub fn frame(cfg: &WebConfig, active: &str, body: &str, scripts: &[&str]) -> String {
    let mut nav = String::new();
    for (page, label) in NAV {
        let cls = if *page == active {
            " class=\"active\""
        } else {
            ""
        };
        nav.push_str(&format!(
            "<li{cls}><a href=\"{page}.html\">{label}</a></li>"
        ));
    }
    nav.push_str(&format!(
        "<li><a href=\"{}\" rel=\"noopener noreferrer\">Issues</a></li>",
        esc(&cfg.issues_url)
    ));
    let mut js = String::new();
    for s in std::iter::once(&"app.js").chain(scripts) {
        js.push_str(&format!("<script src=\"static/{s}\"></script>\n"));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>KM3Mon Detector Monitor</title>\
         <link rel=\"stylesheet\" href=\"static/app.css\"></head>\n\
         <body class=\"page-{active}\"><nav class=\"navbar\"><a class=\"brand\" href=\"index.html\">KM3Mon</a>\
         <ul class=\"menu\">{nav}</ul><span id=\"utc-clock\" class=\"clock\"></span></nav>\n\
         <main>{body}</main>\n{js}</body></html>\n"
    )
}

/// Page data the scripts need: the plots known now, the page's wildcards
/// (a new match reloads the page), staleness limits and the server clock.
fn page_data(cfg: &WebConfig, plots: &[PlotInfo], patterns: &[String]) -> serde_json::Value {
    let map: BTreeMap<&str, &PlotInfo> = plots.iter().map(|p| (p.name.as_str(), p)).collect();
    serde_json::json!({
        "plots": map,
        "patterns": patterns,
        "stale": {
            "default": cfg.stale_after.as_secs(),
            "overrides": cfg.stale_overrides.iter()
                .map(|(p, d)| (p.clone(), d.as_secs())).collect::<Vec<_>>(),
        },
        "now": crate::timefmt::now_secs(),
    })
}

fn figure(name: &str, info: Option<&PlotInfo>, big: bool) -> String {
    let n = esc(name);
    let link = if big {
        format!("plots/{n}.png")
    } else {
        format!("plot_{n}.html")
    };
    let inner = match info {
        Some(p) => format!("<img src=\"plots/{}?v={}\" alt=\"{n}\">", esc(&p.file), p.v),
        None => format!(
            "<div class=\"placeholder\"><b>{n}</b><br>no plot yet: the monitor has not written \
             <code>{n}.png</code></div>"
        ),
    };
    let cls = if info.is_some() {
        "plot"
    } else {
        "plot missing"
    };
    format!(
        "<figure class=\"{cls}\" data-plot=\"{n}\"><a href=\"{link}\">{inner}</a>\
         <figcaption><span class=\"pname\">{n}</span> <span class=\"ptime\"></span></figcaption></figure>"
    )
}

/// A plot grid page.
pub fn grid(cfg: &WebConfig, page: &str, plots: &[PlotInfo]) -> Option<String> {
    let p = cfg.pages.get(page)?;
    let names: Vec<String> = plots.iter().map(|p| p.name.clone()).collect();
    let by_name: BTreeMap<&str, &PlotInfo> = plots.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut body = String::new();
    if let Some(b) = &p.banner {
        body.push_str(&format!("<div class=\"banner info\">{}</div>\n", esc(b)));
    }
    let patterns: Vec<String> = p
        .rows
        .iter()
        .flatten()
        .filter(|c| c.contains('*'))
        .cloned()
        .collect();
    for row in layout::expand(&p.rows, &names) {
        // At most 6 plots side by side; longer rows (30 DUs) wrap.
        let cols = row.len().clamp(1, 6);
        body.push_str(&format!("<div class=\"grid-row\" style=\"--cols:{cols}\">"));
        for cell in row {
            match cell {
                Cell::Plot(n) => body.push_str(&figure(&n, by_name.get(n.as_str()).copied(), false)),
                Cell::Pending(pat) => body.push_str(&format!(
                    "<figure class=\"plot missing\" data-pattern=\"{0}\"><div class=\"placeholder\">\
                     <b>{0}</b><br>no matching plot yet</div></figure>",
                    esc(&pat)
                )),
            }
        }
        body.push_str("</div>\n");
    }
    body.push_str(&json_block("page-data", &page_data(cfg, plots, &patterns)));
    Some(frame(cfg, page, &body, &["plots.js"]))
}

/// `/plot_<name>.html`: one plot, full width, linked to the PNG.
pub fn single(cfg: &WebConfig, name: &str, plots: &[PlotInfo]) -> String {
    let info = plots.iter().find(|p| p.name == name);
    let mut body = String::from("<div class=\"grid-row single\" style=\"--cols:1\">");
    body.push_str(&figure(name, info, true));
    body.push_str("</div>\n");
    body.push_str(&json_block("page-data", &page_data(cfg, plots, &[])));
    frame(cfg, "", &body, &["plots.js"])
}

pub fn live(cfg: &WebConfig) -> String {
    let body = "<div class=\"livebar\"><span id=\"live-state\">connecting…</span> \
        <label><input type=\"checkbox\" id=\"follow\" checked> follow</label> \
        <input type=\"search\" id=\"filter\" placeholder=\"filter\"> \
        <a href=\"logs/MSG.log\">MSG.log</a></div>\
        <div id=\"livelog\" class=\"livelog\"></div>\n";
    frame(cfg, "live", body, &["live.js"])
}

pub fn not_found(cfg: &WebConfig, what: &str) -> String {
    let body = format!(
        "<div class=\"container\"><div class=\"banner warn\">Not found: {}</div></div>",
        esc(what)
    );
    frame(cfg, "", &body, &[])
}

/// `/plot_<name>.html` names: plain file stems only.
pub fn valid_plot_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 200
        && !n.starts_with('.')
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn escapes_and_blocks() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let b = json_block("d", &serde_json::json!({"x": "</script><b>"}));
        assert!(!b[..b.len() - 10].contains("</script><b>"));
    }

    #[test]
    fn grid_has_placeholders_and_order() {
        let cfg = WebConfig::for_output(Path::new("/nonexistent"));
        let mk = |n: &str| PlotInfo {
            name: n.into(),
            file: format!("{n}.png"),
            v: 1,
            updated: 0.0,
            data_time: None,
            det_id: None,
            size: 1,
            removed: false,
        };
        let plots = vec![mk("pmt_rates_du10"), mk("pmt_rates_du2"), mk("dom_rates")];
        let html = grid(&cfg, "index", &plots).unwrap();
        let a = html.find("data-plot=\"pmt_rates_du2\"").unwrap();
        let b = html.find("data-plot=\"pmt_rates_du10\"").unwrap();
        assert!(a < b);
        assert!(html.contains("plot missing\" data-plot=\"dom_activity\""));
        assert!(html.contains("<title>KM3Mon Detector Monitor</title>"));
        assert!(grid(&cfg, "nope", &plots).is_none());
        let rttc = grid(&cfg, "rttc", &plots).unwrap();
        assert!(rttc.contains("TX_Slave + RX_Slave + TX_Master + RX_Master"));
        assert!(valid_plot_name("pmt_rates_du2"));
        assert!(!valid_plot_name("../x"));
        assert!(!valid_plot_name("a/b"));
    }
}
