//! DETX reader/writer, detector model, calibration, CLB map and generator
//! against the km3net-testdata samples (`testdata/detx/`).

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use daq::detector::address::{
    pmt_address, Ring, ORDERED_PMT_IDS, PMT_ADDRESSES, STANDARD_DOM_N_PMTS,
};
use daq::detector::{
    slew, CalibError, ClbMap, ClbMapErrorKind, Detector, DetxErrorKind, GeneratorLayout, Record,
};

fn detx_dir() -> PathBuf {
    common::testdata().join("detx")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(detx_dir().join(name)).expect("sample file")
}

fn load(name: &str) -> Detector {
    Detector::from_file(detx_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// What `testdata/detx/README.md` says each sample holds.
struct Sample {
    name: &'static str,
    det_id: i32,
    version: u32,
    /// Ascending.
    dus: &'static [u32],
    optical: usize,
    base: usize,
    pmts: usize,
}

const SAMPLES: &[Sample] = &[
    Sample {
        name: "detx_v1.detx",
        det_id: 1,
        version: 1,
        dus: &[1, 2],
        optical: 6,
        base: 0,
        pmts: 18,
    },
    Sample {
        name: "detx_v2.detx",
        det_id: 23,
        version: 2,
        dus: &[1, 2],
        optical: 6,
        base: 0,
        pmts: 18,
    },
    Sample {
        name: "detx_v3.detx",
        det_id: 23,
        version: 3,
        dus: &[1, 2],
        optical: 6,
        base: 0,
        pmts: 18,
    },
    Sample {
        name: "detx_v3_whitespace.detx",
        det_id: 23,
        version: 3,
        dus: &[1, 2],
        optical: 6,
        base: 0,
        pmts: 18,
    },
    Sample {
        name: "detx_v4.detx",
        det_id: 44,
        version: 4,
        dus: &[1, 2, 3, 4, 5],
        optical: 90,
        base: 0,
        pmts: 2790,
    },
    Sample {
        name: "km3net_offline.detx",
        det_id: 44,
        version: 2,
        dus: &[1, 2, 3, 4, 5],
        optical: 90,
        base: 0,
        pmts: 2790,
    },
    Sample {
        name: "D_ORCA006_t.A02181836.p.A02181837.r.A02182001.detx",
        det_id: 49,
        version: 3,
        dus: &[1, 2, 3, 9, 10, 11],
        optical: 108,
        base: 0,
        pmts: 3348,
    },
    Sample {
        name: "detx_v5.detx",
        det_id: 49,
        version: 5,
        dus: &[1, 2, 3, 9, 10, 11],
        optical: 108,
        base: 6,
        pmts: 3348,
    },
    Sample {
        name: "detx_v5_invalid_multiline_comments.detx",
        det_id: 49,
        version: 5,
        dus: &[1, 2, 3, 9, 10, 11],
        optical: 108,
        base: 6,
        pmts: 3348,
    },
];

#[test]
fn every_sample_matches_the_readme_counts() {
    for &Sample {
        name,
        det_id,
        version,
        dus,
        optical,
        base,
        pmts,
    } in SAMPLES
    {
        let det = load(name);
        assert_eq!(det.det_id(), det_id, "{name}");
        assert_eq!(det.version(), version, "{name}");
        assert_eq!(det.dus(), dus, "{name}");
        assert_eq!(det.n_optical_modules(), optical, "{name}");
        assert_eq!(det.n_base_modules(), base, "{name}");
        assert_eq!(det.n_modules(), optical + base, "{name}");
        assert_eq!(det.n_pmts(), pmts, "{name}");
        for du in det.dus() {
            assert!(
                det.base_module(du).is_some() == (base > 0),
                "{name} DU {du}"
            );
        }
    }
}

#[test]
fn sample_details() {
    let v1 = load("detx_v1.detx");
    assert!(v1.validity().is_none() && v1.utm().is_none());
    assert_eq!(v1.floors(2), [1, 2, 3]);
    assert_eq!(v1.max_pmts_per_module(), 3);
    // v1–v3: module position = centre of the PMT positions.
    let m = v1.module(1).unwrap();
    assert!(close(m.pos[0], 1.4) && close(m.pos[1], 1.5) && close(m.pos[2], 1.6));

    let v3 = load("detx_v3.detx");
    assert_eq!(
        v3.comments(),
        ["a comment line", "another comment line starting with '#'"]
    );
    assert_eq!(
        v3.modules()
            .iter()
            .flat_map(|m| &m.pmts)
            .filter(|p| p.status == 1)
            .count(),
        10
    );
    let validity = v3.validity().unwrap();
    assert_eq!(
        (validity.from, validity.until),
        (1500000000.1, 9999999999.0)
    );
    let utm = v3.utm().unwrap();
    assert_eq!(
        (utm.ellipsoid.as_str(), utm.grid.as_str()),
        ("WGS84", "32N")
    );
    assert_eq!(
        (utm.zone_number(), utm.zone_letter()),
        (Some(32), Some('N'))
    );
    assert_eq!(
        (utm.easting, utm.northing, utm.z),
        (256500.0, 4743000.0, -2425.0)
    );
    assert_eq!(load("detx_v3_whitespace.detx").modules(), v3.modules());

    let v4 = load("detx_v4.detx");
    assert_eq!(v4.comments().len(), 30);
    assert_eq!(v4.max_floor(), 18);

    let v5 = load("detx_v5.detx");
    assert_eq!(v5.dus_in_file_order(), [11, 10, 9, 3, 2, 1]);
    assert_eq!(v5.utm().unwrap().z, -2441.5);
    assert_eq!(
        v5.modules()
            .iter()
            .flat_map(|m| &m.pmts)
            .filter(|p| p.status != 0)
            .count(),
        5
    );
    let base = v5.base_module(11).unwrap();
    assert_eq!(
        (base.dom_id, base.floor, base.n_pmts(), base.t0),
        (808476701, 0, 0, -50000.0)
    );
    assert_eq!(v5.floors(11), (0..=18).collect::<Vec<_>>());

    let broken = load("detx_v5_invalid_multiline_comments.detx");
    assert_eq!(broken.validity().unwrap().until, 1637103600.0);
    let statuses = broken
        .modules()
        .iter()
        .flat_map(|m| &m.pmts)
        .filter(|p| p.status != 0);
    assert_eq!(statuses.count(), 269);
    // Lines 107–178 are one comment: the opener and its stray continuation.
    let multi: Vec<&String> = broken
        .comments()
        .iter()
        .filter(|c| c.contains('\n'))
        .collect();
    assert_eq!(multi.len(), 1);
    assert_eq!(multi[0].lines().count(), 178 - 107 + 1);
    assert!(multi[0].ends_with("808432835 15\\\" -A -w"));
    assert_eq!(
        broken.comments().len(),
        175,
        "one entry per line starting with #"
    );

    // Same modules in the older format, every PMT x 100 m smaller.
    let offline = load("km3net_offline.detx");
    for (a, b) in offline.modules().iter().zip(v4.modules()) {
        assert_eq!((a.dom_id, a.du, a.floor), (b.dom_id, b.du, b.floor));
        for (p, q) in a.pmts.iter().zip(&b.pmts) {
            assert_eq!(p.pmt_id, q.pmt_id);
            assert!((p.pos[0] + 100.0 - q.pos[0]).abs() < 1e-9);
        }
    }
}

#[test]
fn detx_v4_module_and_pmt_lines_by_hand() {
    let det = load("detx_v4.detx");
    // Line 35: ` 808432836    1  1   +86.500    +9.100   +29.346 +1.000000 +0.000000
    // +0.000000 +0.000000    +0.000 31`
    let m = det.module(808432836).unwrap();
    assert_eq!((m.du, m.floor, m.n_pmts()), (1, 1, 31));
    assert_eq!(m.pos, [86.5, 9.1, 29.346]);
    assert_eq!(m.orientation, [1.0, 0.0, 0.0, 0.0]);
    assert_eq!((m.t0, m.status), (0.0, 0));
    assert_eq!(det.module_at(1, 1).unwrap().dom_id, 808432836);
    assert_eq!(det.module_index(808432836), Some(0));
    // Line 36: `2712 +86.607 +9.227 +29.457 +0.535000 +0.637000 +0.555000 +207261.022 0`
    let p = det.pmt(808432836, 0).unwrap();
    assert_eq!((p.pmt_id, p.channel, p.status), (2712, 0, 0));
    assert_eq!(p.pos, [86.607, 9.227, 29.457]);
    assert_eq!(p.dir, [0.535, 0.637, 0.555]);
    assert_eq!(p.t0, 207261.022);
    let (owner, same) = det.pmt_by_id(2712).unwrap();
    assert_eq!((owner.dom_id, same), (808432836, p));
    assert!(det.pmt(808432836, 31).is_none());
    assert!(det.module(1).is_none());
}

#[test]
fn calibrates_a_hit_by_hand() {
    let det = load("detx_v4.detx");
    // Module line 2576: DOM 806451572 on DU 5 floor 6; channel 23 is line
    // 2600: `13062 +119.702 -12.039 +76.492 +0.507000 +0.810000 -0.295000
    // +207747.650 0`.
    let hit = det.calibrate(806451572, 23, 12345.0, 26).unwrap();
    assert_eq!(
        (hit.dom_id, hit.channel, hit.du, hit.floor),
        (806451572, 23, 5, 6)
    );
    assert_eq!((hit.pmt_id, hit.tot), (13062, 26));
    assert!(close(hit.time, 12345.0 + 207747.650));
    assert_eq!(hit.t0, 207747.650);
    assert_eq!(hit.pos, [119.702, -12.039, 76.492]);
    assert_eq!(hit.dir, [0.507, 0.810, -0.295]);
    // Slewing only when asked: slew(26) = 0.07 ns.
    let slewed = det
        .calibrate_with_slewing(806451572, 23, 12345.0, 26)
        .unwrap();
    assert!(close(slewed.time, 12345.0 + 207747.650 - 0.07));
    assert_eq!(
        det.calibrate(806451572, 31, 0.0, 0),
        Err(CalibError::UnknownChannel {
            dom_id: 806451572,
            channel: 31,
            n_pmts: 31
        })
    );
    assert_eq!(
        det.calibrate(42, 0, 0.0, 0),
        Err(CalibError::UnknownDom { dom_id: 42 })
    );
}

#[test]
fn slewing_table_ends() {
    assert_eq!(slew(0), 8.01);
    assert_eq!(slew(26), 0.07);
    assert_eq!(slew(27), -0.10);
    assert_eq!(slew(201), -9.04);
    assert_eq!(slew(255), -9.04);
    assert_eq!(slew(256), -9.04);
    assert_eq!(slew(u32::MAX), -9.04);
}

#[test]
fn pmt_address_tables_agree_with_real_dom_geometry() {
    let ranks: HashSet<usize> = ORDERED_PMT_IDS.iter().copied().collect();
    assert_eq!(ranks.len(), STANDARD_DOM_N_PMTS);
    for (channel, address) in PMT_ADDRESSES.iter().enumerate() {
        assert_eq!(
            address.rank(),
            ORDERED_PMT_IDS[channel],
            "channel {channel}"
        );
    }
    assert_eq!(pmt_address(0).unwrap().to_string(), "F4");
    assert_eq!(pmt_address(22).unwrap().to_string(), "A1");
    assert!(pmt_address(STANDARD_DOM_N_PMTS).is_none());
    // Every 31-PMT DOM of the real samples: the axis z of each channel is the
    // typical z of the ring the table names.
    for name in [
        "detx_v4.detx",
        "detx_v5.detx",
        "D_ORCA006_t.A02181836.p.A02181837.r.A02182001.detx",
    ] {
        let det = load(name);
        for module in det.modules().iter().filter(|m| m.has_standard_layout()) {
            for pmt in &module.pmts {
                let ring = PMT_ADDRESSES[pmt.channel].ring;
                assert!(
                    (pmt.dir[2] - ring.axis_z()).abs() < 0.02,
                    "{name} DOM {} channel {}: dz {} vs ring {ring:?}",
                    module.dom_id,
                    pmt.channel,
                    pmt.dir[2]
                );
            }
        }
    }
}

#[test]
fn floor_minus_one_is_repaired_per_du_in_file_order() {
    let mut text = String::from("-1 v2\n0.0 9999999999.0\nUTM WGS84 32N 0 0 0\n6\n");
    for (i, du) in [7, 7, 7, 3, 3, 12].iter().enumerate() {
        text += &format!("{} {du} -1 1\n {} 0 0 {i} 0 0 1 100.0\n", 900 + i, i + 1);
    }
    let det = Detector::parse(&text, "minus_one.detx").unwrap();
    let floors: Vec<(u32, i32)> = det.modules().iter().map(|m| (m.du, m.floor)).collect();
    assert_eq!(floors, [(7, 1), (7, 2), (7, 3), (3, 1), (3, 2), (12, 1)]);
    assert_eq!(det.det_id(), -1);
    assert_eq!(det.dus(), [3, 7, 12]);
    assert_eq!(det.module_at(7, 3).unwrap().dom_id, 902);
    assert_eq!(det.max_floor(), 3);
    assert_eq!(det.n_base_modules(), 0);
}

/// A small v3 file whose lines are numbered in the comments of the tests.
const SMALL_V3: &str = "\
# comment
23 V3
0.0 9999999999.0
UTM WGS84 32N 256500.0 4743000.0 -2425.0
2
1 1 1 2
 1 1 2 3 0 0 1 10.0 0
 2 1 2 3 0 0 -1 20.0 0
2 1 2 2
 3 1 2 3 0 0 1 10.0 0
 4 1 2 3 0 0 -1 20.0 0
";

fn small_with(line: usize, replacement: &str) -> String {
    let mut lines: Vec<&str> = SMALL_V3.lines().collect();
    lines[line - 1] = replacement;
    lines.join("\n")
}

fn error_of(text: &str) -> daq::detector::DetxError {
    Detector::parse(text, "t.detx").expect_err("must fail")
}

#[test]
fn small_file_parses_with_upper_case_version_and_plus_signs() {
    let det = Detector::parse(SMALL_V3, "t.detx").unwrap();
    assert_eq!((det.det_id(), det.version(), det.n_pmts()), (23, 3, 4));
    let plus = small_with(7, " +1 +1 +2 +3 +0 +0 +1 +10.0 +0");
    assert_eq!(
        Detector::parse(&plus, "t.detx").unwrap().modules(),
        det.modules()
    );
}

#[test]
fn errors_name_file_line_and_field() {
    let e = error_of(&small_with(7, " 1 1 2 3 0 0 1"));
    assert_eq!(
        e.to_string(),
        "t.detx:7: expected 9 fields on PMT line, found 7"
    );

    let e = error_of(&small_with(6, "1 1 x 2"));
    assert_eq!(e.line, 6);
    assert_eq!(
        e.kind,
        DetxErrorKind::BadField {
            record: Record::Module,
            index: 3,
            name: "floor",
            expected: "an integer",
            text: "x".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "t.detx:6: module line field 3 (floor): expected an integer, found \"x\""
    );

    let e = error_of(&small_with(6, "1 -1 1 2"));
    assert!(
        matches!(
            e.kind,
            DetxErrorKind::BadField {
                index: 2,
                name: "du",
                ..
            }
        ),
        "{e}"
    );

    let e = error_of(&small_with(8, " 2 1 2 inf 0 0 -1 20.0 0"));
    assert!(
        matches!(
            e.kind,
            DetxErrorKind::BadField {
                index: 4,
                name: "z",
                ..
            }
        ),
        "{e}"
    );

    let e = error_of(&small_with(2, "23 v7"));
    assert_eq!(
        (e.line, e.kind),
        (2, DetxErrorKind::UnknownVersion("v7".into()))
    );
    let e = error_of(&small_with(2, "23 v1"));
    assert_eq!(e.kind, DetxErrorKind::UnknownVersion("v1".into()));
    let e = error_of(&small_with(2, "23 V3 x"));
    assert_eq!(
        e.to_string(),
        "t.detx:2: expected 2 fields on header line, found 3"
    );

    // Announced 3 PMTs, the next module line comes after 2.
    let e = error_of(&small_with(6, "1 1 1 3"));
    assert_eq!(e.line, 9);
    assert_eq!(
        e.kind,
        DetxErrorKind::TooFewPmts {
            dom_id: 1,
            module_line: 6,
            announced: 3,
            found: 2
        }
    );
    // ... or the file ends.
    let e = error_of(&small_with(9, "2 1 2 3"));
    assert_eq!(e.line, 11);
    assert!(
        matches!(
            e.kind,
            DetxErrorKind::TooFewPmts {
                found: 2,
                announced: 3,
                ..
            }
        ),
        "{e}"
    );

    let e = error_of(&small_with(5, "3"));
    assert_eq!(
        (e.line, e.kind),
        (
            11,
            DetxErrorKind::TooFewModules {
                announced: 3,
                found: 2
            }
        )
    );
    let e = error_of(&small_with(5, "1"));
    assert_eq!(
        (e.line, e.kind),
        (9, DetxErrorKind::TooManyModules { announced: 1 })
    );
    let e = error_of(&small_with(5, "two"));
    assert!(
        matches!(
            e.kind,
            DetxErrorKind::BadField {
                record: Record::ModuleCount,
                ..
            }
        ),
        "{e}"
    );

    let e = error_of(&small_with(9, "1 1 2 2"));
    assert_eq!(
        e.to_string(),
        "t.detx:9: DOM id 1 already used by the module on line 6"
    );

    let e = error_of("23 v3\n0.0 1.0\n");
    assert_eq!(
        e.to_string(),
        "t.detx:2: end of file, expected the UTM line"
    );
    let e = error_of("");
    assert_eq!(
        e.to_string(),
        "t.detx: end of file, expected the header line"
    );
    let e = error_of("# only comments\n\n");
    assert_eq!(
        (e.line, e.kind),
        (2, DetxErrorKind::UnexpectedEof(Record::VersionHeader))
    );
    let e = error_of("1 2 3\n");
    assert_eq!(
        e.to_string(),
        "t.detx:1: expected 2 fields on v1 header line, found 3"
    );

    // A comment with a lone quote that never closes swallows the file.
    let e = error_of(&format!("# command \"abc\n{SMALL_V3}"));
    assert_eq!(e.line, SMALL_V3.lines().count() + 1);
    assert!(
        matches!(
            e.kind,
            DetxErrorKind::UnterminatedComment { opened_at: 1, .. }
        ),
        "{e}"
    );
}

#[test]
fn error_in_a_real_file_names_it() {
    let text = read("detx_v4.detx");
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i + 1 == 37 {
                l.split_whitespace().take(7).collect::<Vec<_>>().join(" ")
            } else {
                l.to_owned()
            }
        })
        .collect();
    let e = Detector::parse(&lines.join("\n"), "detx_v4.detx").unwrap_err();
    assert_eq!(
        e.to_string(),
        "detx_v4.detx:37: expected 9 fields on PMT line, found 7"
    );

    let missing = detx_dir().join("no_such_file.detx");
    let e = Detector::from_file(&missing).unwrap_err();
    assert!(matches!(e.kind, DetxErrorKind::Io(_)) && e.line == 0, "{e}");
    assert!(e.to_string().starts_with(&missing.display().to_string()));

    let path = std::env::temp_dir().join(format!("km3mon-detx-test-{}.detx", std::process::id()));
    std::fs::write(&path, b"1 1\n1 1 1 0\n\xff\n").unwrap();
    let e = Detector::from_file(&path).unwrap_err();
    std::fs::remove_file(&path).ok();
    assert_eq!((e.line, e.kind), (3, DetxErrorKind::NotText));
}

/// Deterministic pseudo-random numbers for the garbling tests.
fn lcg(state: &mut u64) -> usize {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*state >> 33) as usize
}

