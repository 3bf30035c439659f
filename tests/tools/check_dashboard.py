#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-only
"""Checks a Grafana dashboard against /metrics texts: it parses as JSON, has
panels with queries, and every portredirect_* or process_* name in its
queries is a metric family of one of the texts (# TYPE lines).

Usage: check_dashboard.py DASHBOARD.json METRICS.txt...
Exit 0 and one line "N expressions, M metric names, all exported", or 1
with the problem."""

import json
import re
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        dash = json.load(f)
    exported = set()
    for name in sys.argv[2:]:
        with open(name) as f:
            for line in f:
                m = re.match(r"# TYPE (\S+) ", line)
                if m:
                    exported.add(m.group(1))
    panels = dash.get("panels", [])
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash.get("templating", {}).get("list", [])
              if "definition" in v]
    if len(panels) < 8 or not exprs:
        sys.exit("too few panels or queries")
    used = set()
    for e in exprs:
        used |= set(re.findall(r"\b((?:portredirect|process)_[a-z0-9_]+)", e))
    unknown = sorted(used - exported)
    if unknown:
        sys.exit("not exported: %s" % ", ".join(unknown))
    print("%d expressions, %d metric names, all exported" % (len(exprs), len(used)))


if __name__ == "__main__":
    main()
