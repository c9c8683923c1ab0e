//! ROOT's object-stream basics as far as tree metadata needs them: version
//! headers with byte counts, `TObject`/`TNamed`, class tags and object
//! references of pointers, and `TObjArray`. Objects this reader does not
//! need are skipped by their byte count, so a class it has never heard of
//! costs nothing as long as it was written with one.

use std::collections::HashMap;

use crate::buf::Cursor;
use crate::error::{Result, RootError};

const BYTECOUNT_MASK: u32 = 0x4000_0000;
const CLASS_MASK: u32 = 0x8000_0000;
const NEW_CLASS: u32 = 0xFFFF_FFFF;
/// ROOT numbers the entries of its read map from 2 (0 = null, 1 = self).
const MAP_OFFSET: u64 = 2;
/// `TObject` bit: the object is referenced, a process id follows.
const IS_REFERENCED: u32 = 1 << 4;

/// A version header: the class version and, when a byte count was
/// written, the position just past the object.
#[derive(Debug, Clone, Copy)]
pub struct Version {
    pub version: i16,
    pub end: Option<usize>,
}

/// What a pointer in the stream pointed at.
#[derive(Debug, Clone)]
pub enum Pointer {
    Null,
    /// An object read before (ROOT writes each object once).
    Reference,
    /// A new object of `class` starts at the cursor; `end` is past it.
    Object {
        class: String,
        end: Option<usize>,
    },
}

/// A cursor over one key's object plus the map of class tags seen so far.
/// Class tags count from the start of the key (its header included), so
/// `keylen` shifts buffer positions into tag values.
pub struct ObjReader<'a> {
    pub c: Cursor<'a>,
    keylen: u64,
    classes: HashMap<u64, String>,
}

