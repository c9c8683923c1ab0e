//! `type = "decode"`: raw ControlHost messages → one typed stream kind
//! (summaryslices, events, timeslices, tmch or msg).
//!
//! Decoding is the costly step of the health graph, so messages are spread
//! over the workers first: TMCH packets by DOM id (so that per-DOM
//! monitors downstream find their DOMs already local), DAQ frames by a
//! hash of their first bytes. A payload that does not decode is dropped
//! and counted as `corrupt`, by the kind of error (truncated, bad version
//! …). With a detector, records of DOMs it does not list are counted as
//! `unknown_dom`: summary frames and TMCH packets of such DOMs are dropped,
//! events are kept (their unknown hits are counted; maps skip them).

use std::sync::Arc;

use daq::detector::IdMap;
use daq::event::Event;
use daq::summary::Summaryslice;
use daq::timeslice::{SuperFrame, Timeslice, TimesliceView};
use daq::tmch::TmchPacket;
use daq::DecodeError;
use pipeline::item::{stable_hash, Item, Message, MsgItem};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Role};
use pipeline::runtime::metrics::{DropReason, NodeMetrics};
use pipeline::StreamKind;
use serde::Deserialize;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeKind {
    Summaryslices,
    Events,
    Timeslices,
    Tmch,
    Msg,
}

impl DecodeKind {
    fn stream(self) -> StreamKind {
        match self {
            DecodeKind::Summaryslices => StreamKind::Summaryslices,
            DecodeKind::Events => StreamKind::Events,
            DecodeKind::Timeslices => StreamKind::Timeslices,
            DecodeKind::Tmch => StreamKind::Tmch,
            DecodeKind::Msg => StreamKind::Msg,
        }
    }

    fn default_tags(self) -> Vec<String> {
        let tags: &[&str] = match self {
            DecodeKind::Summaryslices => &["IO_SUM"],
            DecodeKind::Events => &["IO_EVT"],
            DecodeKind::Timeslices => &["IO_TSL0", "IO_TSL1", "IO_TSL2", "IO_TSSN"],
            DecodeKind::Tmch => &["IO_MONIT"],
            DecodeKind::Msg => &["MSG"],
        };
        tags.iter().map(|t| t.to_string()).collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decode {
    /// The kind to produce.
    pub kind: DecodeKind,
    /// Tags to decode; default: the tags of the kind (timeslices: all four).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Timeslices: keep the hits (default: only the super-frame headers and
    /// status words, which is all the time-sync check needs).
    #[serde(default)]
    pub hits: bool,
}

impl Decode {
    fn tags(&self) -> Vec<String> {
        if self.tags.is_empty() {
            self.kind.default_tags()
        } else {
            self.tags.clone()
        }
    }
}

impl NodeConfig for Decode {
    const TYPE: &'static str = "decode";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "decodes messages into summaryslices, events, timeslices, tmch or msg (corrupt and unknown DOMs counted)";
    const EXAMPLE: &'static str = r#"inputs = ["daq"]
kind = "summaryslices""#;
}

/// The reason label of a decode error.
pub fn corrupt_reason(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::Truncated { .. } => "truncated",
        DecodeError::LengthMismatch { .. } => "length_mismatch",
        DecodeError::BadLength { .. } => "bad_length",
        DecodeError::UnknownDataType { .. } => "unknown_data_type",
        DecodeError::BadVersion { .. } => "bad_version",
        DecodeError::BadMagic { .. } => "bad_magic",
        DecodeError::NegativeCount { .. } => "negative_count",
        DecodeError::TooManyItems { .. } => "too_many_items",
    }
}

/// Which DOMs the detector lists, for dropping the records of others.
///
/// A set of the ids alone (4-byte slots, ~40 KB for ARCA-230) instead of
/// `Detector::module` (16-byte slots behind a module index): the check
/// runs for every TMCH packet and a third of the decoding was these
/// lookups missing the cache. Slices remember the last all-known DOM
/// sequence: the next slice of a stream usually lists the same DOMs in
/// the same order, and comparing ids costs far less than a lookup per
/// frame (10 M summary and super-frames for 120 s of ARCA-230).
#[derive(Debug, Default)]
pub struct DomFilter {
    /// `None`: no detector, every DOM passes.
    ids: Option<IdMap<()>>,
    last: Vec<u32>,
}

impl DomFilter {
    pub fn new(detector: Option<&daq::detector::Detector>) -> DomFilter {
        DomFilter {
            ids: detector.map(|d| d.modules().iter().map(|m| (m.dom_id, ())).collect()),
            last: Vec::new(),
        }
    }

