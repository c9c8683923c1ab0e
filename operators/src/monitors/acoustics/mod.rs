//! `type = "acoustics"`: whether every DOM still hears the autonomous
//! acoustic beacons (spec monitors.md §3.10, integrations.md §4). Every
//! `interval` of data time (an event-time timer, not the wall clock) the
//! window `(end − delay − interval, end − delay]` is analysed from the
//! KM3NeT DB's `toashort` stream: per DOM and beacon slot the pings that
//! pass the original's filters, coded −1.5 (0 pings), −0.5 (1–3), 0.5
//! (4–7), 1.5 (> 7), and −2.5 when the DB could not be asked (the state
//! the original could never reach). Output: `Online_Acoustic_Monitoring`
//! (DOM × beacon matrix, columns labelled `DU/emitter id`) with its JSON,
//! and the alert `acoustics:<du>` while a DU hears no beacon at all.
//!
//! DB load: per cycle one `runs` request and one `toashort` request for
//! the whole detector (the stream's optional `domid` selector is not
//! used; rows are grouped by `DOMID`), the reply of a run range that is
//! complete (not the latest run) reused from memory: ≤ 2 requests per
//! cycle whatever the detector size (ARCA-230: ≤ 12 per hour at 600 s),
//! one at a time on the node's I/O thread (the original: 2 per DOM and
//! beacon slot, ≈ 25 000 per cycle for ARCA-230). A replay's worker waits
//! for each cycle's answer, so the outputs do not depend on the network's
//! speed; live, the answer is emitted at the first data time after it came.

pub mod algo;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use pipeline::item::{Item, Time, TICKS_PER_SECOND, TICK_NS};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::plot::{Category, Colormap, DomCell, DomMap, Plot, PlotSpec, Rgb};
use pipeline::runtime::Mode;
use pipeline::StreamKind;
use serde::Deserialize;

use crate::shell::alerting::AlertBook;
use crate::shell::alerting::AlertKind;
use crate::shell::{ordered_items, Monitor, Out};
use algo::{Slot, Toa};

/// The alerts this monitor raises, in words (docs/alerts.md).
pub const ALERTS: &[AlertKind] = &[AlertKind {
    key: "acoustics:<du>",
    firing: "hears no acoustic beacon",
    resolved: "hears acoustic beacons again",
}];

pub const PLOT: &str = "Online_Acoustic_Monitoring";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acoustics {
    /// Seconds of data time per cycle and analysis window (`[Acoustics] interval`).
    #[serde(default = "default_interval", deserialize_with = "timespan::de::secs")]
    pub interval: u64,
    /// How far the window lags behind the cycle (TOAs reach the DB late;
    /// the original analysed wall clock − 600 s).
    #[serde(default = "default_interval", deserialize_with = "timespan::de::secs")]
    pub delay: u64,
    /// Ask the KM3NeT DB (false: every cell "no DB connection").
    #[serde(default = "yes")]
    pub db: bool,
    /// Serial number or OID; default `DETECTOR_ID`, else the detector file's.
    #[serde(default)]
    pub detector_id: Option<String>,
    /// Seconds between reminders of a firing alert (0 = none).
    #[serde(default, deserialize_with = "timespan::de::secs")]
    pub reminder_interval: u64,
    /// Analyse in a replay too (default: live only, like the original; a
    /// replay's cycles would each wait for the DB).
    #[serde(default)]
    pub in_replay: bool,
    /// Also analyse, at the first data, the last whole window on the
    /// grid before it (the original ran a cycle when it started): the
    /// plot is there at once instead of up to `interval` later.
    #[serde(default)]
    pub at_start: bool,
}

fn default_interval() -> u64 {
    600
}
fn yes() -> bool {
    true
}

impl NodeConfig for Acoustics {
    const TYPE: &'static str = "acoustics";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "acoustic beacon pings per DOM from the DB's toashort stream, alert acoustics:<du>";
    const EXAMPLE: &'static str = r#"inputs = ["monitoring"]
db = false
in_replay = true
interval = 600"#;
}

