//! The first baseline from the KM3NeT DB (spec monitors.md §3.8
//! "Computation"): the `datalognumbers` of `wr_mu` and `wr_delta[0..3]`
//! between the last run that started more than 24 h before the latest
//! one and the latest, for each DU's base CLB (`source_name` = its UPI
//! from the CLB map — the original fetched every CLB's values and
//! filtered them itself), joined by time: RTTC samples (UTC s, DU, ps).
//! Fetched once, when the node's state has no baseline yet.
//!
//! Blocking (HTTP): the node's I/O thread.

use std::collections::BTreeMap;

use km3db::{DbError, DetectorService};

pub const PARAMETERS: [&str; 5] = [
    "wr_mu",
    "wr_delta[0]",
    "wr_delta[1]",
    "wr_delta[2]",
    "wr_delta[3]",
];

/// (UTC s, DU, RTTC ps) of every time with all five values.
pub fn fetch(service: &DetectorService, dus: &[u32]) -> anyhow::Result<Vec<(u64, u32, f64)>> {
    let oid = service.det_oid()?;
    let runs = service.with_client(|c| c.runs(&oid, None))?;
    let latest = runs
        .last()
        .ok_or_else(|| anyhow::anyhow!("no runs of detector {oid} in the DB"))?;
    let start = latest.unix_start_ms.unwrap_or(0);
    let first = runs
        .iter()
        .rev()
        .find(|r| r.unix_start_ms.is_some_and(|s| s < start - 86_400_000))
        .unwrap_or(&runs[0]);
    let (minrun, maxrun) = (first.run.to_string(), latest.run.to_string());
    let (map, _) = service.clb_map()?;
    let mut out = Vec::new();
    for &du in dus {
        let Some(base) = map.base(du) else {
            tracing::warn!("RTTC baseline: DU{du} has no base CLB in the CLB map");
            continue;
        };
        let mut by_time: BTreeMap<i64, [Option<f64>; 5]> = BTreeMap::new();
        for (k, p) in PARAMETERS.iter().enumerate() {
            let t = service.with_client(|c| {
                c.stream(
                    "datalognumbers",
                    &[
                        ("detid", oid.as_str()),
                        ("minrun", minrun.as_str()),
                        ("maxrun", maxrun.as_str()),
                        ("parameter_name", p),
                        ("source_name", base.upi.as_str()),
                    ],
                )
            });
            let t = match t {
                Ok(t) => t,
                Err(DbError::NoData(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            for i in 0..t.rows.len() {
                let (Some(ms), Some(v)) = (
                    t.get(i, "UNIXTIME")
                        .and_then(|x| x.trim().parse::<i64>().ok()),
                    t.get(i, "DATA_VALUE")
                        .and_then(|x| x.trim().parse::<f64>().ok()),
                ) else {
                    continue;
                };
                by_time.entry(ms).or_default()[k] = Some(v);
            }
        }
        for (ms, v) in by_time {
            if let [Some(mu), Some(d0), Some(d1), Some(d2), Some(d3)] = v {
                out.push(((ms / 1000).max(0) as u64, du, mu - d0 - d1 - d2 - d3));
            }
        }
    }
    Ok(out)
}
