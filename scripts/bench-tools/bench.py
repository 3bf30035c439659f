#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
# The driver behind scripts/bench: starts the destinations and the candidate
# tunnels on loopback, measures them alternately, prints the table, the bars
# and one "BENCH <figure> <candidate> <value> <unit>" line per figure.
#
# scripts/bench builds the binaries and the helpers first and passes
# --bin-dir and --tools-dir; run that, not this file.

import argparse
import base64
import ctypes
import datetime
import getpass
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CANDIDATES = ["direct", "socat", "ssh", "portredirect", "portredirect-1452"]
CLK_TCK = os.sysconf("SC_CLK_TCK")
CAP = 1452



def ssh_keys(tmp, tag):
    """A throwaway sshd's directory TMP/ssh: a host key, a user key and the
    user key as authorized_keys (ed25519, no passphrase). Returns it."""
    d = os.path.join(tmp, "ssh")
    os.mkdir(d, 0o700)
    for k in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                        "-C", f"portredirect-{tag}-{k}",
                        "-f", os.path.join(d, k)],
                       check=True, capture_output=True)
    shutil.copy(os.path.join(d, "user_key.pub"),
                os.path.join(d, "authorized_keys"))
    return d

class BenchError(Exception):
    """A candidate could not be set up or measured."""


T0 = time.time()


