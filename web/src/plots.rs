//! Watches the plot directory by polling modification times (portable,
//! and a scan of a few hundred files per second costs nothing) and tells
//! the browsers over server-sent events when a plot changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::timefmt;

/// What the pages know about one plot.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlotInfo {
    pub name: String,
    /// File below the plot directory, e.g. `dom_rates.png`.
    pub file: String,
    /// Version for cache busting: the PNG's mtime in ms.
    pub v: u64,
    /// When the PNG was last written (Unix s).
    pub updated: f64,
    /// Time of the data shown (Unix s), from `NAME.json` `time_utc`.
    pub data_time: Option<f64>,
    pub det_id: Option<serde_json::Value>,
    pub size: u64,
    /// Set in change events for a plot that disappeared.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

pub struct PlotIndex {
    dir: PathBuf,
    plots: RwLock<BTreeMap<String, PlotInfo>>,
    tx: broadcast::Sender<Arc<Vec<PlotInfo>>>,
}

/// The `NAME.json` written beside a plot; any other key is ignored.
fn read_meta(path: &Path) -> (Option<f64>, Option<serde_json::Value>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (None, None);
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return (None, None);
    };
    let t = v.get("time_utc").and_then(timefmt::parse_time);
    (t, v.get("det_id").cloned())
}

/// Plot name of a directory entry, if it is a finished plot (atomic
/// writers' `<name>_tmp.png` and hidden files are not).
fn plot_name(file: &str) -> Option<&str> {
    let stem = file.strip_suffix(".png")?;
    if stem.is_empty() || stem.starts_with('.') || stem.ends_with("_tmp") {
        return None;
    }
    Some(stem)
}

fn scan(dir: &Path, old: &BTreeMap<String, PlotInfo>) -> BTreeMap<String, PlotInfo> {
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let fname = e.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        let Some(name) = plot_name(fname) else {
            continue;
        };
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let updated = timefmt::mtime_secs(&meta);
        let v = (updated * 1000.0) as u64;
        let json = dir.join(format!("{name}.json"));
        let json_mtime = std::fs::metadata(&json)
            .map(|m| (timefmt::mtime_secs(&m) * 1000.0) as u64)
            .unwrap_or(0);
        // Re-read NAME.json only when the plot or the file itself changed.
        let (data_time, det_id) = match old.get(name) {
            Some(p) if p.v == v && p.size == meta.len() && json_mtime <= p.v => {
                (p.data_time, p.det_id.clone())
            }
            _ => read_meta(&json),
        };
        out.insert(
            name.to_string(),
            PlotInfo {
                name: name.to_string(),
                file: fname.to_string(),
                v: v.max(json_mtime),
                updated,
                data_time,
                det_id,
                size: meta.len(),
                removed: false,
            },
        );
    }
    out
}

impl PlotIndex {
    pub fn new(dir: PathBuf) -> Arc<PlotIndex> {
        let plots = scan(&dir, &BTreeMap::new());
        let (tx, _) = broadcast::channel(256);
        Arc::new(PlotIndex {
            dir,
            plots: RwLock::new(plots),
            tx,
        })
    }

    pub fn all(&self) -> Vec<PlotInfo> {
        self.plots
            .read()
            .expect("plots lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<PlotInfo>>> {
        self.tx.subscribe()
    }

    /// Rescans once; returns the changed plots (also broadcast).
    pub fn refresh(&self) -> Vec<PlotInfo> {
        let old = self.plots.read().expect("plots lock").clone();
        let new = scan(&self.dir, &old);
        let mut changed: Vec<PlotInfo> = new
            .values()
            .filter(|p| old.get(&p.name) != Some(*p))
            .cloned()
            .collect();
        for (name, p) in &old {
            if !new.contains_key(name) {
                changed.push(PlotInfo {
                    removed: true,
                    ..p.clone()
                });
            }
        }
        *self.plots.write().expect("plots lock") = new;
        if !changed.is_empty() {
            // No receiver is not an error: nobody is watching.
            let _ = self.tx.send(Arc::new(changed.clone()));
        }
        changed
    }

    /// Polls every `every` until `shutdown` turns true.
    pub async fn watch(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let me = self.clone();
            if tokio::task::spawn_blocking(move || me.refresh())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(plot_name("dom_rates.png"), Some("dom_rates"));
        assert_eq!(plot_name("dom_rates_tmp.png"), None);
        assert_eq!(plot_name("dom_rates.json"), None);
        assert_eq!(plot_name(".png"), None);
    }

    #[test]
    fn detects_changes_and_reads_json() {
        let dir = std::env::temp_dir().join(format!("km3web-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let idx = PlotIndex::new(dir.clone());
        assert!(idx.all().is_empty());
        std::fs::write(dir.join("a.png"), b"png").unwrap();
        std::fs::write(
            dir.join("a.json"),
            br#"{"det_id":49,"time_utc":"2024-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let ch = idx.refresh();
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].data_time, Some(1_704_067_200.0));
        assert!(idx.refresh().is_empty());
        std::fs::remove_file(dir.join("a.png")).unwrap();
        let ch = idx.refresh();
        assert!(ch[0].removed);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
