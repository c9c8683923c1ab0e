//! A bounds-checked big-endian cursor over a byte slice: ROOT serialises
//! every number big-endian, and every read here can fail instead of
//! panicking when a length field lies.

use crate::error::{Result, RootError};

/// Reads from `data`; `base` is the file offset of `data[0]` (or, inside a
/// decompressed object, the offset that object's class references count
/// from), used in error messages.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8], base: u64) -> Cursor<'a> {
        Cursor { data, pos: 0, base }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// File offset (or buffer offset plus base) of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Move to `pos` within the data (used to skip an object by its byte
    /// count); refuses positions past the end.
    pub fn seek(&mut self, pos: usize, what: &'static str) -> Result<()> {
        if pos > self.data.len() {
            return Err(self.truncated(what, pos - self.pos));
        }
        self.pos = pos;
        Ok(())
    }

    fn truncated(&self, what: &'static str, needed: usize) -> RootError {
        RootError::Truncated {
            what,
            offset: self.offset(),
            needed: needed as u64,
            available: self.remaining() as u64,
        }
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.truncated(what, n));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<()> {
        self.bytes(n, what).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let b = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        self.array(what).map(u16::from_be_bytes)
    }

    pub fn i16(&mut self, what: &'static str) -> Result<i16> {
        self.array(what).map(i16::from_be_bytes)
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        self.array(what).map(u32::from_be_bytes)
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32> {
        self.array(what).map(i32::from_be_bytes)
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64> {
        self.array(what).map(i64::from_be_bytes)
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        self.array(what).map(u64::from_be_bytes)
    }

    /// A file position or size stored as i32 or i64, refused if negative.
    pub fn seek_field(&mut self, wide: bool, what: &'static str) -> Result<u64> {
        let at = self.offset();
        let v = if wide {
            self.i64(what)?
        } else {
            i64::from(self.i32(what)?)
        };
        u64::try_from(v).map_err(|_| RootError::corrupt(what, at, format!("negative value {v}")))
    }

    /// A non-negative i32 count or length.
    pub fn count(&mut self, what: &'static str) -> Result<usize> {
        let at = self.offset();
        let v = self.i32(what)?;
        usize::try_from(v).map_err(|_| RootError::corrupt(what, at, format!("negative value {v}")))
    }

    /// A `TString`: one length byte, or 255 and an i32 length, then the
    /// characters (not necessarily UTF-8: replaced lossily).
    pub fn tstring(&mut self, what: &'static str) -> Result<String> {
        let short = self.u8(what)?;
        let n = if short == 255 {
            self.count(what)?
        } else {
            usize::from(short)
        };
        Ok(String::from_utf8_lossy(self.bytes(n, what)?).into_owned())
    }

    /// A NUL-terminated C string (class names after a new-class tag).
    pub fn cstring(&mut self, what: &'static str) -> Result<String> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return Err(self.truncated(what, rest.len() + 1));
        };
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_refuses_overruns() {
        let data = [0, 0, 1, 2, 3, b'a', b'b', b'c', 0xff];
        let mut c = Cursor::new(&data, 100);
        assert_eq!(c.u32("x").unwrap(), 0x102);
        assert_eq!(c.tstring("s").unwrap(), "abc");
        let e = c.u16("y").unwrap_err();
        assert!(matches!(e, RootError::Truncated { offset: 108, .. }), "{e}");
        assert!(c.seek(20, "z").is_err());
    }

    #[test]
    fn long_tstring_length_is_checked() {
        let data = [255, 0x7f, 0, 0, 0, b'x'];
        assert!(Cursor::new(&data, 0).tstring("s").is_err());
        let neg = [255, 0xff, 0xff, 0xff, 0xff];
        assert!(Cursor::new(&neg, 0).tstring("s").is_err());
    }
}
