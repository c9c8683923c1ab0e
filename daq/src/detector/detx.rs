//! DETX reader, versions 1–5 (layout in `spec/detector-files.md`).
//!
//! Real files are messier than the format: comments between records,
//! blank lines, `+` signs, `v`/`V` version tokens, Jpp command lines whose
//! quoted arguments spill over several lines, and generated files with every
//! floor set to −1. The reader accepts all of these and rejects anything
//! else with the line and field at fault, never panicking and never sizing
//! an allocation by a count it has not verified.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use super::error::{DetxError, DetxErrorKind as Kind, Record};
use super::model::{pmt_centre, Detector, Module, Pmt, UtmReference, Validity};

impl Detector {
    /// Reads a DETX file; errors name the file as the path was given.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Detector, DetxError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|e| DetxError::new(&name, 0, Kind::Io(e.to_string())))?;
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let line = 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            DetxError::new(&name, line, Kind::NotText)
        })?;
        Detector::parse(text, &name)
    }

    /// Parses DETX text; `source_name` is what errors call the input.
    pub fn parse(text: &str, source_name: &str) -> Result<Detector, DetxError> {
        Parser {
            file: source_name,
            lines: DataLines::new(text),
        }
        .run()
    }
}

/// Yields the data lines of a DETX, collecting the comments on the way.
struct DataLines<'a> {
    inner: std::iter::Enumerate<std::str::Lines<'a>>,
    comments: Vec<String>,
    /// Line that opened the multi-line comment we are inside, if any.
    open_comment: Option<usize>,
    last_line: usize,
}

/// Jpp writes a `# command …` line whose quoted argument may contain line
/// breaks; such a comment is recognised by an odd quote — exactly one `"`
/// on the line — and runs to the next line with exactly one `"`.
fn has_single_quote(line: &str) -> bool {
    line.bytes().filter(|&b| b == b'"').count() == 1
}

impl<'a> DataLines<'a> {
    fn new(text: &'a str) -> DataLines<'a> {
        DataLines {
            inner: text.lines().enumerate(),
            comments: Vec::new(),
            open_comment: None,
            last_line: 0,
        }
    }

    /// The next line that is neither blank nor comment, with its 1-based
    /// number.
    fn next_data(&mut self) -> Option<(usize, &'a str)> {
        for (index, raw) in self.inner.by_ref() {
            let number = index + 1;
            self.last_line = number;
            let line = raw.trim();
            if self.open_comment.is_some() {
                if let Some(text) = self.comments.last_mut() {
                    text.push('\n');
                    text.push_str(line);
                }
                if has_single_quote(line) {
                    self.open_comment = None;
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            if let Some(text) = line.strip_prefix('#') {
                self.comments
                    .push(text.strip_prefix(' ').unwrap_or(text).to_owned());
                if has_single_quote(line) {
                    self.open_comment = Some(number);
                }
                continue;
            }
            return Some((number, line));
        }
        None
    }
}

/// The most fields any DETX record has (v5 module line).
const MAX_FIELDS: usize = 13;

/// The whitespace-separated fields of one record line.
struct Fields<'a> {
    file: &'a str,
    line: usize,
    record: Record,
    tokens: [&'a str; MAX_FIELDS],
    /// Number of fields on the line (may exceed `MAX_FIELDS`).
    count: usize,
}

impl<'a> Fields<'a> {
    fn new(file: &'a str, line: usize, text: &'a str, record: Record) -> Fields<'a> {
        let mut tokens = [""; MAX_FIELDS];
        let mut count = 0;
        for token in text.split_whitespace() {
            if let Some(slot) = tokens.get_mut(count) {
                *slot = token;
            }
            count += 1;
        }
        Fields {
            file,
            line,
            record,
            tokens,
            count,
        }
    }

    fn error(&self, kind: Kind) -> DetxError {
        DetxError::new(self.file, self.line, kind)
    }

    fn expect(&self, expected: usize) -> Result<(), DetxError> {
        if self.count == expected {
            Ok(())
        } else {
            Err(self.error(Kind::FieldCount {
                record: self.record,
                expected,
                found: self.count,
            }))
        }
    }

    fn token(&self, index: usize) -> &'a str {
        self.tokens.get(index).copied().unwrap_or("")
    }

    fn bad(&self, index: usize, name: &'static str, expected: &'static str) -> DetxError {
        self.error(Kind::BadField {
            record: self.record,
            index: index + 1,
            name,
            expected,
            text: self.token(index).to_owned(),
        })
    }

    /// Integer field; Jpp's explicit `+` signs are accepted by `FromStr`.
    fn int<T: FromStr>(&self, index: usize, name: &'static str) -> Result<T, DetxError> {
        self.token(index).parse().map_err(|_| {
            let expected = if T::from_str("-1").is_ok() {
                "an integer"
            } else {
                "a non-negative integer"
            };
            self.bad(index, name, expected)
        })
    }

    /// Finite float field (`inf`/`nan` would poison every calibration).
    fn float(&self, index: usize, name: &'static str) -> Result<f64, DetxError> {
        match self.token(index).parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(value),
            _ => Err(self.bad(index, name, "a finite number")),
        }
    }

