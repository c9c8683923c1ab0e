//! CLB monitoring packets (`IO_MONIT`, `TMCH`, spec §6): what a DOM's
//! central logic board reports every 100 ms — per-channel hit counts, the
//! high-rate-veto bitmap, orientation (AHRS), temperature and humidity.
//! Entirely big-endian, no DAQ preamble.
//!
//! [`TmchView`] checks a packet once and reads fields in place;
//! [`TmchPacket`] is the owned form, built on the view.

use crate::frame::{field, Channels, Cursor, CHANNEL_BITS};
use crate::DecodeError;

/// The 4 ASCII bytes every monitoring packet starts with.
pub const MAGIC: [u8; 4] = *b"TMCH";
/// Channel counters per packet, fixed by the CLB packet format.
pub const N_CHANNELS: usize = 31;
/// Bytes of structure version 1 (up to `flushc`).
pub const V1_LEN: usize = 236;
/// Bytes of structure version 2 (adds the timeslice duration).
pub const V2_LEN: usize = 240;
/// Bytes of structure version 3 (adds the two supertime FIFO sizes).
pub const V3_LEN: usize = 244;

/// One monitoring packet.
///
/// The structure version is not stored separately: it is the code in
/// `flags` (see [`structure_version`](Self::structure_version)). The
/// version-dependent fields are `Some` exactly when that version has them;
/// encoding follows `flags` and writes 0 for a missing field.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TmchPacket {
    pub run: u32,
    pub udp_sequence_number: u32,
    pub utc_seconds: u32,
    /// Sub-second part in 16 ns units.
    pub utc_16ns_ticks: u32,
    pub dom_id: u32,
    pub dom_status: [u32; 4],
    /// Hits per channel in the 100 ms window.
    pub counts: [u32; N_CHANNELS],
    /// High-rate veto, bit n = channel n.
    pub hrvbmp: u32,
    /// Bit 0: AHRS data valid; bits 1–3: structure-version code.
    pub flags: u32,
    pub yaw: f32,
    pub pitch: f32,
    pub roll: f32,
    /// Accelerometer (x, y, z).
    pub a: [f32; 3],
    /// Gyroscope (x, y, z).
    pub g: [f32; 3],
    /// Compass / magnetometer (x, y, z).
    pub h: [f32; 3],
    /// Hundredths of a degree Celsius.
    pub temperature_raw: u16,
    /// Hundredths of a percent relative humidity.
    pub humidity_raw: u16,
    pub tdcfull: u32,
    pub aesfull: u32,
    pub flushc: u32,
    /// Version ≥ 2. Called `ts_duration_ms` by km3pipe, but the sample
    /// value 100000 for a 100 ms timeslice suggests microseconds (§6.3).
    pub ts_duration: Option<u32>,
    /// Version ≥ 3.
    pub tdc_supertime_fifo_size: Option<u16>,
    /// Version ≥ 3.
    pub aes_supertime_fifo_size: Option<u16>,
    /// Bytes after the structure: real packets are longer than their
    /// version says (the samples carry 4 zero bytes), and re-encoding must
    /// reproduce them.
    pub trailing: TrailingBytes,
}

impl TmchPacket {
    /// Decode one packet (one `IO_MONIT` payload). Any bytes after the
    /// structure of its version are kept in `trailing`.
    pub fn decode(bytes: &[u8]) -> Result<TmchPacket, DecodeError> {
        TmchView::new(bytes).map(|view| view.to_packet())
    }

    /// The raw 3-bit structure-version code, `(flags >> 1) & 7`.
    pub fn structure_version_code(&self) -> u8 {
        code_of(self.flags)
    }

    /// Structure version per the table of §6.2 (code 0 → 1, 1 → 2, 3 → 3);
    /// `None` for the unused codes. (km3pipe computes code + 1, which gives
    /// 4 for code 3.)
    pub fn structure_version(&self) -> Option<u8> {
        version_of_code(self.structure_version_code())
    }

    /// Bit 0 of `flags`.
    pub fn ahrs_valid(&self) -> bool {
        self.flags & 1 != 0
    }

    pub fn nanoseconds(&self) -> u64 {
        u64::from(self.utc_16ns_ticks) * 16
    }

    /// Packet time in nanoseconds since the epoch.
    pub fn utc_ns(&self) -> u64 {
        u64::from(self.utc_seconds) * 1_000_000_000 + self.nanoseconds()
    }

