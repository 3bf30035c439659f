#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
# A/B throughput of several portredirect builds (or option sets) in one run:
# starts one tunnel per variant in front of its own iperf3 server, then runs
# iperf3 through them in rotating order and prints, per test and variant, the
# median Gbit/s and the CPU seconds per GB of each side. On a noisy machine
# compare variants only within one run, and prefer the CPU figures.
#
# Usage: scripts/bench-tools/ab.py [--rounds N] [--seconds S]
#            [--tests 1u,1d,8u,8d] NAME=BINDIR[,OPTION...] ...
#   e.g. ab.py old=/tmp/old new=build-bench new1452=build-bench,--max-udp-payload,1452
# Tests: <streams><u|d>; u = user -> destination, d = iperf3 -R.

import argparse
import base64
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

TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    r = s[s.rindex(")") + 2:].split()
    return (int(r[11]) + int(r[12])) / TCK


def wait_until(cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Tunnel:
    def __init__(self, tmp, name, bindir, opts, psk):
        self.procs = []
        d = os.path.join(tmp, name)
        os.makedirs(os.path.join(d, "c"), mode=0o700)
        iport, self.port, qport = free_port(), free_port(), free_port()
        self.start(d, "iperf3", ["iperf3", "-s", "-B", "127.0.0.1",
                                 "-p", str(iport)])
        common = ["--quic-psk-file", psk, "--shutdown-grace", "0",
                  "--log-level", "info"] + opts
        self.server = self.start(d, "server", [
            os.path.join(bindir, "portredirect_server"),
            "--local-host", "127.0.0.1", "--local-port", str(self.port),
            "--quic-server-host", "127.0.0.1", "--quic-server-port",
            str(qport), "--config-dir", os.path.join(d, "s")] + common)
        if not wait_until(lambda: listening(self.port), 15):
            raise RuntimeError(f"{name}: the server did not start")
        self.client = self.start(d, "client", [
            os.path.join(bindir, "portredirect_client"),
            "--destination-host", "127.0.0.1", "--destination-port",
            str(iport), "--quic-remote-host", "127.0.0.1",
            "--quic-remote-port", str(qport), "--config-dir",
            os.path.join(d, "c"), "--server-cert",
            os.path.join(d, "s", "cert.der")] + common)
        log = os.path.join(d, "client.log")
        if not wait_until(lambda: "tunnel up" in open(log).read(), 15):
            raise RuntimeError(f"{name}: the tunnel did not come up")

    def start(self, d, name, argv):
        log = open(os.path.join(d, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    ap = argparse.ArgumentParser(
        prog="ab.py",
        description="A/B throughput of portredirect builds in one run.")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--tests", default="1u,1d,8u,8d")
    ap.add_argument("variants", nargs="+", metavar="NAME=BINDIR[,OPT...]")
    a = ap.parse_args()
    variants = []
    for spec in a.variants:
        name, _, rest = spec.partition("=")
        parts = rest.split(",")
        if not name or not parts[0]:
            ap.error(f"bad variant {spec!r}")
        variants.append((name, os.path.abspath(parts[0]), parts[1:]))
    tests = a.tests.split(",")
    tmp = tempfile.mkdtemp(prefix="portredirect-ab.")
    psk = os.path.join(tmp, "psk")
    fd = os.open(psk, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, base64.b64encode(os.urandom(32)) + b"\n")
    os.close(fd)
    tunnels = {}
    res = {}
    failed = []
    try:
        for name, bindir, opts in variants:
            tunnels[name] = Tunnel(tmp, name, bindir, opts, psk)
        for r in range(a.rounds):
            k = r % len(variants)
            order = variants[k:] + variants[:k]
            for t in tests:
                for name, _, _ in order:
                    tu = tunnels[name]
                    pids = (tu.server.pid, tu.client.pid)
                    c0 = [cpu_seconds(p) for p in pids]
                    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(tu.port),
                            "-t", str(a.seconds), "-J", "-P", t[:-1]]
                    if t.endswith("d"):
                        argv.append("-R")
                    out = subprocess.run(argv, capture_output=True, text=True,
                                         timeout=a.seconds + 40).stdout
                    c1 = [cpu_seconds(p) for p in pids]
                    try:
                        s = json.loads(out)["end"]["sum_received"]
                    except (ValueError, KeyError):
                        # iperf3 failed: say why, count it, go on.
                        try:
                            why = json.loads(out).get("error", "no result")
                        except ValueError:
                            why = out.strip()[-200:] or "no output"
                        failed.append((r + 1, t, name, why))
                        print(f"round {r + 1} {t:3s} {name:12s} FAILED: {why}",
                              flush=True)
                        continue
                    gb = s["bytes"] / 1e9
                    v = (s["bits_per_second"] / 1e9, (c1[0] - c0[0]) / gb,
                         (c1[1] - c0[1]) / gb)
                    res.setdefault((t, name), []).append(v)
                    print(f"round {r + 1} {t:3s} {name:12s} {v[0]:6.2f} "
                          f"Gbit/s  CPU s/GB server {v[1]:.2f} client "
                          f"{v[2]:.2f}", flush=True)
    finally:
        for tu in tunnels.values():
            tu.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("medians:")
    for t in tests:
        for name, _, _ in variants:
            v = res.get((t, name), [])
            if v:
                med = [statistics.median(x[i] for x in v) for i in range(3)]
                print(f"{t:3s} {name:12s} {med[0]:6.2f} Gbit/s  CPU s/GB "
                      f"server {med[1]:.2f} client {med[2]:.2f}  (samples "
                      + " ".join(f"{x[0]:.2f}" for x in v) + ")")
    for r, t, name, why in failed:
        print(f"failed: round {r} {t} {name}: {why}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
