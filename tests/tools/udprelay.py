#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""A UDP impairment relay for the fault tests (Python 3 stdlib only).

Sits between a portredirect client and server on loopback: the client sends
to --listen, the relay forwards each datagram to --upstream from a socket of
its own (one per client address, like a NAT) and sends the answers back.
On the way, in both directions (or only --direction up/down), it can
  drop       each datagram with probability --loss
  duplicate  each datagram with probability --dup (the copy follows at once)
  reorder    hold a datagram back with probability --reorder for
             --reorder-delay ms, so that later ones overtake it
  delay      every datagram by --delay ms plus up to --jitter ms (jitter can
             reorder too)
and, on command, change its upstream source port ("rebind": every session
gets a new socket, the old one is closed: NAT rebinding as the server sees
it) or drop everything ("blackhole on").

Prints "listening HOST PORT control CPORT" once ready. The control port
(TCP, loopback) takes one command per connection and answers one line:
  set loss=P dup=P reorder=P reorder-delay=MS delay=MS jitter=MS
  rebind
  blackhole on|off
  stats
"stats" (and SIGTERM/SIGINT at exit, on stdout) gives
  stats up_rx=N up_tx=N up_drop=N up_dup=N up_reorder=N
        down_rx=N down_tx=N down_drop=N down_dup=N down_reorder=N
        sessions=N rebinds=N
"up" is client -> server. rx counts datagrams received, tx datagrams sent
(duplicates included). With --trace N, the first N datagrams are printed as
  dgram up|down SIZE long|short
