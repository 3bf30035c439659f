#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""Destination servers for the end-to-end tests (Python 3 stdlib only).

Modes (one per process):
  echo     echo everything back; on EOF from the peer, shut down writing.
  banner   speak first: send a banner line at once, then echo (SMTP/SSH-like).
  sink     read until EOF, then reply "<md5> <bytes>\\n" and close
           (the reply only comes after the peer's half-close).
  source   send --file (or --bytes of a deterministic pattern), shut down
           writing, then keep reading until EOF; what was read is recorded.
  eofecho  read until EOF, then send all of it back and close.

Every mode prints "listening HOST PORT" on stdout once it accepts, counts
accepted connections into --count-file (rewritten atomically on each accept)
and, with --record FILE, appends one line per finished connection:
"<conn-id> <mode> <md5-of-received> <bytes-received> <bytes-sent> <end>".
"""

import argparse
import hashlib
import os
import socket
import socketserver
import sys
import threading

BUF = 256 * 1024

_lock = threading.Lock()
_accepted = 0


def _write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text)
    os.replace(tmp, path)


def _record(opts, line):
    if opts.record:
        with _lock:
            with open(opts.record, "a", encoding="ascii") as f:
                f.write(line + "\n")


def _pattern(n):
    """Deterministic bytes, the same as tests/tools/xfer.py --pattern."""
    block = hashlib.sha256(b"portredirect-e2e").digest() * 2048  # 64 KiB
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        global _accepted
        opts = self.server.opts
        with _lock:
            _accepted += 1
            conn_id = _accepted
            if opts.count_file:
                _write_atomic(opts.count_file, "%d\n" % _accepted)
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        md5 = hashlib.md5()
        nrecv = 0
        nsent = 0
        end = "eof"
        try:
            if opts.mode == "banner":
                banner = opts.banner.encode() + b"\r\n"
                sock.sendall(banner)
                nsent += len(banner)
            if opts.mode == "source":
                for chunk in self.server.source_chunks():
                    sock.sendall(chunk)
                    nsent += len(chunk)
                sock.shutdown(socket.SHUT_WR)
            held = []
            while True:
                data = sock.recv(BUF)
                if not data:
                    break
                nrecv += len(data)
                md5.update(data)
                if opts.mode in ("echo", "banner"):
                    sock.sendall(data)
                    nsent += len(data)
                elif opts.mode == "eofecho":
                    held.append(data)
            if opts.mode in ("echo", "banner"):
                sock.shutdown(socket.SHUT_WR)
            elif opts.mode == "sink":
                reply = ("%s %d\n" % (md5.hexdigest(), nrecv)).encode()
                sock.sendall(reply)
                nsent += len(reply)
                sock.shutdown(socket.SHUT_WR)
            elif opts.mode == "eofecho":
                for data in held:
                    sock.sendall(data)
                    nsent += len(data)
                sock.shutdown(socket.SHUT_WR)
        except ConnectionResetError:
            end = "reset"
        except BrokenPipeError:
            end = "epipe"
        except OSError as e:
            end = "error:%s" % e.__class__.__name__
        _record(opts, "%d %s %s %d %d %s" % (conn_id, opts.mode, md5.hexdigest(),
                                            nrecv, nsent, end))


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 4096

    def __init__(self, opts):
        self.opts = opts
        if ":" in opts.host:
            self.address_family = socket.AF_INET6
        super().__init__((opts.host, opts.port), Handler)

    def source_chunks(self):
        if self.opts.file:
            with open(self.opts.file, "rb") as f:
                while True:
                    chunk = f.read(BUF)
                    if not chunk:
                        return
                    yield chunk
        else:
            data = _pattern(self.opts.bytes)
            for i in range(0, len(data), BUF):
                yield data[i:i + BUF]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", required=True,
                   choices=["echo", "banner", "sink", "source", "eofecho"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--count-file")
    p.add_argument("--record")
    p.add_argument("--file", help="source: the file to send")
    p.add_argument("--bytes", type=int, default=1 << 20,
                   help="source without --file: bytes of the pattern")
    p.add_argument("--banner", default="220 portredirect-e2e banner ready")
    opts = p.parse_args()
    if opts.count_file:
        _write_atomic(opts.count_file, "0\n")
    srv = Server(opts)
    host, port = srv.server_address[:2]
    print("listening %s %d" % (host, port), flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
