//! CLB monitoring packets (`IO_MONIT`, `TMCH`, spec §6): what a DOM's
//! central logic board reports every 100 ms — per-channel hit counts, the
//! high-rate-veto bitmap, orientation (AHRS), temperature and humidity.
//! Entirely big-endian, no DAQ preamble.

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
        let magic: [u8; 4] = Cursor::new(bytes).array("TMCH marker")?;
        if magic != MAGIC {
            return Err(DecodeError::BadMagic {
                offset: 0,
                found: magic,
                expected: MAGIC,
            });
        }
        // Everything up to version 1's end is fixed-size: check the length
        // once, then read at constant offsets (no per-field checks left in
        // the hot path).
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
        let u32_at = |at: usize| u32::from_be_bytes(field(fixed, at));
        let u16_at = |at: usize| u16::from_be_bytes(field(fixed, at));
        let f32_at = |at: usize| f32::from_be_bytes(field(fixed, at));
        let flags = u32_at(168);
        let version = version_of_code(code_of(flags)).ok_or(DecodeError::BadVersion {
            what: "TMCH structure version code",
            offset: 168,
            found: i32::from(code_of(flags)),
            expected: "code 0, 1 or 3",
        })?;
        let (run, udp_sequence_number, utc_seconds) = (u32_at(4), u32_at(8), u32_at(12));
        let (utc_16ns_ticks, dom_id) = (u32_at(16), u32_at(20));
        let dom_status = std::array::from_fn(|k| u32_at(24 + 4 * k));
        let counts = std::array::from_fn(|k| u32_at(40 + 4 * k));
        let hrvbmp = u32_at(164);
        let (yaw, pitch, roll) = (f32_at(172), f32_at(176), f32_at(180));
        let a = std::array::from_fn(|k| f32_at(184 + 4 * k));
        let g = std::array::from_fn(|k| f32_at(196 + 4 * k));
        let h = std::array::from_fn(|k| f32_at(208 + 4 * k));
        let (temperature_raw, humidity_raw) = (u16_at(220), u16_at(222));
        let (tdcfull, aesfull, flushc) = (u32_at(224), u32_at(228), u32_at(232));
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
        let trailing = TrailingBytes::new(cur.take(cur.remaining(), "trailing bytes")?);
        Ok(TmchPacket {
            run,
            udp_sequence_number,
            utc_seconds,
            utc_16ns_ticks,
            dom_id,
            dom_status,
            counts,
            hrvbmp,
            flags,
            yaw,
            pitch,
            roll,
            a,
            g,
            h,
            temperature_raw,
            humidity_raw,
            tdcfull,
            aesfull,
            flushc,
            ts_duration,
            tdc_supertime_fifo_size,
            aes_supertime_fifo_size,
            trailing,
        })
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
