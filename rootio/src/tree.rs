//! `TTree` and `TBranch`/`TBranchElement` metadata, read as far as finding
//! a branch's baskets needs: names, sub-branches, entry counts, the entry
//! offset length and the basket tables. Leaves are parsed only to keep the
//! class-tag map complete; everything else is skipped by byte count.

use std::sync::Arc;

use crate::basket::Basket;
use crate::buf::Cursor;
use crate::error::{Result, RootError};
use crate::file::{Key, RootFile};
use crate::streamer::{ObjReader, Pointer};

/// Where one basket of a branch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasketInfo {
    pub seek: u64,
    /// Bytes on disk, key header included.
    pub bytes: u64,
    pub first_entry: u64,
    /// One past the basket's last entry.
    pub end_entry: u64,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub name: String,
    /// `TBranch`, `TBranchElement`, …
    pub class: String,
    /// For a `TBranchElement`, the class the branch belongs to.
    pub element_class: String,
    /// 0: every entry has the basket's fixed size; else entries are found
    /// through the basket's offset table.
    pub entry_offset_len: i32,
    pub entries: u64,
    pub baskets: Vec<BasketInfo>,
    /// The basket that was still being filled when the tree metadata was
    /// saved (a file still being written, at its last autosave): kept
    /// inside the metadata, right after the written baskets.
    pub embedded: Option<Arc<Basket>>,
    pub branches: Vec<Branch>,
}

