//! One module's light and housekeeping, timeslice by timeslice: PMT hit
//! counts (K40 plus bioluminescence bursts), the status words the DAQ
//! derives from them, the CLB monitoring packet, and the sparse SN hits.
//!
//! Counts come first and everything else is derived from them, as in the
//! DAQ: the TMCH counts are the hits of the 100 ms window, the summary rate
//! byte is `count × 10 Hz` compressed, HRV and FIFO bits follow from the
//! rate, so all streams of one DOM agree with each other.

use std::sync::OnceLock;

use daq::detector::Module;
use daq::frame::{DaqHeader, FrameStatus};
use daq::summary::{SummaryFrame, MAXIMAL_RATE_HZ, MINIMAL_RATE_HZ};
use daq::timeslice::Hit;
use daq::tmch::{TmchPacket, TrailingBytes};

use crate::rng::{Normals, Rng};

pub const N_CH: usize = 31;

/// Status bit 31 (White Rabbit / time sync OK) and fifo bit 31 (UDP
/// trailer received).
const FLAG: u32 = 0x8000_0000;
/// A channel goes into high-rate veto above this many hits per 100 ms
/// (100 kHz): bursts cross it, K40 never does.
const HRV_COUNT: u32 = 10_000;
/// Its FIFO is reported almost full above this (500 kHz).
const FIFO_COUNT: u32 = 50_000;
/// Payload bytes of one optical-data UDP packet of the CLB (jumbo frame).
const UDP_PAYLOAD: u32 = 8_972;
/// Mean SN-stream hits of one quiet DOM per timeslice (the sample IO_TSSN
/// has about two).
const SN_HITS_PER_SLICE: f64 = 1.8;
/// Counts for which the rate-byte table is built: up to 2 MHz × 100 ms.
const MAX_TABLE_COUNT: usize = 200_000;

/// The compressed rate byte of `count` hits in 100 ms: the inverse of
/// `daq::summary::rate_hz`, rounded to the nearest code; rates below the
/// 2 kHz floor give 0, above 2 MHz 255. A table, because this runs for
/// every PMT of every DOM ten times per second of data.
pub fn rate_code(count: u32) -> u8 {
    rate_codes().get(count as usize).copied().unwrap_or(255)
}

fn rate_codes() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let factor = (MAXIMAL_RATE_HZ / MINIMAL_RATE_HZ).ln() / 255.0;
        (0..=MAX_TABLE_COUNT)
            .map(|n| {
                let hz = n as f64 * 10.0;
                if hz < MINIMAL_RATE_HZ {
                    0
                } else {
                    ((hz / MINIMAL_RATE_HZ).ln() / factor)
                        .round()
                        .clamp(1.0, 255.0) as u8
                }
            })
            .collect()
    })
}

/// A bioluminescence burst: light from one side, rising fast and decaying
/// over seconds.
#[derive(Debug, Clone)]
struct Burst {
    start: u64,
    rise: f32,
    decay: f32,
    end: u64,
    /// Extra hits per 100 ms at the peak, per channel.
    peak: [f32; N_CH],
}

impl Burst {
    fn profile(&self, slice: u64) -> f32 {
        let t = (slice - self.start) as f32;
        if t < self.rise {
            (t + 1.0) / (self.rise + 1.0)
        } else {
            (-(t - self.rise) / self.decay).exp()
        }
    }
}

/// What one DOM reported for the current timeslice.
#[derive(Debug, Clone, Copy)]
pub struct SliceState {
    pub counts: [u32; N_CH],
    pub codes: [u8; N_CH],
    pub hrv: u32,
    pub fifo_almost_full: u32,
    pub udp_packets: u32,
    /// Sum of the counts × 10: the DOM rate in Hz.
    pub rate_hz: f64,
}