impl Node for Acoustics {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            (String::new(), Resource::Plot(PLOT.into())),
            (String::new(), Resource::Detector),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Tmch]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Plots)
    }
    fn outputs(&self) -> Vec<StreamKind> {
        vec![StreamKind::Plots, StreamKind::Alerts]
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if self.interval < 2 * algo::HALF_SIGNAL_S as u64 {
            e.push((
                "interval".into(),
                "must be at least 160 seconds (the signal window)".into(),
            ));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("acoustics needs an input (its clock)"))?;
        let det = ctx.detector()?;
        let doms: Vec<(u32, u32, i32)> = det
            .modules()
            .iter()
            .map(|m| (m.dom_id, m.du, m.floor))
            .collect();
        let mut monitor = AcousticsMonitor::new(self, det.det_id(), doms, &ctx.node);
        let replay = matches!(ctx.env.mode, Mode::Replay { .. });
        monitor.off = replay && !self.in_replay;
        if ctx.index() == 0 && !monitor.off {
            let (req_tx, req_rx) = bounded::<(u64, u64)>(2);
            let (res_tx, res_rx) = bounded(2);
            monitor = monitor.with_io(req_tx, res_rx, replay);
            let service = self.db.then(|| {
                crate::monitors::ahrs::db_service(self.detector_id.clone(), ctx, det.det_id())
            });
            ctx.spawn_io("toashort", move || {
                let mut cache = RunCache::default();
                serve(req_rx, res_tx, |a, b| match &service {
                    Some(s) => fetch(s, &mut cache, a, b),
                    None => Err("DB disabled ([Acoustics] db = false)".into()),
                })
            })?;
        }
        Ok(Some(ordered_items(
            ctx,
            clock(input, monitor.off),
            "acoustics",
            monitor,
        )))
    }
}

/// The TMCH packets are only the monitor's clock: the first record of
/// each batch carries a batch's data time to worker 0 (the same times
/// reach the monitor, 5 M packets for 120 s of ARCA-230 do not); none
/// when the monitor is off.
fn clock(input: ItemStream<'_>, off: bool) -> ItemStream<'_> {
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::channels::pact::Pipeline;
    use timely::dataflow::operators::generic::Operator;
    input.unary::<CapacityContainerBuilder<Vec<Item>>, _, _, _>(
        Pipeline,
        "acoustics_clock",
        move |_, _| {
            move |input, output| {
                input.for_each(|cap, data| {
                    if let Some(first) = data.drain(..).next().filter(|_| !off) {
                        output.session(&cap).give(first);
                    }
                });
            }
        },
    )
}

/// The TOAs of a window, grouped by DOM, or why the DB gave none.
pub type Answer = Result<Fetched, String>;

#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub runs: (i32, i32),
    pub by_dom: Arc<BTreeMap<u32, Vec<Toa>>>,
}

/// The I/O loop: one request at a time (requests queue in a channel of 2).
pub fn serve(
    rx: Receiver<(u64, u64)>,
    tx: Sender<((u64, u64), Answer)>,
    mut f: impl FnMut(u64, u64) -> Answer,
) {
    for (a, b) in rx {
        if tx.send(((a, b), f(a, b))).is_err() {
            return;
        }
    }
}

/// The `toashort` replies of complete run ranges.
#[derive(Default)]
pub struct RunCache {
    replies: BTreeMap<(i32, i32), Fetched>,
}

/// One cycle's DB requests: the run table, then `toashort` of the runs
/// overlapping `(a, b]` (UTC s) unless a complete range is cached.
pub fn fetch(s: &km3db::DetectorService, cache: &mut RunCache, a: u64, b: u64) -> Answer {
    let oid = s
        .det_oid()
        .map_err(|e| format!("no DB connection: {e:#}"))?;
    let runs = s
        .with_client(|c| c.runs(&oid, None))
        .map_err(|e| format!("no DB connection: runs: {e}"))?;
    let start = |r: &km3db::runs::RunRow| r.unix_start_ms.unwrap_or(0) / 1000;
    let latest = runs.last().ok_or("no runs in the DB")?;
    let minrun = runs
        .iter()
        .rev()
        .find(|r| start(r) <= a as i64)
        .unwrap_or(&runs[0])
        .run;
    let maxrun = runs
        .iter()
        .rev()
        .find(|r| start(r) <= b as i64)
        .map_or(minrun, |r| r.run);
    if let Some(f) = cache.replies.get(&(minrun, maxrun)) {
        return Ok(f.clone());
    }
    let (r1, r2) = (minrun.to_string(), maxrun.to_string());
    let t = s.with_client(|c| {
        c.stream(
            "toashort",
            &[("detid", oid.as_str()), ("minrun", &r1), ("maxrun", &r2)],
        )
    });
    let mut by_dom: BTreeMap<u32, Vec<Toa>> = BTreeMap::new();
    match t {
        Err(km3db::DbError::NoData(_)) => {}
        Err(e) => return Err(format!("no DB connection: toashort: {e}")),
        Ok(t) => {
            if t.column("DOMID").is_none() {
                return Err("toashort reply without a DOMID column".into());
            }
            for i in 0..t.rows.len() {
                let num = |c: &str| t.get(i, c).and_then(|x| x.trim().parse::<f64>().ok());
                let (Some(dom), Some(e), Some(qf), Some(base), Some(toa)) = (
                    num("DOMID"),
                    num("EMITTERID"),
                    num("QUALITYFACTOR"),
                    num("UNIXTIMEBASE"),
                    num("TOA_S"),
                ) else {
                    continue;
                };
                by_dom.entry(dom as u32).or_default().push(Toa {
                    emitter: e as i32,
                    qf,
                    t: base + toa,
                });
            }
        }
    }
    let f = Fetched {
        runs: (minrun, maxrun),
        by_dom: Arc::new(by_dom),
    };
    if maxrun < latest.run {
        cache.replies.insert((minrun, maxrun), f.clone());
    }
    Ok(f)
}

