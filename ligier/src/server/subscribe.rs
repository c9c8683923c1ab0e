//! Reading a `_Subscri` payload the way the dispatcher needs it: one entry
//! per tag (a tag listed twice counts once, "all" winning over "any"), in
//! one linear pass that stops as soon as the payload asks for more tags
//! than a connection may have.
//!
//! A subscription may be large (a client can send megabytes of `w T`), so
//! nothing here is quadratic and nothing is copied per entry beyond the
//! one slot per distinct tag.

use std::collections::HashMap;

use daq::controlhost::{Mode, Subscription, Tag};

/// Most distinct tags one connection may subscribe to. The DAQ has a
/// handful of tags; a subscription beyond this is a broken or hostile
/// client, refused before it costs anything.
pub(crate) const MAX_SUBSCRIPTION_TAGS: usize = 1024;

/// A parsed, deduplicated subscription and what it looked like on the wire.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// One entry per distinct tag, in order of first appearance.
    pub subscription: Subscription,
    /// `w`/`a` entries in the payload, duplicates included.
    pub entries: usize,
}

impl Parsed {
    /// A short description for the log: counts and the first few tags,
    /// never the whole payload.
    pub fn summary(&self) -> String {
        const SHOWN: usize = 8;
        let e = &self.subscription.entries;
        let mut s: Vec<String> = e
            .iter()
            .take(SHOWN)
            .map(|(m, t)| format!("{} {t}", m.letter()))
            .collect();
        if e.len() > SHOWN {
            s.push(format!("… {} more", e.len() - SHOWN));
        }
        let dup = self.entries - e.len();
        let dup = if dup > 0 {
            format!(", {dup} duplicates ignored")
        } else {
            String::new()
        };
        format!("{} tags [{}]{dup}", e.len(), s.join(", "))
    }
}

/// Parse `" w IO_EVT a IO_SUM ..."`. Errors name the byte offset.
pub(crate) fn parse(payload: &[u8], max_tags: usize) -> Result<Parsed, String> {
    let mut index: HashMap<Tag, usize> = HashMap::new();
    let mut subscription = Subscription::new();
    let mut entries = 0;
    let mut tokens = Tokens {
        bytes: payload,
        pos: 0,
    };
    while let Some((offset, letter)) = tokens.next() {
        let mode = match letter {
            b"w" => Mode::Any,
            b"a" => Mode::All,
            other => {
                return Err(format!(
                    "unknown subscription mode {:?} at byte {offset} (expected 'w' or 'a')",
                    printable(other)
                ))
            }
        };
        let Some((tag_offset, tag)) = tokens.next() else {
            return Err(format!("mode at byte {offset} has no tag after it"));
        };
        let tag = std::str::from_utf8(tag)
            .ok()
            .and_then(|t| Tag::new(t).ok())
            .ok_or_else(|| format!("bad tag {:?} at byte {tag_offset}", printable(tag)))?;
        entries += 1;
        match index.get(&tag) {
            Some(&i) => {
                if mode == Mode::All {
                    subscription.entries[i].0 = Mode::All;
                }
            }
            None => {
                if index.len() >= max_tags {
                    return Err(format!(
                        "subscription lists more than {max_tags} distinct tags \
                         (the limit per connection); refused at byte {offset}"
                    ));
                }
                index.insert(tag, subscription.entries.len());
                subscription.entries.push((mode, tag));
            }
        }
    }
    Ok(Parsed {
        subscription,
        entries,
    })
}

/// A token for an error message: at most 16 characters, escaped.
fn printable(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(16)]);
    s.escape_default().to_string()
}

struct Tokens<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        let b = self.bytes;
        // Whitespace and NULs separate tokens (C clients send the
        // terminator along).
        let sep = |c: u8| c.is_ascii_whitespace() || c == 0;
        while self.pos < b.len() && sep(b[self.pos]) {
            self.pos += 1;
        }
        if self.pos >= b.len() {
            return None;
        }
        let start = self.pos;
        while self.pos < b.len() && !sep(b[self.pos]) {
            self.pos += 1;
        }
        Some((start, &b[start..self.pos]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_collapse_and_all_wins() {
        let p = parse(b" w IO_EVT w IO_SUM a IO_EVT w IO_EVT", 10).unwrap();
        assert_eq!(p.entries, 4);
        let e = &p.subscription.entries;
        assert_eq!(e.len(), 2);
        assert_eq!(e[0], (Mode::All, Tag::new("IO_EVT").unwrap()));
        assert_eq!(e[1], (Mode::Any, Tag::new("IO_SUM").unwrap()));
        assert!(
            p.summary().contains("2 duplicates ignored"),
            "{}",
            p.summary()
        );
    }

    #[test]
    fn many_entries_are_linear_and_capped() {
        // 250 000 copies of one tag (1 MB): one entry, parsed at once.
        let payload = " w T".repeat(250_000);
        let p = parse(payload.as_bytes(), MAX_SUBSCRIPTION_TAGS).unwrap();
        assert_eq!((p.entries, p.subscription.entries.len()), (250_000, 1));
        let distinct: String = (0..2000).map(|i| format!(" w T{i}")).collect();
        let err = parse(distinct.as_bytes(), 1000).unwrap_err();
        assert!(err.contains("more than 1000 distinct tags"), "{err}");
    }

    #[test]
    fn bad_payloads_name_the_byte() {
        assert!(parse(b" x IO_EVT", 10).unwrap_err().contains("byte 1"));
        assert!(parse(b" w", 10).unwrap_err().contains("no tag"));
        let err = parse(b" w TOOLONGTAGNAME", 10).unwrap_err();
        assert!(err.contains("byte 3"), "{err}");
        assert!(parse(b"", 10).unwrap().subscription.entries.is_empty());
    }
}