pub struct DomModel {
    pub dom_id: u32,
    pub du: u32,
    pub floor: i32,
    pub is_base: bool,
    n_pmts: usize,
    rng: Rng,
    normals: Normals,
    /// Mean hits per 100 ms of each channel without bursts.
    base: [f32; N_CH],
    base_sqrt: [f32; N_CH],
    pmt_dirs: [[f32; 3]; N_CH],
    drift_omega: f32,
    drift_phase: f32,
    burst_chance: f64,
    burst: Option<Burst>,
    yaw: f32,
    pitch: f32,
    roll: f32,
    gyro_offset: [f32; 3],
    /// Accelerometer and compass readings for the mean orientation.
    gravity: [f32; 3],
    field: [f32; 3],
    temperature: f32,
    humidity: f32,
    udp_sequence: u32,
    pub state: SliceState,
    /// Outputs of [`DomModel::advance`] for the current timeslice: the
    /// encoded CLB packet, the SN hits, the time-sync flag.
    pub monit: Vec<u8>,
    pub sn: Vec<Hit>,
    pub synced: bool,
    /// Degrees added to the heading (the `ahrs-drift` fault): the compass
    /// readings turn with it.
    pub yaw_drift: f32,
}

/// Accelerometer and compass readings of a DOM turned by `yaw`, `pitch`,
/// `roll` (degrees) in a field of 0.45 G with a 55° dip, such that the
/// orientation math of the AHRS monitor (km3pipe's `fit_ahrs`, spec
/// integrations.md §3.4) with identity calibration gives back those
/// angles: gravity along the DOM's axes after the upside-down sign flip
/// of y and z, the field's horizontal part along the heading in the plane
/// perpendicular to gravity.
pub fn ahrs_readings(yaw: f32, pitch: f32, roll: f32) -> ([f32; 3], [f32; 3]) {
    let (y, p, r) = (
        f64::from(yaw).to_radians(),
        f64::from(pitch).to_radians(),
        f64::from(roll).to_radians(),
    );
    let (b, dip) = (0.45f64, 55f64.to_radians());
    let g = [p.sin(), -p.cos() * r.sin(), -p.cos() * r.cos()];
    let e1 = [p.cos(), p.sin() * r.sin(), p.sin() * r.cos()];
    let e2 = [0.0, -r.cos(), r.sin()];
    let h =
        [0, 1, 2].map(|i| b * (dip.cos() * (y.cos() * e1[i] + y.sin() * e2[i]) + dip.sin() * g[i]));
    let flip = |v: [f64; 3]| [v[0] as f32, -v[1] as f32, -v[2] as f32];
    (flip(g), flip(h))
}

impl DomModel {
    /// `index` numbers the modules in detector order: it keys the DOM's
    /// own random stream.
    pub fn new(module: &Module, seed: u64, index: u64, burst_chance: f64) -> DomModel {
        let mut rng = Rng::new(seed, crate::STREAM_DOMS + index);
        let n_pmts = module.n_pmts().min(N_CH);
        let mut base = [0f32; N_CH];
        let mut pmt_dirs = [[0f32; 3]; N_CH];
        // A DOM-wide factor (water, PMT batch) times a per-PMT spread:
        // about 6.5 kHz per PMT, 200 kHz per DOM, the K40 plateau.
        let dom_factor = rng.uniform(0.9, 1.1);
        for (ch, mean) in base.iter_mut().enumerate().take(n_pmts) {
            let r = rng.f64();
            let hz = if r < 0.004 {
                0.0 // a dead PMT (HV off)
            } else if r < 0.015 {
                rng.uniform(13_000.0, 22_000.0) // a noisy one
            } else {
                6_500.0 * dom_factor * (0.12 * rng.normal()).exp()
            };
            *mean = (hz * 0.1) as f32;
            if let Some(pmt) = module.pmt(ch) {
                pmt_dirs[ch] = pmt.dir.map(|c| c as f32);
            }
        }
        let base_sqrt = base.map(f32::sqrt);
        let period_slices = rng.uniform(3_000.0, 12_000.0);
        let (yaw, pitch, roll) = (
            rng.uniform(0.0, 360.0) as f32,
            rng.uniform(-2.0, 2.0) as f32,
            rng.uniform(-2.0, 2.0) as f32,
        );
        let (gravity, field) = ahrs_readings(yaw, pitch, roll);
        DomModel {
            dom_id: module.dom_id,
            du: module.du,
            floor: module.floor,
            is_base: module.is_base(),
            n_pmts,
            normals: Normals::new(),
            base,
            base_sqrt,
            pmt_dirs,
            drift_omega: (std::f64::consts::TAU / period_slices) as f32,
            drift_phase: rng.uniform(0.0, std::f64::consts::TAU) as f32,
            burst_chance,
            burst: None,
            yaw,
            pitch,
            roll,
            gravity,
            field,
            gyro_offset: [0, 1, 2].map(|_| rng.uniform(-3.0, 3.0) as f32),
            temperature: rng.uniform(27.0, 36.0) as f32,
            humidity: rng.uniform(8.0, 25.0) as f32,
            udp_sequence: 0,
            state: SliceState {
                counts: [0; N_CH],
                codes: [0; N_CH],
                hrv: 0,
                fifo_almost_full: 0,
                udp_packets: 1,
                rate_hz: 0.0,
            },
            rng,
            monit: Vec::new(),
            sn: Vec::new(),
            synced: true,
            yaw_drift: 0.0,
        }
    }