    /// Channel rates in Hz: counts per 100 ms × 10.
    pub fn pmt_rates_hz(&self) -> [f64; N_CHANNELS] {
        self.counts.map(|c| f64::from(c) * 10.0)
    }

    pub fn temperature_c(&self) -> f64 {
        f64::from(self.temperature_raw) / 100.0
    }

    pub fn humidity_percent(&self) -> f64 {
        f64::from(self.humidity_raw) / 100.0
    }

    /// Channels in high-rate veto (bits 0–30 of `hrvbmp`).
    pub fn hrv_channels(&self) -> Channels {
        Channels(self.hrvbmp & CHANNEL_BITS)
    }

    pub fn encoded_len(&self) -> usize {
        let structure = match self.structure_version() {
            Some(3) => V3_LEN,
            Some(2) => V2_LEN,
            _ => V1_LEN,
        };
        structure + self.trailing.len()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Append the packet to `out`, laid out by the version in `flags`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        let words = [
            self.run,
            self.udp_sequence_number,
            self.utc_seconds,
            self.utc_16ns_ticks,
            self.dom_id,
        ];
        let words = words.iter().chain(&self.dom_status).chain(&self.counts);
        for w in words.chain([&self.hrvbmp, &self.flags]) {
            out.extend_from_slice(&w.to_be_bytes());
        }
        let floats = [self.yaw, self.pitch, self.roll];
        for f in floats.iter().chain(&self.a).chain(&self.g).chain(&self.h) {
            out.extend_from_slice(&f.to_be_bytes());
        }
        out.extend_from_slice(&self.temperature_raw.to_be_bytes());
        out.extend_from_slice(&self.humidity_raw.to_be_bytes());
        for w in [self.tdcfull, self.aesfull, self.flushc] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        let version = self.structure_version().unwrap_or(1);
        if version >= 2 {
            out.extend_from_slice(&self.ts_duration.unwrap_or(0).to_be_bytes());
        }
        if version >= 3 {
            out.extend_from_slice(&self.tdc_supertime_fifo_size.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&self.aes_supertime_fifo_size.unwrap_or(0).to_be_bytes());
        }
        out.extend_from_slice(self.trailing.as_slice());
    }
}

/// A validated packet, borrowed: marker, length and structure version are
/// checked once, fields are read in place on demand. For consumers that
/// look at a few fields of every packet (counts and HRV bitmap for the PMT
/// rates, the AHRS fields for the compass calibration).
#[derive(Debug, Clone, Copy)]
pub struct TmchView<'a> {
    /// The version-1 structure, as an array so that every field read at a
    /// constant offset needs no bounds check.
    fixed: &'a [u8; V1_LEN],
    version: u8,
    ts_duration: Option<u32>,
    tdc_supertime_fifo_size: Option<u16>,
    aes_supertime_fifo_size: Option<u16>,
    /// Bytes after the structure of `version` (the end of the packet).
    trailing: &'a [u8],
    /// The whole packet.
    bytes: &'a [u8],
}