    fn known(&self, dom: u32) -> bool {
        self.ids.as_ref().is_none_or(|ids| ids.contains_key(&dom))
    }

    /// Drops the frames of unknown DOMs; returns how many.
    fn retain<F>(&mut self, frames: &mut Vec<F>, id: impl Fn(&F) -> u32) -> usize {
        if frames.len() == self.last.len()
            && frames.iter().zip(&self.last).all(|(f, d)| id(f) == *d)
        {
            return 0;
        }
        let before = frames.len();
        frames.retain(|f| self.known(id(f)));
        let unknown = before - frames.len();
        if unknown == 0 {
            self.last.clear();
            self.last.extend(frames.iter().map(&id));
        }
        unknown
    }
}

/// Decodes one message; `None` if dropped (counted in `metrics`).
pub fn decode_message(
    kind: DecodeKind,
    hits: bool,
    m: &Message,
    doms: &mut DomFilter,
    metrics: &NodeMetrics,
) -> Option<Item> {
    let corrupt = |e: DecodeError| {
        metrics.drop_detail(DropReason::Corrupt, corrupt_reason(&e), 1);
        None
    };
    match kind {
        DecodeKind::Summaryslices => match Summaryslice::decode(&m.payload) {
            Ok(mut s) => {
                let unknown = doms.retain(&mut s.frames, |f| f.dom_id);
                if unknown > 0 {
                    metrics.drop_detail(DropReason::UnknownDom, "summary_frame", unknown as u64);
                }
                Some(Item::Summaryslice(Arc::new(s)))
            }
            Err(e) => corrupt(e),
        },
        DecodeKind::Events => match Event::decode(&m.payload) {
            Ok(e) => {
                let unknown = e
                    .snapshot_hits
                    .iter()
                    .filter(|h| !doms.known(h.dom_id))
                    .count();
                if unknown > 0 {
                    metrics.drop_detail(DropReason::UnknownDom, "event_hit", unknown as u64);
                }
                Some(Item::Event(Arc::new(e)))
            }
            Err(e) => corrupt(e),
        },
        DecodeKind::Timeslices => {
            let ts = if hits {
                Timeslice::decode(&m.payload)
            } else {
                TimesliceView::new(&m.payload).map(|v| Timeslice {
                    version: v.version(),
                    data_type: v.data_type(),
                    header: *v.header(),
                    frames: v
                        .frames()
                        .map(|f| SuperFrame {
                            header: *f.header(),
                            dom_id: f.dom_id(),
                            status: *f.status(),
                            hits: Vec::new(),
                        })
                        .collect(),
                })
            };
            match ts {
                Ok(mut t) => {
                    let unknown = doms.retain(&mut t.frames, |f| f.dom_id);
                    if unknown > 0 {
                        metrics.drop_detail(DropReason::UnknownDom, "super_frame", unknown as u64);
                    }
                    Some(Item::Timeslice(Arc::new(t)))
                }
                Err(e) => corrupt(e),
            }
        }
        DecodeKind::Tmch => match TmchPacket::decode(&m.payload) {
            Ok(p) if doms.known(p.dom_id) => Some(Item::Tmch(Arc::new(p))),
            Ok(_) => {
                metrics.drop_detail(DropReason::UnknownDom, "tmch_packet", 1);
                None
            }
            Err(e) => corrupt(e),
        },
        DecodeKind::Msg => Some(Item::Msg(Box::new(MsgItem {
            text: String::from_utf8_lossy(&m.payload).trim_end().to_string(),
        }))),
    }
}

/// Where a message is decoded: TMCH by DOM id, anything else by content.
fn route(item: &Item) -> u64 {
    match item {
        Item::Message(m) if m.tag == "IO_MONIT" => m
            .payload
            .get(20..24)
            .map_or(0, |b| stable_hash(&[b[0], b[1], b[2], b[3]])),
        Item::Message(m) => stable_hash(&m.payload[..m.payload.len().min(48)]),
        _ => 0,
    }
}

/// The worker a DOM's per-DOM state lives on (same hash as the decoder's
/// routing of TMCH packets, so that those stay local).
pub fn dom_route(dom_id: u32) -> u64 {
    stable_hash(&dom_id.to_be_bytes())
}

impl Node for Decode {
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Messages]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(self.kind.stream())
    }
    /// Only these tags reach the decoder (and cross to other workers).
    fn message_tags(&self) -> Option<Vec<String>> {
        Some(self.tags())
    }
    fn check(&self) -> Vec<(String, String)> {
        self.tags
            .iter()
            .enumerate()
            .filter(|(_, t)| daq::controlhost::Tag::new(t).is_err())
            .map(|(i, t)| (format!("tags[{i}]"), format!("bad tag `{t}`")))
            .collect()
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("decode needs an input"))?;
        let (kind, hits) = (self.kind, self.hits);
        let tags = self.tags();
        let detector = ctx.env.detector_model.clone();
        let metrics = ctx.metrics.clone();
        // The graph hands this node only its tags (`message_tags`), so
        // only those cross to other workers; the check below is for a
        // graph that cannot split its input.
        let out = input.unary::<CapacityContainerBuilder<Vec<Item>>, _, _, _>(
            Exchange::new(route),
            "decode",
            move |_, _| {
                let mut doms = DomFilter::new(detector.as_deref());
                move |input, output| {
                    input.for_each(|cap, data| {
                        let mut decoded: Vec<Item> = metrics.busy(|| {
                            data.iter()
                                .filter_map(|i| match i {
                                    Item::Message(m) if tags.contains(&m.tag) => {
                                        decode_message(kind, hits, m, &mut doms, &metrics)
                                    }
                                    _ => None,
                                })
                                .collect()
                        });
                        if !decoded.is_empty() {
                            output.session(&cap).give_container(&mut decoded);
                        }
                    });
                }
            },
        );
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: &str, payload: Vec<u8>) -> Message {
        Message {
            tag: tag.into(),
            run: None,
            utc_ns: None,
            payload,
        }
    }

    #[test]
    fn corrupt_payloads_are_counted_by_reason() {
        let m = NodeMetrics::new();
        let bad = msg("IO_SUM", vec![1, 2, 3]);
        assert!(decode_message(
            DecodeKind::Summaryslices,
            false,
            &bad,
            &mut DomFilter::new(None),
            &m
        )
        .is_none());
        let bad = msg("IO_MONIT", b"XXXX".repeat(61));
        assert!(
            decode_message(DecodeKind::Tmch, false, &bad, &mut DomFilter::new(None), &m).is_none()
        );
        assert_eq!(m.drops(DropReason::Corrupt), 2);
        let details = m.drop_details();
        assert_eq!(details.len(), 2, "{details:?}");
        assert!(details.keys().any(|(_, d)| d == "bad_magic"));
    }

    #[test]
    fn a_repeated_dom_sequence_skips_the_lookups_and_a_new_one_is_checked() {
        let det = daq::detector::Detector::generate(7, 2, 3, 31);
        let ids: Vec<u32> = det.modules().iter().map(|m| m.dom_id).collect();
        let mut doms = DomFilter::new(Some(&det));
        let mut a = ids.clone();
        assert_eq!(doms.retain(&mut a, |d| *d), 0);
        assert_eq!(doms.last, ids);
        // Another sequence is checked frame by frame and, with an
        // unknown DOM in it, not remembered.
        let mut b = vec![ids[0], 12345, ids[1]];
        assert_eq!(doms.retain(&mut b, |d| *d), 1);
        assert_eq!(b, [ids[0], ids[1]]);
        assert_eq!(doms.last, ids);
        let mut c = ids.clone();
        assert_eq!(doms.retain(&mut c, |d| *d), 0);
        assert!(doms.known(ids[2]) && !doms.known(12345));
        assert!(DomFilter::new(None).known(12345));
    }
}