    /// Everything one timeslice needs from this DOM, into `monit`, `sn`
    /// and `state`; independent of every other DOM, so DOMs can advance
    /// on several threads.
    pub fn advance(&mut self, slice: u64, run: u32, header: &DaqHeader, synced: bool) {
        self.step(slice);
        self.synced = synced;
        let packet = self.tmch(run, header.utc_seconds, header.utc_16ns_ticks, synced);
        self.monit.clear();
        packet.encode_into(&mut self.monit);
        let mut sn = std::mem::take(&mut self.sn);
        self.sn_hits(&mut sn);
        self.sn = sn;
    }

    /// A new run restarts the CLB's packet numbering.
    pub fn new_run(&mut self) {
        self.udp_sequence = 0;
    }

    /// Advance to timeslice `slice` (counted from the simulation start).
    pub fn step(&mut self, slice: u64) {
        if self.is_base {
            return;
        }
        self.update_burst(slice);
        let drift = 1.0 + 0.03 * (self.drift_omega * slice as f32 + self.drift_phase).sin();
        let drift_sqrt = drift.sqrt();
        let state = &mut self.state;
        let mut hits_sent = 0u32;
        let mut total = 0u64;
        state.hrv = 0;
        state.fifo_almost_full = 0;
        let profile = self.burst.as_ref().map(|b| (b.profile(slice), &b.peak));
        let codes = rate_codes();
        for ch in 0..self.n_pmts {
            let z = self.normals.next(&mut self.rng);
            let count = match profile {
                Some((p, peak)) if peak[ch] > 0.0 => {
                    let mean = self.base[ch] * drift + peak[ch] * p;
                    mean + mean.sqrt() * z
                }
                _ => self.base[ch] * drift + self.base_sqrt[ch] * drift_sqrt * z,
            };
            // (Not `round()`: that is a libm call, and this is the hot loop.)
            let count = (count.max(0.0) + 0.5) as u32;
            state.counts[ch] = count;
            state.codes[ch] = codes.get(count as usize).copied().unwrap_or(255);
            total += u64::from(count);
            if count > HRV_COUNT {
                state.hrv |= 1 << ch;
                // A vetoed channel sends nothing for the rest of the frame.
                hits_sent += HRV_COUNT;
            } else {
                hits_sent += count;
            }
            if count > FIFO_COUNT {
                state.fifo_almost_full |= 1 << ch;
            }
        }
        state.rate_hz = total as f64 * 10.0;
        state.udp_packets = (hits_sent * 6).div_ceil(UDP_PAYLOAD) + 1;
    }

