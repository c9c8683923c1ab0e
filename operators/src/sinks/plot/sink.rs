//! The `plots` sink node: requests from every worker meet on the leader,
//! whose render thread draws them (see the module above for coalescing).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use pipeline::item::{Item, Time};
use pipeline::operator::{
    check_relative, BuildContext, ItemStream, Node, NodeConfig, Resource, Role,
};
use pipeline::plot::Plot;
use pipeline::runtime::queue::WriterQueue;
use pipeline::StreamKind;
use serde::Deserialize;

use super::render_with;
use crate::shell::{ordered_sink, Monitor, Out};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlotSink {
    /// Directory under `--out` for the PNG and JSON files.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// Wall-clock seconds between two renderings of one file: a newer
    /// request arriving sooner waits (newest wins) until then. Live, every
    /// plot updates far less often; a full-speed replay would otherwise
    /// draw each file every few hundred ms for nobody. The last request of
    /// every file is drawn when the stream ends, so the final files do not
    /// depend on this wall-clock throttle. 0 = draw every request.
    #[serde(
        default = "default_min_interval",
        deserialize_with = "timespan::de::secs_f64"
    )]
    pub min_interval: f64,
    /// Share of wall time the render threads may spend drawing: after a
    /// batch that took B seconds of drawing, the next one waits until
    /// B / share has passed since it started (newest request wins
    /// meanwhile). Live, a window's plots take far less than this; a
    /// full-speed replay of a large detector would otherwise redraw every
    /// per-DU file for every window and take a core from the dataflow.
    /// The last request of every file is still drawn at the end. Not
    /// applied when `min_interval` is 0.
    #[serde(default = "default_busy_share")]
    pub busy_share: f64,
    /// In a full-speed replay, wall-clock seconds before a file is first
    /// drawn and between two drawings of it (newest request wins). Such a
    /// replay closes windows many times a second and draws every file's
    /// last request at its end anyway; drawing the ones in between took
    /// CPU from the dataflow (on 2 cores a fifth of the plots of an
    /// ARCA-230 replay were drawn only to be replaced). A long replay
    /// still shows its progress every `replay_interval`. Live runs and
    /// paced replays (`--speed`) keep `min_interval`; not applied when
    /// `min_interval` is 0. The final files never depend on it.
    #[serde(
        default = "default_replay_interval",
        deserialize_with = "timespan::de::secs_f64"
    )]
    pub replay_interval: f64,
}

/// Data → plot latency: when a file was written minus the data time it
/// shows (live: what a shifter waits; a replay: how old the data is).
fn plot_latency() -> Arc<latency::Family> {
    static F: std::sync::OnceLock<Arc<latency::Family>> = std::sync::OnceLock::new();
    F.get_or_init(|| latency::global().histogram_of(&latency::PLOT_LATENCY))
        .clone()
}

fn default_dir() -> PathBuf {
    PathBuf::from("plots")
}

fn default_min_interval() -> f64 {
    2.0
}

fn default_busy_share() -> f64 {
    0.25
}

fn default_replay_interval() -> f64 {
    10.0
}

impl NodeConfig for PlotSink {
    const TYPE: &'static str = "plots";
    const ROLE: Role = Role::Sink;
    const ABOUT: &'static str =
        "renders plots to PNG (atomic) with the numbers beside them as JSON";
    const EXAMPLE: &'static str = r#"inputs = ["dom_rates_example"]
dir = "plots""#;
}

impl Node for PlotSink {
    /// The directory's PNG and JSON files: one plots sink per directory.
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![("dir".into(), Resource::file(&self.dir.join("*")))]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Plots]
    }
    fn produces(&self) -> Option<StreamKind> {
        None
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = check_relative("dir", &self.dir).into_iter().collect();
        if !(0.0..=3600.0).contains(&self.min_interval) {
            e.push(("min_interval".into(), "must be within 0 and 3600 s".into()));
        }
        if !(0.0..=3600.0).contains(&self.replay_interval) {
            e.push((
                "replay_interval".into(),
                "must be within 0 and 3600 s".into(),
            ));
        }
        if !(self.busy_share > 0.0 && self.busy_share <= 1.0) {
            e.push(("busy_share".into(), "must be within (0, 1]".into()));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("plots needs an input"))?;
        let mut tx: Option<WriterQueue<Arc<Plot>>> = None;
        if ctx.is_leader() {
            // Live, a full queue drops the request: a later one redraws
            // the same file.
            let (s, r) = ctx.writer_queue("plot render queue full");
            let dir = ctx.out_path(&self.dir);
            let metrics = ctx.metrics.clone();
            let full_speed = matches!(
                ctx.env.mode,
                pipeline::runtime::Mode::Replay { speed: None, .. }
            );
            let pace = Pace {
                min_interval: Duration::from_secs_f64(self.min_interval),
                busy_share: self.busy_share,
                hold: if full_speed {
                    Duration::from_secs_f64(self.replay_interval)
                } else {
                    Duration::ZERO
                },
            };
            let control = ctx.node_control();
            let live = matches!(ctx.env.mode, pipeline::runtime::Mode::Live);
            ctx.spawn_io("render", move || {
                renderer(&dir, r, &metrics, &control, pace, live)
            })?;
            tx = Some(s);
        }
        ordered_sink(ctx, input, "plots", PlotsTo { tx });
        Ok(None)
    }
}

