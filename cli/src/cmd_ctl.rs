//! `km3mon ctl`: the `supervisorctl` of a running graph, over the control
//! socket of `km3mon run` / `km3mon demo` (docs/control.md); and the glue
//! that gives those two their socket and the web its controller.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use pipeline::control::socket::{self, Request, SocketServer};
use pipeline::control::Control;

/// The socket's file name under `--out` (or the demo's `--dir`).
pub const SOCKET_NAME: &str = "km3mon.sock";

#[derive(clap::Args)]
pub struct CtlArgs {
    /// The control socket (default: OUT/km3mon.sock).
    #[arg(long, value_name = "PATH", conflicts_with = "out")]
    socket: Option<PathBuf>,
    /// The --out of the running `km3mon run` (or the demo's --dir).
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Print the structured reply (JSON) instead of the text.
    #[arg(long)]
    json: bool,
    /// The command (default: status): status [TARGET…],
    /// stop|start|restart TARGET…, silence PATTERN DURATION [reason…],
    /// unsilence PATTERN, silences, logs NODE [-f] [--tail N], help.
    /// TARGET: NODE, GROUP:NODE, GROUP:* or all (quote the `*`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

/// Exit codes: 0 done, 1 the command failed, 2 no connection.
pub fn run(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .socket
        .clone()
        .unwrap_or_else(|| args.out.join(SOCKET_NAME));
    // `logs NODE -f`: the client follows by asking for what came after
    // the last line it printed.
    let follow = args
        .command
        .first()
        .is_some_and(|v| v.eq_ignore_ascii_case("logs"))
        && args.command.iter().any(|a| a == "-f" || a == "--follow");
    if follow {
        let words: Vec<String> = args
            .command
            .iter()
            .filter(|a| *a != "-f" && *a != "--follow")
            .cloned()
            .collect();
        return follow_logs(&path, &words.join(" "));
    }
    let req = Request {
        command: if args.command.is_empty() {
            "status".into()
        } else {
            args.command.join(" ")
        },
        user: user_name(),
    };
    let reply = match socket::request(&path, &req, Duration::from_secs(30)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "km3mon ctl: cannot talk to {}: {e} (is `km3mon run` or `km3mon demo` running there? see --socket / --out)",
                path.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else if reply.ok {
        // `logs` of a node that has said nothing yet: no empty line.
        if !reply.text.is_empty() {
            println!("{}", reply.text);
        }
    } else {
        eprintln!(
            "km3mon ctl: {}",
            reply.error.as_deref().unwrap_or(&reply.text)
        );
    }
    Ok(if reply.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `logs NODE -f`: the last lines, then new ones as they come, until the
/// run goes away (exit 0) or Ctrl-C.
fn follow_logs(path: &Path, command: &str) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut line = command.to_string();
    let mut first = true;
    loop {
        let req = Request {
            command: line.clone(),
            user: user_name(),
        };
        let reply = match socket::request(path, &req, Duration::from_secs(30)) {
            Ok(r) => r,
            Err(e) if first => {
                eprintln!("km3mon ctl: cannot talk to {}: {e}", path.display());
                return Ok(ExitCode::from(2));
            }
            // The run stopped (or restarts): the follow ends with it.
            Err(_) => return Ok(ExitCode::SUCCESS),
        };
        if !reply.ok {
            eprintln!(
                "km3mon ctl: {}",
                reply.error.as_deref().unwrap_or(&reply.text)
            );
            return Ok(ExitCode::from(1));
        }
        if !reply.text.is_empty() {
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{}", reply.text)
                .and_then(|_| out.flush())
                .is_err()
            {
                return Ok(ExitCode::SUCCESS);
            }
        }
        if first {
            first = false;
            // Everything new from here on, not just the tail.
            line = line
                .split_whitespace()
                .scan(false, |skip, w| {
                    let keep = !*skip && w != "--tail" && w != "-n";
                    *skip = w == "--tail" || w == "-n";
                    Some(keep.then_some(w))
                })
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
                + " --tail 100000";
        }
        let after = reply.log_seq.unwrap_or(0);
        let base = line.split(" --after ").next().unwrap_or(&line).to_string();
        line = format!("{base} --after {after}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Who runs `ctl`, for the audit line (the socket is 0600: the same
/// account as the pipeline, so the login name is what tells people apart).
fn user_name() -> String {
    let who = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .or_else(account_name)
        .unwrap_or_else(|| "unknown".into());
    format!("{who} (ctl)")
}

/// The login name of this process's uid, from /etc/passwd (services
/// often run without USER set).
fn account_name() -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
    })
}

/// The control socket of `run`/`demo`: `path`, or OUT/km3mon.sock.
pub fn start_socket(
    control: Arc<Control>,
    path: Option<&Path>,
    out: &Path,
) -> anyhow::Result<SocketServer> {
    let path = path.map_or_else(|| out.join(SOCKET_NAME), Path::to_path_buf);
    let s = socket::serve(control, &path)
        .map_err(|e| anyhow::anyhow!("control socket {}: {e}", path.display()))?;
    tracing::info!(
        "control socket {} (km3mon ctl --socket {0} status)",
        path.display()
    );
    Ok(s)
}

/// The web's view of the control plane.
pub struct WebController(pub Arc<Control>);

impl web::Controller for WebController {
    fn execute(&self, command: &str, user: &str) -> web::ControlOutcome {
        let r = self.0.execute(command, user);
        web::ControlOutcome {
            ok: r.ok,
            text: r.text.clone(),
            body: serde_json::to_value(&r).unwrap_or_default(),
        }
    }
    fn silences(&self) -> serde_json::Value {
        serde_json::to_value(self.0.silences()).unwrap_or_default()
    }
}