impl<'a> TmchView<'a> {
    /// Validate one packet (one `IO_MONIT` payload).
    pub fn new(bytes: &'a [u8]) -> Result<TmchView<'a>, DecodeError> {
        let magic: [u8; 4] = Cursor::new(bytes).array("TMCH marker")?;
        if magic != MAGIC {
            return Err(DecodeError::BadMagic {
                offset: 0,
                found: magic,
                expected: MAGIC,
            });
        }
        let Some(fixed) = bytes
            .get(..V1_LEN)
            .and_then(|b| <&[u8; V1_LEN]>::try_from(b).ok())
        else {
            return Err(DecodeError::Truncated {
                what: "TMCH packet",
                offset: 0,
                needed: V1_LEN,
                available: bytes.len(),
            });
        };
        let code = code_of(u32::from_be_bytes(field(fixed, 168)));
        let version = version_of_code(code).ok_or(DecodeError::BadVersion {
            what: "TMCH structure version code",
            offset: 168,
            found: i32::from(code),
            expected: "code 0, 1 or 3",
        })?;
        let mut cur = Cursor::at(bytes, V1_LEN);
        let ts_duration = if version >= 2 {
            Some(cur.u32_be("timeslice duration")?)
        } else {
            None
        };
        let (tdc_supertime_fifo_size, aes_supertime_fifo_size) = if version >= 3 {
            (
                Some(cur.u16_be("TDC supertime FIFO size")?),
                Some(cur.u16_be("AES supertime FIFO size")?),
            )
        } else {
            (None, None)
        };
        let trailing = cur.take(cur.remaining(), "trailing bytes")?;
        Ok(TmchView {
            fixed,
            version,
            ts_duration,
            tdc_supertime_fifo_size,
            aes_supertime_fifo_size,
            trailing,
            bytes,
        })
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes(field(self.fixed, at))
    }

    fn f32_at(&self, at: usize) -> f32 {
        f32::from_be_bytes(field(self.fixed, at))
    }

    /// The whole packet.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Structure version per the table of §6.2 (1, 2 or 3).
    pub fn structure_version(&self) -> u8 {
        self.version
    }

    pub fn run(&self) -> u32 {
        self.u32_at(4)
    }

    pub fn udp_sequence_number(&self) -> u32 {
        self.u32_at(8)
    }

    pub fn utc_seconds(&self) -> u32 {
        self.u32_at(12)
    }

    /// Sub-second part in 16 ns units.
    pub fn utc_16ns_ticks(&self) -> u32 {
        self.u32_at(16)
    }

    /// Packet time in nanoseconds since the epoch.
    pub fn utc_ns(&self) -> u64 {
        u64::from(self.utc_seconds()) * 1_000_000_000 + u64::from(self.utc_16ns_ticks()) * 16
    }

    pub fn dom_id(&self) -> u32 {
        self.u32_at(20)
    }

    pub fn dom_status(&self) -> [u32; 4] {
        std::array::from_fn(|k| self.u32_at(24 + 4 * k))
    }

    /// Hits of one channel in the 100 ms window; `None` past channel 30.
    pub fn count(&self, channel: usize) -> Option<u32> {
        (channel < N_CHANNELS).then(|| self.u32_at(40 + 4 * channel))
    }

    pub fn counts(&self) -> [u32; N_CHANNELS] {
        std::array::from_fn(|k| self.u32_at(40 + 4 * k))
    }

    /// High-rate veto, bit n = channel n.
    pub fn hrvbmp(&self) -> u32 {
        self.u32_at(164)
    }

    pub fn flags(&self) -> u32 {
        self.u32_at(168)
    }

    /// Bit 0 of `flags`.
    pub fn ahrs_valid(&self) -> bool {
        self.flags() & 1 != 0
    }

    pub fn yaw(&self) -> f32 {
        self.f32_at(172)
    }

    pub fn pitch(&self) -> f32 {
        self.f32_at(176)
    }

    pub fn roll(&self) -> f32 {
        self.f32_at(180)
    }

    /// Accelerometer (x, y, z).
    pub fn a(&self) -> [f32; 3] {
        std::array::from_fn(|k| self.f32_at(184 + 4 * k))
    }

    /// Gyroscope (x, y, z).
    pub fn g(&self) -> [f32; 3] {
        std::array::from_fn(|k| self.f32_at(196 + 4 * k))
    }

    /// Compass / magnetometer (x, y, z).
    pub fn h(&self) -> [f32; 3] {
        std::array::from_fn(|k| self.f32_at(208 + 4 * k))
    }

    /// Hundredths of a degree Celsius.
    pub fn temperature_raw(&self) -> u16 {
        u16::from_be_bytes(field(self.fixed, 220))
    }

    /// Hundredths of a percent relative humidity.
    pub fn humidity_raw(&self) -> u16 {
        u16::from_be_bytes(field(self.fixed, 222))
    }

    pub fn tdcfull(&self) -> u32 {
        self.u32_at(224)
    }

    pub fn aesfull(&self) -> u32 {
        self.u32_at(228)
    }

    pub fn flushc(&self) -> u32 {
        self.u32_at(232)
    }

    /// Version ≥ 2.
    pub fn ts_duration(&self) -> Option<u32> {
        self.ts_duration
    }

    /// Version ≥ 3.
    pub fn tdc_supertime_fifo_size(&self) -> Option<u16> {
        self.tdc_supertime_fifo_size
    }

    /// Version ≥ 3.
    pub fn aes_supertime_fifo_size(&self) -> Option<u16> {
        self.aes_supertime_fifo_size
    }

    /// Bytes after the structure of the packet's version.
    pub fn trailing(&self) -> &'a [u8] {
        self.trailing
    }

