//! Baskets: a branch's entries in chunks, each its own key. A basket is
//! read and decompressed whole, then its entries are cut out either by the
//! entry-offset table that follows the data or, for fixed-size entries, by
//! the basket's entry size. [`BranchReader`] keeps at most two baskets per
//! branch, so memory stays bounded however large the file.

use std::sync::Arc;

use crate::buf::Cursor;
use crate::compress::decompress;
use crate::error::{Result, RootError};
use crate::file::{Key, RootFile, MAX_OBJECT};
use crate::tree::{BasketInfo, Branch};

/// One decompressed basket.
#[derive(Debug)]
pub struct Basket {
    pub first_entry: u64,
    /// File offset of the basket's key.
    pub seek: u64,
    data: Vec<u8>,
    /// Start of each entry in `data`, plus the end of the last.
    bounds: Vec<usize>,
}

impl Basket {
    pub fn n_entries(&self) -> u64 {
        (self.bounds.len() - 1) as u64
    }

    /// Entry `k` of this basket (counted from its first entry).
    pub fn entry(&self, k: usize) -> Option<&[u8]> {
        let (&a, &b) = (self.bounds.get(k)?, self.bounds.get(k + 1)?);
        self.data.get(a..b)
    }

    /// Read and decompress the basket `info` of `branch`.
    pub fn read(file: &RootFile, branch: &Branch, info: &BasketInfo) -> Result<Basket> {
        if info.bytes as usize > MAX_OBJECT {
            return Err(RootError::corrupt(
                "basket size",
                info.seek,
                info.bytes.to_string(),
            ));
        }
        let raw = file.read_at(info.seek, info.bytes, "basket")?;
        let mut c = Cursor::new(&raw, info.seek);
        let key = Key::read(&mut c)?;
        let bad = |what: &'static str, detail: String| RootError::corrupt(what, info.seek, detail);
        if key.class_name != "TBasket" || key.nbytes > info.bytes {
            return Err(bad(
                "basket key",
                format!("{} of {} bytes", key.class_name, key.nbytes),
            ));
        }
        // TBasket's own header, inside the key header.
        c.skip(2, "basket version")?;
        c.skip(4, "basket buffer size")?;
        let entry_size = c.count("basket entry size")?;
        let n = c.count("basket entry count")?;
        let last = c.count("basket data end")? as u64;
        let keylen = key.keylen;
        let stored = &raw[keylen as usize..key.nbytes as usize];
        if key.objlen as usize > MAX_OBJECT {
            return Err(bad("basket object length", key.objlen.to_string()));
        }
        let data = if key.objlen == stored.len() as u64 {
            stored.to_vec()
        } else {
            decompress(stored, key.objlen as usize, info.seek + keylen)?
        };
        let expected = info.end_entry - info.first_entry;
        if n as u64 != expected {
            return Err(bad(
                "basket entry count",
                format!("{n} entries, the branch says {expected}"),
            ));
        }
        let data_end = last
            .checked_sub(keylen)
            .filter(|&e| e <= data.len() as u64)
            .ok_or_else(|| bad("basket data end", format!("{last} (key of {keylen} bytes)")))?
            as usize;
        let bounds = if branch.entry_offset_len > 0 {
            offsets(&data, data_end, n, keylen).map_err(|e| e.shifted(info.seek + keylen))?
        } else {
            if entry_size.checked_mul(n) != Some(data_end) {
                return Err(bad(
                    "basket entry size",
                    format!("{n} entries of {entry_size} bytes in {data_end}"),
                ));
            }
            (0..=n).map(|k| k * entry_size).collect()
        };
        Ok(Basket {
            first_entry: info.first_entry,
            seek: info.seek,
            data,
            bounds,
        })
    }
}

/// The entry-offset table after the data: a count, then each entry's start
/// counted from the key's start. Offsets must rise and stay in the data.
fn offsets(data: &[u8], data_end: usize, n: usize, keylen: u64) -> Result<Vec<usize>> {
    let mut c = Cursor::new(&data[data_end..], data_end as u64);
    let count = c.count("entry offset count")?;
    if count < n || count > c.remaining() / 4 {
        return Err(RootError::corrupt(
            "entry offset count",
            data_end as u64,
            format!("{count} offsets for {n} entries"),
        ));
    }
    let mut bounds = Vec::with_capacity(n + 1);
    for _ in 0..n {
        let at = c.offset();
        let raw = u64::from(c.u32("entry offset")?);
        let pos = raw
            .checked_sub(keylen)
            .filter(|&p| p <= data_end as u64 && bounds.last().is_none_or(|&l| p >= l as u64))
            .ok_or_else(|| RootError::corrupt("entry offset", at, raw.to_string()))?;
        bounds.push(pos as usize);
    }
    bounds.push(data_end);
    Ok(bounds)
}

/// Reads a branch entry by entry, in any order, holding at most two
/// baskets (a time-ordered pass moves back and forth across a basket
/// boundary now and then).
#[derive(Debug)]
pub struct BranchReader {
    file: Arc<RootFile>,
    branch: Branch,
    cache: Vec<Basket>,
}

impl BranchReader {
    pub fn new(file: Arc<RootFile>, branch: &Branch) -> BranchReader {
        let mut branch = branch.clone();
        // Sub-branches have readers of their own.
        branch.branches.clear();
        BranchReader {
            file,
            branch,
            cache: Vec::with_capacity(2),
        }
    }

    pub fn branch(&self) -> &Branch {
        &self.branch
    }

    pub fn entries(&self) -> u64 {
        self.branch.readable_entries()
    }

    /// Entry `i` of the branch, and the file offset of its basket.
    pub fn entry(&mut self, i: u64) -> Result<(&[u8], u64)> {
        let slot = match self
            .cache
            .iter()
            .position(|b| (b.first_entry..b.first_entry + b.n_entries()).contains(&i))
        {
            Some(slot) => slot,
            None => {
                let k = self.branch.baskets.partition_point(|b| b.end_entry <= i);
                let info = *self
                    .branch
                    .baskets
                    .get(k)
                    .filter(|b| b.first_entry <= i)
                    .ok_or_else(|| {
                        RootError::Missing(format!("entry {i} of branch {}", self.branch.name))
                    })?;
                let basket = Basket::read(&self.file, &self.branch, &info)?;
                if self.cache.len() == 2 {
                    self.cache.remove(0);
                }
                self.cache.push(basket);
                self.cache.len() - 1
            }
        };
        let basket = &self.cache[slot];
        let k = (i - basket.first_entry) as usize;
        let bytes = basket.entry(k).ok_or_else(|| {
            RootError::Missing(format!("entry {i} of branch {}", self.branch.name))
        })?;
        Ok((bytes, basket.seek))
    }
}