impl Branch {
    /// Entries that can be read: written baskets, then the embedded one.
    pub fn readable_entries(&self) -> u64 {
        match &self.embedded {
            Some(e) => e.first_entry + e.n_entries(),
            None => self.baskets.last().map_or(0, |b| b.end_entry),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tree {
    pub name: String,
    pub entries: u64,
    pub branches: Vec<Branch>,
}

impl Tree {
    /// Read the tree of `key` (a `TTree` key).
    pub fn read(file: &RootFile, key: &Key) -> Result<Tree> {
        let data = file.read_object(key)?;
        let base = key.seek_key + key.keylen;
        let mut r = ObjReader::new(Cursor::new(&data, base), key.keylen);
        let compressed = data.len() as u64 != key.nbytes.saturating_sub(key.keylen);
        // Offsets in decompressed data are not file offsets.
        read_tree(&mut r).map_err(|e| match compressed {
            true => e.in_decompressed(key.seek_key, "tree"),
            false => e,
        })
    }

    /// The branch named `name` (full name, as ROOT lists it), at any depth.
    pub fn branch(&self, name: &str) -> Option<&Branch> {
        fn find<'t>(branches: &'t [Branch], name: &str) -> Option<&'t Branch> {
            branches.iter().find_map(|b| {
                if b.name == name {
                    Some(b)
                } else {
                    find(&b.branches, name)
                }
            })
        }
        find(&self.branches, name)
    }

    /// Every branch, depth first.
    pub fn all_branches(&self) -> Vec<&Branch> {
        fn walk<'t>(branches: &'t [Branch], out: &mut Vec<&'t Branch>) {
            for b in branches {
                out.push(b);
                walk(&b.branches, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.branches, &mut out);
        out
    }
}

fn read_tree(r: &mut ObjReader<'_>) -> Result<Tree> {
    let at = r.c.offset();
    let v = r.version("TTree")?;
    if !(19..=20).contains(&v.version) {
        return Err(RootError::UnsupportedVersion {
            class: "TTree",
            version: v.version.into(),
            offset: at,
        });
    }
    let (name, _title) = r.tnamed()?;
    for what in ["TAttLine", "TAttFill", "TAttMarker"] {
        r.skip_object(what)?;
    }
    let entries_at = r.c.offset();
    let entries = r.c.i64("TTree fEntries")?;
    let entries = u64::try_from(entries)
        .map_err(|_| RootError::corrupt("TTree fEntries", entries_at, entries.to_string()))?;
    // fTotBytes … fFlushedBytes, fWeight; fTimerInterval, fScanField,
    // fUpdate, fDefaultEntryOffsetLen.
    r.c.skip(4 * 8 + 8 + 4 * 4, "TTree counters")?;
    let n_ranges = r.c.count("TTree fNClusterRange")?;
    // fMaxEntries, fMaxEntryLoop, fMaxVirtualSize, fAutoSave, fAutoFlush,
    // fEstimate.
    r.c.skip(6 * 8, "TTree limits")?;
    r.counted_array(n_ranges, 8, "TTree fClusterRangeEnd", |c| c.i64("cluster"))?;
    r.counted_array(n_ranges, 8, "TTree fClusterSize", |c| c.i64("cluster"))?;
    if v.version >= 20 {
        r.skip_object("TTree fIOFeatures")?;
    }
    let branches = r.obj_array(read_branch_object)?;
    // fLeaves, fAliases, indices, friends, user info follow: not needed.
    r.finish(v, "TTree")?;
    Ok(Tree {
        name,
        entries,
        branches,
    })
}

/// One element of a branch list.
fn read_branch_object(r: &mut ObjReader<'_>, class: &str) -> Result<Option<Branch>> {
    match class {
        "TBranch" => read_branch(r, class).map(Some),
        "TBranchElement" => {
            let at = r.c.offset();
            let v = r.version("TBranchElement")?;
            if !(8..=10).contains(&v.version) {
                return Err(RootError::UnsupportedVersion {
                    class: "TBranchElement",
                    version: v.version.into(),
                    offset: at,
                });
            }
            let mut b = read_branch(r, class)?;
            b.element_class = r.c.tstring("TBranchElement fClassName")?;
            // fParentName, fClonesName, checksum, class version, ids, types
            // and the count-branch pointers are not needed.
            r.finish(v, "TBranchElement")?;
            Ok(Some(b))
        }
        // Other branch classes derive from TBranch and stream it first.
        c if c.starts_with("TBranch") => {
            let v = r.version("branch")?;
            let b = read_branch(r, class)?;
            r.finish(v, "branch")?;
            Ok(Some(b))
        }
        _ => Ok(None),
    }
}

fn read_branch(r: &mut ObjReader<'_>, class: &str) -> Result<Branch> {
    let at = r.c.offset();
    let v = r.version("TBranch")?;
    if !(12..=13).contains(&v.version) {
        return Err(RootError::UnsupportedVersion {
            class: "TBranch",
            version: v.version.into(),
            offset: at,
        });
    }
    let (name, _title) = r.tnamed()?;
    r.skip_object("TAttFill")?;
    r.c.skip(8, "TBranch fCompress, fBasketSize")?;
    let entry_offset_len = r.c.i32("TBranch fEntryOffsetLen")?;
    let n_written = r.c.count("TBranch fWriteBasket")?;
    r.c.skip(8, "TBranch fEntryNumber")?;
    if v.version >= 13 {
        r.skip_object("TBranch fIOFeatures")?;
    }
    r.c.skip(4, "TBranch fOffset")?;
    let max_baskets = r.c.count("TBranch fMaxBaskets")?;
    r.c.skip(4, "TBranch fSplitLevel")?;
    let entries_at = r.c.offset();
    let entries = r.c.i64("TBranch fEntries")?;
    let entries = u64::try_from(entries)
        .map_err(|_| RootError::corrupt("TBranch fEntries", entries_at, entries.to_string()))?;
    // fFirstEntry, fTotBytes, fZipBytes.
    r.c.skip(3 * 8, "TBranch sizes")?;
    let branches = r.obj_array(read_branch_object)?;
    r.obj_array(read_leaf)?;
    let mut embedded = r.obj_array(|r, class| match class {
        "TBasket" => embedded_basket(r, entry_offset_len > 0).map(Some),
        _ => Ok(None),
    })?;
    let tables_at = r.c.offset();
    let bytes = r.counted_array(max_baskets, 4, "TBranch fBasketBytes", |c| c.i32("b"))?;
    let first = r.counted_array(max_baskets, 8, "TBranch fBasketEntry", |c| c.i64("e"))?;
    let seeks = r.counted_array(max_baskets, 8, "TBranch fBasketSeek", |c| c.i64("s"))?;
    r.finish(v, "TBranch")?;
    if n_written > max_baskets || n_written > bytes.len().min(first.len()).min(seeks.len()) {
        return Err(RootError::corrupt(
            "TBranch fWriteBasket",
            tables_at,
            format!("{n_written} written baskets, tables of {max_baskets}"),
        ));
    }
    let mut baskets = Vec::with_capacity(n_written);
    for i in 0..n_written {
        let bad = |detail: String| RootError::corrupt("TBranch basket table", tables_at, detail);
        let start = u64::try_from(first[i]).map_err(|_| bad(format!("entry {}", first[i])))?;
        // The next basket's first entry ends this one. After the last
        // written basket the table holds the first entry of the basket
        // still in memory (or 0 when there is none).
        let end = match first.get(i + 1) {
            Some(&e) if i + 1 < n_written || e > 0 => {
                u64::try_from(e).map_err(|_| bad(format!("entry {e}")))?
            }
            _ => entries,
        };
        if end < start || end > entries {
            return Err(bad(format!(
                "basket {i} covers entries {start}..{end} of {entries}"
            )));
        }
        let seek = u64::try_from(seeks[i]).map_err(|_| bad(format!("seek {}", seeks[i])))?;
        let size = u64::try_from(bytes[i]).map_err(|_| bad(format!("size {}", bytes[i])))?;
        baskets.push(BasketInfo {
            seek,
            bytes: size,
            first_entry: start,
            end_entry: end,
        });
    }
    // The basket being filled starts where the written ones end.
    let written_end = baskets.last().map_or(0, |b: &BasketInfo| b.end_entry);
    let embedded = match embedded.pop() {
        Some((data, bounds)) if bounds.len() > 1 => {
            let first = first.get(n_written).copied().unwrap_or(0);
            let n = (bounds.len() - 1) as u64;
            if u64::try_from(first).ok() != Some(written_end) || written_end + n > entries {
                return Err(RootError::corrupt(
                    "TBranch embedded basket",
                    tables_at,
                    format!(
                        "{n} entries from entry {first}, written baskets end at {written_end} of {entries}"
                    ),
                ));
            }
            Some(Arc::new(Basket::from_parts(written_end, 0, data, bounds)))
        }
        _ => None,
    };
    Ok(Branch {
        name,
        class: class.to_string(),
        element_class: String::new(),
        entry_offset_len,
        entries,
        baskets,
        embedded,
        branches,
    })
}

/// A leaf: only its count-leaf pointer matters, because a class first
/// named there may be referred to later.
fn read_leaf(r: &mut ObjReader<'_>, class: &str) -> Result<Option<()>> {
    if !class.starts_with("TLeaf") {
        return Ok(None);
    }
    let outer = r.version("leaf")?;
    let inner = if class == "TLeaf" {
        outer
    } else {
        r.version("TLeaf")?
    };
    r.tnamed()?;
    // fLen, fLenType, fOffset, fIsRange, fIsUnsigned.
    r.c.skip(14, "TLeaf fields")?;
    if let Pointer::Object { class, end } = r.pointer()? {
        read_leaf(r, &class)?;
        if let Some(end) = end {
            r.c.seek(end, "count leaf")?;
        }
    }
    r.finish(inner, "TLeaf")?;
    r.finish(outer, "leaf")?;
    Ok(None)
}

/// A `TBasket` streamed inside its branch (ROOT's `TBasket::Streamer`):
/// key header without a position, basket fields, a flag, the entry offsets
/// (flag 1 or 2, then also displacements for 2) and, if the flag is 10 or
/// more, the buffer: `fLast` bytes whose first `fKeylen` are the key's
/// space. Returns the data and the entry bounds in it.
fn embedded_basket(r: &mut ObjReader<'_>, offsets: bool) -> Result<(Vec<u8>, Vec<usize>)> {
    let at = r.c.offset();
    let bad = |detail: String| RootError::corrupt("embedded basket", at, detail);
    r.c.skip(4, "basket key size")?;
    let version = r.c.i16("basket key version")?;
    r.c.skip(8, "basket key object length, date")?;
    let keylen = r.c.i16("basket key header length")?;
    r.c.skip(2, "basket key cycle")?;
    r.c.skip(if version > 1000 { 16 } else { 8 }, "basket key positions")?;
    for what in ["basket class", "basket name", "basket title"] {
        r.c.tstring(what)?;
    }
    r.c.skip(2 + 4, "basket version, buffer size")?;
    let entry_size = r.c.count("basket entry size")?;
    let n = r.c.count("basket entry count")?;
    let last = r.c.count("basket data end")?;
    let flag = r.c.u8("basket flag")?;
    let keylen = usize::try_from(keylen).map_err(|_| bad(format!("key length {keylen}")))?;
    let mut starts = Vec::new();
    if flag % 10 != 0 {
        let count = r.c.count("embedded entry offset count")?;
        if count != n || count > r.c.remaining() / 4 {
            return Err(bad(format!("{count} offsets for {n} entries")));
        }
        starts = (0..n)
            .map(|_| r.c.u32("embedded entry offset"))
            .collect::<Result<Vec<u32>>>()?;
        if flag % 10 == 2 {
            let m = r.c.count("displacement count")?;
            r.c.skip(m.saturating_mul(4), "displacements")?;
        }
    }
    if flag < 10 || n == 0 {
        // Only the header was saved: no entries to read.
        return Ok((Vec::new(), Vec::new()));
    }
    let buffer = r.c.bytes(last, "embedded basket buffer")?;
    let data = buffer
        .get(keylen..)
        .ok_or_else(|| bad(format!("data end {last} before the key ({keylen} bytes)")))?;
    let mut bounds = Vec::with_capacity(n + 1);
    if offsets {
        for &s in &starts {
            let p = (s as usize)
                .checked_sub(keylen)
                .filter(|&p| p <= data.len() && bounds.last().is_none_or(|&l| p >= l))
                .ok_or_else(|| bad(format!("entry offset {s}")))?;
            bounds.push(p);
        }
        if bounds.len() != n {
            return Err(bad(format!("no entry offsets for {n} entries")));
        }
    } else {
        if entry_size.checked_mul(n) != Some(data.len()) {
            return Err(bad(format!(
                "{n} entries of {entry_size} bytes in {}",
                data.len()
            )));
        }
        bounds.extend((0..n).map(|k| k * entry_size));
    }
    bounds.push(data.len());
    Ok((data.to_vec(), bounds))
}
