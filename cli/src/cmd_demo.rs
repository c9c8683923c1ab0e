//! (being written)
#[derive(clap::Args)]
pub struct DemoArgs {}
pub fn run(_: DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not yet")
}
