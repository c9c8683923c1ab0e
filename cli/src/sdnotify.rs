//! systemd's service protocol for `km3mon run` under `Type=notify`:
//! `READY=1` once the graph is built and every worker has taken a step,
//! then `WATCHDOG=1` from the runtime's main loop while every worker keeps
//! stepping, at half the unit's `WatchdogSec=`. A worker stuck in an
//! operator stops the pings, and systemd restarts the service. Outside
//! systemd (no `NOTIFY_SOCKET`) nothing is sent.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// The runtime's `alive` hook, or `None` when not started by systemd.
pub fn hook() -> Option<Box<dyn FnMut() + Send>> {
    std::env::var_os("NOTIFY_SOCKET")?;
    let every = watchdog_interval().map(|d| d / 2).filter(|d| !d.is_zero());
    match every {
        Some(e) => tracing::info!("systemd watchdog: pinging every {}", timespan::format(e)),
        None => tracing::info!("systemd: notifying readiness (no watchdog)"),
    }
    let mut ready = false;
    let mut last = Instant::now();
    Some(Box::new(move || {
        if !ready {
            ready = true;
            last = Instant::now();
            send(&[NotifyState::Ready, NotifyState::Status("monitoring")]);
            return;
        }
        if let Some(e) = every {
            if last.elapsed() >= e {
                last = Instant::now();
                send(&[NotifyState::Watchdog]);
            }
        }
    }))
}

/// `WATCHDOG_USEC`, as sd_watchdog_enabled(3) reads it: for this process
/// unless `WATCHDOG_PID` names another one. (The crate's own check also
/// wants `WATCHDOG_PID` set, which systemd does not promise.)
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// `STOPPING=1`: the run is shutting down (flushing sinks, saving state).
pub fn stopping() {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        send(&[NotifyState::Stopping]);
    }
}

fn send(state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!("systemd notify: {e}");
    }
}
