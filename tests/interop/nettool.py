#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""TCP ends of the interop matrix (Python 3 standard library only).

  freeport                      print a port free for both TCP and UDP
  dest --port P --report F     a destination; each connection starts with
                                a line naming its mode (the user side sends
                                it), then:
      echo    echo until EOF, then shut down writing
      bulk    send --bytes of pattern 2 and shut down writing, while
              reading to EOF; append "bulk <sha256> <n>" to --report
      eofecho read to EOF, then send it all back and close (the answer
              flows only after the user's half-close)
      rst     read one chunk, then reset (SO_LINGER 0)
      watch   read to EOF or reset; append "watch eof|reset <n>" to --report
      Every accepted connection appends "accept <mode>" to --report.
  echo --port P                 one round trip with a half-close
  bulk --port P --bytes N --report F
                                send N bytes of pattern 1 and half-close
                                while reading N bytes of pattern 2; check
                                both digests (the destination's from F);
                                print "ok <up MB/s> <down MB/s> <s>"
  concurrent --port P -n N --bytes B [--mode echo|eofecho]
                                N connections at once, each B bytes echoed
                                and checked, with a half-close
  expect-reset --port P [--mode M] [--wait S]
                                connect, send a line, expect a TCP reset
                                (prints reset|eof|timeout|data; 0 if reset)
  user-reset --port P           connect, send a line (mode watch), then
                                reset
"""

import argparse
import hashlib
import os
import random
import socket
import struct
import sys
import threading
import time

CHUNK = 256 * 1024


def pattern(seed, n):
    return random.Random(seed).randbytes(n)


def append(path, line):
    if path:
        with open(path, "a", encoding="ascii") as f:
            f.write(line + "\n")


def rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def recv_all(sock, h=None):
    n = 0
    while True:
        d = sock.recv(CHUNK)
        if not d:
            return n
        n += len(d)
        if h is not None:
            h.update(d)


def serve(opts):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((opts.host, opts.port))
    ls.listen(512)
    data = pattern(2, opts.bytes)
    print("listening", opts.host, ls.getsockname()[1], flush=True)

    def handle(c):
        try:
            mode = b""
            while not mode.endswith(b"\n") and len(mode) < 16:
                d = c.recv(1)
                if not d:
                    break
                mode += d
            mode = mode.decode("ascii", "replace").strip()
            append(opts.report, "accept %s" % mode)
            if mode == "echo":
                while True:
                    d = c.recv(CHUNK)
                    if not d:
                        break
                    c.sendall(d)
                c.shutdown(socket.SHUT_WR)
                c.close()
            elif mode == "eofecho":
                buf = bytearray()
                while True:
                    d = c.recv(CHUNK)
                    if not d:
                        break
                    buf += d
                c.sendall(buf)
                c.close()
            elif mode == "bulk":
                def sender():
                    c.sendall(data)
                    c.shutdown(socket.SHUT_WR)
                t = threading.Thread(target=sender)
                t.start()
                h = hashlib.sha256()
                n = recv_all(c, h)
                t.join()
                append(opts.report, "bulk %s %d" % (h.hexdigest(), n))
                c.close()
            elif mode == "rst":
                c.recv(CHUNK)
                rst(c)
            elif mode == "watch":
                try:
                    n = recv_all(c)
                    append(opts.report, "watch eof %d" % n)
                except ConnectionResetError:
                    append(opts.report, "watch reset")
                c.close()
            else:
                rst(c)
        except OSError as e:
            append(opts.report, "error %s" % e)

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def connect(opts, mode):
    s = socket.create_connection(("127.0.0.1", opts.port), timeout=opts.timeout)
    s.sendall(mode.encode("ascii") + b"\n")
    return s


def echo(opts):
    msg = b"portredirect interop echo\n"
    s = connect(opts, "echo")
    s.sendall(msg)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = s.recv(CHUNK)
        if not d:
            break
        got += d
    if got != msg:
        print("FAIL echo: got %r" % got)
        return 1
    print("ok")
    return 0


def bulk(opts):
    up = pattern(1, opts.bytes)
    want_up = hashlib.sha256(up).hexdigest()
    want_down = hashlib.sha256(pattern(2, opts.bytes)).hexdigest()
    s = connect(opts, "bulk")
    t0 = time.monotonic()
    t_up = [None]

    def sender():
        s.sendall(up)
        s.shutdown(socket.SHUT_WR)
        t_up[0] = time.monotonic()

    th = threading.Thread(target=sender)
    th.start()
    h = hashlib.sha256()
    n = recv_all(s, h)
    t_down = time.monotonic()
    th.join()
    s.close()
    if n != opts.bytes or h.hexdigest() != want_down:
        print("FAIL bulk: received %d bytes, digest %s" % (n, "ok" if h.hexdigest() == want_down else "wrong"))
        return 1
    # The destination's digest of what it received.
    line = None
    for _ in range(100):
        try:
            with open(opts.report, encoding="ascii") as f:
                lines = [x.split() for x in f if x.startswith("bulk ")]
            if lines:
                line = lines[-1]
                break
        except OSError:
            pass
        time.sleep(0.05)
    if line is None or line[1] != want_up or int(line[2]) != opts.bytes:
        print("FAIL bulk: destination got %s, want %s %d" % (line, want_up, opts.bytes))
        return 1
    mb = opts.bytes / 1e6
    print("ok %.1f %.1f %.2f" % (mb / (t_up[0] - t0), mb / (t_down - t0), t_down - t0))
    return 0


def concurrent(opts):
    errors = []
    done = []

    def one(k):
        try:
            data = pattern(1000 + k, opts.bytes)
            s = connect(opts, "eofecho" if opts.mode == "eofecho" else "echo")

            def sender():
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)

            th = threading.Thread(target=sender)
            th.start()
            h = hashlib.sha256()
            n = recv_all(s, h)
            th.join()
            s.close()
            if n != len(data) or h.digest() != hashlib.sha256(data).digest():
                errors.append("conn %d: %d bytes back, digest mismatch" % (k, n))
            else:
                done.append(k)
        except OSError as e:
            errors.append("conn %d: %s" % (k, e))

    t0 = time.monotonic()
    ths = [threading.Thread(target=one, args=(k,)) for k in range(opts.n)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errors:
        for e in errors[:10]:
            print("FAIL", e)
        return 1
    print("ok %d %.2f" % (len(done), time.monotonic() - t0))
    return 0


def expect_reset(opts):
    try:
        s = connect(opts, opts.mode)
    except ConnectionRefusedError:
        print("refused")
        return 1
    except ConnectionResetError:
        # The reset can overtake connect()'s return on a busy machine: the
        # server accepted, the tunnel refused, and the RST came first.
        print("reset")
        return 0
    s.settimeout(opts.wait)
    try:
        s.sendall(b"hello\n")
        d = s.recv(CHUNK)
        print("data" if d else "eof")
        return 1
    except (ConnectionResetError, BrokenPipeError):
        print("reset")
        return 0
    except socket.timeout:
        print("timeout")
        return 1


def user_reset(opts):
    s = connect(opts, "watch")
    s.sendall(b"hello, then a reset\n")
    time.sleep(opts.wait)
    rst(s)
    print("ok")
    return 0


def freeport(_opts):
    while True:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            t.close()
            continue
        u.close()
        t.close()
        print(port)
        return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cmd", choices=["freeport", "dest", "echo", "bulk", "concurrent", "expect-reset", "user-reset"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", default="echo", choices=["echo", "eofecho", "bulk", "rst", "watch"],
                   help="expect-reset, concurrent: the mode line to send")
    p.add_argument("--bytes", type=int, default=16 << 20)
    p.add_argument("--report")
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--wait", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=60.0)
    opts = p.parse_args()
    fn = {"freeport": freeport, "dest": serve, "echo": echo, "bulk": bulk, "concurrent": concurrent,
          "expect-reset": expect_reset, "user-reset": user_reset}[opts.cmd]
    sys.exit(fn(opts))


if __name__ == "__main__":
    main()
