//! The five DOM status words shared by summary frames and timeslice
//! super-frames (spec §4.2), and the per-channel bitmaps inside them.

/// Mask of the channel bits (0–30) in the `status` and `fifo` words; bit 31
/// of each word carries a DOM-level flag instead.
pub const CHANNEL_BITS: u32 = 0x7FFF_FFFF;
const FLAG_BIT: u32 = 0x8000_0000;

/// Jpp's `JDAQFrameStatus`: raw words, with the derived conditions the
/// monitors need as methods so that the bit conventions live in one place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FrameStatus {
    /// UDP packet accounting: received packets (low 16 bits) and highest
    /// sequence number (high 16 bits).
    pub daq: u32,
    /// High-rate veto per channel (bits 0–30) and White Rabbit / time
    /// sync OK (bit 31).
    pub status: u32,
    /// FIFO almost full per channel (bits 0–30) and UDP trailer seen (bit 31).
    pub fifo: u32,
    /// Reserved.
    pub status_3: u32,
    /// Reserved.
    pub status_4: u32,
}

impl FrameStatus {
    pub fn udp_received_packets(&self) -> u16 {
        (self.daq & 0xFFFF) as u16
    }

    pub fn udp_max_sequence_number(&self) -> u16 {
        (self.daq >> 16) as u16
    }

    /// The packet train ended with its trailer packet.
    pub fn udp_trailer(&self) -> bool {
        self.fifo & FLAG_BIT != 0
    }

    /// All UDP packets of this DOM and timeslice arrived: as many packets as
    /// sequence numbers 0…max, and the trailer. (In u32 so that a maximum
    /// sequence number of 0xFFFF cannot wrap.)
    pub fn udp_complete(&self) -> bool {
        u32::from(self.udp_received_packets()) == u32::from(self.udp_max_sequence_number()) + 1
            && self.udp_trailer()
    }

    /// Bit 31 of `status`: White Rabbit synchronised. Same bit as
    /// [`time_sync_valid`](Self::time_sync_valid); both names are in use.
    pub fn wr_status(&self) -> bool {
        self.status & FLAG_BIT != 0
    }

    /// The bit km3mon's time-sync monitor checks (spec §5.4): 1 = valid.
    pub fn time_sync_valid(&self) -> bool {
        self.wr_status()
    }

    /// Channels in high-rate veto as a bitmask (bit n = channel n).
    pub fn hrv_mask(&self) -> u32 {
        self.status & CHANNEL_BITS
    }

    pub fn hrv_channels(&self) -> Channels {
        Channels(self.hrv_mask())
    }

    pub fn any_hrv(&self) -> bool {
        self.hrv_mask() != 0
    }

    /// Channels whose FIFO was almost full, as a bitmask.
    pub fn fifo_almost_full_mask(&self) -> u32 {
        self.fifo & CHANNEL_BITS
    }

    pub fn fifo_almost_full_channels(&self) -> Channels {
        Channels(self.fifo_almost_full_mask())
    }

    pub fn any_fifo_almost_full(&self) -> bool {
        self.fifo_almost_full_mask() != 0
    }

    /// Channels whose data is incomplete for this timeslice (HRV or FIFO
    /// almost full); the remaining channels give a usable rate.
    pub fn flagged_mask(&self) -> u32 {
        self.hrv_mask() | self.fifo_almost_full_mask()
    }
}

/// The set bits of a channel bitmask, lowest channel first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Channels(pub u32);

impl Iterator for Channels {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        if self.0 == 0 {
            return None;
        }
        let channel = self.0.trailing_zeros() as u8;
        self.0 &= self.0 - 1;
        Some(channel)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Channels {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_status_words() {
        // IO_SUM.dat slice 1, DOM 806465101 (spec §4.2).
        let s = FrameStatus {
            status: 0xD5EC_E058,
            fifo: 0xA200_0000,
            ..FrameStatus::default()
        };
        assert!(s.wr_status());
        assert_eq!(s.hrv_channels().len(), 15);
        assert_eq!(
            s.fifo_almost_full_channels().collect::<Vec<_>>(),
            vec![25, 29]
        );
        assert!(s.udp_trailer());
    }

    #[test]
    fn udp_complete_does_not_wrap() {
        let s = FrameStatus {
            daq: 0xFFFF_0000,
            fifo: FLAG_BIT,
            ..FrameStatus::default()
        };
        assert!(!s.udp_complete());
        let s = FrameStatus {
            daq: (28 << 16) | 29,
            fifo: FLAG_BIT,
            ..FrameStatus::default()
        };
        assert!(s.udp_complete());
    }
}
