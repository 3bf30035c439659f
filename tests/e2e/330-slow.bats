#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Slow readers: a user or a destination that reads nothing while the other
# side sends as fast as it can. Backpressure must hold: both processes'
# memory stays bounded and the other streams of the tunnel keep flowing.
#
# The bound asserted: RSS may grow by at most SLOW_RSS_BOUND_MB (64 MiB) over
# its value before the slow stream started, per process. The design bound
# per stuck stream is the 8 MiB send buffer on the sending side plus the
# stream's flow-control window (auto-tuned up to 16 MiB) queued on the
# receiving side; the rest is slack for the allocator and the other
# transfers. ASan runs with a small quarantine here so that RSS tracks live
# memory.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_rel

SLOW_RSS_BOUND_MB=${SLOW_RSS_BOUND_MB:-64}
SLOW_SECONDS=${SLOW_SECONDS:-6}

# slow_case CMD SEND_BYTES: one stuck user (CMD sent first), then measure.
slow_case() {
  local cmd=$1 send=$2
  asan_small_quarantine
  start_loadgen
  # The stuck stream never ends by itself: do not wait for it at shutdown.
  PRD_SERVER_EXTRA=(--shutdown-grace 1)
  start_tunnel "$DEST_PORT" --shutdown-grace 1
  # Warm up both processes with a transfer like the ones that run later.
  run_helper --timeout 120 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 4 -s $((2 * 1024 * 1024)) --timeout 100
  local srv_pid cli_pid rss_s0 rss_c0
  srv_pid=$(pid_of server)
  cli_pid=$(pid_of client)
  rss_s0=$(rss_kb "$srv_pid")
  rss_c0=$(rss_kb "$cli_pid")
  start_rss_sampler rss_server "$srv_pid"
  start_rss_sampler rss_client "$cli_pid"
  start_tool slowuser "$PRD_PYTHON" "$PRD_TOOLS/loadgen.py" user 127.0.0.1 "$SRV_PORT" \
    --cmd "$cmd" --send-bytes "$send" --hold "$SLOW_SECONDS"
  sleep 2
  # Other streams keep flowing while that one is stuck.
  local others_ok=1
  run_helper --rc any --timeout 60 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 4 -s $((2 * 1024 * 1024)) --timeout 20
  [[ $status -eq 0 && $output =~ "ok 4" ]] || others_ok=0
  wait_for_log "$(log_of slowuser)" '^user ' $((SLOW_SECONDS + 30))
  local max_s max_c grow_s grow_c
  max_s=$(max_rss_of rss_server)
  max_c=$(max_rss_of rss_client)
  grow_s=$(((max_s - rss_s0) / 1024))
  grow_c=$(((max_c - rss_c0) / 1024))
  echo "# server RSS $((rss_s0 / 1024)) MiB before, max $((max_s / 1024)) MiB (+$grow_s)"
  echo "# client RSS $((rss_c0 / 1024)) MiB before, max $((max_c / 1024)) MiB (+$grow_c)"
  echo "# $(cat "$(log_of slowuser)")"
  echo "# destination: $(cat "$LOADGEN_STATS")"
  SLOW_USER_LINE=$(cat "$(log_of slowuser)")
  assert "$grow_s" -le "$SLOW_RSS_BOUND_MB" "server RSS growth (MiB) while a stream is stuck"
  assert "$grow_c" -le "$SLOW_RSS_BOUND_MB" "client RSS growth (MiB) while a stream is stuck"
  # A stuck stream must not take the connection-level window from the others
  # (spec/08-security.md §3).
  ((others_ok == 1)) || die "the other streams stalled while one stream was stuck"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "a user that reads nothing while the destination sends without end: memory bounded, others flow" {
  slow_case SRC 0
  # The destination could push only what the buffers along the way hold,
  # not gigabytes.
  local out
  out=$(stat_of "$LOADGEN_STATS" bytes_out)
  echo "# the destination got $((out / 1048576)) MiB out in $SLOW_SECONDS s"
  assert "$out" -lt $((256 * 1024 * 1024)) "bytes the destination could send to a non-reader"
}

@test "a destination that reads nothing while the user sends gigabytes: memory bounded, others flow" {
  slow_case NRD $((4 * 1024 * 1024 * 1024))
  local sent
  sent=$(field sent "$SLOW_USER_LINE")
  echo "# the user got $((sent / 1048576)) MiB into the tunnel in $SLOW_SECONDS s"
  assert "$sent" -lt $((256 * 1024 * 1024)) "bytes the user could send to a non-reading destination"
}
