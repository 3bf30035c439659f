#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""UDP users and a UDP echo destination for the UDP service tests
(tests/e2e/548-udp.bats; spec/10-udp.md). Python 3 stdlib only.

  udpusers.py echo [--host H] [--port P]
      A UDP echo server: every datagram goes back to its sender, unchanged.
      Prints "listening HOST PORT" once ready; "stats echoed=N" at SIGTERM.

  udpusers.py users HOST PORT [--users N] [--count M] [--size S]
                  [--timeout T] [--rounds R] [--pause S] [--keep-going]
      N users, each on its own UDP socket (its own source port), send M
      datagrams of S bytes (or of their id if smaller), each tagged with the
      user and a sequence number, and check that every reply is one of
      their own datagrams: never another user's. The users send
      concurrently, --rounds times with a reply awaited per round (so
      the flows see replies), --pause seconds apart, from the same sockets.
      A round with replies missing ends the run unless --keep-going. Prints
      "round=R received=Y/X" per round with --keep-going, then
        users=N sent=X received=Y foreign=Z bad=W
      and exits 0 when every datagram came back to its own user (Y == X,
      Z == W == 0), 1 otherwise.

  udpusers.py send HOST PORT --size S [--timeout T]
      One datagram of S bytes; prints "reply=LEN" or "reply=none".
"""
import argparse
import os
import select
import signal
import socket
import sys
import time


def echo(args):
    s = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET,
                      socket.SOCK_DGRAM)
    s.bind((args.host, args.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    print("listening %s %d" % (args.host, s.getsockname()[1]), flush=True)
    n = [0]

    def stop(*_):
        print("stats echoed=%d" % n[0], flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        data, peer = s.recvfrom(65536)
        s.sendto(data, peer)
        n[0] += 1


def users(args):
    socks = []
    for i in range(args.users):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.connect((args.host, args.port))
        socks.append(s)
    owner = {s.fileno(): i for i, s in enumerate(socks)}
    sent = received = foreign = bad = 0
    pending = set()
    for rnd in range(args.rounds):
        if rnd and args.pause:
            time.sleep(args.pause)
        want = {}
        got_before = received
        for i, s in enumerate(socks):
            for j in range(args.count):
                tag = ("u%d-r%d-s%d:" % (i, rnd, j)).encode()
                data = tag + b"x" * max(0, args.size - len(tag))
                try:
                    s.send(data)
                except OSError:
                    continue
                want[data] = i
                sent += 1
            # Pace the users a little: the kernel's buffers are finite.
            if i % 64 == 63:
                time.sleep(0.002)
        pending = set(want)
        deadline = time.monotonic() + args.timeout
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(100):
                s = socks[owner[fd]]
                while True:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        break
                    except OSError:
                        bad += 1
                        break
                    if data not in want:
                        bad += 1
                    elif want[data] != owner[fd]:
                        foreign += 1
                    elif data in pending:
                        pending.discard(data)
                        received += 1
        if args.keep_going:
            print("round=%d received=%d/%d" % (rnd, received - got_before, len(want)),
                  flush=True)
        elif pending:
            break
    print("users=%d sent=%d received=%d foreign=%d bad=%d" %
          (args.users, sent, received, foreign, bad), flush=True)
    return 0 if received == sent and foreign == 0 and bad == 0 else 1


def send(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((args.host, args.port))
    s.settimeout(args.timeout)
    s.send(os.urandom(args.size))
    try:
        print("reply=%d" % len(s.recv(65536)))
    except (socket.timeout, OSError):
        print("reply=none")
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=int, default=0)
    u = sub.add_parser("users")
    u.add_argument("host")
    u.add_argument("port", type=int)
    u.add_argument("--users", type=int, default=10)
    u.add_argument("--count", type=int, default=1)
    u.add_argument("--size", type=int, default=32)
    u.add_argument("--timeout", type=float, default=10)
    u.add_argument("--rounds", type=int, default=1)
    u.add_argument("--pause", type=float, default=0)
    u.add_argument("--keep-going", action="store_true")
    s = sub.add_parser("send")
    s.add_argument("host")
    s.add_argument("port", type=int)
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--timeout", type=float, default=2)
    args = p.parse_args()
    return {"echo": echo, "users": users, "send": send}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
