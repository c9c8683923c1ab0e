//! Sources: where records enter the dataflow, and [`decode`], which
//! turns their raw DAQ frames into typed items. Both run their I/O on a
//! thread of their own and feed the framework's bounded ingress queue
//! (`pipeline::runtime::source`).

pub mod decode;
pub mod files;
pub mod ligier;

use daq::dump::{PayloadKind, Record};
use pipeline::item::Message;

/// The framework's message from a dump/recording record: tag, run and
/// data time read from the DAQ header or TMCH packet, payload moved.
pub fn message_of(tag: String, record: Record) -> Message {
    let (run, utc_ns) = header_fields(&record);
    Message {
        tag,
        run,
        utc_ns,
        payload: record.payload,
    }
}

fn header_fields(record: &Record) -> (Option<u32>, Option<u64>) {
    match record.kind() {
        PayloadKind::Daq => match daq::frame::peek_header(&record.payload) {
            Some(h) => (u32::try_from(h.run).ok(), Some(h.utc_ns())),
            None => (None, None),
        },
        PayloadKind::Tmch => {
            let run = record
                .payload
                .get(4..8)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            (run, record.utc_ns())
        }
        PayloadKind::Msg | PayloadKind::Other => (None, None),
    }
}

/// Whether `tag` passes a source's tag list (empty = everything).
pub fn wanted(tags: &[String], tag: &str) -> bool {
    tags.is_empty() || tags.iter().any(|t| t == tag)
}
