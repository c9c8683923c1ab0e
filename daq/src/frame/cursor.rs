//! Bounds-checked reading of byte slices.
//!
//! All decoders go through [`Cursor`], so that a short or lying input turns
//! into a [`DecodeError`] with the offset of the offending field instead of a
//! panic; nothing in the crate indexes a frame directly.

use crate::DecodeError;

/// A read position inside one frame. Offsets in errors are positions in
/// `bytes`, which is always the whole frame (or packet).
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    /// A cursor at `pos`; a position past the end simply has nothing left.
    pub(crate) fn at(bytes: &'a [u8], pos: usize) -> Cursor<'a> {
        Cursor { bytes, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.bytes.get(self.pos..end)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            }),
        }
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn i16_le(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        self.array(what).map(i16::from_le_bytes)
    }

    pub(crate) fn i32_le(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        self.array(what).map(i32::from_le_bytes)
    }

    pub(crate) fn u32_le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(crate) fn u64_le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.array(what).map(u64::from_le_bytes)
    }

    pub(crate) fn u16_be(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.array(what).map(u16::from_be_bytes)
    }

    pub(crate) fn u32_be(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_be_bytes)
    }

    /// An i32 LE record count followed by `count` records of `item_size`
    /// bytes: checks sign and that the records fit in what is left, so the
    /// count can size an allocation safely. Returns the count and the
    /// records' bytes (exactly `count × item_size`).
    pub(crate) fn records(
        &mut self,
        what: &'static str,
        item_size: usize,
    ) -> Result<(usize, &'a [u8]), DecodeError> {
        let offset = self.pos;
        let count = self.i32_le(what)?;
        let count = usize::try_from(count).map_err(|_| DecodeError::NegativeCount {
            what,
            offset,
            count,
        })?;
        let available = self.remaining();
        match count.checked_mul(item_size) {
            Some(bytes) if bytes <= available => Ok((count, self.take(bytes, what)?)),
            _ => Err(DecodeError::TooManyItems {
                what,
                offset,
                count: count as u64,
                item_size,
                available,
            }),
        }
    }
}

/// A record of `N` bytes as an array, so that the reads at constant
/// offsets that follow need no bounds checks. `record` comes from
/// `chunks_exact(N)`; a wrong length (impossible) gives zeros.
#[inline]
pub(crate) fn fixed<const N: usize>(record: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    if record.len() == N {
        out.copy_from_slice(record);
    }
    out
}

/// Field at a fixed offset of a record whose size has been
/// checked already (`chunks_exact`); `N` makes the read total.
#[inline]
pub(crate) fn field<const N: usize>(record: &[u8], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = record.get(offset..offset + N) {
        out.copy_from_slice(src);
    }
    out
}
