//! The bodies of the fuzz targets, one per decoder.
//!
//! `fuzz/fuzz_targets/*.rs` (cargo-fuzz) call these, and so does
//! `tests/fuzz_corpus.rs` over a generated corpus on every `cargo test`: one
//! definition, so what CI checks and what the fuzzer explores cannot drift
//! apart.
//!
//! Each body must not panic on any input. Beyond that it asserts the
//! properties that hold whenever a decoder accepts its input, so the fuzzer
//! also finds wrong answers, not just crashes:
//! - what a frame or packet decoder accepts re-encodes to the very same
//!   bytes, and the view and the owned decode agree field by field;
//! - error offsets lie inside the input;
//! - the dump reader hands out records that are exactly slices of its
//!   input, ends, and does not depend on how the input is chunked;
//! - parsed text (subscription, DETX, CLB map) written back parses to the
//!   same value.

use std::io::{self, Read};

use crate::controlhost::{encode_message, tags, Prefix, Subscription, Tag, PREFIX_LEN};
use crate::detector::{ClbMap, Detector};
use crate::dump::{Container, DumpReader, Record};
use crate::event::{Event, EventView};
use crate::frame::{decode_frame as decode_any, frame_len, peek_header, DaqFrame};
use crate::summary::Summaryslice;
use crate::timeslice::{Timeslice, TimesliceView, HIT_LEN, SUPER_FRAME_HEADER_LEN};
use crate::tmch::{TmchPacket, TmchView};
use crate::DecodeError;

/// A target body: any bytes in, a panic for a bug.
pub type Target = fn(&[u8]);

/// Every target by its cargo-fuzz name.
pub const TARGETS: [(&str, Target); 8] = [
    ("decode_frame", decode_frame),
    ("timeslice_view", timeslice_view),
    ("tmch", tmch),
    ("dump_reader", dump_reader),
    ("controlhost_prefix", controlhost_prefix),
    ("subscription", subscription),
    ("detx", detx),
    ("clbmap", clbmap),
];

fn check_offset(e: &DecodeError, data: &[u8]) {
    assert!(
        e.offset() <= data.len(),
        "error offset {} beyond the {} input bytes: {e}",
        e.offset(),
        data.len()
    );
}

/// Any bytes as one DAQ frame (`IO_EVT`, `IO_SUM`, `IO_TS*` payload).
pub fn decode_frame(data: &[u8]) {
    let peeked = peek_header(data);
    let _ = frame_len(data);
    // The typed decoders and the views must agree with the dispatcher.
    let event = Event::decode(data);
    let event_view = EventView::new(data);
    let slice = Summaryslice::decode(data);
    let timeslice = Timeslice::decode(data);
    assert_eq!(
        event_view
            .as_ref()
            .map(EventView::to_event)
            .map_err(Clone::clone),
        event
    );
    let frame = match decode_any(data) {
        Ok(frame) => frame,
        Err(e) => {
            check_offset(&e, data);
            assert!(event.is_err() && slice.is_err() && timeslice.is_err());
            return;
        }
    };
    let encoded = frame.encode();
    assert_eq!(encoded, data, "accepted bytes must re-encode identically");
    assert_eq!(decode_any(&encoded).as_ref(), Ok(&frame));
    assert_eq!(peeked.as_ref(), Some(frame.header()));
    match &frame {
        DaqFrame::Event(e) => {
            assert_eq!(event.as_ref(), Ok(e));
            assert_eq!(e.encoded_len(), data.len());
            let view = event_view.expect("event view of an accepted event");
            assert_eq!(view.triggered_hits().len(), e.triggered_hits.len());
            assert_eq!(view.snapshot_hits().len(), e.snapshot_hits.len());
            let last = e.snapshot_hits.len().checked_sub(1);
            assert_eq!(
                last.and_then(|i| view.snapshot_hits().get(i)),
                e.snapshot_hits.last().copied()
            );
            assert_eq!(
                view.triggered_hits().iter().next_back(),
                e.triggered_hits.last().copied()
            );
        }
        DaqFrame::Summaryslice(s) => {
            assert_eq!(slice.as_ref(), Ok(s));
            assert_eq!(s.encoded_len(), data.len());
            for f in &s.frames {
                let sum: f64 = f.rates_hz().iter().sum();
                assert!(sum.is_finite() && sum >= 0.0);
            }
        }
        DaqFrame::Timeslice(t) => {
            assert_eq!(timeslice.as_ref(), Ok(t));
            assert_eq!(t.encoded_len(), data.len());
        }
    }
}

