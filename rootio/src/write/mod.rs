//! A minimal ROOT file writer, for tests and benchmarks only (feature
//! `write`): flat trees of `TBranchElement`s whose entries are raw bytes
//! (fixed-size or with an entry-offset table), in baskets compressed with
//! zlib, LZ4, LZMA or ZSTD in ROOT's block framing, several blocks per
//! basket if asked. It writes what this crate's reader reads, in the
//! layout of the KM3NeT online files ([`km3net`]); it writes no streamer
//! infos and no leaves, so ROOT itself would not make sense of the trees.
//!
//! [`RootWriter::autosave`] writes the tree metadata with the baskets still
//! being filled embedded in it, plus the key list, the way ROOT's
//! `TTree::AutoSave` leaves a file that is still being written; dropping
//! the writer without [`RootWriter::finish`] then leaves such a file.

pub mod gen;
pub mod km3net;
mod obj;

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use obj::{key_header, key_len, ObjWriter};

/// Basket compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zlib,
    Lz4,
    Lzma,
    Zstd,
}

impl Compression {
    /// ROOT's `fCompress` (algorithm × 100 + level).
    fn setting(self) -> i32 {
        match self {
            Compression::None => 0,
            Compression::Zlib => 101,
            Compression::Lzma => 207,
            Compression::Lz4 => 404,
            Compression::Zstd => 505,
        }
    }

    pub fn parse(s: &str) -> Option<Compression> {
        Some(match s {
            "none" => Compression::None,
            "zlib" => Compression::Zlib,
            "lz4" => Compression::Lz4,
            "lzma" => Compression::Lzma,
            "zstd" => Compression::Zstd,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub compression: Compression,
    /// A basket is written once its data reach this many bytes.
    pub basket_size: usize,
    /// Largest uncompressed block (ROOT: 16 MiB − 1); smaller values make
    /// every basket multi-block.
    pub block_size: usize,
    /// Keep compressed baskets even where compression does not make them
    /// smaller (ROOT stores those raw; lzma-rs' simple encoder often
    /// does not shrink them): makes sure the decompressor runs.
    pub always_compress: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: Compression::Zlib,
            basket_size: 4 << 20,
            block_size: 0xff_ffff,
            always_compress: false,
        }
    }
}

/// Where a written basket is.
#[derive(Debug, Clone, Copy)]
struct Written {
    seek: u64,
    bytes: u32,
    first_entry: u64,
}

/// One branch being filled.
#[derive(Debug)]
pub(crate) struct BranchW {
    name: String,
    /// The class the branch belongs to (`TBranchElement::fClassName`).
    class: String,
    /// Fixed entry size, or `None` for entries found by offsets.
    fixed: Option<usize>,
    data: Vec<u8>,
    /// Start of each entry of the current basket in `data`.
    starts: Vec<u32>,
    entries: u64,
    baskets: Vec<Written>,
    tot_bytes: u64,
    zip_bytes: u64,
}

impl BranchW {
    pub(crate) fn new(name: &str, class: &str, fixed: Option<usize>) -> BranchW {
        BranchW {
            name: name.to_string(),
            class: class.to_string(),
            fixed,
            data: Vec::new(),
            starts: Vec::new(),
            entries: 0,
            baskets: Vec::new(),
            tot_bytes: 0,
            zip_bytes: 0,
        }
    }

    fn first_pending(&self) -> u64 {
        self.entries - self.starts.len() as u64
    }
}

/// One tree being filled.
#[derive(Debug)]
pub(crate) struct TreeW {
    name: String,
    title: String,
    entries: u64,
    branches: Vec<BranchW>,
    /// Cycle of the last metadata key written.
    cycle: i16,
}

/// A top-directory key (tree metadata) as listed in the key list.
#[derive(Debug, Clone)]
struct TopKey {
    header: Vec<u8>,
    name: String,
}

/// Writes a ROOT file.
pub struct RootWriter {
    out: BufWriter<File>,
    pos: u64,
    opts: WriteOptions,
    name: String,
    trees: Vec<TreeW>,
    top_keys: Vec<TopKey>,
    /// Compression scratch.
    zbuf: Vec<u8>,
}

/// File offset of the first key (ROOT's `fBEGIN`).
const BEGIN: u64 = 100;
/// Bytes reserved for the top directory record (big-file layout).
const DIR_LEN: usize = 2 + 8 + 4 + 4 + 3 * 8 + 18;

impl RootWriter {
    pub fn create(path: impl AsRef<Path>, opts: WriteOptions) -> std::io::Result<RootWriter> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .map_or("run.root".into(), |n| n.to_string_lossy().into_owned());
        let mut w = RootWriter {
            out: BufWriter::with_capacity(1 << 20, File::create(path)?),
            pos: 0,
            opts,
            name,
            trees: Vec::new(),
            top_keys: Vec::new(),
            zbuf: Vec::new(),
        };
        w.append(&[0u8; BEGIN as usize])?;
        // The file's own key, its name and title, then the directory.
        let names = obj::tstrings(&[&w.name, ""]);
        let keylen = key_len("TFile", &w.name, "", false);
        let objlen = names.len() + DIR_LEN;
        let head = key_header(
            keylen + objlen,
            objlen,
            keylen,
            1,
            BEGIN,
            0,
            ("TFile", &w.name, ""),
        );
        w.append(&head)?;
        w.append(&names)?;
        w.append(&[0u8; DIR_LEN])?;
        w.write_header(0, 0, 0)?;
        Ok(w)
    }

