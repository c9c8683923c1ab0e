//! ROOT's compressed-object framing: a sequence of blocks, each with a
//! 9-byte header (2 algorithm letters, method byte, compressed and
//! uncompressed size as 3-byte little-endian numbers), because one block
//! holds at most 16 MiB − 1. Large baskets therefore come in several blocks,
//! which is exactly what other Rust readers got wrong.
//!
//! Only pure-Rust decompressors are used: zlib (`ZL`) through flate2 with zlib-rs,
//! LZMA (`XZ`) through lzma-rs, LZ4 (`L4`, after ROOT's 8-byte xxhash64
//! checksum) through lz4_flex, ZSTD (`ZS`) through ruzstd.

use std::io::Read;

use crate::error::{Result, RootError};

/// Bytes of a block header.
pub const BLOCK_HEADER_LEN: usize = 9;
/// ROOT's LZ4 blocks carry an xxhash64 of the compressed data first.
const LZ4_CHECKSUM_LEN: usize = 8;

/// Decompress the blocks in `src` into exactly `out_len` bytes. `offset` is
/// the file offset of `src[0]`, for error messages.
pub fn decompress(src: &[u8], out_len: usize, offset: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    out.try_reserve_exact(out_len).map_err(|_| {
        RootError::corrupt(
            "uncompressed size",
            offset,
            format!("cannot allocate {out_len} bytes"),
        )
    })?;
    let mut at = 0usize;
    while out.len() < out_len {
        let block_at = offset + at as u64;
        let Some(header) = src.get(at..at + BLOCK_HEADER_LEN) else {
            return Err(RootError::Truncated {
                what: "compression block header",
                offset: block_at,
                needed: BLOCK_HEADER_LEN as u64,
                available: src.len().saturating_sub(at) as u64,
            });
        };
        let size = |b: &[u8]| usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16;
        let (c_len, u_len) = (size(&header[3..6]), size(&header[6..9]));
        let start = at + BLOCK_HEADER_LEN;
        let Some(body) = src.get(start..start + c_len) else {
            return Err(RootError::Truncated {
                what: "compressed block",
                offset: block_at,
                needed: c_len as u64,
                available: src.len().saturating_sub(start) as u64,
            });
        };
        if u_len > out_len - out.len() {
            return Err(RootError::corrupt(
                "compression block header",
                block_at,
                format!(
                    "block of {u_len} bytes overflows the object ({} of {out_len} bytes left)",
                    out_len - out.len()
                ),
            ));
        }
        let before = out.len();
        let algorithm = [header[0], header[1]];
        decode_block(algorithm, body, u_len, &mut out).map_err(|(algorithm, detail)| {
            RootError::Decompress {
                algorithm,
                offset: block_at,
                detail,
            }
        })?;
        if out.len() - before != u_len {
            return Err(RootError::Decompress {
                algorithm: name(algorithm),
                offset: block_at,
                detail: format!("{} bytes instead of {u_len}", out.len() - before),
            });
        }
        at = start + c_len;
    }
    Ok(out)
}

fn name(algorithm: [u8; 2]) -> &'static str {
    match &algorithm {
        b"ZL" => "zlib",
        b"XZ" => "LZMA",
        b"L4" => "LZ4",
        b"ZS" => "ZSTD",
        b"CS" => "old ROOT (CS)",
        _ => "unknown",
    }
}

