//! `.env` files (the original's docker-compose `.env`): the one beside the
//! site config, then the one in the working directory. Real environment
//! variables win over both, and the first file wins over the second.
//! Loaded before any thread starts.

use std::path::{Path, PathBuf};

/// The variables of the original's `example.env` and what km3mon does
/// with them; `None`: used only where a graph references `${NAME}`.
pub const ORIGINAL_ENV: &[(&str, Option<&str>)] = &[
    ("COMPOSE_PROJECT_NAME", Some("")),
    ("DETECTOR_ID", Some("the detector and run calibrations from the KM3NeT DB when no --detector / [Detector] file is given")),
    ("DAQ_LIGIER_IP", None),
    ("DAQ_LIGIER_PORT", None),
    ("LOG_LIGIER_IP", None),
    ("LOG_LIGIER_PORT", None),
    ("MONITORING_LIGIER_PORT", None),
    ("TAGS_TO_MIRROR", None),
    ("DETECTOR_MANAGER_IP", None),
    ("WEBSERVER_PORT", Some("the web server's port when [WebServer] bind is not set")),
    ("LOGGING_PORT", Some("")),
    ("KM3NET_DB_COOKIE", Some("the KM3NeT DB session id")),
];

/// Why a variable of the original has no use in km3mon.
fn unused_reason(name: &str) -> &'static str {
    match name {
        "COMPOSE_PROJECT_NAME" => "km3mon runs no containers",
        "LOGGING_PORT" => "the live log is a page of the web server (/livelog)",
        _ => "no node of this graph references it",
    }
}

/// The `.env` files for a site config, in priority order (existing only).
pub fn files(config: Option<&Path>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(c) = config {
        let dir = c
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        v.push(dir.join(".env"));
    }
    v.push(PathBuf::from(".env"));
    let mut out: Vec<PathBuf> = Vec::new();
    for p in v {
        let canon = std::fs::canonicalize(&p).ok();
        if p.is_file() && !out.iter().any(|q| std::fs::canonicalize(q).ok() == canon) {
            out.push(p);
        }
    }
    out
}

/// Loads the `.env` files (without overriding anything already set).
/// Must run before any other thread exists.
pub fn load(config: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let files = files(config);
    for f in &files {
        dotenvy::from_path(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
    }
    Ok(files)
}

/// The `--config` argument of the command line, before clap runs (the
/// `.env` beside it must be loaded before anything reads the environment).
pub fn config_arg(args: &[String]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// `km3mon check`'s report on the original's variables: value, source,
/// and what uses it (or that nothing does).
pub fn report(
    site: &pipeline::site::SiteConfig,
    graph_text: &str,
    loaded: &[PathBuf],
) -> Vec<String> {
    let mut lines = vec![if loaded.is_empty() {
        "environment (the original's .env variables; no .env file found):".to_string()
    } else {
        let names: Vec<String> = loaded.iter().map(|p| p.display().to_string()).collect();
        format!(
            "environment (the original's .env variables; read {}):",
            names.join(", ")
        )
    }];
    for (name, use_) in ORIGINAL_ENV {
        let value = match (std::env::var(name).ok(), site.env_default(name)) {
            (Some(v), _) if name.contains("COOKIE") => format!("set ({} characters)", v.len()),
            (Some(v), _) => format!("= {v:?}"),
            (None, Some(v)) => format!("= {v:?} ([env] of the site config)"),
            (None, None) => "not set".to_string(),
        };
        let used = match use_ {
            Some(u) if !u.is_empty() => Some(u.to_string()),
            Some(_) => None,
            None => graph_text
                .contains(&format!("${{{name}"))
                .then(|| "referenced by the graph".to_string()),
        };
        lines.push(match used {
            Some(u) => format!("  {name} {value}: used: {u}"),
            None => format!("  {name} {value}: unused ({})", unused_reason(name)),
        });
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_arg_forms() {
        let a = |v: &[&str]| config_arg(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            a(&["km3mon", "run", "--config", "x.toml"]),
            Some("x.toml".into())
        );
        assert_eq!(
            a(&["km3mon", "db", "--config=y.toml", "runs"]),
            Some("y.toml".into())
        );
        assert_eq!(a(&["km3mon", "run"]), None);
    }
}
