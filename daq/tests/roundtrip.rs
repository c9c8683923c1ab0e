//! Property tests: `decode(encode(v)) == v` for every frame type and both
//! layouts, and `encode(decode(bytes)) == bytes` on the encoded bytes.

use daq::event::{Event, SnapshotHit, TriggeredHit};
use daq::frame::{decode_frame, peek_header, DaqFrame, DaqHeader, DataType, FrameStatus};
use daq::summary::{SummaryFrame, Summaryslice};
use daq::timeslice::{Hit, SuperFrame, Timeslice, TimesliceView};
use daq::tmch::{TmchPacket, TrailingBytes};
use proptest::collection::vec;
use proptest::prelude::*;

fn header() -> impl Strategy<Value = DaqHeader> {
    (
        any::<i32>(),
        any::<i32>(),
        any::<i32>(),
        0..=0x7FFF_FFFFu32,
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(
            |(det_id, run, frame_index, utc_seconds, wr_status_msb, utc_16ns_ticks)| DaqHeader {
                det_id,
                run,
                frame_index,
                utc_seconds,
                wr_status_msb,
                utc_16ns_ticks,
            },
        )
}

fn status() -> impl Strategy<Value = FrameStatus> {
    any::<[u32; 5]>().prop_map(|[daq, status, fifo, status_3, status_4]| FrameStatus {
        daq,
        status,
        fifo,
        status_3,
        status_4,
    })
}

fn triggered_hit() -> impl Strategy<Value = TriggeredHit> {
    (
        any::<u32>(),
        any::<u8>(),
        any::<u32>(),
        any::<u8>(),
        any::<u64>(),
    )
        .prop_map(
            |(dom_id, channel_id, time, tot, trigger_mask)| TriggeredHit {
                dom_id,
                channel_id,
                time,
                tot,
                trigger_mask,
            },
        )
}

fn snapshot_hit() -> impl Strategy<Value = SnapshotHit> {
    (any::<u32>(), any::<u8>(), any::<u32>(), any::<u8>()).prop_map(
        |(dom_id, channel_id, time, tot)| SnapshotHit {
            dom_id,
            channel_id,
            time,
            tot,
        },
    )
}

fn event() -> impl Strategy<Value = Event> {
    (
        prop_oneof![Just(Some(Event::VERSION)), Just(None)],
        header(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        vec(triggered_hit(), 0..40),
        vec(snapshot_hit(), 0..60),
    )
        .prop_map(
            |(
                version,
                header,
                trigger_counter,
                trigger_mask,
                overlays,
                triggered_hits,
                snapshot_hits,
            )| Event {
                version,
                header,
                trigger_counter,
                trigger_mask,
                overlays,
                triggered_hits,
                snapshot_hits,
            },
        )
}

fn summary_frame(legacy: bool) -> impl Strategy<Value = SummaryFrame> {
    (any::<u32>(), status(), any::<[u8; 31]>()).prop_map(move |(dom_id, status, rates)| {
        SummaryFrame {
            dom_id,
            // A legacy frame has only the one status word on the wire.
            status: if legacy {
                FrameStatus {
                    status: status.status,
                    ..FrameStatus::default()
                }
            } else {
                status
            },
            rates,
        }
    })
}

fn summaryslice() -> impl Strategy<Value = Summaryslice> {
    any::<bool>().prop_flat_map(|legacy| {
        (header(), vec(summary_frame(legacy), 0..40)).prop_map(move |(header, frames)| {
            Summaryslice {
                version: if legacy {
                    None
                } else {
                    Some(Summaryslice::VERSION)
                },
                header,
                frames,
            }
        })
    })
}

fn hit() -> impl Strategy<Value = Hit> {
    (any::<u8>(), any::<u32>(), any::<u8>()).prop_map(|(channel_id, time, tot)| Hit {
        channel_id,
        time,
        tot,
    })
}

fn super_frame() -> impl Strategy<Value = SuperFrame> {
    (header(), any::<u32>(), status(), vec(hit(), 0..30)).prop_map(
        |(header, dom_id, status, hits)| SuperFrame {
            header,
            dom_id,
            status,
            hits,
        },
    )
}

fn timeslice() -> impl Strategy<Value = Timeslice> {
    let data_type = prop_oneof![
        Just(DataType::Timeslice),
        Just(DataType::TimesliceL0),
        Just(DataType::TimesliceL1),
        Just(DataType::TimesliceL2),
        Just(DataType::TimesliceSn),
    ];
    (
        prop_oneof![Just(Some(Timeslice::VERSION)), Just(None)],
        data_type,
        header(),
        vec(super_frame(), 0..8),
    )
        .prop_map(|(version, data_type, header, frames)| Timeslice {
            version,
            data_type,
            header,
            frames,
        })
}

/// Any f32 but NaN (NaN != NaN would fail equality, not the codec).
fn float() -> impl Strategy<Value = f32> {
    any::<u32>().prop_map(|bits| {
        let f = f32::from_bits(bits);
        if f.is_nan() {
            0.5
        } else {
            f
        }
    })
}

fn tmch() -> impl Strategy<Value = TmchPacket> {
    let ids = (
        any::<[u32; 5]>(),
        any::<[u32; 4]>(),
        any::<[u32; 31]>(),
        any::<u32>(),
    );
    let flags = (prop_oneof![Just(0u32), Just(1), Just(3)], any::<u32>())
        .prop_map(|(code, bits)| (bits & !0b1110) | (code << 1));
    let ahrs = vec(float(), 12);
    let env = (
        any::<[u16; 2]>(),
        any::<[u32; 4]>(),
        any::<[u16; 2]>(),
        vec(any::<u8>(), 0..40),
    );
    (ids, flags, ahrs, env).prop_map(
        |((words, dom_status, counts, hrvbmp), flags, f, (th, full, fifo, trailing))| {
            let version = match (flags >> 1) & 7 {
                0 => 1,
                1 => 2,
                _ => 3,
            };
            TmchPacket {
                run: words[0],
                udp_sequence_number: words[1],
                utc_seconds: words[2],
                utc_16ns_ticks: words[3],
                dom_id: words[4],
                dom_status,
                counts,
                hrvbmp,
                flags,
                yaw: f[0],
                pitch: f[1],
                roll: f[2],
                a: [f[3], f[4], f[5]],
                g: [f[6], f[7], f[8]],
                h: [f[9], f[10], f[11]],
                temperature_raw: th[0],
                humidity_raw: th[1],
                tdcfull: full[0],
                aesfull: full[1],
                flushc: full[2],
                ts_duration: (version >= 2).then_some(full[3]),
                tdc_supertime_fifo_size: (version >= 3).then_some(fifo[0]),
                aes_supertime_fifo_size: (version >= 3).then_some(fifo[1]),
                trailing: TrailingBytes::from(trailing),
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn events_round_trip(e in event()) {
        let bytes = e.encode();
        prop_assert_eq!(bytes.len(), e.encoded_len());
        let back = Event::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &e);
        prop_assert_eq!(back.encode(), bytes.clone());
        prop_assert_eq!(decode_frame(&bytes).unwrap(), DaqFrame::Event(e.clone()));
        prop_assert_eq!(peek_header(&bytes), Some(e.header));
    }

    #[test]
    fn summaryslices_round_trip(s in summaryslice()) {
        let bytes = s.encode();
        prop_assert_eq!(bytes.len(), s.encoded_len());
        let per_frame = if s.is_legacy() { 39 } else { 55 };
        prop_assert_eq!(bytes.len(), if s.is_legacy() { 32 } else { 34 } + per_frame * s.frames.len());
        let back = Summaryslice::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &s);
        prop_assert_eq!(back.encode(), bytes.clone());
        prop_assert_eq!(peek_header(&bytes), Some(s.header));
    }

    #[test]
    fn timeslices_round_trip(t in timeslice()) {
        let bytes = t.encode();
        prop_assert_eq!(bytes.len(), t.encoded_len());
        let back = Timeslice::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(back.encode(), bytes.clone());
        let view = TimesliceView::new(&bytes).unwrap();
        prop_assert_eq!(view.n_hits(), t.n_hits());
        prop_assert_eq!(view.n_frames(), t.frames.len());
        for (v, f) in view.frames().zip(&t.frames) {
            prop_assert_eq!(v.dom_id(), f.dom_id);
            prop_assert_eq!(v.hits().len(), f.hits.len());
            prop_assert_eq!(v.hits().iter().collect::<Vec<_>>(), f.hits.clone());
        }
        prop_assert_eq!(peek_header(&bytes), Some(t.header));
    }

    #[test]
    fn tmch_round_trip(p in tmch()) {
        let bytes = p.encode();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        let back = TmchPacket::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &p);
        prop_assert_eq!(back.encode(), bytes);
    }
}

#[test]
fn tmch_versions_have_their_sizes() {
    let base = TmchPacket::decode(&{
        let mut bytes = vec![0u8; 236];
        bytes[..4].copy_from_slice(b"TMCH");
        bytes
    })
    .unwrap();
    assert_eq!(base.structure_version(), Some(1));
    assert_eq!(base.ts_duration, None);
    for (code, version, len) in [(0u32, 1u8, 236usize), (1, 2, 240), (3, 3, 244)] {
        let p = TmchPacket {
            flags: code << 1,
            ts_duration: (version >= 2).then_some(7),
            tdc_supertime_fifo_size: (version >= 3).then_some(8),
            aes_supertime_fifo_size: (version >= 3).then_some(9),
            ..base.clone()
        };
        assert_eq!(p.structure_version(), Some(version));
        assert_eq!(p.encode().len(), len);
        assert_eq!(TmchPacket::decode(&p.encode()).unwrap(), p);
    }
    let long = TrailingBytes::from(vec![1u8; 100]);
    let p = TmchPacket {
        trailing: long.clone(),
        ..base
    };
    assert_eq!(TmchPacket::decode(&p.encode()).unwrap().trailing, long);
}

/// With the `serde` feature, decoded frames survive a trip through JSON
/// (how they will travel between timely processes is a later choice; the
/// derive is what matters here).
#[cfg(feature = "serde")]
#[test]
fn serde_round_trip_of_decoded_samples() {
    use daq::dump::{DumpReader, Payload};
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/daq");
    let dir = std::env::var_os("KM3MON_TESTDATA")
        .map_or(dir, |d| std::path::PathBuf::from(d).join("daq"));
    for name in ["IO_EVT.dat", "IO_SUM.dat", "IO_TSSN.dat", "IO_MONIT.dat"] {
        for record in DumpReader::open(dir.join(name)).unwrap() {
            match record.unwrap().decode().unwrap() {
                Payload::Frame(frame) => {
                    let json = serde_json::to_string(&frame).unwrap();
                    assert_eq!(serde_json::from_str::<DaqFrame>(&json).unwrap(), frame);
                }
                Payload::Tmch(packet) => {
                    let json = serde_json::to_string(&packet).unwrap();
                    assert_eq!(serde_json::from_str::<TmchPacket>(&json).unwrap(), packet);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
