//! `km3mon init DIR`: a site's starting files, from what is built into the
//! binary: `pipeline.toml` (the commented site config, the web password
//! taken from the environment), `km3mon.toml` (the full suite graph, the
//! one `run` uses without `--graph`) and `example.env` (the variables the
//! systemd units and the compose file read). Then the next steps.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct InitArgs {
    /// Where to write (created if missing), e.g. /etc/km3mon.
    dir: PathBuf,
    /// Overwrite files that exist.
    #[arg(long)]
    force: bool,
}

const HEADER: &str = "\
# km3mon site configuration, written by `km3mon init`.
#
# The web password comes from the environment ([WebServer] password_env,
# set in the site's .env); the variables of the [env] table below are
# defaults that the .env overrides. `km3mon check --config pipeline.toml`
# validates this file with the graph.
";

/// The site config `init` writes: the built-in example with the password
/// moved to the environment.
pub fn site_config() -> String {
    let body = pipeline::site::EXAMPLE
        .lines()
        .skip_while(|l| l.starts_with('#') || l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let body = body.replacen(
        "username = \"km3net\"\npassword = \"change-me\"",
        "username = \"km3net\"\n# The password is read from this environment variable (the site's .env);\n\
         # `password = \"…\"` here instead works too, but keeps it in this file.\n\
         password_env = \"KM3MON_WEB_PASSWORD\"",
        1,
    );
    format!("{HEADER}\n{body}\n")
}

pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files: [(&str, String); 3] = [
        ("pipeline.toml", site_config()),
        ("km3mon.toml", crate::builtin::GRAPH.to_string()),
        ("example.env", crate::builtin::EXAMPLE_ENV.to_string()),
    ];
    let exist: Vec<String> = files
        .iter()
        .map(|(n, _)| dir.join(n))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !exist.is_empty() && !args.force {
        eprintln!(
            "km3mon init: {} already there; nothing written (--force overwrites)",
            exist.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    for (name, text) in &files {
        write(&dir.join(name), text)?;
    }
    print!("{}", next_steps(dir));
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    atomicfile::write(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

fn next_steps(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "wrote {d}/pipeline.toml, {d}/km3mon.toml and {d}/example.env

next steps (docs/deploy.md has them in full):
  1. cp {d}/example.env {d}/.env && chmod 600 {d}/.env
     and set DETECTOR_ID, DAQ_LIGIER_IP/PORT, LOG_LIGIER_IP/PORT,
     KM3MON_WEB_PASSWORD (and KM3NET_DB_COOKIE)
  2. set [Detector] file in {d}/pipeline.toml (or pass --detector FILE.detx)
  3. km3mon check --config {d}/pipeline.toml {d}/km3mon.toml
  4. start: systemctl enable --now km3mon.target   (deploy/systemd)
        or: docker compose up -d                     (deploy/compose)
        or by hand: set -a; . {d}/.env; set +a
                    km3mon run --config {d}/pipeline.toml --graph {d}/km3mon.toml --out /var/lib/km3mon
  5. km3mon ctl --out /var/lib/km3mon status
"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_site_config_takes_the_password_from_the_environment() {
        let s = super::site_config();
        assert!(s.contains("\npassword_env = \"KM3MON_WEB_PASSWORD\""));
        assert!(!s.contains("password = \"change-me\"\n# Listen"));
        assert!(s.starts_with("# km3mon site configuration, written by `km3mon init`"));
        let t: toml::Table = toml::from_str(&s).unwrap();
        assert!(t["WebServer"].get("password").is_none());
    }
}
