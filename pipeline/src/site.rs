//! The site config (`pipeline.toml`): the original's sections and keys
//! (`[DOMRates]`, `[TriggerRate]`, …), an `[env]` table of defaults for the
//! environment variables the original's `.env` provided, and
//! `[Detector] file`. Graphs reference it with `"@config.Section.key"`.
//!
//! Without `--config` the values of the shipped `pipeline.toml.example`
//! apply (it is compiled in).

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diag::{Diagnostic, Diagnostics, SourceFile};

/// The shipped example, used when no `--config` is given.
pub const EXAMPLE: &str = include_str!("../../pipeline.toml.example");
pub const EXAMPLE_NAME: &str = "pipeline.toml.example (built in)";

pub struct SiteConfig {
    pub src: SourceFile,
    /// Directory relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    table: DeTable<'static>,
}

impl SiteConfig {
    pub fn example() -> SiteConfig {
        SiteConfig::parse(EXAMPLE_NAME, EXAMPLE.to_string(), PathBuf::from("."))
            .expect("the built-in example parses")
    }

    /// The built-in example, parsed once: where a graph's `@config` key
    /// that a site config lacks takes its value from (the original's
    /// files predate keys such as `[DOMActivity] inactive_after`).
    pub fn builtin() -> &'static SiteConfig {
        static EX: std::sync::OnceLock<SiteConfig> = std::sync::OnceLock::new();
        EX.get_or_init(SiteConfig::example)
    }

    /// Whether this is the built-in example itself.
    pub fn is_builtin(&self) -> bool {
        self.src.name == EXAMPLE_NAME
    }

    /// Every `(section, key)` of the file (sub-tables as keys too).
    pub fn keys(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (sec, v) in self.table.iter() {
            if let Some(t) = v.get_ref().as_table() {
                for (k, _) in t.iter() {
                    out.push((sec.get_ref().to_string(), k.get_ref().to_string()));
                }
            }
        }
        out
    }

    pub fn load(path: &Path) -> Result<SiteConfig, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: path.display().to_string(),
                line: 1,
                column: 1,
                path: String::new(),
                message: format!("cannot read site config: {e}"),
            }])
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        SiteConfig::parse(&path.display().to_string(), text, base)
    }

    pub fn parse(name: &str, text: String, base_dir: PathBuf) -> Result<SiteConfig, Diagnostics> {
        // Parsed once per process; leaking keeps the spanned tree simple.
        let text: &'static str = Box::leak(text.into_boxed_str());
        let src = SourceFile::new(name, text);
        let (table, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            let mut d = Diagnostics::default();
            for e in errors {
                d.push(Diagnostic::at(
                    &src,
                    e.span().unwrap_or(0..0),
                    "",
                    e.message().to_string(),
                ));
            }
            return Err(d);
        }
        let mut diags = Diagnostics::default();
        let table = table.into_inner();
        for (k, v) in table.iter() {
            if !v.get_ref().is_table() {
                diags.push(Diagnostic::at(
                    &src,
                    k.span(),
                    k.get_ref().as_ref(),
                    "top-level keys of the site config must be sections ([Section])",
                ));
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        let mut table = table;
        // The original's containers saw the host's data/ as /data: its
        // `/data/monitoring.sqlite3` is data/monitoring.sqlite3 under --out.
        if let Some(DeValue::Table(t)) = table.get_mut("LocalDBService").map(Spanned::get_mut) {
            if let Some(v) = t.get_mut("filename") {
                if let DeValue::String(f) = v.get_mut() {
                    if let Some(rel) = original_container_path(f) {
                        *f = rel.into();
                    }
                }
            }
        }
        Ok(SiteConfig {
            src,
            base_dir,
            table,
        })
    }

    /// `[section] key`, with its span in this file.
    pub fn get(&self, section: &str, key: &str) -> Option<&Spanned<DeValue<'static>>> {
        self.table.get(section)?.get_ref().as_table()?.get(key)
    }

    /// A whole `[section]`, with its span in this file.
    pub fn section(&self, section: &str) -> Option<&Spanned<DeValue<'static>>> {
        self.table.get(section)
    }

    /// Default for an environment variable from the `[env]` table.
    pub fn env_default(&self, name: &str) -> Option<String> {
        let v = self.get("env", name)?;
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Integer(i) => Some(i.as_str().to_string()),
            DeValue::Float(f) => Some(f.as_str().to_string()),
            DeValue::Boolean(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// `[Detector] file`, resolved against the config's directory.
    pub fn detector_file(&self) -> Option<PathBuf> {
        let v = self.get("Detector", "file")?;
        let s = v.get_ref().as_str()?;
        if s.is_empty() {
            return None;
        }
        Some(self.base_dir.join(s))
    }

    /// A location in this file, for messages that mention where a value came from.
    pub fn location(&self, span: std::ops::Range<usize>) -> String {
        let (l, c) = self.src.line_col(span.start);
        format!("{}:{}:{}", self.src.name, l, c)
    }
}

/// A path of the original's backend container under its data volume
/// (`/data/…`) as the same file under km3mon's `--out` (`data/…`).
pub fn original_container_path(path: &str) -> Option<String> {
    path.strip_prefix("/data/")
        .filter(|r| !r.is_empty())
        .map(|r| format!("data/{r}"))
}

/// Looks an environment variable up: the process environment first, then
/// the site config's `[env]` table.
pub fn lookup_env(site: &SiteConfig, name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| site.env_default(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_has_the_original_sections() {
        let s = SiteConfig::example();
        for (sec, key) in [
            ("DOMRates", "lowest_rate"),
            ("DOMRates", "highest_rate"),
            ("PMTRates", "hrv_ratio_threshold"),
            ("TriggerRate", "interval"),
            ("TriggerMap", "max_events"),
            ("ZTPlot", "min_dus"),
            ("Alerts", "enabled"),
            ("WebServer", "username"),
            ("LocalDBService", "filename"),
            ("TimesliceRate", "interval"),
            ("env", "DAQ_LIGIER_IP"),
        ] {
            assert!(
                s.get(sec, key).is_some(),
                "[{sec}] {key} missing from pipeline.toml.example"
            );
        }
    }
}
