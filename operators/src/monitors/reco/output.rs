//! The second stage of `royfit`, on worker 0 in data-time order: residual
//! rows, `royfit.jsonl` lines and the choice of the displays.

use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use pipeline::item::{Item, Row, Time};
use pipeline::runtime::io::write_atomic;
use pipeline::runtime::metrics::NodeMetrics;
use serde::Serialize;

use super::event::EventFit;
use super::fit::DuFit;
use crate::shell::{Monitor, Out};

/// Table name and header of the residual rows (the original's CSV).
pub const TABLE: &str = "reco_timeres";
pub const HEADER: [&str; 7] = ["run", "timestamp", "du", "floor", "dom_id", "t_res", "Q"];

pub struct RoyOut {
    pub jsonl: Option<pipeline::runtime::queue::WriterQueue<String>>,
    pub plot: Option<Sender<Arc<EventFit>>>,
    plot_interval: u32,
    replay: bool,
    metrics: Arc<NodeMetrics>,
    /// Data time (s) of the last display.
    last_plot: Option<u32>,
    header: Vec<String>,
}

impl RoyOut {
    /// The schedule saved by [`Monitor::save`].
    pub fn restore(&mut self, store: &pipeline::runtime::state::StateStore) {
        self.last_plot = store.load_all::<u32>().remove("last_plot");
    }