/// The plots of each completed timestamp, by name, to the render thread.
struct PlotsTo {
    tx: Option<WriterQueue<Arc<Plot>>>,
}

impl Monitor<Item> for PlotsTo {
    fn on_data(&mut self, _t: Time, data: Vec<Item>, _out: &mut Out) {
        let mut plots: Vec<Arc<Plot>> = data
            .into_iter()
            .filter_map(|i| match i {
                Item::Plot(p) => Some(p),
                _ => None,
            })
            .collect();
        // Two requests for one file at one time: the content decides, so
        // the last one (the one drawn) is the same in every run.
        plots.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.json.cmp(&b.json)));
        if let Some(tx) = &self.tx {
            for p in plots {
                tx.send(p, 1);
            }
        }
    }
    fn on_end(&mut self, _last: Option<Time>, _out: &mut Out) {
        self.tx = None;
    }
}

/// How often the render thread may draw (see [`PlotSink`]'s keys).
#[derive(Debug, Clone, Copy)]
struct Pace {
    min_interval: Duration,
    busy_share: f64,
    /// `replay_interval` in a full-speed replay, else zero.
    hold: Duration,
}

impl Pace {
    /// The wall time between two drawings of one file.
    fn interval(&self) -> Duration {
        if self.min_interval.is_zero() {
            Duration::ZERO
        } else {
            self.min_interval.max(self.hold)
        }
    }

    /// When a file may first be drawn, for a renderer started at `start`.
    fn first(&self, start: Instant) -> Option<Instant> {
        (!self.min_interval.is_zero() && !self.hold.is_zero()).then(|| start + self.hold)
    }

    /// When the batch after one that started at `start` and kept the
    /// render threads busy for `busy` may start; `None`: at once.
    fn next_batch(&self, start: Instant, busy: Duration) -> Option<Instant> {
        if self.min_interval.is_zero() {
            return None;
        }
        Some(start + busy.div_f64(self.busy_share))
    }
}