    fn nbytes_name(&self) -> u64 {
        (key_len("TFile", &self.name, "", false) + obj::tstrings(&[&self.name, ""]).len()) as u64
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<u64> {
        let at = self.pos;
        self.out.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(at)
    }

    fn write_at(&mut self, at: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.out.flush()?;
        let f = self.out.get_mut();
        f.seek(SeekFrom::Start(at))?;
        f.write_all(bytes)?;
        f.seek(SeekFrom::Start(self.pos))?;
        Ok(())
    }

    /// The file header and the top directory record (rewritten whenever the
    /// key list moves).
    fn write_header(&mut self, end: u64, seek_keys: u64, nbytes_keys: u64) -> std::io::Result<()> {
        let big = end > i32::MAX as u64;
        let mut h = ObjWriter::new();
        h.bytes(b"root");
        h.i32(63202 + if big { 1_000_000 } else { 0 });
        h.i32(BEGIN as i32);
        h.seek(end, big);
        h.seek(end, big); // fSeekFree: no free segments
        h.i32(0); // fNbytesFree
        h.i32(0); // nfree
        h.i32(self.nbytes_name() as i32);
        h.u8(if big { 8 } else { 4 });
        h.i32(self.opts.compression.setting());
        h.seek(0, big); // fSeekInfo: no streamer infos
        h.i32(0);
        h.bytes(&[0u8; 18]); // UUID version and bytes
        self.write_at(0, &h.into_inner())?;
        let mut d = ObjWriter::new();
        d.i16(1005); // big layout: 64-bit positions
        d.u32(0);
        d.u32(0);
        d.i32(nbytes_keys as i32);
        d.i32(self.nbytes_name() as i32);
        d.i64(BEGIN as i64);
        d.i64(0);
        d.i64(seek_keys as i64);
        d.bytes(&[0u8; 18]);
        let d = d.into_inner();
        debug_assert_eq!(d.len(), DIR_LEN);
        self.write_at(BEGIN + self.nbytes_name(), &d)
    }

    /// The tree `name`, created with `branches` on first use.
    pub(crate) fn tree(
        &mut self,
        name: &str,
        title: &str,
        branches: impl FnOnce() -> Vec<BranchW>,
    ) -> usize {
        if let Some(i) = self.trees.iter().position(|t| t.name == name) {
            return i;
        }
        self.trees.push(TreeW {
            name: name.to_string(),
            title: title.to_string(),
            entries: 0,
            branches: branches(),
            cycle: 0,
        });
        self.trees.len() - 1
    }

    /// Append one entry to tree `t`: `parts[k]` is branch `k`'s bytes.
    pub(crate) fn fill(&mut self, t: usize, parts: &[&[u8]]) -> std::io::Result<()> {
        let tree = &mut self.trees[t];
        assert_eq!(parts.len(), tree.branches.len(), "one part per branch");
        tree.entries += 1;
        let mut full = Vec::new();
        for (k, (b, p)) in tree.branches.iter_mut().zip(parts).enumerate() {
            if let Some(size) = b.fixed {
                assert_eq!(p.len(), size, "fixed-size branch {}", b.name);
            }
            b.starts.push(b.data.len() as u32);
            b.data.extend_from_slice(p);
            b.entries += 1;
            if b.data.len() >= self.opts.basket_size {
                full.push(k);
            }
        }
        for k in full {
            self.flush_basket(t, k)?;
        }
        Ok(())
    }

    /// The basket object (data, then the offset table) of branch `b`, and
    /// its `fLast`, for a key header of `keylen` bytes.
    fn basket_object(b: &BranchW, keylen: usize) -> (Vec<u8>, usize) {
        let mut obj = Vec::with_capacity(b.data.len() + 8 + 4 * b.starts.len());
        obj.extend_from_slice(&b.data);
        if b.fixed.is_none() {
            obj.extend_from_slice(&(b.starts.len() as i32 + 1).to_be_bytes());
            for s in &b.starts {
                obj.extend_from_slice(&(keylen as u32 + s).to_be_bytes());
            }
            obj.extend_from_slice(&0i32.to_be_bytes());
        }
        (obj, keylen + b.data.len())
    }

    fn flush_basket(&mut self, t: usize, k: usize) -> std::io::Result<()> {
        let (tree_name, b) = {
            let tree = &self.trees[t];
            (tree.name.clone(), &tree.branches[k])
        };
        if b.starts.is_empty() {
            return Ok(());
        }
        let wide = self.pos > i32::MAX as u64;
        let keylen = key_len("TBasket", &b.name, &tree_name, wide) + obj::BASKET_FIELDS;
        let (object, last) = Self::basket_object(b, keylen);
        let mut zbuf = std::mem::take(&mut self.zbuf);
        let compressed = obj::compress(
            &object,
            self.opts.compression,
            self.opts.block_size,
            &mut zbuf,
        ) && (zbuf.len() < object.len() || self.opts.always_compress);
        let stored: &[u8] = if compressed { &zbuf } else { &object };
        let nbytes = keylen + stored.len();
        let mut head = ObjWriter::from(key_header(
            nbytes,
            object.len(),
            keylen,
            1,
            self.pos,
            BEGIN,
            ("TBasket", &b.name, &tree_name),
        ));
        head.u16(3);
        head.i32(self.opts.basket_size as i32);
        head.i32(b.fixed.map_or(1000, |s| s as i32));
        head.i32(b.starts.len() as i32);
        head.i32(last as i32);
        head.u8(0);
        let head = head.into_inner();
        debug_assert_eq!(head.len(), keylen);
        let first_entry = b.first_pending();
        let seek = self.append(&head)?;
        self.append(stored)?;
        self.zbuf = zbuf;
        let b = &mut self.trees[t].branches[k];
        b.baskets.push(Written {
            seek,
            bytes: nbytes as u32,
            first_entry,
        });
        b.tot_bytes += (keylen + object.len()) as u64;
        b.zip_bytes += nbytes as u64;
        b.data.clear();
        b.starts.clear();
        Ok(())
    }

    /// Write every tree's metadata with its unwritten baskets embedded, the
    /// key list and the header: what ROOT leaves on disk at an autosave.
    pub fn autosave(&mut self) -> std::io::Result<()> {
        self.save(true)
    }

    /// Write the remaining baskets, the trees, the key list and the header.
    pub fn finish(mut self) -> std::io::Result<()> {
        for t in 0..self.trees.len() {
            for k in 0..self.trees[t].branches.len() {
                self.flush_basket(t, k)?;
            }
        }
        self.save(false)?;
        self.out.flush()
    }

    fn save(&mut self, embed: bool) -> std::io::Result<()> {
        for t in 0..self.trees.len() {
            let wide = self.pos > i32::MAX as u64;
            let tree = &self.trees[t];
            let keylen = key_len("TTree", &tree.name, &tree.title, wide);
            let object = obj::tree_object(tree, embed, self.opts.basket_size);
            let tree = &mut self.trees[t];
            tree.cycle += 1;
            let head = key_header(
                keylen + object.len(),
                object.len(),
                keylen,
                tree.cycle,
                self.pos,
                BEGIN,
                ("TTree", &tree.name, &tree.title),
            );
            let name = tree.name.clone();
            self.top_keys.retain(|k| k.name != name);
            self.top_keys.push(TopKey {
                header: head.clone(),
                name,
            });
            self.append(&head)?;
            self.append(&object)?;
        }
        // The key list: its own key, the count, every key header.
        let wide = self.pos > i32::MAX as u64;
        let keylen = key_len("TFile", &self.name, "", wide);
        let mut body = ObjWriter::new();
        body.i32(self.top_keys.len() as i32);
        for k in &self.top_keys {
            body.bytes(&k.header);
        }
        let body = body.into_inner();
        let seek_keys = self.pos;
        let head = key_header(
            keylen + body.len(),
            body.len(),
            keylen,
            1,
            seek_keys,
            BEGIN,
            ("TFile", &self.name, ""),
        );
        self.append(&head)?;
        self.append(&body)?;
        let end = self.pos;
        self.write_header(end, seek_keys, (keylen + body.len()) as u64)?;
        self.out.flush()
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.pos
    }
}
