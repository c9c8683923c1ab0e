//! Where the stream goes: a recording file (ControlHost messages back to
//! back, as `km3mon record` writes them) or a live Ligier, paced by data
//! time.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use daq::controlhost::Prefix;
use ligier::{Client, ClientConfig, ClientError, Shutdown, Speed};
use tracing::{info, warn};

use crate::config::{SimConfig, SLICE_NS};
use crate::sim::Simulator;
use crate::SimError;

/// What was produced.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    pub messages: u64,
    /// Bytes on the wire (prefixes included).
    pub bytes: u64,
    /// Messages and bytes per tag.
    pub per_tag: BTreeMap<String, (u64, u64)>,
    /// Timeslices simulated, and so data time in units of 100 ms.
    pub slices: u64,
    pub corrupted: u64,
    pub reconnects: u64,
    pub elapsed: Duration,
}

impl RunStats {
    fn count(&mut self, tag: &str, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes as u64;
        let entry = self.per_tag.entry(tag.to_string()).or_default();
        entry.0 += 1;
        entry.1 += bytes as u64;
    }

    pub fn data_seconds(&self) -> f64 {
        self.slices as f64 * SLICE_NS as f64 / 1e9
    }

    /// Data time over wall time.
    pub fn real_time_factor(&self) -> f64 {
        self.data_seconds() / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// One line for the operator.
    pub fn summary(&self) -> String {
        let tags: Vec<String> = self
            .per_tag
            .iter()
            .map(|(t, (n, _))| format!("{t} {n}"))
            .collect();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "{} messages, {:.1} MB, {:.1} s of data in {:.2} s ({:.1}× real time, {:.0} msg/s, {:.1} MB/s); {}",
            self.messages,
            self.bytes as f64 / 1e6,
            self.data_seconds(),
            secs,
            self.real_time_factor(),
            self.messages as f64 / secs,
            self.bytes as f64 / 1e6 / secs,
            tags.join(", ")
        )
    }
}

/// Write the whole stream to `out` as a ControlHost recording, as fast as
/// possible, until the configured duration ends or `stop` is triggered.
pub fn write_recording(
    sim: Simulator,
    out: &mut impl Write,
    stop: &Shutdown,
) -> io::Result<RunStats> {
    write_recording_with_truth(sim, out, None, stop)
}

/// [`write_recording`], and the true tracks of the muon events as JSON
/// lines into `truth` (`km3mon simulate --truth`).
pub fn write_recording_with_truth(
    sim: Simulator,
    out: &mut impl Write,
    truth: Option<&mut dyn Write>,
    stop: &Shutdown,
) -> io::Result<RunStats> {
    write_recording_with_progress(sim, out, truth, stop, &mut |_| {})
}

/// [`write_recording_with_truth`], calling `progress` with the number of
/// timeslices written after each one.
pub fn write_recording_with_progress(
    mut sim: Simulator,
    out: &mut impl Write,
    mut truth: Option<&mut dyn Write>,
    stop: &Shutdown,
    progress: &mut dyn FnMut(u64),
) -> io::Result<RunStats> {
    if truth.is_some() {
        sim.record_truth();
    }
    let began = Instant::now();
    let mut stats = RunStats::default();
    let mut checked = 0;
    while let Some(msg) = sim.next() {
        out.write_all(&Prefix::new(msg.tag, msg.payload.len()).encode())?;
        out.write_all(&msg.payload)?;
        stats.count(msg.tag.as_str(), 16 + msg.payload.len());
        sim.recycle(msg.payload);
        if sim.slices_done() != checked {
            checked = sim.slices_done();
            if let Some(t) = truth.as_mut() {
                for m in sim.take_truths() {
                    writeln!(t, "{}", m.json())?;
                }
            }
            progress(checked);
            if stop.is_triggered() {
                break;
            }
        }
    }
    out.flush()?;
    if let Some(t) = truth.as_mut() {
        for m in sim.take_truths() {
            writeln!(t, "{}", m.json())?;
        }
        t.flush()?;
    }
    stats.slices = sim.slices_done();
    stats.corrupted = sim.corrupted;
    stats.elapsed = began.elapsed();
    Ok(stats)
}

/// A live run: the simulation and where to publish it.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub sim: SimConfig,
    pub ligier: ClientConfig,
    /// `Factor(1.0)`: real time; `Max`: as fast as the Ligier takes it.
    pub speed: Speed,
}

/// Publish the stream into a Ligier until the duration ends or `stop` is
/// triggered. Timeslice `k` goes out `(k + 1) × 100 ms / speed` after the
/// start, when a real shore station would have it complete. The
/// `ligier-disconnect` fault closes the connection for its window (the
/// data of the gap is lost, as when a DataFilter loses its Ligier) and
/// then connects again. For `km3mon demo`, run it on its own thread.
pub fn run_to_ligier(config: LiveConfig, stop: Shutdown) -> Result<RunStats, SimError> {
    let mut sim = Simulator::new(config.sim)?;
    let connect = || Client::new(config.ligier.clone()).with_shutdown(stop.clone());
    let mut client = Some(connect());
    let start_ns = sim.start_ns();
    let began = Instant::now();
    let mut stats = RunStats::default();
    let mut windows = sim.disconnects().into_iter().peekable();
    let pace = |data_ns: u64| -> bool {
        // Sleep until the wall time of data time `data_ns`; true on stop.
        let Speed::Factor(speed) = config.speed else {
            return stop.is_triggered();
        };
        let due = Duration::from_secs_f64((data_ns - start_ns) as f64 / 1e9 / speed);
        stop.sleep(due.saturating_sub(began.elapsed()))
    };
    let mut current_slice = None;
    let result = (|| -> Result<(), SimError> {
        while let Some(msg) = sim.next() {
            // Disconnect windows that begin before this message.
            while let Some(&(from, until)) = windows.peek().filter(|(from, _)| *from <= msg.time_ns)
            {
                windows.next();
                if pace(from) {
                    return Ok(());
                }
                if let Some(c) = client.take() {
                    let _ = c.close();
                }
                warn!("fault ligier-disconnect: connection closed");
                if pace(until.min(msg.time_ns)) {
                    return Ok(());
                }
                client = Some(connect());
                stats.reconnects += 1;
                info!("fault ligier-disconnect: reconnecting");
            }
            if current_slice != Some(msg.time_ns) {
                current_slice = Some(msg.time_ns);
                let c = client
                    .as_mut()
                    .expect("connected outside disconnect windows");
                c.flush()?;
                if pace(msg.time_ns + SLICE_NS) {
                    return Ok(());
                }
            }
            let c = client
                .as_mut()
                .expect("connected outside disconnect windows");
            c.send(msg.tag, &msg.payload)?;
            stats.count(msg.tag.as_str(), 16 + msg.payload.len());
            sim.recycle(msg.payload);
        }
        Ok(())
    })();
    if let Some(c) = client.take() {
        match c.close() {
            Ok(_) | Err(ClientError::Stopped) => {}
            Err(e) => warn!("closing the Ligier connection: {e}"),
        }
    }
    stats.slices = sim.slices_done();
    stats.corrupted = sim.corrupted;
    stats.elapsed = began.elapsed();
    match result {
        Ok(()) | Err(SimError::Ligier(ClientError::Stopped)) => Ok(stats),
        Err(e) => Err(e),
    }
}
