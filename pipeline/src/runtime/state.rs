//! Operator state that survives a restart.
//!
//! Each worker writes its part of a node's keyed state to
//! `STATE_DIR/<node>.w<worker>.json` (temp file + rename, so a crash never
//! leaves half a file). On start every worker reads all parts and keeps the
//! keys it owns, so a restart with a different number of workers still
//! finds every key.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::io::write_atomic;

pub struct StateStore {
    dir: Option<PathBuf>,
    node: String,
    worker: usize,
    peers: usize,
    interval: Duration,
    last_save: Cell<Instant>,
    /// Parts of workers this run does not have (an earlier run had more)
    /// are removed at worker 0's first save: they would be loaded again,
    /// stale, by the next run.
    pruned: Cell<bool>,
    /// Saves failing since: logged at the first failure and at recovery
    /// only (a full disk would fail every save of every interval).
    failing: Cell<u64>,
}

impl StateStore {
    pub fn new(
        dir: Option<PathBuf>,
        node: &str,
        worker: usize,
        peers: usize,
        interval: Duration,
    ) -> StateStore {
        StateStore {
            dir,
            node: node.to_string(),
            worker,
            peers,
            interval,
            last_save: Cell::new(Instant::now()),
            pruned: Cell::new(false),
            failing: Cell::new(0),
        }
    }

    /// A store of the same node for another part of its state (the
    /// shell's timers): files `<node>~<what>.w<k>.json`, which the node's
    /// own `load_all` does not read.
    pub fn part(&self, what: &str) -> StateStore {
        StateStore::new(
            self.dir.clone(),
            &format!("{}~{what}", self.node),
            self.worker,
            self.peers,
            self.interval,
        )
    }

    /// Starts the next save interval (the shell calls it after asking
    /// the monitor to save, whether or not the monitor wrote anything).
    pub fn mark_saved(&self) {
        self.last_save.set(Instant::now());
    }

    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// This node's part files, with the worker that wrote each.
    fn parts(&self) -> Vec<(usize, PathBuf)> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let prefix = format!("{}.w", self.node);
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter_map(|p| {
                let n = p.file_name()?.to_str()?;
                let w = n
                    .strip_prefix(&prefix)?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((w, p))
            })
            .collect();
        files.sort();
        files
    }

    /// Every key saved by any worker of the previous run.
    pub fn load_all<V: DeserializeOwned>(&self) -> BTreeMap<String, V> {
        let mut out = BTreeMap::new();
        for (_, f) in self.parts() {
            match std::fs::read(&f).map_err(|e| e.to_string()).and_then(|b| {
                serde_json::from_slice::<BTreeMap<String, V>>(&b).map_err(|e| e.to_string())
            }) {
                Ok(part) => out.extend(part),
                Err(e) => tracing::warn!("ignoring unreadable state file {}: {e}", f.display()),
            }
        }
        out
    }

    /// True when the save interval has passed since the last save.
    pub fn due(&self) -> bool {
        self.enabled() && self.last_save.get().elapsed() >= self.interval
    }

    /// Writes this worker's part atomically.
    pub fn save<V: Serialize>(&self, part: &BTreeMap<String, V>) {
        let Some(dir) = &self.dir else { return };
        self.last_save.set(Instant::now());
        if self.worker == 0 && self.peers > 0 && !self.pruned.replace(true) {
            for (w, f) in self.parts() {
                if w >= self.peers {
                    let _ = std::fs::remove_file(f);
                }
            }
        }
        let path = dir.join(format!("{}.w{}.json", self.node, self.worker));
        // Compact: a large detector's saved windows and waterfalls are
        // millions of numbers (pretty JSON would put each on a line).
        let result = serde_json::to_vec(part)
            .map_err(std::io::Error::other)
            .and_then(|b| write_atomic(&path, &b));
        match result {
            Err(e) => {
                if self.failing.get() == 0 {
                    tracing::error!(
                        "cannot write state {}: {e} (kept in memory; retried every save, logged again when it works)",
                        path.display()
                    );
                }
                self.failing.set(self.failing.get() + 1);
            }
            Ok(()) if self.failing.get() > 0 => {
                tracing::info!(
                    "state {} written again after {} failed save(s)",
                    path.display(),
                    self.failing.get()
                );
                self.failing.set(0);
            }
            Ok(()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_all_workers_are_merged_on_load() {
        let dir = std::env::temp_dir().join(format!("km3mon-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let w0 = StateStore::new(Some(dir.clone()), "n", 0, 2, Duration::ZERO);
        let w1 = StateStore::new(Some(dir.clone()), "n", 1, 2, Duration::ZERO);
        w0.save(&BTreeMap::from([("a".to_string(), 1u32)]));
        w1.save(&BTreeMap::from([("b".to_string(), 2u32)]));
        let other = StateStore::new(Some(dir.clone()), "nn", 0, 1, Duration::ZERO);
        other.save(&BTreeMap::from([("z".to_string(), 9u32)]));
        let merged: BTreeMap<String, u32> =
            StateStore::new(Some(dir.clone()), "n", 0, 1, Duration::ZERO).load_all();
        assert_eq!(
            merged,
            BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parts_of_workers_a_run_does_not_have_are_removed_at_its_first_save() {
        let dir = std::env::temp_dir().join(format!("km3mon-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for w in 0..3 {
            let s = StateStore::new(Some(dir.clone()), "n", w, 3, Duration::ZERO);
            s.save(&BTreeMap::from([(format!("k{w}"), w)]));
        }
        // The shell's timers are a part of their own, not read as the node's.
        let timers = StateStore::new(Some(dir.clone()), "n", 0, 3, Duration::ZERO).part("timers");
        timers.save(&BTreeMap::from([("w0".to_string(), vec![5u64])]));
        let one = StateStore::new(Some(dir.clone()), "n", 0, 1, Duration::ZERO);
        assert_eq!(one.load_all::<usize>().len(), 3);
        one.save(&BTreeMap::from([("k0".to_string(), 0usize)]));
        assert_eq!(
            one.load_all::<usize>(),
            BTreeMap::from([("k0".to_string(), 0)])
        );
        assert_eq!(timers.load_all::<Vec<u64>>()["w0"], [5]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
