#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""The UDP benchmark of scripts/bench --udp (issue 19; README "UDP
services"): UDP through portredirect's UDP services against direct UDP and
a socat UDP relay, on loopback.

Figures per candidate:
  rate     the Mbit/s that arrive at the highest iperf3 -u rate (1200-byte
           datagrams) with < 1 % loss, found by bisection between
           --min-rate and --max-rate
  pps      datagrams per second received with 64-byte datagrams sent as
           fast as iperf3 can (-b 0)
  rtt      request/response latency of 40-byte datagrams, one at a time
           (DNS-like), p50 and p99 in microseconds, against a UDP echo

iperf3's control connection is TCP: socat relays it with a TCP relay next
to its UDP one, portredirect with a TCP service on the same port number as
the UDP service. Prints one "BENCH <figure> <candidate> <value> <unit>"
line per figure and a table.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CANDIDATES = ["direct", "socat", "portredirect"]


def free_port():
    for _ in range(200):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        p = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", p))
        except OSError:
            t.close()
            continue
        t.close()
        u.close()
        return p
    sys.exit("udp bench: no free port")


class Run:
    def __init__(self, args):
        self.args = args
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="prd-udp-bench.")

    def start(self, name, cmd, wait_for=None, timeout=10):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        if wait_for:
            end = time.time() + timeout
            while time.time() < end:
                with open(os.path.join(self.tmp, name + ".log")) as f:
                    text = f.read()
                if wait_for in text:
                    return p, text
                if p.poll() is not None:
                    break
                time.sleep(0.05)
            sys.exit("udp bench: %s did not start (%s)" % (name, log.name))
        return p, ""

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.procs = []
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print("udp bench: kept %s" % self.tmp)


def wait_tcp(port):
    end = time.time() + 10
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("udp bench: nothing listens on TCP port %d" % port)


def iperf_udp(port, rate, length, seconds):
    """(received datagrams, sent datagrams, lost percent) of one run."""
    got, sent, lost, _ = iperf_udp_mbit(port, rate, length, seconds)
    return got, sent, lost


def iperf_udp_mbit(port, rate, length, seconds):
    """As iperf_udp, and the Mbit/s that arrived."""
    # -w 4M: the receiving iperf3's socket buffer. A tunnel delivers in
    # bursts (a batch of QUIC packets at a time), which overflow the
    # default buffer of the destination before any tunnel queue fills.
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-u", "-b", rate,
           "-l", str(length), "-t", str(seconds), "-w", "4M", "-J"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    try:
        s = json.loads(out.stdout)["end"]["sum"]
    except (ValueError, KeyError):
        return 0, 0, 100.0, 0.0
    got = s["packets"] - s["lost_packets"]
    return got, s["packets"], s["lost_percent"], got * length * 8 / seconds / 1e6


