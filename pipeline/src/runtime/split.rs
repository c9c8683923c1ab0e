//! A message stream read by several nodes, some of which want only some
//! tags (the decoders), is split in one pass: each reader gets a stream of
//! its own with just its tags. Otherwise every reader gets a copy of every
//! batch and filters it itself: for ARCA-230 five copies of 44,000
//! messages a second on the worker that reads the files, most of them
//! dropped again at once.

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::progress::operate::FrontierInterest;

use crate::item::Item;
use crate::runtime::context::ItemStream;

/// One output per entry of `wants`: the messages of its tags (`None`:
/// every item). Items other than messages go to every output.
pub fn split_by_tag<'s>(
    stream: ItemStream<'s>,
    wants: Vec<Option<Vec<String>>>,
) -> Vec<ItemStream<'s>> {
    assert!(wants.len() <= 64, "a tag mask has 64 bits");
    let mut builder = OperatorBuilder::new("split_tags".to_owned(), stream.scope());
    let mut input = builder.new_input(stream, Pipeline);
    builder.set_notify_for(0, FrontierInterest::Never);
    let (mut outputs, streams): (Vec<_>, Vec<_>) = (0..wants.len())
        .map(|_| builder.new_output::<Vec<Item>>())
        .unzip();
    builder.build(move |_| {
        let mut masks = Masks::new(wants);
        let mut parts: Vec<Vec<Item>> = vec![Vec::new(); outputs.len()];
        move |_frontiers| {
            let mut handles: Vec<_> = outputs.iter_mut().map(|o| o.activate()).collect();
            input.for_each(|cap, data| {
                for item in data.drain(..) {
                    let mut mask = masks.of(&item);
                    // A copy (an `Arc` count) for all but the last reader.
                    while mask != 0 {
                        let i = mask.trailing_zeros() as usize;
                        mask &= mask - 1;
                        if mask == 0 {
                            parts[i].push(item);
                            break;
                        }
                        parts[i].push(item.clone());
                    }
                }
                for (h, part) in handles.iter_mut().zip(parts.iter_mut()) {
                    if !part.is_empty() {
                        h.give(&cap, part);
                        part.clear();
                    }
                }
            });
        }
    });
    streams
}

/// Which outputs want a tag, remembered per tag seen (a stream has a
/// handful, in long runs of one).
struct Masks {
    wants: Vec<Option<Vec<String>>>,
    all: u64,
    seen: Vec<(String, u64)>,
    last: usize,
}

impl Masks {
    fn new(wants: Vec<Option<Vec<String>>>) -> Masks {
        let all = if wants.len() == 64 {
            u64::MAX
        } else {
            (1u64 << wants.len()) - 1
        };
        Masks {
            wants,
            all,
            seen: Vec::new(),
            last: 0,
        }
    }

    fn of(&mut self, item: &Item) -> u64 {
        let Item::Message(m) = item else {
            return self.all;
        };
        if let Some((t, mask)) = self.seen.get(self.last) {
            if *t == m.tag {
                return *mask;
            }
        }
        if let Some(i) = self.seen.iter().position(|(t, _)| *t == m.tag) {
            self.last = i;
            return self.seen[i].1;
        }
        let mask = self
            .wants
            .iter()
            .enumerate()
            .filter(|(_, w)| w.as_ref().is_none_or(|tags| tags.contains(&m.tag)))
            .fold(0u64, |acc, (i, _)| acc | 1 << i);
        self.seen.push((m.tag.clone(), mask));
        self.last = self.seen.len() - 1;
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::Message;
    use std::sync::Arc;

    fn msg(tag: &str) -> Item {
        Item::Message(Arc::new(Message {
            tag: tag.into(),
            run: None,
            utc_ns: None,
            payload: vec![1],
        }))
    }

    #[test]
    fn the_operator_hands_each_reader_its_messages_in_order() {
        use timely::dataflow::operators::capture::{Capture, Event};
        use timely::dataflow::operators::ToStream;
        let input: Vec<Item> = ["IO_SUM", "IO_MONIT", "MSG", "IO_MONIT", "IO_SUM"]
            .iter()
            .map(|t| msg(t))
            .collect();
        let got = timely::example(move |scope| {
            let stream = input.to_stream(scope).container::<Vec<Item>>();
            let wants = vec![
                None,
                Some(vec!["IO_MONIT".to_string()]),
                Some(vec!["IO_SUM".to_string(), "MSG".to_string()]),
            ];
            split_by_tag(stream, wants)
                .into_iter()
                .map(|s| s.capture())
                .collect::<Vec<_>>()
        });
        let tags = |rx: &std::sync::mpsc::Receiver<Event<u64, Vec<Item>>>| -> Vec<String> {
            rx.try_iter()
                .flat_map(|e| match e {
                    Event::Messages(_, items) => items,
                    Event::Progress(_) => Vec::new(),
                })
                .map(|i| match i {
                    Item::Message(m) => m.tag.clone(),
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(
            tags(&got[0]),
            ["IO_SUM", "IO_MONIT", "MSG", "IO_MONIT", "IO_SUM"]
        );
        assert_eq!(tags(&got[1]), ["IO_MONIT", "IO_MONIT"]);
        assert_eq!(tags(&got[2]), ["IO_SUM", "MSG", "IO_SUM"]);
    }

    #[test]
    fn each_reader_gets_its_tags_and_other_items_go_to_all() {
        let mut m = Masks::new(vec![
            None,
            Some(vec!["IO_SUM".into()]),
            Some(vec!["IO_TSL0".into(), "IO_TSSN".into()]),
        ]);
        assert_eq!(m.of(&msg("IO_SUM")), 0b011);
        assert_eq!(m.of(&msg("IO_SUM")), 0b011);
        assert_eq!(m.of(&msg("IO_TSSN")), 0b101);
        assert_eq!(m.of(&msg("IO_SUM")), 0b011);
        assert_eq!(m.of(&msg("MSG")), 0b001);
        let other = Item::Msg(Box::new(crate::item::MsgItem { text: "x".into() }));
        assert_eq!(m.of(&other), 0b111);
    }
}
