//! The detector's CLB map (spec integrations.md §1.4 row 6: DU/floor ↔
//! DOM id ↔ CLB UPI and serial number) and the other streams that change
//! rarely (`detectors`, `integration`, `ahrscalib`), cached on disk per
//! `[DB] refresh_hours` (24 h by default, spec §1.7) with the cached copy
//! of any age as the fallback when the DB cannot be reached.
//!
//! Blocking, like the rest of the crate: call it from an I/O thread.

use std::sync::Arc;

use daq::detector::ClbMap;

use crate::cache::human_age;
use crate::detector::{DetectorService, Origin};
use crate::error::DbError;
use crate::tsv::Table;

impl DetectorService {
    /// The detector's OID (`D_ORCA006`): the configured id when it is not
    /// a serial number, else the `detectors` stream's row of that serial
    /// (the list is cached like the CLB map).
    pub fn det_oid(&self) -> anyhow::Result<String> {
        let Ok(serial) = self.det.parse::<i32>() else {
            return Ok(self.det.clone());
        };
        let (text, _) = self.cached_stream("detectors", &[], |t| {
            Table::parse(t, "detectors").map(|_| ()).map_err(Into::into)
        })?;
        let t = Table::parse(&text, "streamds/detectors.txt")?;
        (0..t.rows.len())
            .find(|&i| t.get(i, "SERIALNUMBER").and_then(|s| s.parse::<i32>().ok()) == Some(serial))
            .and_then(|i| t.get(i, "OID").map(str::to_string))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the DB's detector list has no detector with serial number {serial}"
                )
            })
    }

    /// The CLB map of the detector (`streamds/clbmap.txt?detoid=<OID>`),
    /// parsed; a fresh cached copy is used without asking.
    pub fn clb_map(&self) -> anyhow::Result<(Arc<ClbMap>, Origin)> {
        let oid = self.det_oid()?;
        let what = format!("DB clbmap.txt?detoid={oid}");
        let (text, origin) = self.cached_stream("clbmap", &[("detoid", &oid)], |t| {
            ClbMap::parse(t, &what)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}"))
        })?;
        let map = ClbMap::parse(&text, &what).map_err(|e| anyhow::anyhow!("{e}"))?;
        if map.is_empty() {
            anyhow::bail!("{what}: no CLB in the map");
        }
        Ok((Arc::new(map), origin))
    }

    /// The client, for requests this service does not cache (run
    /// tables, datalog values).
    pub fn with_client<R>(&self, f: impl FnOnce(&mut crate::Client) -> R) -> R {
        f(&mut self.client())
    }

    /// A stream's text, cached under `<det>/streams/<stream>[_k-v…].txt`:
    /// younger than `[DB] refresh_hours` → no request; else the DB; when
    /// the DB cannot be reached (outage, session) a cached copy of any
    /// age, with a warning. `check` validates an answer before it is
    /// cached (a broken answer never replaces a good copy). "No data"
    /// (an empty body) is an error the caller sees, never cached.
    pub fn cached_stream(
        &self,
        stream: &str,
        selectors: &[(&str, &str)],
        check: impl Fn(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<(String, Origin)> {
        let key = self.key(&format!("streams/{}.txt", file_stem(stream, selectors)));
        let refresh = self.client().config().refresh();
        let cached = self.cache.as_ref().and_then(|c| c.get(&key));
        if let Some(e) = cached.as_ref().filter(|e| e.age < refresh) {
            if check(&e.text).is_ok() {
                return Ok((e.text.clone(), Origin::Cache));
            }
        }
        let fetched = self.client().stream_text(stream, selectors);
        match fetched {
            Ok(text) => {
                check(&text)?;
                if let Some(c) = &self.cache {
                    c.put(&key, &text);
                }
                Ok((text, Origin::Db))
            }
            Err(e) if e.is_outage() => match cached.filter(|c| check(&c.text).is_ok()) {
                Some(c) => {
                    let why = format!(
                        "{e}; using the cached {stream} {} ({} old)",
                        c.path.display(),
                        human_age(c.age)
                    );
                    tracing::warn!("DB: {why}");
                    self.set_status(format!("DB unreachable, cached {stream} in use: {e}"));
                    Ok((c.text, Origin::Fallback(why)))
                }
                None => Err(anyhow::Error::from(e)
                    .context(format!("stream {stream} from the DB (nothing cached)"))),
            },
            Err(e) => Err(anyhow::Error::from(e)),
        }
    }
}

/// `clbmap_detoid-D_ORCA006`: a file name from a query (anything but
/// letters, digits, `-`, `.` becomes `_`).
fn file_stem(stream: &str, selectors: &[(&str, &str)]) -> String {
    let mut s = stream.to_string();
    for (k, v) in selectors {
        s.push('_');
        s.push_str(k);
        s.push('-');
        s.push_str(v);
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether a stream error means "the DB answered: nothing".
pub fn is_no_data(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<DbError>(), Some(DbError::NoData(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_file_names_are_plain() {
        assert_eq!(
            file_stem("integration", &[("container_upi", "3.4.3.2/V2-2-1/2.267")]),
            "integration_container_upi-3.4.3.2_V2-2-1_2.267"
        );
        assert_eq!(file_stem("ahrscalib", &[]), "ahrscalib");
    }
}
