//! The web server's settings, read from the site config (`pipeline.toml`):
//! `[WebServer]` (credentials, bind address, directories, staleness, page
//! layouts), `[LocalDBService] filename` and `[ZTPlot]
//! event_selection_table` (top 10), `[env] WEBSERVER_PORT`.
//!
//! The original read a *separate* copy of the file from the front end's
//! working directory and silently served without authentication when it was
//! missing; here the one site config is the only source, and half-configured
//! credentials are an error.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

/// HTTP Basic credentials. `Debug` never shows them.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// A plot-grid page: `/<name>.html`.
#[derive(Debug, Clone)]
pub struct Page {
    pub title: String,
    pub rows: Vec<Vec<String>>,
    /// Informative banner above the grid (plain text).
    pub banner: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub bind: SocketAddr,
    pub auth: Option<Credentials>,
    pub plots_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub data_dir: PathBuf,
    /// `alerts.jsonl` of the pipeline (shown on /status).
    pub alerts_file: PathBuf,
    pub db_file: PathBuf,
    pub db_table: String,
    /// A plot not rewritten for this long is shown as stale.
    pub stale_after: Duration,
    /// Per-plot overrides of `stale_after`: (wildcard pattern, duration).
    pub stale_overrides: Vec<(String, Duration)>,
    /// How often the plot and log directories are polled for changes.
    pub poll_interval: Duration,
    /// The control socket of a separately running pipeline (`km3mon serve`
    /// reads the nodes' states from it); `None`: `km3mon serve` looks for
    /// `<output_dir>/km3mon.sock`, `km3mon run` serves its own pages.
    pub control_socket: Option<PathBuf>,
    /// The pipeline's output root (`--out`).
    pub output_dir: PathBuf,
    pub issues_url: String,
    pub pages: BTreeMap<String, Page>,
    /// A connection must send a request head within this long (also
    /// between keep-alive requests); silent ones are closed.
    pub header_timeout: Duration,
    /// Connections served at once; more get `503`.
    pub max_connections: usize,
}

/// Pages with a fixed meaning; a layout may not take their names.
pub const RESERVED_PAGES: &[&str] = &["top10", "logs", "live", "livelog", "status", "detector"];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    username: Option<String>,
    password: Option<String>,
    /// The environment variable holding the password (the site's `.env`),
    /// so that the password need not sit in the file.
    password_env: Option<String>,
    bind: Option<String>,
    output_dir: Option<PathBuf>,
    plots_dir: Option<PathBuf>,
    logs_dir: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    #[serde(default, deserialize_with = "timespan::de::opt_duration")]
    stale_after: Option<Duration>,
    #[serde(default)]
    stale: BTreeMap<String, timespan::Span>,
    poll_ms: Option<u64>,
    /// Seconds (fractions allowed) for a request head; default 30.
    header_timeout: Option<f64>,
    max_connections: Option<usize>,
    control_socket: Option<PathBuf>,
    /// Replaced by `control_socket` (node states as JSON, not scraped
    /// Prometheus text); still accepted so an older site config starts.
    metrics_url: Option<String>,
    issues_url: Option<String>,
    #[serde(default)]
    pages: BTreeMap<String, toml::Value>,
    #[serde(default)]
    banners: BTreeMap<String, String>,
}

const RTTC_BANNER: &str =
    "The RTTC (round-trip time of the cable) is taken from the Detector Manager live data. \
The red lines are the median and the spread over the last 24 hours. \
RTTC = Cable_RTT - (TX_Slave + RX_Slave + TX_Master + RX_Master).";

