# SPDX-License-Identifier: GPL-3.0-only
# shellcheck shell=bash
# Sourced by ci/ngtcp2-1x.sh and ci/debian13.sh.

# mirror_uri prints the machine's own Debian mirror: the first URI that
# serves Debian's main suites, from deb822 .sources files or one-line
# sources.list entries.
mirror_uri() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk '
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i ~ /^(bookworm|trixie|stable)$/) ok = 1 }
      /^$/ { if (ok && uri != "") { print uri; exit } ok = 0; uri = "" }
      END { if (ok && uri != "") print uri }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk '$1 == "deb" && $0 !~ /security/ {
           for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit }
         }' "$f"
  done
}
