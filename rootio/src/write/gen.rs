//! Synthetic runs for benchmarks and tests: summaryslices and timeslices of
//! a detector of `n_doms` DOMs, deterministic for a seed. Hit times rise
//! within each super-frame; rates and hit counts vary from DOM to DOM.

use daq::frame::{DaqHeader, DataType, FrameStatus};
use daq::summary::{SummaryFrame, Summaryslice, N_RATES};
use daq::timeslice::{Hit, SuperFrame, Timeslice};

/// Nanoseconds in a timeslice.
const SLICE_NS: u32 = 100_000_000;
/// First DOM id (ids follow on from it).
const FIRST_DOM: u32 = 806_451_572;

pub struct RunGen {
    pub det_id: i32,
    pub run: i32,
    pub n_doms: usize,
    /// UTC seconds of frame index 1.
    pub start_s: u32,
    state: u64,
}

impl RunGen {
    pub fn new(det_id: i32, run: i32, n_doms: usize, seed: u64) -> RunGen {
        RunGen {
            det_id,
            run,
            n_doms,
            start_s: 1_750_000_000,
            state: seed | 1,
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 32) % n.max(1)
    }

    pub fn header(&self, frame_index: i32) -> DaqHeader {
        let ns = u64::from(SLICE_NS) * (frame_index.max(1) as u64 - 1);
        DaqHeader {
            det_id: self.det_id,
            run: self.run,
            frame_index,
            utc_seconds: self.start_s + (ns / 1_000_000_000) as u32,
            wr_status_msb: false,
            utc_16ns_ticks: (ns % 1_000_000_000 / 16) as u32,
        }
    }

    fn status(&mut self) -> FrameStatus {
        FrameStatus {
            daq: 0x0010_0000 | self.below(16) as u32,
            status: 0x8000_0000,
            fifo: 0,
            status_3: 0,
            status_4: 0,
        }
    }

    pub fn summaryslice(&mut self, frame_index: i32) -> Summaryslice {
        let header = self.header(frame_index);
        let frames = (0..self.n_doms)
            .map(|k| {
                let mut rates = [0u8; N_RATES];
                for r in rates.iter_mut() {
                    *r = 120 + self.below(40) as u8;
                }
                SummaryFrame {
                    dom_id: FIRST_DOM + k as u32,
                    status: self.status(),
                    rates,
                }
            })
            .collect();
        Summaryslice {
            version: Some(Summaryslice::VERSION),
            header,
            frames,
        }
    }

    /// A timeslice with about `mean_hits` hits per DOM.
    pub fn timeslice(
        &mut self,
        frame_index: i32,
        data_type: DataType,
        mean_hits: u32,
    ) -> Timeslice {
        let header = self.header(frame_index);
        let frames = (0..self.n_doms)
            .map(|k| {
                let n = mean_hits / 2 + self.below(u64::from(mean_hits) + 1) as u32;
                let step = SLICE_NS / (n + 1);
                let mut t = 0u32;
                let hits = (0..n)
                    .map(|_| {
                        t += 1 + self.below(u64::from(step) * 2) as u32;
                        Hit {
                            channel_id: self.below(31) as u8,
                            time: t.min(SLICE_NS - 1),
                            // Peaked near 26 ns like a single photon's.
                            tot: 18 + (self.below(9) + self.below(9)) as u8,
                        }
                    })
                    .collect();
                SuperFrame {
                    header,
                    dom_id: FIRST_DOM + k as u32,
                    status: self.status(),
                    hits,
                }
            })
            .collect();
        Timeslice {
            version: Some(Timeslice::VERSION),
            data_type,
            header,
            frames,
        }
    }
}
