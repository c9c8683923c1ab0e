//! Last good answers on disk (spec §1.7: cache aggressively), so that a
//! station that loses its link keeps running on them. One file per
//! answer, written atomically; the file's mtime is the answer's age.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

/// A cached answer and its age.
pub struct Entry {
    pub text: String,
    pub age: Duration,
    pub path: PathBuf,
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    pub fn get(&self, key: &str) -> Option<Entry> {
        let path = self.path(key);
        let text = std::fs::read_to_string(&path).ok()?;
        let age = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        Some(Entry { text, age, path })
    }

    /// Stores `text` under `key` (a relative path); errors are logged, a
    /// cache that cannot be written only costs requests.
    pub fn put(&self, key: &str, text: &str) {
        let path = self.path(key);
        if let Err(e) = atomicfile::write(&path, text.as_bytes()) {
            tracing::warn!("DB cache {}: {e}", path.display());
        }
    }
}

/// "3 h", "2 d": ages in messages.
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}