    /// The owned form.
    pub fn to_packet(&self) -> TmchPacket {
        TmchPacket {
            run: self.run(),
            udp_sequence_number: self.udp_sequence_number(),
            utc_seconds: self.utc_seconds(),
            utc_16ns_ticks: self.utc_16ns_ticks(),
            dom_id: self.dom_id(),
            dom_status: self.dom_status(),
            counts: self.counts(),
            hrvbmp: self.hrvbmp(),
            flags: self.flags(),
            yaw: self.yaw(),
            pitch: self.pitch(),
            roll: self.roll(),
            a: self.a(),
            g: self.g(),
            h: self.h(),
            temperature_raw: self.temperature_raw(),
            humidity_raw: self.humidity_raw(),
            tdcfull: self.tdcfull(),
            aesfull: self.aesfull(),
            flushc: self.flushc(),
            ts_duration: self.ts_duration,
            tdc_supertime_fifo_size: self.tdc_supertime_fifo_size,
            aes_supertime_fifo_size: self.aes_supertime_fifo_size,
            trailing: TrailingBytes::packet_tail(self.bytes, self.trailing),
        }
    }
}

fn code_of(flags: u32) -> u8 {
    ((flags >> 1) & 7) as u8
}

fn version_of_code(code: u8) -> Option<u8> {
    match code {
        0 => Some(1),
        1 => Some(2),
        3 => Some(3),
        _ => None,
    }
}

/// Bytes after a packet's structure. Held inline up to 16 bytes so that
/// decoding a typical packet (4 trailing bytes) allocates nothing.
#[derive(Clone)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(from = "Vec<u8>", into = "Vec<u8>")
)]
pub struct TrailingBytes(Repr);

const INLINE: usize = 16;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Vec<u8>),
}

impl TrailingBytes {
    pub fn new(bytes: &[u8]) -> TrailingBytes {
        if bytes.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..bytes.len()].copy_from_slice(bytes);
            TrailingBytes(Repr::Inline {
                len: bytes.len() as u8,
                buf,
            })
        } else {
            TrailingBytes(Repr::Heap(bytes.to_vec()))
        }
    }

    /// `TrailingBytes::new(tail)` where `tail` is the end of `packet`,
    /// without the variable-length copy: that compiles to a call to memcpy,
    /// which cost a quarter of a whole packet decode. The packet has at
    /// least 236 bytes, so its last 16 can be loaded at once and shifted.
    fn packet_tail(packet: &[u8], tail: &[u8]) -> TrailingBytes {
        let last = packet
            .len()
            .checked_sub(INLINE)
            .and_then(|at| packet.get(at..))
            .and_then(|b| <[u8; INLINE]>::try_from(b).ok());
        match last {
            Some(last) if tail.len() <= INLINE => {
                // Shift the last `len` bytes down to the front, zeros after;
                // a shift by 128 (no trailing bytes) leaves nothing.
                let shift = 8 * (INLINE - tail.len()) as u32;
                let buf = u128::from_le_bytes(last)
                    .checked_shr(shift)
                    .unwrap_or(0)
                    .to_le_bytes();
                TrailingBytes(Repr::Inline {
                    len: tail.len() as u8,
                    buf,
                })
            }
            _ => TrailingBytes::new(tail),
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Heap(v) => v,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

impl Default for TrailingBytes {
    fn default() -> TrailingBytes {
        TrailingBytes::new(&[])
    }
}

impl PartialEq for TrailingBytes {
    fn eq(&self, other: &TrailingBytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for TrailingBytes {}

impl std::fmt::Debug for TrailingBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl std::ops::Deref for TrailingBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<&[u8]> for TrailingBytes {
    fn from(bytes: &[u8]) -> TrailingBytes {
        TrailingBytes::new(bytes)
    }
}

impl From<Vec<u8>> for TrailingBytes {
    fn from(bytes: Vec<u8>) -> TrailingBytes {
        if bytes.len() <= INLINE {
            TrailingBytes::new(&bytes)
        } else {
            TrailingBytes(Repr::Heap(bytes))
        }
    }
}

impl From<TrailingBytes> for Vec<u8> {
    fn from(bytes: TrailingBytes) -> Vec<u8> {
        match bytes.0 {
            Repr::Heap(v) => v,
            inline => TrailingBytes(inline).as_slice().to_vec(),
        }
    }
}