    fn vec3(&self, first: usize, names: [&'static str; 3]) -> Result<[f64; 3], DetxError> {
        Ok([
            self.float(first, names[0])?,
            self.float(first + 1, names[1])?,
            self.float(first + 2, names[2])?,
        ])
    }
}

/// Fields of a module line before `n_pmts` for each version.
fn module_arity(version: u32) -> usize {
    match version {
        1..=3 => 4,
        4 => 12,
        _ => 13,
    }
}

/// PMT lines gained a status column in v3.
fn pmt_arity(version: u32) -> usize {
    if version <= 2 {
        8
    } else {
        9
    }
}

struct Parser<'a> {
    file: &'a str,
    lines: DataLines<'a>,
}

struct Header {
    det_id: i32,
    version: u32,
    validity: Option<Validity>,
    utm: Option<UtmReference>,
    n_modules: usize,
}

impl<'a> Parser<'a> {
    /// An end-of-file error at the last line, blaming an unterminated
    /// multi-line comment when one swallowed the rest of the file.
    fn eof(&self, kind: Kind) -> DetxError {
        let kind = match self.lines.open_comment {
            Some(opened_at) => Kind::UnterminatedComment {
                opened_at,
                inner: Box::new(kind),
            },
            None => kind,
        };
        DetxError::new(self.file, self.lines.last_line, kind)
    }