#[test]
fn truncated_samples_never_panic_and_fail_inside_the_data() {
    for &Sample { name, .. } in SAMPLES {
        let text = read(name);
        let data_end = text.trim_end().len();
        // Every byte of the toy files; for the big ones the header region
        // densely (cheap: parsing stops early) and the rest sparsely.
        let cuts: Vec<usize> = if text.len() < 4096 {
            (0..data_end).collect()
        } else {
            let header = (0..6000.min(data_end)).step_by(23);
            header
                .chain((0..data_end).step_by(data_end / 15))
                .chain(data_end - 3..data_end)
                .collect()
        };
        for cut in cuts {
            let result = Detector::parse(&text[..cut], name);
            if let Err(e) = result {
                assert!(
                    e.line <= text[..cut].lines().count().max(1),
                    "{name} cut {cut}: {e}"
                );
            }
        }
        // Cutting at a line boundary before the last PMT line always fails.
        let lines: Vec<&str> = text.lines().collect();
        let last_data = lines.iter().rposition(|l| !l.trim().is_empty()).unwrap();
        for n in [0, 1, 2, 3, 5, last_data / 2, last_data] {
            let cut = lines[..n].join("\n");
            assert!(
                Detector::parse(&cut, name).is_err(),
                "{name}: first {n} lines parse"
            );
        }
    }
}