/// Any bytes as a timeslice read in place.
pub fn timeslice_view(data: &[u8]) {
    let view = match TimesliceView::new(data) {
        Ok(view) => view,
        Err(e) => {
            check_offset(&e, data);
            assert_eq!(Timeslice::decode(data), Err(e));
            return;
        }
    };
    let frames = view.frames();
    assert_eq!(frames.len(), view.n_frames());
    let mut n_frames = 0;
    let mut next_at = None;
    let mut n_hits = 0;
    for frame in frames {
        n_frames += 1;
        // Super-frames are contiguous and their length is their content.
        if let Some(at) = next_at {
            assert_eq!(frame.offset(), at);
        }
        next_at = Some(frame.offset() + frame.length());
        let hits = frame.hits();
        assert_eq!(
            frame.length(),
            SUPER_FRAME_HEADER_LEN + HIT_LEN * hits.len()
        );
        assert_eq!(hits.iter().len(), hits.len());
        assert_eq!(hits.is_empty(), hits.iter().next().is_none());
        assert_eq!(hits.get(hits.len()), None);
        let forward: Vec<_> = hits.iter().collect();
        let mut backward: Vec<_> = hits.iter().rev().collect();
        backward.reverse();
        assert_eq!(forward, backward);
        for (i, h) in forward.iter().enumerate() {
            assert_eq!(hits.get(i).as_ref(), Some(h));
        }
        n_hits += hits.len();
    }
    assert_eq!(n_frames, view.n_frames());
    assert_eq!(next_at.unwrap_or(data.len()), data.len());
    assert_eq!(view.n_hits(), n_hits);
    let owned = view.to_timeslice();
    assert_eq!(owned.n_hits(), n_hits);
    assert_eq!(owned.encode(), data);
    assert_eq!(Timeslice::decode(data).as_ref(), Ok(&owned));
    assert_eq!(peek_header(data).as_ref(), Some(view.header()));
}

/// Any bytes as a CLB monitoring packet.
pub fn tmch(data: &[u8]) {
    let packet = TmchPacket::decode(data);
    let view = match TmchView::new(data) {
        Ok(view) => view,
        Err(e) => {
            check_offset(&e, data);
            assert_eq!(packet.err(), Some(e));
            return;
        }
    };
    let p = packet.expect("packet decodes where the view does");
    // Floats are compared as bits: NaN payloads must survive too.
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        (view.run(), view.udp_sequence_number(), view.utc_seconds()),
        (p.run, p.udp_sequence_number, p.utc_seconds)
    );
    assert_eq!(
        (view.utc_16ns_ticks(), view.dom_id(), view.dom_status()),
        (p.utc_16ns_ticks, p.dom_id, p.dom_status)
    );
    assert_eq!((view.counts(), view.hrvbmp()), (p.counts, p.hrvbmp));
    assert_eq!(view.count(0), Some(p.counts[0]));
    assert_eq!(view.count(p.counts.len()), None);
    assert_eq!(view.flags(), p.flags);
    assert_eq!(view.ahrs_valid(), p.ahrs_valid());
    assert_eq!(Some(view.structure_version()), p.structure_version());
    assert_eq!(view.utc_ns(), p.utc_ns());
    assert_eq!(
        bits(&[view.yaw(), view.pitch(), view.roll()]),
        bits(&[p.yaw, p.pitch, p.roll])
    );
    assert_eq!(bits(&view.a()), bits(&p.a));
    assert_eq!(bits(&view.g()), bits(&p.g));
    assert_eq!(bits(&view.h()), bits(&p.h));
    assert_eq!(
        (view.temperature_raw(), view.humidity_raw()),
        (p.temperature_raw, p.humidity_raw)
    );
    assert_eq!(
        (view.tdcfull(), view.aesfull(), view.flushc()),
        (p.tdcfull, p.aesfull, p.flushc)
    );
    assert_eq!(view.ts_duration(), p.ts_duration);
    assert_eq!(
        (
            view.tdc_supertime_fifo_size(),
            view.aes_supertime_fifo_size()
        ),
        (p.tdc_supertime_fifo_size, p.aes_supertime_fifo_size)
    );
    assert_eq!(view.trailing(), p.trailing.as_slice());
    assert_eq!(view.as_bytes(), data);
    let encoded = p.encode();
    assert_eq!(encoded, data, "accepted bytes must re-encode identically");
    assert_eq!(p.encoded_len(), data.len());
    let again = TmchPacket::decode(&encoded).expect("re-encoded packet decodes");
    assert_eq!(again.encode(), encoded);
}

