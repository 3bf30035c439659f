#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
# Load for scripts/bench --wan, run inside the benchmark's namespaces:
#   wanload.py dest --port P
#       destination: the first byte of each connection picks its role:
#       G = send data until the peer closes, E = echo, S = read and discard
#   wanload.py bulk --host H --port P --streams N --seconds S
#       N connections that each send G and read; prints one JSON line with
#       the bytes received per 100 ms (CLOCK_MONOTONIC times)
#   wanload.py hol --host H --port P --seconds S [--warm W]
#       one bulk connection (G), then after W seconds a second connection (E)
#       that sends a 64-byte request every 20 ms (requests pipeline when an
#       answer is late) for S seconds; prints one JSON line with the
#       latency of every request and the bulk bytes per 100 ms
# Run through scripts/bench --wan, not by hand.

import argparse
import json
import socket
import socketserver
import sys
import threading
import time

BUCKET = 0.1
CHUNK = 65536


class Dest(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


class DestHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            mode = s.recv(1)
            if mode == b"G":
                buf = b"\0" * CHUNK
                while True:
                    s.sendall(buf)
            elif mode == b"E":
                while True:
                    b = s.recv(CHUNK)
                    if not b:
                        return
                    s.sendall(b)
            elif mode == b"S":
                while s.recv(CHUNK):
                    pass
        except OSError:
            return


class Series:
    """Bytes received per BUCKET seconds since t0 (monotonic)."""

    def __init__(self, t0, seconds):
        self.t0 = t0
        self.n = int(seconds / BUCKET) + 20
        self.b = [0] * self.n
        self.lock = threading.Lock()

    def add(self, nbytes, now):
        i = int((now - self.t0) / BUCKET)
        if 0 <= i < self.n:
            with self.lock:
                self.b[i] += nbytes


def sink(sock, series, stop):
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            b = sock.recv(CHUNK)
        except socket.timeout:
            continue
        except OSError:
            return
        if not b:
            return
        series.add(len(b), time.monotonic())


def connect(host, port, mode):
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(mode)
    return s


def bulk(a):
    t0 = time.monotonic()
    series = Series(t0, a.seconds)
    stop = threading.Event()
    socks = [connect(a.host, a.port, b"G") for _ in range(a.streams)]
    th = [threading.Thread(target=sink, args=(s, series, stop), daemon=True)
          for s in socks]
    for t in th:
        t.start()
    time.sleep(max(0.0, t0 + a.seconds - time.monotonic()))
    stop.set()
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    for t in th:
        t.join(2)
    n = int(a.seconds / BUCKET)
    print(json.dumps({"t0": t0, "bucket": BUCKET, "series": series.b[:n]}))


def hol(a):
    t0 = time.monotonic()
    total = a.warm + a.seconds
    series = Series(t0, total)
    stop = threading.Event()
    bs = connect(a.host, a.port, b"G")
    bt = threading.Thread(target=sink, args=(bs, series, stop), daemon=True)
    bt.start()
    time.sleep(a.warm)
    rs = connect(a.host, a.port, b"E")
    sent = []
    done = []
    lock = threading.Lock()

    def reader():
        got = 0
        rs.settimeout(0.2)
        while True:
            try:
                b = rs.recv(CHUNK)
            except socket.timeout:
                if stop.is_set():
                    return
                continue
            except OSError:
                return
            if not b:
                return
            now = time.monotonic()
            got += len(b)
            with lock:
                while len(done) < got // 64 and len(done) < len(sent):
                    done.append(now)
    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    req = b"r" * 64
    start = time.monotonic()
    k = 0
    while True:
        at = start + k * 0.020
        if at >= start + a.seconds:
            break
        time.sleep(max(0.0, at - time.monotonic()))
        with lock:
            sent.append(time.monotonic())
        try:
            rs.sendall(req)
        except OSError:
            break
        k += 1
    # Late answers get one more second; what is still missing counts with
    # the time it has waited so far.
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        with lock:
            if len(done) >= len(sent):
                break
        time.sleep(0.01)
    stop.set()
    now = time.monotonic()
    with lock:
        lat = [(done[i] if i < len(done) else now) - sent[i]
               for i in range(len(sent))]
        missing = len(sent) - len(done)
    for s in (rs, bs):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    rt.join(2)
    bt.join(2)
    n = int(total / BUCKET)
    print(json.dumps({"t0": t0, "bucket": BUCKET, "series": series.b[:n],
                      "rr_start": start, "rr_end": start + a.seconds,
                      "lat_ms": [round(x * 1000, 3) for x in lat],
                      "missing": missing}))


def main(argv):
    ap = argparse.ArgumentParser(prog="wanload.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dest")
    d.add_argument("--host", default="0.0.0.0")
    d.add_argument("--port", type=int, required=True)
    for name in ("bulk", "hol"):
        p = sub.add_parser(name)
        p.add_argument("--host", required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--seconds", type=float, required=True)
        p.add_argument("--streams", type=int, default=1)
        p.add_argument("--warm", type=float, default=1.5)
    a = ap.parse_args(argv)
    if a.cmd == "dest":
        srv = Dest((a.host, a.port), DestHandler)
        print("listening", flush=True)
        srv.serve_forever()
    elif a.cmd == "bulk":
        bulk(a)
    else:
        hol(a)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
