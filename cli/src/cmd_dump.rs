//! `km3mon dump`: decode dump files and print one JSON object per frame
//! (JSON Lines) with the field names of the golden decodings, so that the
//! output can be diffed against them or fed to `jq`. Errors go to stderr as
//! `FILE: byte OFFSET: message`; reading goes on after each one and the
//! exit code tells at the end whether there were any.
//!
//! `km3mon dump --detx FILE` summarises a detector file instead.
//!
//! ROOT files (archived runs, recognised by their magic) print the same
//! records, tree by tree in stored order; each record also gives its
//! `entry` number and, for timeslices, its `stream` (L0, L1, L2, SN, TS).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use daq::controlhost::Tag;
use daq::detector::Detector;
use daq::dump::{DumpReader, Payload, Record, DEFAULT_MAX_RECORD};
use daq::event::Event;
use daq::frame::{DaqFrame, DaqHeader, FrameStatus};
use daq::msg::MsgLine;
use daq::summary::Summaryslice;
use daq::timeslice::{Timeslice, TimesliceView};
use daq::tmch::TmchPacket;
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Dump files: DAQ frames back to back (IO_EVT, IO_SUM, IO_TS*),
    /// length-prefixed CLB packets (IO_MONIT), ControlHost recordings or
    /// ROOT files of archived runs; recognised from their content. FIFOs
    /// and pipes work; `-` reads standard input.
    #[arg(required_unless_present = "detx")]
    files: Vec<PathBuf>,
    /// Read the files as dumps of this tag (IO_MONIT: length-prefixed
    /// packets; IO_EVT, IO_SUM, IO_TS*: DAQ frames) instead of recognising
    /// the layout.
    #[arg(long, value_name = "TAG")]
    tag: Option<Tag>,
    /// Largest record accepted, in bytes; longer ones are reported and
    /// skipped.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_RECORD)]
    max_record: usize,
    /// Print a summary of a DETX detector file instead of decoding dumps.
    #[arg(long, value_name = "FILE.detx", conflicts_with_all = ["files", "tag"])]
    detx: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = match &args.detx {
        Some(path) => dump_detx(path, &mut out),
        None => dump_files(&args, &mut out),
    };
    match result.and_then(|code| out.flush().map(|()| code)) {
        Ok(code) => Ok(code),
        // A closed pipe (`km3mon dump … | head`) is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing to stdout"),
    }
}