    fn next_fields(&mut self, record: Record) -> Result<Fields<'a>, DetxError> {
        match self.lines.next_data() {
            Some((number, text)) => Ok(Fields::new(self.file, number, text, record)),
            None => Err(self.eof(Kind::UnexpectedEof(record))),
        }
    }

    fn run(mut self) -> Result<Detector, DetxError> {
        let header = self.header()?;
        let version = header.version;
        let mut modules: Vec<Module> = Vec::new();
        let mut first_line: HashMap<u32, usize> = HashMap::new();
        for found in 0..header.n_modules {
            let Some((number, text)) = self.lines.next_data() else {
                return Err(self.eof(Kind::TooFewModules {
                    announced: header.n_modules,
                    found,
                }));
            };
            let fields = Fields::new(self.file, number, text, Record::Module);
            let module = self.module(&fields, version)?;
            if let Some(&first_line) = first_line.get(&module.dom_id) {
                return Err(fields.error(Kind::DuplicateDomId {
                    dom_id: module.dom_id,
                    first_line,
                }));
            }
            first_line.insert(module.dom_id, number);
            modules.push(module);
        }
        if let Some((number, _)) = self.lines.next_data() {
            return Err(DetxError::new(
                self.file,
                number,
                Kind::TooManyModules {
                    announced: header.n_modules,
                },
            ));
        }
        repair_floors(&mut modules);
        let comments = std::mem::take(&mut self.lines.comments);
        Ok(Detector::from_checked(header.det_id, version, modules)
            .with_validity(header.validity)
            .with_utm(header.utm)
            .with_comments(comments))
    }

    /// v1: `det_id n_modules`; v2+: `det_id vN`, validity, UTM, count. The
    /// UTM line is taken as optional, for hand-written files.
    fn header(&mut self) -> Result<Header, DetxError> {
        let first = self.next_fields(Record::VersionHeader)?;
        let token = first.token(1);
        if !token.starts_with(['v', 'V']) {
            let first = Fields {
                record: Record::V1Header,
                ..first
            };
            first.expect(2)?;
            return Ok(Header {
                det_id: first.int(0, "det_id")?,
                version: 1,
                validity: None,
                utm: None,
                n_modules: first.int(1, "n_modules")?,
            });
        }
        first.expect(2)?;
        let det_id = first.int(0, "det_id")?;
        let version = match token[1..].parse::<u32>() {
            Ok(v @ 2..=5) => v,
            _ => return Err(first.error(Kind::UnknownVersion(token.to_owned()))),
        };

        let line = self.next_fields(Record::Validity)?;
        line.expect(2)?;
        let validity = Validity {
            from: line.float(0, "valid_from")?,
            until: line.float(1, "valid_until")?,
        };

        let mut line = self.next_fields(Record::Utm)?;
        let mut utm = None;
        if line.token(0).eq_ignore_ascii_case("UTM") {
            line.expect(6)?;
            utm = Some(UtmReference {
                ellipsoid: line.token(1).to_owned(),
                grid: line.token(2).to_owned(),
                easting: line.float(3, "easting")?,
                northing: line.float(4, "northing")?,
                z: line.float(5, "z")?,
            });
            line = self.next_fields(Record::ModuleCount)?;
        }
        line.record = Record::ModuleCount;
        line.expect(1)?;
        Ok(Header {
            det_id,
            version,
            validity: Some(validity),
            utm,
            n_modules: line.int(0, "n_modules")?,
        })
    }

    fn module(&mut self, line: &Fields<'a>, version: u32) -> Result<Module, DetxError> {
        let arity = module_arity(version);
        line.expect(arity)?;
        let mut module = Module {
            dom_id: line.int(0, "module_id")?,
            du: line.int(1, "du")?,
            floor: line.int(2, "floor")?,
            pos: [0.0; 3],
            orientation: [1.0, 0.0, 0.0, 0.0],
            t0: 0.0,
            status: 0,
            pmts: Vec::new(),
        };
        if version >= 4 {
            module.pos = line.vec3(3, ["x", "y", "z"])?;
            module.orientation = [
                line.float(6, "q0")?,
                line.float(7, "qx")?,
                line.float(8, "qy")?,
                line.float(9, "qz")?,
            ];
            module.t0 = line.float(10, "t0")?;
        }
        if version >= 5 {
            module.status = line.int(11, "status")?;
        }
        let n_pmts: usize = line.int(arity - 1, "n_pmts")?;
        let too_few = |found| Kind::TooFewPmts {
            dom_id: module.dom_id,
            module_line: line.line,
            announced: n_pmts,
            found,
        };
        let mut pmts = Vec::new();
        for channel in 0..n_pmts {
            let Some((number, text)) = self.lines.next_data() else {
                return Err(self.eof(too_few(channel)));
            };
            let fields = Fields::new(self.file, number, text, Record::Pmt);
            // A module line where a PMT line belongs: the count was too high.
            if fields.count == arity && arity != pmt_arity(version) {
                return Err(fields.error(too_few(channel)));
            }
            pmts.push(pmt(&fields, version, channel)?);
        }
        module.pmts = pmts;
        if version <= 3 {
            module.pos = pmt_centre(&module.pmts);
        }
        Ok(module)
    }
}

fn pmt(line: &Fields<'_>, version: u32, channel: usize) -> Result<Pmt, DetxError> {
    line.expect(pmt_arity(version))?;
    Ok(Pmt {
        pmt_id: line.int(0, "pmt_id")?,
        channel,
        pos: line.vec3(1, ["x", "y", "z"])?,
        dir: line.vec3(4, ["dx", "dy", "dz"])?,
        t0: line.float(7, "t0")?,
        status: if version >= 3 {
            line.int(8, "status")?
        } else {
            0
        },
    })
}

/// Generated files may carry floor −1 everywhere; like km3pipe and KM3io.jl
/// number the modules of each DU 1, 2, 3… in file order, restarting when the
/// DU changes.
fn repair_floors(modules: &mut [Module]) {
    let mut previous_du = None;
    let mut counter: i32 = 0;
    for module in modules {
        if previous_du != Some(module.du) {
            previous_du = Some(module.du);
            counter = 0;
        }
        counter = counter.saturating_add(1);
        if module.floor == -1 {
            module.floor = counter;
        }
    }
}
