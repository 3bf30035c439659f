#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
# The driver behind scripts/bench --wan: an emulated WAN path between two
# network namespaces it creates (prdwan-<pid>-a, the public side with the
# user, portredirect_server and sshd; prdwan-<pid>-b, the side behind NAT
# with portredirect_client, ssh -R and the destination), joined by wanem
# (scripts/bench-tools/wanem.c) on TUN devices with 10.77.0.1 (a) and
# 10.77.0.2 (b), addresses that exist only inside the two namespaces.
# It self-checks the path, then measures the candidates alternately in each
# scenario and prints a table, the bars of issue 22 and one
# "WAN <scenario> <figure> <candidate> <value> <unit>" line per figure.
#
# scripts/bench builds wanem and passes --bin-dir and --tools-dir; run that.

import argparse
import base64
import datetime
import getpass
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import BenchError, Procs, ssh_keys, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# pr-tcp: QUIC over the TCP path (spec/11-tcp-path.md), bbr2. pr-qb: bbr2
# with --queue-bound on, pr-noqb with it off. pr-base: bbr2 with the
# binaries of --base-bin-dir (another build, for an A/B).
CANDIDATES = ["direct", "ssh", "pr-bbr2", "pr-qb", "pr-noqb", "pr-base",
              "pr-bbr", "pr-cubic", "pr-tcp"]
TESTS = ["bulk1", "bulk8", "hol", "blackout", "share"]
DEFAULT_TESTS = ["bulk1", "bulk8", "hol", "blackout"]
ADDR_A, ADDR_B = "10.77.0.1", "10.77.0.2"
DEST_PORT, IPERF_PORT, SSHD_PORT, SSH_RPORT = 5000, 5201, 2222, 6001
PR_PORTS = {"pr-bbr2": (7001, 7401), "pr-cubic": (7002, 7402),
            "pr-tcp": (7003, 7403), "pr-bbr": (7004, 7404),
            "pr-base": (7005, 7405), "pr-qb": (7006, 7406),
            "pr-noqb": (7007, 7407)}
LABEL = {"direct": "direct TCP", "ssh": "ssh -R", "pr-bbr2": "pr bbr2",
         "pr-bbr": "pr bbr", "pr-base": "pr base", "pr-qb": "pr bound",
         "pr-noqb": "pr no bound",
         "pr-cubic": "pr cubic", "pr-tcp": "pr over TCP"}
T0 = time.time()


def say(msg):
    print(f"wan: {time.time() - T0:6.1f}s {msg}", flush=True)


