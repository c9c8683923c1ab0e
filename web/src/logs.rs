//! The log archive page: the live `MSG.log` and every daily
//! `MSG_<date>.log`, newest first, with sizes and the log analyser's
//! statistics plot as a thumbnail. No log yet is a normal state, not an
//! error (the original answered 500).

use std::path::Path;

use crate::pages::esc;

#[derive(Debug, Clone, PartialEq)]
pub struct Archived {
    pub date: String,
    pub size: u64,
    pub has_png: bool,
}

/// `MSG_YYYY-MM-DD.log` → `YYYY-MM-DD`.
fn archive_date(name: &str) -> Option<&str> {
    let d = name.strip_prefix("MSG_")?.strip_suffix(".log")?;
    let b = d.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    ok.then_some(d)
}

/// Archived logs, newest first (the ISO dates sort as text).
pub fn list(dir: &Path) -> Vec<Archived> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(date) = name.to_str().and_then(archive_date) else {
                continue;
            };
            let Ok(m) = e.metadata() else { continue };
            if !m.is_file() {
                continue;
            }
            out.push(Archived {
                date: date.to_string(),
                size: m.len(),
                has_png: dir.join(format!("MSG_{date}.png")).is_file(),
            });
        }
    }
    out.sort_by(|a, b| b.date.cmp(&a.date));
    out
}

/// The page body.
pub fn render(dir: &Path) -> String {
    let mut out = String::from("<div class=\"container\">");
    let live = dir.join("MSG.log");
    let live_size = std::fs::metadata(&live).map(|m| m.len()).ok();
    out.push_str(&format!(
        "<div class=\"banner ok\">Live DAQ log: <a href=\"live.html\">follow it here</a> \
         or open the raw file <a href=\"logs/MSG.log\">MSG.log</a>{}.</div>\n",
        live_size.map_or(" (not written yet)".to_string(), |s| format!(
            " ({})",
            mb(s)
        ))
    ));
    let items = list(dir);
    if items.is_empty() {
        out.push_str("<p class=\"muted\">No archived daily log yet: msg_dumper archives MSG.log as MSG_&lt;date&gt;.log when the data time passes midnight UTC.</p>");
    }
    out.push_str("<div class=\"tiles\">");
    for a in items {
        let d = esc(&a.date);
        let thumb = if a.has_png {
            format!("<a href=\"logs/MSG_{d}.png\"><img src=\"logs/MSG_{d}.png\" width=\"100\" alt=\"statistics {d}\"></a>")
        } else {
            "<span class=\"muted small\">no statistics plot yet</span>".to_string()
        };
        out.push_str(&format!(
            "<div class=\"tile\"><a href=\"logs/MSG_{d}.log\">MSG_{d}.log</a><div class=\"size\">{}</div>{thumb}</div>",
            mb(a.size)
        ));
    }
    out.push_str("</div></div>\n");
    out
}

/// The original's size: bytes / 1024 / 1024 with one decimal.
fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1024.0 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_newest_first() {
        let dir = std::env::temp_dir().join(format!("km3web-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(render(&dir).contains("No archived daily log yet"));
        std::fs::write(
            dir.join("MSG_2024-01-02.log"),
            vec![b'x'; 3 * 1024 * 1024 / 2],
        )
        .unwrap();
        std::fs::write(dir.join("MSG_2024-01-10.log"), b"x").unwrap();
        std::fs::write(dir.join("MSG_2024-01-10.png"), b"x").unwrap();
        std::fs::write(dir.join("MSG_bogus.log"), b"x").unwrap();
        let l = list(&dir);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].date, "2024-01-10");
        assert!(l[0].has_png && !l[1].has_png);
        let html = render(&dir);
        assert!(html.contains("1.5 MB"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
