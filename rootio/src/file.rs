//! The ROOT file container: the file header (small files with 32-bit and
//! big files with 64-bit positions), the top directory, its key list, and
//! reading one key's object (decompressed) at a time.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::buf::Cursor;
use crate::compress::decompress;
use crate::error::{Result, RootError};

/// Largest object (basket or metadata record) accepted, uncompressed: far
/// above any real basket (ROOT's own limit is 1 GB), so that a corrupt
/// length cannot make the reader allocate without bound.
pub const MAX_OBJECT: usize = 1 << 30;

/// The file header's fields this reader uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// ROOT version that wrote the format, e.g. 53423 or 63202 (the
    /// big-file marker 1000000 removed).
    pub version: i32,
    /// True if positions are 64-bit (files over 2 GB).
    pub big: bool,
    pub begin: u64,
    pub end: u64,
    pub nbytes_name: u64,
    /// Compression setting (algorithm × 100 + level).
    pub compress: i32,
    pub seek_info: u64,
}

/// A `TKey` header: where an object is, how big, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Bytes on disk, key header included.
    pub nbytes: u64,
    pub version: i16,
    /// Uncompressed object size.
    pub objlen: u64,
    pub keylen: u64,
    pub cycle: i16,
    pub seek_key: u64,
    pub class_name: String,
    pub name: String,
    pub title: String,
}

impl Key {
    /// Parse a key header at the cursor.
    pub fn read(c: &mut Cursor<'_>) -> Result<Key> {
        let at = c.offset();
        let nbytes = c.count("key size")? as u64;
        let version = c.i16("key version")?;
        let objlen = c.count("key object length")? as u64;
        c.skip(4, "key date")?;
        let keylen_at = c.offset();
        let keylen = c.i16("key header length")?;
        let cycle = c.i16("key cycle")?;
        let wide = version > 1000;
        let seek_key = c.seek_field(wide, "key position")?;
        let _seek_dir = c.seek_field(wide, "key directory position")?;
        let class_name = c.tstring("key class name")?;
        let name = c.tstring("key name")?;
        let title = c.tstring("key title")?;
        let keylen = u64::try_from(keylen)
            .ok()
            .filter(|&k| k as usize <= c.pos() + 4096 && k <= nbytes)
            .ok_or_else(|| {
                RootError::corrupt("key header length", keylen_at, format!("{keylen}"))
            })?;
        if nbytes == 0 {
            return Err(RootError::corrupt("key size", at, "0"));
        }
        Ok(Key {
            nbytes,
            version,
            objlen,
            keylen,
            cycle,
            seek_key,
            class_name,
            name,
            title,
        })
    }

    /// Bytes of the object as stored (compressed or not).
    pub fn stored_len(&self) -> u64 {
        self.nbytes - self.keylen
    }
}

/// An open ROOT file. Reads go through positioned reads (`pread`), so one
/// `RootFile` can serve several readers at once without seeking.
#[derive(Debug)]
pub struct RootFile {
    file: File,
    path: PathBuf,
    size: u64,
    header: FileHeader,
    keys: Vec<Key>,
}

