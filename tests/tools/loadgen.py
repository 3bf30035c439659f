#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""Single-threaded load and misbehaviour tools for the fault tests (stdlib).

Unlike dest.py and xfer.py (a thread per connection) these use one selector
loop, so they can hold 10,000 connections.

  loadgen.py serve [--host H] [--port P] [--mode auto|hang] [--stats FILE]
      A destination. "auto": each connection is an echo, unless its first
      bytes are a command line:
        SRC\\n        send an endless pattern as fast as possible, read nothing
        NRD\\n        read nothing more, ever (the sender's data piles up)
        RST <n>\\n    send n pattern bytes, then reset (SO_LINGER 0)
        CLS <n>\\n    send n pattern bytes, then close normally
      "hang": a listener whose accept queue is full and never drained, so that
      a connect to it hangs in SYN-SENT (the kernel drops the SYNs).
      Prints "listening HOST PORT"; with --stats, rewrites FILE each second:
      "accepted=N open=N bytes_in=N bytes_out=N".

  loadgen.py hold HOST PORT -n N [--bytes B] [--conc C] [--hold S]
      Opens N connections (at most C connecting at once), sends B checksummed
      bytes on each and waits for the echo, keeps all N open until every one
      has echoed ("open N"), waits --hold seconds (or until --release FILE
      exists), closes them all and prints "closed N ok N failed N".

  loadgen.py user HOST PORT --cmd CMD [--send-bytes N] [--hold S]
      One misbehaving user: sends the command line CMD (e.g. SRC, NRD), then
      sends N bytes as fast as the tunnel takes them (0: none) without ever
      reading, for at most --hold seconds. Prints "user sent=N elapsed=S
      end=<hold|error:...>" (the bytes the kernel accepted).
"""

import argparse
import hashlib
import os
import selectors
import socket
import struct
import sys
import time

PATTERN = hashlib.sha256(b"portredirect-loadgen").digest() * 2048  # 64 KiB


def _write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text)
    os.replace(tmp, path)


def raise_nofile():
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


# ------------------------------------------------------------------ serve ---

class DConn:
    __slots__ = ("sock", "mode", "inbuf", "outbuf", "left", "decided",
                 "events")

    def __init__(self, sock):
        self.sock = sock
        self.mode = None
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.left = 0
        self.decided = False
        self.events = 0


class Serve:
    def __init__(self, opts):
        self.opts = opts
        self.sel = selectors.DefaultSelector()
        fam = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
        self.lsock = socket.socket(fam, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((opts.host, opts.port))
        self.accepted = 0
        self.open = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.hold = []

    def set_events(self, c, ev):
        if ev != c.events:
            if c.events == 0:
                self.sel.register(c.sock, ev, c)
            elif ev == 0:
                self.sel.unregister(c.sock)
            else:
                self.sel.modify(c.sock, ev, c)
            c.events = ev

    def close(self, c, rst=False):
        if rst:
            try:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.set_events(c, 0)
        c.sock.close()
        self.open -= 1

    def on_accept(self):
        for _ in range(256):
            try:
                s, _ = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            s.setblocking(False)
            self.accepted += 1
            self.open += 1
            c = DConn(s)
            self.set_events(c, selectors.EVENT_READ)

    def decide(self, c):
        buf = bytes(c.inbuf)
        if len(buf) < 4 and not buf.endswith(b"\n"):
            return False
        head = buf[:4]
        if head in (b"SRC\n", b"NRD\n", b"RST ", b"CLS "):
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > 64:
                    c.mode = "echo"
                    return True
                return False
            words = buf[:nl].split()
            c.mode = words[0].decode()
            if c.mode in ("RST", "CLS"):
                c.left = int(words[1]) if len(words) > 1 else 0
            del c.inbuf[:nl + 1]
        else:
            c.mode = "echo"
        c.decided = True
        return True

    def fill(self, c):
        """Pattern output for SRC/RST/CLS."""
        while len(c.outbuf) < 262144:
            n = len(PATTERN)
            if c.mode in ("RST", "CLS"):
                n = min(n, c.left)
                if n == 0:
                    break
                c.left -= n
            c.outbuf += PATTERN[:n]

    def on_io(self, c, mask):
        if mask & selectors.EVENT_READ:
            try:
                data = c.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self.close(c)
                return
            if data is not None:
                if not data:
                    if not c.decided:
                        c.mode = "echo"
                        c.decided = True
                        c.outbuf += c.inbuf
                    if c.mode == "echo" and c.outbuf:
                        c.mode = "echo-eof"
                    else:
                        try:
                            c.sock.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        self.close(c)
                        return
                else:
                    self.bytes_in += len(data)
                    if not c.decided:
                        c.inbuf += data
                        if not self.decide(c):
                            return
                        data = bytes(c.inbuf)
                        c.inbuf = bytearray()
                    if c.mode == "echo":
                        c.outbuf += data
        if c.mode in ("SRC", "RST", "CLS"):
            self.fill(c)
        if c.outbuf and (mask & selectors.EVENT_WRITE or c.mode == "echo"):
            try:
                n = c.sock.send(c.outbuf)
                self.bytes_out += n
                del c.outbuf[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close(c)
                return
        if c.mode in ("RST", "CLS") and not c.outbuf and c.left == 0:
            if c.mode == "CLS":
                try:
                    c.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            self.close(c, rst=(c.mode == "RST"))
            return
        if c.mode == "echo-eof" and not c.outbuf:
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.close(c)
            return
        ev = 0
        if c.mode in (None, "echo", "SRC", "RST", "CLS"):
            ev |= selectors.EVENT_READ
        if c.mode == "echo" and len(c.outbuf) > 1 << 20:
            ev &= ~selectors.EVENT_READ  # backpressure
        if c.outbuf or c.mode in ("SRC",):
            ev |= selectors.EVENT_WRITE
        if c.mode == "NRD":
            ev = 0
            self.hold.append(c)
        if ev == 0 and c.mode != "NRD":
            ev = selectors.EVENT_READ
        self.set_events(c, ev)

    def run(self):
        if self.opts.mode == "hang":
            return self.run_hang()
        self.lsock.listen(4096)
        self.lsock.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        host, port = self.lsock.getsockname()[:2]
        print("listening %s %d" % (host, port), flush=True)
        last = 0.0
        while True:
            for key, mask in self.sel.select(0.5):
                if key.data is None:
                    self.on_accept()
                else:
                    self.on_io(key.data, mask)
            now = time.monotonic()
            if self.opts.stats and now - last >= 1.0:
                last = now
                _write_atomic(self.opts.stats,
                              "accepted=%d open=%d bytes_in=%d bytes_out=%d\n"
                              % (self.accepted, self.open, self.bytes_in,
                                 self.bytes_out))

    def run_hang(self):
        self.lsock.listen(0)
        host, port = self.lsock.getsockname()[:2]
        fam = self.lsock.family
        # Fill the accept queue (backlog 0 still queues one or two).
        fillers = []
        for _ in range(4):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((host, port))
            except (BlockingIOError, OSError):
                pass
            fillers.append(s)
        time.sleep(0.5)
        print("listening %s %d" % (host, port), flush=True)
        while True:
            time.sleep(3600)


# ------------------------------------------------------------------- hold ---

class HConn:
    __slots__ = ("k", "sock", "state", "out", "got", "want", "events",
                 "t0")

    def __init__(self, k, want):
        self.k = k
        self.sock = None
        self.state = "new"
        self.out = b""
        self.got = bytearray()
        self.want = want
        self.events = 0
        self.t0 = 0.0


def payload_for(k, nbytes):
    head = struct.pack("!4sI", b"PRDH", k)
    body = (head + PATTERN)[:max(nbytes, 8)]
    return body


def run_hold(opts):
    raise_nofile()
    sel = selectors.DefaultSelector()
    conns = [HConn(k, payload_for(k, opts.bytes)) for k in range(opts.n)]
    pending = list(reversed(conns))
    connecting = 0
    done = 0
    failed = 0
    fail_reasons = {}
    t0 = time.monotonic()
    deadline = t0 + opts.timeout

    def setev(c, ev):
        if ev != c.events:
            if c.events == 0:
                sel.register(c.sock, ev, c)
            elif ev == 0:
                sel.unregister(c.sock)
            else:
                sel.modify(c.sock, ev, c)
            c.events = ev

    def fail(c, why):
        nonlocal failed, connecting
        if c.state in ("connecting",):
            connecting -= 1
        c.state = "failed"
        failed += 1
        fail_reasons[why] = fail_reasons.get(why, 0) + 1
        if c.sock is not None:
            setev(c, 0)
            c.sock.close()
            c.sock = None

    while done + failed < opts.n and time.monotonic() < deadline:
        while pending and connecting < opts.conc:
            c = pending.pop()
            try:
                c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as e:
                fail(c, "socket:%s" % e.errno)
                continue
            c.sock.setblocking(False)
            c.t0 = time.monotonic()
            err = c.sock.connect_ex((opts.host, opts.port))
            if err not in (0, 115):  # EINPROGRESS
                fail(c, "connect:%d" % err)
                continue
            c.state = "connecting"
            connecting += 1
            setev(c, selectors.EVENT_WRITE)
        for key, mask in sel.select(0.2):
            c = key.data
            if c.state == "connecting":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(c, "connect:%d" % err)
                    continue
                connecting -= 1
                c.state = "sending"
                c.out = c.want
            if c.state == "sending" and mask & selectors.EVENT_WRITE:
                try:
                    n = c.sock.send(c.out)
                    c.out = c.out[n:]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    fail(c, "send:%s" % e.errno)
                    continue
                if not c.out:
                    c.state = "reading"
            if mask & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError as e:
                    fail(c, "recv:%s" % e.errno)
                    continue
                if data == b"":
                    fail(c, "eof-early")
                    continue
                if data:
                    c.got += data
                    if len(c.got) > len(c.want) or \
                            bytes(c.got) != c.want[:len(c.got)]:
                        fail(c, "mismatch")
                        continue
                    if len(c.got) == len(c.want):
                        c.state = "open"
                        done += 1
            if c.state in ("sending", "reading"):
                ev = selectors.EVENT_READ
                if c.state == "sending":
                    ev |= selectors.EVENT_WRITE
                setev(c, ev)
            elif c.state == "open":
                setev(c, 0)
    elapsed = time.monotonic() - t0
    print("open %d failed %d in %.1f s" % (done, failed + len(pending) +
                                          connecting, elapsed), flush=True)
    for why, n in sorted(fail_reasons.items()):
        print("fail %s %d" % (why, n), flush=True)
    end = time.monotonic() + opts.hold
    while time.monotonic() < end:
        if opts.release and os.path.exists(opts.release):
            break
        time.sleep(0.1)
    closed = 0
    for c in conns:
        if c.sock is not None:
            if c.events:
                setev(c, 0)
            c.sock.close()
            c.sock = None
            closed += 1
    print("closed %d ok %d failed %d" % (closed, done, opts.n - done),
          flush=True)
    return 0 if done == opts.n else 1


# ------------------------------------------------------------------- user ---

def run_user(opts):
    t0 = time.monotonic()
    sent = 0
    end = "hold"
    s = socket.create_connection((opts.host, opts.port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    try:
        if opts.cmd:
            s.sendall(opts.cmd.encode() + b"\n")
        s.settimeout(0.5)
        deadline = t0 + opts.hold
        while time.monotonic() < deadline and sent < opts.send_bytes:
            try:
                n = s.send(PATTERN[:min(len(PATTERN), opts.send_bytes - sent)])
                sent += n
            except socket.timeout:
                continue
            except OSError as e:
                end = "error:%s" % e.__class__.__name__
                break
        while end == "hold" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        s.close()
    print("user sent=%d elapsed=%.1f end=%s" % (sent, time.monotonic() - t0,
                                               end), flush=True)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd_name", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--mode", choices=["auto", "hang"], default="auto")
    s.add_argument("--stats")
    h = sub.add_parser("hold")
    h.add_argument("host")
    h.add_argument("port", type=int)
    h.add_argument("-n", type=int, required=True)
    h.add_argument("--bytes", type=int, default=64)
    h.add_argument("--conc", type=int, default=256)
    h.add_argument("--hold", type=float, default=0.0)
    h.add_argument("--release")
    h.add_argument("--timeout", type=float, default=300.0)
    u = sub.add_parser("user")
    u.add_argument("host")
    u.add_argument("port", type=int)
    u.add_argument("--cmd", default="")
    u.add_argument("--send-bytes", type=int, default=0)
    u.add_argument("--hold", type=float, default=30.0)
    opts = p.parse_args()
    if opts.cmd_name == "serve":
        raise_nofile()
        return Serve(opts).run() or 0
    if opts.cmd_name == "hold":
        return run_hold(opts)
    return run_user(opts)


if __name__ == "__main__":
    sys.exit(main())