type BlockError = (&'static str, String);

/// Append the `u_len` bytes of one block to `out`.
fn decode_block(
    algorithm: [u8; 2],
    body: &[u8],
    u_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), BlockError> {
    let alg = name(algorithm);
    let fail = |e: &dyn std::fmt::Display| (alg, e.to_string());
    match &algorithm {
        b"ZL" => {
            let before = out.len();
            let mut z = flate2::Decompress::new(true);
            // `decompress_vec` writes only into spare capacity: reserve just
            // this block's declared size, so a lying header cannot make it
            // write past what the object holds.
            out.try_reserve(u_len).map_err(|e| fail(&e))?;
            loop {
                let consumed = z.total_in() as usize;
                let status = z
                    .decompress_vec(&body[consumed..], out, flate2::FlushDecompress::Finish)
                    .map_err(|e| fail(&e))?;
                match status {
                    flate2::Status::StreamEnd => break,
                    _ if out.len() - before >= u_len => break,
                    flate2::Status::BufError => return Err((alg, "stream stalls".into())),
                    _ if z.total_in() as usize >= body.len() => {
                        return Err((alg, "stream ends early".into()))
                    }
                    _ => {}
                }
            }
            out.truncate(before + u_len.min(out.len() - before));
            Ok(())
        }
        b"XZ" => {
            let mut reader = body;
            let mut sink = BoundedSink { out, left: u_len };
            lzma_rs::xz_decompress(&mut reader, &mut sink).map_err(|e| fail(&e))
        }
        b"L4" => {
            let data = body
                .get(LZ4_CHECKSUM_LEN..)
                .ok_or((alg, "block shorter than its checksum".to_string()))?;
            let before = out.len();
            out.resize(before + u_len, 0);
            let n =
                lz4_flex::block::decompress_into(data, &mut out[before..]).map_err(|e| fail(&e))?;
            out.truncate(before + n);
            Ok(())
        }
        b"ZS" => {
            let mut reader = body;
            let mut decoder =
                ruzstd::decoding::StreamingDecoder::new(&mut reader).map_err(|e| fail(&e))?;
            let before = out.len();
            // Read one byte more than expected so an over-long frame shows.
            (&mut decoder)
                .take(u_len as u64 + 1)
                .read_to_end(out)
                .map_err(|e| fail(&e))?;
            if out.len() - before > u_len {
                return Err((alg, "frame longer than declared".into()));
            }
            Ok(())
        }
        _ => Err((
            alg,
            format!(
                "algorithm {:?} not supported",
                String::from_utf8_lossy(&algorithm)
            ),
        )),
    }
}

/// A writer that refuses to grow past the block's declared size, so a
/// corrupt LZMA stream cannot blow up memory.
struct BoundedSink<'a> {
    out: &'a mut Vec<u8>,
    left: usize,
}

impl std::io::Write for BoundedSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            return Err(std::io::Error::other("data longer than declared"));
        }
        self.left -= buf.len();
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn block(alg: &[u8; 2], body: &[u8], u_len: usize) -> Vec<u8> {
        let mut out = alg.to_vec();
        out.push(if alg == b"ZL" { 8 } else { 1 });
        let c = body.len();
        out.extend_from_slice(&[c as u8, (c >> 8) as u8, (c >> 16) as u8]);
        out.extend_from_slice(&[u_len as u8, (u_len >> 8) as u8, (u_len >> 16) as u8]);
        out.extend_from_slice(body);
        out
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn multi_block_zlib_and_lz4() {
        let a: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..3000u32).map(|i| (i % 7) as u8).collect();
        let mut src = block(b"ZL", &zlib(&a), a.len());
        let mut l4 = vec![0u8; 8];
        l4.extend(lz4_flex::block::compress(&b));
        src.extend(block(b"L4", &l4, b.len()));
        let out = decompress(&src, a.len() + b.len(), 0).unwrap();
        assert_eq!(&out[..a.len()], &a[..]);
        assert_eq!(&out[a.len()..], &b[..]);
    }

    #[test]
    fn corrupt_blocks_are_errors() {
        let a = vec![7u8; 1000];
        let good = block(b"ZL", &zlib(&a), a.len());
        // Truncated, wrong sizes, flipped bytes, unknown algorithm: all errors.
        assert!(decompress(&good[..good.len() - 3], 1000, 0).is_err());
        assert!(decompress(&good, 2000, 0).is_err());
        assert!(decompress(&good, 10, 0).is_err());
        for i in 9..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x55;
            let _ = decompress(&bad, 1000, 0);
        }
        let mut unknown = good.clone();
        unknown[0] = b'Q';
        assert!(decompress(&unknown, 1000, 0).is_err());
        let l4 = block(b"L4", &[1, 2, 3], 10);
        assert!(decompress(&l4, 10, 0).is_err());
    }
}
