//! `km3mon db`: the operator's tool for the KM3NeT database, in the spirit
//! of km3db's `streamds` (docs/db.md): log in (cookie file), read streams
//! as TSV or JSON, list the streams, fetch a DETX (of a run), list runs.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use km3db::{CalibIds, Client, DbConfig, SessionEnv};

#[derive(clap::Args)]
pub struct DbArgs {
    /// Site config (pipeline.toml) for `[DB]` (url, cookie, timeout …).
    #[arg(long, value_name = "SITE", global = true)]
    config: Option<PathBuf>,
    /// Base URL of the web API; wins over KM3NET_DB_URL and `[DB] url`.
    #[arg(long, value_name = "URL", global = true)]
    url: Option<String>,
    /// A session id; wins over KM3NET_DB_COOKIE and the cookie files.
    #[arg(long, value_name = "SID", global = true)]
    cookie: Option<String>,
    #[command(subcommand)]
    cmd: DbCmd,
}

#[derive(clap::Subcommand)]
enum DbCmd {
    /// Log in and write the cookie file (mode 0600): prompts when run in a
    /// terminal, else KM3NET_DB_USERNAME / KM3NET_DB_PASSWORD.
    Login {
        /// DB user name (default: KM3NET_DB_USERNAME, else asked).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Cookie file; default KM3NET_DB_COOKIE_FILE, else ~/.km3netdb_cookie.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// A session for a whole network: 16 (class B) or 8 (class C).
        #[arg(long, value_name = "BITS")]
        freenetbits: Option<u8>,
    },
    /// Print a stream: TSV as the server sends it, or JSON (typed values,
    /// lower-case keys). Selectors as k=v, e.g. `runs detid=44`.
    Get {
        stream: String,
        #[arg(value_name = "K=V")]
        selectors: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// The stream index: names, formats, mandatory and optional selectors.
    Streams {
        #[arg(long)]
        json: bool,
    },
    /// A detector's DETX (serial number or OID); with --run, calibrated
    /// with that run's calibration sets.
    Detx {
        det: String,
        #[arg(long, value_name = "RUN")]
        run: Option<i32>,
        /// Write here (atomically) instead of to stdout.
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// A detector's run table.
    Runs {
        det: String,
        #[arg(long)]
        json: bool,
    },
}

/// `[DB]` of a site config (absent: defaults), then KM3NET_DB_URL.
pub fn db_config(site: Option<&Path>) -> anyhow::Result<DbConfig> {
    match site {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("site config {}", p.display()))?;
            DbConfig::from_site_text(&text).with_context(|| p.display().to_string())
        }
        None => {
            let mut c = DbConfig::default();
            c.apply_env();
            Ok(c)
        }
    }
}

pub fn run(args: DbArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = db_config(args.config.as_deref())?;
    if let Some(u) = &args.url {
        cfg.url = u.clone();
    }
    if args.cookie.is_some() {
        cfg.cookie = args.cookie.clone();
    }
    cfg.validate()?;
    let out = std::io::stdout();
    match args.cmd {
        DbCmd::Login {
            user,
            output,
            freenetbits,
        } => {
            if freenetbits.is_some() {
                cfg.freenetbits = freenetbits;
                cfg.validate()?;
            }
            login(cfg, user, output)
        }
        DbCmd::Get {
            stream,
            selectors,
            json,
        } => {
            let sel = parse_selectors(&selectors)?;
            let sel: Vec<(&str, &str)> =
                sel.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let mut db = Client::from_process(cfg);
            if json {
                let t = db.stream(&stream, &sel)?;
                writeln!(
                    out.lock(),
                    "{}",
                    serde_json::to_string_pretty(&t.to_json())?
                )?;
            } else {
                out.lock()
                    .write_all(db.stream_text(&stream, &sel)?.as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCmd::Streams { json } => {
            let mut db = Client::from_process(cfg);
            let t = db.streams()?;
            if json {
                writeln!(
                    out.lock(),
                    "{}",
                    serde_json::to_string_pretty(&t.to_json())?
                )?;
            } else {
                let mut o = out.lock();
                for i in 0..t.rows.len() {
                    let f = |c: &str| t.get(i, c).unwrap_or("-").to_string();
                    writeln!(
                        o,
                        "{:<28} {:<8} mandatory: {:<36} optional: {}",
                        f("STREAM"),
                        f("FORMATS"),
                        f("MANDATORY_SELECTORS"),
                        f("OPTIONAL_SELECTORS")
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCmd::Detx { det, run, output } => {
            let db = Client::from_process(cfg);
            let (text, ids) = match run {
                None => {
                    let mut db = db;
                    let ids = CalibIds::default();
                    (db.detx(&det, &ids)?, ids)
                }
                Some(r) => {
                    let (text, ids, _) = km3db::DetectorService::new(db, &det, None).run_detx(r)?;
                    (text, ids)
                }
            };
            eprintln!("detx/{det}?{}", ids.query());
            daq::detector::Detector::parse(&text, &format!("DB detx/{det}"))
                .map_err(|e| anyhow::anyhow!("the DB's DETX does not parse: {e}"))?;
            match output {
                Some(p) => {
                    pipeline::runtime::io::write_atomic(&p, text.as_bytes())
                        .with_context(|| p.display().to_string())?;
                    eprintln!("written to {}", p.display());
                }
                None => out.lock().write_all(text.as_bytes())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        DbCmd::Runs { det, json } => {
            let mut db = Client::from_process(cfg);
            let sel = [("detid", det.as_str())];
            if json {
                let t = db.stream("runs", &sel)?;
                writeln!(
                    out.lock(),
                    "{}",
                    serde_json::to_string_pretty(&t.to_json())?
                )?;
            } else {
                out.lock()
                    .write_all(db.stream_text("runs", &sel)?.as_bytes())?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse_selectors(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| {
            a.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("selector {a:?} must be KEY=VALUE (e.g. detid=44)"))
        })
        .collect()
}

fn login(cfg: DbConfig, user: Option<String>, output: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let env = SessionEnv::from_process(None);
    let interactive = std::io::stdin().is_terminal();
    let user = match user.or_else(|| env.username.clone()) {
        Some(u) => u,
        None if interactive => {
            eprint!("KM3NeT DB user name: ");
            std::io::stderr().flush()?;
            let mut s = String::new();
            std::io::stdin().read_line(&mut s)?;
            s.trim().to_string()
        }
        None => anyhow::bail!(
            "no DB user name: set KM3NET_DB_USERNAME and KM3NET_DB_PASSWORD, or run `km3mon db login` in a terminal"
        ),
    };
    let password = match env.password.clone() {
        Some(p) => p,
        None if interactive => rpassword::prompt_password(format!("password of {user}: "))?,
        None => anyhow::bail!(
            "no DB password: set KM3NET_DB_PASSWORD, or run `km3mon db login` in a terminal"
        ),
    };
    let path = output
        .or_else(|| env.login_cookie_file())
        .context("no cookie file: set HOME or KM3NET_DB_COOKIE_FILE, or pass -o FILE")?;
    let mut db = Client::new(cfg, SessionEnv::default());
    let sid = db.login(&user, &password)?;
    km3db::session::write_cookie_file(&path, &sid)
        .with_context(|| format!("cannot write the cookie file {}", path.display()))?;
    eprintln!(
        "logged in as {user:?}; session saved in {} (mode 0600).\n\
         For a station's .env (the session may be bound to this machine's address):",
        path.display()
    );
    println!("KM3NET_DB_COOKIE={sid}");
    Ok(ExitCode::SUCCESS)
}