def best_rate(port, args):
    """The Mbit/s that arrived at the highest offered rate that lost < 1 %
    (iperf3 itself may not reach the offered rate)."""
    best = [0.0]

    def ok(mbit):
        _, sent, lost, got = iperf_udp_mbit(port, "%dM" % mbit, 1200, args.seconds)
        if sent > 0 and lost < 1.0:
            best[0] = max(best[0], got)
            return True
        return False

    lo, hi = args.min_rate, args.max_rate
    if ok(hi):
        return best[0]
    for _ in range(args.steps):
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
        if hi - lo < max(10, lo // 20):
            break
    return best[0]


def rtt(port, n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(1)
    msg = os.urandom(40)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        s.send(msg)
        try:
            s.recv(2048)
        except socket.timeout:
            continue
        times.append((time.perf_counter() - t0) * 1e6)
    s.close()
    if len(times) < n * 0.99:
        return None, None
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main():
    ap = argparse.ArgumentParser(prog="scripts/bench --udp")
    ap.add_argument("--udp", action="store_true")
    ap.add_argument("--parse-only", action="store_true")
    ap.add_argument("--bin-dir")
    ap.add_argument("--tools-dir")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=int, default=2)
    ap.add_argument("--min-rate", type=int, default=50, help="Mbit/s")
    ap.add_argument("--max-rate", type=int, default=4000, help="Mbit/s")
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    cands = args.candidates.split(",")
    for c in cands:
        if c not in CANDIDATES:
            ap.error("unknown candidate %s" % c)
    if args.parse_only:
        return 0
    if args.quick:
        args.seconds, args.steps, args.requests = 1, 4, 500
    run = Run(args)
    results = {}
    try:
        ip = free_port()
        run.start("iperf3", ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(ip)])
        wait_tcp(ip)
        _, text = run.start("echo", [sys.executable,
                                     os.path.join(ROOT, "tests/tools/udpusers.py"),
                                     "echo"], "listening ")
        ep = int(text.split()[2])
        ports = {"direct": (ip, ep)}
        if "socat" in cands:
            sp, se = free_port(), free_port()
            for name, cmd in (
                    ("socat-tcp", ["socat", "TCP4-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr" % sp,
                                   "TCP4:127.0.0.1:%d" % ip]),
                    ("socat-udp", ["socat", "-T", "30", "UDP4-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr" % sp,
                                   "UDP4:127.0.0.1:%d" % ip]),
                    ("socat-echo", ["socat", "-T", "30", "UDP4-LISTEN:%d,bind=127.0.0.1,fork,reuseaddr" % se,
                                    "UDP4:127.0.0.1:%d" % ep])):
                run.start(name, cmd)
            time.sleep(0.3)
            ports["socat"] = (sp, se)
        if "portredirect" in cands:
            pp, pe, qp = free_port(), free_port(), free_port()
            psk = os.path.join(run.tmp, "psk")
            with open(os.open(psk, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                f.write(os.urandom(32).hex())
            sdir, cdir = os.path.join(run.tmp, "s"), os.path.join(run.tmp, "c")
            run.start("server", [os.path.join(args.bin_dir, "portredirect_server"),
                                 "--config-dir", sdir, "--quic-psk-file", psk,
                                 "--quic-server-host", "127.0.0.1", "--quic-server-port", str(qp),
                                 "--service", "perf=127.0.0.1:%d" % pp,
                                 "--service", "perfu=udp:127.0.0.1:%d" % pp,
                                 "--service", "echo=udp:127.0.0.1:%d" % pe],
                      "QUIC listening")
            os.makedirs(cdir, exist_ok=True)
            shutil.copy(os.path.join(sdir, "cert.der"), cdir)
            run.start("client", [os.path.join(args.bin_dir, "portredirect_client"),
                                 "--config-dir", cdir, "--quic-psk-file", psk,
                                 "--quic-remote-host", "127.0.0.1", "--quic-remote-port", str(qp),
                                 "--service", "perf=127.0.0.1:%d" % ip,
                                 "--service", "perfu=udp:127.0.0.1:%d" % ip,
                                 "--service", "echo=udp:127.0.0.1:%d" % ep],
                      "tunnel up")
            ports["portredirect"] = (pp, pe)
        for c in cands:
            perf, echo = ports[c]
            r = {"rate_mbit": round(best_rate(perf, args))}
            got, _, _ = iperf_udp(perf, "0", 64, args.seconds)
            r["pps"] = int(got / args.seconds)
            r["rtt_p50_us"], r["rtt_p99_us"] = rtt(echo, args.requests)
            results[c] = r
            for k, unit in (("rate_mbit", "Mbit/s"), ("pps", "datagrams/s"),
                            ("rtt_p50_us", "us"), ("rtt_p99_us", "us")):
                v = r[k]
                print("BENCH udp-%s %s %s %s" % (k, c, "-" if v is None else
                                                  ("%.0f" % v), unit), flush=True)
    finally:
        run.stop_all()
    print()
    print("%-14s %13s %14s %10s %10s" % ("candidate", "rate <1% loss", "64 B datagrams",
                                          "RTT p50", "RTT p99"))
    for c, r in results.items():
        fmt = lambda v: "-" if v is None else "%.0f" % v
        print("%-14s %9s Mb/s %10s /s %7s us %7s us" % (
            c, r["rate_mbit"], r["pps"], fmt(r["rtt_p50_us"]), fmt(r["rtt_p99_us"])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
