//! Serialisation of what the writer needs: key headers, byte-counted
//! objects, `TObjArray`s, the `TTree`/`TBranchElement` metadata (with
//! embedded baskets at an autosave) and ROOT's compression blocks.

use std::io::Write;

use super::{BranchW, Compression, TreeW};

const BYTECOUNT_BIT: u32 = 0x4000_0000;
const NEW_CLASS: u32 = 0xFFFF_FFFF;
/// TBasket version, buffer size, entry size, entry count, fLast, flag.
pub const BASKET_FIELDS: usize = 2 + 4 * 4 + 1;

/// A big-endian byte buffer with ROOT's byte-count headers.
#[derive(Default)]
pub struct ObjWriter(Vec<u8>);

impl From<Vec<u8>> for ObjWriter {
    fn from(v: Vec<u8>) -> Self {
        ObjWriter(v)
    }
}

impl ObjWriter {
    pub fn new() -> ObjWriter {
        ObjWriter(Vec::new())
    }
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }
    pub fn i16(&mut self, v: i16) {
        self.bytes(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.bytes(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.bytes(&v.to_be_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.bytes(&v.to_be_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.bytes(&v.to_be_bytes());
    }
    /// A file position, 32 or 64 bits.
    pub fn seek(&mut self, v: u64, wide: bool) {
        if wide {
            self.i64(v as i64);
        } else {
            self.i32(v as i32);
        }
    }
    pub fn tstring(&mut self, s: &str) {
        if s.len() < 255 {
            self.u8(s.len() as u8);
        } else {
            self.u8(255);
            self.i32(s.len() as i32);
        }
        self.bytes(s.as_bytes());
    }
    /// Start an object with a byte count: returns where to patch it.
    pub fn begin(&mut self, version: u16) -> usize {
        let at = self.0.len();
        self.u32(0);
        self.u16(version);
        at
    }
    pub fn end(&mut self, at: usize) {
        let count = (self.0.len() - at - 4) as u32 | BYTECOUNT_BIT;
        self.0[at..at + 4].copy_from_slice(&count.to_be_bytes());
    }
    fn tobject(&mut self) {
        self.u16(1);
        self.u32(0);
        self.u32(0x0300_0000);
    }
    fn tnamed(&mut self, name: &str, title: &str) {
        let at = self.begin(1);
        self.tobject();
        self.tstring(name);
        self.tstring(title);
        self.end(at);
    }
    /// A `TObjArray` of `n` pointer elements written by `item`.
    fn obj_array(&mut self, n: usize, mut item: impl FnMut(&mut ObjWriter, usize)) {
        let at = self.begin(3);
        self.tobject();
        self.tstring("");
        self.i32(n as i32);
        self.i32(0);
        for k in 0..n {
            item(self, k);
        }
        self.end(at);
    }
    /// A pointer to a new object of `class`: byte count, class tag, body.
    fn pointer(&mut self, class: &str, body: impl FnOnce(&mut ObjWriter)) {
        let at = self.0.len();
        self.u32(0);
        self.u32(NEW_CLASS);
        self.bytes(class.as_bytes());
        self.u8(0);
        body(self);
        let count = (self.0.len() - at - 4) as u32 | BYTECOUNT_BIT;
        self.0[at..at + 4].copy_from_slice(&count.to_be_bytes());
    }
}

/// Two or more `TString`s back to back.
pub fn tstrings(s: &[&str]) -> Vec<u8> {
    let mut w = ObjWriter::new();
    for s in s {
        w.tstring(s);
    }
    w.into_inner()
}

/// Bytes of a key header.
pub fn key_len(class: &str, name: &str, title: &str, wide: bool) -> usize {
    18 + if wide { 16 } else { 8 } + tstrings(&[class, name, title]).len()
}

/// A key header; 64-bit positions (version 1004) beyond 2 GB.
pub fn key_header(
    nbytes: usize,
    objlen: usize,
    keylen: usize,
    cycle: i16,
    seek_key: u64,
    seek_pdir: u64,
    (class, name, title): (&str, &str, &str),
) -> Vec<u8> {
    let wide = seek_key > i32::MAX as u64;
    let mut w = ObjWriter::new();
    w.i32(nbytes as i32);
    w.i16(if wide { 1004 } else { 4 });
    w.i32(objlen as i32);
    w.u32(0x7a5b_0000); // fDatime: any date
    w.i16(keylen as i16);
    w.i16(cycle);
    w.seek(seek_key, wide);
    w.seek(seek_pdir, wide);
    w.tstring(class);
    w.tstring(name);
    w.tstring(title);
    w.into_inner()
}

/// Compress `object` into `out` in blocks of at most `block` bytes; false
/// (and `out` unusable) if there is nothing to compress or a block does
/// not fit ROOT's 24-bit size field.
pub fn compress(object: &[u8], how: Compression, block: usize, out: &mut Vec<u8>) -> bool {
    out.clear();
    if how == Compression::None || object.is_empty() {
        return false;
    }
    let block = block.clamp(1, 0xff_ffff);
    for chunk in object.chunks(block) {
        let at = out.len();
        out.extend_from_slice(&[0u8; 9]);
        let (letters, method): (&[u8; 2], u8) = match how {
            Compression::Zlib => {
                let mut e = flate2::write::ZlibEncoder::new(&mut *out, flate2::Compression::new(1));
                e.write_all(chunk).expect("write to memory");
                e.finish().expect("write to memory");
                (b"ZL", 8)
            }
            Compression::Lz4 => {
                // ROOT puts an xxhash64 of the compressed block here; the
                // reader skips it, so zeros do.
                out.extend_from_slice(&[0u8; 8]);
                out.extend_from_slice(&lz4_flex::block::compress(chunk));
                (b"L4", 1)
            }
            Compression::Lzma => {
                lzma_rs::xz_compress(&mut &chunk[..], out).expect("write to memory");
                (b"XZ", 0)
            }
            Compression::Zstd => {
                out.extend(ruzstd::encoding::compress_to_vec(
                    chunk,
                    ruzstd::encoding::CompressionLevel::Fastest,
                ));
                (b"ZS", 1)
            }
            Compression::None => unreachable!("handled above"),
        };
        let c = out.len() - at - 9;
        if c > 0xff_ffff {
            return false;
        }
        let u = chunk.len();
        let head = [
            letters[0],
            letters[1],
            method,
            c as u8,
            (c >> 8) as u8,
            (c >> 16) as u8,
            u as u8,
            (u >> 8) as u8,
            (u >> 16) as u8,
        ];
        out[at..at + 9].copy_from_slice(&head);
    }
    true
}

/// The `TTree` object (version 20) of `tree`. With `embed`, each branch's
/// unwritten entries go into its `fBaskets` as an embedded `TBasket`.
pub fn tree_object(tree: &TreeW, embed: bool, basket_size: usize) -> Vec<u8> {
    let mut w = ObjWriter::new();
    let at = w.begin(20);
    w.tnamed(&tree.name, &tree.title);
    let a = w.begin(2); // TAttLine
    w.bytes(&[0, 1, 0, 1, 0, 1]);
    w.end(a);
    let a = w.begin(2); // TAttFill
    w.bytes(&[0, 0, 3, 0xe9]);
    w.end(a);
    let a = w.begin(2); // TAttMarker
    w.bytes(&[0, 1, 0, 1]);
    w.f32(1.0);
    w.end(a);
    let (tot, zip) = tree.branches.iter().fold((0, 0), |(t, z), b| {
        (t + b.tot_bytes as i64, z + b.zip_bytes as i64)
    });
    w.i64(tree.entries as i64);
    w.i64(tot);
    w.i64(zip);
    w.i64(zip); // fSavedBytes
    w.i64(0); // fFlushedBytes
    w.f64(1.0); // fWeight
    w.i32(0); // fTimerInterval
    w.i32(25); // fScanField
    w.i32(0); // fUpdate
    w.i32(1000); // fDefaultEntryOffsetLen
    w.i32(0); // fNClusterRange
    w.i64(1_000_000_000_000); // fMaxEntries
    w.i64(1_000_000_000_000); // fMaxEntryLoop
    w.i64(0); // fMaxVirtualSize
    w.i64(-300_000_000); // fAutoSave
    w.i64(-30_000_000); // fAutoFlush
    w.i64(1_000_000); // fEstimate
    w.u8(0); // fClusterRangeEnd: none
    w.u8(0); // fClusterSize: none
    let a = w.begin(1); // fIOFeatures
    w.u8(0);
    w.end(a);
    w.obj_array(tree.branches.len(), |w, k| {
        let b = &tree.branches[k];
        w.pointer("TBranchElement", |w| {
            branch(w, b, &tree.name, embed, basket_size)
        });
    });
    w.obj_array(0, |_, _| {}); // fLeaves
    w.u32(0); // fAliases
    w.i32(0); // fIndexValues
    w.i32(0); // fIndex
    for _ in 0..4 {
        w.u32(0); // fTreeIndex, fFriends, fUserInfo, fBranchRef
    }
    w.end(at);
    w.into_inner()
}

fn branch(w: &mut ObjWriter, b: &BranchW, tree: &str, embed: bool, basket_size: usize) {
    let element = w.begin(10);
    let at = w.begin(13);
    w.tnamed(&b.name, &b.name);
    let a = w.begin(2); // TAttFill
    w.bytes(&[0, 0, 3, 0xe9]);
    w.end(a);
    let written = b.baskets.len();
    let max_baskets = (written + 1).max(10);
    w.i32(101); // fCompress
    w.i32(basket_size as i32);
    w.i32(if b.fixed.is_some() { 0 } else { 400 }); // fEntryOffsetLen
    w.i32(written as i32); // fWriteBasket
    w.i64(b.entries as i64); // fEntryNumber
    let a = w.begin(1); // fIOFeatures
    w.u8(0);
    w.end(a);
    w.i32(0); // fOffset
    w.i32(max_baskets as i32);
    w.i32(0); // fSplitLevel
    w.i64(b.entries as i64);
    w.i64(0); // fFirstEntry
    w.i64(b.tot_bytes as i64);
    w.i64(b.zip_bytes as i64);
    w.obj_array(0, |_, _| {}); // fBranches
    w.obj_array(0, |_, _| {}); // fLeaves
    let pending = embed && !b.starts.is_empty();
    w.obj_array(usize::from(pending), |w, _| {
        w.pointer("TBasket", |w| embedded_basket(w, b, tree, basket_size));
    });
    // fBasketBytes, fBasketEntry, fBasketSeek: written baskets, then the
    // first entry of the basket being filled.
    w.u8(1);
    for k in 0..max_baskets {
        w.i32(b.baskets.get(k).map_or(0, |x| x.bytes as i32));
    }
    w.u8(1);
    for k in 0..max_baskets {
        let first = match b.baskets.get(k) {
            Some(x) => x.first_entry,
            None if k == written => b.first_pending(),
            None => 0,
        };
        w.i64(first as i64);
    }
    w.u8(1);
    for k in 0..max_baskets {
        w.i64(b.baskets.get(k).map_or(0, |x| x.seek as i64));
    }
    w.tstring(""); // fFileName
    w.end(at);
    w.tstring(&b.class);
    w.tstring(""); // fParentName
    w.tstring(""); // fClonesName
    w.u32(0); // fCheckSum
    w.i16(1); // fClassVersion
    w.i32(-1); // fID
    w.i32(0); // fType
    w.i32(-1); // fStreamerType
    w.i32(0); // fMaximum
    w.u32(0); // fBranchCount
    w.u32(0); // fBranchCount2
    w.end(element);
}

/// A basket still in memory, streamed inside its branch: key header (no
/// position), basket fields, flag, offset array, then `fLast` bytes of the
/// buffer (key header space, then the data).
fn embedded_basket(w: &mut ObjWriter, b: &BranchW, tree: &str, basket_size: usize) {
    let keylen = key_len("TBasket", &b.name, tree, false) + BASKET_FIELDS;
    let offsets = b.fixed.is_none();
    let objlen = b.data.len() + if offsets { 8 + 4 * b.starts.len() } else { 0 };
    let head = key_header(
        keylen,
        objlen,
        keylen,
        1,
        0,
        100,
        ("TBasket", &b.name, tree),
    );
    w.bytes(&head);
    w.u16(3);
    w.i32(basket_size as i32);
    w.i32(b.fixed.map_or(1000, |s| s as i32));
    w.i32(b.starts.len() as i32);
    let last = keylen + b.data.len();
    w.i32(last as i32);
    w.u8(if offsets { 11 } else { 10 });
    if offsets {
        w.i32(b.starts.len() as i32);
        for s in &b.starts {
            w.u32(keylen as u32 + s);
        }
    }
    w.bytes(&vec![0u8; keylen]);
    w.bytes(&b.data);
}
