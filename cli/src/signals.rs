//! Clean stops for the long-running subcommands.

use std::thread;

use anyhow::Context as _;
use ligier::Shutdown;
use tracing::info;

/// SIGINT/SIGTERM trigger a clean stop (files flushed, connections
/// closed); a second signal exits at once with status 130.
pub fn stop_on_signals() -> anyhow::Result<Shutdown> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Shutdown::new();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install signal handlers")?;
    let flag = stop.clone();
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if flag.is_triggered() {
                    std::process::exit(130);
                }
                info!(signal, "stopping (signal again to exit at once)");
                flag.trigger();
            }
        })?;
    Ok(stop)
}