/// The original front end's layouts, used for pages the site config does
/// not define (`compact` shows the per-DU PMT rates: the original's
/// `pmt_rates.png` was never produced).
fn default_pages() -> Vec<(&'static str, &'static str, Vec<Vec<&'static str>>)> {
    vec![
        (
            "index",
            "Overview",
            vec![
                vec!["dom_activity", "dom_rates"],
                vec!["pmt_rates_du*"],
                vec!["trigger_rates"],
                vec!["ztplot", "triggermap"],
            ],
        ),
        (
            "trigger",
            "Trigger",
            vec![vec!["trigger_rates"], vec!["trigger_rates_lin"]],
        ),
        (
            "daq",
            "DAQ",
            vec![
                vec!["timesync", "timeslice_rates"],
                vec!["timeslice_rates_lin"],
            ],
        ),
        (
            "acoustics",
            "Acoustics",
            vec![vec!["Online_Acoustic_Monitoring"]],
        ),
        (
            "ahrs",
            "AHRS",
            vec![
                vec!["yaw_calib_du*"],
                vec!["pitch_calib_du*"],
                vec!["roll_calib_du*"],
            ],
        ),
        ("rttc", "RTTC", vec![vec!["rttc"]]),
        ("reco", "Reco", vec![vec!["time_residuals", "ztplot_roy"]]),
        ("sn", "SN", vec![vec!["sn_bg_histogram", "sn_pk_history"]]),
        (
            "compact",
            "Compact",
            vec![
                vec!["dom_activity", "dom_rates", "pmt_rates_du*"],
                vec!["trigger_rates", "trigger_rates_lin"],
                vec!["ztplot", "ztplot_roy", "triggermap"],
            ],
        ),
        (
            "rasp",
            "RASP",
            vec![
                vec!["dom_rates", "ztplot", "triggermap"],
                vec![
                    "pmt_rates_du2",
                    "pmt_rates_du3",
                    "pmt_rates_du4",
                    "pmt_rates_du5",
                ],
                vec!["trigger_rates", "trigger_rates_lin"],
            ],
        ),
    ]
}

/// A row is an array of names, or a single name/wildcard string.
fn parse_rows(page: &str, v: &toml::Value) -> anyhow::Result<Vec<Vec<String>>> {
    let Some(rows) = v.as_array() else {
        bail!("[WebServer.pages] {page}: expected an array of rows");
    };
    rows.iter()
        .map(|row| match row {
            toml::Value::String(s) => Ok(vec![s.clone()]),
            toml::Value::Array(a) => a
                .iter()
                .map(|c| {
                    c.as_str().map(str::to_string).with_context(|| {
                        format!("[WebServer.pages] {page}: plot names must be strings")
                    })
                })
                .collect(),
            _ => bail!("[WebServer.pages] {page}: a row is a string or an array of strings"),
        })
        .collect()
}

fn valid_page_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        && !n.starts_with("plot_")
}