impl RootFile {
    pub fn open(path: impl AsRef<Path>) -> Result<RootFile> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path)?;
        let size = file.metadata()?.len();
        let mut f = RootFile {
            file,
            path,
            size,
            header: FileHeader {
                version: 0,
                big: false,
                begin: 0,
                end: 0,
                nbytes_name: 0,
                compress: 0,
                seek_info: 0,
            },
            keys: Vec::new(),
        };
        f.header = f.read_header()?;
        f.keys = match f.read_top_keys() {
            Err(RootError::Unclosed(why)) => return Err(RootError::Unclosed(f.unclosed(why))),
            other => other?,
        };
        Ok(f)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The keys of the top directory, in the order of the key list.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The key of `name` with the highest cycle.
    pub fn key(&self, name: &str) -> Option<&Key> {
        self.keys
            .iter()
            .filter(|k| k.name == name)
            .max_by_key(|k| k.cycle)
    }

    /// `len` bytes at `offset`, refused if they are not all in the file.
    pub fn read_at(&self, offset: u64, len: u64, what: &'static str) -> Result<Vec<u8>> {
        let end = offset.checked_add(len);
        if end.is_none_or(|e| e > self.size) || len > MAX_OBJECT as u64 {
            return Err(RootError::Truncated {
                what,
                offset,
                needed: len,
                available: self.size.saturating_sub(offset),
            });
        }
        let mut buf = vec![0u8; len as usize];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// The key header at `offset` (its length is not known before reading
    /// it, so read the fixed part first).
    pub fn read_key(&self, offset: u64) -> Result<Key> {
        let head = self.read_at(offset, 18, "key header")?;
        let keylen = i16::from_be_bytes([head[14], head[15]]);
        if keylen < 18 {
            return Err(RootError::corrupt(
                "key header length",
                offset + 14,
                keylen.to_string(),
            ));
        }
        let raw = self.read_at(offset, keylen as u64, "key header")?;
        Key::read(&mut Cursor::new(&raw, offset)).map_err(|e| e.shifted(0))
    }

    /// Why a file without key list cannot be read, with what it holds.
    fn unclosed(&self, why: String) -> String {
        let keys = self.scan_keys(self.header.begin, 1_000_000);
        let mut trees: Vec<&str> = Vec::new();
        let mut baskets = 0;
        for (key, _) in &keys {
            if key.class_name == "TBasket" {
                baskets += 1;
                if !trees.contains(&key.title.as_str()) {
                    trees.push(&key.title);
                }
            }
        }
        if baskets == 0 {
            return why;
        }
        format!(
            "{why}; {baskets} baskets of {} are written but no tree metadata lists them yet (the writer never saved its trees): nothing can be replayed",
            trees.join(", ")
        )
    }

    /// The keys stored one after the other from `from` on (ROOT appends
    /// every key; a negative size marks a free gap), with the entry count
    /// of those that are baskets; stops at the end of the file, at the
    /// first unreadable key (a basket still being written) or after
    /// `limit` keys. Used to find baskets a file's metadata does not
    /// list yet.
    pub fn scan_keys(&self, from: u64, limit: usize) -> Vec<(Key, Option<u64>)> {
        let mut out = Vec::new();
        let mut at = from;
        while out.len() < limit && at + 4 <= self.size {
            let Ok(word) = self.read_at(at, 4, "key size") else {
                break;
            };
            let n = i32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            if n < 0 {
                at += n.unsigned_abs() as u64;
                continue;
            }
            let Ok(key) = self.read_key(at) else {
                break;
            };
            if key.seek_key != at || at + key.nbytes > self.size {
                break;
            }
            let entries = (key.class_name == "TBasket")
                .then(|| self.read_at(at, key.keylen, "basket header").ok())
                .flatten()
                .and_then(|raw| {
                    // fNevBuf: after the basket version, buffer and entry size.
                    let p = raw.len().checked_sub(crate::basket::FIELDS_LEN)? + 10;
                    let b = raw.get(p..p + 4)?;
                    u64::try_from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
                });
            at += key.nbytes;
            out.push((key, entries));
        }
        out
    }

    /// The object of `key`, decompressed.
    pub fn read_object(&self, key: &Key) -> Result<Vec<u8>> {
        let at = key.seek_key + key.keylen;
        if key.objlen as usize > MAX_OBJECT {
            return Err(RootError::corrupt(
                "key object length",
                key.seek_key,
                format!("{} bytes", key.objlen),
            ));
        }
        let stored = self.read_at(at, key.stored_len(), "object")?;
        if key.objlen == key.stored_len() {
            Ok(stored)
        } else {
            decompress(&stored, key.objlen as usize, at)
        }
    }

    fn read_header(&self) -> Result<FileHeader> {
        let raw = self.read_at(0, self.size.min(64), "file header")?;
        if !raw.starts_with(b"root") {
            return Err(RootError::NotRoot);
        }
        let mut c = Cursor::new(&raw, 0);
        c.skip(4, "magic")?;
        let version = c.i32("file version")?;
        let big = version >= 1_000_000;
        let begin = c.seek_field(false, "fBEGIN")?;
        let end = c.seek_field(big, "fEND")?;
        let _seek_free = c.seek_field(big, "fSeekFree")?;
        c.skip(8, "fNbytesFree, nfree")?;
        let nbytes_name = c.count("fNbytesName")? as u64;
        c.skip(1, "fUnits")?;
        let compress = c.i32("fCompress")?;
        let seek_info = c.seek_field(big, "fSeekInfo")?;
        if end > self.size {
            return Err(RootError::Truncated {
                what: "file (fEND beyond its size)",
                offset: self.size,
                needed: end,
                available: self.size,
            });
        }
        Ok(FileHeader {
            version: version % 1_000_000,
            big,
            begin,
            end,
            nbytes_name,
            compress,
            seek_info,
        })
    }

    /// The top directory record follows the file's own key and name; it
    /// gives the position of the key list, which ROOT writes when the
    /// file is closed.
    fn read_top_keys(&self) -> Result<Vec<Key>> {
        let dir_at = self.header.begin + self.header.nbytes_name;
        let raw = self.read_at(
            dir_at,
            42.min(self.size.saturating_sub(dir_at)),
            "directory",
        )?;
        let mut c = Cursor::new(&raw, dir_at);
        let version = c.i16("directory version")?;
        let wide = version > 1000;
        c.skip(8, "directory dates")?;
        let nbytes_keys = c.count("directory key list size")? as u64;
        let _nbytes_name = c.count("directory name size")?;
        let _seek_dir = c.seek_field(wide, "directory position")?;
        let _seek_parent = c.seek_field(wide, "parent directory position")?;
        let seek_keys = c.seek_field(wide, "key list position")?;
        if seek_keys == 0 || nbytes_keys == 0 {
            return Err(RootError::Unclosed(
                "the top directory has no key list".into(),
            ));
        }
        let raw = self.read_at(seek_keys, nbytes_keys, "key list")?;
        let mut c = Cursor::new(&raw, seek_keys);
        let _list_key = Key::read(&mut c)?;
        let n = c.count("number of keys")?;
        // Each key header takes at least 26 bytes: refuse counts the list
        // cannot hold before allocating for them.
        if n > c.remaining() / 26 {
            return Err(RootError::corrupt(
                "number of keys",
                seek_keys,
                format!("{n} keys in {} bytes", c.remaining()),
            ));
        }
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            keys.push(Key::read(&mut c)?);
        }
        Ok(keys)
    }
}
