//! The fuzz targets of `fuzz/` run over a deterministic corpus on every
//! `cargo test`: the sample frames and files, and mutations of them
//! (truncations, bit flips, edited length and count fields, insertions,
//! deletions, splices, random bytes behind valid prefixes, edited lines of
//! the text formats) from a fixed-seed PRNG. The target bodies are
//! `daq::fuzzing`'s, the same cargo-fuzz runs, so this is a bounded fuzz run
//! that CI repeats exactly; a failing input is saved for a regression test.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use daq::controlhost::{encode_message, tags, Mode, Subscription, Tag};
use daq::detector::{ClbMap, Detector};
use daq::dump::DumpReader;
use daq::fuzzing;

/// splitmix64: small, fixed, and good enough to spread mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(common::testdata().join(name)).unwrap()
}

fn payloads(name: &str) -> Vec<Vec<u8>> {
    DumpReader::new(&sample(&format!("daq/{name}"))[..])
        .map(|r| r.unwrap().payload)
        .collect()
}

fn daq_frames() -> Vec<Vec<u8>> {
    ["IO_EVT.dat", "IO_SUM.dat", "IO_TSSN.dat"]
        .iter()
        .flat_map(|name| payloads(name))
        .collect()
}

/// A ControlHost recording of every sample payload with its tag, as
/// `km3mon record` writes it.
fn recording() -> Vec<u8> {
    let mut out = Vec::new();
    let sub = Subscription::new()
        .with(Mode::Any, Tag::new("IO_EVT").unwrap())
        .with(Mode::All, Tag::new("IO_SUM").unwrap());
    out.extend(encode_message(tags::subscribe(), &sub.to_payload()));
    out.extend(encode_message(tags::always(), &[]));
    for (tag, name) in [
        ("IO_EVT", "IO_EVT.dat"),
        ("IO_SUM", "IO_SUM.dat"),
        ("IO_TSSN", "IO_TSSN.dat"),
        ("IO_MONIT", "IO_MONIT.dat"),
    ] {
        for p in payloads(name) {
            out.extend(encode_message(Tag::new(tag).unwrap(), &p));
        }
    }
    out.extend(encode_message(
        Tag::new("MSG").unwrap(),
        b"2024 F0 fuzz line",
    ));
    out
}

/// Small DETX texts of every version: the small samples as they are, the
/// large ones cut down to their first modules and written in each version.
fn detx_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        "detx_v1.detx",
        "detx_v2.detx",
        "detx_v3.detx",
        "detx_v3_whitespace.detx",
    ]
    .iter()
    .map(|name| sample(&format!("detx/{name}")))
    .collect();
    for name in ["detx_v5.detx", "km3net_offline.detx"] {
        let det = Detector::from_file(common::testdata().join("detx").join(name)).unwrap();
        let few = Detector::new(det.det_id(), det.version(), det.modules()[..3].to_vec())
            .unwrap()
            .with_validity(det.validity())
            .with_utm(det.utm().cloned())
            .with_comments(det.comments().to_vec());
        for version in 1..=5 {
            seeds.push(few.to_detx_string(version).unwrap().into_bytes());
        }
    }
    // The multi-line comment sample's first lines: its comment spans lines.
    let text = sample("detx/detx_v5_invalid_multiline_comments.detx");
    seeds.push(text[..text.len().min(1500)].to_vec());
    seeds.push(
        Detector::generate(7, 2, 2, 3)
            .to_detx_string(5)
            .unwrap()
            .into_bytes(),
    );
    seeds
}

fn clbmap_seeds() -> Vec<Vec<u8>> {
    let text = sample("detx/clbmap.txt");
    ClbMap::parse(std::str::from_utf8(&text).unwrap(), "clbmap.txt").unwrap();
    let head: Vec<&[u8]> = text.split(|&b| b == b'\n').take(6).collect();
    vec![text.clone(), head.join(&b'\n')]
}

/// The inputs of one target.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "decode_frame" => daq_frames(),
        "timeslice_view" => payloads("IO_TSSN.dat"),
        "tmch" => payloads("IO_MONIT.dat"),
        "dump_reader" => {
            let mut files: Vec<Vec<u8>> =
                ["IO_EVT.dat", "IO_SUM.dat", "IO_TSSN.dat", "IO_MONIT.dat"]
                    .iter()
                    .map(|name| sample(&format!("daq/{name}")))
                    .collect();
            // The reader's cost grows with the input; a part of the
            // recording reaches the same paths.
            files.push(recording()[..4096].to_vec());
            files
        }
        "controlhost_prefix" => vec![recording()[..2048].to_vec()],
        "subscription" => [
            &b" w IO_EVT a IO_SUM w MSG"[..],
            b"w X a X",
            b"  a IO_TSL0\tw IO_MONIT\n",
            b"",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect(),
        "detx" => detx_seeds(),
        "clbmap" => clbmap_seeds(),
        other => panic!("no seeds for target {other}"),
    }
}

const INTERESTING_I32: [i32; 12] = [
    0,
    1,
    2,
    3,
    -1,
    7,
    8,
    32,
    0x7FFF,
    0x1_0000,
    i32::MAX,
    i32::MIN,
];

const TOKENS: [&str; 16] = [
    "",
    "0",
    "-1",
    "+1",
    "nan",
    "inf",
    "-0",
    "1e309",
    "4294967296",
    "v5",
    "V2",
    "\"",
    "#",
    " ",
    "\t",
    "\n",
];

