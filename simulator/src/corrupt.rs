//! Damaged payloads for the `corrupt-frames` fault. The ControlHost
//! framing stays intact (the Ligier forwards the message, a recording
//! stays readable); the payload is broken in one of the ways a DAQ frame
//! gets broken in practice, each of which the decoders must report:
//! a preamble length that disagrees with the bytes, a truncated frame, an
//! absurd record count, an unknown version; for CLB packets a damaged
//! marker, a truncated packet or an unused structure version.

use crate::rng::Rng;

/// Offset of the record count (frames or triggered hits) in versioned
/// summaryslices, timeslices and events.
const COUNT_AT: usize = 30;
const EVENT_COUNT_AT: usize = 50;

/// Damage a DAQ frame in place; returns a word for the log.
pub fn daq_frame(payload: &mut Vec<u8>, is_event: bool, rng: &mut Rng) -> &'static str {
    if payload.len() < 12 {
        payload.truncate(payload.len() / 2);
        return "truncated";
    }
    match rng.below(4) {
        0 => {
            // The preamble claims more bytes than the frame has.
            let length = i32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
            let wrong = length.saturating_add(1 + rng.below(1000) as i32);
            payload[..4].copy_from_slice(&wrong.to_le_bytes());
            "bad preamble length"
        }
        1 => {
            let keep = 10 + rng.below((payload.len() - 10) as u64) as usize;
            payload.truncate(keep);
            "truncated"
        }
        2 => {
            let at = if is_event { EVENT_COUNT_AT } else { COUNT_AT };
            if payload.len() >= at + 4 {
                let absurd = 0x4000_0000u32 | rng.next_u64() as u32;
                payload[at..at + 4].copy_from_slice(&absurd.to_le_bytes());
                "bad record count"
            } else {
                payload.truncate(payload.len() - 1);
                "truncated"
            }
        }
        _ => {
            // Neither a known version nor a valid legacy layout.
            payload[8..10].copy_from_slice(&(99i16 + rng.below(100) as i16).to_le_bytes());
            "bad version"
        }
    }
}

/// Damage a TMCH packet in place.
pub fn tmch(payload: &mut Vec<u8>, rng: &mut Rng) -> &'static str {
    match rng.below(3) {
        0 if payload.len() >= 4 => {
            payload[3] = b'X';
            "bad marker"
        }
        1 if payload.len() >= 172 => {
            // Structure-version code 2 is unused.
            let flags =
                u32::from_be_bytes([payload[168], payload[169], payload[170], payload[171]]);
            let flags = (flags & !0b1110) | (2 << 1);
            payload[168..172].copy_from_slice(&flags.to_be_bytes());
            "bad structure version"
        }
        _ => {
            let keep = 4 + rng.below(200) as usize;
            payload.truncate(keep.min(payload.len().saturating_sub(1)));
            "truncated"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daq::frame::decode_frame;
    use daq::summary::{SummaryFrame, Summaryslice};
    use daq::tmch::TmchPacket;

    #[test]
    fn every_damage_is_detected() {
        let slice = Summaryslice {
            version: Some(Summaryslice::VERSION),
            header: Default::default(),
            frames: vec![
                SummaryFrame {
                    dom_id: 1,
                    status: Default::default(),
                    rates: [3; 31]
                };
                5
            ],
        };
        let good = slice.encode();
        let mut rng = Rng::new(1, 1);
        for _ in 0..200 {
            let mut bytes = good.clone();
            let what = daq_frame(&mut bytes, false, &mut rng);
            assert!(decode_frame(&bytes).is_err(), "{what}");
        }
        let packet = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/testdata/daq/IO_MONIT.dat"
        ))
        .ok()
        .map(|b| b[4..248].to_vec());
        if let Some(good) = packet {
            for _ in 0..100 {
                let mut bytes = good.clone();
                let what = tmch(&mut bytes, &mut rng);
                assert!(TmchPacket::decode(&bytes).is_err(), "{what}");
            }
        }
    }
}
