//! `km3mon serve`: the web front end on its own, reading what a pipeline
//! (`km3mon run/replay --out DIR`) writes: plots, logs, the event-selection
//! database; node states as JSON from the pipeline's control socket
//! (`[WebServer] control_socket`, default `<out>/km3mon.sock`), so the
//! status page shows what `km3mon ctl status` shows and its buttons work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Site config (pipeline.toml) with the [WebServer] section; default:
    /// the built-in pipeline.toml.example.
    #[arg(long, value_name = "SITE")]
    config: Option<PathBuf>,
    /// Listen address; overrides [WebServer] bind (default 127.0.0.1:$WEBSERVER_PORT).
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<SocketAddr>,
    /// The pipeline's output root (its --out): plots/, logs/, data/ below it.
    /// Overrides [WebServer] output_dir.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut cfg = match &args.config {
        Some(path) => web::WebConfig::load(path, args.out.as_deref())?,
        None => web::WebConfig::from_toml(
            pipeline::site::EXAMPLE,
            std::path::Path::new("."),
            args.out.as_deref(),
        )?,
    };
    if let Some(bind) = args.bind {
        cfg.bind = bind;
    }
    let socket = cfg
        .control_socket
        .clone()
        .unwrap_or_else(|| cfg.output_dir.join(crate::cmd_ctl::SOCKET_NAME));
    let status = crate::web_status::socket_status(socket.clone());
    let auth = cfg.auth.is_some();
    let (plots, logs) = (cfg.plots_dir.clone(), cfg.logs_dir.clone());
    let extras = web::Extras {
        collectors: crate::web_status::serve_collectors(),
        ..Default::default()
    };
    web::run_until_signal_with(cfg, status, extras, |addr| {
        // The URL on stdout, alone on its line, for people and scripts.
        println!("http://{addr}/");
        tracing::info!(
            "web: serving plots from {} and logs from {} (authentication {})",
            plots.display(),
            logs.display(),
            if auth { "on" } else { "OFF" }
        );
        tracing::info!("web: node states from {}", socket.display());
    })?;
    Ok(ExitCode::SUCCESS)
}
