//! `km3mon`: one binary, one subcommand per job. Each subcommand lives in
//! its own module with an `Args` struct and a `run` function; this file only
//! wires them to clap.

use clap::{CommandFactory, Parser, Subcommand};

mod builtin;
mod chatbot;
mod cmd_ctl;
mod cmd_db;
mod cmd_demo;
mod cmd_dump;
mod cmd_init;
mod cmd_ligier;
mod cmd_pipeline;
mod cmd_serve;
mod cmd_simulate;
mod cmd_testchat;
mod cmd_testdb;
mod db_graph;
mod dotenv;
mod logging;
mod sdnotify;
mod signals;
mod web_status;

/// Payloads are allocated by reader threads and freed on the workers; glibc's
/// malloc cost more there than the decoding (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Make mimalloc hand the pages freed so far back to the OS now, instead
/// of at its next call after a delay (which a quiet process never makes).
pub(crate) fn release_free_memory() {
    // SAFETY: `mi_collect` only walks the allocator's own structures; it
    // is safe to call from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// `km3mon --version`: the version, the git commit and the build date.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KM3MON_GIT_COMMIT"),
    ", built ",
    env!("KM3MON_BUILD_DATE"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "km3mon",
    version = LONG_VERSION,
    about = "KM3NeT online monitoring"
)]
struct Cli {
    /// Log lines as text (colour only on a terminal) or JSON objects (for
    /// journald and Loki); default from KM3MON_LOG_FORMAT, else text.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<logging::LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode DAQ dump files (or a DETX file) and print JSON Lines.
    Dump(cmd_dump::Args),
    /// Run a ControlHost dispatcher (a JLigier replacement).
    Ligier(cmd_ligier::LigierArgs),
    /// Copy tags from one Ligier to another (JLigierMirror), reconnecting.
    Mirror(cmd_ligier::MirrorArgs),
    /// Record a Ligier stream to a file, wire-identical.
    Record(cmd_ligier::RecordArgs),
    /// Publish a recording or a .dat dump into a Ligier.
    Publish(cmd_ligier::PublishArgs),
    /// Validate a graph (and site config) without running anything.
    Check(cmd_pipeline::CheckArgs),
    /// Print a graph as Graphviz DOT.
    Graph(cmd_pipeline::GraphArgs),
    /// Run a graph live against a Ligier.
    Run(cmd_pipeline::RunArgs),
    /// Replay recordings or dumps through a graph.
    Replay(cmd_pipeline::ReplayArgs),
    /// Simulate a shore station's DAQ streams for any detector.
    Simulate(cmd_simulate::SimulateArgs),
    /// Serve the web pages (plots, top 10, logs, live log, status).
    Serve(cmd_serve::ServeArgs),
    /// The whole suite on 127.0.0.1 with one command.
    Demo(cmd_demo::DemoArgs),
    /// Steer a running `run`/`demo`: status, stop|start|restart NODE|GROUP:*, silence.
    Ctl(cmd_ctl::CtlArgs),
    /// A stand-in Rocket.Chat server on 127.0.0.1 to try alerts and the chatbot.
    Testchat(cmd_testchat::TestchatArgs),
    /// The KM3NeT database: login, streams, DETX, runs (docs/db.md).
    Db(cmd_db::DbArgs),
    /// A stand-in KM3NeT DB on 127.0.0.1 serving the km3net-testdata samples.
    Testdb(cmd_testdb::TestdbArgs),
    /// Write a site's starting files (pipeline.toml, km3mon.toml, example.env) into DIR.
    Init(cmd_init::InitArgs),
    /// Print a shell completion script (bash, zsh, fish, …) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `km3mon man > km3mon.1`, or
    /// `km3mon man --dir DIR` for one page per subcommand as well.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    // `.env` beside the site config and in the working directory, before
    // any thread starts and before the arguments are read (flags may take
    // their defaults from the environment); real environment variables win.
    let args: Vec<String> = std::env::args().collect();
    let env_files = match dotenv::load(dotenv::config_arg(&args).as_deref()) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("km3mon: .env: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse();
    match logging::format(cli.log_format) {
        Ok(f) => logging::init(f),
        Err(e) => {
            eprintln!("km3mon: {e}");
            return std::process::ExitCode::from(2);
        }
    }
    for f in env_files {
        tracing::debug!("read {}", f.display());
    }
    let result = match cli.command {
        Command::Dump(args) => cmd_dump::run(args),
        Command::Ligier(args) => cmd_ligier::run_ligier(args),
        Command::Mirror(args) => cmd_ligier::run_mirror(args),
        Command::Record(args) => cmd_ligier::run_record(args),
        Command::Publish(args) => cmd_ligier::run_publish(args),
        Command::Check(args) => cmd_pipeline::run_check(args),
        Command::Graph(args) => cmd_pipeline::run_graph(args),
        Command::Run(args) => cmd_pipeline::run_run(args),
        Command::Replay(args) => cmd_pipeline::run_replay(args),
        Command::Simulate(args) => cmd_simulate::run(args),
        Command::Serve(args) => cmd_serve::run(args),
        Command::Demo(args) => cmd_demo::run(args),
        Command::Ctl(args) => cmd_ctl::run(args),
        Command::Testchat(args) => cmd_testchat::run(args),
        Command::Db(args) => cmd_db::run(args),
        Command::Testdb(args) => cmd_testdb::run(args),
        Command::Init(args) => cmd_init::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "km3mon", &mut std::io::stdout());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Man { dir } => man(dir),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("km3mon: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Man pages from the CLI definition: `km3mon.1` on stdout, or with
/// `--dir` one page per subcommand too (`km3mon-run.1`, …).
fn man(dir: Option<std::path::PathBuf>) -> anyhow::Result<std::process::ExitCode> {
    let cmd = Cli::command();
    match dir {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            clap_mangen::generate_to(cmd, &d)?;
            eprintln!("man pages written to {}", d.display());
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
