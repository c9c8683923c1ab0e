//! The stream service's TSV (spec integrations.md §1.3 "TSV rules"): a
//! header of upper-case column names, one record per line, single TABs,
//! no quoting, an empty field = a missing value, the last newline
//! optional. A body starting with `ERROR` is the server's error message,
//! an empty body means "no data".

use serde_json::{Map, Value};

use crate::error::{clip, DbError};

/// A parsed stream: column names as sent, rows of optional fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// `what` names the query in error messages.
    pub fn parse(text: &str, what: &str) -> Result<Table, DbError> {
        if text.trim().is_empty() {
            return Err(DbError::NoData(what.to_string()));
        }
        if text.starts_with("ERROR") {
            return Err(DbError::Server {
                url: what.to_string(),
                msg: clip(text),
            });
        }
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let header = lines.next().unwrap_or_default();
        let columns: Vec<String> = header.split('\t').map(|c| c.trim().to_string()).collect();
        if columns.iter().any(String::is_empty) {
            return Err(DbError::Parse {
                what: what.to_string(),
                msg: format!("line 1: empty column name in header {:?}", clip(header)),
            });
        }
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            // Only the very last line may be empty (the final newline).
            if line.is_empty() {
                continue;
            }
            let fields: Vec<Option<String>> = line
                .split('\t')
                .map(|f| (!f.is_empty()).then(|| f.to_string()))
                .collect();
            if fields.len() != columns.len() {
                return Err(DbError::Parse {
                    what: what.to_string(),
                    msg: format!(
                        "line {}: {} fields, the header has {} columns",
                        i + 2,
                        fields.len(),
                        columns.len()
                    ),
                });
            }
            rows.push(fields);
        }
        Ok(Table { columns, rows })
    }

    /// Index of a column, case-insensitive.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    }

    /// Field `name` of row `row`; `None` if missing or empty.
    pub fn get(&self, row: usize, name: &str) -> Option<&str> {
        let c = self.column(name)?;
        self.rows.get(row)?.get(c)?.as_deref()
    }

    /// km3db's "nt" typing: int, else float, else string; lower-case keys;
    /// missing = null. `PROMISID` stays a string (hex ids like `0052E3`).
    pub fn to_json(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|r| {
                let mut m = Map::new();
                for (c, f) in self.columns.iter().zip(r) {
                    let v = match f {
                        None => Value::Null,
                        Some(s) if c.eq_ignore_ascii_case("PROMISID") => Value::String(s.clone()),
                        Some(s) => typed(s),
                    };
                    m.insert(c.to_ascii_lowercase(), v);
                }
                Value::Object(m)
            })
            .collect()
    }
}

fn typed(s: &str) -> Value {
    if let Ok(i) = s.parse::<i64>() {
        return Value::from(i);
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => Value::from(f),
        _ => Value::String(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_last_newline_and_empty_fields() {
        let t = Table::parse("RUN\tT0_CALIBSETID\tNAME\n1\t\tx\n2\tA01\t", "runs").unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.get(0, "t0_calibsetid"), None);
        assert_eq!(t.get(1, "T0_CALIBSETID"), Some("A01"));
        assert_eq!(t.get(1, "NAME"), None);
        let j = t.to_json();
        assert_eq!(j[0]["run"], Value::from(1));
        assert_eq!(j[0]["t0_calibsetid"], Value::Null);
    }

    #[test]
    fn crlf_and_final_newline() {
        let t = Table::parse("A\tB\r\n1.5\tx\r\n", "s").unwrap();
        assert_eq!(t.rows, vec![vec![Some("1.5".into()), Some("x".into())]]);
        assert_eq!(t.to_json()[0]["a"], Value::from(1.5));
    }

    #[test]
    fn errors() {
        assert!(matches!(Table::parse("", "s"), Err(DbError::NoData(_))));
        assert!(matches!(Table::parse("\n", "s"), Err(DbError::NoData(_))));
        assert!(matches!(
            Table::parse("ERROR: no such stream", "s"),
            Err(DbError::Server { .. })
        ));
        let e = Table::parse("A\tB\n1\t2\t3\n", "s").unwrap_err();
        assert!(e.to_string().contains("line 2: 3 fields"), "{e}");
    }

    #[test]
    fn promis_id_stays_text() {
        let t = Table::parse("PROMISID\tN\n0052E3\t007\n", "s").unwrap();
        let j = t.to_json();
        assert_eq!(j[0]["promisid"], Value::from("0052E3"));
        assert_eq!(j[0]["n"], Value::from(7));
    }

    #[test]
    fn km3net_testdata_samples() {
        let Some(dir) = std::env::var_os("KM3MON_TESTDATA") else {
            eprintln!("KM3MON_TESTDATA not set: skipped");
            return;
        };
        let clb = std::fs::read_to_string(std::path::Path::new(&dir).join("detx/clbmap.txt"))
            .expect("clbmap.txt");
        assert!(!clb.ends_with('\n'), "the sample lacks the final newline");
        let t = Table::parse(&clb, "clbmap").unwrap();
        assert_eq!(
            t.columns,
            ["DETOID", "DUID", "FLOORID", "SERIALNUMBER", "UPI", "DOMID"]
        );
        let last = t.rows.len() - 1;
        assert_eq!(t.get(last, "DOMID"), Some("808981523"));
    }
}
