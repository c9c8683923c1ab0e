//! The DAQ log (`MSG`) as both of its nodes read it: parsing of the lines
//! ([`parse`]) and UTC days. The nodes are the archive with daily rotation
//! (`msg_dumper`, [`crate::sinks::msg_dumper`]) and the daily statistics
//! with the ERROR-rate alert (`log_stats`, [`crate::monitors::log_stats`]).
//! docs/msg-logs.md has the user's view.
//!
//! Both nodes accept raw `messages` (tag `MSG`, straight from the log
//! Ligier source: arrival order is kept, as a log reader expects) and
//! decoded `msg` items. Days are UTC days of the *data time* (the item's
//! timestamp: receive time live, the file's time in a replay), so a replay
//! writes the same archives as the live run did.

pub mod parse;

use pipeline::item::{seconds_of, Item, MsgItem, Time};
use pipeline::operator::ItemStream;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

/// Keeps only log lines, as `msg` items, on the worker that has them: a
/// graph that feeds a whole DAQ stream must not ship every frame to the
/// archive's worker. Local (no exchange), so arrival order is kept.
pub fn only_lines<'s>(input: ItemStream<'s>) -> ItemStream<'s> {
    input.unary::<CapacityContainerBuilder<Vec<Item>>, _, _, _>(Pipeline, "msg_lines", |_, _| {
        |input, output| {
            input.for_each(|cap, data| {
                let lines: Vec<Item> = data
                    .drain(..)
                    .filter_map(|i| match i {
                        Item::Msg(m) => Some(Item::Msg(m)),
                        other => text_of(&other).map(|t| {
                            Item::Msg(Box::new(MsgItem {
                                text: t.into_owned(),
                            }))
                        }),
                    })
                    .collect();
                if !lines.is_empty() {
                    output.session(&cap).give_iterator(lines.into_iter());
                }
            });
        }
    })
}

/// The text of a log line item, if it is one: a `msg` item, or a raw
/// message of tag `MSG` (decoded lossily and trimmed like `decode` does).
pub fn text_of(item: &Item) -> Option<std::borrow::Cow<'_, str>> {
    match item {
        Item::Msg(m) => Some(std::borrow::Cow::Borrowed(m.text.as_str())),
        Item::Message(m) if m.tag == "MSG" => Some(match String::from_utf8_lossy(&m.payload) {
            std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(s.trim_end()),
            std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s.trim_end().to_string()),
        }),
        _ => None,
    }
}

/// The UTC day (days since 1970-01-01) of a timestamp.
pub fn day_of(t: Time) -> i64 {
    (seconds_of(t) / 86_400) as i64
}

/// The first timestamp of a UTC day.
pub fn day_start(day: i64) -> Time {
    (day.max(0) as u64) * 86_400 * pipeline::item::TICKS_PER_SECOND
}

/// `YYYY-MM-DD` of a day number.
pub fn date(day: i64) -> String {
    timefmt::date(day)
}

/// The day number of `YYYY-MM-DD`; impossible dates are `None`.
pub fn parse_date(s: &str) -> Option<i64> {
    timefmt::parse_date(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_dates() {
        let t = pipeline::item::time_of_ns(1_704_067_199_900_000_000); // 2023-12-31T23:59:59.9
        assert_eq!(date(day_of(t)), "2023-12-31");
        assert_eq!(date(day_of(t + 1)), "2024-01-01");
        assert_eq!(day_start(day_of(t + 1)), t + 1);
        assert_eq!(parse_date("2024-01-01"), Some(day_of(t + 1)));
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_date("2024-02-31"), None);
    }
}
