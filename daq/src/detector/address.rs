//! Physical layout of the standard KM3NeT DOM (spec `detector-files.md` §5).
//!
//! These tables describe the 31-PMT KM3NeT DOM only: six rings, A at the
//! bottom with one PMT, B–F with six each. A monitor must use them only for
//! a module that actually has [`STANDARD_DOM_N_PMTS`] PMTs (see
//! [`Module::has_standard_layout`](super::Module::has_standard_layout)) and
//! fall back to plain channel order otherwise; the detector itself never
//! assumes this layout.

use std::fmt;

/// Number of PMTs of the standard KM3NeT DOM these tables describe.
pub const STANDARD_DOM_N_PMTS: usize = 31;

/// PMT ring of a KM3NeT DOM, bottom (A) to top (F); E and F form the upper
/// hemisphere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ring {
    A,
    B,
    C,
    D,
    E,
    F,
}

impl Ring {
    pub const ALL: [Ring; 6] = [Ring::A, Ring::B, Ring::C, Ring::D, Ring::E, Ring::F];

    /// Typical z component of the PMT axes of this ring (the same in every
    /// real DETX sample).
    pub fn axis_z(self) -> f64 {
        match self {
            Ring::A => -1.0,
            Ring::B => -0.85,
            Ring::C => -0.555,
            Ring::D => -0.295,
            Ring::E => 0.295,
            Ring::F => 0.555,
        }
    }

    /// PMTs on the ring: 1 for A, 6 for the others.
    pub fn n_positions(self) -> u8 {
        if self == Ring::A {
            1
        } else {
            6
        }
    }

    pub fn letter(self) -> char {
        match self {
            Ring::A => 'A',
            Ring::B => 'B',
            Ring::C => 'C',
            Ring::D => 'D',
            Ring::E => 'E',
            Ring::F => 'F',
        }
    }
}

/// Physical address of a PMT in a standard DOM, e.g. `F4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PmtAddress {
    pub ring: Ring,
    /// 1-based position on the ring.
    pub position: u8,
}

impl PmtAddress {
    /// Vertical rank in the DOM: 0 for A1 (bottom) … 30 for F6 (top).
    pub fn rank(self) -> usize {
        match self.ring {
            Ring::A => 0,
            ring => 1 + 6 * (ring as usize - Ring::B as usize) + (self.position as usize - 1),
        }
    }
}

impl fmt::Display for PmtAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.ring.letter(), self.position)
    }
}

const fn addr(ring: Ring, position: u8) -> PmtAddress {
    PmtAddress { ring, position }
}

/// TDC channel → physical address in a standard DOM.
#[rustfmt::skip]
pub const PMT_ADDRESSES: [PmtAddress; STANDARD_DOM_N_PMTS] = {
    use Ring::*;
    [
        addr(F, 4), addr(E, 5), addr(E, 4), addr(E, 3), addr(F, 3), addr(F, 5), addr(E, 2), addr(F, 6),
        addr(F, 2), addr(F, 1), addr(E, 1), addr(E, 6), addr(D, 1), addr(C, 1), addr(B, 1), addr(D, 2),
        addr(D, 6), addr(C, 6), addr(B, 6), addr(B, 2), addr(C, 5), addr(C, 2), addr(A, 1), addr(D, 3),
        addr(B, 4), addr(B, 3), addr(B, 5), addr(D, 5), addr(C, 4), addr(C, 3), addr(D, 4),
    ]
};

/// km3pipe's `ORDERED_PMT_IDS`: TDC channel → vertical rank in a standard
/// DOM (0 = bottom). The PMT-rate waterfall draws channel `c` of floor `f`
/// in row `(f − 1)·31 + ORDERED_PMT_IDS[c]` so that within each floor band
/// the top PMTs are highest. Equal to [`PmtAddress::rank`] of
/// [`PMT_ADDRESSES`].
pub const ORDERED_PMT_IDS: [usize; STANDARD_DOM_N_PMTS] = [
    28, 23, 22, 21, 27, 29, 20, 30, 26, 25, 19, 24, 13, 7, 1, 14, 18, 12, 6, 2, 11, 8, 0, 15, 4, 3,
    5, 17, 10, 9, 16,
];

/// Physical address of a channel of a standard DOM.
pub fn pmt_address(channel: usize) -> Option<PmtAddress> {
    PMT_ADDRESSES.get(channel).copied()
}

/// Vertical rank of a channel of a standard DOM.
pub fn pmt_rank(channel: usize) -> Option<usize> {
    ORDERED_PMT_IDS.get(channel).copied()
}

/// Channel of a physical address in a standard DOM.
pub fn channel_of(address: PmtAddress) -> Option<usize> {
    PMT_ADDRESSES.iter().position(|&a| a == address)
}
