#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
# Plots a scripts/bench --wan --json file with gnuplot (Debian: gnuplot-nox):
# one-stream throughput against loss and small-request p50 and p99 against
# loss, one line per candidate, for each RTT and rate in the file.
#
# Usage: scripts/bench-tools/wan-plot.py FILE.json OUTDIR [--rtt MS] [--rate MBIT]
# Writes OUTDIR/wan-throughput.png, wan-p50.png and wan-p99.png; --rtt and --rate
# keep only the paths with that RTT or rate (one line per candidate and path
# otherwise).

import json
import os
import subprocess
import sys

LABEL = {"direct": "direct TCP", "ssh": "ssh -R", "pr-bbr2": "portredirect bbr2",
         "pr-base": "portredirect bbr2, base build",
         "pr-cubic": "portredirect cubic"}


def main(argv):
    keep = {}
    args = []
    it = iter(argv)
    for a in it:
        if a in ("--rtt", "--rate"):
            try:
                keep[a[2:]] = float(next(it))
            except (StopIteration, ValueError):
                args = []
                break
        else:
            args.append(a)
    if len(args) != 2:
        print("usage: wan-plot.py FILE.json OUTDIR [--rtt MS] [--rate MBIT]",
              file=sys.stderr)
        return 2
    with open(args[0]) as f:
        j = json.load(f)
    out = args[1]
    os.makedirs(out, exist_ok=True)
    scen = [s for s in j["scenarios"]
            if s["rtt_ms"] == keep.get("rtt", s["rtt_ms"])
            and s["rate_mbit"] == keep.get("rate", s["rate_mbit"])]
    if not scen:
        print("wan-plot.py: no scenario with that RTT and rate",
              file=sys.stderr)
        return 2
    losses = sorted({s["loss_pct"] for s in scen})
    paths = sorted({(s["rtt_ms"], s["rate_mbit"]) for s in scen})
    cands = [c for c in LABEL
             if any(c in v for v in j["figures"].values())]
    figs = j["figures"]

    def med(name, fig, c):
        v = figs.get(f"{name} {fig}", {}).get(c)
        return None if v is None else v["median"]

    data = os.path.join(out, "wan-plot.dat")
    blocks = []
    with open(data, "w") as f:
        for rtt, rate in paths:
            for c in cands:
                f.write(f"# {rtt:g} ms {rate:g} Mbit/s {c}\n")
                for i, loss in enumerate(losses):
                    name = f"{rtt:g}ms/{loss:g}%/{rate:g}M"
                    b = med(name, "bulk1_mbit", c)
                    p = med(name, "hol_p99_ms", c)
                    p50 = med(name, "hol_p50_ms", c)
                    f.write(f"{i} {loss:g} "
                            f"{'NaN' if b is None else b} "
                            f"{'NaN' if p is None else p} "
                            f"{'NaN' if p50 is None else p50}\n")
                f.write("\n\n")
                blocks.append((rtt, rate, c))
    tics = ", ".join(f'"{loss:g}" {i}' for i, loss in enumerate(losses))
    title = "; ".join(f"RTT {r:g} ms, {m:g} Mbit/s" for r, m in paths)
    common = f"""set terminal pngcairo size 800,480 font ",11"
set xtics ({tics})
set xlabel "random loss each way, %"
set xrange [-0.3:{len(losses) - 0.7}]
set key outside right
set grid
"""
    for what, col, ylab, fname, extra in (
            ("one-stream download", 3, "Mbit/s", "wan-throughput.png",
             "set yrange [0:*]\n"),
            ("p50 of 64-byte requests beside a download", 5,
             "ms (log scale)", "wan-p50.png", "set logscale y\n"),
            ("p99 of 64-byte requests beside a download", 4,
             "ms (log scale)", "wan-p99.png", "set logscale y\n")):
        plots = ", ".join(
            f"'{data}' index {k} using 1:{col} with linespoints lw 2 "
            f"title '{LABEL[c]}" + (f" {r:g} ms" if len(paths) > 1 else "")
            + "'" for k, (r, _m, c) in enumerate(blocks))
        script = (common + extra + f'set ylabel "{ylab}"\n'
                  f'set title "{what}: {title}"\n'
                  f"set output '{os.path.join(out, fname)}'\n"
                  f"plot {plots}\n")
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.remove(data)
    print(f"wrote {out}/wan-throughput.png, wan-p50.png and wan-p99.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
