//! `km3mon check --config`: what of a site config km3mon does not use, and
//! what it fills in. An original km3mon `pipeline.toml` is accepted as it
//! is; each key that has no effect here gets one warning naming what
//! replaces it, each key the graph needs but the file lacks a note with the
//! built-in default.

use std::collections::BTreeSet;
use std::path::Path;

use pipeline::site::SiteConfig;
use toml::de::DeValue;

/// Keys km3mon reads outside the graph (web server, detector, `[env]`).
fn read_by_km3mon(section: &str, key: &str) -> bool {
    matches!(
        (section, key),
        ("WebServer", _)
            | ("env", _)
            | ("Detector", "file")
            | ("LocalDBService", "filename")
            | ("ZTPlot", "event_selection_table")
    )
}

/// What replaces an original key that has no effect here.
fn replacement(section: &str, key: &str) -> String {
    match (section, key) {
        ("PMTRates", "plot_path") => "plots are written under --out/plots (the web reads [WebServer] plots_dir)".into(),
        ("TriggerRate", "data_path") => "data files are written under --out/data".into(),
        ("TimesliceRate", "filename" | "with_minor_ticks") => {
            "the timeslice_rates node draws timeslice_rates.png and timeslice_rates_lin.png".into()
        }
        ("RecoPlotter", _) => {
            "the royfit node ([ROyFit]) replaces the original's reco container; it fits every event that passes its cuts ([ROyFit] fraction)".into()
        }
        _ => "no node of the graph reads it (a typo? graphs read keys as \"@config.Section.key\")".into(),
    }
}

/// `"@config.Section.key"` and `"@config.Section"` references of a graph.
fn references(graph_text: &str) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let (mut keys, mut sections) = (BTreeSet::new(), BTreeSet::new());
    for part in graph_text.split("\"@config.").skip(1) {
        let Some(r) = part.split('"').next() else {
            continue;
        };
        match r.split_once('.') {
            Some((s, k)) => keys.insert((s.to_string(), k.to_string())),
            None => sections.insert(r.to_string()),
        };
    }
    (keys, sections)
}

fn show(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("{s:?}"),
        DeValue::Integer(i) => i.as_str().to_string(),
        DeValue::Float(f) => f.as_str().to_string(),
        DeValue::Boolean(b) => b.to_string(),
        _ => "(a table or array)".into(),
    }
}

/// The warnings and notes for `config` checked with `graph_text`.
pub fn notes(config: &Path, site: &SiteConfig, graph_text: &str) -> Vec<String> {
    let name = config.display();
    let (refs, sections) = references(graph_text);
    let mut out = Vec::new();
    for (s, k) in site.keys() {
        if sections.contains(&s) || refs.contains(&(s.clone(), k.clone())) || read_by_km3mon(&s, &k)
        {
            continue;
        }
        out.push(format!(
            "warning: {name}: [{s}] {k} has no effect: {}",
            replacement(&s, &k)
        ));
    }
    let builtin = SiteConfig::builtin();
    for (s, k) in &refs {
        if site.get(s, k).is_none() {
            if let Some(v) = builtin.get(s, k) {
                out.push(format!(
                    "note: {name}: [{s}] {k} not set: the built-in default {} applies",
                    show(v.get_ref())
                ));
            }
        }
    }
    let raw: toml::Table = std::fs::read_to_string(config)
        .ok()
        .and_then(|t| toml::from_str(&t).ok())
        .unwrap_or_default();
    let get = |s: &str, k: &str| raw.get(s).and_then(|t| t.get(k));
    if let Some(f) = get("LocalDBService", "filename").and_then(|v| v.as_str()) {
        if let Some(rel) = pipeline::site::original_container_path(f) {
            out.push(format!(
                "warning: {name}: [LocalDBService] filename = {f:?} is the original container's data volume: read as {rel:?} under --out (write that to silence this)"
            ));
        }
    }
    let alerts = raw.get("Alerts").and_then(|a| a.as_table());
    if let Some(a) = alerts {
        let enabled = a.get("enabled").and_then(|v| v.as_bool()) == Some(true);
        if enabled && !a.contains_key("chat") {
            let url = messaging::config::ORIGINAL_CHAT_URL;
            if a.contains_key("password") {
                let bot = a
                    .get("botname")
                    .and_then(|v| v.as_str())
                    .unwrap_or("monitoring");
                out.push(format!(
                    "note: {name}: [Alerts] is enabled without [Alerts.chat]: as in the original, alerts go to {url} as the REST bot `{bot}` \
                     with [Alerts] password (an [Alerts.chat] table chooses another server, mode = \"off\" turns it off; \
                     password_env = \"KM3MON_CHAT_PASSWORD\" keeps the password out of the file)"
                ));
            } else {
                out.push(format!(
                    "warning: {name}: [Alerts] is enabled without [Alerts.chat] and without the bot's password: no chat. \
                     The original posted to {url}; add [Alerts] password (or [Alerts.chat] mode = \"rest\", url = \"{url}\", password_env = \"KM3MON_CHAT_PASSWORD\")"
                ));
            }
        }
        if a.get("shifters").is_some_and(|v| v.is_str()) {
            out.push(format!(
                "note: {name}: [Alerts] shifters is the original's single string: read as a list of names (`shifters = [\"a\", \"b\"]` is the new form)"
            ));
        }
    }
    if get("WebServer", "password").is_some() {
        out.push(format!(
            "note: {name}: [WebServer] password sits in the file: `password_env = \"KM3MON_WEB_PASSWORD\"` reads it from the site's .env instead"
        ));
    }
    if let Err(e) = web::WebConfig::load(config, None) {
        out.push(format!("warning: {name}: web pages: {e:#}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references() {
        let (k, s) = references("a = \"@config.DOMRates.interval\"\nb = \"@config.Alerts\"\n");
        assert!(k.contains(&("DOMRates".into(), "interval".into())));
        assert!(s.contains("Alerts"));
    }
}
