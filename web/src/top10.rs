//! The top-10 page: the event-selection SQLite table written by ztplot,
//! read-only through a small connection pool (the original opened a new
//! connection per request and never closed it).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

use crate::pages::esc;
use crate::timefmt;

/// One row of `event_selection`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Selected {
    pub overlays: i64,
    pub n_hits: i64,
    pub n_triggered_hits: i64,
    pub plot_filename: String,
    pub run_id: i64,
    pub det_id: i64,
    pub frame_index: i64,
    pub trigger_counter: i64,
    pub utc_timestamp: f64,
}

pub struct Db {
    path: PathBuf,
    table: String,
    idle: Mutex<Vec<Connection>>,
}

/// Idle connections kept; more may be open briefly under load.
const POOL: usize = 4;

impl Db {
    pub fn new(path: PathBuf, table: String) -> Db {
        Db {
            path,
            table,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Opens lazily: the file may appear only after the first selected
    /// event. Read-only, so the web server can never alter the selection.
    fn conn(&self) -> rusqlite::Result<Option<Connection>> {
        if let Some(c) = self.idle.lock().expect("db pool").pop() {
            return Ok(Some(c));
        }
        if !self.path.exists() {
            return Ok(None);
        }
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(std::time::Duration::from_secs(2))?;
        Ok(Some(c))
    }

    fn put(&self, c: Connection) {
        let mut idle = self.idle.lock().expect("db pool");
        if idle.len() < POOL {
            idle.push(c);
        }
    }

    /// The ten best by `column`; empty when the file or table do not exist.
    pub fn top(&self, column: &str) -> rusqlite::Result<Vec<Selected>> {
        debug_assert!(["n_hits", "overlays"].contains(&column));
        let Some(c) = self.conn()? else {
            return Ok(Vec::new());
        };
        let exists: bool = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [&self.table],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)?;
        let rows = if exists {
            // Table and column names are identifiers checked at config load
            // / fixed here; values are bound.
            let sql = format!(
                "SELECT overlays, n_hits, n_triggered_hits, plot_filename, run_id, det_id, \
                 frame_index, trigger_counter, utc_timestamp FROM \"{}\" \
                 ORDER BY CAST({column} AS INTEGER) DESC LIMIT 10",
                self.table
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st
                .query_map([], |r| {
                    Ok(Selected {
                        overlays: int(r.get_ref(0)?),
                        n_hits: int(r.get_ref(1)?),
                        n_triggered_hits: int(r.get_ref(2)?),
                        plot_filename: text(r.get_ref(3)?),
                        run_id: int(r.get_ref(4)?),
                        det_id: int(r.get_ref(5)?),
                        frame_index: int(r.get_ref(6)?),
                        trigger_counter: int(r.get_ref(7)?),
                        utc_timestamp: int(r.get_ref(8)?) as f64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(st);
            rows
        } else {
            Vec::new()
        };
        self.put(c);
        Ok(rows)
    }
}

/// ztplot inserts quoted literals; SQLite's affinity usually makes them
/// integers, but be lenient with whatever is stored.
fn int(v: rusqlite::types::ValueRef<'_>) -> i64 {
    use rusqlite::types::ValueRef::*;
    match v {
        Integer(i) => i,
        Real(f) => f as i64,
        Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map_or(0, |f| f as i64),
        _ => 0,
    }
}

fn text(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef::*;
    match v {
        Text(t) => String::from_utf8_lossy(t).into_owned(),
        Integer(i) => i.to_string(),
        Real(f) => f.to_string(),
        _ => String::new(),
    }
}

/// The web URL of a stored plot path: below the plot directory, or the
/// original's `/plots/...` convention, else by file name in
/// `event_selection/`.
pub fn plot_url(stored: &str, plots_dir: &Path) -> String {
    let p = Path::new(stored);
    if let Ok(rel) = p.strip_prefix(plots_dir) {
        return format!("plots/{}", rel.to_string_lossy());
    }
    if let Some(i) = stored.rfind("/plots/") {
        return format!("plots/{}", &stored[i + 7..]);
    }
    if p.is_relative() && !stored.contains("..") {
        return format!("plots/{stored}");
    }
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    format!("plots/event_selection/{name}")
}

pub fn raw_paths(det: i64, run: i64) -> (String, String) {
    let rel = format!(
        "KM3NeT_{det:08}/{}/KM3NeT_{det:08}_{run:08}.root",
        run / 1000
    );
    (
        format!("iRODS: /in2p3/km3net/data/raw/sea/{rel}"),
        format!("xrootd: root://ccxroot:1999//hpss/in2p3.fr/group/km3net/data/raw/sea/{rel}"),
    )
}

/// The page body below the navigation bar.
pub fn render(cats: &[(&str, Vec<Selected>)], plots_dir: &Path, now: f64) -> String {
    let mut out = String::from("<div class=\"container top10\">\n");
    if cats.iter().all(|(_, rows)| rows.is_empty()) {
        out.push_str(
            "<div class=\"banner info\">No event has been selected yet. \
             Events enter the top 10 when ztplot finds one with more hits or overlays \
             than the current entries.</div>\n",
        );
    }
    for (title, rows) in cats {
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!("<h2>{}</h2>\n", esc(title)));
        for (i, r) in rows.iter().enumerate() {
            let new = if now - r.utc_timestamp < 86_400.0 {
                "<span class=\"new\">NEW!</span>"
            } else {
                ""
            };
            let url = esc(&plot_url(&r.plot_filename, plots_dir));
            let (irods, xrootd) = raw_paths(r.det_id, r.run_id);
            out.push_str(&format!(
                "<div class=\"entry\"><div class=\"rank\">#{rank} {new}</div>\
                 <div class=\"date\">{date} UTC</div>\
                 <table class=\"kv\">\
                 <tr><th>Hits (triggered)</th><td>{h} ({th})</td></tr>\
                 <tr><th>Overlays</th><td>{ov}</td></tr>\
                 <tr><th>Detector ID</th><td>{det}</td></tr>\
                 <tr><th>Run</th><td>{run}</td></tr>\
                 <tr><th>Frame index</th><td>{fi}</td></tr>\
                 <tr><th>Trigger counter</th><td>{tc}</td></tr></table>\
                 <a href=\"{url}\"><img class=\"event\" src=\"{url}\" alt=\"event display\"></a>\
                 <div class=\"raw\">{irods}</div><div class=\"raw\">{xrootd}</div></div>\n",
                rank = i + 1,
                date = timefmt::ctime(r.utc_timestamp),
                h = r.n_hits,
                th = r.n_triggered_hits,
                ov = r.overlays,
                det = r.det_id,
                run = r.run_id,
                fi = r.frame_index,
                tc = r.trigger_counter,
                irods = esc(&irods),
                xrootd = esc(&xrootd),
            ));
        }
    }
    out.push_str("</div>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        let pd = Path::new("/srv/out/plots");
        assert_eq!(
            plot_url("/srv/out/plots/event_selection/z.png", pd),
            "plots/event_selection/z.png"
        );
        assert_eq!(
            plot_url("/plots/event_selection/z.png", pd),
            "plots/event_selection/z.png"
        );
        assert_eq!(
            plot_url("/elsewhere/z.png", pd),
            "plots/event_selection/z.png"
        );
        let (i, x) = raw_paths(49, 12345);
        assert_eq!(
            i,
            "iRODS: /in2p3/km3net/data/raw/sea/KM3NeT_00000049/12/KM3NeT_00000049_00012345.root"
        );
        assert!(x.starts_with("xrootd: root://ccxroot:1999//hpss/in2p3.fr/group/km3net/data/raw/sea/KM3NeT_00000049/12/"));
    }

    #[test]
    fn empty_and_filled_db() {
        let dir = std::env::temp_dir().join(format!("km3web-db-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sqlite3");
        let db = Db::new(path.clone(), "event_selection".into());
        assert!(db.top("n_hits").unwrap().is_empty()); // no file
        let w = Connection::open(&path).unwrap();
        assert!(db.top("n_hits").unwrap().is_empty()); // no table
        w.execute_batch(
            "CREATE TABLE event_selection (overlays INT, n_hits INT, n_triggered_hits INT, n_dus INT, \
             plot_filename TEXT, run_id INT, det_id INT, frame_index INT, trigger_counter INT, utc_timestamp INT);",
        )
        .unwrap();
        for i in 0..12 {
            w.execute(
                "INSERT INTO event_selection VALUES (?1, ?2, '5', 2, '/plots/event_selection/x.png', 100, 49, 7, ?1, 1700000000)",
                rusqlite::params![i, 100 + i * 7 % 11],
            )
            .unwrap();
        }
        let top = db.top("n_hits").unwrap();
        assert_eq!(top.len(), 10);
        assert!(top.windows(2).all(|w| w[0].n_hits >= w[1].n_hits));
        assert_eq!(db.top("overlays").unwrap()[0].overlays, 11);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
