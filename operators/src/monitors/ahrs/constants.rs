//! Where each DOM's compass constants come from: the KM3NeT DB (CLB map →
//! the CLB's compass in the `integration` stream → its latest row of the
//! `ahrscalib` stream, spec integrations.md §3.1/§3.3; every answer
//! cached per day under the state dir by `km3db`), and a constants file
//! that fills what the DB cannot give (offline, or a DOM the DB lacks).
//!
//! Blocking (HTTP): runs on the node's I/O thread, never on a worker.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use daq::detector::Detector;
use km3db::{DetectorService, Table};

use super::math::Constants;

/// One DOM (optical module; base modules carry no compass).
#[derive(Debug, Clone, PartialEq)]
pub struct DomEntry {
    pub du: u32,
    pub floor: i32,
    /// The constants, or why there are none.
    pub constants: Result<Constants, String>,
}

/// The constants of every DOM of the detector, and where they came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConstantSet {
    pub doms: HashMap<u32, DomEntry>,
    /// DOM ids of the base modules (skipped, spec §3.9 step 1).
    pub bases: Vec<u32>,
    /// One line for the log and the plots' JSON.
    pub source: String,
}

impl ConstantSet {
    pub fn with_constants(&self) -> usize {
        self.doms.values().filter(|d| d.constants.is_ok()).count()
    }
}

/// The latest row (smallest `REVTIMEORDER`, 1 = most recent) per compass
/// serial number of an `ahrscalib` table. An incomplete latest row means
/// "no calibration" (spec §3.3): an older row is not taken instead.
pub fn latest_rows(t: &Table) -> HashMap<String, usize> {
    let mut best: HashMap<String, (i64, usize)> = HashMap::new();
    for i in 0..t.rows.len() {
        let (Some(serial), Some(rev)) = (
            t.get(i, "SERIALNUMBER"),
            t.get(i, "REVTIMEORDER")
                .and_then(|r| r.trim().parse::<i64>().ok()),
        ) else {
            continue;
        };
        let e = best.entry(serial.trim().to_string()).or_insert((rev, i));
        if rev < e.0 {
            *e = (rev, i);
        }
    }
    best.into_iter().map(|(s, (_, i))| (s, i)).collect()
}

/// The constants of every optical DOM of the detector's CLB map from the
/// DB. Fails only when the CLB map or the `ahrscalib` table cannot be had
/// (nothing cached either); a DOM whose compass is unknown gets the reason.
pub fn from_db(service: &DetectorService) -> anyhow::Result<ConstantSet> {
    let (map, map_origin) = service.clb_map()?;
    let (text, calib_origin) = service.cached_stream("ahrscalib", &[], |t| {
        Table::parse(t, "ahrscalib").map(|_| ()).map_err(Into::into)
    })?;
    let table = Table::parse(&text, "streamds/ahrscalib.txt")?;
    let latest = latest_rows(&table);
    let mut set = ConstantSet {
        source: format!(
            "KM3NeT DB {} (CLB map {}, ahrscalib {})",
            service.det(),
            origin_word(&map_origin),
            origin_word(&calib_origin)
        ),
        ..ConstantSet::default()
    };
    for clb in map.rows() {
        if clb.is_base() {
            set.bases.push(clb.dom_id);
            continue;
        }
        let constants = compass_of(service, &clb.upi).and_then(|compass| {
            let serial = compass.rsplit('.').next().unwrap_or_default();
            let row = latest
                .get(serial)
                .ok_or_else(|| format!("compass {compass} has no ahrscalib row"))?;
            Constants::from_row(&table, *row).map_err(|e| format!("compass {compass}: {e}"))
        });
        set.doms.insert(
            clb.dom_id,
            DomEntry {
                du: clb.du,
                floor: clb.floor,
                constants,
            },
        );
    }
    Ok(set)
}

fn origin_word(o: &km3db::Origin) -> &'static str {
    match o {
        km3db::Origin::Db => "fetched",
        km3db::Origin::Cache => "cached",
        km3db::Origin::Fallback(_) => "cached, DB unreachable",
    }
}

