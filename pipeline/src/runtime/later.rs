//! A live run that learns its detector from the data: without
//! `--detector` and without DETECTOR_ID, `km3mon run` cannot know the
//! detector before the first DAQ frame arrives. The nodes that need the
//! detector (and every node downstream of them) then form a second
//! dataflow, built on every worker once [`DetectorLater`] is filled (by
//! the binary, from the det_id of the first frame and the KM3NeT DB, off
//! the workers); everything else (the MSG log, tag rates, …) runs from
//! the start.
//!
//! Streams cannot cross dataflows, so each stream feeding a late node is
//! tapped: per worker, its batches and frontier go through a [`Bridge`]
//! to a source in the second dataflow, which gives them at their own
//! times and follows the tapped frontier. Until the second dataflow
//! exists, the tapped batches are dropped and counted on the late node
//! (`stopped`, "waiting for the detector"). Replays never use this: they
//! read the det_id from their files before starting.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Scope;
use timely::scheduling::Activator;

use super::calibration::RunCalibration;
use super::context::ItemStream;
use super::metrics::{DropReason, NodeMetrics};
use crate::graph::Graph;
use crate::item::{Item, Time};

/// The detector, once known.
pub struct Found {
    /// The layout DETX (written by whoever found it).
    pub detx: PathBuf,
    pub detector: Arc<daq::detector::Detector>,
    /// Each run's calibration, if it comes from a database.
    pub calibration: Option<Arc<dyn RunCalibration>>,
}

/// Filled once, from any thread; the workers look at it between steps.
#[derive(Default)]
pub struct DetectorLater {
    slot: OnceLock<Found>,
}

impl DetectorLater {
    /// `false` if it was filled already.
    pub fn set(&self, found: Found) -> bool {
        self.slot.set(found).is_ok()
    }
    pub fn get(&self) -> Option<&Found> {
        self.slot.get()
    }
}

/// The nodes that wait for the detector: those that need it and every
/// node that reads from one of them.
pub(crate) fn late_nodes(graph: &Graph) -> HashSet<String> {
    let mut late: HashSet<String> = HashSet::new();
    // Inputs may be declared after their reader: iterate to a fixed point.
    loop {
        let before = late.len();
        for n in &graph.nodes {
            if n.node.needs_detector() || n.inputs.iter().any(|i| late.contains(i)) {
                late.insert(n.name.clone());
            }
        }
        if late.len() == before {
            return late;
        }
    }
}

/// One tapped stream on one worker.
pub(crate) struct Bridge {
    queue: VecDeque<(Time, Vec<Item>)>,
    /// The tapped stream's frontier; empty once it is complete.
    frontier: Vec<Time>,
    /// Set when the second dataflow's source exists.
    activator: Option<Activator>,
}

pub(crate) type BridgeRef = Rc<RefCell<Bridge>>;

pub(crate) fn bridge() -> BridgeRef {
    Rc::new(RefCell::new(Bridge {
        queue: VecDeque::new(),
        frontier: vec![0],
        activator: None,
    }))
}

/// Hands `s`'s batches and frontier to `b`; drops (and counts on
/// `waiting`) what comes before the other side exists.
pub(crate) fn tap(s: ItemStream<'_>, b: BridgeRef, waiting: Vec<Arc<NodeMetrics>>) {
    s.sink(Pipeline, "bridge", move |(input, frontier)| {
        let mut br = b.borrow_mut();
        input.for_each(|cap, data| {
            let Some(&t) = cap.least() else { return };
            if br.activator.is_some() {
                br.queue.push_back((t, std::mem::take(data)));
            } else {
                for m in &waiting {
                    m.drop_detail(
                        DropReason::Stopped,
                        "waiting for the detector",
                        data.len() as u64,
                    );
                }
            }
        });
        br.frontier = frontier.frontier().to_vec();
        if let Some(a) = &br.activator {
            a.activate();
        }
    });
}

/// The other side of a [`Bridge`], in the second dataflow.
pub(crate) fn bridged<'s>(scope: Scope<'s, Time>, b: BridgeRef) -> ItemStream<'s> {
    source::<_, CapacityContainerBuilder<Vec<Item>>, _, _>(scope, "bridged", move |cap, info| {
        let activator = scope.activator_for(info.address.clone());
        activator.activate();
        b.borrow_mut().activator = Some(activator);
        let mut cap = Some(cap);
        move |output| {
            let Some(c) = cap.as_mut() else { return };
            let mut br = b.borrow_mut();
            while let Some((t, mut data)) = br.queue.pop_front() {
                let at = c.delayed(&t.max(*c.time()));
                output.session(&at).give_container(&mut data);
            }
            match br.frontier.iter().min() {
                Some(f) if f > c.time() => c.downgrade(f),
                Some(_) => {}
                None => cap = None,
            }
        }
    })
}
