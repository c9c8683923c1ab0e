#!/usr/bin/env bash
# Seed the cargo-fuzz corpora (fuzz/corpus/<target>/, gitignored) from the
# KM3NeT sample files: one file per DAQ frame or CLB packet, whole dumps,
# a ControlHost recording built from them, and small DETX / CLB map files.
# Idempotent; run before `cargo fuzz run TARGET`.
#
#   KM3MON_TESTDATA  sample files (default: ../shared/testdata beside the
#                    workspace)
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
testdata="${KM3MON_TESTDATA:-$fuzz/../../shared/testdata}"
[ -d "$testdata/daq" ] || {
  echo "seed.sh: no sample files at $testdata (set KM3MON_TESTDATA)" >&2
  exit 1
}

exec python3 - "$testdata" "$fuzz/corpus" <<'EOF'
import os
import struct
import sys

testdata, corpus = sys.argv[1], sys.argv[2]


def put(target, name, data):
    os.makedirs(os.path.join(corpus, target), exist_ok=True)
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data)


def read(*parts):
    with open(os.path.join(testdata, *parts), "rb") as f:
        return f.read()


def daq_frames(name):
    """Frames of a DAQ dump, split by their preamble length (spec section 7)."""
    data, pos, out = read("daq", name), 0, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from("<i", data, pos)
        out.append(data[pos : pos + length])
        pos += length
    return out


def packets(name):
    """Packets of a length-prefixed dump (u32 LE length, then the packet)."""
    data, pos, out = read("daq", name), 0, []
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def message(tag, payload):
    """A ControlHost message: 8-byte tag, i32 BE length, 4 reserved bytes."""
    return tag.encode().ljust(8, b"\0") + struct.pack(">i", len(payload)) + bytes(4) + payload


def reduced_detx(text, n_modules):
    """A DETX cut down to its first modules, comments dropped."""
    data, open_comment = [], False
    for line in text.splitlines():
        single_quote = line.count('"') == 1
        if open_comment:
            open_comment = not single_quote
            continue
        if line.lstrip().startswith("#"):
            open_comment = single_quote
            continue
        if line.strip():
            data.append(line)
    header, body = data[:3], data[4:]
    out, i = [], 0
    for _ in range(n_modules):
        n_pmts = int(body[i].split()[-1])
        out += body[i : i + 1 + n_pmts]
        i += 1 + n_pmts
    return "\n".join(header + [str(n_modules)] + out) + "\n"


tags = {"IO_EVT.dat": "IO_EVT", "IO_SUM.dat": "IO_SUM", "IO_TSSN.dat": "IO_TSSN"}
recording = message("_Subscri", b" w IO_EVT a IO_SUM") + message("_Always", b"")
for name, tag in tags.items():
    for i, frame in enumerate(daq_frames(name)):
        put("decode_frame", f"{tag}-{i}", frame)
        if tag == "IO_TSSN":
            put("timeslice_view", f"{tag}-{i}", frame)
        recording += message(tag, frame)
for i, packet in enumerate(packets("IO_MONIT.dat")):
    put("tmch", f"IO_MONIT-{i}", packet)
    recording += message("IO_MONIT", packet)
recording += message("MSG", b"2024 F0 a log line")

for name in ["IO_EVT.dat", "IO_SUM.dat", "IO_TSSN.dat", "IO_MONIT.dat"]:
    put("dump_reader", name, read("daq", name))
put("dump_reader", "recording", recording[:8192])
put("controlhost_prefix", "recording", recording[:4096])
put("controlhost_prefix", "subscribe", recording[:58])
for i, s in enumerate([b" w IO_EVT a IO_SUM w MSG", b"w X a X", b"  a IO_TSL0\tw IO_MONIT\n"]):
    put("subscription", f"sub-{i}", s)

for name in ["detx_v1.detx", "detx_v2.detx", "detx_v3.detx", "detx_v3_whitespace.detx"]:
    put("detx", name, read("detx", name))
for name in ["detx_v4.detx", "detx_v5.detx", "km3net_offline.detx"]:
    text = read("detx", name).decode()
    put("detx", f"{name}-3-modules", reduced_detx(text, 3).encode())
# The start of the multi-line comment sample: its comment spans lines.
put("detx", "multiline-comment-head", read("detx", "detx_v5_invalid_multiline_comments.detx")[:1500])

clbmap = read("detx", "clbmap.txt")
put("clbmap", "clbmap.txt", clbmap)
put("clbmap", "clbmap-head", b"\n".join(clbmap.split(b"\n")[:6]))

for target in sorted(os.listdir(corpus)):
    print(f"{target}: {len(os.listdir(os.path.join(corpus, target)))} files")
EOF
