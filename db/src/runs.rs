//! Rows of the run table and the calibration set ids of a run (spec §1.4
//! rows 3 and 5).

use serde_json::Value;

use crate::error::DbError;
use crate::tsv::Table;

/// The calibration set ids a DETX is requested with; "0" = none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CalibIds {
    pub tcal: String,
    pub pcal: String,
    pub rcal: String,
    /// Acoustic t0, compass, status (RunCalibration API only).
    pub extra: Vec<(&'static str, String)>,
}

impl Default for CalibIds {
    fn default() -> Self {
        CalibIds {
            tcal: "0".into(),
            pcal: "0".into(),
            rcal: "0".into(),
            extra: Vec::new(),
        }
    }
}

impl CalibIds {
    pub fn new(t: Option<&str>, p: Option<&str>, r: Option<&str>) -> CalibIds {
        let id = |v: Option<&str>| {
            v.filter(|s| !s.trim().is_empty())
                .unwrap_or("0")
                .trim()
                .to_string()
        };
        CalibIds {
            tcal: id(t),
            pcal: id(p),
            rcal: id(r),
            extra: Vec::new(),
        }
    }

    /// `tcal=…&pcal=…&rcal=…[&acal=…]`.
    pub fn query(&self) -> String {
        let mut q = format!("tcal={}&pcal={}&rcal={}", self.tcal, self.pcal, self.rcal);
        for (k, v) in &self.extra {
            q.push_str(&format!("&{k}={v}"));
        }
        q
    }

    /// A file-name-safe key for the cache.
    pub fn key(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let mut k = format!(
            "t{}_p{}_r{}",
            clean(&self.tcal),
            clean(&self.pcal),
            clean(&self.rcal)
        );
        for (n, v) in &self.extra {
            k.push_str(&format!("_{n}{}", clean(v)));
        }
        k
    }

    /// From the `Data` of `RunCalibration` (CalibrationType → parameter).
    pub fn from_run_calibration(data: &[Value]) -> CalibIds {
        let mut ids = CalibIds::default();
        for d in data {
            let ty = d
                .get("CalibrationType")
                .and_then(Value::as_str)
                .unwrap_or("");
            let id = match d.get("CalibrationId") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            match ty {
                "PMT_T0_CALIBRATION" => ids.tcal = id,
                "DOM_POSITION_CALIBRATION" => ids.pcal = id,
                "DOM_ROTATION_CALIBRATION" => ids.rcal = id,
                "ACOUSTIC_T0_CALIBRATION" => ids.extra.push(("acal", id)),
                "COMPASS_CALIBRATION" => ids.extra.push(("ccal", id)),
                "STATUS_CALIBRATION" => ids.extra.push(("scal", id)),
                _ => {}
            }
        }
        ids.extra.sort();
        ids
    }
}

/// One row of `streamds/runs.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub run: i32,
    /// Start time, Unix ms.
    pub unix_start_ms: Option<i64>,
    pub start_defined: Option<bool>,
    pub runsetup_id: Option<String>,
    pub runsetup_name: Option<String>,
    pub t0_calibsetid: Option<String>,
    pub pos_calibsetid: Option<String>,
    pub rot_calibsetid: Option<String>,
    /// Whether the table has the calibration columns at all (older
    /// servers: only T0; newer: use the RunCalibration API instead).
    pub has_calib_columns: bool,
}

impl RunRow {
    pub fn from_table(t: &Table) -> Result<Vec<RunRow>, DbError> {
        if t.column("RUN").is_none() {
            return Err(DbError::Parse {
                what: "runs".into(),
                msg: format!("no RUN column in {:?}", t.columns),
            });
        }
        let has = t.column("T0_CALIBSETID").is_some()
            || t.column("POS_CALIBSETID").is_some()
            || t.column("ROT_CALIBSETID").is_some();
        (0..t.rows.len())
            .map(|i| {
                let s = |c: &str| t.get(i, c).map(str::to_string);
                let run = t
                    .get(i, "RUN")
                    .and_then(|r| r.parse::<i32>().ok())
                    .ok_or_else(|| DbError::Parse {
                        what: "runs".into(),
                        msg: format!(
                            "line {}: RUN {:?} is not a run number",
                            i + 2,
                            t.get(i, "RUN")
                        ),
                    })?;
                Ok(RunRow {
                    run,
                    unix_start_ms: t.get(i, "UNIXSTARTTIME").and_then(|v| v.parse().ok()),
                    start_defined: t.get(i, "STARTTIME_DEFINED").map(|v| v == "Y"),
                    runsetup_id: s("RUNSETUPID"),
                    runsetup_name: s("RUNSETUPNAME"),
                    t0_calibsetid: s("T0_CALIBSETID"),
                    pos_calibsetid: s("POS_CALIBSETID"),
                    rot_calibsetid: s("ROT_CALIBSETID"),
                    has_calib_columns: has,
                })
            })
            .collect()
    }

    /// The ids of the 2021 lookup (empty → 0).
    pub fn calib_ids(&self) -> CalibIds {
        CalibIds::new(
            self.t0_calibsetid.as_deref(),
            self.pos_calibsetid.as_deref(),
            self.rot_calibsetid.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_rows_and_ids() {
        let t = Table::parse(
            "RUN\tUNIXSTARTTIME\tSTARTTIME_DEFINED\tRUNSETUPID\tRUNSETUPNAME\tT0_CALIBSETID\tPOS_CALIBSETID\tROT_CALIBSETID\n\
             6760\t1574432800000\tY\tA01\tphys\tA02181836\t\t\n",
            "runs",
        )
        .unwrap();
        let rows = RunRow::from_table(&t).unwrap();
        assert_eq!(rows[0].run, 6760);
        assert_eq!(rows[0].calib_ids().query(), "tcal=A02181836&pcal=0&rcal=0");
    }

    #[test]
    fn run_calibration_api() {
        let ids = CalibIds::from_run_calibration(&[
            json!({"CalibrationType": "PMT_T0_CALIBRATION", "CalibrationId": "T1"}),
            json!({"CalibrationType": "DOM_POSITION_CALIBRATION", "CalibrationId": "P1"}),
            json!({"CalibrationType": "COMPASS_CALIBRATION", "CalibrationId": 7}),
        ]);
        assert_eq!(ids.query(), "tcal=T1&pcal=P1&rcal=0&ccal=7");
        assert_eq!(ids.key(), "tT1_pP1_r0_ccal7");
    }
}