pub struct AcousticsMonitor {
    det_id: i32,
    /// (DOM id, DU, floor) of the detector file.
    doms: Vec<(u32, u32, i32)>,
    interval: Time,
    delay_s: u64,
    at_start: bool,
    next: Option<Time>,
    requests: Option<Sender<(u64, u64)>>,
    answers: Option<Receiver<((u64, u64), Answer)>>,
    wait: bool,
    pub alerts: AlertBook,
    /// Cycles skipped because two were still waiting for the DB.
    pub skipped: u64,
    /// A replay without `in_replay`: no cycles.
    pub off: bool,
}

impl AcousticsMonitor {
    pub fn new(c: &Acoustics, det_id: i32, doms: Vec<(u32, u32, i32)>, node: &str) -> Self {
        AcousticsMonitor {
            det_id,
            doms,
            interval: c.interval.max(1) * TICKS_PER_SECOND,
            delay_s: c.delay,
            at_start: c.at_start,
            next: None,
            requests: None,
            answers: None,
            wait: false,
            alerts: AlertBook::new(node, c.reminder_interval).with_kinds(ALERTS),
            skipped: 0,
            off: false,
        }
    }

    pub fn with_io(
        mut self,
        requests: Sender<(u64, u64)>,
        answers: Receiver<((u64, u64), Answer)>,
        wait: bool,
    ) -> Self {
        self.requests = Some(requests);
        self.answers = Some(answers);
        self.wait = wait;
        self
    }