/// A reader that hands out the data in pieces of 1 to `max` bytes, to
/// check that the dump reader does not depend on read sizes.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
    max: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.step = self.step % self.max + 1;
        let n = self.step.min(buf.len()).min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        buf[..n].copy_from_slice(head);
        self.data = tail;
        Ok(n)
    }
}

type Item = Result<Record, String>;

fn read_all<R: Read>(reader: DumpReader<R>) -> Vec<Item> {
    reader.map(|r| r.map_err(|e| e.to_string())).collect()
}

/// Any bytes as a dump file, in each container and recognised from the
/// content.
pub fn dump_reader(data: &[u8]) {
    let containers = [
        None,
        Some(Container::DaqFrames),
        Some(Container::LengthPrefixed),
        Some(Container::ControlHost),
    ];
    for container in containers {
        // The default record bound and one small enough that the samples'
        // records exceed it, so that the too-long path is explored too.
        for max_record in [crate::dump::DEFAULT_MAX_RECORD, 1000] {
            let items = read_all(configure(DumpReader::new(data), container, max_record));
            check_records(data, &items);
            // Reads of 1–7 bytes must give the same records and errors.
            let trickle = Trickle {
                data,
                step: 0,
                max: 7,
            };
            let items_trickled =
                read_all(configure(DumpReader::new(trickle), container, max_record));
            assert_eq!(items, items_trickled, "result depends on read sizes");
        }
    }
}

fn configure<R: Read>(
    reader: DumpReader<R>,
    container: Option<Container>,
    max_record: usize,
) -> DumpReader<R> {
    let reader = reader.with_max_record(max_record);
    match container {
        Some(c) => reader.with_container(c),
        None => reader,
    }
}

fn check_records(data: &[u8], items: &[Item]) {
    // Every step consumes at least one byte, plus the final error.
    assert!(items.len() <= data.len() + 1, "reader does not advance");
    let mut end = 0u64;
    for item in items {
        let Ok(record) = item else { continue };
        assert!(record.offset >= end, "records overlap");
        assert!(record.payload_offset >= record.offset);
        let at = usize::try_from(record.payload_offset).expect("offset fits");
        let slice = data.get(at..at + record.payload.len());
        assert_eq!(
            slice,
            Some(&record.payload[..]),
            "payload is not the input's bytes"
        );
        end = record.payload_offset + record.payload.len() as u64;
        let _ = record.kind();
        let _ = record.utc_ns();
        if let Err(e) = record.decode() {
            assert!(e.offset >= record.payload_offset && e.offset <= end);
        }
    }
}

/// Any bytes as a stream of ControlHost messages.
pub fn controlhost_prefix(data: &[u8]) {
    let mut rest = data;
    while let Some(raw) = rest.get(..PREFIX_LEN) {
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(raw);
        let Ok(p) = Prefix::decode(&prefix) else {
            // Resynchronise byte by byte, as a reader of a corrupt stream.
            rest = &rest[1..];
            continue;
        };
        // The reserved bytes are not kept: everything else is.
        let encoded = p.encode();
        assert_eq!(encoded[..12], prefix[..12]);
        assert_eq!(Prefix::decode(&encoded), Ok(p));
        assert_eq!(Tag::new(p.tag.as_str()), Ok(p.tag));
        assert_eq!(Tag::from_wire(p.tag.wire()), Ok(p.tag));
        for limit in [0, 16, u32::MAX] {
            let limited = Prefix::decode_limited(&prefix, limit);
            assert_eq!(limited.is_ok(), p.length <= limit);
        }
        let body = &rest[PREFIX_LEN..];
        let payload = &body[..body.len().min(p.length as usize)];
        let message = encode_message(p.tag, payload);
        assert_eq!(message[..8], prefix[..8]);
        assert_eq!(message.len(), PREFIX_LEN + payload.len());
        if p.tag == tags::subscribe() {
            subscription(payload);
        }
        rest = &body[payload.len()..];
    }
}