impl<'a> ObjReader<'a> {
    pub fn new(c: Cursor<'a>, keylen: u64) -> ObjReader<'a> {
        ObjReader {
            c,
            keylen,
            classes: HashMap::new(),
        }
    }

    /// A version header: `u32` byte count with bit 30 set and `u16`
    /// version, or (older writers, `TObject`) the bare `u16` version.
    pub fn version(&mut self, what: &'static str) -> Result<Version> {
        let start = self.c.pos();
        let word = self.c.u32(what)?;
        if word & BYTECOUNT_MASK != 0 {
            let count = (word & !BYTECOUNT_MASK) as usize;
            let end = start + 4 + count;
            if end > self.c.data().len() {
                return Err(RootError::Truncated {
                    what,
                    offset: self.c.offset() - 4,
                    needed: count as u64,
                    available: (self.c.data().len() - start - 4) as u64,
                });
            }
            let version = self.c.i16(what)?;
            Ok(Version {
                version,
                end: Some(end),
            })
        } else {
            self.c.seek(start, what)?;
            Ok(Version {
                version: self.c.i16(what)?,
                end: None,
            })
        }
    }

    /// Continue after an object whose remaining members are not needed.
    pub fn finish(&mut self, v: Version, what: &'static str) -> Result<()> {
        match v.end {
            Some(end) if end >= self.c.pos() => self.c.seek(end, what),
            Some(end) => Err(RootError::corrupt(
                what,
                self.c.offset(),
                format!("read past the object's end ({} bytes)", self.c.pos() - end),
            )),
            None => Ok(()),
        }
    }

    /// Skip a whole versioned object (it must carry a byte count).
    pub fn skip_object(&mut self, what: &'static str) -> Result<()> {
        let at = self.c.offset();
        let v = self.version(what)?;
        if v.end.is_none() {
            return Err(RootError::corrupt(what, at, "no byte count to skip by"));
        }
        self.finish(v, what)
    }

    pub fn tobject(&mut self) -> Result<()> {
        let v = self.version("TObject")?;
        self.c.skip(4, "TObject fUniqueID")?;
        let bits = self.c.u32("TObject fBits")?;
        if bits & IS_REFERENCED != 0 {
            self.c.skip(2, "TObject process id")?;
        }
        self.finish(v, "TObject")
    }

    /// `TNamed`: returns name and title.
    pub fn tnamed(&mut self) -> Result<(String, String)> {
        let v = self.version("TNamed")?;
        self.tobject()?;
        let name = self.c.tstring("TNamed name")?;
        let title = self.c.tstring("TNamed title")?;
        self.finish(v, "TNamed")?;
        Ok((name, title))
    }

    /// The class tag of a pointer member (`ReadObjectAny`).
    pub fn pointer(&mut self) -> Result<Pointer> {
        let start = self.c.pos();
        let at = self.c.offset();
        let first = self.c.u32("object tag")?;
        let (tag, end, tag_pos) = if first & BYTECOUNT_MASK != 0 && first != NEW_CLASS {
            let end = start + 4 + (first & !BYTECOUNT_MASK) as usize;
            if end > self.c.data().len() {
                return Err(RootError::Truncated {
                    what: "object",
                    offset: at,
                    needed: (end - start) as u64,
                    available: (self.c.data().len() - start) as u64,
                });
            }
            (self.c.u32("object tag")?, Some(end), start + 4)
        } else {
            (first, None, start)
        };
        if tag & CLASS_MASK == 0 {
            if let Some(end) = end {
                self.c.seek(end, "object reference")?;
            }
            return Ok(if tag == 0 {
                Pointer::Null
            } else {
                Pointer::Reference
            });
        }
        let class = if tag == NEW_CLASS {
            let name = self.c.cstring("class name")?;
            let key = tag_pos as u64 + self.keylen + MAP_OFFSET;
            self.classes.insert(key, name.clone());
            name
        } else {
            let key = u64::from(tag & !CLASS_MASK);
            match self.classes.get(&key) {
                Some(name) => name.clone(),
                // A class first named inside an object that was skipped:
                // harmless if this object can be skipped too.
                None if end.is_some() => String::new(),
                None => {
                    return Err(RootError::corrupt(
                        "class reference",
                        at,
                        format!("tag {key} names no class seen before"),
                    ))
                }
            }
        };
        Ok(Pointer::Object { class, end })
    }

    /// A `TObjArray`; `item` reads one element of the given class (the
    /// cursor is at its start) and returns what to keep. Elements are
    /// skipped to their byte count afterwards, whatever `item` read.
    pub fn obj_array<T>(
        &mut self,
        mut item: impl FnMut(&mut Self, &str) -> Result<Option<T>>,
    ) -> Result<Vec<T>> {
        let v = self.version("TObjArray")?;
        if v.version > 2 {
            self.tobject()?;
        }
        if v.version > 1 {
            self.c.tstring("TObjArray name")?;
        }
        let at = self.c.offset();
        let n = self.c.count("TObjArray size")?;
        self.c.skip(4, "TObjArray lower bound")?;
        if n > self.c.remaining() / 4 {
            return Err(RootError::corrupt("TObjArray size", at, n.to_string()));
        }
        let mut out = Vec::new();
        for _ in 0..n {
            if let Pointer::Object { class, end } = self.pointer()? {
                if let Some(x) = item(self, &class)? {
                    out.push(x);
                }
                if let Some(end) = end {
                    self.finish(
                        Version {
                            version: 0,
                            end: Some(end),
                        },
                        "array element",
                    )?;
                }
            }
        }
        self.finish(v, "TObjArray")?;
        Ok(out)
    }

    /// A basic-type array behind a pointer member (`T* x; //[n]`): a
    /// presence byte, then `n` elements if present.
    pub fn counted_array<T>(
        &mut self,
        n: usize,
        width: usize,
        what: &'static str,
        read: impl Fn(&mut Cursor<'a>) -> Result<T>,
    ) -> Result<Vec<T>> {
        if self.c.u8(what)? == 0 {
            return Ok(Vec::new());
        }
        if n > self.c.remaining() / width {
            return Err(RootError::corrupt(
                what,
                self.c.offset(),
                format!("{n} elements"),
            ));
        }
        (0..n).map(|_| read(&mut self.c)).collect()
    }
}
