//! What the stand-in serves: the km3net-testdata samples (read at start
//! from `KM3MON_TESTDATA`, never copied into the repository) and generated
//! detector and run tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use daq::detector::Detector;

/// One detector of the stand-in.
#[derive(Debug, Clone)]
pub struct DetectorSpec {
    pub serial: i32,
    /// Synthetic OIDs except `D_ORCA006` (49), which the samples name.
    pub oid: String,
    /// The DETX served for every calibration set (t0s shifted per floor per
    /// [`Options::t0_shifts`](crate::Options)).
    pub detx: PathBuf,
    pub runs: Vec<RunSpec>,
}

/// One row of the generated run table.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub run: i32,
    pub unix_start_ms: i64,
    pub t0: Option<String>,
    pub pos: Option<String>,
    pub rot: Option<String>,
}

/// The testdata folder: `KM3MON_TESTDATA`.
pub fn testdata_dir() -> Option<PathBuf> {
    std::env::var_os("KM3MON_TESTDATA").map(PathBuf::from)
}

/// `streamds_output.txt` of km3net-testdata: under the testdata folder
/// (`db/` or `detx/`), else in the installed Python package
/// (`KM3MON_PYTHON`'s `km3net_testdata`).
pub fn find_db_sample(testdata: Option<&Path>, name: &str) -> Option<PathBuf> {
    if let Some(d) = testdata {
        for sub in ["db", "detx", "."] {
            let p = d.join(sub).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let python = std::env::var("KM3MON_PYTHON").ok()?;
    let out = std::process::Command::new(python)
        .args([
            "-c",
            &format!("import km3net_testdata as k; print(k.data_path('db/{name}'))"),
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.is_file().then_some(p)
}

/// Detectors 44 (`detx_v4.detx`, the DAQ samples' detector) and 49
/// (`detx_v5.detx`, D_ORCA006), each with runs around the samples' run
/// 6760, all with the calibration sets `T0_A`, `POS_A`, `ROT_A`.
pub fn default_detectors(testdata: &Path) -> Vec<DetectorSpec> {
    let runs = |first: i32| -> Vec<RunSpec> {
        (first..first + 10)
            .map(|run| RunSpec {
                run,
                unix_start_ms: 1_574_400_000_000 + i64::from(run - first) * 3_600_000,
                t0: Some("T0_A".into()),
                pos: Some("POS_A".into()),
                rot: Some("ROT_A".into()),
            })
            .collect()
    };
    vec![
        DetectorSpec {
            serial: 44,
            oid: "D_DET044".into(),
            detx: testdata.join("detx/detx_v4.detx"),
            runs: runs(6755),
        },
        DetectorSpec {
            serial: 49,
            oid: "D_ORCA006".into(),
            detx: testdata.join("detx/detx_v5.detx"),
            runs: runs(8215),
        },
    ]
}

pub fn detectors_tsv(dets: &[DetectorSpec]) -> String {
    let mut s = String::from("OID\tSERIALNUMBER\tLOCATIONID\tCITY\tFIRSTRUN\tLASTRUN\n");
    for d in dets {
        let first = d.runs.first().map_or(String::new(), |r| r.run.to_string());
        let last = d.runs.last().map_or(String::new(), |r| r.run.to_string());
        s.push_str(&format!(
            "{}\t{}\tA00070004\tTest site\t{first}\t{last}\n",
            d.oid, d.serial
        ));
    }
    s
}

/// The run table, ascending; `with_calib`: with the calibration-set
/// columns of 2021 (else without, so that clients must use the
/// RunCalibration API).
pub fn runs_tsv(d: &DetectorSpec, run: Option<i32>, with_calib: bool) -> String {
    let mut s = String::from("RUN\tUNIXSTARTTIME\tSTARTTIME_DEFINED\tRUNSETUPID\tRUNSETUPNAME");
    if with_calib {
        s.push_str("\tT0_CALIBSETID\tPOS_CALIBSETID\tROT_CALIBSETID");
    }
    s.push('\n');
    for r in d.runs.iter().filter(|r| run.is_none_or(|x| x == r.run)) {
        let f = |v: &Option<String>| v.clone().unwrap_or_default();
        s.push_str(&format!(
            "{}\t{}\tY\tA01466417\tPHYS.1710v5-TUNED.HRV19.3D_T",
            r.run, r.unix_start_ms
        ));
        if with_calib {
            s.push_str(&format!("\t{}\t{}\t{}", f(&r.t0), f(&r.pos), f(&r.rot)));
        }
        s.push('\n');
    }
    s
}

/// The DETX for a calibration set: the detector's file with the PMT t0s
/// of floor f shifted by f × `shift` ns (0: the file as it is). Not a
/// uniform shift, which would leave relative hit times (the z-t plot) alike.
pub fn detx_text(d: &DetectorSpec, shift: f64) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&d.detx)
        .map_err(|e| anyhow::anyhow!("{}: {e}", d.detx.display()))?;
    if shift == 0.0 {
        return Ok(text);
    }
    let det = Detector::parse(&text, &d.detx.display().to_string())?;
    let modules = det
        .modules()
        .iter()
        .cloned()
        .map(|mut m| {
            for p in &mut m.pmts {
                p.t0 += shift * f64::from(m.floor);
            }
            m
        })
        .collect();
    let shifted = Detector::new(det.det_id(), det.version(), modules)?
        .with_validity(det.validity())
        .with_utm(det.utm().cloned())
        .with_comments(det.comments().to_vec());
    Ok(shifted.to_detx_string(det.version())?)
}

/// API v2 envelope of `RunCalibration` for one run.
pub fn run_calibration_json(r: Option<&RunSpec>) -> serde_json::Value {
    let mut data = Vec::new();
    if let Some(r) = r {
        for (ty, id) in [
            ("PMT_T0_CALIBRATION", &r.t0),
            ("DOM_POSITION_CALIBRATION", &r.pos),
            ("DOM_ROTATION_CALIBRATION", &r.rot),
        ] {
            if let Some(id) = id {
                data.push(serde_json::json!({
                    "Run": r.run, "CalibrationType": ty, "CalibrationId": id, "Ranking": 1
                }));
            }
        }
    }
    serde_json::json!({
        "APIVersion": "2.0.0", "DataType": "RunCalibration", "Encoding": "NativeJSON",
        "Start": "", "End": "",
        "Error": {"Code": "OK", "Message": "", "Arguments": []},
        "Data": data
    })
}

/// Keeps the rows of a sample stream whose column `col` equals `value`.
pub fn filter_tsv(text: &str, col: &str, value: &str) -> String {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return String::new();
    };
    let Some(i) = header.split('\t').position(|c| c.eq_ignore_ascii_case(col)) else {
        return text.to_string();
    };
    let rows: Vec<&str> = lines
        .filter(|l| l.split('\t').nth(i) == Some(value))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    // The sample lacks its last newline; so does the filtered answer.
    format!("{header}\n{}", rows.join("\n"))
}

pub type Shifts = HashMap<String, f64>;

/// The CLB UPI of CLB serial `serial` (the samples' product code).
pub fn clb_upi(serial: u32) -> String {
    format!("3.4.3.2/V2-2-1/2.{serial}")
}

/// The compass UPI of compass serial `serial` (the `ahrscalib` stream's
/// `SERIALNUMBER` is the last `.`-field of it, spec §3.3).
pub fn compass_upi(serial: &str) -> String {
    format!("3.4.3.4/AHRS/1.{serial}")
}

/// The CLB map of a generated detector, from its DETX: one CLB per
/// module in file order, serial numbers 1000, 1001, …, so the CLB map,
/// the DETX and the data agree on every DOM id.
pub fn clbmap_tsv(d: &DetectorSpec) -> anyhow::Result<String> {
    let det =
        Detector::from_file(&d.detx).map_err(|e| anyhow::anyhow!("{}: {e}", d.detx.display()))?;
    let mut s = String::from("DETOID\tDUID\tFLOORID\tSERIALNUMBER\tUPI\tDOMID");
    for (i, m) in det.modules().iter().enumerate() {
        let serial = 1000 + i as u32;
        s.push_str(&format!(
            "\n{}\t{}\t{}\t{serial}\t{}\t{}",
            d.oid,
            m.du,
            m.floor,
            clb_upi(serial),
            m.dom_id
        ));
    }
    // Like the sample: no final newline.
    Ok(s)
}

/// Serial numbers of the compasses whose latest `ahrscalib` row
/// (`REVTIMEORDER` 1) has every calibration field, in file order.
pub fn complete_compasses(ahrscalib: &str) -> Vec<String> {
    let mut lines = ahrscalib.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split('\t').collect();
    let at = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(serial), Some(rev)) = (at("SERIALNUMBER"), at("REVTIMEORDER")) else {
        return Vec::new();
    };
    let needed: Vec<usize> = cols
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.starts_with("ACC_OFFSET") || c.starts_with("ACC_ROT") || c.starts_with("MAG_")
        })
        .filter(|(_, c)| **c != "MAG_DECL")
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split('\t').collect();
        if f.get(rev) == Some(&"1")
            && needed
                .iter()
                .all(|&i| f.get(i).is_some_and(|v| !v.is_empty()))
        {
            if let Some(s) = f.get(serial) {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// The `integration` rows of a CLB (`container_upi=…`): its compass, if
/// it has one, and a part that is not a compass (clients must pick).
pub fn integration_tsv(clb: &str, compass: Option<&str>) -> String {
    let mut s = String::from("CONTAINER_UPI\tCONTENT_UPI\tPOSITION\n");
    s.push_str(&format!(
        "{clb}\t3.4.2.3/PWB/1.{}\t1\n",
        clb.rsplit('.').next().unwrap_or("0")
    ));
    if let Some(c) = compass {
        s.push_str(&format!("{clb}\t{c}\t0\n"));
    }
    s
}

/// The White Rabbit values the Detector Manager stand-in reports (ps):
/// `wr_mu` = 1.2 µs + 40 ns × DU, the four delays 3.0, 4.5, 3.2, 4.1 ns.
pub fn wr_nominal(du: u32, parameter: &str) -> Option<f64> {
    Some(match parameter {
        "wr_mu" => 1_200_000.0 + 40_000.0 * f64::from(du),
        "wr_delta[0]" => 3_000.0,
        "wr_delta[1]" => 4_500.0,
        "wr_delta[2]" => 3_200.0,
        "wr_delta[3]" => 4_100.0,
        _ => return None,
    })
}

/// `datalognumbers` of one parameter of the base CLBs (`source_name` =
/// a base CLB's UPI, or all of them): a value every 10 min over the 24 h
/// before `now_ms`, with a few ps of deterministic scatter. The run range
/// is not looked at (the stand-in's runs are of 2019).
pub fn datalognumbers_tsv(
    d: &DetectorSpec,
    parameter: &str,
    source: Option<&str>,
    now_ms: i64,
) -> anyhow::Result<String> {
    let Some(_) = wr_nominal(0, parameter) else {
        return Ok(String::new());
    };
    let det =
        Detector::from_file(&d.detx).map_err(|e| anyhow::anyhow!("{}: {e}", d.detx.display()))?;
    let mut s = String::from("RUN\tUNIXTIME\tSOURCE_NAME\tPARAMETER_NAME\tDATA_VALUE\n");
    let mut rows = 0;
    for (i, m) in det.modules().iter().enumerate() {
        let upi = clb_upi(1000 + i as u32);
        if m.floor != 0 || source.is_some_and(|x| x != upi) {
            continue;
        }
        let base = wr_nominal(m.du, parameter).unwrap_or_default();
        for k in 0..144i64 {
            // On the 10-min grid: every parameter's answer has the same times.
            let t = now_ms / 600_000 * 600_000 - (144 - k) * 600_000;
            let noise = if parameter == "wr_mu" {
                ((k * 7919) % 7) as f64 - 3.0
            } else {
                0.0
            };
            s.push_str(&format!(
                "{}\t{t}\t{upi}\t{parameter}\t{}\n",
                d.runs.last().map_or(0, |r| r.run),
                base + noise
            ));
            rows += 1;
        }
    }
    Ok(if rows == 0 { String::new() } else { s })
}

/// The beacon (emitter) ids of the stand-in's acoustic beacons.
pub const BEACONS: [i32; 3] = [11, 12, 13];

/// Seconds between two pings of a beacon's pulse train.
pub const PING_PERIOD_S: f64 = 5.048_729_896_545_41;

/// How many pings of `beacon` (index 0–2) a DOM at `floor` hears per train:
/// 11 for most, 5 (a weak one) when `(floor + beacon) % 7 == 3`, 2 when it
/// is `% 11 == 5` — so the matrix shows every colour.
pub fn pings_heard(floor: i32, beacon: usize) -> usize {
    let k = floor + beacon as i32;
    if k % 11 == 5 {
        2
    } else if k % 7 == 3 {
        5
    } else {
        11
    }
}

/// `toashort` of runs `minrun..=maxrun` (all DOMs, or `domid=` one): every
/// 600 s (on the Unix-time grid) a train of pings of each beacon (beacon b
/// starts 200·b s after the grid point, QF 60–80), and per DOM and train
/// 3 noise entries (QF 5–15). Time span: from the start of `minrun` to the
/// start of the run after `maxrun` (or one hour after its start). The DOMs
/// of `silent_du` hear nothing (a fault).
pub fn toashort_tsv(
    d: &DetectorSpec,
    minrun: i32,
    maxrun: i32,
    dom: Option<u32>,
    silent_du: Option<u32>,
) -> anyhow::Result<String> {
    let start = d.runs.iter().find(|r| r.run >= minrun);
    let next = d.runs.iter().find(|r| r.run > maxrun);
    let (Some(start), Some(last)) = (start, d.runs.iter().rev().find(|r| r.run <= maxrun)) else {
        return Ok(String::new());
    };
    let from_s = start.unix_start_ms.div_euclid(1000);
    let to_s = next.map_or(last.unix_start_ms / 1000 + 3600, |r| r.unix_start_ms / 1000);
    let det =
        Detector::from_file(&d.detx).map_err(|e| anyhow::anyhow!("{}: {e}", d.detx.display()))?;
    let mut s = String::from("RUN\tDOMID\tEMITTERID\tQUALITYFACTOR\tUNIXTIMEBASE\tTOA_S\n");
    let mut rows = 0;
    let run_of = |t: i64| {
        d.runs
            .iter()
            .rev()
            .find(|r| r.unix_start_ms / 1000 <= t)
            .map_or(minrun, |r| r.run)
    };
    let mut push = |s: &mut String, id: u32, e: i32, qf: f64, t: f64| {
        let base = t.floor();
        s.push_str(&format!(
            "{}\t{id}\t{e}\t{qf:.2}\t{base:.0}\t{:.6}\n",
            run_of(base as i64),
            t - base
        ));
        rows += 1;
    };
    for m in det.modules() {
        if dom.is_some_and(|x| x != m.dom_id) || silent_du == Some(m.du) {
            continue;
        }
        let mut train = from_s.div_euclid(600) * 600;
        while train < to_s {
            for (b, &e) in BEACONS.iter().enumerate() {
                let t0 = train as f64 + 200.0 * b as f64 + 1.0 + f64::from(m.floor) * 0.01;
                for k in 0..pings_heard(m.floor, b) {
                    let t = t0 + k as f64 * PING_PERIOD_S;
                    if t >= from_s as f64 && t < to_s as f64 {
                        let qf = 80.0 - k as f64 * 2.0 + f64::from(m.du % 3);
                        push(&mut s, m.dom_id, e, qf, t);
                    }
                }
                // Noise 300 s after the train (outside its ±80 s signal window).
                let t = train as f64 + 200.0 * b as f64 + 300.0 + f64::from(m.du % 5);
                if t >= from_s as f64 && t < to_s as f64 {
                    push(&mut s, m.dom_id, e, 5.0 + f64::from(m.floor % 10), t);
                }
            }
            train += 600;
        }
    }
    Ok(if rows == 0 { String::new() } else { s })
}
