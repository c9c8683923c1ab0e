//! (being written)
#[derive(clap::Args)]
pub struct ServeArgs {}
pub fn run(_: ServeArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not yet")
}