/// Binary mutations of `seed`, `n` of them, plus every short truncation.
fn binary_mutants(seed: &[u8], others: &[Vec<u8>], rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let len = seed.len();
    let mut out = vec![seed.to_vec()];
    // Truncations: every cut in the headers, a few deep ones.
    for cut in (0..len.min(96)).chain((0..16).map(|_| rng.below(len + 1))) {
        out.push(seed[..cut.min(len)].to_vec());
    }
    for _ in 0..n {
        let mut m = seed.to_vec();
        match rng.below(8) {
            // Bit flips.
            0 => {
                for _ in 0..=rng.below(3) {
                    if !m.is_empty() {
                        let at = rng.below(m.len());
                        m[at] ^= 1 << rng.below(8);
                    }
                }
            }
            // A length or count field set to an edge value; fields sit at
            // small offsets more often.
            1 | 2 => {
                if m.len() >= 4 {
                    let at = if rng.below(2) == 0 {
                        rng.below(m.len().min(100) - 3)
                    } else {
                        rng.below(m.len() - 3)
                    };
                    let value = match rng.below(4) {
                        0 => m.len() as i32 + rng.below(3) as i32 - 1,
                        _ => INTERESTING_I32[rng.below(INTERESTING_I32.len())],
                    };
                    m[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
            // One byte set to an edge value.
            3 => {
                if !m.is_empty() {
                    let at = rng.below(m.len());
                    m[at] = [0x00, 0xFF, 0x80, 0x7F][rng.below(4)];
                }
            }
            // Insert random bytes.
            4 => {
                let at = rng.below(m.len() + 1);
                let k = 1 + rng.below(8);
                let extra = rng.bytes(k);
                m.splice(at..at, extra);
            }
            // Delete a range.
            5 => {
                if !m.is_empty() {
                    let at = rng.below(m.len());
                    let k = 1 + rng.below((m.len() - at).min(64));
                    m.drain(at..at + k);
                }
            }
            // Splice: this seed's head with another seed's tail.
            6 => {
                let other = &others[rng.below(others.len())];
                let cut = rng.below(m.len() + 1);
                let from = rng.below(other.len() + 1);
                m.truncate(cut);
                m.extend_from_slice(&other[from..]);
            }
            // Random bytes behind the seed's first bytes.
            _ => {
                let keep = [0, 4, 8, 10, 16, 30][rng.below(6)].min(m.len());
                m.truncate(keep);
                let k = rng.below(512);
                m.extend(rng.bytes(k));
            }
        }
        out.push(m);
    }
    out
}

/// Line-level mutations of a text seed.
fn text_mutants(seed: &[u8], rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(seed).into_owned();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = vec![seed.to_vec()];
    for cut in 0..lines.len().min(40) {
        out.push(lines[..cut].join("\n").into_bytes());
    }
    for _ in 0..n {
        let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        let at = rng.below(l.len());
        match rng.below(5) {
            0 => {
                l.remove(at);
            }
            1 => {
                let line = l[at].clone();
                l.insert(at, line);
            }
            2 => {
                let other = rng.below(l.len());
                l.swap(at, other);
            }
            // Replace one whitespace-separated token.
            3 => {
                let mut words: Vec<String> = l[at].split(' ').map(str::to_string).collect();
                let w = rng.below(words.len());
                words[w] = TOKENS[rng.below(TOKENS.len())].to_string();
                l[at] = words.join(" ");
            }
            // Insert a token somewhere in the line.
            _ => {
                let line = &mut l[at];
                let mut pos = rng.below(line.len() + 1);
                while !line.is_char_boundary(pos) {
                    pos -= 1;
                }
                line.insert_str(pos, TOKENS[rng.below(TOKENS.len())]);
            }
        }
        out.push(l.join("\n").into_bytes());
    }
    out
}

fn run_target(name: &str, per_seed: usize) {
    let (_, body) = fuzzing::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("known target");
    let seeds = seeds(name);
    let text = matches!(name, "detx" | "clbmap" | "subscription");
    // One stream per target, so adding a target changes no other's corpus.
    let mut rng = Rng(name.bytes().fold(0x5EED, |h: u64, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    }));
    let mut total = 0;
    for seed in &seeds {
        let mut inputs = if text {
            text_mutants(seed, &mut rng, per_seed)
        } else {
            binary_mutants(seed, &seeds, &mut rng, per_seed)
        };
        if text {
            // Binary damage to text too: bit flips and random bytes.
            inputs.extend(binary_mutants(seed, &seeds, &mut rng, per_seed / 4));
        }
        for (i, input) in inputs.iter().enumerate() {
            if catch_unwind(AssertUnwindSafe(|| body(input))).is_err() {
                let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
                let path = dir.join(format!("fuzz_corpus-{name}-{total}.bin"));
                std::fs::write(&path, input).unwrap();
                panic!(
                    "target {name}: input {i} of a seed of {} bytes panicked (see above); \
                     saved to {} for `cargo fuzz run {name} <file>`",
                    seed.len(),
                    path.display()
                );
            }
            total += 1;
        }
    }
    eprintln!("{name}: {total} inputs");
}

#[test]
fn decode_frame() {
    run_target("decode_frame", 300);
}

#[test]
fn timeslice_view() {
    run_target("timeslice_view", 600);
}

#[test]
fn tmch() {
    run_target("tmch", 400);
}

#[test]
fn dump_reader() {
    run_target("dump_reader", 40);
}

#[test]
fn controlhost_prefix() {
    run_target("controlhost_prefix", 400);
}

#[test]
fn subscription() {
    run_target("subscription", 300);
}

#[test]
fn detx() {
    run_target("detx", 60);
}

#[test]
fn clbmap() {
    run_target("clbmap", 300);
}

#[test]
fn every_target_is_run_here() {
    let here = [
        "decode_frame",
        "timeslice_view",
        "tmch",
        "dump_reader",
        "controlhost_prefix",
        "subscription",
        "detx",
        "clbmap",
    ];
    let names: Vec<&str> = fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, here);
}
