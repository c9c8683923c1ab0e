//! Builders for unit tests: frames made with the `daq` encoders and read
//! back with its decoders, exactly as the decoder node would see them.

use std::sync::Arc;

use daq::event::{Event, SnapshotHit, TriggeredHit};
use daq::frame::{DaqHeader, DataType, FrameStatus};
use daq::summary::{SummaryFrame, Summaryslice};
use daq::timeslice::{SuperFrame, Timeslice};
use daq::tmch::TmchPacket;
use pipeline::item::{time_of_ns, Item, Time};

pub const SYNC: u32 = 0x8000_0000;

pub fn header(utc_ns: u64, run: i32) -> DaqHeader {
    DaqHeader {
        det_id: 7,
        run,
        frame_index: (utc_ns / 100_000_000 % 1_000_000) as i32,
        utc_seconds: (utc_ns / 1_000_000_000) as u32,
        wr_status_msb: false,
        utc_16ns_ticks: (utc_ns % 1_000_000_000 / 16) as u32,
    }
}

pub fn at(utc_ns: u64) -> Time {
    time_of_ns(utc_ns)
}

/// A summaryslice with (dom, rate code, status word) frames.
pub fn summaryslice(utc_ns: u64, frames: &[(u32, u8, u32)]) -> Item {
    let s = Summaryslice {
        version: Some(6),
        header: header(utc_ns, 1),
        frames: frames
            .iter()
            .map(|&(dom_id, code, status)| SummaryFrame {
                dom_id,
                status: FrameStatus {
                    status,
                    ..FrameStatus::default()
                },
                rates: [code; 31],
            })
            .collect(),
    };
    Item::Summaryslice(Arc::new(
        Summaryslice::decode(&s.encode()).expect("round trip"),
    ))
}

/// An event with one triggered + snapshot hit per DOM listed.
pub fn event(utc_ns: u64, run: i32, mask: u64, doms: &[u32]) -> Item {
    let e = Event {
        version: Some(4),
        header: header(utc_ns, run),
        trigger_counter: utc_ns / 1000,
        trigger_mask: mask,
        overlays: 0,
        triggered_hits: doms
            .iter()
            .map(|&dom_id| TriggeredHit {
                dom_id,
                channel_id: 3,
                time: 10,
                tot: 20,
                trigger_mask: mask,
            })
            .collect(),
        snapshot_hits: doms
            .iter()
            .flat_map(|&dom_id| {
                [0u8, 3].map(|channel_id| SnapshotHit {
                    dom_id,
                    channel_id,
                    time: 10,
                    tot: 20,
                })
            })
            .collect(),
    };
    Item::Event(Arc::new(Event::decode(&e.encode()).expect("round trip")))
}

/// An IO_TSSN timeslice with (dom, status word) super-frames.
pub fn timeslice(utc_ns: u64, frames: &[(u32, u32)]) -> Item {
    let t = Timeslice {
        version: Some(1),
        data_type: DataType::TimesliceSn,
        header: header(utc_ns, 1),
        frames: frames
            .iter()
            .map(|&(dom_id, status)| SuperFrame {
                header: header(utc_ns, 1),
                dom_id,
                status: FrameStatus {
                    status,
                    ..FrameStatus::default()
                },
                hits: Vec::new(),
            })
            .collect(),
    };
    Item::Timeslice(Arc::new(
        Timeslice::decode(&t.encode()).expect("round trip"),
    ))
}

/// A version-3 TMCH packet with the same count on every channel.
pub fn tmch(utc_ns: u64, dom_id: u32, count: u32, hrvbmp: u32) -> TmchPacket {
    let p = TmchPacket {
        run: 1,
        udp_sequence_number: 0,
        utc_seconds: (utc_ns / 1_000_000_000) as u32,
        utc_16ns_ticks: (utc_ns % 1_000_000_000 / 16) as u32,
        dom_id,
        dom_status: [0; 4],
        counts: [count; 31],
        hrvbmp,
        flags: 3 << 1,
        yaw: 0.0,
        pitch: 0.0,
        roll: 0.0,
        a: [0.0; 3],
        g: [0.0; 3],
        h: [0.0; 3],
        temperature_raw: 0,
        humidity_raw: 0,
        tdcfull: 0,
        aesfull: 0,
        flushc: 0,
        ts_duration: Some(100_000),
        tdc_supertime_fifo_size: Some(0),
        aes_supertime_fifo_size: Some(0),
        trailing: Default::default(),
    };
    TmchPacket::decode(&p.encode()).expect("round trip")
}