/// Any bytes as a `_Subscri` payload.
pub fn subscription(data: &[u8]) {
    let sub = match Subscription::parse(data) {
        Ok(sub) => sub,
        Err(e) => {
            use crate::controlhost::SubscriptionError as E;
            let offset = match e {
                E::NotAscii(at) => at,
                E::BadMode { offset, .. }
                | E::MissingTag { offset, .. }
                | E::BadTag { offset, .. } => offset,
            };
            assert!(offset < data.len(), "{e}");
            return;
        }
    };
    let payload = sub.to_payload();
    assert_eq!(Subscription::parse(&payload).as_ref(), Ok(&sub));
    for (mode, tag) in &sub.entries {
        let found = sub.mode_for(tag).expect("a listed tag is subscribed");
        if *mode == crate::controlhost::Mode::All {
            assert_eq!(found, crate::controlhost::Mode::All);
        }
    }
}

/// Any bytes as DETX text.
pub fn detx(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let det = match Detector::parse(&text, "fuzz.detx") {
        Ok(det) => det,
        Err(e) => {
            assert!(e.line <= text.lines().count() + 1, "{e}");
            return;
        }
    };
    let n_pmts: usize = det.modules().iter().map(|m| m.n_pmts()).sum();
    assert_eq!(det.n_pmts(), n_pmts);
    assert_eq!(
        det.n_optical_modules() + det.n_base_modules(),
        det.n_modules()
    );
    for m in det.modules() {
        assert_eq!(
            det.module(m.dom_id).map(|found| found.dom_id),
            Some(m.dom_id)
        );
    }
    // Written text is a fixed point: parse(write(d)) writes the same text.
    // (Comparing texts rather than values keeps NaN coordinates comparable.)
    for version in [det.version(), 5] {
        let written = det
            .to_detx_string(version)
            .expect("versions 1-5 are writable");
        let reread = Detector::parse(&written, "rewritten.detx")
            .unwrap_or_else(|e| panic!("written DETX v{version} does not parse: {e}\n{written}"));
        assert_eq!(reread.n_modules(), det.n_modules());
        assert_eq!(reread.n_pmts(), det.n_pmts());
        let rewritten = reread.to_detx_string(version).expect("writable");
        assert_eq!(written, rewritten, "DETX v{version} write is not stable");
    }
}

/// Any bytes as a CLB map.
pub fn clbmap(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let map = match ClbMap::parse(&text, "fuzz.txt") {
        Ok(map) => map,
        Err(e) => {
            assert!(e.line <= text.lines().count() + 1, "{e}");
            return;
        }
    };
    assert_eq!(map.len(), map.rows().len());
    for row in map.rows() {
        assert_eq!(map.by_dom_id(row.dom_id), Some(row));
        assert_eq!(map.by_upi(&row.upi), Some(row));
        assert_eq!(map.at(row.du, row.floor), Some(row));
    }
    // The rows written back as a table parse to the same rows.
    let mut table = String::from("DETOID\tDUID\tFLOORID\tSERIALNUMBER\tUPI\tDOMID\n");
    for r in map.rows() {
        table += &format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            r.det_oid, r.du, r.floor, r.serial, r.upi, r.dom_id
        );
    }
    let reread = ClbMap::parse(&table, "rewritten.txt")
        .unwrap_or_else(|e| panic!("rewritten CLB map does not parse: {e}\n{table}"));
    assert_eq!(reread.rows(), map.rows());
}
