//! The CLB map (`clbmap.txt`, DB stream `clbmap`): which CLB sits where.
//!
//! Monitoring packets name a CLB by DOM id, the DB names it by UPI, and the
//! plots by (DU, floor); this table joins the three. The base CLB of a DU
//! (floor 0) matters separately: its UPI names the base-module parameters
//! and the AHRS monitor must skip it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// One CLB of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClbRow {
    /// Detector OID, e.g. `D_ORCA003` (empty if the file has no DETOID
    /// column).
    pub det_oid: String,
    pub du: u32,
    /// 0 for the base CLB.
    pub floor: i32,
    pub serial: u32,
    /// CLB product identifier, e.g. `3.4.3.2/V2-2-1/2.267`.
    pub upi: String,
    /// DOM id = CLB id as found in the data and in DETX module lines.
    pub dom_id: u32,
}

impl ClbRow {
    pub fn is_base(&self) -> bool {
        self.floor == 0
    }
}

/// What was wrong in a CLB map; see [`ClbMapError`] for where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClbMapErrorKind {
    #[error("cannot read: {0}")]
    Io(String),
    #[error("not a text file (invalid UTF-8)")]
    NotText,
    #[error("no header line")]
    NoHeader,
    #[error("header has no {0} column")]
    MissingColumn(&'static str),
    #[error("expected {expected} tab-separated fields, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("column {column}: expected {expected}, found \"{text}\"")]
    BadField {
        column: &'static str,
        expected: &'static str,
        text: String,
    },
    #[error("DOM id {dom_id} already listed on line {first_line}")]
    DuplicateDomId { dom_id: u32, first_line: usize },
    #[error("UPI {upi} already listed on line {first_line}")]
    DuplicateUpi { upi: String, first_line: usize },
    #[error("DU {du} floor {floor} already listed on line {first_line}")]
    DuplicateLocation {
        du: u32,
        floor: i32,
        first_line: usize,
    },
}

/// A CLB map reading error with the file and 1-based line (0 = whole file).
#[derive(Debug, Clone, PartialEq)]
pub struct ClbMapError {
    pub file: String,
    pub line: usize,
    pub kind: ClbMapErrorKind,
}

impl fmt::Display for ClbMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.kind)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.kind)
        }
    }
}

impl std::error::Error for ClbMapError {}

/// The CLB map with km3db's three indexes plus `base(du)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClbMap {
    rows: Vec<ClbRow>,
    by_dom: HashMap<u32, usize>,
    by_upi: HashMap<String, usize>,
    by_location: HashMap<(u32, i32), usize>,
}

/// Column positions found in the header.
struct Columns {
    count: usize,
    det_oid: Option<usize>,
    du: usize,
    floor: usize,
    serial: usize,
    upi: usize,
    dom_id: usize,
}

impl Columns {
    fn from_header(header: &str) -> Result<Columns, ClbMapErrorKind> {
        let names: Vec<&str> = header.split('\t').map(str::trim).collect();
        let find = |name: &'static str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let need = |name| find(name).ok_or(ClbMapErrorKind::MissingColumn(name));
        Ok(Columns {
            count: names.len(),
            det_oid: find("DETOID"),
            du: need("DUID")?,
            floor: need("FLOORID")?,
            serial: need("SERIALNUMBER")?,
            upi: need("UPI")?,
            dom_id: need("DOMID")?,
        })
    }

