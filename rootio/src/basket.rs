//! Baskets: a branch's entries in chunks, each its own key. A basket is
//! read and decompressed whole, then its entries are cut out either by the
//! entry-offset table that follows the data or, for fixed-size entries, by
//! the basket's entry size. [`BranchReader`] keeps at most two baskets per
//! branch and, for branches with large baskets, decompresses the next ones
//! on helper threads while the current one is used: memory stays bounded
//! (two baskets plus those in flight) however large the file.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::buf::Cursor;
use crate::compress::decompress;
use crate::error::{Result, RootError};
use crate::file::{Key, RootFile, MAX_OBJECT};
use crate::tree::{BasketInfo, Branch};

/// Bytes of the TBasket fields at the end of a basket's key header:
/// version, buffer size, entry size, entry count, data end, flag.
pub(crate) const FIELDS_LEN: usize = 2 + 4 * 4 + 1;

/// Baskets at least this large (on disk) are worth a helper thread.
const PREFETCH_MIN_BYTES: u64 = 256 << 10;

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
        Basket::read_with(file, branch.entry_offset_len > 0, info)
    }

    /// Build a basket from its decompressed object: `bounds` are the start
    /// of each entry in `data` plus the end of the last.
    pub(crate) fn from_parts(
        first_entry: u64,
        seek: u64,
        data: Vec<u8>,
        bounds: Vec<usize>,
    ) -> Basket {
        Basket {
            first_entry,
            seek,
            data,
            bounds,
        }
    }

    /// Read and decompress basket `info`; `offsets`: entries are found by
    /// the offset table (else they have the basket's fixed size).
    fn read_with(file: &RootFile, with_offsets: bool, info: &BasketInfo) -> Result<Basket> {
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
        // An uncompressed basket is used where it was read (no copy): its
        // object starts `base` bytes into the buffer.
        let uncompressed = key.objlen == stored.len() as u64;
        let (data, base) = if uncompressed {
            (None, keylen as usize)
        } else {
            let out = decompress(stored, key.objlen as usize, info.seek + keylen)?;
            (Some(out), 0)
        };
        let object: &[u8] = data.as_deref().unwrap_or(stored);
        let expected = info.end_entry - info.first_entry;
        if n as u64 != expected {
            return Err(bad(
                "basket entry count",
                format!("{n} entries, the branch says {expected}"),
            ));
        }
        let data_end = last
            .checked_sub(keylen)
            .filter(|&e| e <= object.len() as u64)
            .ok_or_else(|| bad("basket data end", format!("{last} (key of {keylen} bytes)")))?
            as usize;
        let mut bounds = if with_offsets {
            offsets(object, data_end, n, keylen).map_err(|e| {
                if uncompressed {
                    e.shifted(info.seek + keylen)
                } else {
                    e.in_decompressed(info.seek, "basket")
                }
            })?
        } else {
            if entry_size.checked_mul(n) != Some(data_end) {
                return Err(bad(
                    "basket entry size",
                    format!("{n} entries of {entry_size} bytes in {data_end}"),
                ));
            }
            (0..=n).map(|k| k * entry_size).collect()
        };
        if base > 0 {
            bounds.iter_mut().for_each(|b| *b += base);
        }
        Ok(Basket {
            first_entry: info.first_entry,
            seek: info.seek,
            data: data.unwrap_or(raw),
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
/// boundary now and then) plus, for large baskets, the next ones being
/// decompressed on helper threads.
#[derive(Debug)]
pub struct BranchReader {
    file: Arc<RootFile>,
    branch: Branch,
    cache: Vec<Arc<Basket>>,
    /// Baskets being read ahead: (index in the basket table, thread).
    ahead: VecDeque<(usize, JoinHandle<Result<Basket>>)>,
    /// How many baskets to read ahead (0: none).
    depth: usize,
}

/// Baskets read ahead per branch by default: one per spare core, at most
/// 3, none on machines of fewer than 4 cores; `KM3MON_ROOT_READ_AHEAD=N`
/// sets it (0: no helper threads).
pub fn default_read_ahead() -> usize {
    if let Some(n) = std::env::var("KM3MON_ROOT_READ_AHEAD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    // With two cores or fewer a helper thread only competes with the
    // decoding (measured: no gain, more memory).
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        n if n >= 4 => (n - 1).min(3),
        _ => 0,
    }
}

impl BranchReader {
    pub fn new(file: Arc<RootFile>, branch: &Branch) -> BranchReader {
        let mut branch = branch.clone();
        // Sub-branches have readers of their own.
        branch.branches.clear();
        let big = branch.baskets.iter().any(|b| b.bytes >= PREFETCH_MIN_BYTES);
        BranchReader {
            file,
            branch,
            cache: Vec::with_capacity(2),
            ahead: VecDeque::new(),
            depth: if big { default_read_ahead() } else { 0 },
        }
    }

    /// Read up to `depth` baskets ahead on helper threads (0: never).
    pub fn set_read_ahead(&mut self, depth: usize) {
        if self.depth > 0 {
            self.depth = depth;
        }
    }

    pub fn branch(&self) -> &Branch {
        &self.branch
    }

    pub fn entries(&self) -> u64 {
        self.branch.readable_entries()
    }

    /// Basket `k` of the table: from the read-ahead queue or read now.
    fn load(&mut self, k: usize) -> Result<Basket> {
        let info = self.branch.baskets[k];
        if let Some(at) = self.ahead.iter().position(|(j, _)| *j == k) {
            let (_, handle) = self.ahead.remove(at).expect("position is in the queue");
            return handle.join().unwrap_or_else(|_| {
                Err(RootError::Missing(format!(
                    "basket at byte {} of branch {} (its reader thread failed)",
                    info.seek, self.branch.name
                )))
            });
        }
        Basket::read_with(&self.file, self.branch.entry_offset_len > 0, &info)
    }

    /// Start reading the baskets after `k`, up to the read-ahead depth.
    fn read_ahead(&mut self, k: usize) {
        // Baskets behind the current one will not be asked for again soon.
        self.ahead.retain(|(j, _)| *j > k);
        for j in k + 1..(k + 1 + self.depth).min(self.branch.baskets.len()) {
            let first = self.branch.baskets[j].first_entry;
            let cached = self.cache.iter().any(|b| b.first_entry == first);
            if cached || self.ahead.iter().any(|(x, _)| *x == j) {
                continue;
            }
            let (file, info) = (self.file.clone(), self.branch.baskets[j]);
            let offsets = self.branch.entry_offset_len > 0;
            let spawned = std::thread::Builder::new()
                .name("root-basket".into())
                .spawn(move || Basket::read_with(&file, offsets, &info));
            // No thread to be had: read it when it is needed.
            if let Ok(handle) = spawned {
                self.ahead.push_back((j, handle));
            }
        }
    }

    /// Entry `i` of the branch, and the file offset of its basket.
    pub fn entry(&mut self, i: u64) -> Result<(&[u8], u64)> {
        let basket = match self.basket_of(i)? {
            Some(slot) => &self.cache[slot],
            None => self.branch.embedded.as_ref().expect("embedded basket"),
        };
        let k = (i - basket.first_entry) as usize;
        let bytes = basket.entry(k).ok_or_else(|| {
            RootError::Missing(format!("entry {i} of branch {}", self.branch.name))
        })?;
        Ok((bytes, basket.seek))
    }

    /// The cache slot of the basket holding entry `i` (read if needed), or
    /// `None` for the embedded basket.
    fn basket_of(&mut self, i: u64) -> Result<Option<usize>> {
        let contains = |b: &Basket| (b.first_entry..b.first_entry + b.n_entries()).contains(&i);
        if let Some(slot) = self.cache.iter().position(|b| contains(b)) {
            return Ok(Some(slot));
        }
        if self.branch.embedded.as_deref().is_some_and(contains) {
            return Ok(None);
        }
        let k = self.branch.baskets.partition_point(|b| b.end_entry <= i);
        if self.branch.baskets.get(k).is_none_or(|b| b.first_entry > i) {
            return Err(RootError::Missing(format!(
                "entry {i} of branch {}",
                self.branch.name
            )));
        }
        let basket = Arc::new(self.load(k)?);
        if self.cache.len() == 2 {
            self.cache.remove(0);
        }
        self.cache.push(basket);
        if self.depth > 0 {
            self.read_ahead(k);
        }
        Ok(Some(self.cache.len() - 1))
    }
}