(the header form of the datagram's first QUIC packet).
"""

import argparse
import heapq
import random
import selectors
import signal
import socket
import sys
import time

MAXDG = 65535


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


class Relay:
    def __init__(self, opts):
        self.opts = opts
        self.rng = random.Random(opts.seed)
        self.params = {
            "loss": opts.loss, "dup": opts.dup, "reorder": opts.reorder,
            "reorder-delay": opts.reorder_delay, "delay": opts.delay,
            "jitter": opts.jitter,
        }
        self.blackhole = False
        self.traced = 0
        self.sel = selectors.DefaultSelector()
        lhost, lport = parse_hostport(opts.listen)
        self.family = socket.AF_INET6 if ":" in lhost else socket.AF_INET
        self.front = socket.socket(self.family, socket.SOCK_DGRAM)
        self._bufs(self.front)
        self.front.bind((lhost, lport))
        self.front.setblocking(False)
        self.sel.register(self.front, selectors.EVENT_READ, ("front", None))
        self.upstream = parse_hostport(opts.upstream)
        self.ctl = socket.socket(self.family, socket.SOCK_STREAM)
        self.ctl.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ctl.bind((lhost, opts.control_port))
        self.ctl.listen(16)
        self.ctl.setblocking(False)
        self.sel.register(self.ctl, selectors.EVENT_READ, ("ctl", None))
        self.sessions = {}  # client address -> upstream socket
        self.queue = []     # (due, seq, sock, data, addr)
        self.seq = 0
        self.rebinds = 0
        self.st = {k: 0 for k in (
            "up_rx", "up_tx", "up_drop", "up_dup", "up_reorder",
            "down_rx", "down_tx", "down_drop", "down_dup", "down_reorder")}
        self.stop = False

    def _bufs(self, s):
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            except OSError:
                pass

    def _new_upstream(self, client):
        u = socket.socket(self.family, socket.SOCK_DGRAM)
        self._bufs(u)
        u.bind((self.front.getsockname()[0], 0))
        u.connect(self.upstream)
        u.setblocking(False)
        self.sel.register(u, selectors.EVENT_READ, ("up", client))
        return u

    def rebind(self):
        for client, old in list(self.sessions.items()):
            self.sel.unregister(old)
            old.close()
            self.sessions[client] = self._new_upstream(client)
        self.rebinds += 1
        # Queued datagrams for the old sockets go out of the new ones.
        self.queue = [
            (due, seq, self.sessions.get(addr, sock) if d == "up" else sock,
             data, addr, d)
            for (due, seq, sock, data, addr, d) in self.queue]
        heapq.heapify(self.queue)

    def impair(self, direction, sock, data, addr):
        """Decide the fate of one datagram; send or queue it."""
        p = self.params
        self.st[direction + "_rx"] += 1
        if self.traced < self.opts.trace:
            # First byte's high bit: a long header (Initial, Handshake, ...).
            self.traced += 1
            print("dgram %s %d %s" % (direction, len(data),
                                      "long" if data and data[0] & 0x80
                                      else "short"), flush=True)
        applies = self.opts.direction in ("both", direction)
        if self.blackhole or (applies and p["loss"] > 0 and
                              self.rng.random() < p["loss"]):
            self.st[direction + "_drop"] += 1
            return
        copies = 1
        if applies and p["dup"] > 0 and self.rng.random() < p["dup"]:
            copies = 2
            self.st[direction + "_dup"] += 1
        delay = 0.0
        if applies:
            delay = p["delay"] / 1000.0
            if p["jitter"] > 0:
                delay += self.rng.random() * p["jitter"] / 1000.0
            if p["reorder"] > 0 and self.rng.random() < p["reorder"]:
                delay += p["reorder-delay"] / 1000.0
                self.st[direction + "_reorder"] += 1
        for _ in range(copies):
            if delay <= 0:
                self.send(direction, sock, data, addr)
            else:
                self.seq += 1
                heapq.heappush(self.queue, (time.monotonic() + delay,
                                            self.seq, sock, data, addr,
                                            direction))

    def send(self, direction, sock, data, addr):
        try:
            if direction == "up":
                sock.send(data)
            else:
                self.front.sendto(data, addr)
            self.st[direction + "_tx"] += 1
        except OSError:
            # A full buffer or a gone peer: it is a lossy path after all.
            self.st[direction + "_drop"] += 1

    def on_front(self):
        for _ in range(256):
            try:
                data, addr = self.front.recvfrom(MAXDG)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            u = self.sessions.get(addr)
            if u is None:
                u = self.sessions[addr] = self._new_upstream(addr)
            self.impair("up", u, data, addr)

    def on_up(self, sock, client):
        for _ in range(256):
            try:
                data = sock.recv(MAXDG)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ECONNREFUSED: the server is not there (yet).
                return
            self.impair("down", sock, data, client)

    def stats_line(self):
        s = " ".join("%s=%d" % (k, v) for k, v in self.st.items())
        return "stats %s sessions=%d rebinds=%d" % (s, len(self.sessions),
                                                   self.rebinds)

    def on_ctl(self):
        try:
            conn, _ = self.ctl.accept()
        except OSError:
            return
        conn.settimeout(2)
        try:
            line = conn.makefile("r").readline().strip()
            reply = self.command(line)
            conn.sendall((reply + "\n").encode())
        except OSError:
            pass
        finally:
            conn.close()

    def command(self, line):
        words = line.split()
        if not words:
            return "error empty command"
        if words[0] == "set":
            for w in words[1:]:
                k, _, v = w.partition("=")
                if k not in self.params:
                    return "error unknown parameter %s" % k
                try:
                    self.params[k] = float(v)
                except ValueError:
                    return "error bad value %s" % w
            print("set %s" % " ".join(words[1:]), flush=True)
            return "ok " + " ".join("%s=%g" % kv for kv in self.params.items())
        if words[0] == "rebind":
            before = [s.getsockname()[1] for s in self.sessions.values()]
            self.rebind()
            after = [s.getsockname()[1] for s in self.sessions.values()]
            print("rebind %s -> %s" % (before, after), flush=True)
            return "ok rebind %s -> %s" % (before, after)
        if words[0] == "blackhole" and len(words) == 2:
            self.blackhole = words[1] == "on"
            print("blackhole %s" % words[1], flush=True)
            return "ok blackhole %s" % words[1]
        if words[0] == "stats":
            return self.stats_line()
        return "error unknown command %s" % words[0]

    def run(self):
        print("listening %s %d control %d" % (
            self.front.getsockname()[0], self.front.getsockname()[1],
            self.ctl.getsockname()[1]), flush=True)
        while not self.stop:
            timeout = 0.5
            if self.queue:
                timeout = max(0.0, min(timeout,
                                       self.queue[0][0] - time.monotonic()))
            for key, _ in self.sel.select(timeout):
                kind, client = key.data
                if kind == "front":
                    self.on_front()
                elif kind == "up":
                    self.on_up(key.fileobj, client)
                else:
                    self.on_ctl()
            now = time.monotonic()
            while self.queue and self.queue[0][0] <= now:
                _, _, sock, data, addr, d = heapq.heappop(self.queue)
                if d == "up" and sock.fileno() < 0:
                    sock = self.sessions.get(addr)
                    if sock is None:
                        continue
                self.send(d, sock, data, addr)
        print(self.stats_line(), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--dup", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--reorder-delay", type=float, default=10.0)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--jitter", type=float, default=0.0)
    p.add_argument("--direction", choices=["both", "up", "down"],
                   default="both")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--trace", type=int, default=0, metavar="N",
                   help='print "dgram up|down SIZE long|short" for the '
                   'first N datagrams')
    opts = p.parse_args()
    relay = Relay(opts)

    def on_signal(signum, frame):
        relay.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    relay.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