#[test]
fn garbled_samples_never_panic() {
    let garbage = [
        "",
        "x",
        "-1",
        "+",
        "1e999",
        "nan",
        "99999999999999999999",
        "\"",
        "# \"",
        "v",
        "V9",
        "\t",
    ];
    let mut state = 2024;
    for &Sample { name, .. } in SAMPLES {
        let text = read(name);
        let lines: Vec<&str> = text.lines().collect();
        let rounds = if text.len() < 4096 { 200 } else { 15 };
        for _ in 0..rounds {
            let mut garbled: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            for _ in 0..1 + lcg(&mut state) % 3 {
                let i = lcg(&mut state) % garbled.len();
                let mut fields: Vec<String> =
                    garbled[i].split_whitespace().map(String::from).collect();
                match lcg(&mut state) % 5 {
                    0 if !fields.is_empty() => {
                        let j = lcg(&mut state) % fields.len();
                        fields[j] = garbage[lcg(&mut state) % garbage.len()].into();
                    }
                    1 => {
                        fields.pop();
                    }
                    2 => fields.push("7".into()),
                    3 => {
                        let j = lcg(&mut state) % garbled.len();
                        garbled.swap(i, j);
                        continue;
                    }
                    _ => {
                        let copy = garbled[i].clone();
                        garbled.insert(i, copy);
                        continue;
                    }
                }
                garbled[i] = fields.join(" ");
            }
            if let Err(e) = Detector::parse(&garbled.join("\n"), name) {
                assert!(e.line <= garbled.len() + 1, "{e}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn write_parse_round_trip() {
    for &Sample { name, .. } in SAMPLES {
        let det = load(name);
        let flat: Vec<String> = det
            .comments()
            .iter()
            .map(|c| c.replace('\n', " "))
            .collect();
        // Same version: everything survives exactly (comments from v3 on).
        let same = Detector::parse(&det.to_detx_string(det.version()).unwrap(), name).unwrap();
        assert_eq!(same.modules(), det.modules(), "{name}");
        assert_eq!(
            (same.det_id(), same.version()),
            (det.det_id(), det.version())
        );
        if det.version() >= 2 {
            assert_eq!(same.validity(), det.validity(), "{name}");
            assert_eq!(same.utm(), det.utm(), "{name}");
        }
        if det.version() >= 3 {
            assert_eq!(same.comments(), flat, "{name}");
        }
        // v5 keeps every value (v1–v3 module fields become defaults).
        let v5 = Detector::parse(&det.to_detx_string(5).unwrap(), name).unwrap();
        assert_eq!(v5.modules(), det.modules(), "{name}");
        assert_eq!(v5.comments(), flat, "{name}");
        // v3 keeps PMTs; module positions become PMT centres.
        let v3 = Detector::parse(&det.to_detx_string(3).unwrap(), name).unwrap();
        for (a, b) in v3.modules().iter().zip(det.modules()) {
            assert_eq!(
                (a.dom_id, a.du, a.floor, &a.pmts),
                (b.dom_id, b.du, b.floor, &b.pmts)
            );
        }
        // v1 and v2 drop the PMT status.
        let v1 = Detector::parse(&det.to_detx_string(1).unwrap(), name).unwrap();
        assert_eq!((v1.version(), v1.n_pmts()), (1, det.n_pmts()));
    }
    let det = load("detx_v1.detx");
    assert!(det.to_detx_string(6).is_err() && det.to_detx_string(0).is_err());
    let v5 = Detector::parse(&det.to_detx_string(5).unwrap(), "v1-as-v5").unwrap();
    assert_eq!(v5.utm().unwrap().grid, "0N");
}

#[test]
fn detector_new_checks_dom_ids_and_numbers_channels() {
    let det = load("detx_v3.detx");
    let mut modules = det.modules().to_vec();
    modules[0].pmts.swap(0, 2);
    let rebuilt = Detector::new(23, 3, modules.clone()).unwrap();
    assert_eq!(rebuilt.pmt(1, 0).unwrap().pmt_id, 3);
    assert_eq!(rebuilt.pmt(1, 0).unwrap().channel, 0);
    modules[1].dom_id = modules[0].dom_id;
    assert!(Detector::new(23, 3, modules).is_err());
}

#[test]
fn generator_orca_115_full_size() {
    let det = Detector::generate(133, 115, 18, 31);
    assert_eq!(det.n_optical_modules(), 2070);
    assert_eq!(det.n_base_modules(), 115);
    assert_eq!(det.n_pmts(), 64170);
    assert_eq!(det.dus(), (1..=115).collect::<Vec<_>>());
    assert_eq!(det.floors(57), (0..=18).collect::<Vec<_>>());
    assert_eq!((det.max_floor(), det.version(), det.det_id()), (18, 5, 133));
    let ids: HashSet<u32> = det.modules().iter().map(|m| m.dom_id).collect();
    assert_eq!(ids.len(), det.n_modules());
    assert!(ids.iter().all(|id| (800_000_000..900_000_000).contains(id)));
    let pmt_ids: HashSet<u32> = det
        .modules()
        .iter()
        .flat_map(|m| &m.pmts)
        .map(|p| p.pmt_id)
        .collect();
    assert_eq!(pmt_ids.len(), 64170);
    assert_eq!(det, Detector::generate(133, 115, 18, 31), "deterministic");

    for module in det.optical_modules() {
        let base = det.base_module(module.du).unwrap();
        assert!(close(module.pos[0], base.pos[0]) && close(module.pos[1], base.pos[1]));
        let expected_z = 40.0 + 9.0 * f64::from(module.floor - 1);
        assert!((module.pos[2] - expected_z).abs() < 0.1, "{module:?}");
        for pmt in &module.pmts {
            let norm = pmt.dir.iter().map(|c| c * c).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5);
            let ring = PMT_ADDRESSES[pmt.channel].ring;
            assert!((pmt.dir[2] - ring.axis_z()).abs() < 1e-6);
            assert!((pmt.t0 - 2.0e5).abs() < 1400.0, "t0 {}", pmt.t0);
        }
        assert_eq!(module.pmts[22].dir, [0.0, 0.0, -1.0]);
        let down = module.pmts.iter().filter(|p| p.dir[2] < 0.0).count();
        assert_eq!(down, 1 + 3 * 6);
        let q = module.orientation;
        assert!((q.iter().map(|c| c * c).sum::<f64>() - 1.0).abs() < 1e-5);
    }
    // Neighbouring DUs 15–100 m apart.
    let bases: Vec<[f64; 3]> = det.base_modules().map(|m| m.pos).collect();
    for (i, a) in bases.iter().enumerate() {
        let nearest = bases
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
            .fold(f64::INFINITY, f64::min);
        assert!(
            (12.0..=100.0).contains(&nearest),
            "DU {i}: nearest {nearest}"
        );
    }
    // Round trip through the file format.
    let text = det.to_detx_string(5).unwrap();
    let back = Detector::parse(&text, "generated.detx").unwrap();
    assert_eq!(back, det);
    let hit = back
        .calibrate(det.modules()[0].dom_id, 30, 100.0, 20)
        .unwrap();
    assert_eq!((hit.du, hit.floor), (1, 1));
}

#[test]
fn generator_arca_and_odd_sizes() {
    let det = Detector::generate_with(-1, 230, 18, 31, &GeneratorLayout::arca());
    assert_eq!(
        (det.n_optical_modules(), det.n_base_modules(), det.n_pmts()),
        (4140, 230, 128_340)
    );
    assert_eq!(det.utm().unwrap().grid, "33N");
    let m = det.module_at(200, 18).unwrap();
    assert!((m.pos[2] - (80.0 + 17.0 * 36.0)).abs() < 0.1);

    let odd = Detector::generate(7, 3, 5, 18);
    assert_eq!(
        (
            odd.n_optical_modules(),
            odd.n_pmts(),
            odd.max_pmts_per_module()
        ),
        (15, 270, 18)
    );
    assert!(odd.optical_modules().all(|m| !m.has_standard_layout()));
    let dirs: Vec<[f64; 3]> = odd
        .module_at(1, 1)
        .unwrap()
        .pmts
        .iter()
        .map(|p| p.dir)
        .collect();
    assert!(dirs
        .iter()
        .all(|d| (d.iter().map(|c| c * c).sum::<f64>() - 1.0).abs() < 1e-5));
    assert!(dirs[0][2] < -0.9 && dirs[17][2] > 0.9);

    let tiny = Detector::generate(1, 1, 1, 1);
    assert_eq!((tiny.n_modules(), tiny.n_pmts()), (2, 1));
    let empty = Detector::generate(1, 0, 18, 31);
    assert_eq!(
        (empty.n_modules(), empty.max_floor(), empty.dus().len()),
        (0, 0, 0)
    );
    assert!(Ring::ALL.iter().all(|r| r.n_positions() >= 1));
}

fn clbmap() -> ClbMap {
    ClbMap::from_file(detx_dir().join("clbmap.txt")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn clbmap_sample() {
    let map = clbmap();
    assert_eq!(map.len(), 57);
    assert_eq!(map.dus(), [1, 3, 4]);
    for du in map.dus() {
        let mut floors: Vec<i32> = map
            .rows()
            .iter()
            .filter(|r| r.du == du)
            .map(|r| r.floor)
            .collect();
        floors.sort_unstable();
        assert_eq!(floors, (0..=18).collect::<Vec<_>>());
    }
    for (du, dom_id, serial) in [
        (1, 808476701, 267),
        (3, 808981515, 244),
        (4, 808967761, 305),
    ] {
        let base = map.base(du).unwrap();
        assert_eq!((base.dom_id, base.serial, base.floor), (dom_id, serial, 0));
        assert!(base.is_base());
        assert_eq!(base.upi, format!("3.4.3.2/V2-2-1/2.{serial}"));
        assert_eq!(map.by_upi(&base.upi), Some(base));
        assert_eq!(map.by_dom_id(dom_id), Some(base));
    }
    let row = map.at(1, 1).unwrap();
    assert_eq!(
        (row.det_oid.as_str(), row.dom_id, row.serial),
        ("D_ORCA003", 808432836, 410)
    );
    // Unsorted: DU 4 floors 15–18 follow DU 1 floor 3.
    assert_eq!((map.rows()[4].du, map.rows()[4].floor), (4, 15));
    assert!(map.by_dom_id(1).is_none() && map.base(2).is_none());
}

#[test]
fn clbmap_errors() {
    let text = std::fs::read_to_string(detx_dir().join("clbmap.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let with = |n: usize, replacement: &str| {
        let mut l = lines.clone();
        l[n - 1] = replacement;
        ClbMap::parse(&l.join("\n"), "clbmap.txt").unwrap_err()
    };
    let e = with(1, "DETOID\tDUID\tFLOORID\tSERIALNUMBER\tUPI");
    assert_eq!(
        (e.line, e.kind),
        (1, ClbMapErrorKind::MissingColumn("DOMID"))
    );
    let e = with(5, "D_ORCA003\t1\tx\t306\t3.4.3.2/V2-2-1/2.306\t808483678");
    assert_eq!(
        e.to_string(),
        "clbmap.txt:5: column FLOORID: expected an integer, found \"x\""
    );
    let e = with(5, "D_ORCA003\t1\t3\t306");
    assert_eq!(
        e.to_string(),
        "clbmap.txt:5: expected 6 tab-separated fields, found 4"
    );
    let e = with(5, "D_ORCA003\t1\t33\t306\t3.4.3.2/V2-2-1/2.306\t808476701");
    assert_eq!(
        (e.line, e.kind),
        (
            5,
            ClbMapErrorKind::DuplicateDomId {
                dom_id: 808476701,
                first_line: 2
            }
        )
    );
    let e = with(5, "D_ORCA003\t1\t1\t306\t3.4.3.2/V2-2-1/2.306\t1");
    assert!(
        matches!(
            e.kind,
            ClbMapErrorKind::DuplicateLocation {
                du: 1,
                floor: 1,
                first_line: 3
            }
        ),
        "{e}"
    );
    let e = ClbMap::parse("", "empty").unwrap_err();
    assert_eq!(e.kind, ClbMapErrorKind::NoHeader);
    // Header only, CRLF and blank lines are fine.
    assert!(ClbMap::parse(lines[0], "h").unwrap().is_empty());
    let crlf = text.replace('\n', "\r\n\r\n");
    assert_eq!(ClbMap::parse(&crlf, "crlf").unwrap(), clbmap());
    // Garbled lines never panic.
    let mut state = 7;
    for _ in 0..300 {
        let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        let i = lcg(&mut state) % l.len();
        let cut = lcg(&mut state) % (l[i].len() + 1);
        l[i].truncate(cut);
        let _ = ClbMap::parse(&l.join("\n"), "garbled");
    }
}

#[test]
fn clbmap_matches_detector_where_they_overlap() {
    // D_ORCA003's DOMs reappear in later detectors; where a DOM id is in
    // both, the location agrees with ORCA6's DETX except for re-deployed DUs.
    let map = clbmap();
    let det = load("detx_v5.detx");
    let shared: Vec<_> = map
        .rows()
        .iter()
        .filter_map(|r| det.module(r.dom_id).map(|m| (r, m)))
        .collect();
    assert!(!shared.is_empty());
    for (row, module) in shared {
        assert_eq!(row.floor, module.floor, "DOM {}", row.dom_id);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
    /// Random byte edits of a valid file: an error or a detector, never a
    /// panic, and an error line inside the text.
    #[test]
    fn edited_bytes_never_panic(edits in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 1..8)) {
        let mut bytes = SMALL_V3.as_bytes().to_vec();
        for (at, byte) in edits {
            let at = at % (bytes.len() + 1);
            match byte % 3 {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = Detector::parse(&text, "edited") {
            proptest::prop_assert!(e.line <= text.lines().count().max(1), "{}", e);
        }
    }
}
