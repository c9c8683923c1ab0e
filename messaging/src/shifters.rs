//! Who is on shift: the names alert texts mention and the chatbot lets
//! query the status.
//!
//! The initial list is `[Alerts] shifters` of the site config. The chat
//! command `shifters are …` stores its change in a small JSON state file
//! beside the site config (`km3mon-shifters.json`), written atomically with
//! who set it and when. The original rewrote the whole `pipeline.toml`
//! instead, losing its comments and layout **[quirk, fixed]**: the user's
//! file is never written here.
//!
//! The file remembers the config value it overrides; when the config's
//! `shifters` is edited by hand later, the config wins again (the newer
//! decision), and the file is ignored until the next chat change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::config;

/// File name of the state file (beside the site config).
pub const FILE_NAME: &str = "km3mon-shifters.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftersFile {
    pub shifters: Vec<String>,
    /// Chat user who set them.
    pub set_by: String,
    /// When, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub set_at: String,
    /// `[Alerts] shifters` of the site config when they were set.
    pub config_shifters: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct State {
    names: Vec<String>,
    set_by: Option<String>,
    set_at: Option<String>,
}

/// The shared shifters list (`Arc<Shifters>`): the chatbot writes it, alert
/// routing reads it for every message.
#[derive(Debug)]
pub struct Shifters {
    state: RwLock<State>,
    path: Option<PathBuf>,
    config_names: Vec<String>,
}

impl Shifters {
    /// Where the state file lives: beside the site config, or in the state
    /// directory when the built-in example config is used.
    pub fn path_for(site_config: Option<&Path>, state_dir: Option<&Path>) -> Option<PathBuf> {
        match (site_config, state_dir) {
            (Some(cfg), _) => Some(
                cfg.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .join(FILE_NAME),
            ),
            (None, Some(dir)) => Some(dir.join(FILE_NAME)),
            (None, None) => None,
        }
    }

    /// The shifters from `initial` (the site config), or from the state
    /// file at `path` when it overrides the same config value. An
    /// unreadable file is reported and ignored (the config still names
    /// someone).
    pub fn open(path: Option<PathBuf>, initial: &config::Shifters) -> Arc<Shifters> {
        let config_names = initial.names();
        let mut state = State {
            names: config_names.clone(),
            ..State::default()
        };
        if let Some(p) = &path {
            match std::fs::read(p) {
                Ok(bytes) => match serde_json::from_slice::<ShiftersFile>(&bytes) {
                    Ok(f) if f.config_shifters == config_names => {
                        state = State {
                            names: f.shifters,
                            set_by: Some(f.set_by),
                            set_at: Some(f.set_at),
                        };
                    }
                    Ok(_) => tracing::info!(
                        "shifters: [Alerts] shifters was edited since {} was written; using the config's",
                        p.display()
                    ),
                    Err(e) => tracing::warn!("shifters: ignoring {}: {e}", p.display()),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("shifters: cannot read {}: {e}", p.display()),
            }
        }
        Arc::new(Shifters {
            state: RwLock::new(state),
            path,
            config_names,
        })
    }

    /// A list held in memory only (tests, `km3mon run` without a place to
    /// store it).
    pub fn in_memory(names: &[&str]) -> Arc<Shifters> {
        let list = config::Shifters::List(names.iter().map(|s| s.to_string()).collect());
        Shifters::open(None, &list)
    }

    pub fn names(&self) -> Vec<String> {
        self.read().names.clone()
    }

    /// Exact name match (the original tested for a substring of one string
    /// **[quirk, fixed]**: `bob` was a shifter when `bobby` was).
    pub fn contains(&self, user: &str) -> bool {
        self.read().names.iter().any(|n| n == user)
    }

    /// `a, b and c` (or `nobody`), for replies and alert texts.
    pub fn display(&self) -> String {
        join_names(&self.names())
    }

    /// `@a @b`: what alert texts start with so that the chat notifies them.
    pub fn mentions(&self) -> String {
        self.names()
            .iter()
            .map(|n| format!("@{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Who set the current list and when, if it came from the chat.
    pub fn provenance(&self) -> Option<(String, String)> {
        let s = self.read();
        Some((s.set_by.clone()?, s.set_at.clone()?))
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Sets the list (in memory at once, then in the state file). The
    /// memory copy is kept even when the file cannot be written; the error
    /// says so.
    pub fn set(&self, names: Vec<String>, by: &str) -> std::io::Result<()> {
        let at = utc_now();
        {
            let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
            *s = State {
                names: names.clone(),
                set_by: Some(by.to_string()),
                set_at: Some(at.clone()),
            };
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = ShiftersFile {
            shifters: names,
            set_by: by.to_string(),
            set_at: at,
            config_shifters: self.config_names.clone(),
        };
        let mut body = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        body.push(b'\n');
        atomicfile::write(path, &body)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// `a`, `a and b`, `a, b and c`; `nobody` for none.
pub fn join_names(names: &[String]) -> String {
    match names {
        [] => "nobody".into(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Now, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    utc_string(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_string(secs: i64) -> String {
    timefmt::iso(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("km3mon-shifters-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(utc_string(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_string(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_string(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn exact_names_not_substrings() {
        let s = Shifters::open(None, &config::Shifters::Legacy("bobby and cnorris".into()));
        assert!(s.contains("bobby"));
        assert!(!s.contains("bob"));
        assert!(!s.contains("and"));
        assert_eq!(s.display(), "bobby and cnorris");
        assert_eq!(s.mentions(), "@bobby @cnorris");
    }

    #[test]
    fn set_writes_the_state_file_and_survives_a_restart() {
        let dir = scratch("restart");
        let path = Shifters::path_for(Some(&dir.join("pipeline.toml")), None).unwrap();
        assert_eq!(path, dir.join(FILE_NAME));
        let initial = config::Shifters::List(vec!["alice".into()]);
        let s = Shifters::open(Some(path.clone()), &initial);
        s.set(vec!["bob".into(), "carol".into()], "op1").unwrap();
        let f: ShiftersFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(f.shifters, ["bob", "carol"]);
        assert_eq!(f.set_by, "op1");
        assert_eq!(f.config_shifters, ["alice"]);
        // No temp file left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

        let again = Shifters::open(Some(path.clone()), &initial);
        assert_eq!(again.names(), ["bob", "carol"]);
        assert_eq!(again.provenance().unwrap().0, "op1");

        // The config was edited by hand since: it wins.
        let edited = config::Shifters::List(vec!["dave".into()]);
        assert_eq!(Shifters::open(Some(path), &edited).names(), ["dave"]);
    }

    #[test]
    fn a_corrupt_state_file_falls_back_to_the_config() {
        let dir = scratch("corrupt");
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, b"{not json").unwrap();
        let s = Shifters::open(Some(path), &config::Shifters::List(vec!["alice".into()]));
        assert_eq!(s.names(), ["alice"]);
    }
}
