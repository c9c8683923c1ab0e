#!/usr/bin/env python3
"""Decode the KM3NeT sample dumps with km3pipe (the original suite's reader)
and print the time per frame type as JSON, for bench/decode_vs_km3pipe.

The frames are split by their preamble length (spec section 7) outside the
timed loop; inside it, km3pipe decodes each frame exactly as the original
monitors did: DAQSummaryslice / DAQEvent after the preamble, the
TimesliceParser for timeslices, TMCHData for CLB monitoring packets.

usage: km3pipe_decode.py TESTDATA_DIR [MIN_SECONDS]
"""
import json
import struct
import sys
import time
from io import BytesIO
from types import SimpleNamespace

from km3pipe.io.daq import DAQEvent, DAQSummaryslice, TimesliceParser, TMCHData


def daq_frames(path):
    data = open(path, "rb").read()
    pos, frames = 0, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from("<i", data, pos)
        frames.append(data[pos : pos + length])
        pos += length
    return frames


def tmch_packets(path):
    data = open(path, "rb").read()
    pos, packets = 0, []
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        packets.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return packets


def timed(decode, items, min_seconds):
    """Seconds per item, repeating the whole list for at least min_seconds."""
    rounds, start = 0, time.perf_counter()
    while True:
        for item in items:
            decode(item)
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / (rounds * len(items))


def main():
    testdata = sys.argv[1]
    min_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    ts_parser = SimpleNamespace(legacy=False)

    events = daq_frames(f"{testdata}/daq/IO_EVT.dat")
    slices = daq_frames(f"{testdata}/daq/IO_SUM.dat")
    timeslices = daq_frames(f"{testdata}/daq/IO_TSSN.dat")
    packets = tmch_packets(f"{testdata}/daq/IO_MONIT.dat")
    n_summary_frames = sum(struct.unpack_from("<i", s, 30)[0] for s in slices)

    result = {
        "event_ns": 1e9 * timed(lambda f: DAQEvent(BytesIO(f[8:])), events, min_seconds),
        "summaryslice_ns": 1e9
        * timed(lambda f: DAQSummaryslice(BytesIO(f[8:])), slices, min_seconds),
        "timeslice_ns": 1e9
        * timed(
            lambda f: TimesliceParser._parse_timeslice(ts_parser, BytesIO(f)),
            timeslices,
            min_seconds,
        ),
        "tmch_ns": 1e9 * timed(lambda p: TMCHData(BytesIO(p)), packets, min_seconds),
    }
    # Per summary frame: the slice time spread over its DOM frames.
    result["summary_frame_ns"] = result["summaryslice_ns"] * len(slices) / n_summary_frames
    print(json.dumps(result))


if __name__ == "__main__":
    main()