    fn row(&self, line: &str) -> Result<ClbRow, ClbMapErrorKind> {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        if fields.len() != self.count {
            return Err(ClbMapErrorKind::FieldCount {
                expected: self.count,
                found: fields.len(),
            });
        }
        let text = |i: usize| fields.get(i).copied().unwrap_or("");
        fn number<T: std::str::FromStr>(
            text: &str,
            column: &'static str,
        ) -> Result<T, ClbMapErrorKind> {
            text.parse().map_err(|_| ClbMapErrorKind::BadField {
                column,
                expected: "an integer",
                text: text.to_owned(),
            })
        }
        let upi = text(self.upi);
        if upi.is_empty() {
            return Err(ClbMapErrorKind::BadField {
                column: "UPI",
                expected: "a product identifier",
                text: String::new(),
            });
        }
        Ok(ClbRow {
            det_oid: self.det_oid.map(text).unwrap_or("").to_owned(),
            du: number(text(self.du), "DUID")?,
            floor: number(text(self.floor), "FLOORID")?,
            serial: number(text(self.serial), "SERIALNUMBER")?,
            upi: upi.to_owned(),
            dom_id: number(text(self.dom_id), "DOMID")?,
        })
    }
}

impl ClbMap {
    pub fn from_file(path: impl AsRef<Path>) -> Result<ClbMap, ClbMapError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let error = |line, kind| ClbMapError {
            file: file.clone(),
            line,
            kind,
        };
        let bytes =
            std::fs::read(path).map_err(|e| error(0, ClbMapErrorKind::Io(e.to_string())))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            error(line, ClbMapErrorKind::NotText)
        })?;
        ClbMap::parse(text, &file)
    }

    /// Parses the tab-separated table; columns are found by header name.
    pub fn parse(text: &str, source_name: &str) -> Result<ClbMap, ClbMapError> {
        let error = |line, kind| ClbMapError {
            file: source_name.to_owned(),
            line,
            kind,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, line)| (i + 1, line))
            .filter(|(_, line)| !line.trim().is_empty());
        let (header_line, header) = lines
            .next()
            .ok_or_else(|| error(0, ClbMapErrorKind::NoHeader))?;
        let columns = Columns::from_header(header).map_err(|kind| error(header_line, kind))?;
        let mut map = ClbMap::default();
        let mut first_lines: Vec<usize> = Vec::new();
        for (number, line) in lines {
            let row = columns.row(line).map_err(|kind| error(number, kind))?;
            let index = map.rows.len();
            if let Some(&i) = map.by_dom.get(&row.dom_id) {
                return Err(error(
                    number,
                    ClbMapErrorKind::DuplicateDomId {
                        dom_id: row.dom_id,
                        first_line: first_lines[i],
                    },
                ));
            }
            if let Some(&i) = map.by_upi.get(&row.upi) {
                return Err(error(
                    number,
                    ClbMapErrorKind::DuplicateUpi {
                        upi: row.upi,
                        first_line: first_lines[i],
                    },
                ));
            }
            if let Some(&i) = map.by_location.get(&(row.du, row.floor)) {
                return Err(error(
                    number,
                    ClbMapErrorKind::DuplicateLocation {
                        du: row.du,
                        floor: row.floor,
                        first_line: first_lines[i],
                    },
                ));
            }
            map.by_dom.insert(row.dom_id, index);
            map.by_upi.insert(row.upi.clone(), index);
            map.by_location.insert((row.du, row.floor), index);
            map.rows.push(row);
            first_lines.push(number);
        }
        Ok(map)
    }

    /// Rows in file order (the DB does not sort them).
    pub fn rows(&self) -> &[ClbRow] {
        &self.rows
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn by_dom_id(&self, dom_id: u32) -> Option<&ClbRow> {
        self.by_dom.get(&dom_id).map(|&i| &self.rows[i])
    }

    pub fn by_upi(&self, upi: &str) -> Option<&ClbRow> {
        self.by_upi.get(upi).map(|&i| &self.rows[i])
    }

    pub fn at(&self, du: u32, floor: i32) -> Option<&ClbRow> {
        self.by_location.get(&(du, floor)).map(|&i| &self.rows[i])
    }

    /// The base CLB of a DU (floor 0).
    pub fn base(&self, du: u32) -> Option<&ClbRow> {
        self.at(du, 0)
    }

    /// DU numbers, ascending.
    pub fn dus(&self) -> Vec<u32> {
        let mut dus: Vec<u32> = self.rows.iter().map(|r| r.du).collect();
        dus.sort_unstable();
        dus.dedup();
        dus
    }
}
