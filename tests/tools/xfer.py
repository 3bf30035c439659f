#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""Concurrent checksummed transfers against an echo service (stdlib only).

Opens N connections to HOST:PORT at once. Each sends BYTES bytes as blocks
  magic "PRDX" (4) | connection (4) | block index (4) | length (4) |
  payload (length) | BLAKE2b-128 of everything before it (16)
while a second thread reads the echo back and checks every block: its digest,
its connection and its index (so lost, duplicated, reordered or crossed bytes
are all caught). After sending, the connection shuts down writing and the
reader expects EOF right after the last block.

Prints "ok N" on success (and a throughput line on stderr); otherwise prints
"FAIL conn K: reason" for each failed connection and exits 1.
"""

import argparse
import hashlib
import os
import socket
import struct
import sys
import threading
import time

HDR = struct.Struct("!4sIII")
MAGIC = b"PRDX"
DIGEST = 16


def make_pool(seed):
    out = bytearray()
    h = hashlib.sha512(b"xfer-pool-%d" % seed).digest()
    while len(out) < (1 << 20) + 65536:
        h = hashlib.sha512(h).digest()
        out += h * 16
    return bytes(out)


def block_sizes(total, bsize):
    """Payload sizes of the blocks that carry |total| bytes on the wire."""
    per = HDR.size + DIGEST
    sizes = []
    left = total
    while left > 0:
        if left <= per:
            # Too small for another block: grow the previous one instead.
            if sizes:
                sizes[-1] += left
            else:
                sizes.append(0)
            break
        pay = min(bsize, left - per)
        sizes.append(pay)
        left -= pay + per
    return sizes


def build_block(pool, conn, idx, size):
    off = (conn * 7919 + idx * 104729) % (len(pool) - size) if size else 0
    body = HDR.pack(MAGIC, conn, idx, size) + pool[off:off + size]
    return body + hashlib.blake2b(body, digest_size=DIGEST).digest()


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            return bytes(buf)
        buf += chunk
    return bytes(buf)


class Conn:
    def __init__(self, k, opts, pool, sizes):
        self.k = k
        self.opts = opts
        self.pool = pool
        self.sizes = sizes
        self.error = None
        self.sock = None
        self.sent = False
        self.read = False

    def fail(self, why):
        if self.error is None:
            self.error = why

    def sender(self, barrier):
        try:
            barrier.wait(timeout=self.opts.timeout)
        except threading.BrokenBarrierError:
            self.fail("barrier broken (another connection failed to connect)")
            return
        try:
            for i, size in enumerate(self.sizes):
                self.sock.sendall(build_block(self.pool, self.k, i, size))
            if not self.opts.no_shutdown:
                self.sock.shutdown(socket.SHUT_WR)
            self.sent = True
        except OSError as e:
            self.fail("send: %s" % e)

    def reader(self):
        if self.opts.read_delay > 0:
            time.sleep(self.opts.read_delay)
        try:
            for i, size in enumerate(self.sizes):
                want = HDR.size + size + DIGEST
                blk = recv_exact(self.sock, want)
                if len(blk) != want:
                    self.fail("block %d: EOF after %d of %d bytes" %
                              (i, len(blk), want))
                    return
                magic, conn, idx, length = HDR.unpack_from(blk)
                body, dig = blk[:-DIGEST], blk[-DIGEST:]
                if hashlib.blake2b(body, digest_size=DIGEST).digest() != dig:
                    self.fail("block %d: checksum mismatch" % i)
                    return
                if (magic, conn, idx, length) != (MAGIC, self.k, i, size):
                    self.fail("block %d: got conn %d block %d len %d" %
                              (i, conn, idx, length))
                    return
            if not self.opts.no_shutdown:
                extra = self.sock.recv(65536)
                if extra:
                    self.fail("%d unexpected bytes after the last block" %
                              len(extra))
                    return
            self.read = True
        except socket.timeout:
            self.fail("read timed out")
        except OSError as e:
            self.fail("read: %s" % e)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("-n", "--connections", type=int, default=1)
    p.add_argument("-s", "--bytes", type=int, default=1 << 20,
                   help="bytes each connection sends (and gets back)")
    p.add_argument("-b", "--block", type=int, default=16384,
                   help="payload bytes per block")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds for the whole run and each socket call")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-shutdown", action="store_true",
                   help="keep writing open; do not expect EOF")
    p.add_argument("--sequential", action="store_true",
                   help="one connection after another instead of at once")
    p.add_argument("--start-delay", type=float, default=0.0,
                   help="seconds between connecting and the first byte")
    p.add_argument("--read-delay", type=float, default=0.0,
                   help="seconds before reading the echo (a slow user)")
    opts = p.parse_args()

    pool = make_pool(opts.seed)
    sizes = block_sizes(opts.bytes, opts.block)
    conns = [Conn(k, opts, pool, sizes) for k in range(opts.connections)]
    if opts.sequential:
        return run_sequential(opts, conns)
    for c in conns:
        try:
            c.sock = socket.create_connection((opts.host, opts.port),
                                              timeout=opts.timeout)
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            c.fail("connect: %s" % e)
    live = [c for c in conns if c.sock is not None and c.error is None]
    barrier = threading.Barrier(len(live) + 1)
    threads = []
    for c in live:
        for fn, args in ((c.sender, (barrier,)), (c.reader, ())):
            t = threading.Thread(target=fn, args=args, daemon=True)
            t.start()
            threads.append(t)
    if opts.start_delay > 0:
        time.sleep(opts.start_delay)
    t0 = time.monotonic()
    try:
        barrier.wait(timeout=opts.timeout)
    except threading.BrokenBarrierError:
        pass
    deadline = t0 + opts.timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    elapsed = time.monotonic() - t0
    for c in live:
        if not (c.sent and c.read):
            c.fail("not finished after %.0f s (sent %s, read %s)" %
                   (opts.timeout, c.sent, c.read))
    failed = [c for c in conns if c.error is not None]
    for c in conns:
        if c.sock is not None:
            try:
                c.sock.close()
            except OSError:
                pass
    if failed:
        for c in failed[:20]:
            print("FAIL conn %d: %s" % (c.k, c.error))
        if len(failed) > 20:
            print("FAIL ... and %d more" % (len(failed) - 20))
        print("failed %d of %d" % (len(failed), len(conns)))
        sys.stdout.flush()
        os._exit(1)
    total = opts.connections * opts.bytes
    print("xfer: %d x %d bytes each way in %.2f s (%.1f MiB/s each way)" %
          (opts.connections, opts.bytes, elapsed,
           total / (1 << 20) / max(elapsed, 1e-6)), file=sys.stderr)
    print("ok %d" % len(conns))
    return 0


def run_sequential(opts, conns):
    """Each connection in turn: connect, transfer, close; stop at a failure."""
    t0 = time.monotonic()
    lat = []
    for c in conns:
        t1 = time.monotonic()
        try:
            c.sock = socket.create_connection((opts.host, opts.port),
                                              timeout=opts.timeout)
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            c.fail("connect: %s" % e)
        if c.error is None:
            t = threading.Thread(target=c.reader, daemon=True)
            t.start()
            c.sender(threading.Barrier(1))
            t.join(opts.timeout)
            if c.error is None and not (c.sent and c.read):
                c.fail("not finished after %.0f s" % opts.timeout)
        if c.sock is not None:
            c.sock.close()
        if c.error is not None:
            print("FAIL conn %d: %s" % (c.k, c.error))
            print("failed after %d of %d" % (c.k, len(conns)))
            return 1
        lat.append(time.monotonic() - t1)
    elapsed = time.monotonic() - t0
    lat.sort()
    print("xfer: %d sequential connections in %.2f s (%.0f/s), "
          "median %.1f ms, p99 %.1f ms" %
          (len(conns), elapsed, len(conns) / max(elapsed, 1e-6),
           lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3),
          file=sys.stderr)
    print("ok %d" % len(conns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
