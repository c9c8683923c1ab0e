//! The zero-copy views (`EventView`, `TmchView`) on the sample files: the
//! values of the spec's worked examples, and agreement with the owned
//! decodes they build.

mod common;

use daq::dump::DumpReader;
use daq::event::{Event, EventView, SnapshotHit, TriggeredHit};
use daq::tmch::{TmchPacket, TmchView};
use daq::DecodeError;

fn payloads(name: &str) -> Vec<Vec<u8>> {
    DumpReader::open(common::testdata().join("daq").join(name))
        .unwrap()
        .map(|r| r.unwrap().payload)
        .collect()
}

#[test]
fn event_view_reads_the_spec_example() {
    let events = payloads("IO_EVT.dat");
    let view = EventView::new(&events[0]).unwrap();
    assert_eq!(view.version(), Some(4));
    assert_eq!(view.header().run, 6760);
    assert_eq!(view.trigger_mask(), 22);
    assert_eq!(
        (view.triggered_hits().len(), view.snapshot_hits().len()),
        (182, 239)
    );
    // Spec §3.2: the first triggered hit of IO_EVT.dat.
    let first = TriggeredHit {
        dom_id: 806451572,
        channel_id: 23,
        time: 40380598,
        tot: 27,
        trigger_mask: 4,
    };
    assert_eq!(view.triggered_hits().get(0), Some(first));
    assert_eq!(view.triggered_hits().get(182), None);
    assert_eq!(view.triggered_hits().as_bytes().len(), 182 * 18);
    // Every triggered hit is in the snapshot (spec §3.3).
    let snapshot: Vec<SnapshotHit> = view.snapshot_hits().iter().collect();
    assert!(view
        .triggered_hits()
        .iter()
        .all(|h| snapshot.contains(&h.snapshot())));
    assert_eq!(view.as_bytes(), &events[0][..]);
}

#[test]
fn event_view_and_owned_decode_agree() {
    for frame in payloads("IO_EVT.dat") {
        let view = EventView::new(&frame).unwrap();
        let event = Event::decode(&frame).unwrap();
        assert_eq!(view.to_event(), event);
        assert_eq!(
            view.snapshot_hits().iter().next_back(),
            event.snapshot_hits.last().copied()
        );
        assert_eq!(view.overlays(), event.overlays);
        assert_eq!(view.trigger_counter(), event.trigger_counter);
    }
    // Errors are the owned decode's, offsets included.
    let mut bad = payloads("IO_EVT.dat").remove(0);
    bad[50..54].copy_from_slice(&i32::MAX.to_le_bytes());
    let err = EventView::new(&bad).unwrap_err();
    assert!(matches!(err, DecodeError::TooManyItems { offset: 50, .. }));
    assert_eq!(Event::decode(&bad).unwrap_err(), err);
}

#[test]
fn tmch_view_reads_the_sample_packets() {
    for packet in payloads("IO_MONIT.dat") {
        let view = TmchView::new(&packet).unwrap();
        let owned = TmchPacket::decode(&packet).unwrap();
        // Spec §6.3: DOM 806472270, run 86, version code 1 = version 2,
        // 4 trailing zero bytes, 100000 in ts_duration, 32.35 °C.
        assert_eq!((view.dom_id(), view.run()), (806472270, 86));
        assert_eq!(view.structure_version(), 2);
        assert_eq!(view.trailing(), &[0, 0, 0, 0]);
        assert_eq!(view.ts_duration(), Some(100_000));
        assert_eq!(view.temperature_raw(), 3235);
        assert_eq!(view.counts(), owned.counts);
        assert_eq!(view.count(30), Some(owned.counts[30]));
        assert_eq!(view.count(31), None);
        assert_eq!(view.a().map(f32::to_bits), owned.a.map(f32::to_bits));
        assert_eq!(view.to_packet().encode(), packet);
    }
}

#[test]
fn trailing_bytes_of_every_length_survive() {
    let packet = payloads("IO_MONIT.dat").remove(0);
    // The structure ends at 240 (version 2); 0 to 40 bytes follow, across
    // the inline/heap boundary of TrailingBytes at 16.
    for extra in 0..=40usize {
        let mut p = packet[..240].to_vec();
        p.extend((0..extra).map(|k| k as u8 + 1));
        let decoded = TmchPacket::decode(&p).unwrap();
        assert_eq!(decoded.trailing.as_slice(), &p[240..], "{extra}");
        assert_eq!(decoded.encode(), p);
    }
}
