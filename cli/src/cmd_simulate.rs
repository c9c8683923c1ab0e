//! (being written)
#[derive(clap::Args)]
pub struct SimulateArgs {}
pub fn run(_: SimulateArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not yet")
}
