//! Every online sample of the PyPI package km3net-testdata opens, decodes
//! completely, and reads back in time order; truncated and bit-flipped
//! copies give errors, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use rootio::km3net::Stream;
use rootio::{Order, RunReader};

/// `km3net_testdata/data/online` of the workspace's .venv, where
/// scripts/test installs the package.
fn online_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KM3NET_TESTDATA_ONLINE") {
        return PathBuf::from(dir);
    }
    let py = std::env::var_os("KM3MON_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    let locate = || {
        Command::new(&py)
            .args(["-c", "import km3net_testdata, os; print(os.path.join(os.path.dirname(km3net_testdata.__file__), 'data', 'online'))"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    locate().unwrap_or_else(|| {
        panic!(
            "km3net-testdata not importable by {}: run scripts/test (it installs it)",
            py.display()
        )
    })
}

fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(online_dir())
        .expect("online sample folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "root"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the online samples, found {files:?}"
    );
    files
}

fn read_all(path: &Path, order: Order) -> Result<Vec<rootio::Entry>, rootio::RootError> {
    let mut run = RunReader::open(path, order)?;
    let mut out = Vec::new();
    while let Some(e) = run.next_entry() {
        out.push(e?);
    }
    Ok(out)
}

#[test]
fn every_online_sample_decodes_completely() {
    for path in samples() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let entries = read_all(&path, Order::File).unwrap_or_else(|e| panic!("{name}: {e}"));
        let run = RunReader::open(&path, Order::File).unwrap();
        assert_eq!(entries.len() as u64, run.len(), "{name}");
        assert_eq!(run.incomplete(), None, "{name}: a closed file is complete");
        assert!(!entries.is_empty(), "{name}: no entries");
        // The wire encoding decodes back to the same frame.
        for e in &entries {
            let record = e.to_record();
            let back = daq::frame::decode_frame(&record.payload).unwrap();
            assert_eq!(back, e.frame, "{name}: {:?} entry {}", e.stream, e.index);
        }
        // Records made straight from the ROOT bytes are the wire encoding
        // of the decoded entries, byte for byte.
        let records: Vec<_> = RunReader::open(&path, Order::File)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(records.len(), entries.len(), "{name}");
        for (r, e) in records.iter().zip(&entries) {
            let want = e.to_record();
            assert!(
                r.payload == want.payload,
                "{name}: {:?} entry {}",
                e.stream,
                e.index
            );
            assert_eq!((r.tag, r.offset), (want.tag, want.offset), "{name}");
        }
        let timed = read_all(&path, Order::Time).unwrap();
        assert_eq!(timed.len(), entries.len(), "{name}");
        let fis: Vec<i32> = timed.iter().map(|e| e.frame.header().frame_index).collect();
        assert!(fis.windows(2).all(|w| w[0] <= w[1]), "{name}: {fis:?}");
        let mut streams: Vec<Stream> = entries.iter().map(|e| e.stream).collect();
        streams.dedup();
        eprintln!("{name}: {} entries, streams {streams:?}", entries.len());
    }
}

/// Corrupt copies: every truncation point of a sample (in steps) and many
/// single-byte flips must end in an error or a complete read, never a
/// panic or a hang.
#[test]
fn truncated_and_flipped_copies_give_errors() {
    let dir = std::env::temp_dir().join(format!("rootio-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("x.root");
    let tested = [
        "KM3NeT_00000267_00025291_SN.root",
        "KM3NeT_00000049_00008456.summaryslice-167941.root",
        "km3net_online.root",
    ];
    let mut errors = 0;
    for name in tested {
        let original = std::fs::read(online_dir().join(name)).unwrap();
        let n = original.len();
        // Truncations: every 1/37 of the file, and close to the end.
        for cut in (0..n).step_by(n / 37 + 1).chain(n - 100..n) {
            std::fs::write(&copy, &original[..cut]).unwrap();
            if read_all(&copy, Order::Time).is_err() {
                errors += 1;
            }
        }
        // Flips: spread over the whole file, metadata included.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..150 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % n as u64) as usize;
            let mut bad = original.clone();
            bad[at] ^= 1 << (state >> 61);
            std::fs::write(&copy, &bad).unwrap();
            if let Err(e) = read_all(&copy, Order::File) {
                offsets_within(&e.to_string(), n, name);
            }
        }
    }
    // The case: a flip in a compressed basket's offset table was
    // reported at "byte 1654701" of a 1 637 119-byte file.
    let original = std::fs::read(online_dir().join("km3net_online.root")).unwrap();
    let mut bad = original.clone();
    bad[1_382_473] ^= 1;
    std::fs::write(&copy, &bad).unwrap();
    let e = read_all(&copy, Order::File).expect_err("a corrupt basket");
    offsets_within(&e.to_string(), original.len(), "km3net_online.root");
    assert!(
        errors > 100,
        "truncated copies should fail to read ({errors} did)"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Every `byte N` in an error message lies inside the file (positions
/// inside decompressed data are said so and not counted).
fn offsets_within(message: &str, size: usize, name: &str) {
    let mut text = message.to_string();
    while let Some(i) = text.find("(at byte ") {
        let end = text[i..].find(')').map_or(text.len(), |j| i + j + 1);
        text.replace_range(i..end, "");
    }
    for part in text.split("byte ").skip(1) {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(at) = digits.parse::<usize>() {
            assert!(at < size, "{name} ({size} bytes): {message}");
        }
    }
}