fn dump_detx(path: &Path, out: &mut impl Write) -> io::Result<ExitCode> {
    let detector = match Detector::from_file(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let summary = DetxSummary {
        det_id: detector.det_id(),
        version: detector.version(),
        n_dus: detector.dus().len(),
        n_doms: detector.n_optical_modules(),
        n_base_modules: detector.n_base_modules(),
        n_pmts: detector.n_pmts(),
    };
    write_line(out, &summary)?;
    Ok(ExitCode::SUCCESS)
}

fn dump_files(args: &Args, out: &mut impl Write) -> io::Result<ExitCode> {
    let mut errors = 0usize;
    for path in &args.files {
        let name = path.display();
        // Opened once: a FIFO or a pipe cannot be read twice.
        let reader = match rootio::open_input(path) {
            Ok(rootio::Input::Root) => {
                errors += dump_root(path, out)?;
                continue;
            }
            Ok(rootio::Input::Stream(input)) => {
                DumpReader::new(input).with_max_record(args.max_record)
            }
            Err(e) => {
                report(out, format_args!("{name}: {e}"))?;
                errors += 1;
                continue;
            }
        };
        let reader = match args.tag {
            Some(tag) => reader.with_tag(tag),
            None => reader,
        };
        for item in reader {
            let printed = item.and_then(|record| {
                let payload = record.decode()?;
                Ok((record, payload))
            });
            match printed {
                Ok((record, payload)) => write_record(out, &record, &payload, None)?,
                Err(e) => {
                    report(out, format_args!("{name}: {e}"))?;
                    errors += 1;
                }
            }
        }
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Print the KM3NeT entries of a ROOT file; returns the number of errors.
fn dump_root(path: &Path, out: &mut impl Write) -> io::Result<usize> {
    let name = path.display();
    let mut run = match rootio::RunReader::open(path, rootio::Order::File) {
        Ok(run) => run,
        Err(e) => {
            report(out, format_args!("{name}: {e}"))?;
            return Ok(1);
        }
    };
    // A file still being written dumps what it holds, with a warning
    // (not an error: nothing is wrong with what is there).
    if let Some(warning) = run.incomplete() {
        report(out, format_args!("warning: {warning}"))?;
    }
    let mut errors = 0;
    while let Some(entry) = run.next_entry() {
        match entry {
            Ok(e) => {
                let record = e.to_record();
                let origin = RootOrigin {
                    entry: e.index,
                    stream: e.stream.timeslice_label(),
                };
                write_record(out, &record, &Payload::Frame(e.frame), Some(origin))?;
            }
            Err(e) => {
                report(out, format_args!("{name}: {e}"))?;
                errors += 1;
            }
        }
    }
    Ok(errors)
}

/// Where a record of a ROOT file comes from.
#[derive(Clone, Copy)]
struct RootOrigin {
    entry: u64,
    stream: Option<&'static str>,
}

/// An error on stderr, after what stdout holds so far, so that both
/// streams read in file order on a terminal.
fn report(out: &mut impl Write, message: std::fmt::Arguments<'_>) -> io::Result<()> {
    out.flush()?;
    eprintln!("{message}");
    Ok(())
}

fn write_line(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

fn write_record(
    out: &mut impl Write,
    record: &Record,
    payload: &Payload,
    root: Option<RootOrigin>,
) -> io::Result<()> {
    let common = Common {
        byte_offset: record.offset,
        tag: record.tag.as_ref().map(Tag::as_str),
        entry: root.map(|r| r.entry),
        stream: root.and_then(|r| r.stream),
    };
    let preamble = || Preamble {
        length: record.payload.len(),
        data_type: daq::frame::Preamble::decode(&record.payload)
            .map_or(0, |p| p.data_type.as_i32()),
    };
    match payload {
        Payload::Frame(DaqFrame::Event(e)) => write_line(out, &event(common, preamble(), e)),
        Payload::Frame(DaqFrame::Summaryslice(s)) => {
            write_line(out, &summaryslice(common, preamble(), s))
        }
        Payload::Frame(DaqFrame::Timeslice(t)) => {
            write_line(out, &timeslice(common, preamble(), t, &record.payload))
        }
        Payload::Tmch(p) => write_line(out, &tmch(common, record.payload.len(), p)),
        Payload::Msg(m) => write_line(out, &msg(common, m)),
        Payload::Other => write_line(
            out,
            &OtherOut {
                kind: "other",
                common,
                length: record.payload.len(),
            },
        ),
    }
}

#[derive(Serialize)]
struct DetxSummary {
    det_id: i32,
    version: u32,
    n_dus: usize,
    n_doms: usize,
    n_base_modules: usize,
    n_pmts: usize,
}

/// Fields of every record.
#[derive(Serialize)]
struct Common<'a> {
    byte_offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    /// ROOT files: entry number in its tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<u64>,
    /// ROOT files: the timeslice stream (L0, L1, L2, SN, TS).
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<&'static str>,
}

#[derive(Serialize)]
struct Preamble {
    length: usize,
    data_type: i32,
}

#[derive(Serialize)]
struct Header {
    det_id: i32,
    run: i32,
    frame_index: i32,
    utc_seconds: u32,
    wr_status_msb: u8,
    utc_16ns_ticks: u32,
    utc_nanoseconds: u64,
}

fn header(h: &DaqHeader) -> Header {
    Header {
        det_id: h.det_id,
        run: h.run,
        frame_index: h.frame_index,
        utc_seconds: h.utc_seconds,
        wr_status_msb: u8::from(h.wr_status_msb),
        utc_16ns_ticks: h.utc_16ns_ticks,
        utc_nanoseconds: h.utc_nanoseconds(),
    }
}

#[derive(Serialize)]
struct EventOut<'a> {
    kind: &'static str,
    #[serde(flatten)]
    common: Common<'a>,
    version: Option<i16>,
    preamble: Preamble,
    header: Header,
    trigger_counter: u64,
    trigger_mask: u64,
    trigger_bits: TriggerBits,
    overlays: u32,
    n_triggered_hits: usize,
    n_snapshot_hits: usize,
    triggered_hits: Vec<HitOut>,
    snapshot_hits: Vec<HitOut>,
}

#[derive(Serialize)]
struct TriggerBits {
    #[serde(rename = "3dshower_bit1")]
    shower_3d: bool,
    #[serde(rename = "mxshower_bit2")]
    shower_mx: bool,
    #[serde(rename = "3dmuon_bit4")]
    muon_3d: bool,
    #[serde(rename = "nanobeacon_bit5")]
    nanobeacon: bool,
    #[serde(rename = "factory_limit_bit31")]
    factory_limit: bool,
}

#[derive(Serialize)]
struct HitOut {
    dom_id: u32,
    channel_id: u8,
    time: u32,
    tot: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_mask: Option<u64>,
}

fn event<'a>(common: Common<'a>, preamble: Preamble, e: &Event) -> EventOut<'a> {
    EventOut {
        kind: "event",
        common,
        version: e.version,
        preamble,
        header: header(&e.header),
        trigger_counter: e.trigger_counter,
        trigger_mask: e.trigger_mask,
        trigger_bits: TriggerBits {
            shower_3d: e.is_3d_shower(),
            shower_mx: e.is_mx_shower(),
            muon_3d: e.is_3d_muon(),
            nanobeacon: e.is_nanobeacon(),
            factory_limit: e.hit_factory_limit(),
        },
        overlays: e.overlays,
        n_triggered_hits: e.triggered_hits.len(),
        n_snapshot_hits: e.snapshot_hits.len(),
        triggered_hits: e
            .triggered_hits
            .iter()
            .map(|h| HitOut {
                dom_id: h.dom_id,
                channel_id: h.channel_id,
                time: h.time,
                tot: h.tot,
                trigger_mask: Some(h.trigger_mask),
            })
            .collect(),
        snapshot_hits: e
            .snapshot_hits
            .iter()
            .map(|h| HitOut {
                dom_id: h.dom_id,
                channel_id: h.channel_id,
                time: h.time,
                tot: h.tot,
                trigger_mask: None,
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct SummarysliceOut<'a> {
    kind: &'static str,
    #[serde(flatten)]
    common: Common<'a>,
    version: Option<i16>,
    preamble: Preamble,
    header: Header,
    n_frames: usize,
    frames: Vec<SummaryFrameOut>,
}

/// The status words a legacy frame lacks are left out rather than shown
/// as zeros, and so are the flags derived from them.
#[derive(Serialize)]
struct SummaryFrameOut {
    dom_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    daq: Option<u32>,
    status: u32,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    versioned: Option<VersionedStatus>,
    wr_status: bool,
    hrv_channels: Vec<u8>,
    rates_raw: [u8; 31],
    rates_hz: [f64; 31],
    rate_sum_hz: f64,
}

#[derive(Serialize)]
struct VersionedStatus {
    fifo: u32,
    status_3: u32,
    status_4: u32,
    udp_received_packets: u16,
    udp_max_sequence_number: u16,
    udp_complete: bool,
    udp_trailer: bool,
    fifo_almost_full_channels: Vec<u8>,
}

fn versioned_status(s: &FrameStatus) -> VersionedStatus {
    VersionedStatus {
        fifo: s.fifo,
        status_3: s.status_3,
        status_4: s.status_4,
        udp_received_packets: s.udp_received_packets(),
        udp_max_sequence_number: s.udp_max_sequence_number(),
        udp_complete: s.udp_complete(),
        udp_trailer: s.udp_trailer(),
        fifo_almost_full_channels: s.fifo_almost_full_channels().collect(),
    }
}

fn summaryslice<'a>(
    common: Common<'a>,
    preamble: Preamble,
    s: &Summaryslice,
) -> SummarysliceOut<'a> {
    let versioned = !s.is_legacy();
    SummarysliceOut {
        kind: "summaryslice",
        common,
        version: s.version,
        preamble,
        header: header(&s.header),
        n_frames: s.frames.len(),
        frames: s
            .frames
            .iter()
            .map(|f| SummaryFrameOut {
                dom_id: f.dom_id,
                daq: versioned.then_some(f.status.daq),
                status: f.status.status,
                versioned: versioned.then(|| versioned_status(&f.status)),
                wr_status: f.status.wr_status(),
                hrv_channels: f.status.hrv_channels().collect(),
                rates_raw: f.rates,
                rates_hz: f.rates_hz(),
                rate_sum_hz: f.rate_sum_hz(),
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct TimesliceOut<'a> {
    kind: &'static str,
    #[serde(flatten)]
    common: Common<'a>,
    version: Option<i16>,
    preamble: Preamble,
    header: Header,
    n_frames: usize,
    n_hits_total: usize,
    n_time_sync_invalid: usize,
    frames: Vec<SuperFrameOut>,
}

#[derive(Serialize)]
struct SuperFrameOut {
    byte_offset: u64,
    header: Header,
    dom_id: u32,
    daq: u32,
    status: u32,
    #[serde(flatten)]
    versioned: VersionedStatus,
    wr_status: bool,
    hrv_channels: Vec<u8>,
    time_sync_valid: bool,
    n_hits: usize,
    hits: Vec<TimesliceHitOut>,
}

#[derive(Serialize)]
struct TimesliceHitOut {
    channel_id: u8,
    time: u32,
    tot: u8,
}

fn timeslice<'a>(
    common: Common<'a>,
    preamble: Preamble,
    t: &Timeslice,
    bytes: &[u8],
) -> TimesliceOut<'a> {
    // Super-frame offsets come from the view of the same bytes.
    let offsets: Vec<u64> = TimesliceView::new(bytes)
        .map(|v| v.frames().map(|f| f.offset() as u64).collect())
        .unwrap_or_default();
    let base = common.byte_offset;
    TimesliceOut {
        kind: "timeslice",
        version: t.version,
        preamble,
        header: header(&t.header),
        n_frames: t.frames.len(),
        n_hits_total: t.n_hits(),
        n_time_sync_invalid: t
            .frames
            .iter()
            .filter(|f| !f.status.time_sync_valid())
            .count(),
        frames: t
            .frames
            .iter()
            .enumerate()
            .map(|(k, f)| SuperFrameOut {
                byte_offset: base + offsets.get(k).copied().unwrap_or(0),
                header: header(&f.header),
                dom_id: f.dom_id,
                daq: f.status.daq,
                status: f.status.status,
                versioned: versioned_status(&f.status),
                wr_status: f.status.wr_status(),
                hrv_channels: f.status.hrv_channels().collect(),
                time_sync_valid: f.status.time_sync_valid(),
                n_hits: f.hits.len(),
                hits: f
                    .hits
                    .iter()
                    .map(|h| TimesliceHitOut {
                        channel_id: h.channel_id,
                        time: h.time,
                        tot: h.tot,
                    })
                    .collect(),
            })
            .collect(),
        common,
    }
}

/// The field names of `IO_MONIT.golden.json` (km3pipe's `TMCHData`).
#[derive(Serialize)]
struct TmchOut<'a> {
    kind: &'static str,
    #[serde(flatten)]
    common: Common<'a>,
    version: Option<u8>,
    length_prefix: usize,
    data_type: &'static str,
    run: u32,
    udp_sequence_number: u32,
    utc_seconds: u32,
    nanoseconds: u64,
    dom_id: u32,
    dom_status_0: u32,
    dom_status_1: u32,
    dom_status_2: u32,
    dom_status_3: u32,
    pmt_rates_hz: [f64; 31],
    pmt_raw_counts: [u32; 31],
    hrvbmp: u32,
    hrv_channels: Vec<u8>,
    flags: u32,
    ahrs_valid: bool,
    structure_version_bits: u8,
    // Widened to f64 as the goldens store them (serialising the f32
    // itself would print its shortest f32 form, e.g. 199.05983).
    yaw: f64,
    pitch: f64,
    roll: f64,
    #[serde(rename = "A")]
    a: [f64; 3],
    #[serde(rename = "G")]
    g: [f64; 3],
    #[serde(rename = "H")]
    h: [f64; 3],
    temp: f64,
    humidity: f64,
    tdcfull: u32,
    aesfull: u32,
    flushc: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts_duration_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tdc_supertime_fifo_size: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aes_supertime_fifo_size: Option<u16>,
    unparsed_trailing_bytes_hex: String,
}

fn tmch<'a>(common: Common<'a>, length: usize, p: &TmchPacket) -> TmchOut<'a> {
    TmchOut {
        kind: "tmch",
        common,
        version: p.structure_version(),
        length_prefix: length,
        data_type: "TMCH",
        run: p.run,
        udp_sequence_number: p.udp_sequence_number,
        utc_seconds: p.utc_seconds,
        nanoseconds: p.nanoseconds(),
        dom_id: p.dom_id,
        dom_status_0: p.dom_status[0],
        dom_status_1: p.dom_status[1],
        dom_status_2: p.dom_status[2],
        dom_status_3: p.dom_status[3],
        pmt_rates_hz: p.pmt_rates_hz(),
        pmt_raw_counts: p.counts,
        hrvbmp: p.hrvbmp,
        hrv_channels: p.hrv_channels().collect(),
        flags: p.flags,
        ahrs_valid: p.ahrs_valid(),
        structure_version_bits: p.structure_version_code(),
        yaw: f64::from(p.yaw),
        pitch: f64::from(p.pitch),
        roll: f64::from(p.roll),
        a: p.a.map(f64::from),
        g: p.g.map(f64::from),
        h: p.h.map(f64::from),
        temp: p.temperature_c(),
        humidity: p.humidity_percent(),
        tdcfull: p.tdcfull,
        aesfull: p.aesfull,
        flushc: p.flushc,
        ts_duration_ms: p.ts_duration,
        tdc_supertime_fifo_size: p.tdc_supertime_fifo_size,
        aes_supertime_fifo_size: p.aes_supertime_fifo_size,
        unparsed_trailing_bytes_hex: p.trailing.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

#[derive(Serialize)]
struct MsgOut<'a> {
    kind: &'static str,
    #[serde(flatten)]
    common: Common<'a>,
    source: &'static str,
    text: String,
}

fn msg<'a>(common: Common<'a>, m: &MsgLine) -> MsgOut<'a> {
    MsgOut {
        kind: "msg",
        common,
        source: m.source().name(),
        text: m.text().into_owned(),
    }
}

#[derive(Serialize)]
struct OtherOut<'a> {
    kind: &'static str,
    #[serde(flatten)]
    common: Common<'a>,
    length: usize,
}