    pub fn new(plot_interval: u64, replay: bool, metrics: Arc<NodeMetrics>) -> RoyOut {
        RoyOut {
            jsonl: None,
            plot: None,
            plot_interval: plot_interval.min(u64::from(u32::MAX)) as u32,
            replay,
            metrics,
            last_plot: None,
            header: HEADER.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// One line of `royfit.jsonl`, in the documented key order.
#[derive(Serialize)]
struct Line {
    det_id: i32,
    run: i32,
    frame_index: i32,
    trigger_counter: u64,
    du: u32,
    d: f64,
    z_c: f64,
    t0: f64,
    u_z: f64,
    phi: f64,
    #[serde(rename = "Q")]
    q: f64,
    n_hits: usize,
    converged: bool,
}

/// The reported azimuth: the circular mean of the selected PMTs' α. A
/// single line cannot measure a track's azimuth; the fit's ϕ is the
/// plain (unwrapped) mean of α and the original overwrote it with a
/// shifted estimate whose shift is a typo (spec §3).
pub fn azimuth(f: &DuFit) -> f64 {
    let (s, c) = f.hits.iter().fold((0.0, 0.0), |(s, c), h| {
        (s + h.alpha.sin(), c + h.alpha.cos())
    });
    s.atan2(c)
}

pub fn line(ev: &EventFit, du: u32, f: &DuFit) -> String {
    let p = &f.params;
    let l = Line {
        det_id: ev.det_id,
        run: ev.run,
        frame_index: ev.frame_index,
        trigger_counter: ev.trigger_counter,
        du,
        d: round(p.d, 4),
        z_c: round(p.z_c, 4),
        t0: round(p.t0, 3),
        u_z: round(p.u_z, 6),
        phi: round(azimuth(f), 6),
        q: round(f.q, 4),
        n_hits: f.hits.len(),
        converged: f.converged,
    };
    serde_json::to_string(&l).expect("plain numbers serialise")
}

fn round(v: f64, digits: i32) -> f64 {
    let k = 10f64.powi(digits);
    if v.is_finite() {
        (v * k).round() / k
    } else {
        v
    }
}

impl RoyOut {
    fn rows(&self, ev: &EventFit, t: Time, out: &mut Out) {
        for (du, f) in &ev.fits {
            let q = format!("{:.4}", f.q);
            for (h, r) in f.residuals() {
                out.give(
                    t,
                    Item::Row(Box::new(Row {
                        table: TABLE.into(),
                        header: self.header.clone(),
                        cells: vec![
                            ev.run.to_string(),
                            ev.utc_seconds.to_string(),
                            du.to_string(),
                            h.floor.to_string(),
                            h.dom_id.to_string(),
                            format!("{r:.3}"),
                            q.clone(),
                        ],
                    })),
                );
            }
        }
    }
}

impl Monitor<EventFit> for RoyOut {
    fn on_data(&mut self, t: Time, data: Vec<EventFit>, out: &mut Out) {
        let mut lines = String::new();
        for ev in data {
            self.rows(&ev, t, out);
            for (du, f) in &ev.fits {
                lines.push_str(&line(&ev, *du, f));
                lines.push('\n');
            }
            // At most one display per plot_interval of the events' own time.
            let due = self
                .last_plot
                .is_none_or(|l| ev.utc_seconds >= l.saturating_add(self.plot_interval));
            if !ev.hits.is_empty() && due {
                self.last_plot = Some(ev.utc_seconds);
                if let Some(tx) = &self.plot {
                    super::royfit::send_plot(tx, Arc::new(ev), self.replay, &self.metrics);
                }
            }
        }
        if let Some(tx) = &self.jsonl {
            if !lines.is_empty() {
                let n = lines.lines().count() as u64;
                tx.send(lines, n);
            }
        }
    }

    /// End of the stream only: close the channels so the threads finish.
    /// The input ended: closing the channels lets the writer threads
    /// finish (the runtime joins them).
    fn on_end(&mut self, _last: Option<Time>, _out: &mut Out) {
        self.jsonl = None;
        self.plot = None;
    }

    /// The plot schedule survives a restart (a restarted run would
    /// otherwise draw its first event at once).
    fn save(&mut self, store: &pipeline::runtime::state::StateStore) {
        let saved = self.last_plot.map(|l| ("last_plot".to_string(), l));
        store.save(&saved.into_iter().collect());
    }
}

/// Appends the lines to `path` (created with its folder); a full disk:
/// live retried with back-off, a replay gives the file up
/// (`RetryingAppender`).
pub fn jsonl_writer(
    path: &Path,
    rx: Receiver<String>,
    control: &pipeline::control::NodeControl,
    live: bool,
) {
    use crossbeam_channel::RecvTimeoutError;
    let mut out = pipeline::runtime::io::RetryingAppender::new(path, live);
    out.create(control);
    loop {
        let chunk = match out.retry_in() {
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(c) => c,
                Err(RecvTimeoutError::Timeout) => {
                    out.flush(control);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(c) => c,
                Err(_) => break,
            },
        };
        out.push(chunk.as_bytes(), control);
    }
    out.finish(control);
}

/// The plot thread: `ztplot_roy.png` and `ztplot_roy.json`, atomically.
pub fn plotter(
    dir: &Path,
    max_z: f64,
    rx: Receiver<Arc<EventFit>>,
    control: &pipeline::control::NodeControl,
) {
    for ev in rx {
        let done = (|| -> anyhow::Result<()> {
            std::fs::create_dir_all(dir)?;
            super::draw::render(&dir.join("ztplot_roy.png"), &ev, max_z)?;
            write_atomic(&dir.join("ztplot_roy.json"), display_json(&ev).as_bytes())?;
            Ok(())
        })();
        // The next display is the retry; the first good one ends FAILED.
        match done {
            Ok(()) => control.write_ok(Some(&dir.join("ztplot_roy.png"))),
            Err(e) => control.write_failed(&dir.join("ztplot_roy.png"), format!("{e:#}")),
        }
    }
}

/// The numbers of the display.
pub fn display_json(ev: &EventFit) -> String {
    let dus: Vec<serde_json::Value> = ev
        .fits
        .iter()
        .map(|(du, f)| {
            serde_json::json!({
                "du": du,
                "d": f.params.d,
                "z_c": f.params.z_c,
                "t0": f.params.t0,
                "u_z": f.params.u_z,
                "phi": azimuth(f),
                "Q": f.q,
                "converged": f.converged,
                "selected": f.residuals().map(|(h, r)| serde_json::json!({
                    "floor": h.floor, "dom_id": h.dom_id, "t": h.t, "z": h.z, "tot": h.tot, "t_res": r,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "det_id": ev.det_id,
        "run": ev.run,
        "frame_index": ev.frame_index,
        "trigger_counter": ev.trigger_counter,
        "utc_seconds": ev.utc_seconds,
        "trigger_mask": ev.trigger_mask,
        "overlays": ev.overlays,
        "n_doms": ev.n_doms,
        "n_hits": ev.hits.len(),
        "dus": dus,
    })
    .to_string()
}
