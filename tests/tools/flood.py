#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""Floods for the attack tests (Python 3 stdlib only).

  flood.py udp HOST PORT -n N [--seed S] [--local-host A]
      Sends N garbage datagrams to a QUIC port as fast as the socket takes
      them, a mix of: random bytes of random length; short-header packets
      with random connection IDs (which may draw stateless resets); long
      headers of QUIC version 1 with random content (fake Initials, padded to
      1200 bytes or not); long headers of unknown versions (which may draw
      Version Negotiation); and empty or one-byte datagrams. Counts what comes
      back. Prints "udp sent=N received=M received_bytes=B amplification=X".

  flood.py tcp HOST PORT -n N [--conc C] [--hold K] [--mode close|rst|junk]
      Opens N TCP connections to a public port, at most C at a time, and ends
      each at once (close: FIN; rst: SO_LINGER 0; junk: 1 KiB of random bytes,
      then FIN), keeping K more of them open and idle until the end. Prints
      "tcp connected=N refused=M errors=E held=K".
"""

import argparse
import os
import random
import select
import socket
import struct
import sys
import time


def garbage(rng, i):
    kind = i % 6
    if kind == 0:
        return os.urandom(rng.randint(1, 1500))
    if kind == 1:
        # Short header, random DCID (16 bytes, as the server uses).
        return bytes([0x40 | rng.randint(0, 0x3f)]) + os.urandom(
            rng.randint(20, 1400))
    if kind == 2:
        # Long header, version 1, Initial type, random CIDs and junk.
        dcid = os.urandom(rng.randint(8, 20))
        scid = os.urandom(rng.randint(0, 20))
        body = os.urandom(rng.randint(20, 1300))
        pkt = bytes([0xc0 | rng.randint(0, 3)]) + struct.pack("!I", 1) + \
            bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid + body
        if rng.random() < 0.5 and len(pkt) < 1200:
            pkt += bytes(1200 - len(pkt))
        return pkt
    if kind == 3:
        # Long header, unknown version.
        dcid = os.urandom(8)
        pkt = bytes([0xc0]) + struct.pack("!I", rng.randint(2, 0xfffffff0)) + \
            bytes([8]) + dcid + bytes([8]) + os.urandom(8)
        return pkt + bytes(1200 - len(pkt))
    if kind == 4:
        return b"" if rng.random() < 0.5 else os.urandom(1)
    # Long header with lengths that run past the end.
    return bytes([0xc0]) + struct.pack("!I", 1) + bytes([255]) + os.urandom(10)


def run_udp(opts):
    rng = random.Random(opts.seed)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if opts.local_host:
        s.bind((opts.local_host, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.connect((opts.host, opts.port))
    s.setblocking(False)
    sent = sent_bytes = received = received_bytes = 0
    t0 = time.monotonic()

    def drain():
        nonlocal received, received_bytes
        while True:
            try:
                d = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ECONNREFUSED from an ICMP: the port is not there
            received += 1
            received_bytes += len(d)

    i = 0
    while i < opts.n:
        pkt = garbage(rng, i)
        try:
            s.send(pkt)
            sent += 1
            sent_bytes += len(pkt)
            i += 1
        except BlockingIOError:
            select.select([s], [s], [], 0.01)
        except OSError:
            i += 1
        if i % 256 == 0:
            drain()
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        select.select([s], [], [], 0.1)
        drain()
    elapsed = time.monotonic() - t0
    print("udp sent=%d sent_bytes=%d received=%d received_bytes=%d "
          "amplification=%.3f elapsed=%.1f" %
          (sent, sent_bytes, received, received_bytes,
           received_bytes / max(sent_bytes, 1), elapsed), flush=True)
    return 0


def run_tcp(opts):
    connected = refused = errors = 0
    held = []
    t0 = time.monotonic()
    inflight = []
    i = 0
    while i < opts.n or inflight:
        while i < opts.n and len(inflight) < opts.conc:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((opts.host, opts.port))
            i += 1
            if err not in (0, 115):
                refused += 1
                s.close()
                continue
            inflight.append(s)
        _, w, _ = select.select([], inflight, [], 1.0)
        for s in w:
            inflight.remove(s)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                refused += 1
                s.close()
                continue
            connected += 1
            if len(held) < opts.hold:
                held.append(s)
                continue
            try:
                if opts.mode == "rst":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
                elif opts.mode == "junk":
                    s.send(os.urandom(1024))
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                errors += 1
            s.close()
        if time.monotonic() - t0 > opts.timeout:
            break
    print("tcp connected=%d refused=%d errors=%d held=%d elapsed=%.1f" %
          (connected, refused, errors, len(held), time.monotonic() - t0),
          flush=True)
    if opts.hold_seconds > 0:
        time.sleep(opts.hold_seconds)
    for s in held:
        s.close()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    u = sub.add_parser("udp")
    u.add_argument("host")
    u.add_argument("port", type=int)
    u.add_argument("-n", type=int, default=100000)
    u.add_argument("--seed", type=int, default=1)
    u.add_argument("--local-host")
    t = sub.add_parser("tcp")
    t.add_argument("host")
    t.add_argument("port", type=int)
    t.add_argument("-n", type=int, default=1000)
    t.add_argument("--conc", type=int, default=100)
    t.add_argument("--hold", type=int, default=0)
    t.add_argument("--hold-seconds", type=float, default=0.0)
    t.add_argument("--mode", choices=["close", "rst", "junk"],
                   default="close")
    t.add_argument("--timeout", type=float, default=300.0)
    opts = p.parse_args()
    return run_udp(opts) if opts.what == "udp" else run_tcp(opts)


if __name__ == "__main__":
    sys.exit(main())
