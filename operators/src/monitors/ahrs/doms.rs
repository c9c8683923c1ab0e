//! Stage 1 of `ahrs_calibration`, on the DOM's worker: each packet's
//! orientation from its A and H vectors and the compass's constants,
//! averaged per DOM per window; a closed window leaves as one
//! [`DomWindow`] per DOM for stage 2 (rows and plots, on worker 0). The
//! per-packet fit was the whole node's cost (~10 % of a core on
//! ARCA-230, all on worker 0); now it is spread like `pmt_rates`'.
//!
//! The constants reach every worker of a process from one loader (an I/O
//! thread of the process's first worker to build the node): a
//! [`Feed`] hands each subscriber the latest set and every later one.
//! A replay's workers wait for the first set before their first packet,
//! so every DOM is judged under the same constants whatever the worker
//! count; live, a refresh may reach two workers a batch apart (as it
//! reached the one worker at an arbitrary data time before).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{unbounded, Receiver, Sender, TryRecvError};
use pipeline::item::{Item, Time, TICKS_PER_SECOND};
use pipeline::runtime::metrics::{DropReason, NodeMetrics};
use pipeline::runtime::state::StateStore;
use pipeline::runtime::RunEnv;
use serde::{Deserialize, Serialize};

use super::constants::ConstantSet;
use super::math::{orientation, AngleMean, Constants};
use crate::shell::{Monitor, Out, Tumbling};
use daq::detector::IdMap;

/// One DOM's window, for stage 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomWindow {
    /// The window's end (ticks): the drained windows at the end are
    /// told apart by it.
    pub window_end: Time,
    /// Drained at the end of the input: stage 2 writes it at the last
    /// data time of all workers.
    pub partial: bool,
    /// The newest packet time this worker had seen (ns).
    pub last_ns: u64,
    /// Which constant set (1, 2, … as received): a new one clears the
    /// DOMs named as missing.
    pub generation: u64,
    pub dom: u32,
    pub du: u32,
    pub floor: i32,
    pub what: WindowKind,
    /// The constants' source line (plots and JSON).
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WindowKind {
    /// Mean yaw (0–360), pitch, roll in degrees.
    Angles([f64; 3]),
    /// Packets, but no constants: why.
    Missing(String),
    /// No DOM: only this worker's `last_ns` at the end of the input.
    Seen,
}

/// One DOM's window: circular means of yaw, pitch, roll.
pub type DomMeans = IdMap<[AngleMean; 3]>;

/// What a DOM's packets do under the current constants, decided at its
/// first packet: then a packet costs one id lookup.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Base,
    Unknown,
    /// Its constants in `calibrated`.
    Calibrated(u32),
    Missing,
}

/// The constants of one run and process, for every worker's stage.
pub struct Feed {
    /// The latest set and the subscribers.
    inner: Mutex<(Option<Arc<ConstantSet>>, Vec<Subscriber>)>,
    /// The first IO_MONIT packet came (the loader asks nothing before).
    pub start: Sender<()>,
    /// Stages subscribed, and those whose input ended or stopped: the
    /// loader stops waiting when all have.
    pub users: AtomicUsize,
    pub ended: AtomicUsize,
}

type Subscriber = Sender<Arc<ConstantSet>>;

impl Feed {
    /// The node's feed in this run and process, and its start signal's
    /// receiver if the caller made it (then it starts the loader).
    pub fn of(env: &RunEnv, node: &str) -> (Arc<Feed>, Option<Receiver<()>>) {
        let mut started = None;
        let (feed, _) = env.shared(&format!("ahrs constants of {node}"), || {
            let (start, rx) = crossbeam_channel::bounded(1);
            started = Some(rx);
            Feed {
                inner: Mutex::new((None, Vec::new())),
                start,
                users: AtomicUsize::new(0),
                ended: AtomicUsize::new(0),
            }
        });
        (feed, started)
    }

    /// A receiver of the latest set (at once, if there is one) and of
    /// every later one.
    pub fn subscribe(&self) -> Receiver<Arc<ConstantSet>> {
        let (tx, rx) = unbounded();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = &inner.0 {
            let _ = tx.send(set.clone());
        }
        inner.1.push(tx);
        self.users.fetch_add(1, Ordering::SeqCst);
        rx
    }