/// The render thread: newest request per file wins; a file is drawn at
/// most once per `min_interval` of wall time (a full-speed replay: not
/// before `replay_interval` has passed, then at most once per it), a batch waits until the
/// previous one's drawing time fits in `busy_share` of the wall time, and
/// every file's last request is drawn before the thread ends.
///
/// A file that cannot be written (disk full) turns the node FAILED naming
/// it. Live, its request waits and every drawing pauses for a back-off
/// (1 s doubling to 5 min; newer requests still replace older ones), then
/// is tried again; the first good write makes the node RUNNING again. A
/// replay drops the request and goes on (each failing file logged once).
fn renderer(
    dir: &Path,
    rx: Receiver<Arc<Plot>>,
    metrics: &pipeline::runtime::metrics::NodeMetrics,
    control: &pipeline::control::NodeControl,
    pace: Pace,
    live: bool,
) {
    let first_due = pace.first(Instant::now());
    let interval = pace.interval();
    let mut waiting: BTreeMap<String, Arc<Plot>> = BTreeMap::new();
    let mut drawn: HashMap<String, Instant> = HashMap::new();
    let mut not_before: Option<Instant> = None;
    let mut open = true;
    let mut buffers: [Vec<u8>; RENDER_THREADS] = Default::default();
    let mut backoff = pipeline::runtime::io::Backoff::default();
    while open || !waiting.is_empty() {
        let due_at = |name: &String| {
            let own = match drawn.get(name) {
                Some(t) => Some(*t + interval),
                None => first_due,
            };
            own.max(not_before)
        };
        let paused = backoff.wait().map(|w| Instant::now() + w);
        // Sleep until a request arrives or a waiting one becomes due.
        let next_due = waiting
            .keys()
            .map(|n| {
                due_at(n)
                    .unwrap_or_else(Instant::now)
                    .max(paused.unwrap_or(Instant::now()))
            })
            .min();
        if open {
            let got = match next_due {
                Some(due) => rx.recv_deadline(due),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match got {
                Ok(p) => {
                    waiting.insert(p.name.clone(), p);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
            loop {
                match rx.try_recv() {
                    Ok(p) => {
                        waiting.insert(p.name.clone(), p);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
        }
        let now = Instant::now();
        if open && paused.is_some_and(|p| p > now) {
            continue;
        }
        let names: Vec<String> = waiting
            .keys()
            .filter(|n| !open || due_at(n).is_none_or(|d| d <= now))
            .cloned()
            .collect();
        if names.is_empty() {
            continue;
        }
        let batch: Vec<(String, Arc<Plot>)> = names
            .into_iter()
            .filter_map(|n| waiting.remove_entry(&n))
            .collect();
        for (name, _) in &batch {
            drawn.insert(name.clone(), now);
        }
        let (busy, failed) = render_batch(dir, &batch, metrics, control, &mut buffers);
        not_before = pace.next_batch(now, busy);
        if failed.is_empty() {
            backoff.succeeded();
        } else if live && open {
            backoff.failed();
            for i in failed {
                let (name, plot) = &batch[i];
                // A newer request for the file replaces the failed one.
                waiting.entry(name.clone()).or_insert_with(|| plot.clone());
            }
        }
    }
}

/// Renders independent files on up to [`RENDER_THREADS`] threads;
/// returns the time spent drawing, summed over the threads, and the
/// indices of the requests that could not be written.
fn render_batch(
    dir: &Path,
    batch: &[(String, Arc<Plot>)],
    metrics: &pipeline::runtime::metrics::NodeMetrics,
    control: &pipeline::control::NodeControl,
    buffers: &mut [Vec<u8>; RENDER_THREADS],
) -> (Duration, Vec<usize>) {
    let failed = std::sync::Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let busy_ns = AtomicU64::new(0);
    let work = |buf: &mut Vec<u8>| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((name, plot)) = batch.get(i) else {
            break;
        };
        let start = Instant::now();
        let done = metrics.busy(|| render_with(dir, plot, buf));
        busy_ns.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match done {
            Ok(()) => {
                control.write_ok(None);
                plot_latency()
                    .get(&[name])
                    .record(latency::since_unix_ns(plot.data_time_ns()));
            }
            Err(e) => {
                // The node's FAILED state says it once; each file is
                // logged once (a full disk fails every plot of every
                // window).
                let png = dir.join(format!("{name}.png"));
                control.write_failed(&png, e.root_cause());
                failed.lock().expect("failed list").push(i);
            }
        }
    };
    let threads = RENDER_THREADS.min(batch.len()).max(1);
    let (first, rest) = buffers.split_at_mut(1);
    if threads == 1 {
        work(&mut first[0]);
    } else {
        let work = &work;
        std::thread::scope(|s| {
            for buf in rest.iter_mut().take(threads - 1) {
                s.spawn(move || work(buf));
            }
            work(&mut first[0]);
        });
    }
    (
        Duration::from_nanos(busy_ns.into_inner()),
        failed.into_inner().expect("failed list"),
    )
}

/// Threads rendering one batch of requests (a window's 115 per-DU
/// waterfalls are independent files). Two: the monitoring host runs the
/// dataflow on the other cores.
const RENDER_THREADS: usize = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_waits_until_the_last_ones_drawing_fits_the_share() {
        let pace = Pace {
            min_interval: Duration::from_secs(2),
            busy_share: 0.25,
            hold: Duration::ZERO,
        };
        let start = Instant::now();
        assert_eq!(
            pace.next_batch(start, Duration::from_millis(300)),
            Some(start + Duration::from_millis(1200))
        );
        let every_request = Pace {
            min_interval: Duration::ZERO,
            ..pace
        };
        assert_eq!(
            every_request.next_batch(start, Duration::from_secs(1)),
            None
        );
        assert_eq!(pace.interval(), Duration::from_secs(2));
        assert_eq!(pace.first(start), None);
        // A full-speed replay holds every file back, first drawing included.
        let replay = Pace {
            hold: Duration::from_secs(10),
            ..pace
        };
        assert_eq!(replay.interval(), Duration::from_secs(10));
        assert_eq!(replay.first(start), Some(start + Duration::from_secs(10)));
        let replay_every_request = Pace {
            min_interval: Duration::ZERO,
            ..replay
        };
        assert_eq!(replay_every_request.interval(), Duration::ZERO);
        assert_eq!(replay_every_request.first(start), None);
    }
}