def floats(s):
    return [float(x) for x in s.split(",") if x.strip()]


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="scripts/bench --wan",
        description="portredirect, ssh -R and direct TCP on an emulated WAN "
        "path (two network namespaces, a userspace delay line).")
    ap.add_argument("--wan", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--wan-quick", action="store_true",
                    help="RTT 20 ms x loss {0, 1 %%} at 50 Mbit/s, bulk1 and "
                    "hol, one repeat of 4 s runs (under 3 minutes)")
    ap.add_argument("--wan-selfcheck", action="store_true",
                    help="only check the emulated path and report its ceiling")
    ap.add_argument("--rtt", help="round-trip times, ms (default 2,20,80)")
    ap.add_argument("--loss", help="random loss each way, %% "
                    "(default 0,0.1,1,3)")
    ap.add_argument("--rate", help="bottleneck rates, Mbit/s (default 50,200; "
                    "rates above 80 %% of the measured ceiling are skipped)")
    ap.add_argument("--queue-ms", type=float,
                    help="bottleneck queue, ms at the rate (default the RTT, "
                    "at least 10)")
    ap.add_argument("--tcp-cc", default="cubic",
                    help="TCP congestion control inside the namespaces, for "
                    "direct TCP and ssh -R (default cubic, Linux's default; "
                    "see /proc/sys/net/ipv4/tcp_available_congestion_control)")
    ap.add_argument("--candidates",
                    default=",".join(c for c in CANDIDATES
                                     if c not in ("pr-base", "pr-noqb")),
                    help="subset of " + ",".join(CANDIDATES))
    ap.add_argument("--tests", help="subset of " + ",".join(TESTS)
                    + " (default all but share; blackout runs at loss 0 "
                    "only; share needs the direct candidate)")
    ap.add_argument("--seconds", type=float,
                    help="seconds per measurement (default 10, quick 4)")
    ap.add_argument("--repeats", type=int, help="repeats (default 3, quick 1)")
    ap.add_argument("--json", metavar="FILE", help="also write results as JSON")
    ap.add_argument("--base-bin-dir", metavar="DIR",
                    help="portredirect binaries of another build, run as the "
                    "pr-base candidate (bbr2)")
    ap.add_argument("--pr-log-level", default="info", metavar="LEVEL",
                    help="portredirect's --log-level (default info; trace "
                    "logs the queue bound's samples); with --keep")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (logs)")
    ap.add_argument("--bin-dir", help=argparse.SUPPRESS)
    ap.add_argument("--tools-dir", help=argparse.SUPPRESS)
    ap.add_argument("--parse-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    q = a.wan_quick
    try:
        a.rtts = floats(a.rtt or ("20" if q else "2,20,80"))
        a.losses = floats(a.loss or ("0,1" if q else "0,0.1,1,3"))
        a.rates = floats(a.rate or ("50" if q else "50,200"))
    except ValueError:
        ap.error("--rtt, --loss and --rate take comma-separated numbers")
    a.tests = [t.strip() for t in (a.tests or ("bulk1,hol" if q else
                                               ",".join(DEFAULT_TESTS)))
               .split(",")
               if t.strip()]
    cands = [c.strip() for c in a.candidates.split(",") if c.strip()]
    bad = [c for c in cands if c not in CANDIDATES] + \
        [t for t in a.tests if t not in TESTS]
    if bad:
        ap.error(f"unknown candidate(s) or test(s): {', '.join(bad)}")
    a.cands = [c for c in CANDIDATES if c in cands]
    if ("pr-base" in a.cands) != bool(a.base_bin_dir):
        ap.error("the pr-base candidate and --base-bin-dir go together")
    if a.base_bin_dir:
        a.base_bin_dir = os.path.abspath(a.base_bin_dir)
    a.seconds = a.seconds or (4 if q else 10)
    a.repeats = a.repeats or (1 if q else 3)
    if (a.seconds < 2 or a.repeats < 1 or not a.rtts or not a.losses
            or not a.rates or min(a.rtts) < 0 or max(a.rtts) > 2000
            or min(a.losses) < 0 or max(a.losses) > 50
            or min(a.rates) <= 0):
        ap.error("--seconds >= 2, --repeats >= 1, RTT 0-2000 ms, loss "
                 "0-50 %, rates > 0")
    return a


def pct(v, p):
    v = sorted(v)
    if not v:
        return None
    k = (len(v) - 1) * p / 100
    i = int(k)
    j = min(i + 1, len(v) - 1)
    return v[i] + (v[j] - v[i]) * (k - i)


def listening_in(pid, port):
    """Whether a TCP socket listens on |port| in the namespace of |pid|."""
    want = f":{port:04X}"
    try:
        with open(f"/proc/{pid}/net/tcp") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[1].endswith(want) and cols[3] == "0A":
                    return True
    except OSError:
        pass
    return False


class Wan:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix="portredirect-wan.")
        self.procs = Procs(self.tmp)
        self.ns = {"a": f"prdwan-{os.getpid()}-a",
                   "b": f"prdwan-{os.getpid()}-b"}
        self.made_ns = []
        self.made_run_sshd = False
        self.em = None
        self.ports = {}  # candidate -> port the user connects to, in a
        self.failures = {}
        self.samples = {}  # (scenario, fig) -> cand -> [values]
        self.units = {}
        self.check = {}
        self.scenarios = []
        self.info = {}
        self.params = None
        self.cand_mark = None

    # ---------------------------------------------------------- path ---

    def ip(self, *args):
        r = subprocess.run(["ip"] + list(args), capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 0:
            raise BenchError(f"ip {' '.join(args)}: {r.stderr.strip()}")

    def in_ns(self, side, argv):
        return ["ip", "netns", "exec", self.ns[side]] + argv

    def emcmd(self, line):
        self.em.stdin.write(line + "\n")
        self.em.stdin.flush()
        r, _, _ = select.select([self.em.stdout], [], [], 5)
        ans = self.em.stdout.readline().strip() if r else ""
        if not ans or ans.startswith("error"):
            raise BenchError(f"wanem: {line}: {ans or 'no answer'}")
        return ans

    def set_path(self, rtt, loss_pct, rate, queue_ms=None):
        if queue_ms is None:
            queue_ms = self.a.queue_ms or max(rtt, 10.0)
        self.params = (rtt, loss_pct, rate, queue_ms)
        self.emcmd(f"set {rtt / 2} 0 {loss_pct / 100} {rate} {queue_ms}")

    def reap_stale_namespaces(self):
        """Namespaces of an earlier run killed with SIGKILL (its cleanup never
        ran): prdwan-<pid>-* whose pid is gone."""
        r = subprocess.run(["ip", "netns", "list"], capture_output=True,
                           text=True, timeout=20)
        for line in r.stdout.splitlines():
            m = re.match(r"(prdwan-(\d+)-[ab])\b", line)
            if not m or os.path.exists(f"/proc/{m.group(2)}"):
                continue
            subprocess.run(["ip", "netns", "del", m.group(1)],
                           capture_output=True, timeout=20)
            print(f"removed {m.group(1)}, left by a run that was killed",
                  file=sys.stderr)

    def start_path(self):
        self.reap_stale_namespaces()
        for side in ("a", "b"):
            self.ip("netns", "add", self.ns[side])
            self.made_ns.append(self.ns[side])
            self.ip("-n", self.ns[side], "link", "set", "lo", "up")
        self.em = self.procs.start("wanem", [
            os.path.join(self.a.tools_dir, "wanem"),
            "--ns-a", f"/run/netns/{self.ns['a']}",
            "--ns-b", f"/run/netns/{self.ns['b']}"],
            stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        r, _, _ = select.select([self.em.stdout], [], [], 10)
        if not r or self.em.stdout.readline().strip() != "ready":
            raise BenchError("wanem did not start: " + self.procs.log("wanem"))
        for side, me, peer in (("a", ADDR_A, ADDR_B), ("b", ADDR_B, ADDR_A)):
            self.ip("-n", self.ns[side], "addr", "add", me, "peer", peer,
                    "dev", "wan0")
            self.ip("-n", self.ns[side], "link", "set", "wan0", "up")
            # TCP congestion control on the path, set on the route: a
            # namespace may not take a default outside the host's
            # tcp_allowed_congestion_control, a route may.
            self.ip("-n", self.ns[side], "route", "replace", f"{peer}/32",
                    "dev", "wan0", "src", me, "congctl", self.a.tcp_cc)
        self.iperf_srv = self.procs.start("iperf3-b", self.in_ns("b", [
            "iperf3", "-s", "-B", ADDR_B, "-p", str(IPERF_PORT)]))
        wait_for("iperf3 server", lambda: listening_in(self.iperf_srv.pid,
                                                       IPERF_PORT),
                 10, self.iperf_srv, self.procs, "iperf3-b")

    def ping(self, count, interval, deadline):
        r = subprocess.run(self.in_ns("a", [
            "ping", "-q", "-n", "-c", str(count), "-i", str(interval),
            "-W", "2", "-w", str(deadline), ADDR_B]),
            capture_output=True, text=True, timeout=deadline + 20)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
        avg = re.search(r"= [\d.]+/([\d.]+)/", r.stdout)
        if not m:
            raise BenchError(f"ping: {r.stderr.strip() or r.stdout.strip()}")
        return int(m.group(1)), int(m.group(2)), \
            float(avg.group(1)) if avg else None

    def iperf(self, secs):
        r = subprocess.run(self.in_ns("a", [
            "iperf3", "-c", ADDR_B, "-p", str(IPERF_PORT), "-R", "-J",
            "-t", str(secs), "--connect-timeout", "5000"]),
            capture_output=True, text=True, timeout=secs + 30)
        try:
            j = json.loads(r.stdout)
            return j["end"]["sum_received"]["bits_per_second"] / 1e6
        except (ValueError, KeyError) as e:
            raise BenchError(f"iperf3: {r.stderr.strip() or r.stdout[:200]}") \
                from e

    def check_rtt(self, rtt):
        self.set_path(rtt, 0, 0, 50)
        # Packets still queued under the previous setting hold back the
        # first pings (wanem never reorders): let them drain first.
        time.sleep(0.5)
        for _ in range(3):  # more tries for a busy moment of the host
            _, got, avg = self.ping(10, 0.05, int(rtt / 1000 * 10 + 5))
            ok = got == 10 and avg is not None and abs(avg - rtt) <= 1.0
            if ok:
                break
        self.check[f"rtt_{rtt:g}ms"] = {"set_ms": rtt, "ping_avg_ms": avg,
                                        "pass": ok}
        say(f"self-check: RTT {rtt:g} ms: ping average {avg} ms "
            f"({'PASS' if ok else 'FAIL'}: within 1 ms)")
        return ok

    def selfcheck(self):
        """The emulator's own checks (issue 22): RTT, loss, ceiling and
        loss-free TCP at each rate. Returns the rates it can carry."""
        ok = self.check_rtt(40)
        one_way = 3.0
        self.set_path(0, one_way, 0, 50)
        sent, got, _ = self.ping(8000, 0.0005, 30)
        want = 1 - (1 - one_way / 100) ** 2
        meas = 1 - got / sent
        lok = abs(meas - want) <= 0.15 * want
        ok = ok and lok
        self.check["loss"] = {"set_one_way_pct": one_way,
                              "expected_round_trip_pct": round(want * 100, 2),
                              "ping_round_trip_pct": round(meas * 100, 2),
                              "pings": sent, "pass": lok}
        say(f"self-check: loss {one_way:g} % each way: ping lost "
            f"{meas * 100:.2f} % of {sent} round trips, expected "
            f"{want * 100:.2f} % ({'PASS' if lok else 'FAIL'}: within 15 %)")
        self.set_path(0, 0, 0, 50)
        ceiling = self.iperf(3)
        self.check["ceiling_mbit"] = round(ceiling, 1)
        say(f"self-check: ceiling (no delay, no rate limit, one TCP stream "
            f"through wanem): {ceiling:.0f} Mbit/s")
        rates = []
        for rate in self.a.rates:
            if rate > 0.8 * ceiling:
                say(f"self-check: {rate:g} Mbit/s is above 80 % of the "
                    "ceiling: skipped")
                continue
            self.set_path(40, 0, rate)
            got = self.iperf(5)
            rok = got >= 0.9 * rate
            ok = ok and rok
            self.check[f"tcp_{rate:g}mbit"] = {"rtt_ms": 40,
                                               "iperf3_mbit": round(got, 1),
                                               "pass": rok}
            say(f"self-check: loss-free TCP at {rate:g} Mbit/s, RTT 40 ms: "
                f"{got:.1f} Mbit/s ({'PASS' if rok else 'FAIL'}: >= 90 %)")
            if rok:
                rates.append(rate)
        self.check["pass"] = ok
        return rates

    # ---------------------------------------------------- candidates ---

    def start_dest(self):
        p = self.procs.start("dest", self.in_ns("b", [
            sys.executable, os.path.join(HERE, "wanload.py"), "dest",
            "--port", str(DEST_PORT)]))
        wait_for("destination", lambda: listening_in(p.pid, DEST_PORT), 10,
                 p, self.procs, "dest")

    def start_ssh(self):
        d = ssh_keys(self.tmp, "wan")
        if not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", 0o755)
            self.made_run_sshd = True
        cfg = os.path.join(d, "sshd_config")
        with open(cfg, "w") as f:
            f.write(f"""# portredirect WAN benchmark: throwaway sshd
Port {SSHD_PORT}
ListenAddress {ADDR_A}
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
UseDNS no
""")
        sp = self.procs.start("sshd", self.in_ns("a", [
            "/usr/sbin/sshd", "-D", "-f", cfg,
            "-E", os.path.join(self.tmp, "sshd.err")]))
        wait_for("sshd", lambda: listening_in(sp.pid, SSHD_PORT), 10, sp,
                 self.procs, "sshd")
        cp = self.procs.start("ssh", self.in_ns("b", [
            "ssh", "-v", "-F", "/dev/null", "-N",
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UpdateHostKeys=no", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "ExitOnForwardFailure=yes",
            "-i", os.path.join(d, "user_key"), "-p", str(SSHD_PORT),
            "-R", f"127.0.0.1:{SSH_RPORT}:127.0.0.1:{DEST_PORT}",
            f"{getpass.getuser()}@{ADDR_A}"]))
        wait_for("ssh -R", lambda: listening_in(sp.pid, SSH_RPORT), 20, cp,
                 self.procs, "ssh")
        m = re.search(r"kex: server->client cipher: (\S+)",
                      self.procs.log("ssh"))
        self.info["ssh_cipher"] = m.group(1) if m else "?"
        self.ports["ssh"] = ("127.0.0.1", SSH_RPORT)

    def start_pr(self, name):
        cc = name.split("-", 1)[1]
        transport, both = [], []
        bin_dir = self.a.bin_dir
        if cc == "tcp":
            cc, transport = "bbr2", ["--quic-transport", "tcp"]
        elif cc == "base":
            cc, bin_dir = "bbr2", self.a.base_bin_dir
        elif cc == "qb":
            cc, both = "bbr2", ["--queue-bound", "on"]
        elif cc == "noqb":
            cc, both = "bbr2", ["--queue-bound", "off"]
        lport, qport = PR_PORTS[name]
        if not os.path.exists(os.path.join(self.tmp, "psk")):
            fd = os.open(os.path.join(self.tmp, "psk"),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, base64.b64encode(os.urandom(32)) + b"\n")
            os.close(fd)
        sdir = os.path.join(self.tmp, f"{name}-server")
        cdir = os.path.join(self.tmp, f"{name}-client")
        os.mkdir(cdir, 0o700)
        # 1452-byte datagrams fit the 1500-byte MTU of the TUN devices.
        common = ["--quic-psk-file", os.path.join(self.tmp, "psk"),
                  "--shutdown-grace", "0", "--congestion-control", cc,
                  "--max-udp-payload", "1452",
                  "--log-level", self.a.pr_log_level] + both
        sp = self.procs.start(f"{name}-server", self.in_ns("a", [
            os.path.join(bin_dir, "portredirect_server"),
            "--local-host", "127.0.0.1", "--local-port", str(lport),
            "--quic-server-host", ADDR_A, "--quic-server-port", str(qport),
            "--config-dir", sdir] + common))
        wait_for(f"{name} server", lambda: listening_in(sp.pid, lport), 15,
                 sp, self.procs, f"{name}-server")
        cp = self.procs.start(f"{name}-client", self.in_ns("b", [
            os.path.join(bin_dir, "portredirect_client"),
            "--destination-host", "127.0.0.1",
            "--destination-port", str(DEST_PORT),
            "--quic-remote-host", ADDR_A, "--quic-remote-port", str(qport),
            "--config-dir", cdir,
            "--server-cert", os.path.join(sdir, "cert.der")] + common +
            transport))
        wait_for(f"{name} tunnel",
                 lambda: "tunnel up" in self.procs.log(f"{name}-client"), 20,
                 cp, self.procs, f"{name}-client")
        self.ports[name] = ("127.0.0.1", lport)

    def start_cands(self):
        """Starts the tunnels. A restart first stops the previous ones: a
        tunnel that lived through another scenario would carry its
        congestion state (a 2 ms minimum RTT, a window cut by 3 % loss)
        into this one."""
        if self.cand_mark is None:
            self.start_dest()
            self.cand_mark = len(self.procs.items)
        while len(self.procs.items) > self.cand_mark:
            self.procs.stop(self.procs.items.pop()[1])
        for name in os.listdir(self.tmp):
            if name == "ssh" or name.startswith("pr-"):
                shutil.rmtree(os.path.join(self.tmp, name),
                              ignore_errors=True)
        for c in self.a.cands:
            if c in self.failures:
                continue
            say(f"starting {LABEL[c]}")
            try:
                if c == "direct":
                    self.ports[c] = (ADDR_B, DEST_PORT)
                elif c == "ssh":
                    self.start_ssh()
                else:
                    self.start_pr(c)
            except (BenchError, OSError, subprocess.SubprocessError) as e:
                self.fail(c, str(e))

    def fail(self, c, why):
        if c not in self.failures:
            self.failures[c] = why
            say(f"{c}: FAILED: {why}")

    # ------------------------------------------------------ measures ---

    def load(self, c, mode, secs, streams=1):
        host, port = self.ports[c]
        argv = self.in_ns("a", [sys.executable,
                                os.path.join(HERE, "wanload.py"), mode,
                                "--host", host, "--port", str(port),
                                "--seconds", str(secs),
                                "--streams", str(streams)])
        return subprocess.Popen(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def result(self, p, secs):
        try:
            out, err = p.communicate(timeout=secs + 30)
        except subprocess.TimeoutExpired as e:
            p.kill()
            p.communicate()
            raise BenchError("load timed out") from e
        try:
            return json.loads(out)
        except ValueError as e:
            raise BenchError("load: " + (err.strip().splitlines() or
                                         ["no output"])[-1]) from e

    @staticmethod
    def mbit(j, t_from, t_to):
        b = j["bucket"]
        s = j["series"][int(t_from / b):int(t_to / b)]
        return sum(s) * 8 / 1e6 / (len(s) * b) if s else 0.0

    def record(self, scen, fig, c, value, unit):
        self.samples.setdefault((scen, fig), {}).setdefault(c, []) \
            .append(value)
        self.units[fig] = unit

    def tcp_path(self, c):
        """How often candidate |c|'s client has moved its tunnel from UDP
        to TCP so far, and whether it is there now (README, "TCP
        fallback"); pr-tcp is there by design."""
        if not c.startswith("pr-") or c == "pr-tcp":
            return 0, False
        log = self.procs.log(f"{c}-client")
        moves = log.count("; using TCP")
        return moves, moves > log.count("; back on UDP")

    def measure(self, scen, c, test, rtt):
        secs = self.a.seconds
        if test in ("bulk1", "bulk8"):
            n = 1 if test == "bulk1" else 8
            j = self.result(self.load(c, "bulk", secs, n), secs)
            # The first second (slow start, tunnel set-up) is left out.
            v = self.mbit(j, 1.0, secs)
            self.record(scen, f"{test}_mbit", c, v, "Mbit/s")
            return f"{v:6.1f} Mbit/s"
        if test == "share":
            # One download through the candidate beside one direct TCP
            # download (Linux's congestion control), both started at once:
            # the candidate's share of what the two carry.
            if "direct" not in self.ports:
                raise BenchError("the share test needs the direct candidate")
            if c == "direct":
                return "skipped (the reference)"
            pc = self.load(c, "bulk", secs)
            pd = self.load("direct", "bulk", secs)
            jc, jd = self.result(pc, secs), self.result(pd, secs)
            vc, vd = self.mbit(jc, 1.0, secs), self.mbit(jd, 1.0, secs)
            share = 100 * vc / (vc + vd) if vc + vd > 0 else 0.0
            self.record(scen, "share_pct", c, share, "%")
            self.record(scen, "share_mbit", c, vc, "Mbit/s")
            return (f"{vc:6.1f} Mbit/s beside direct TCP's {vd:.1f}: "
                    f"{share:.0f} % of the path")
        if test == "hol":
            self.emcmd("queue")  # counts the bottleneck queue from here
            j = self.result(self.load(c, "hol", secs), secs + 3)
            # The wait in the bottleneck queue of the download's direction
            # (b to a): what a small answer waits for at the path itself.
            q = dict(kv.split("=") for kv in self.emcmd("queue").split()[1:])
            queue = float(q["b2a_p50"])
            lat = j["lat_ms"]
            p50, p99 = pct(lat, 50), pct(lat, 99)
            bulk = self.mbit(j, 1.5, 1.5 + secs)
            self.record(scen, "hol_p50_ms", c, p50, "ms")
            self.record(scen, "hol_p99_ms", c, p99, "ms")
            self.record(scen, "hol_bulk_mbit", c, bulk, "Mbit/s")
            self.record(scen, "hol_queue_ms", c, queue, "ms")
            return (f"p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  ({len(lat)} "
                    f"requests, {j['missing']} unanswered; bulk "
                    f"{bulk:.1f} Mbit/s; bottleneck queue p50 {queue:.1f} "
                    f"p99 {float(q['b2a_p99']):.1f} ms)")
        # blackout: 2 s without any packet, 3 s into a one-stream transfer.
        total = max(secs, 12)
        p = self.load(c, "bulk", total)
        time.sleep(3.0)
        self.emcmd("blackout 2000")
        t_end = time.monotonic() + 2.0
        j = self.result(p, total)
        b = j["bucket"]
        ser = j["series"]
        t_end_rel = t_end - j["t0"]
        before = [sum(ser[i:i + 5]) for i in range(int(1.5 / b),
                                                   int(2.5 / b) + 1)]
        ref = statistics.median(before) if before else 0
        back = None
        for i in range(int(t_end_rel / b), len(ser) - 4):
            if sum(ser[i:i + 5]) >= 0.8 * ref > 0:
                back = max(0.0, i * b - t_end_rel)
                break
        if back is None:
            back = float(total) - t_end_rel  # censored: never back
        self.record(scen, "blackout_back_s", c, back, "s")
        # The whole curve goes to the JSON file: Mbit/s per 100 ms, and when
        # the blackout ended.
        self.info.setdefault("blackout_series", {}).setdefault(scen, {})[c] = {
            "end_s": round(t_end_rel, 3),
            "mbit": [round(x * 8 / 1e6 / b, 2) for x in ser]}
        return (f"back to 80 % of the rate before {back:.1f} s after a 2 s "
                "blackout")

    def run(self):
        t0 = time.time()
        self.info["machine"] = {
            "cores": os.cpu_count(), "kernel": platform.release(),
            "loadavg_start": os.getloadavg()[0]}
        say(f"temporary directory {self.tmp}; namespaces {self.ns['a']}, "
            f"{self.ns['b']}")
        self.start_path()
        rates = self.selfcheck()
        if self.a.wan_selfcheck:
            self.info["machine"]["loadavg_end"] = os.getloadavg()[0]
            self.elapsed = time.time() - t0
            return
        order = list(self.a.cands)
        k = 0
        for rate in rates:
            for rtt in self.a.rtts:
                if not self.check_rtt(rtt):
                    say(f"RTT {rtt:g} ms: the path misses its setting; "
                        "scenario skipped")
                    continue
                for loss in self.a.losses:
                    scen = f"{rtt:g}ms/{loss:g}%/{rate:g}M"
                    self.scenarios.append({"name": scen, "rtt_ms": rtt,
                                           "loss_pct": loss,
                                           "rate_mbit": rate})
                    self.set_path(rtt, loss, rate)
                    say(f"scenario RTT {rtt:g} ms, loss {loss:g} % each way, "
                        f"{rate:g} Mbit/s, queue {self.params[3]:g} ms; "
                        "fresh tunnels")
                    self.start_cands()
                    tests = [t for t in self.a.tests
                             if t != "blackout" or loss == 0]
                    for rep in range(self.a.repeats):
                        for test in tests:
                            if test == "blackout" and rep > 0:
                                continue
                            rot = order[k % len(order):] + \
                                order[:k % len(order)]
                            k += 1
                            for c in rot:
                                if c in self.failures:
                                    continue
                                try:
                                    before = self.tcp_path(c)
                                    msg = self.measure(scen, c, test, rtt)
                                    after = self.tcp_path(c)
                                    if before[1] or after[1] or \
                                            after[0] > before[0]:
                                        # Not QUIC's figure: the client had
                                        # the tunnel on its TCP path.
                                        msg += " [on the TCP path]"
                                        self.record(scen, f"{test}_on_tcp",
                                                    c, 1, "runs")
                                    say(f"  {rep + 1}/{self.a.repeats} "
                                        f"{test:8s} {LABEL[c]:10s} {msg}")
                                except (BenchError, OSError) as e:
                                    say(f"  {test} {LABEL[c]}: failed: {e}")
                                    self.record(scen, f"{test}_failed", c,
                                                1, "runs")
                    self.info.setdefault("wanem_stats", {})[scen] = \
                        self.emcmd("stats")
        self.info["machine"]["loadavg_end"] = os.getloadavg()[0]
        self.elapsed = time.time() - t0

    def cleanup(self):
        self.procs.stop_all()
        for ns in self.made_ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if self.made_run_sshd:
            try:
                os.rmdir("/run/sshd")
            except OSError:
                pass
        if self.a.keep:
            say(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -------------------------------------------------------- report ---

    def med(self, scen, fig, c):
        v = self.samples.get((scen, fig), {}).get(c)
        return statistics.median(v) if v else None

    def bars(self):
        res = []
        pr, ssh, direct = "pr-bbr2", "ssh", "direct"

        def add(label, v, ok):
            res.append((label, ok, v))
        for s in self.scenarios:
            n, rtt, loss, rate = (s["name"], s["rtt_ms"], s["loss_pct"],
                                  s["rate_mbit"])
            b = self.med(n, "bulk1_mbit", pr)
            bs = self.med(n, "bulk1_mbit", ssh)
            bd = self.med(n, "bulk1_mbit", direct)
            if b is not None and loss == 1:
                if bs:
                    add(f"{n}: bulk >= 5x ssh -R", f"{b / bs:.1f}x",
                        b >= 5 * bs)
                add(f"{n}: bulk >= 85 % of {rate:g} Mbit/s",
                    f"{b / rate * 100:.0f} %", b >= 0.85 * rate)
            if b is not None and loss == 3:
                add(f"{n}: bulk >= 70 % of {rate:g} Mbit/s",
                    f"{b / rate * 100:.0f} %", b >= 0.7 * rate)
            if b is not None and loss == 0 and bd:
                add(f"{n}: bulk >= 0.95x direct TCP", f"{b / bd:.2f}x",
                    b >= 0.95 * bd)
            for fig in ("bulk1_mbit", "bulk8_mbit"):
                x, y = self.med(n, fig, pr), self.med(n, fig, ssh)
                if x is not None and y:
                    add(f"{n}: {fig.split('_')[0]} >= 0.9x ssh -R",
                        f"{x / y:.2f}x", x >= 0.9 * y)
            p50, p99 = self.med(n, "hol_p50_ms", pr), \
                self.med(n, "hol_p99_ms", pr)
            if p50 is not None and loss == 1:
                add(f"{n}: small-request p50 <= RTT + 10 ms "
                    f"({rtt + 10:g})", f"{p50:.0f} ms", p50 <= rtt + 10)
                add(f"{n}: small-request p99 <= 2 RTT + 20 ms "
                    f"({2 * rtt + 20:g})", f"{p99:.0f} ms",
                    p99 <= 2 * rtt + 20)
            d99 = self.med(n, "hol_p99_ms", direct)
            if p99 is not None and d99 is not None:
                add(f"{n}: small-request p99 <= direct TCP",
                    f"{p99:.0f} vs {d99:.0f} ms", p99 <= d99)
            s99 = self.med(n, "hol_p99_ms", ssh)
            if p99 is not None and s99 is not None:
                add(f"{n}: small-request p99 no worse than ssh -R / 0.9",
                    f"{p99:.0f} vs {s99:.0f} ms", p99 <= s99 / 0.9)
        return res

    def report(self):
        a = self.a
        m = self.info["machine"]
        print()
        print(f"portredirect WAN benchmark "
              f"({a.repeats} repeat(s) x {a.seconds:g} s, medians), "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}"
              f" UTC, {self.elapsed:.0f} s")
        print(f"machine: {m['cores']} cores, Linux {m['kernel']}; load "
              f"average {m['loadavg_start']:.2f} at start, "
              f"{m.get('loadavg_end', 0):.2f} at end")
        print(f"path: wanem between two namespaces; self-check "
              f"{'PASS' if self.check.get('pass') else 'FAIL'}, ceiling "
              f"{self.check.get('ceiling_mbit', '?')} Mbit/s; loss is per "
              "packet each way; bottleneck queue = max(RTT, 10 ms) at the "
              "rate unless --queue-ms")
        if self.a.wan_selfcheck:
            return []
        print("bulk: destination -> user (download), Mbit/s of payload "
              "after the first second; hol: 64-byte request/responses every "
              "20 ms on their own connection while one bulk download runs "
              "through the same tunnel (direct: beside it), ms")
        print(f"ssh cipher: {self.info.get('ssh_cipher', '?')}; TCP "
              f"congestion control (direct TCP, ssh -R): {a.tcp_cc}")
        print()
        cols = [c for c in self.a.cands]
        figs = [("bulk1_mbit", "1 stream Mbit/s"),
                ("bulk8_mbit", "8 streams Mbit/s"),
                ("hol_p50_ms", "small req p50 ms"),
                ("hol_p99_ms", "small req p99 ms"),
                ("hol_bulk_mbit", "bulk beside req Mbit/s"),
                ("hol_queue_ms", "bottleneck queue p50 ms"),
                ("blackout_back_s", "back after 2 s blackout, s"),
                ("share_pct", "% of path beside direct TCP")]
        head = f"{'scenario':18s} {'figure':27s}" + "".join(
            f"{LABEL[c]:>11s}" for c in cols)
        print(head)
        print("-" * len(head))
        for s in self.scenarios:
            for fig, label in figs:
                vals = [self.med(s["name"], fig, c) for c in cols]
                if all(v is None for v in vals):
                    continue
                print(f"{s['name']:18s} {label:27s}" + "".join(
                    f"{'-' if v is None else f'{v:.1f}':>11s}" for v in vals))
        print()
        bars = self.bars()
        print("Bars of issue 22 (pr bbr2; reported, not enforced):")
        for label, ok, shown in bars:
            print(f"  {'PASS' if ok else 'FAIL'}  {label}: {shown}")
        if self.failures:
            print()
            print("Candidates that failed:")
            for c, why in self.failures.items():
                print(f"  {c}: {why}")
        print()
        for (scen, fig), cs in self.samples.items():
            for c in CANDIDATES:
                x = self.med(scen, fig, c)
                if x is not None:
                    print(f"WAN {scen} {fig} {c} {x:.6g} {self.units[fig]}")
        return bars

    def write_json(self, bars):
        out = {"repeats": self.a.repeats, "seconds": self.a.seconds,
               "tcp_cc": self.a.tcp_cc,
               "base_bin_dir": self.a.base_bin_dir,
               "elapsed_s": round(self.elapsed, 1), "selfcheck": self.check,
               **self.info, "scenarios": self.scenarios,
               "figures": {f"{scen} {fig}": {
                   c: {"median": self.med(scen, fig, c), "samples": v,
                       "unit": self.units[fig]} for c, v in cs.items()}
                   for (scen, fig), cs in self.samples.items()},
               "bars": [{"bar": l, "pass": ok, "value": s}
                        for l, ok, s in bars],
               "failures": self.failures}
        with open(self.a.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wan: wrote {self.a.json}")


def main(argv):
    a = parse_args(argv)
    if a.parse_only:
        return 0
    if not a.bin_dir or not a.tools_dir:
        print("wan.py: run scripts/bench --wan", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("wan: needs root (network namespaces, TUN devices)",
              file=sys.stderr)
        return 1

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    w = Wan(a)
    try:
        w.run()
    except KeyboardInterrupt:
        print("wan: interrupted; cleaning up", file=sys.stderr)
        return 130
    except (BenchError, OSError, subprocess.SubprocessError) as e:
        print(f"wan: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        w.cleanup()
    bars = w.report()
    if a.json:
        w.write_json(bars)
    if not w.check.get("pass"):
        return 3
    return 1 if w.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
