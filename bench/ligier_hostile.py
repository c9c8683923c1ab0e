#!/usr/bin/env python3
"""Ligier under hostile load: memory per idle connection, and how long a
new client waits for `_ShowSta` while another sends a huge `_Subscri`.

    python3 bench/ligier_hostile.py target/release/km3mon [--conns 500] [--entries 100000] [--named]

`--named`: each client sends `_MyId` once before idling, as real monitors
do, so that every connection thread has allocated something.

Starts `km3mon ligier` on a free 127.0.0.1 port, samples VmRSS from
/proc/PID/status, prints one line per figure. Everything is bounded in
count and time; the Ligier is killed at the end.
"""
import argparse, os, socket, struct, subprocess, sys, time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def message(tag, payload):
    return tag.encode().ljust(8, b"\0") + struct.pack(">iI", len(payload), 0) + payload


def read_message(sock):
    head = b""
    while len(head) < 16:
        chunk = sock.recv(16 - len(head))
        if not chunk:
            raise EOFError
        head += chunk
    n = struct.unpack(">i", head[8:12])[0]
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            raise EOFError
        body += chunk
    return head[:8].rstrip(b"\0").decode(), body


def show_status(port, timeout=60.0):
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(message("_ShowSta", b""))
    tag, _ = read_message(s)
    s.close()
    assert tag == "_ShowSta"
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("km3mon")
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--named", action="store_true")
    a = ap.parse_args()
    port = free_port()
    lig = subprocess.Popen([a.km3mon, "ligier", "--port", str(port), "--status-interval", "0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=dict(os.environ, KM3MON_LOG="warn"))
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                show_status(port, 2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        time.sleep(0.5)
        base = rss_kib(lig.pid)
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(a.conns)]
        if a.named:
            for i, c in enumerate(conns):
                c.sendall(message("_MyId", b"idle-%d" % i))
        time.sleep(2)
        show_status(port)  # every connection is being served
        held = rss_kib(lig.pid)
        for c in conns:
            c.close()
        time.sleep(3)
        after = rss_kib(lig.pid)
        print(f"idle connections: {a.conns}{' (named)' if a.named else ''}")
        print(f"rss baseline: {base / 1024:.1f} MiB")
        print(f"rss with connections: {held / 1024:.1f} MiB "
              f"(+{(held - base) / 1024:.1f} MiB, {(held - base) / a.conns:.1f} KiB per connection)")
        print(f"rss 3 s after close: {after / 1024:.1f} MiB (+{(after - base) / 1024:.1f} MiB over baseline)")

        for kind, payload in [
            ("duplicate", b" w T" * a.entries),
            ("distinct", b"".join(b" w T%d" % i for i in range(a.entries))),
        ]:
            big = socket.create_connection(("127.0.0.1", port))
            t0 = time.monotonic()
            big.sendall(message("_Subscri", payload))
            time.sleep(0.01)
            wait = show_status(port, 120)
            # The subscriber is done when its own _ShowSta is answered (or it
            # was refused and closed).
            try:
                big.settimeout(120)
                big.sendall(message("_ShowSta", b""))
                read_message(big)
                outcome = "accepted"
            except (EOFError, OSError):
                outcome = "refused"
            total = time.monotonic() - t0
            big.close()
            print(f"subscription {a.entries} {kind} entries ({len(payload)} bytes): {outcome}, "
                  f"processed in {total * 1000:.0f} ms ({total / a.entries * 1e9:.0f} ns per entry); "
                  f"a new client's _ShowSta answered in {wait * 1000:.0f} ms")
    finally:
        lig.kill()
        lig.wait()


if __name__ == "__main__":
    sys.exit(main())