    pub fn publish(&self, set: Arc<ConstantSet>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.1.retain(|tx| tx.send(set.clone()).is_ok());
        inner.0 = Some(set);
    }

    /// Every subscribed stage's input ended or stopped.
    pub fn all_ended(&self) -> bool {
        let users = self.users.load(Ordering::SeqCst);
        users > 0 && self.ended.load(Ordering::SeqCst) >= users
    }
}

pub struct AhrsDoms {
    pub constants: Option<Arc<ConstantSet>>,
    generation: u64,
    updates: Option<Receiver<Arc<ConstantSet>>>,
    start: Option<Sender<()>>,
    feed: Option<Arc<Feed>>,
    /// Replay: wait for the first set (results independent of the network).
    wait: bool,
    pub metrics: Option<Arc<NodeMetrics>>,
    pub windows: Tumbling<DomMeans>,
    slots: IdMap<Slot>,
    calibrated: Vec<Constants>,
    /// Packets before any constants were known (live).
    pub early: u64,
    /// Packets of DOMs not in the CLB map / detector.
    pub unknown: u64,
    last_ns: u64,
    /// This worker's key in the `doms` part of the node's state, and
    /// that part's store (made once, so a full disk is logged once).
    pub key: String,
    store: Option<StateStore>,
}

impl AhrsDoms {
    pub fn new(interval_s: u64) -> AhrsDoms {
        AhrsDoms {
            constants: None,
            generation: 0,
            updates: None,
            start: None,
            feed: None,
            wait: false,
            metrics: None,
            windows: Tumbling::new(interval_s * TICKS_PER_SECOND),
            slots: IdMap::default(),
            calibrated: Vec::new(),
            early: 0,
            unknown: 0,
            last_ns: 0,
            key: "w0".into(),
            store: None,
        }
    }

    /// A stage fed by `rx` (tests: a loader thread).
    pub fn with_updates(mut self, rx: Receiver<Arc<ConstantSet>>, wait: bool) -> AhrsDoms {
        self.updates = Some(rx);
        self.wait = wait;
        self
    }

    /// A stage subscribed to the process's `feed`.
    pub fn with_feed(mut self, feed: Arc<Feed>, wait: bool) -> AhrsDoms {
        self.updates = Some(feed.subscribe());
        self.start = Some(feed.start.clone());
        self.feed = Some(feed);
        self.wait = wait;
        self
    }