def say(msg):
    print(f"bench: {time.time() - T0:5.1f}s {msg}", flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark portredirect against direct TCP, socat and "
        "ssh -R on loopback.",
    )
    ap.add_argument("--quick", action="store_true",
                    help="one repeat of 1 s runs, fewer connections (~45 s)")
    ap.add_argument("--repeats", type=int, help="repeats (default 3, quick 1)")
    ap.add_argument("--seconds", type=int,
                    help="seconds per iperf3 run (default 5, quick 1)")
    ap.add_argument("--conns", type=int,
                    help="sequential connections per repeat (default 2000, "
                    "quick 300; at most 10 s, quick 1 s)")
    ap.add_argument("--conc-conns", type=int,
                    help="connections of the 100-concurrent test per repeat "
                    "(default 5000, quick 1000; at most 10 s, quick 1 s)")
    ap.add_argument("--idle", type=int,
                    help="idle connections held open (default 10000, "
                    "quick 1000)")
    ap.add_argument("--candidates", default=",".join(CANDIDATES),
                    help="comma-separated subset of " + ",".join(CANDIDATES))
    ap.add_argument("--json", metavar="FILE", help="also write results as JSON")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (logs, keys)")
    ap.add_argument("--strict", action="store_true",
                    help="exit 3 when a bar is missed (default: report only)")
    ap.add_argument("--bin-dir", help=argparse.SUPPRESS)
    ap.add_argument("--tools-dir", help=argparse.SUPPRESS)
    ap.add_argument("--parse-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    q = a.quick
    a.repeats = a.repeats or (1 if q else 3)
    a.seconds = a.seconds or (1 if q else 5)
    a.conns = a.conns or (300 if q else 2000)
    a.conc_conns = a.conc_conns or (1000 if q else 5000)
    a.idle = a.idle if a.idle is not None else (1000 if q else 10000)
    # A slow candidate (socat forks, ssh waits on Nagle) stops early; its
    # rate is what it completed in that time.
    a.conn_seconds = 1 if q else 10
    cands = [c.strip() for c in a.candidates.split(",") if c.strip()]
    bad = [c for c in cands if c not in CANDIDATES]
    if bad:
        ap.error(f"unknown candidate(s): {', '.join(bad)}")
    a.cands = [c for c in CANDIDATES if c in cands]
    if min(a.repeats, a.seconds, a.conns, a.conc_conns) < 1 or a.idle < 0:
        ap.error("counts must be positive")
    return a


# ------------------------------------------------------------ /proc ---


def proc_table():
    """Returns {pid: (ppid, cpu_seconds_with_reaped_children)}."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        ticks = sum(int(x) for x in rest[11:15])
        out[int(d)] = (int(rest[1]), ticks / CLK_TCK)
    return out


def tree_pids(pid, table=None):
    table = table or proc_table()
    if pid not in table:
        return []
    kids = {}
    for p, (pp, _) in table.items():
        kids.setdefault(pp, []).append(p)
    res, todo = [], [pid]
    while todo:
        p = todo.pop()
        res.append(p)
        todo.extend(kids.get(p, []))
    return res


def cpu_tree(pid):
    """CPU seconds of |pid| and its descendants (reaped ones included)."""
    if pid is None:
        return 0.0
    t = proc_table()
    return sum(t[p][1] for p in tree_pids(pid, t))


def rss_tree(pid):
    """VmRSS of |pid| and its descendants, KiB."""
    total = 0
    for p in tree_pids(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def listening(port):
    want = f":{port:04X}"
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[1].endswith(want) and cols[3] == "0A":
                        return True
        except OSError:
            pass
    return False


# ------------------------------------------------------- processes ---


def _die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # pylint: disable=broad-except
        pass


class Procs:
    """Every process the benchmark starts, stopped in reverse order."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.items = []

    def start(self, name, argv, stdout=None, stdin=None):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        p = subprocess.Popen(
            argv, stdout=stdout if stdout is not None else log, stderr=log,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            cwd=self.tmp, start_new_session=True,
            preexec_fn=_die_with_parent, text=True)
        log.close()
        self.items.append((name, p))
        return p

    def log(self, name):
        try:
            with open(os.path.join(self.tmp, name + ".log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, p, grace=3.0):
        pids = tree_pids(p.pid) if p.poll() is None else []
        for q in [p.pid] + pids[1:]:
            try:
                os.kill(q, signal.SIGTERM)
            except OSError:
                pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        for q in [p.pid] + pids[1:]:
            try:
                os.kill(q, signal.SIGKILL)
            except OSError:
                pass
        try:
            p.wait(2)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self):
        while self.items:
            _, p = self.items.pop()
            self.stop(p)


def wait_for(what, cond, timeout, proc=None, procs=None, name=None):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc is not None and proc.poll() is not None:
        state = f"exited with status {proc.returncode}"
    else:
        state = f"not ready after {timeout} s"
    tail = ""
    if procs and name:
        tail = "\n" + "\n".join("    " + l for l in
                                procs.log(name).splitlines()[-15:])
    raise BenchError(f"{what}: {state}{tail}")


class Ports:
    def __init__(self):
        self.used = set()

    def get(self):
        for _ in range(100):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
            s.close()
            if p in self.used:
                continue
            try:
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.bind(("127.0.0.1", p))
                u.close()
            except OSError:
                continue
            self.used.add(p)
            return p
        raise BenchError("no free port")


# ------------------------------------------------------- candidates ---


class Cand:
    """One candidate: a data path to its iperf3 server and (except
    portredirect-1452) an echo path, each with a server and a client side."""

    def __init__(self, name):
        self.name = name
        self.data_port = None
        self.echo_port = None
        self.data_side = (None, None)  # (server pid, client pid)
        self.echo_side = (None, None)
        self.note = ""


class Bench:
    def __init__(self, args):
        self.a = args
        self.tmp = tempfile.mkdtemp(prefix="portredirect-bench.")
        self.procs = Procs(self.tmp)
        self.ports = Ports()
        self.tools = args.tools_dir
        self.bin = args.bin_dir
        self.cands = {}
        self.failures = {}  # candidate -> reason
        self.samples = {}  # figure -> candidate -> [values]
        self.units = {}
        self.info = {}
        self.made_run_sshd = False
        self.iperf_port = {}
        self.echo_port = None
        self.ssh_cipher = "n/a"

    # ---------------------------------------------------------- util ---

    def record(self, fig, cand, value, unit):
        self.samples.setdefault(fig, {}).setdefault(cand, []).append(value)
        self.units[fig] = unit

    def fail(self, cand, why):
        first = cand not in self.failures
        self.failures.setdefault(cand, why)
        if first:
            say(f"{cand}: FAILED: {why}")

    def connrate(self, port, count, conc, timeout_ms=5000, max_s=120):
        argv = [os.path.join(self.tools, "connrate"), "--port", str(port),
                "--count", str(count), "--concurrency", str(conc),
                "--timeout-ms", str(timeout_ms), "--max-seconds", str(max_s)]
        r = subprocess.run(argv, capture_output=True, text=True,
                           timeout=max_s + timeout_ms / 1000 + 30)
        m = dict(kv.split("=") for kv in r.stdout.split())
        if not m:
            raise BenchError(f"connrate: {r.stderr.strip()}")
        res = {k: float(v) for k, v in m.items()}
        res["stderr"] = r.stderr.strip()
        return res

    def echo_ready(self, port):
        def probe():
            try:
                return self.connrate(port, 1, 1, 1000, 5)["ok"] == 1
            except (BenchError, subprocess.TimeoutExpired):
                return False
        return probe

    # --------------------------------------------------------- setup ---

    def machine(self):
        info = {}
        info["cores"] = os.cpu_count()
        info["kernel"] = platform.release()
        model = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        info["cpu"] = model
        try:
            with open("/proc/meminfo") as f:
                kib = int(f.readline().split()[1])
            info["memory_gib"] = round(kib / 1048576, 1)
        except (OSError, ValueError):
            pass
        info["loadavg_start"] = os.getloadavg()[0]

        def first(argv, stream="stdout", pick=0):
            try:
                r = subprocess.run(argv, capture_output=True, text=True,
                                   timeout=10)
                lines = getattr(r, stream).strip().splitlines()
                return lines[pick].strip() if len(lines) > pick else "?"
            except (OSError, subprocess.TimeoutExpired):
                return "?"
        v = {}
        v["ssh"] = first(["ssh", "-V"], "stderr")
        v["socat"] = first(["socat", "-V"], "stdout", 1)
        v["iperf3"] = first(["iperf3", "--version"])
        v["portredirect"] = first(
            [os.path.join(self.bin, "portredirect_server"), "--version"])
        # Which ngtcp2 the binaries load (README: Platforms).
        v["ngtcp2"] = "?"
        try:
            r = subprocess.run(
                ["ldd", os.path.join(self.bin, "portredirect_server")],
                capture_output=True, text=True, timeout=10)
            for line in r.stdout.splitlines():
                f = line.split()
                if f and f[0].startswith("libngtcp2.so") and len(f) > 2:
                    v["ngtcp2"] = f[2]
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.info = {"machine": info, "versions": v}

    def start_common(self):
        psk = os.path.join(self.tmp, "psk")
        fd = os.open(psk, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, base64.b64encode(os.urandom(32)) + b"\n")
        os.close(fd)
        self.psk = psk
        # The echo destination, shared by every candidate's echo path.
        p = self.procs.start("echo", [os.path.join(self.tools, "echo")],
                             stdout=subprocess.PIPE)
        r, _, _ = select.select([p.stdout], [], [], 10)
        line = p.stdout.readline() if r else ""
        m = re.match(r"port (\d+)", line)
        if not m:
            raise BenchError("the echo server did not start: "
                             + self.procs.log("echo"))
        self.echo_port = int(m.group(1))
        # One iperf3 server per candidate: a run that breaks one candidate
        # cannot leave another's server busy.
        for c in self.a.cands:
            port = self.ports.get()
            p = self.procs.start(f"iperf3-{c}", [
                "iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)])
            wait_for(f"iperf3 server for {c}", lambda: listening(port), 10, p,
                     self.procs, f"iperf3-{c}")
            self.iperf_port[c] = port

    def setup_direct(self, c):
        c.data_port = self.iperf_port[c.name]
        c.echo_port = self.echo_port

    def setup_socat(self, c):
        # backlog: socat's default of 5 would drop SYNs in the concurrent
        # test and measure the retransmission timer, not socat.
        def one(kind, dest):
            port = self.ports.get()
            p = self.procs.start(f"socat-{kind}", [
                "socat",
                f"TCP-LISTEN:{port},reuseaddr,fork,bind=127.0.0.1,backlog=4096",
                f"TCP:127.0.0.1:{dest}"])
            wait_for(f"socat {kind}", lambda: listening(port), 10, p,
                     self.procs, f"socat-{kind}")
            return port, p.pid
        c.data_port, spid = one("data", self.iperf_port[c.name])
        c.data_side = (spid, None)
        c.echo_port, spid = one("echo", self.echo_port)
        c.echo_side = (spid, None)
        c.note = "fork per connection; one process is both sides"

    def setup_ssh(self, c):
        d = ssh_keys(self.tmp, "bench")
        if not os.path.isdir("/run/sshd"):
            try:
                os.makedirs("/run/sshd", 0o755)
                self.made_run_sshd = True
            except OSError as e:
                raise BenchError(f"cannot create /run/sshd: {e}") from e
        user = getpass.getuser()

        def one(kind, dest):
            sport = self.ports.get()
            rport = self.ports.get()
            cfg = os.path.join(d, f"sshd_config-{kind}")
            with open(cfg, "w") as f:
                f.write(f"""# portredirect benchmark: throwaway sshd
Port {sport}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd-{kind}.pid
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
GatewayPorts no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
UseDNS no
MaxStartups 100
""")
            sp = self.procs.start(f"sshd-{kind}", [
                "/usr/sbin/sshd", "-D", "-f", cfg,
                "-E", os.path.join(self.tmp, f"sshd-{kind}.err")])
            wait_for(f"sshd ({kind})", lambda: listening(sport), 10, sp,
                     self.procs, f"sshd-{kind}")
            argv = ["ssh", "-F", "/dev/null", "-N",
                    "-o", "StrictHostKeyChecking=no",
                    "-o", "UserKnownHostsFile=/dev/null",
                    "-o", "GlobalKnownHostsFile=/dev/null",
                    "-o", "UpdateHostKeys=no",
                    "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                    "-o", "ExitOnForwardFailure=yes",
                    "-i", os.path.join(d, "user_key"), "-p", str(sport),
                    "-R", f"127.0.0.1:{rport}:127.0.0.1:{dest}",
                    f"{user}@127.0.0.1"]
            if kind == "data":
                # -v for the negotiated cipher (a handful of lines per run).
                argv[1:1] = ["-v"]
            cp = self.procs.start(f"ssh-{kind}", argv)
            try:
                wait_for(f"ssh -R ({kind})", lambda: listening(rport), 15, cp,
                         self.procs, f"ssh-{kind}")
            except BenchError as e:
                raise BenchError(f"{e}\n  sshd log:\n"
                                 + self.procs.log(f"sshd-{kind}")) from e
            return rport, sp.pid, cp.pid
        c.data_port, sp, cp = one("data", self.iperf_port[c.name])
        c.data_side = (sp, cp)
        m = re.search(r"kex: server->client cipher: (\S+) MAC: (\S+)",
                      self.procs.log("ssh-data"))
        if m:
            self.ssh_cipher = m.group(1) + (
                "" if m.group(2) == "<implicit>" else f" + {m.group(2)}")
        c.echo_port, sp, cp = one("echo", self.echo_port)
        c.echo_side = (sp, cp)
        wait_for("ssh -R echo path", self.echo_ready(c.echo_port), 15)

    def setup_pr(self, c, cap):
        extra = ["--max-udp-payload", str(cap)] if cap else []

        def one(kind, dest, level):
            name = f"{c.name}-{kind}"
            lport = self.ports.get()
            qport = self.ports.get()
            sdir = os.path.join(self.tmp, f"{name}-server")
            cdir = os.path.join(self.tmp, f"{name}-client")
            os.mkdir(cdir, 0o700)
            sp = self.procs.start(f"{name}-server", [
                os.path.join(self.bin, "portredirect_server"),
                "--local-host", "127.0.0.1", "--local-port", str(lport),
                "--quic-server-host", "127.0.0.1",
                "--quic-server-port", str(qport),
                "--quic-psk-file", self.psk, "--config-dir", sdir,
                "--shutdown-grace", "0", "--log-level", level] + extra)
            wait_for(f"{name} server", lambda: listening(lport), 15, sp,
                     self.procs, f"{name}-server")
            cp = self.procs.start(f"{name}-client", [
                os.path.join(self.bin, "portredirect_client"),
                "--destination-host", "127.0.0.1",
                "--destination-port", str(dest),
                "--quic-remote-host", "127.0.0.1",
                "--quic-remote-port", str(qport),
                "--quic-psk-file", self.psk, "--config-dir", cdir,
                "--server-cert", os.path.join(sdir, "cert.der"),
                "--shutdown-grace", "0", "--log-level", level] + extra)
            return lport, sp, cp
        # The data path logs at info (a few lines per iperf3 run) to show
        # "tunnel up"; the echo path at warn, as the connection tests would
        # otherwise log a line per connection.
        c.data_port, sp, cp = one("data", self.iperf_port[c.name], "info")
        c.data_side = (sp.pid, cp.pid)
        wait_for(f"{c.name} data tunnel",
                 lambda: "tunnel up" in self.procs.log(f"{c.name}-data-client"),
                 15, cp, self.procs, f"{c.name}-data-client")
        if cap:
            return
        c.echo_port, sp, cp = one("echo", self.echo_port, "warn")
        c.echo_side = (sp.pid, cp.pid)
        wait_for(f"{c.name} echo tunnel", self.echo_ready(c.echo_port), 15,
                 cp, self.procs, f"{c.name}-echo-client")

    def setup(self):
        for name in self.a.cands:
            c = Cand(name)
            say(f"starting {name}")
            try:
                if name == "direct":
                    self.setup_direct(c)
                elif name == "socat":
                    self.setup_socat(c)
                elif name == "ssh":
                    self.setup_ssh(c)
                elif name == "portredirect":
                    self.setup_pr(c, 0)
                else:
                    self.setup_pr(c, CAP)
                self.cands[name] = c
            except (BenchError, OSError, subprocess.SubprocessError) as e:
                self.fail(name, str(e))

    # ------------------------------------------------------ measures ---

    def alive(self, c):
        return c.name in self.cands and c.name not in self.failures

    def iperf(self, c, streams, reverse, secs):
        srv, cli = c.data_side
        s0, c0 = cpu_tree(srv), cpu_tree(cli)
        argv = ["iperf3", "-c", "127.0.0.1", "-p", str(c.data_port),
                "-t", str(secs), "-P", str(streams), "-J",
                "--connect-timeout", "5000"]
        if reverse:
            argv.append("-R")
        try:
            r = subprocess.run(argv, capture_output=True, text=True,
                               timeout=secs + 40)
        except subprocess.TimeoutExpired as e:
            raise BenchError(f"iperf3 {' '.join(argv[5:])} timed out") from e
        # Let socat's and sshd's per-connection processes finish and be
        # reaped so that their CPU time is counted.
        if c.name in ("socat", "ssh"):
            time.sleep(0.2)
        s1, c1 = cpu_tree(srv), cpu_tree(cli)
        try:
            j = json.loads(r.stdout)
        except ValueError as e:
            raise BenchError(f"iperf3: {r.stderr.strip() or r.stdout[:200]}") \
                from e
        if "error" in j:
            raise BenchError(f"iperf3: {j['error']}")
        s = j["end"]["sum_received"]
        return s["bits_per_second"] / 1e9, s["bytes"], s1 - s0, c1 - c0

    def throughput(self, rep, order, warmup=False):
        tests = [(1, False), (1, True), (8, False), (8, True)]
        acc = {}
        for streams, rev in tests:
            fig = f"tput_{streams}_{'down' if rev else 'up'}"
            for name in order:
                c = self.cands.get(name)
                if not c or not self.alive(c):
                    continue
                try:
                    gbps, nbytes, scpu, ccpu = self.iperf(
                        c, streams, rev, 1 if warmup else self.a.seconds)
                except BenchError as e:
                    self.fail(name, f"{fig}: {e}")
                    continue
                if warmup:
                    continue
                self.record(fig, name, gbps, "Gbit/s")
                a = acc.setdefault(name, [0.0, 0.0, 0])
                a[0] += scpu
                a[1] += ccpu
                a[2] += nbytes
                say(f"  repeat {rep + 1}: {fig:12s} {name:18s} "
                    f"{gbps:7.2f} Gbit/s")
        for name, (scpu, ccpu, nbytes) in acc.items():
            if nbytes <= 0 or name == "direct":
                continue
            gb = nbytes / 1e9
            self.record("cpu_server_s_per_gb", name, scpu / gb, "s/GB")
            if name != "socat":
                self.record("cpu_client_s_per_gb", name, ccpu / gb, "s/GB")
            self.record("cpu_total_s_per_gb", name, (scpu + ccpu) / gb, "s/GB")

    def connections(self, rep, order):
        for name in order:
            c = self.cands.get(name)
            if not c or not self.alive(c) or c.echo_port is None:
                continue
            for conc, n, fig in ((1, self.a.conns, "conn_seq"),
                                 (100, self.a.conc_conns, "conn_c100")):
                try:
                    r = self.connrate(c.echo_port, n, conc,
                                      max_s=self.a.conn_seconds)
                except (BenchError, subprocess.TimeoutExpired) as e:
                    self.fail(name, f"{fig}: {e}")
                    continue
                if r["failed"] > 0:
                    say(f"  {name}: {fig}: {int(r['failed'])} of {n} "
                        f"failed ({r['stderr']})")
                    self.record(f"{fig}_failed", name, r["failed"], "conns")
                if r["ok"] == 0:
                    self.fail(name, f"{fig}: no connection succeeded "
                              f"({r['stderr']})")
                    continue
                self.record(f"{fig}_rate", name, r["rate"], "conn/s")
                self.record(f"{fig}_p50_ms", name, r["p50_ms"], "ms")
                self.record(f"{fig}_p99_ms", name, r["p99_ms"], "ms")
                say(f"  repeat {rep + 1}: {fig:12s} {name:18s} "
                    f"{r['rate']:7.0f} conn/s  p50 {r['p50_ms']:.2f} ms  "
                    f"p99 {r['p99_ms']:.2f} ms")

    def hold_cycle(self, c, tag):
        """Opens self.a.idle connections through |c|'s echo path, holds
        them, closes them. Returns (held, dropped, rss open, rss closed)
        with (server, client) RSS pairs in KiB."""
        srv, cli = c.echo_side
        settle = 0.5 if self.a.quick else 2.0
        name = f"hold-{c.name}-{tag}"
        h = self.procs.start(name, [
            os.path.join(self.tools, "hold"), "--port", str(c.echo_port),
            "--count", str(self.a.idle), "--parallel", "100"],
            stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        try:
            r, _, _ = select.select([h.stdout], [], [], 330)
            line = h.stdout.readline() if r else ""
            m = dict(kv.split("=") for kv in line.split())
            if "held" not in m:
                raise BenchError("hold: " + (self.procs.log(name).strip()
                                             or "no answer"))
            held = int(m["held"])
            time.sleep(settle)
            peak = (rss_tree(srv), rss_tree(cli))
            h.stdin.write("\n")
            h.stdin.flush()
            r, _, _ = select.select([h.stdout], [], [], 60)
            line = h.stdout.readline() if r else ""
            h.wait(30)
            time.sleep(settle + 1)
            after = (rss_tree(srv), rss_tree(cli))
        finally:
            self.procs.stop(h)
        dm = re.search(r"dropped=(\d+)", line)
        dropped = int(dm.group(1)) if dm else -1
        hlog = self.procs.log(name).strip()
        say(f"  idle: {c.name}: {tag}: held {held}, dropped {dropped} while "
            f"idle; RSS server {peak[0]} -> {after[0]} KiB, client "
            f"{peak[1]} -> {after[1]} KiB (open -> closed)"
            + (f" ({hlog})" if hlog else ""))
        return held, dropped, peak, after

    def idle(self):
        n = self.a.idle
        if n == 0:
            return
        for name in ("ssh", "portredirect"):
            c = self.cands.get(name)
            if not c or not self.alive(c):
                continue
            srv, cli = c.echo_side
            base = (rss_tree(srv), rss_tree(cli))
            say(f"  idle: {name}: {n} connections; RSS before: server "
                f"{base[0]} KiB, client {base[1]} KiB")
            try:
                held, dropped, peak, after = self.hold_cycle(c, "cycle 1")
                # portredirect: a second cycle shows whether memory is
                # reused (flat) or grows with every batch of connections.
                again = None
                if name == "portredirect":
                    again = self.hold_cycle(c, "cycle 2")[3]
            except (BenchError, OSError, ValueError,
                    subprocess.TimeoutExpired) as e:
                self.fail(name, f"idle connections: {e}")
                continue
            self.record("idle_held", name, held, "conns")
            self.record("idle_dropped", name, dropped, "conns")
            for i, side in enumerate(("server", "client")):
                if (srv, cli)[i] is None:
                    continue
                self.record(f"idle_rss_{side}_base_kib", name, base[i], "KiB")
                self.record(f"idle_rss_{side}_kib", name, peak[i], "KiB")
                if held > 0:
                    self.record(f"idle_rss_{side}_per_conn_kib", name,
                                (peak[i] - base[i]) / held, "KiB")
                self.record(f"idle_rss_{side}_after_close_kib", name,
                            after[i], "KiB")
                if again:
                    self.record(f"idle_rss_{side}_after_cycle2_kib", name,
                                again[i], "KiB")

    def run(self):
        t0 = time.time()
        self.machine()
        say(f"temporary directory {self.tmp}")
        self.start_common()
        self.setup()
        order = [n for n in self.a.cands if n in self.cands]
        if not self.a.quick:
            say("warm-up (1 s per candidate and test, not counted)")
            self.throughput(-1, order, warmup=True)
        for rep in range(self.a.repeats):
            k = rep % max(1, len(order))
            rot = order[k:] + order[:k]
            say(f"repeat {rep + 1}/{self.a.repeats}: order {' '.join(rot)}")
            self.throughput(rep, rot)
            self.connections(rep, rot)
        if self.a.idle:
            say("idle connections")
            self.idle()
        self.info["machine"]["loadavg_end"] = os.getloadavg()[0]
        self.elapsed = time.time() - t0

    def cleanup(self):
        self.procs.stop_all()
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

    def med(self, fig, cand):
        v = self.samples.get(fig, {}).get(cand)
        return statistics.median(v) if v else None

    def bars(self):
        res = []
        pr, cap, ssh = "portredirect", "portredirect-1452", "ssh"

        def ratio_bar(fig, cand, want, label):
            a, b = self.med(fig, cand), self.med(fig, ssh)
            if a is None or b is None or b == 0:
                res.append((label, None, "n/a"))
                return
            res.append((label, a / b >= want, f"{a / b:.2f}x"))
        for streams in (1, 8):
            for d in ("up", "down"):
                fig = f"tput_{streams}_{d}"
                what = "1 stream" if streams == 1 else "8 streams"
                ratio_bar(fig, pr, 1.5,
                          f"{what} {d}, path-sized packets: >= 1.5x ssh -R")
                ratio_bar(fig, cap, 1.0,
                          f"{what} {d}, 1452-byte packets: >= 1.0x ssh -R")
        rate = self.med("conn_seq_rate", pr)
        res.append(("sequential connections >= 1000/s",
                    None if rate is None else rate >= 1000,
                    "n/a" if rate is None else f"{rate:.0f}/s"))
        p99 = self.med("conn_seq_p99_ms", pr)
        res.append(("sequential connection p99 < 5 ms",
                    None if p99 is None else p99 < 5,
                    "n/a" if p99 is None else f"{p99:.2f} ms"))
        held = self.med("idle_held", pr)
        res.append(("10,000 concurrent idle connections",
                    None if held is None or self.a.idle < 10000
                    else held >= 10000,
                    "n/a" if held is None else f"{held:.0f} held of "
                    f"{self.a.idle}"))
        for side in ("server", "client"):
            v = self.med(f"idle_rss_{side}_per_conn_kib", pr)
            res.append((f"{side} RSS < 16 KiB per idle connection",
                        None if v is None else v < 16,
                        "n/a" if v is None else f"{v:.1f} KiB"))
        for side in ("server", "client"):
            base = self.med(f"idle_rss_{side}_base_kib", pr)
            peak = self.med(f"idle_rss_{side}_kib", pr)
            after = self.med(f"idle_rss_{side}_after_close_kib", pr)
            again = self.med(f"idle_rss_{side}_after_cycle2_kib", pr)
            label = (f"{side} memory flat after close (a 2nd open/close "
                     f"cycle ends within max(256 KiB, 5% of the growth) of "
                     f"the 1st)")
            if None in (base, peak, after, again):
                res.append((label, None, "n/a"))
                continue
            slack = max(256.0, 0.05 * (peak - base))
            res.append((label, again - after <= slack,
                        f"before {base / 1024:.1f}, open {peak / 1024:.1f}, "
                        f"closed {after / 1024:.1f}, after cycle 2 "
                        f"{again / 1024:.1f} MiB"))
        return res

    def report(self):
        a = self.a
        m, v = self.info["machine"], self.info["versions"]
        mode = "quick" if a.quick else "full"
        print()
        print(f"portredirect benchmark ({mode}: {a.repeats} repeat(s) x "
              f"{a.seconds} s per iperf3 run, medians), "
              f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} "
              f"UTC, {self.elapsed:.0f} s")
        print(f"machine: {m['cores']} cores, {m['cpu']}, Linux {m['kernel']}, "
              f"{m.get('memory_gib', '?')} GiB; load average "
              f"{m['loadavg_start']:.2f} at start, {m['loadavg_end']:.2f} "
              f"at end")
        print(f"versions: {v['ssh']} (cipher {self.ssh_cipher}); "
              f"{v['socat']}; {v['iperf3']}; {v['portredirect']} "
              f"with {v['ngtcp2']}")
        print("up = user -> destination (iperf3 client sends), down = "
              "destination -> user (iperf3 -R).")
        print(f"[{CAP}] rows: portredirect with --max-udp-payload {CAP}; the "
              "other columns repeat their path-sized figures (loopback MTU "
              "65536).")
        print("CPU s/GB: the side's processes (with children) over all the "
              "stream tests; socat is one process for both sides.")
        print(f"idle: RSS of the echo path's processes before, with "
              f"{a.idle} connections open, after closing them, and after a "
              "2nd open/close cycle.")
        print("ms, s/GB and KiB: lower is better.")
        print()

        pr, cap = "portredirect", "portredirect-1452"
        rows = []
        for streams in (1, 8):
            what = "1 stream" if streams == 1 else "8 streams"
            for d in ("up", "down"):
                rows.append((f"{what} {d}, Gbit/s", f"tput_{streams}_{d}",
                             pr))
        for streams in (1, 8):
            what = "1 stream" if streams == 1 else "8 streams"
            for d in ("up", "down"):
                rows.append((f"{what} {d} [{CAP}], Gbit/s",
                             f"tput_{streams}_{d}", cap))
        for tag, prc in (("", pr), (f" [{CAP}]", cap)):
            for side in ("server side", "client side", "both sides"):
                key = side.split()[0].replace("both", "total")
                rows.append((f"CPU s/GB, {side}{tag}",
                             f"cpu_{key}_s_per_gb", prc))
        rows += [
            ("sequential conn/s", "conn_seq_rate", pr),
            ("sequential p50 ms", "conn_seq_p50_ms", pr),
            ("sequential p99 ms", "conn_seq_p99_ms", pr),
            ("100 concurrent conn/s", "conn_c100_rate", pr),
            ("100 concurrent p50 ms", "conn_c100_p50_ms", pr),
            ("100 concurrent p99 ms", "conn_c100_p99_ms", pr),
            (f"idle conns held (of {a.idle})", "idle_held", pr),
            ("idle: server RSS before, KiB", "idle_rss_server_base_kib", pr),
            ("idle: server RSS open, KiB", "idle_rss_server_kib", pr),
            ("idle: server KiB/conn", "idle_rss_server_per_conn_kib", pr),
            ("idle: server RSS closed, KiB",
             "idle_rss_server_after_close_kib", pr),
            ("idle: server RSS cycle 2, KiB",
             "idle_rss_server_after_cycle2_kib", pr),
            ("idle: client RSS before, KiB", "idle_rss_client_base_kib", pr),
            ("idle: client RSS open, KiB", "idle_rss_client_kib", pr),
            ("idle: client KiB/conn", "idle_rss_client_per_conn_kib", pr),
            ("idle: client RSS closed, KiB",
             "idle_rss_client_after_close_kib", pr),
            ("idle: client RSS cycle 2, KiB",
             "idle_rss_client_after_cycle2_kib", pr),
        ]

        def fmt(x):
            if x is None:
                return "-"
            ax = abs(x)
            if ax >= 100:
                return f"{x:.0f}"
            if ax >= 10:
                return f"{x:.1f}"
            return f"{x:.2f}"

        def ratio(x, y):
            if x is None or y is None or y == 0:
                return "-"
            return f"{x / y:.2f}x"
        head = ("figure", "direct", "socat", "ssh -R", "portredir", "pr/ssh",
                "pr/socat")
        w = [34, 9, 9, 9, 9, 8, 8]
        line = "  ".join(h.ljust(w[0]) if i == 0 else h.rjust(w[i])
                         for i, h in enumerate(head))
        print(line)
        print("-" * len(line))
        for label, fig, prc in rows:
            if fig not in self.samples:
                continue
            vals = [self.med(fig, "direct"), self.med(fig, "socat"),
                    self.med(fig, "ssh"), self.med(fig, prc)]
            cells = [label] + [fmt(x) for x in vals] + [
                ratio(vals[3], vals[2]), ratio(vals[3], vals[1])]
            print("  ".join(cx.ljust(w[0]) if i == 0 else cx.rjust(w[i])
                            for i, cx in enumerate(cells)))
        print()
        print("Bars (checked here, not by the timed tests"
              + ("; --quick figures are indicative only" if a.quick else "")
              + "):")
        bars = self.bars()
        for label, ok, shown in bars:
            st = "n/a " if ok is None else ("PASS" if ok else "FAIL")
            print(f"  {st}  {label}: {shown}")
        if self.failures:
            print()
            print("Candidates that failed:")
            for name, why in self.failures.items():
                print(f"  {name}: {why}")
        print()
        for fig in self.samples:
            for cand in CANDIDATES:
                x = self.med(fig, cand)
                if x is not None:
                    print(f"BENCH {fig} {cand} {x:.6g} {self.units[fig]}")
        if a.json:
            out = {
                "mode": mode, "repeats": a.repeats, "seconds": a.seconds,
                "conns": a.conns, "conc_conns": a.conc_conns, "idle": a.idle,
                "elapsed_s": round(self.elapsed, 1),
                "ssh_cipher": self.ssh_cipher,
                **self.info,
                "figures": {
                    fig: {c: {"median": self.med(fig, c),
                              "samples": s, "unit": self.units[fig]}
                          for c, s in cs.items()}
                    for fig, cs in self.samples.items()},
                "bars": [{"bar": l, "pass": ok, "value": s}
                         for l, ok, s in bars],
                "failures": self.failures,
            }
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
            print(f"bench: wrote {a.json}")
        return bars


def main(argv):
    a = parse_args(argv)
    if a.parse_only:
        return 0
    if not a.bin_dir or not a.tools_dir:
        print("bench.py: run scripts/bench", file=sys.stderr)
        return 2

    def on_signal(signum, _frame):
        print(f"bench: stopped by signal {signum}; cleaning up",
              file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)
    # Ctrl-C works even when started from a shell that ignored SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    b = Bench(a)
    try:
        b.run()
    except KeyboardInterrupt:
        print("bench: interrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not skip the cleanup.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        b.cleanup()
    bars = b.report()
    if b.failures:
        return 1
    if a.strict and any(ok is False for _, ok, _ in bars):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
