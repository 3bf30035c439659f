#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# The WAN benchmark's path emulator (scripts/bench-tools/wanem.c, driven by
# scripts/bench-tools/wan.py): two namespaces of its own joined by a
# userspace delay line on TUN devices. Its self-check must pass (ping RTT
# within 1 ms of 40 ms, ping loss within 15 % of the expected round-trip
# loss at 3 % each way, loss-free TCP >= 90 % of 50 Mbit/s) and leave no
# namespace behind; bad arguments give a one-line error. About 20 s. Needs
# root (ip netns, TUN); skipped otherwise.

# shellcheck disable=SC2154
# (bats sets status/output/lines.)

setup_file() {
  export WANEM_DIR=$BATS_FILE_TMPDIR
  [[ $(id -u) -eq 0 ]] || return 0
  cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$WANEM_DIR/wanem" \
    "$BATS_TEST_DIRNAME/../../scripts/bench-tools/wanem.c"
}

setup() {
  [[ $(id -u) -eq 0 ]] || skip "needs root for ip netns and TUN"
  [[ -c /dev/net/tun ]] || skip "no /dev/net/tun"
  command -v ping >/dev/null 2>&1 || skip "ping (iputils-ping) is missing"
  command -v iperf3 >/dev/null 2>&1 || skip "iperf3 is missing"
  ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
}

@test "wanem: the emulated path passes its self-check and is removed after" {
  # A benchmark tool's check (scripts/bench --wan runs it too), not the
  # product's: with --long (about 20 s).
  [[ ${LONG:-0} == 1 ]] || skip "long test (LONG=1 or scripts/test --long)"
  # A namespace left by a run killed with SIGKILL (a pid that is gone) is
  # removed by the next run.
  stale=4194300
  while [[ -e /proc/$stale ]]; do stale=$((stale - 1)); done
  ip netns add "prdwan-$stale-a"
  run timeout 120 python3 "$ROOT/scripts/bench-tools/wan.py" \
    --wan-selfcheck --rate 50 --bin-dir "$WANEM_DIR" --tools-dir "$WANEM_DIR"
  echo "$output"
  [[ $status -eq 0 ]]
  [[ $output == *"self-check PASS"* ]]
  [[ $output == *"RTT 40 ms: ping average"*"(PASS"* ]]
  [[ $output == *"loss 3 % each way"*"(PASS"* ]]
  [[ $output == *"loss-free TCP at 50 Mbit/s"*"(PASS"* ]]
  ns=$(grep -o 'namespaces prdwan-[0-9]*-a' <<<"$output" | cut -d' ' -f2)
  [[ -n $ns ]]
  [[ $(ip netns list) != *"${ns%-a}-"* ]]
  [[ $(ip netns list) != *"prdwan-$stale-a"* ]]
  [[ $output == *"removed prdwan-$stale-a, left by a run that was killed"* ]]
}

@test "wanem: a missing namespace or a bad value is a one-line error" {
  run "$WANEM_DIR/wanem" --ns-a /nonexistent/ns --ns-b /nonexistent/ns
  [[ $status -eq 1 ]]
  [[ ${#lines[@]} -eq 1 ]]
  [[ $output == "wanem: /nonexistent/ns: No such file or directory" ]]
  run "$WANEM_DIR/wanem" --ns-a x --ns-b y --delay 12abc
  [[ $status -eq 2 ]]
  [[ $output == "wanem: bad value for --delay" ]]
  run "$WANEM_DIR/wanem" --ns-a x --ns-b y --loss 2
  [[ $status -eq 2 ]]
  [[ $output == "wanem: values out of range" ]]
}
