//! DETX writer, versions 1–5.
//!
//! Used to hand synthetic detectors to tools that read files, and to convert
//! between versions. Numbers are written in Rust's shortest round-trip form,
//! so parse → write → parse reproduces every value exactly.

use std::fmt;
use std::path::Path;

use super::model::{Detector, Module};

/// Writing a DETX failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write DETX version {0} (supported: 1 to 5)")]
    UnsupportedVersion(u32),
    #[error("formatting failed")]
    Fmt(#[from] fmt::Error),
    #[error("cannot write {file}: {message}")]
    Io { file: String, message: String },
}

/// Shortest representation that parses back to the same value, always with
/// a decimal point so it reads as the float it is.
fn num(x: f64) -> String {
    let text = format!("{x}");
    if text.contains(['.', 'e', 'E', 'N', 'n']) {
        text
    } else {
        text + ".0"
    }
}

/// A comment as one physical line. Multi-line comments are joined with
/// spaces, and a lone `"` is replaced, because a written comment line with
/// exactly one `"` would open a multi-line comment for the next reader and
/// swallow the data. Trailing whitespace is dropped because the reader
/// trims it: otherwise a comment ending in a blank line would be written
/// differently after one more read (found by fuzzing).
fn comment_line(text: &str) -> String {
    let joined = text.replace(['\n', '\r'], " ");
    let joined = joined.trim_end();
    if joined.bytes().filter(|&b| b == b'"').count() == 1 {
        joined.replace('"', "'")
    } else {
        joined.to_owned()
    }
}

impl Detector {
    /// The description as DETX text of the given version.
    ///
    /// Comments are written for v3 and later (where the format officially
    /// has them). v1–v3 have no module position, orientation, t0 or
    /// status: they are dropped and readers recompute the position as the
    /// PMT centre. Writing v2+ from a description without validity or UTM
    /// uses "always valid" (`0.0 9999999999.0`) and a zero UTM reference
    /// (`UTM WGS84 0N 0.0 0.0 0.0`).
    pub fn to_detx_string(&self, version: u32) -> Result<String, WriteError> {
        let mut out = String::new();
        self.write_detx(&mut out, version)?;
        Ok(out)
    }

    /// Writes the DETX text to a file.
    pub fn write_detx_file(&self, path: impl AsRef<Path>, version: u32) -> Result<(), WriteError> {
        let path = path.as_ref();
        let text = self.to_detx_string(version)?;
        std::fs::write(path, text).map_err(|e| WriteError::Io {
            file: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Writes the DETX text to any formatter sink.
    pub fn write_detx(&self, out: &mut impl fmt::Write, version: u32) -> Result<(), WriteError> {
        if !(1..=5).contains(&version) {
            return Err(WriteError::UnsupportedVersion(version));
        }
        if version >= 3 {
            for comment in self.comments() {
                writeln!(out, "# {}", comment_line(comment))?;
            }
        }
        if version == 1 {
            writeln!(out, "{} {}", self.det_id(), self.n_modules())?;
        } else {
            writeln!(out, "{} v{}", self.det_id(), version)?;
            let validity = self.validity().unwrap_or(super::Validity::ALWAYS);
            writeln!(out, "{} {}", num(validity.from), num(validity.until))?;
            match self.utm() {
                Some(utm) => writeln!(
                    out,
                    "UTM {} {} {} {} {}",
                    utm.ellipsoid,
                    utm.grid,
                    num(utm.easting),
                    num(utm.northing),
                    num(utm.z)
                )?,
                None => writeln!(out, "UTM WGS84 0N 0.0 0.0 0.0")?,
            }
            writeln!(out, "{}", self.n_modules())?;
        }
        for module in self.modules() {
            write_module(out, module, version)?;
        }
        Ok(())
    }
}

fn write_module(out: &mut impl fmt::Write, module: &Module, version: u32) -> fmt::Result {
    write!(out, "{} {} {}", module.dom_id, module.du, module.floor)?;
    if version >= 4 {
        for value in module.pos.iter().chain(&module.orientation) {
            write!(out, " {}", num(*value))?;
        }
        write!(out, " {}", num(module.t0))?;
    }
    if version >= 5 {
        write!(out, " {}", module.status)?;
    }
    writeln!(out, " {}", module.pmts.len())?;
    for pmt in &module.pmts {
        write!(out, " {}", pmt.pmt_id)?;
        for value in pmt.pos.iter().chain(&pmt.dir) {
            write!(out, " {}", num(*value))?;
        }
        write!(out, " {}", num(pmt.t0))?;
        if version >= 3 {
            write!(out, " {}", pmt.status)?;
        }
        writeln!(out)?;
    }
    Ok(())
}
