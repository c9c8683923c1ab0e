//! A hash map for DOM and PMT ids: the ids are not chosen by an
//! adversary, and the default SipHash cost more than the rest of a lookup
//! that runs for every packet of the monitoring stream.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `HashMap` keyed by 32-bit ids with a multiplicative hash.
pub type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of one integer (other input is folded in bytewise).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::IdMap;

    #[test]
    fn behaves_as_a_map() {
        let mut m: IdMap<usize> = IdMap::default();
        for (i, id) in [808_447_186u32, 808_447_187, 1, 0, u32::MAX]
            .iter()
            .enumerate()
        {
            m.insert(*id, i);
        }
        assert_eq!(m.len(), 5);
        assert_eq!(m.get(&808_447_187), Some(&1));
        assert_eq!(m.get(&u32::MAX), Some(&4));
        assert_eq!(m.get(&2), None);
    }
}