    fn update_burst(&mut self, slice: u64) {
        if self.burst.as_ref().is_some_and(|b| slice >= b.end) {
            self.burst = None;
        }
        if self.burst.is_some() || !self.rng.chance(self.burst_chance) {
            return;
        }
        let rng = &mut self.rng;
        let light = rng.direction();
        // Peak rate log-uniform in 150 kHz … 3 MHz on the PMTs facing the
        // light; the others see a fraction.
        let peak_hz = 150e3 * 20f64.powf(rng.f64());
        let mut peak = [0f32; N_CH];
        let channels = peak
            .iter_mut()
            .zip(&self.pmt_dirs)
            .zip(&self.base)
            .take(self.n_pmts);
        for ((peak, d), &base) in channels {
            let cos = f64::from(d[0]) * light[0]
                + f64::from(d[1]) * light[1]
                + f64::from(d[2]) * light[2];
            let weight = 0.03 + cos.max(0.0).powf(1.5);
            // A dead PMT stays dead.
            if base > 0.0 {
                *peak = (peak_hz * weight * 0.1) as f32;
            }
        }
        let rise = rng.uniform(1.0, 8.0) as f32;
        let decay = rng.uniform(3.0, 25.0) as f32;
        self.burst = Some(Burst {
            start: slice,
            rise,
            decay,
            end: slice + (rise + 5.0 * decay) as u64 + 1,
            peak,
        });
    }

    /// The DOM's summary frame; `time_sync` is status bit 31.
    pub fn summary_frame(&self, time_sync: bool) -> SummaryFrame {
        SummaryFrame {
            dom_id: self.dom_id,
            status: self.frame_status(time_sync),
            rates: self.state.codes,
        }
    }

    pub fn frame_status(&self, time_sync: bool) -> FrameStatus {
        let n = self.state.udp_packets;
        FrameStatus {
            daq: n | ((n - 1) << 16),
            status: self.state.hrv | if time_sync { FLAG } else { 0 },
            fifo: self.state.fifo_almost_full | FLAG,
            status_3: 0,
            status_4: 0,
        }
    }

    /// The SN-stream hits of this timeslice: a couple of coincidences,
    /// more during a burst, none on vetoed channels.
    pub fn sn_hits(&mut self, out: &mut Vec<Hit>) {
        out.clear();
        if self.n_pmts == 0 {
            return;
        }
        let excess = (self.state.rate_hz / 200e3).max(1.0);
        let n = self
            .rng
            .poisson(SN_HITS_PER_SLICE * excess.sqrt().min(10.0));
        for _ in 0..n {
            let channel = self.rng.below(self.n_pmts as u64) as u8;
            if self.state.hrv & (1 << channel) != 0 {
                continue;
            }
            out.push(Hit {
                channel_id: channel,
                time: self.rng.below(100_000_000) as u32,
                tot: (22.0 + 5.0 * self.normals.next(&mut self.rng)).clamp(4.0, 60.0) as u8,
            });
        }
    }

