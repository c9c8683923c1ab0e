#!/usr/bin/env python3
"""The original suite's approach to the health numbers, as a baseline for
bench/vs_km3pipe: km3pipe reads a ControlHost recording (16-byte prefix +
payload per message, as `km3mon simulate -o` and `km3mon record` write it)
and computes, from every message,

* DOM rates (spec section 3.1): per DOM the summed PMT rate of each IO_SUM
  summaryslice (km3pipe's DAQSummaryslice.dom_rates), averaged over
  windows of INTERVAL seconds of data time, in kHz;
* per-DU PMT rates (section 3.3): per PMT the mean rate and the HRV
  fraction of its IO_MONIT packets (km3pipe's TMCHData) per window, put in
  row (floor - 1) * 31 + ORDERED_PMT_IDS[channel] of its DU's column, and
  the HRV mark where the fraction exceeds the threshold.

Both as the original monitors did, with two differences that make the
comparison fair: every summaryslice is used (the original dom_rates took
one in 30), and windows are windows of data time (the original's were wall
clock). No plotting (neither side plots in the comparison).

usage: km3pipe_health.py RECORDING DETX [INTERVAL_S]
Prints one JSON line: messages per tag, wall and CPU seconds spent reading
and computing (after the imports and the detector), and a checksum.
"""
import json
import struct
import sys
import time
from collections import defaultdict
from io import BytesIO

import numpy as np
from km3pipe.controlhost import Prefix
from km3pipe.hardware import Detector
from km3pipe.io.daq import DAQSummaryslice, TMCHData

ORDERED_PMT_IDS = [
    28, 23, 22, 21, 27, 29, 20, 30, 26, 25, 19, 24, 13, 7, 1, 14,
    18, 12, 6, 2, 11, 8, 0, 15, 4, 3, 5, 17, 10, 9, 16,
]
HRV_RATIO_THRESHOLD = 0.95
DAQ_PREAMBLE = 8  # length (4) + data type (4) before the summaryslice


def messages(path):
    """(tag, payload) of each message of a ControlHost recording."""
    with open(path, "rb") as f:
        while True:
            head = f.read(Prefix.SIZE)
            if len(head) < Prefix.SIZE:
                return
            prefix = Prefix(data=head)
            yield str(prefix.tag), f.read(prefix.length)


class DomRates:
    """Mean summed rate per DOM per window (kHz)."""

    def __init__(self, interval):
        self.interval = interval
        self.window = None
        self.sums = defaultdict(lambda: [0.0, 0])
        self.maps = []

    def add(self, payload):
        s = DAQSummaryslice(BytesIO(payload[DAQ_PREAMBLE:]))
        w = s.header.time_stamp // self.interval
        if self.window is not None and w != self.window:
            self.close()
        self.window = w
        for dom_id, rate in s.dom_rates.items():
            acc = self.sums[dom_id]
            acc[0] += rate
            acc[1] += 1

    def close(self):
        self.maps.append({d: s / n / 1000 for d, (s, n) in self.sums.items()})
        self.sums.clear()


class PmtRates:
    """One column per DU per window: mean rate per PMT row, HRV marks."""

    def __init__(self, detector, interval, columns=800):
        self.interval = interval
        self.columns = columns
        self.place = {}  # dom_id -> (du, first row)
        for dom_id, (du, floor, *_rest) in detector.doms.items():
            if floor > 0:
                self.place[dom_id] = (du, (floor - 1) * 31)
        floors = max(f for _, f, *_r in detector.doms.values())
        self.rows = floors * 31
        self.matrices = {
            du: np.full((self.rows, columns), np.nan) for du in detector.dus
        }
        self.hrv = {du: np.full((self.rows, columns), np.nan) for du in detector.dus}
        self.window = None
        self.rates = defaultdict(list)  # (du, row) -> rates
        self.flags = defaultdict(list)  # (du, row) -> 0/1

    def add(self, payload):
        p = TMCHData(BytesIO(payload))
        w = p.utc_seconds // self.interval
        if self.window is not None and w != self.window:
            self.close()
        self.window = w
        place = self.place.get(p.dom_id)
        if place is None:
            return
        du, first = place
        for channel, rate in enumerate(p.pmt_rates):
            row = first + ORDERED_PMT_IDS[channel]
            self.rates[(du, row)].append(rate)
            self.flags[(du, row)].append((p.hrvbmp >> channel) & 1)

    def close(self):
        for du in self.matrices:
            self.matrices[du] = np.roll(self.matrices[du], -1, axis=1)
            self.matrices[du][:, -1] = np.nan
            self.hrv[du] = np.roll(self.hrv[du], -1, axis=1)
            self.hrv[du][:, -1] = np.nan
        for (du, row), rates in self.rates.items():
            self.matrices[du][row, -1] = np.mean(rates)
            if np.mean(self.flags[(du, row)]) > HRV_RATIO_THRESHOLD:
                self.hrv[du][row, -1] = 1.0
        self.rates.clear()
        self.flags.clear()


def main():
    path, detx = sys.argv[1], sys.argv[2]
    interval = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    detector = Detector(filename=detx)
    dom_rates = DomRates(interval)
    pmt_rates = PmtRates(detector, interval)
    counts = defaultdict(int)
    start, cpu_start = time.perf_counter(), time.process_time()
    for tag, payload in messages(path):
        counts[tag] += 1
        if tag == "IO_SUM":
            dom_rates.add(payload)
        elif tag == "IO_MONIT":
            pmt_rates.add(payload)
    dom_rates.close()
    pmt_rates.close()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    checksum = float(
        sum(np.nansum(m[:, -1]) for m in pmt_rates.matrices.values())
        + sum(dom_rates.maps[-1].values())
    )
    print(
        json.dumps(
            {
                "messages": dict(counts),
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "dom_rate_maps": len(dom_rates.maps),
                "doms_in_last_map": len(dom_rates.maps[-1]),
                "checksum": checksum,
            }
        )
    )


if __name__ == "__main__":
    main()