    fn poll(&mut self, t: Time, out: &mut Out) {
        let Some(rx) = self.answers.clone() else {
            return;
        };
        loop {
            match rx.try_recv() {
                Ok((w, a)) => self.emit(t, w, &a, out),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.answers = None;
                    return;
                }
            }
        }
    }

    /// The cycle of grid point `at`, emitted at `t`.
    fn cycle(&mut self, t: Time, at: Time, out: &mut Out) {
        let end_s = (at / TICKS_PER_SECOND).saturating_sub(self.delay_s);
        let w = (
            end_s.saturating_sub(self.interval / TICKS_PER_SECOND),
            end_s,
        );
        let Some(tx) = &self.requests else {
            // Workers other than 0: the monitor's input all goes to 0.
            return;
        };
        if tx.try_send(w).is_err() {
            self.skipped += 1;
            tracing::warn!("acoustics: the DB is still busy with 2 cycles; window {w:?} skipped");
            return;
        }
        if self.wait {
            if let Some(rx) = &self.answers {
                if let Ok((w, a)) = rx.recv() {
                    self.emit(t, w, &a, out);
                }
            }
        }
    }

    /// The matrix, its JSON and the alerts of one analysed window.
    pub fn emit(&mut self, stamp: Time, (a, b): (u64, u64), answer: &Answer, out: &mut Out) {
        let mut cells = Vec::new();
        let mut docs = Vec::new();
        let mut per_du: BTreeMap<u32, bool> = BTreeMap::new();
        // Per DU and beacon slot: how many DOMs heard each emitter id.
        let mut column_emitters: BTreeMap<u32, [BTreeMap<i32, u32>; 3]> = BTreeMap::new();
        let empty = Vec::new();
        for &(dom, du, floor) in &self.doms {
            let slots: [Slot; 3] = match answer {
                Ok(f) => {
                    let toas = f.by_dom.get(&dom).unwrap_or(&empty);
                    algo::dom_slots(toas, a as f64, b as f64)
                }
                Err(_) => {
                    [Slot {
                        code: algo::NO_DB,
                        pings: 0,
                        max_qf: None,
                        first: None,
                    }; 3]
                }
            };
            let emitters = match answer {
                Ok(f) => algo::slots(f.by_dom.get(&dom).unwrap_or(&empty)),
                Err(_) => [0; 3],
            };
            let counts = column_emitters.entry(du).or_default();
            for (k, e) in emitters.iter().enumerate() {
                if *e != 0 {
                    *counts[k].entry(*e).or_insert(0) += 1;
                }
            }
            let heard = per_du.entry(du).or_insert(false);
            *heard |= slots.iter().any(|s| s.code > algo::NO_PINGS);
            for (k, s) in slots.iter().enumerate() {
                cells.push(DomCell {
                    du: du * 10 + k as u32 + 1,
                    floor,
                    value: Some(s.code),
                });
            }
            docs.push(serde_json::json!({
                "dom_id": dom, "du": du, "floor": floor,
                "beacons": slots.iter().zip(emitters).map(|(s, e)| serde_json::json!({
                    "emitter": e, "pings": s.pings, "max_qf": s.max_qf, "code": s.code,
                })).collect::<Vec<_>>(),
            }));
        }
        let now_ns = stamp * TICK_NS;
        let mut silent = Vec::new();
        if answer.is_ok() {
            for (&du, &heard) in &per_du {
                if !heard {
                    silent.push(du);
                }
                let key = format!("acoustics:{du}");
                let alert = self.alerts.set_at(
                    &key,
                    !heard,
                    now_ns,
                    Some((du, 0)),
                    || {
                        format!(
                            "DU{du} heard no acoustic beacon in {}–{}",
                            crate::shell::iso(a as i64),
                            crate::shell::iso(b as i64)
                        )
                    },
                    || format!("DU{du} hears acoustic beacons again"),
                );
                if let Some(al) = alert {
                    out.give(stamp, Item::Alert(Box::new(al)));
                }
            }
        }
        let dus: Vec<u32> = per_du
            .keys()
            .flat_map(|d| (1..=3).map(move |k| d * 10 + k))
            .collect();
        // A column's label: its DU and the emitter id its DOMs heard in
        // that slot most often (the same three beacons for the whole
        // detector, normally); `?` when none heard one.
        let labels: Vec<String> = dus
            .iter()
            .map(|c| {
                let (du, k) = (c / 10, (c % 10) as usize - 1);
                match column_emitters.get(&du).and_then(|e| {
                    e[k].iter()
                        .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
                }) {
                    Some((id, _)) => format!("{du}/{id}"),
                    None => format!("{du}/?"),
                }
            })
            .collect();
        let when = crate::shell::iso(b as i64);
        let title = format!(
            "{} Detection of the pings emitted by autonomous beacons (column = DU/beacon emitter id){}",
            when.get(..16).unwrap_or(&when).replace('T', " "),
            match answer {
                Err(e) => format!(" — {e}"),
                Ok(_) => String::new(),
            }
        );
        let json = serde_json::json!({
            "det_id": self.det_id,
            "window": [crate::shell::iso(a as i64), crate::shell::iso(b as i64)],
            "status": match answer { Ok(_) => "ok".to_string(), Err(e) => e.clone() },
            "runs": answer.as_ref().ok().map(|f| [f.runs.0, f.runs.1]),
            "dus_without_beacons": silent,
            "doms": docs,
        });
        let cat = |value: f64, color: Rgb, label: &str| Category {
            value,
            color,
            label: label.into(),
        };
        let map = DomMap {
            title,
            data_time_ns: b * 1_000_000_000,
            colorbar_label: "pings".into(),
            vmin: -3.0,
            vmax: 2.0,
            colormap: Colormap::Viridis,
            under: Rgb(0, 0, 0),
            over: Rgb(0, 0, 0),
            missing: Rgb(255, 255, 255),
            dus,
            max_floor: self.doms.iter().map(|d| d.2).max().unwrap_or(0),
            doms: cells,
            columns: Some(pipeline::plot::Columns {
                title: "DU / beacon (emitter id)".into(),
                labels,
            }),
            categories: vec![
                cat(algo::NO_DB, Rgb(153, 0, 255), "no DB connection"),
                cat(algo::NO_PINGS, Rgb(0, 0, 0), "0 pings"),
                cat(algo::FEW, Rgb(255, 77, 0), "1-3 pings"),
                cat(algo::SOME, Rgb(255, 255, 0), "4-7 pings"),
                cat(algo::MANY, Rgb(51, 230, 0), "more than 7 pings"),
            ],
        };
        out.give(
            stamp,
            Item::Plot(Arc::new(Plot {
                name: PLOT.into(),
                spec: PlotSpec::DomMap(map),
                json: Some(json.to_string()),
            })),
        );
    }
}

impl Monitor<Item> for AcousticsMonitor {
    fn on_data(&mut self, t: Time, _data: Vec<Item>, out: &mut Out) {
        if self.off {
            return;
        }
        if self.next.is_none() {
            // Cycles on the interval grid of data time.
            let next = (t / self.interval + 1) * self.interval;
            self.next = Some(next);
            out.timer(next);
            if self.at_start {
                self.cycle(t, next - self.interval, out);
            }
        }
        self.poll(t, out);
        self.alerts.remind(t, out);
    }

    fn on_timer(&mut self, t: Time, out: &mut Out) {
        self.poll(t, out);
        if self.next.is_some_and(|n| t >= n) {
            self.cycle(t, t, out);
            let next = t + self.interval;
            self.next = Some(next);
            out.timer(next);
        }
        self.alerts.remind(t, out);
    }
}
