//! Files written by `rootio::write` (all four compressions, single- and
//! multi-block baskets, several baskets per branch) read back to exactly
//! the frames that went in, in time order.

use daq::frame::{DaqFrame, DataType};
use rootio::km3net::Stream;
use rootio::write::gen::RunGen;
use rootio::write::{Compression, RootWriter, WriteOptions};
use rootio::{Order, RunReader};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rootio-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes `n` summaryslices and SN timeslices (in pairs of swapped frame
/// indices, as a data filter would), returns what was written.
fn write_run(path: &std::path::Path, opts: WriteOptions, n: i32) -> Vec<DaqFrame> {
    let mut g = RunGen::new(133, 9000, 40, 7);
    let mut w = RootWriter::create(path, opts).unwrap();
    let mut frames = Vec::new();
    for pair in 0..n / 2 {
        for fi in [2 * pair + 2, 2 * pair + 1] {
            let s = g.summaryslice(fi);
            w.summaryslice(&s).unwrap();
            let t = g.timeslice(fi, DataType::TimesliceSn, 30);
            w.timeslice(Stream::Sn, &t).unwrap();
            frames.push(DaqFrame::Summaryslice(s));
            frames.push(DaqFrame::Timeslice(t));
        }
    }
    w.finish().unwrap();
    frames
}

fn read(path: &std::path::Path, order: Order) -> Vec<DaqFrame> {
    let mut run = RunReader::open(path, order).unwrap();
    let mut out = Vec::new();
    while let Some(e) = run.next_entry() {
        out.push(e.unwrap().frame);
    }
    out
}

#[test]
fn every_compression_round_trips_with_multi_block_baskets() {
    for how in [
        Compression::None,
        Compression::Zlib,
        Compression::Lz4,
        Compression::Lzma,
        Compression::Zstd,
    ] {
        for block_size in [0xff_ffff, 20_000] {
            let path = scratch(&format!("{how:?}-{block_size}.root"));
            let opts = WriteOptions {
                compression: how,
                basket_size: 64 << 10,
                block_size,
                always_compress: true,
            };
            let written = write_run(&path, opts, 24);
            let file = rootio::RootFile::open(&path).unwrap();
            let key = file.key("KM3NET_TIMESLICE_SN").unwrap();
            let tree = rootio::Tree::read(&file, key).unwrap();
            let blob = tree.branch("vector<KM3NETDAQ::JDAQSuperFrame>").unwrap();
            assert!(blob.baskets.len() > 2, "{how:?}: several baskets");
            // The baskets are stored compressed (so the decompressor runs),
            // and in several blocks when the block size is small.
            let mut multi = 0;
            for b in &blob.baskets {
                let key = file.read_key(b.seek).unwrap();
                let compressed = key.stored_len() != key.objlen;
                assert_eq!(compressed, how != Compression::None, "{how:?}");
                if compressed && key.objlen > 2 * block_size as u64 {
                    multi += 1;
                }
            }
            if block_size < 0xff_ffff && how != Compression::None {
                assert!(multi >= 2, "{how:?}: multi-block baskets");
            }
            let mut got = read(&path, Order::File);
            // File order is tree by tree: summaryslices first.
            let mut want: Vec<DaqFrame> = written
                .iter()
                .filter(|f| matches!(f, DaqFrame::Summaryslice(_)))
                .cloned()
                .collect();
            want.extend(
                written
                    .iter()
                    .filter(|f| matches!(f, DaqFrame::Timeslice(_)))
                    .cloned(),
            );
            assert_eq!(got.len(), want.len(), "{how:?} {block_size}");
            assert!(got == want, "{how:?} {block_size}: frames differ");
            let records: Vec<_> = RunReader::open(&path, Order::File)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for (r, f) in records.iter().zip(&want) {
                assert!(r.payload == f.encode(), "{how:?}: wire bytes differ");
            }
            got = read(&path, Order::Time);
            let fis: Vec<i32> = got.iter().map(|f| f.header().frame_index).collect();
            assert!(fis.windows(2).all(|w| w[0] <= w[1]), "{fis:?}");
            std::fs::remove_file(&path).ok();
        }
    }
}

/// A file still being written: trees saved at an autosave (the baskets
/// being filled embedded in the metadata), more baskets written after it,
/// no final key list. Everything the metadata reaches is read, embedded
/// baskets included; the entries after it are counted and named; a copy
/// cut inside the last basket reads the same.
#[test]
fn file_still_being_written_reads_to_its_last_autosave() {
    let path = scratch("in-progress.root");
    let mut g = RunGen::new(133, 9001, 30, 3);
    let opts = WriteOptions {
        compression: Compression::Zlib,
        basket_size: 40 << 10,
        ..WriteOptions::default()
    };
    let mut w = RootWriter::create(&path, opts).unwrap();
    let mut saved = Vec::new();
    for fi in 1..=25 {
        let s = g.summaryslice(fi);
        let t = g.timeslice(fi, DataType::TimesliceSn, 20);
        w.summaryslice(&s).unwrap();
        w.timeslice(Stream::Sn, &t).unwrap();
        if fi <= 17 {
            saved.push(DaqFrame::Summaryslice(s));
            saved.push(DaqFrame::Timeslice(t));
        }
        if fi == 17 {
            w.autosave().unwrap();
        }
    }
    // Dropped, not finished: the process writing it is still at work.
    drop(w);

    let file = rootio::RootFile::open(&path).unwrap();
    let tree = rootio::Tree::read(&file, file.key("KM3NET_TIMESLICE_SN").unwrap()).unwrap();
    let blob = tree.branch("vector<KM3NETDAQ::JDAQSuperFrame>").unwrap();
    assert!(
        blob.embedded.is_some(),
        "the autosave embeds the open basket"
    );
    assert!(!blob.baskets.is_empty(), "and lists the written ones");

    // Streams with entries after the autosave that can be seen.
    let check = |path: &std::path::Path, streams: usize| {
        let run = RunReader::open(path, Order::Time).unwrap();
        let missing = run.unreached();
        assert_eq!(missing.len(), streams, "{missing:?}");
        assert!(missing.iter().all(|&(_, n)| n > 0 && n <= 8), "{missing:?}");
        let warning = run.incomplete().expect("a warning");
        assert!(warning.contains("not reached"), "{warning}");
        assert!(warning.contains("KM3NET_TIMESLICE_SN"), "{warning}");
        let mut got = read(path, Order::File);
        got.sort_by_key(|f| (f.header().frame_index, matches!(f, DaqFrame::Timeslice(_))));
        assert_eq!(got.len(), saved.len());
        assert!(got == saved, "frames up to the autosave");
    };
    check(&path, 2);
    let bytes = std::fs::read(&path).unwrap();
    let cut = scratch("in-progress-cut.root");
    std::fs::write(&cut, &bytes[..bytes.len() - 700]).unwrap();
    // The summaryslice basket written last is cut: only the timeslice
    // entries after the autosave can still be counted.
    check(&cut, 1);

    // Never saved at all: an error that says what is there.
    let never = scratch("never-saved.root");
    let mut w = RootWriter::create(&never, opts).unwrap();
    for fi in 1..=40 {
        w.summaryslice(&g.summaryslice(fi)).unwrap();
    }
    drop(w);
    let e = RunReader::open(&never, Order::Time)
        .err()
        .expect("an error");
    let e = e.to_string();
    assert!(
        e.contains("not closed") && e.contains("KM3NET_SUMMARYSLICE"),
        "{e}"
    );
    for p in [path, cut, never] {
        std::fs::remove_file(p).ok();
    }
}
