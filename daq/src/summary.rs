//! `JDAQSummaryslice` (`IO_SUM`, spec §4): per 100 ms timeslice, one summary
//! frame per DOM with its status words and a compressed rate per PMT channel.

use std::sync::OnceLock;

use crate::frame::{
    begin_frame, check_frame, detect_layout, field, finish_frame, fixed, put_count, Cursor,
    DaqHeader, DataType, FrameStatus, HEADER_LEN,
};
use crate::DecodeError;

/// Rate bytes per summary frame: one per PMT channel slot of the CLB, fixed
/// by the wire format (not a statement about any detector's DOMs).
pub const N_RATES: usize = 31;
/// Bytes of a versioned summary frame: DOM id, five status words, rates.
pub const FRAME_LEN: usize = 4 + 5 * 4 + N_RATES;
/// Bytes of a legacy summary frame: DOM id, one status word, rates.
pub const LEGACY_FRAME_LEN: usize = 4 + 4 + N_RATES;

/// Lower end of the logarithmic rate scale.
pub const MINIMAL_RATE_HZ: f64 = 2000.0;
/// Upper end of the logarithmic rate scale.
pub const MAXIMAL_RATE_HZ: f64 = 2.0e6;

/// One summaryslice.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Summaryslice {
    /// `Some(6)` for versioned frames. `None` means legacy, which also
    /// means 39-byte summary frames: encoding then writes only each frame's
    /// `status.status` word.
    pub version: Option<i16>,
    pub header: DaqHeader,
    pub frames: Vec<SummaryFrame>,
}

/// One DOM's summary for one timeslice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SummaryFrame {
    pub dom_id: u32,
    /// In a legacy summaryslice only `status.status` exists on the wire
    /// (the single status word); the other words are 0.
    pub status: FrameStatus,
    /// Compressed rate per channel, decoded by [`rate_hz`].
    pub rates: [u8; N_RATES],
}

impl SummaryFrame {
    /// The 31 channel rates in Hz.
    pub fn rates_hz(&self) -> [f64; N_RATES] {
        let table = rate_table();
        self.rates.map(|v| table[usize::from(v)])
    }

    /// Sum of the channel rates in Hz, added from channel 0 upwards (the
    /// per-DOM rate the dom_rates monitor shows).
    pub fn rate_sum_hz(&self) -> f64 {
        let table = rate_table();
        self.rates
            .iter()
            .fold(0.0, |sum, &v| sum + table[usize::from(v)])
    }
}

/// Decode a compressed rate byte (spec §4.4). The byte is unsigned: codes
/// ≥ 128 are the high rates (up to 2 MHz), which a signed reading turns
/// into values below 2 kHz.
pub fn rate_hz(v: u8) -> f64 {
    rate_table()[usize::from(v)]
}

/// `rate_hz` for every code, computed once with the `exp` form of §4.4 (the
/// `pow` form differs in the last bit).
fn rate_table() -> &'static [f64; 256] {
    static TABLE: OnceLock<[f64; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let factor = (MAXIMAL_RATE_HZ / MINIMAL_RATE_HZ).ln() / 255.0;
        let mut table = [0.0; 256];
        for (v, rate) in table.iter_mut().enumerate().skip(1) {
            *rate = MINIMAL_RATE_HZ * (v as f64 * factor).exp();
        }
        table
    })
}

impl Summaryslice {
    /// Version of the versioned layout.
    pub const VERSION: i16 = 6;

    /// Decode one complete summaryslice frame (preamble included).
    pub fn decode(bytes: &[u8]) -> Result<Summaryslice, DecodeError> {
        check_frame(bytes, |t| t == DataType::Summaryslice, "summaryslice")?;
        let (version, header_at) = layout(bytes)?;
        let mut cur = Cursor::at(bytes, header_at);
        let header = DaqHeader::read(&mut cur)?;
        let legacy = version.is_none();
        let (n, raw) = cur.records("summary frames", frame_len(legacy))?;
        let mut frames = Vec::with_capacity(n);
        if legacy {
            frames.extend(raw.chunks_exact(LEGACY_FRAME_LEN).map(|r| {
                let r: [u8; LEGACY_FRAME_LEN] = fixed(r);
                SummaryFrame {
                    dom_id: u32::from_le_bytes(field(&r, 0)),
                    status: FrameStatus {
                        status: u32::from_le_bytes(field(&r, 4)),
                        ..FrameStatus::default()
                    },
                    rates: field(&r, 8),
                }
            }));
        } else {
            frames.extend(raw.chunks_exact(FRAME_LEN).map(|r| {
                let r: [u8; FRAME_LEN] = fixed(r);
                SummaryFrame {
                    dom_id: u32::from_le_bytes(field(&r, 0)),
                    status: FrameStatus {
                        daq: u32::from_le_bytes(field(&r, 4)),
                        status: u32::from_le_bytes(field(&r, 8)),
                        fifo: u32::from_le_bytes(field(&r, 12)),
                        status_3: u32::from_le_bytes(field(&r, 16)),
                        status_4: u32::from_le_bytes(field(&r, 20)),
                    },
                    rates: field(&r, 24),
                }
            }));
        }
        Ok(Summaryslice {
            version,
            header,
            frames,
        })
    }

    pub fn is_legacy(&self) -> bool {
        self.version.is_none()
    }

    /// Size of the encoded frame in bytes.
    pub fn encoded_len(&self) -> usize {
        8 + self.version.map_or(0, |_| 2)
            + HEADER_LEN
            + 4
            + frame_len(self.is_legacy()) * self.frames.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Append the frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = begin_frame(out, DataType::Summaryslice);
        if let Some(v) = self.version {
            out.extend_from_slice(&v.to_le_bytes());
        }
        self.header.write(out);
        put_count(out, self.frames.len());
        for f in &self.frames {
            out.extend_from_slice(&f.dom_id.to_le_bytes());
            if self.is_legacy() {
                out.extend_from_slice(&f.status.status.to_le_bytes());
            } else {
                let s = &f.status;
                for word in [s.daq, s.status, s.fifo, s.status_3, s.status_4] {
                    out.extend_from_slice(&word.to_le_bytes());
                }
            }
            out.extend_from_slice(&f.rates);
        }
        finish_frame(out, start);
    }
}

fn frame_len(legacy: bool) -> usize {
    if legacy {
        LEGACY_FRAME_LEN
    } else {
        FRAME_LEN
    }
}

/// Versioned or legacy, and where the header starts. The two layouts also
/// differ in frame size (§4.3), so the size check uses each one's own.
pub(crate) fn layout(bytes: &[u8]) -> Result<(Option<i16>, usize), DecodeError> {
    detect_layout(bytes, Summaryslice::VERSION, "summaryslice", |header_at| {
        let legacy = header_at == crate::frame::PREAMBLE_LEN;
        let mut cur = Cursor::at(bytes, header_at);
        cur.take(HEADER_LEN, "DAQ header")?;
        cur.records("summary frames", frame_len(legacy))?;
        Ok(cur.pos())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_rates_of_the_spec() {
        assert_eq!(rate_hz(0), 0.0);
        let close = |a: f64, b: f64| ((a - b) / b).abs() < 1e-13;
        assert!(close(rate_hz(1), 2054.9189708923604));
        assert!(close(rate_hz(51), 7962.143411069946));
        assert!(close(rate_hz(64), 11323.251985645455));
        assert!(close(rate_hz(127), 62394.69163825238));
        assert!(close(rate_hz(128), 64108.01776521186));
        assert!(close(rate_hz(255), 1999999.9999999995));
    }
}
