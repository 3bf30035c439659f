#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""A slow DNS server for the resolution tests (Python 3 stdlib only).

Answers each UDP query after --delay seconds: an A query for --name with
--addr, any other query with no address (NOERROR, no answer). Each query is
answered from a thread of its own, so that a later one is not held up.
Listens on --host (a loopback address) port --port; prints "listening HOST
PORT" once ready, then "query NAME TYPE" for each query (NAME lower-cased,
TYPE the number), flushed at once.
"""
import argparse
import socket
import struct
import sys
import threading
import time


def parse_question(q):
    """Returns (name, qtype, end of the question) of query |q|."""
    i, labels = 12, []
    while i < len(q) and q[i] != 0:
        n = q[i]
        labels.append(q[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    i += 1
    qtype, = struct.unpack("!H", q[i:i + 2])
    return ".".join(labels), qtype, i + 4


def answer(sock, q, peer, args):
    name, qtype, end = parse_question(q)
    print("query %s %d" % (name.lower(), qtype), flush=True)
    time.sleep(args.delay)
    found = qtype == 1 and name.lower() == args.name.lower()
    # The question as asked (resolvers may mix its case), flags: a response
    # to a recursive query, recursion available, NOERROR.
    out = bytearray(q[:end])
    out[2:4] = b"\x81\x80"
    out[6:12] = struct.pack("!HHH", 1 if found else 0, 0, 0)
    if found:
        out += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4)
        out += socket.inet_aton(args.addr)
    sock.sendto(bytes(out), peer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--delay", type=float, default=3.0)
    ap.add_argument("--name", required=True)
    ap.add_argument("--addr", default="127.0.0.1")
    args = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.host, args.port))
    print("listening %s %d" % sock.getsockname(), flush=True)
    while True:
        q, peer = sock.recvfrom(512)
        if len(q) < 17:
            continue
        threading.Thread(target=answer, args=(sock, q, peer, args),
                         daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
