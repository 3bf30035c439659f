#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""One TCP connection for the end-to-end tests, reporting how it ended.

Connects to HOST:PORT, optionally sends data (--send TEXT, --send-file FILE),
optionally shuts down writing (--shut-wr), and reads until EOF, a reset, or
--timeout seconds. --source ADDR binds the local end to ADDR first (a
loopback address: 127.0.0.2, ::1). With --wait-eof-first it reads until the peer's EOF first
and only then sends (the destination half-closed first). With --until TEXT it
stops reading as soon as TEXT has been received.

Prints one line:
  recv=<bytes> end=<eof|reset|timeout|until|refused> elapsed=<seconds> md5=<hex>
  data=<the first 200 received bytes, Python repr>
and writes everything received to --out FILE if given. Exit status 0 whenever
the line was printed (the test judges it), 3 on a usage error.
"""

import argparse
import hashlib
import socket
import sys
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--send", help="text to send (\\n escapes allowed)")
    p.add_argument("--send-file")
    p.add_argument("--shut-wr", action="store_true",
                   help="shut down writing after sending")
    p.add_argument("--wait-eof-first", action="store_true",
                   help="read until EOF before sending")
    p.add_argument("--until", help="stop reading once this text arrived")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--out")
    p.add_argument("--source", help="local address to bind first")
    opts = p.parse_args()

    payload = b""
    if opts.send is not None:
        payload += opts.send.encode().decode("unicode_escape").encode("latin-1")
    if opts.send_file:
        with open(opts.send_file, "rb") as f:
            payload += f.read()
    until = opts.until.encode() if opts.until else None

    t0 = time.monotonic()
    deadline = t0 + opts.timeout
    received = bytearray()
    end = "eof"
    try:
        sock = socket.create_connection(
            (opts.host, opts.port), timeout=opts.timeout,
            source_address=(opts.source, 0) if opts.source else None)
    except ConnectionRefusedError:
        report("refused", received, t0, opts)
        return 0
    except ConnectionResetError:
        # Accepted and reset before connect() returned (a fast server).
        report("reset", received, t0, opts)
        return 0
    except OSError as e:
        report("connect-error:%s" % e.__class__.__name__, received, t0, opts)
        return 0

    def read_to_end():
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            sock.settimeout(left)
            try:
                data = sock.recv(262144)
            except socket.timeout:
                return "timeout"
            except ConnectionResetError:
                return "reset"
            if not data:
                return "eof"
            received.extend(data)
            if until is not None and until in received:
                return "until"

    try:
        if opts.wait_eof_first:
            end = read_to_end()
            if end != "eof":
                report(end + "-before-send", received, t0, opts)
                return 0
        try:
            if payload:
                sock.sendall(payload)
            if opts.shut_wr:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            end = "reset"
        except OSError:
            pass
        if not opts.wait_eof_first:
            end = read_to_end()
        elif end == "eof":
            # The peer half-closed first; wait for its full close now.
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                extra = sock.recv(1)
                end = "eof" if not extra else "eof-then-data"
            except socket.timeout:
                end = "eof"
            except ConnectionResetError:
                end = "eof"
    finally:
        sock.close()
    report(end, received, t0, opts)
    return 0


def report(end, received, t0, opts):
    if opts.out:
        with open(opts.out, "wb") as f:
            f.write(received)
    print("recv=%d end=%s elapsed=%.3f md5=%s" %
          (len(received), end, time.monotonic() - t0,
           hashlib.md5(received).hexdigest()))
    print("data=%r" % bytes(received[:200]))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
