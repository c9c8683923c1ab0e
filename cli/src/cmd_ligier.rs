//! (being written)
#[derive(clap::Args)]
pub struct LigierArgs {}
#[derive(clap::Args)]
pub struct MirrorArgs {}
#[derive(clap::Args)]
pub struct RecordArgs {}
#[derive(clap::Args)]
pub struct PublishArgs {}
pub fn run_ligier(_: LigierArgs) -> anyhow::Result<std::process::ExitCode> { anyhow::bail!("not yet") }
pub fn run_mirror(_: MirrorArgs) -> anyhow::Result<std::process::ExitCode> { anyhow::bail!("not yet") }
pub fn run_record(_: RecordArgs) -> anyhow::Result<std::process::ExitCode> { anyhow::bail!("not yet") }
pub fn run_publish(_: PublishArgs) -> anyhow::Result<std::process::ExitCode> { anyhow::bail!("not yet") }
