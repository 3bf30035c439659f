#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Load: the original project's stress cases (every connection sends and
# receives at once, with a checksum per block: tests/tools/xfer.py), 1,000
# concurrent connections, and 10,000 concurrent connections through one
# tunnel followed by a check that file descriptors and memory come back.
# The default suite runs scaled-down sizes; PRD_LONG=1 runs the full ones.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
# metered_tunnel and metric (first: helpers_rel's setup must win).
load helpers_feat
load helpers_rel

# stress N BYTES [XFER_ARGS...]: N concurrent connections of BYTES each way.
stress() {
  local n=$1 bytes=$2
  shift 2
  run_helper --timeout 900 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n "$n" -s "$bytes" --timeout 880 "$@"
  assert_line "ok $n"
}

@test "stress (scaled down): 1 x 16 MiB, 10 x 2 MiB, 50 x 512 KiB, 100 x 256 KiB" {
  start_loadgen
  start_tunnel "$DEST_PORT"
  stress 1 $((16 * 1024 * 1024)) -b 65536
  stress 10 $((2 * 1024 * 1024))
  stress 50 $((512 * 1024))
  stress 100 $((256 * 1024))
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "one QUIC connection carried everything"
  stop_all_checked
}

@test "long: stress: 1 x 1 GiB, 10 x 100 MiB, 50 x 20 MiB, 100 x 10 MiB" {
  skip_unless_long_rel
  start_loadgen
  start_tunnel "$DEST_PORT"
  stress 1 $((1024 * 1024 * 1024)) -b 65536
  stress 10 $((100 * 1024 * 1024)) -b 65536
  stress 50 $((20 * 1024 * 1024))
  stress 100 $((10 * 1024 * 1024))
  stop_all_checked
}

@test "1,000 concurrent connections x 16 KiB each way" {
  start_loadgen
  start_tunnel "$DEST_PORT"
  stress 1000 $((16 * 1024))
  stop_all_checked
}

@test "long: 1,000 concurrent connections x 1 MiB each way" {
  skip_unless_long_rel
  start_loadgen
  start_tunnel "$DEST_PORT"
  stress 1000 $((1024 * 1024))
  stop_all_checked
}

# heap_of ADDR:PORT: portredirect_heap_allocated_bytes from a metrics
# endpoint.
heap_of() {
  metric portredirect_heap_allocated_bytes "$(curl -fsS --max-time 10 "http://$1/metrics")"
}

# many_conns N ROUNDS: N concurrent connections through one tunnel, all
# verified open at once, then all closed; ROUNDS times. File descriptors
# must come back to the baseline, and the heap must not grow from round to
# round. (The heap, not RSS: under AddressSanitizer RSS after a round moved
# by 10-17 MiB from run to run with the same code, the code of before this
# check included, while the heap in use is exact. RSS after open/close
# cycles is checked on the release build by scripts/bench.)
many_conns() {
  local n=$1 rounds=$2
  asan_small_quarantine
  start_loadgen
  metered_tunnel "$DEST_PORT"
  local ms=$SM mc=$CM
  echo_ok "$SRV_PORT"
  local sp cp fd_s0 fd_c0 r
  sp=$(pid_of server)
  cp=$(pid_of client)
  fd_s0=$(fd_count "$sp")
  fd_c0=$(fd_count "$cp")
  local -a heap_s=() heap_c=()
  for ((r = 1; r <= rounds; r++)); do
    local release=$BATS_TEST_TMPDIR/release$r
    start_tool "hold$r" "$PRD_PYTHON" -u "$PRD_TOOLS/loadgen.py" hold 127.0.0.1 "$SRV_PORT" \
      -n "$n" --bytes 256 --conc 256 --hold 120 --release "$release" --timeout 300
    wait_for_log "$(log_of "hold$r")" '^open ' 400
    local peak_s peak_c
    peak_s=$(fd_count "$sp")
    peak_c=$(fd_count "$cp")
    echo "# round $r: $(head -n 1 "$(log_of "hold$r")"); fds server $peak_s, client $peak_c; RSS server $(($(rss_kb "$sp") / 1024)) MiB, client $(($(rss_kb "$cp") / 1024)) MiB; heap server $(($(heap_of "$ms") / 1024)) KiB, client $(($(heap_of "$mc") / 1024)) KiB"
    run head -n 1 "$(log_of "hold$r")"
    assert "$output" =~ "^open $n failed 0 " "round $r: all $n connections open and echoing"
    assert "$peak_s" -ge "$n" "round $r: server fds while the connections are open"
    assert "$peak_c" -ge "$n" "round $r: client fds while the connections are open"
    touch "$release"
    wait_for_log "$(log_of "hold$r")" '^closed ' 120
    # Everything is closed again: fds back to the baseline.
    wait_until 60 fds_le "$sp" $((fd_s0 + 2)) ||
      die "round $r: server fds $fd_s0 before, $(fd_count "$sp") after"
    wait_until 60 fds_le "$cp" $((fd_c0 + 2)) ||
      die "round $r: client fds $fd_c0 before, $(fd_count "$cp") after"
    wait_until 30 stat_cmp "$LOADGEN_STATS" open -eq 0 ||
      die "round $r: destination connections still open: $(cat "$LOADGEN_STATS")"
    sleep 1
    heap_s+=("$(heap_of "$ms")")
    heap_c+=("$(heap_of "$mc")")
    echo "# after round $r: fds server $(fd_count "$sp") (baseline $fd_s0), client $(fd_count "$cp") (baseline $fd_c0); RSS server $(($(rss_kb "$sp") / 1024)) MiB, client $(($(rss_kb "$cp") / 1024)) MiB; heap server $((heap_s[r - 1] / 1024)) KiB, client $((heap_c[r - 1] / 1024)) KiB"
  done
  # The first round fills the pools (the stream buffers' free list keeps up
  # to 2 MiB); later rounds must reuse them: at most 512 KiB + 64 bytes per
  # connection above the first round's heap (seen: under 80 KiB). A leak of
  # 200 bytes per connection fails it over three rounds (a leaked
  # connection record, 330 bytes, did).
  local last=$((rounds - 1)) slack=$((512 * 1024 + 64 * n))
  assert "${heap_s[last]}" -le $((heap_s[0] + slack)) "server heap (bytes) after the last round vs the first"
  assert "${heap_c[last]}" -le $((heap_c[0] + slack)) "client heap (bytes) after the last round vs the first"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "2,000 concurrent connections, three times: fds and heap memory come back" {
  many_conns 2000 3
}

@test "long: 10,000 concurrent connections through one tunnel, three times: no fd or memory leak" {
  skip_unless_long_rel
  many_conns 10000 3
}