/// The compass UPI integrated into a CLB: the first `CONTENT_UPI` naming
/// `AHRS` or `LSM303` (spec §3.1 step 1; several → the first, warned).
fn compass_of(service: &DetectorService, clb_upi: &str) -> Result<String, String> {
    let (text, _) = service
        .cached_stream("integration", &[("container_upi", clb_upi)], |t| {
            Table::parse(t, "integration")
                .map(|_| ())
                .map_err(Into::into)
        })
        .map_err(|e| {
            if km3db::clbmap::is_no_data(&e) {
                format!("CLB {clb_upi} has no integration record")
            } else {
                format!("integration of CLB {clb_upi}: {e:#}")
            }
        })?;
    let t = Table::parse(&text, "integration").map_err(|e| e.to_string())?;
    let found: Vec<&str> = (0..t.rows.len())
        .filter_map(|i| t.get(i, "CONTENT_UPI"))
        .filter(|u| u.contains("AHRS") || u.contains("LSM303"))
        .collect();
    if found.len() > 1 {
        tracing::warn!("CLB {clb_upi}: several compasses {found:?}, taking the first");
    }
    found
        .first()
        .map(|s| s.to_string())
        .ok_or_else(|| format!("CLB {clb_upi} has no compass (AHRS/LSM303) integrated"))
}

/// A constants file: the `ahrscalib` columns of spec §3.3 (`ACC_OFFSET_X`
/// … `MAG_ROT_ZZ`, other columns ignored) with a `DOMID` column instead of
/// the compass serial number, one row per DOM; TAB separated like the DB's
/// streams. Places (DU, floor) and base modules come from the detector.
pub fn from_file(path: &Path, det: &Detector) -> anyhow::Result<ConstantSet> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("AHRS constants {name}: {e}"))?;
    let t = Table::parse(&text, &name)?;
    if t.column("DOMID").is_none() {
        anyhow::bail!("{name}: line 1: no DOMID column");
    }
    let mut by_dom: BTreeMap<u32, Constants> = BTreeMap::new();
    for i in 0..t.rows.len() {
        let dom: u32 = t
            .get(i, "DOMID")
            .and_then(|d| d.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("{name}: line {}: DOMID is not a DOM id", i + 2))?;
        let c = Constants::from_row(&t, i)
            .map_err(|e| anyhow::anyhow!("{name}: line {}: {e}", i + 2))?;
        by_dom.insert(dom, c);
    }
    let mut set = ConstantSet {
        source: format!("constants file {name}"),
        ..ConstantSet::default()
    };
    for m in det.modules() {
        if !m.is_optical() {
            set.bases.push(m.dom_id);
            continue;
        }
        let constants = by_dom
            .get(&m.dom_id)
            .copied()
            .ok_or_else(|| format!("not in {name}"));
        set.doms.insert(
            m.dom_id,
            DomEntry {
                du: m.du,
                floor: m.floor,
                constants,
            },
        );
    }
    Ok(set)
}

/// The DB's constants where it has them, the file's elsewhere; either
/// alone when the other is missing. Never fails: a set without any
/// constants says why in `source` and in every DOM's entry.
pub fn load(
    db: Option<&DetectorService>,
    file: Option<&Path>,
    det: Option<&Detector>,
) -> ConstantSet {
    let from_file = file.map(|p| match det {
        Some(d) => from_file(p, d),
        None => Err(anyhow::anyhow!(
            "{}: the constants file needs the detector layout",
            p.display()
        )),
    });
    let from_db = db.map(from_db);
    match (from_db, from_file) {
        (Some(Ok(mut set)), Some(Ok(f))) => {
            let mut filled = 0;
            for (dom, e) in set.doms.iter_mut() {
                if e.constants.is_err() {
                    if let Some(Ok(c)) = f.doms.get(dom).map(|x| &x.constants) {
                        e.constants = Ok(*c);
                        filled += 1;
                    }
                }
            }
            set.source = format!("{}; {filled} DOMs from {}", set.source, f.source);
            set
        }
        (Some(Ok(set)), file) => {
            if let Some(Err(e)) = file {
                tracing::warn!("AHRS: {e:#}");
            }
            set
        }
        (db, Some(Ok(mut f))) => {
            if let Some(Err(e)) = db {
                tracing::warn!("AHRS constants from the DB: {e:#}; using {}", f.source);
                f.source = format!("{} (DB: {e:#})", f.source);
            }
            f
        }
        (db, file) => {
            let mut why = Vec::new();
            if let Some(Err(e)) = db {
                why.push(format!("DB: {e:#}"));
            }
            if let Some(Err(e)) = file {
                why.push(format!("{e:#}"));
            }
            if why.is_empty() {
                why.push("neither a DB nor a constants file configured".into());
            }
            let source = format!("no AHRS constants: {}", why.join("; "));
            tracing::warn!("{source}");
            let mut set = ConstantSet {
                source: source.clone(),
                ..ConstantSet::default()
            };
            if let Some(d) = det {
                for m in d.modules() {
                    if !m.is_optical() {
                        set.bases.push(m.dom_id);
                        continue;
                    }
                    set.doms.insert(
                        m.dom_id,
                        DomEntry {
                            du: m.du,
                            floor: m.floor,
                            constants: Err("no constants source".into()),
                        },
                    );
                }
            }
            set
        }
    }
}