    /// The CLB monitoring packet (structure version 2) of this timeslice.
    pub fn tmch(&mut self, run: u32, utc_seconds: u32, ticks: u32, time_sync: bool) -> TmchPacket {
        let mut z = || self.normals.next(&mut self.rng);
        let yaw = (self.yaw + 0.3 * z()).rem_euclid(360.0);
        let pitch = self.pitch + 0.05 * z();
        let roll = self.roll + 0.05 * z();
        // The sensor vectors wobble around their values for the DOM's
        // mean orientation (computed once: trigonometry per packet would
        // cost more than the rest of the packet).
        let field = if self.yaw_drift == 0.0 {
            self.field
        } else {
            ahrs_readings(self.yaw + self.yaw_drift, self.pitch, self.roll).1
        };
        let yaw = (yaw + self.yaw_drift).rem_euclid(360.0);
        let a = [0, 1, 2].map(|i| self.gravity[i] + 0.002 * z());
        let h = [0, 1, 2].map(|i| field[i] + 0.003 * z());
        let g = [0, 1, 2].map(|i| self.gyro_offset[i] + 0.05 * z());
        let temperature = self.temperature + 0.02 * z();
        let humidity = self.humidity + 0.02 * z();
        let sequence = self.udp_sequence;
        self.udp_sequence = self.udp_sequence.wrapping_add(1);
        let mut counts = [0u32; N_CH];
        counts[..self.n_pmts].copy_from_slice(&self.state.counts[..self.n_pmts]);
        TmchPacket {
            run,
            udp_sequence_number: sequence,
            utc_seconds,
            utc_16ns_ticks: ticks,
            dom_id: self.dom_id,
            dom_status: [if time_sync { FLAG } else { 0 }, 0, 0, 0],
            counts,
            hrvbmp: if self.is_base { 0 } else { self.state.hrv },
            // Bits 1–3 = code 1 = structure version 2; bit 0 = AHRS valid
            // (base modules carry no AHRS).
            flags: (1 << 1) | u32::from(!self.is_base),
            yaw: if self.is_base { 0.0 } else { yaw },
            pitch: if self.is_base { 0.0 } else { pitch },
            roll: if self.is_base { 0.0 } else { roll },
            a: if self.is_base { [0.0; 3] } else { a },
            g: if self.is_base { [0.0; 3] } else { g },
            h: if self.is_base { [0.0; 3] } else { h },
            temperature_raw: (temperature * 100.0).round().clamp(0.0, 65_535.0) as u16,
            humidity_raw: (humidity * 100.0).round().clamp(0.0, 65_535.0) as u16,
            tdcfull: self.state.fifo_almost_full.count_ones(),
            aesfull: 0,
            flushc: 0,
            // 100 000: the sample's value for a 100 ms timeslice (µs).
            ts_duration: Some(100_000),
            tdc_supertime_fifo_size: None,
            aes_supertime_fifo_size: None,
            trailing: TrailingBytes::new(&[]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daq::detector::Detector;
    use daq::summary::rate_hz;

    #[test]
    fn rate_code_inverts_rate_hz() {
        assert_eq!(rate_code(0), 0);
        assert_eq!(rate_code(199), 0);
        for code in 1..=255u8 {
            let count = (rate_hz(code) / 10.0).round() as u32;
            let back = rate_code(count);
            assert!(back.abs_diff(code) <= 1, "{code} -> {count} -> {back}");
        }
        assert_eq!(rate_code(5_000_000), 255);
    }

    #[test]
    fn quiet_dom_is_k40_like_and_consistent() {
        let detector = Detector::generate(1, 1, 2, 31);
        let module = detector.optical_modules().next().unwrap();
        let mut dom = DomModel::new(module, 42, 0, 0.0);
        let mut sum = 0.0;
        for slice in 0..50 {
            dom.step(slice);
            sum += dom.state.rate_hz;
            let frame = dom.summary_frame(true);
            assert!(frame.status.udp_complete() && frame.status.time_sync_valid());
            assert_eq!(frame.status.hrv_mask(), 0);
            for ch in 0..N_CH {
                let count = dom.state.counts[ch];
                let decoded = rate_hz(frame.rates[ch]);
                if count >= 205 {
                    assert!(
                        (decoded - count as f64 * 10.0).abs() <= 0.014 * decoded,
                        "{count} {decoded}"
                    );
                }
            }
        }
        let mean_khz = sum / 50.0 / 1000.0;
        assert!((150.0..260.0).contains(&mean_khz), "{mean_khz}");
    }

    #[test]
    fn bursts_set_hrv_and_fifo() {
        let detector = Detector::generate(1, 1, 2, 31);
        let module = detector.optical_modules().next().unwrap();
        let mut dom = DomModel::new(module, 1, 0, 1.0);
        let (mut hrv, mut fifo) = (false, false);
        for slice in 0..200 {
            dom.step(slice);
            let packet = dom.tmch(1, 0, 0, true);
            assert_eq!(packet.hrvbmp, dom.state.hrv);
            assert_eq!(packet.structure_version(), Some(2));
            hrv |= dom.state.hrv != 0;
            fifo |= dom.state.fifo_almost_full != 0;
        }
        assert!(hrv && fifo);
    }
}