/// The original's `/data/…` (its container's data volume) is `data/…`
/// under the output root, as `pipeline::site` reads it for the graph.
fn original_container_path(path: &str) -> Option<String> {
    path.strip_prefix("/data/")
        .filter(|r| !r.is_empty())
        .map(|r| format!("data/{r}"))
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl WebConfig {
    /// Reads `path`. `out` (the pipeline's `--out`) overrides
    /// `[WebServer] output_dir`; relative paths in the file are resolved
    /// against the file's directory, directories below the output root
    /// against that root.
    pub fn load(path: &Path, out: Option<&Path>) -> anyhow::Result<WebConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read site config {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebConfig::from_toml(&text, dir, out)
            .with_context(|| format!("site config {}", path.display()))
    }

    /// Defaults for an output root without any site config (used by tests
    /// and the demo): no authentication, the original layouts.
    pub fn for_output(out: &Path) -> WebConfig {
        WebConfig::from_toml("", Path::new("."), Some(out)).expect("empty config is valid")
    }

    pub fn from_toml(
        text: &str,
        config_dir: &Path,
        out: Option<&Path>,
    ) -> anyhow::Result<WebConfig> {
        let doc: toml::Table = toml::from_str(text).context("invalid TOML")?;
        let raw: RawWeb = match doc.get("WebServer") {
            Some(v) => v.clone().try_into().context("[WebServer]")?,
            None => RawWeb::default(),
        };
        let password = match (raw.password, raw.password_env) {
            (Some(_), Some(_)) => {
                bail!("[WebServer] has both password and password_env: keep one")
            }
            (None, Some(var)) => Some(std::env::var(&var).with_context(|| {
                format!(
                    "[WebServer] password_env = {var:?}, but ${var} is not set (the site's .env)"
                )
            })?),
            (p, None) => p,
        };
        let auth = match (raw.username, password) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Some(Credentials {
                username: u,
                password: p,
            }),
            (None, None) => None,
            _ => bail!(
                "[WebServer] needs both username and password (non-empty) for authentication, \
                 or neither to serve without it"
            ),
        };
        let output = match out {
            Some(o) => o.to_path_buf(),
            None => resolve(
                config_dir,
                raw.output_dir.as_deref().unwrap_or(Path::new(".")),
            ),
        };
        let sub = |v: Option<PathBuf>, d: &str| resolve(&output, &v.unwrap_or_else(|| d.into()));
        let get_str = |sec: &str, key: &str| {
            doc.get(sec)
                .and_then(|t| t.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let db_file = resolve(
            &output,
            Path::new(
                &get_str("LocalDBService", "filename")
                    .map(|f| original_container_path(&f).unwrap_or(f))
                    .unwrap_or("data/monitoring.sqlite3".into()),
            ),
        );
        let db_table =
            get_str("ZTPlot", "event_selection_table").unwrap_or("event_selection".into());
        // The name goes into SQL text: an identifier, nothing else.
        if db_table.is_empty()
            || !db_table
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            bail!("[ZTPlot] event_selection_table must be a plain SQL identifier");
        }
        let bind = match raw.bind {
            Some(b) => b
                .parse()
                .with_context(|| format!("[WebServer] bind = {b:?}"))?,
            None => {
                let port = std::env::var("WEBSERVER_PORT")
                    .ok()
                    .or_else(|| {
                        let v = doc.get("env")?.get("WEBSERVER_PORT")?;
                        v.as_str()
                            .map(str::to_string)
                            .or(v.as_integer().map(|i| i.to_string()))
                    })
                    .unwrap_or("8080".into());
                let port: u16 = port.parse().context("WEBSERVER_PORT")?;
                SocketAddr::from(([127, 0, 0, 1], port))
            }
        };
        let mut pages = BTreeMap::new();
        for (name, title, rows) in default_pages() {
            let rows = rows
                .into_iter()
                .map(|r| r.into_iter().map(str::to_string).collect())
                .collect();
            pages.insert(
                name.to_string(),
                Page {
                    title: title.to_string(),
                    rows,
                    banner: (name == "rttc").then(|| RTTC_BANNER.to_string()),
                },
            );
        }
        for (name, v) in &raw.pages {
            if !valid_page_name(name) || RESERVED_PAGES.contains(&name.as_str()) {
                bail!("[WebServer.pages] {name:?} is not a usable page name");
            }
            let rows = parse_rows(name, v)?;
            let title = pages
                .get(name)
                .map(|p: &Page| p.title.clone())
                .unwrap_or_else(|| name.clone());
            let banner = pages.get(name).and_then(|p| p.banner.clone());
            pages.insert(
                name.clone(),
                Page {
                    title,
                    rows,
                    banner,
                },
            );
        }
        for (name, text) in raw.banners {
            match pages.get_mut(&name) {
                Some(p) => p.banner = (!text.is_empty()).then_some(text),
                None => bail!("[WebServer.banners] {name:?}: no such page"),
            }
        }
        if raw.metrics_url.is_some() {
            tracing::warn!(
                "[WebServer] metrics_url has no effect any more: km3mon serve reads the nodes' \
                 states from the pipeline's control socket ([WebServer] control_socket, default \
                 <output_dir>/km3mon.sock)"
            );
        }
        Ok(WebConfig {
            bind,
            auth,
            plots_dir: sub(raw.plots_dir, "plots"),
            logs_dir: sub(raw.logs_dir, "logs"),
            data_dir: sub(raw.data_dir, "data"),
            alerts_file: output.join("alerts.jsonl"),
            db_file,
            db_table,
            stale_after: raw.stale_after.unwrap_or(Duration::from_secs(900)),
            stale_overrides: raw.stale.into_iter().map(|(k, v)| (k, v.0)).collect(),
            poll_interval: Duration::from_millis(raw.poll_ms.unwrap_or(1000).clamp(50, 60_000)),
            control_socket: raw
                .control_socket
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| resolve(&output, &p)),
            output_dir: output.clone(),
            issues_url: raw
                .issues_url
                .unwrap_or("https://git.km3net.de/km3py/km3mon/issues".into()),
            pages,
            header_timeout: match raw.header_timeout {
                None => crate::conn::Limits::default().header_timeout,
                Some(s) => Duration::try_from_secs_f64(s)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .with_context(|| {
                        format!("[WebServer] header_timeout must be a positive number of seconds, not {s}")
                    })?,
            },
            max_connections: match raw.max_connections {
                None => crate::conn::Limits::default().max_connections,
                Some(0) => bail!("[WebServer] max_connections must be at least 1"),
                Some(n) => n,
            },
        })
    }

    /// Staleness limit of one plot.
    pub fn stale_after_for(&self, plot: &str) -> Duration {
        self.stale_overrides
            .iter()
            .find(|(p, _)| crate::layout::glob_match(p, plot))
            .map(|(_, d)| *d)
            .unwrap_or(self.stale_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_socket_relative_to_the_output_and_old_metrics_url_accepted() {
        let c = WebConfig::from_toml(
            "[WebServer]\ncontrol_socket = \"run/km3mon.sock\"\nmetrics_url = \"http://x/metrics\"\n",
            Path::new("/site"),
            Some(Path::new("/out")),
        )
        .unwrap();
        assert_eq!(
            c.control_socket.as_deref(),
            Some(Path::new("/out/run/km3mon.sock"))
        );
        assert_eq!(c.output_dir, Path::new("/out"));
        let c = WebConfig::for_output(Path::new("/o"));
        assert_eq!(c.control_socket, None);
    }

    #[test]
    fn example_config_loads() {
        let text = include_str!("../../pipeline.toml.example");
        let c = WebConfig::from_toml(text, Path::new("/site"), Some(Path::new("/out"))).unwrap();
        assert!(c.auth.is_some());
        assert_eq!(c.plots_dir, Path::new("/out/plots"));
        assert_eq!(c.db_file, Path::new("/out/data/monitoring.sqlite3"));
        assert!(c.pages.contains_key("index"));
        assert!(!format!("{c:?}").contains("change-me"));
    }

    #[test]
    fn password_from_the_environment() {
        // A variable name no other test uses: the environment is shared.
        let var = "KM3MON_TEST_WEB_PASSWORD_ENV";
        let t = format!("[WebServer]\nusername = \"u\"\npassword_env = \"{var}\"\n");
        let e = WebConfig::from_toml(&t, Path::new("."), None).unwrap_err();
        assert!(format!("{e:#}").contains(var), "{e:#}");
        std::env::set_var(var, "from-env");
        let c = WebConfig::from_toml(&t, Path::new("."), None).unwrap();
        assert_eq!(c.auth.unwrap().password, "from-env");
        let both = format!("{t}password = \"x\"\n");
        assert!(WebConfig::from_toml(&both, Path::new("."), None).is_err());
    }

    #[test]
    fn half_credentials_refused() {
        let e = WebConfig::from_toml("[WebServer]\nusername = \"a\"\n", Path::new("."), None);
        assert!(e.is_err());
        let e = WebConfig::from_toml(
            "[WebServer]\nusername = \"a\"\npassword = \"\"\n",
            Path::new("."),
            None,
        );
        assert!(e.is_err());
    }

    #[test]
    fn layouts_and_dirs() {
        let t = r#"
[WebServer]
output_dir = "out"
logs_dir = "/var/log/km3"
stale_after = 60
bind = "127.0.0.1:1234"
[WebServer.pages]
index = [["a", "b"], "c_du*"]
mine = ["x"]
[WebServer.stale]
"yaw_*" = 7200
[ZTPlot]
event_selection_table = "sel; DROP TABLE x"
"#;
        assert!(WebConfig::from_toml(t, Path::new("/etc"), None).is_err());
        let t = t.replace("sel; DROP TABLE x", "sel");
        let c = WebConfig::from_toml(&t, Path::new("/etc"), None).unwrap();
        assert_eq!(c.plots_dir, Path::new("/etc/out/plots"));
        assert_eq!(c.logs_dir, Path::new("/var/log/km3"));
        assert_eq!(c.pages["index"].rows, vec![vec!["a", "b"], vec!["c_du*"]]);
        assert_eq!(c.pages["index"].title, "Overview");
        assert_eq!(c.pages["mine"].rows, vec![vec!["x"]]);
        assert_eq!(
            c.stale_after_for("yaw_calib_du1"),
            Duration::from_secs(7200)
        );
        assert_eq!(c.stale_after_for("dom_rates"), Duration::from_secs(60));
        assert_eq!(c.db_table, "sel");
        assert!(c.auth.is_none());
        let bad = "[WebServer]\npages = { top10 = [\"a\"] }\n";
        assert!(WebConfig::from_toml(bad, Path::new("."), None).is_err());
        let t = "[WebServer]\nstale_after = \"15m\"\n[WebServer.stale]\n\"yaw_*\" = \"6h\"\n";
        let c = WebConfig::from_toml(t, Path::new("."), None).unwrap();
        assert_eq!(c.stale_after, Duration::from_secs(900));
        assert_eq!(c.stale_after_for("yaw_1"), Duration::from_secs(21_600));
        let typo = "[WebServer]\nusrname = \"a\"\n";
        assert!(WebConfig::from_toml(typo, Path::new("."), None).is_err());
    }
}
