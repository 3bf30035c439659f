#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# A/B of builds or congestion controllers on a lossy, delayed path: one
# tunnel per variant whose QUIC datagrams pass tests/tools/udprelay.py
# (a fixed delay each way and random loss), 1,452-byte datagrams, then one
# iperf3 stream up and down through each, variants in rotating order, and
# the median Mbit/s per variant and direction. Loopback only.
#
# Usage: scripts/bench-tools/lossy-ab.sh LOSS DELAY_MS SECONDS ROUNDS \
#            NAME=BINDIR,CC ...
#   e.g. lossy-ab.sh 0.01 10 8 3 bbr=build-ngtcp2-1x,bbr2 \
#            cubic=build-ngtcp2-1x,cubic
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
if (($# < 5)); then
  sed -n '9,12p' "$0" | sed -e 's/^# \{0,1\}//'
  exit 2
fi
loss=$1 delay=$2 secs=$3 rounds=$4
shift 4
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null
  done
  sleep 0.5
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
head -c 32 /dev/urandom | base64 >"$tmp/psk"
chmod 600 "$tmp/psk"
declare -A port res
names=()
for v in "$@"; do
  name=${v%%=*} rest=${v#*=}
  bin=${rest%%,*} cc=${rest#*,}
  [[ $bin == /* ]] || bin=$PWD/$bin
  names+=("$name")
  d=$tmp/$name
  mkdir -p "$d/s" "$d/c"
  chmod 700 "$d/s" "$d/c"
  ip=$(free_port) p=$(free_port) q=$(free_port) rp=$(free_port)
  common=(--quic-psk-file "$tmp/psk" --shutdown-grace 0
    --congestion-control "$cc" --max-udp-payload 1452)
  iperf3 -s -B 127.0.0.1 -p "$ip" >"$d/iperf.log" 2>&1 &
  pids+=($!)
  "$bin/portredirect_server" --local-host 127.0.0.1 --local-port "$p" \
    --quic-server-host 127.0.0.1 --quic-server-port "$q" \
    --config-dir "$d/s" "${common[@]}" >"$d/server.log" 2>&1 &
  pids+=($!)
  python3 -u tests/tools/udprelay.py --listen "127.0.0.1:$rp" \
    --upstream "127.0.0.1:$q" --loss "$loss" --delay "$delay" \
    >"$d/relay.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    [[ -s $d/s/cert.der ]] && grep -q listening "$d/relay.log" && break
    sleep 0.1
  done
  "$bin/portredirect_client" --destination-host 127.0.0.1 \
    --destination-port "$ip" --quic-remote-host 127.0.0.1 \
    --quic-remote-port "$rp" --config-dir "$d/c" \
    --server-cert "$d/s/cert.der" "${common[@]}" >"$d/client.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q "tunnel up" "$d/client.log" && break
    sleep 0.1
  done
  if ! grep -q "tunnel up" "$d/client.log"; then
    echo "$name: the tunnel did not come up" >&2
    tail -n 3 "$d/client.log" >&2
    exit 1
  fi
  port[$name]=$p
done
for ((r = 1; r <= rounds; r++)); do
  for name in "${names[@]}"; do
    for dir in up down; do
      flag=()
      [[ $dir == down ]] && flag=(-R)
      mbps=$(iperf3 -c 127.0.0.1 -p "${port[$name]}" -t "$secs" "${flag[@]}" -J 2>/dev/null |
        python3 -c 'import json, sys; j = json.load(sys.stdin); print("%.1f" % (j["end"]["sum_received"]["bits_per_second"] / 1e6))' 2>/dev/null) ||
        mbps=fail
      echo "round $r $name $dir $mbps Mbit/s"
      res[$name.$dir]+="$mbps "
    done
  done
done
for name in "${names[@]}"; do
  for dir in up down; do
    med=$(tr ' ' '\n' <<<"${res[$name.$dir]}" | grep . | sort -n |
      awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    echo "median $name $dir $med Mbit/s (${res[$name.$dir]% })"
  done
done
