//! The summary a replay prints at the end: frames per tag, drops by reason
//! and alerts raised.
//!
//! Frames per tag and alerts come from what the graph itself wrote (its
//! `tag_rates` CSV and `alerts_jsonl` files), read from where they stood
//! before the run, so that a reused output folder does not add earlier
//! runs' counts. A graph without those sinks just has shorter summaries.

use std::collections::BTreeMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use pipeline::runtime::metrics::{DropReason, Metrics};
use pipeline::Graph;

/// Files of interest and their sizes before the run.
pub struct Marks {
    tag_csvs: Vec<(PathBuf, u64)>,
    alert_files: Vec<(PathBuf, u64)>,
}

impl Marks {
    /// Reads the graph file for the sink paths (the validated graph keeps
    /// node parameters private to each node).
    pub fn before_run(g: &Graph, out: &Path) -> Marks {
        let doc: toml::Table = std::fs::read_to_string(&g.file)
            .ok()
            .and_then(|t| toml::from_str(&t).ok())
            .unwrap_or_default();
        let nodes = doc.get("nodes").and_then(toml::Value::as_table);
        let param = |node: &str, key: &str| -> Option<String> {
            nodes?.get(node)?.get(key)?.as_str().map(str::to_string)
        };
        let mark = |p: String| {
            let path = out.join(p);
            let len = std::fs::metadata(&path).map_or(0, |m| m.len());
            (path, len)
        };
        let mut marks = Marks {
            tag_csvs: Vec::new(),
            alert_files: Vec::new(),
        };
        for n in &g.nodes {
            match n.type_name.as_str() {
                "alerts_jsonl" => marks.alert_files.extend(param(&n.name, "path").map(mark)),
                "csv"
                    if n.inputs
                        .iter()
                        .any(|i| g.node(i).is_some_and(|u| u.type_name == "tag_rates")) =>
                {
                    marks.tag_csvs.extend(param(&n.name, "path").map(mark))
                }
                _ => {}
            }
        }
        marks
    }

    /// The summary lines, after the run.
    pub fn lines(&self, metrics: &Metrics) -> Vec<String> {
        let mut out = vec!["replay summary:".to_string()];
        let frames = self.frames_per_tag();
        if !frames.is_empty() {
            let total: u64 = frames.values().sum();
            let per: Vec<String> = frames.iter().map(|(t, n)| format!("{t} {n}")).collect();
            out.push(format!("  frames: {total} ({})", per.join(", ")));
        }
        out.push(format!("  drops: {}", drops(metrics)));
        let alerts = self.alerts();
        if alerts.is_empty() {
            out.push("  alerts raised: none".to_string());
        } else {
            let total: u64 = alerts.values().sum();
            let per: Vec<String> = alerts.iter().map(|(k, n)| format!("{k} {n}")).collect();
            out.push(format!("  alerts raised: {total} ({})", per.join(", ")));
        }
        out
    }

    /// Sum of the `messages` column per `tag` over the rows written now.
    fn frames_per_tag(&self) -> BTreeMap<String, u64> {
        let mut per = BTreeMap::new();
        for (path, from) in &self.tag_csvs {
            let Some(header) = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.lines().next().map(str::to_string))
            else {
                continue;
            };
            let cols: Vec<&str> = header.split(',').collect();
            let col = |name: &str| cols.iter().position(|c| c.trim() == name);
            let (Some(tag), Some(msgs)) = (col("tag"), col("messages")) else {
                continue;
            };
            for line in appended(path, *from).lines().filter(|l| *l != header) {
                let cells: Vec<&str> = line.split(',').collect();
                if let (Some(t), Some(Ok(n))) = (
                    cells.get(tag),
                    cells.get(msgs).map(|m| m.trim().parse::<u64>()),
                ) {
                    *per.entry(t.trim().to_string()).or_insert(0) += n;
                }
            }
        }
        per
    }

    /// Firing alerts (first firings, not reminders) by key family, the
    /// part of the key before `:` (dom_inactive, time_sync, …).
    fn alerts(&self) -> BTreeMap<String, u64> {
        let mut per = BTreeMap::new();
        for (path, from) in &self.alert_files {
            for line in appended(path, *from).lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let firing = v["state"] == "firing";
                let reminder = v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("still firing"));
                if firing && !reminder {
                    let key = v["key"].as_str().unwrap_or("?");
                    let family = key.split(':').next().unwrap_or(key);
                    *per.entry(family.to_string()).or_insert(0) += 1;
                }
            }
        }
        per
    }
}

/// Why a replay failed, or None: a node that ended FAILED, or corrupt
/// input dropped (unless `allow_corrupt`). Scripts and CI rely on the exit
/// status, so a replay that lost data must not look like a clean one.
pub fn failure(
    nodes: &[pipeline::control::NodeStatus],
    metrics: &Metrics,
    allow_corrupt: bool,
) -> Option<String> {
    let mut why = Vec::new();
    for n in nodes.iter().filter(|n| n.state == "FAILED") {
        why.push(format!(
            "node `{}` FAILED ({})",
            n.name,
            n.reason.as_deref().unwrap_or("no reason given")
        ));
    }
    let corrupt: u64 = metrics
        .snapshot()
        .iter()
        .map(|(_, m)| m.drops(DropReason::Corrupt))
        .sum();
    if corrupt > 0 && !allow_corrupt {
        why.push(format!(
            "{corrupt} corrupt input record(s) dropped (--allow-corrupt makes this a warning)"
        ));
    }
    (!why.is_empty()).then(|| format!("replay failed: {}", why.join("; ")))
}

/// Drops summed over the nodes, by reason (with details when known).
fn drops(metrics: &Metrics) -> String {
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for (_, m) in metrics.snapshot() {
        let details = m.drop_details();
        for r in DropReason::ALL {
            let n = m.drops(r);
            let detailed: u64 = details
                .iter()
                .filter(|((dr, _), _)| *dr == r)
                .map(|((_, d), v)| {
                    *by_reason.entry(format!("{}/{d}", r.name())).or_insert(0) += v;
                    *v
                })
                .sum();
            if n > detailed {
                *by_reason.entry(r.name().to_string()).or_insert(0) += n - detailed;
            }
        }
    }
    if by_reason.is_empty() {
        return "none".to_string();
    }
    by_reason
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text appended to `path` after byte `from`.
fn appended(path: &Path, from: u64) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.read_to_string(&mut s);
        }
    }
    s
}