    fn poll(&mut self) {
        if let Some(go) = self.start.take() {
            let _ = go.try_send(());
        }
        let Some(rx) = self.updates.clone() else {
            return;
        };
        if self.wait && self.constants.is_none() {
            // Bounded by the DB client's timeouts and retries.
            match rx.recv() {
                Ok(set) => self.set_constants(set),
                Err(_) => self.updates = None,
            }
            return;
        }
        loop {
            match rx.try_recv() {
                Ok(set) => self.set_constants(set),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.updates = None;
                    return;
                }
            }
        }
    }

    pub fn set_constants(&mut self, set: Arc<ConstantSet>) {
        self.slots.clear();
        self.calibrated.clear();
        self.generation += 1;
        self.constants = Some(set);
    }

    fn count_drop(&self, detail: &str, n: u64) {
        if let Some(m) = &self.metrics {
            m.drop_detail(DropReason::UnknownDom, detail, n);
        }
    }

    fn packet(&mut self, t: Time, p: &daq::tmch::TmchPacket, out: &mut Out<DomWindow>) {
        let Some(set) = &self.constants else {
            self.early += 1;
            self.count_drop("AHRS constants not loaded yet", 1);
            return;
        };
        let slot = match self.slots.get(&p.dom_id) {
            Some(s) => *s,
            None => {
                let s = if set.bases.contains(&p.dom_id) {
                    Slot::Base
                } else {
                    match set.doms.get(&p.dom_id).map(|e| &e.constants) {
                        None => Slot::Unknown,
                        Some(Ok(c)) => {
                            self.calibrated.push(*c);
                            Slot::Calibrated(self.calibrated.len() as u32 - 1)
                        }
                        Some(Err(_)) => Slot::Missing,
                    }
                };
                self.slots.insert(p.dom_id, s);
                s
            }
        };
        match slot {
            Slot::Base => {}
            Slot::Unknown => {
                self.unknown += 1;
                self.count_drop("not in the CLB map", 1);
            }
            Slot::Calibrated(i) => {
                let o = orientation(&self.calibrated[i as usize], p.a, p.h);
                let means = self.windows.at(t, out).entry(p.dom_id).or_default();
                for (m, v) in means.iter_mut().zip([o.yaw, o.pitch, o.roll]) {
                    m.add(v);
                }
            }
            // The window still closes, so the plots name the DOM.
            Slot::Missing => {
                self.windows.at(t, out).entry(p.dom_id).or_default();
            }
        }
    }

    /// A closed (or drained) window's DOMs, in DOM order.
    fn emit(
        &self,
        stamp: Time,
        window_end: Time,
        means: DomMeans,
        partial: bool,
        out: &mut Out<DomWindow>,
    ) {
        let Some(set) = &self.constants else {
            return;
        };
        let mut doms: Vec<_> = means.into_iter().collect();
        doms.sort_by_key(|d| d.0);
        for (dom, m) in doms {
            let Some(e) = set.doms.get(&dom) else {
                continue;
            };
            let what = match &e.constants {
                Err(why) => WindowKind::Missing(why.clone()),
                Ok(_) => {
                    let (Some(y), Some(p), Some(r)) = (m[0].mean(), m[1].mean(), m[2].mean())
                    else {
                        continue;
                    };
                    WindowKind::Angles([y.rem_euclid(360.0), p, r])
                }
            };
            out.give(
                stamp,
                DomWindow {
                    window_end,
                    partial,
                    last_ns: self.last_ns,
                    generation: self.generation,
                    dom,
                    du: e.du,
                    floor: e.floor,
                    what,
                    source: set.source.clone(),
                },
            );
        }
    }

    fn ended(&mut self) {
        self.start = None;
        if let Some(f) = self.feed.take() {
            f.ended.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Monitor<Item, DomWindow> for AhrsDoms {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out<DomWindow>) {
        self.poll();
        for item in data {
            let Item::Tmch(p) = item else { continue };
            self.last_ns = self.last_ns.max(p.utc_ns());
            self.packet(t, &p, out);
        }
    }

    fn on_timer(&mut self, t: Time, out: &mut Out<DomWindow>) {
        if let Some((w, means)) = self.windows.close(t) {
            self.emit(t, w.end, means, false, out);
        }
    }

    fn on_end(&mut self, _last: Option<Time>, out: &mut Out<DomWindow>) {
        self.ended();
        let stamp = out.now();
        for (w, means) in self.windows.drain() {
            self.emit(stamp, w.end, means, true, out);
        }
        if self.last_ns > 0 {
            out.give(
                stamp,
                DomWindow {
                    window_end: 0,
                    partial: true,
                    last_ns: self.last_ns,
                    generation: self.generation,
                    dom: 0,
                    du: 0,
                    floor: 0,
                    what: WindowKind::Seen,
                    source: String::new(),
                },
            );
        }
    }

    /// Stopped: the open windows are saved, not written partial.
    fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out<DomWindow>) {
        self.ended();
    }

    fn save(&mut self, store: &StateStore) {
        let saved = (&self.windows, self.last_ns);
        self.store.get_or_insert_with(|| store.part("doms")).save(
            &std::collections::BTreeMap::from([(self.key.clone(), saved)]),
        );
    }
}

/// Saved windows of a stopped run, of every worker: (windows, last_ns).
pub type SavedDoms = (Tumbling<DomMeans>, u64);

/// A floor's history: (UTC s of the window end, yaw, pitch, roll).
pub type History = VecDeque<(u64, [f64; 3])>;

impl AhrsDoms {
    /// Continues the saved windows of the DOMs routed to this worker.
    pub fn restore(
        &mut self,
        parts: impl IntoIterator<Item = SavedDoms>,
        mine: impl Fn(u32) -> bool,
    ) {
        for (windows, last_ns) in parts {
            self.last_ns = self.last_ns.max(last_ns);
            self.windows.merge(windows, |a: &mut DomMeans, b| {
                a.extend(b.into_iter().filter(|(dom, _)| mine(*dom)));
            });
        }
    }
}
