#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# The original's own invocations (README "Usage"), in ONE shared HOME:
#   portredirect_server --local-host 127.0.0.1 --local-port P --quic-psk ilovespezifisch
#   portredirect_client --destination-host 127.0.0.1 --destination-port D
#     --quic-remote-host 127.0.0.1 --quic-remote-port 4433
#     --quic-remote-hostname-match localhost --quic-psk ilovespezifisch --provide-metrics
# QUIC uses the fixed default 127.0.0.1:4433 and the metrics the fixed
# 127.0.0.1:9898, so no other test may run at the same time as this file.
# One server serves the whole file; each test starts its own client. The
# last test checks both logs of everything before it for ERROR lines.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

BATS_NO_PARALLELIZE_WITHIN_FILE=true

ORIG_PSK=ilovespezifisch

setup_file() {
  export PRD_SHARED_HOME=$BATS_FILE_TMPDIR/home
  export PRD_LOG_DIR=$BATS_FILE_TMPDIR/logs
  mkdir -p "$PRD_SHARED_HOME" "$PRD_LOG_DIR"
  if ss -Hlnu 'sport = :4433' | grep -q . || ss -Hlnt 'sport = :9898' | grep -q .; then
    echo "# 127.0.0.1:4433/udp or :9898/tcp is in use:" >&3
    ss -lnup 'sport = :4433' >&3 || true
    return 1
  fi
  export IPERF_PORT ECHO_PORT ORIG_PORT
  IPERF_PORT=$(free_port)
  start_tool iperf3 iperf3 --server --bind 127.0.0.1 --port "$IPERF_PORT" --forceflush
  wait_for_log "$(log_of iperf3)" 'Server listening' 10
  start_dest -n echo echo
  ECHO_PORT=$DEST_PORT
  ORIG_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$ORIG_PORT" --quic-psk "$ORIG_PSK"
  wait_for_log_of server 'QUIC listening on 127\.0\.0\.1:4433' 5
}

teardown_file() {
  prd_teardown_file
}

# start_orig_client DEST_PORT [EXTRA...]: the original's client invocation.
start_orig_client() {
  local dest=$1
  shift
  start_client --destination-host 127.0.0.1 --destination-port "$dest" \
    --quic-remote-host 127.0.0.1 --quic-remote-port 4433 \
    --quic-remote-hostname-match localhost --quic-psk "$ORIG_PSK" "$@"
}

# iperf_ok ARGS...: an iperf3 run through the tunnel that moved bytes.
iperf_ok() {
  local json=$BATS_TEST_TMPDIR/iperf.json
  run_helper --timeout 90 bash -c \
    "iperf3 --client 127.0.0.1 --port $ORIG_PORT --time 3 --json $* >'$json'"
  run_helper "$PRD_PYTHON" - "$json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
if r.get("error"):
    sys.exit("iperf3 error: %s" % r["error"])
s = r["end"]["sum_received"]
assert s["bytes"] > 0, s
print("%.0f Mbit/s received, %d bytes" % (s["bits_per_second"] / 1e6, s["bytes"]))
EOF
  echo "# iperf3 $*: $output" >&3
}

@test "the original invocation carries traffic within two seconds of the client's start" {
  local t0=$EPOCHREALTIME
  start_orig_client "$ECHO_PORT" --provide-metrics
  wait_for_echo "$ORIG_PORT" 15
  local took
  took=$(since "$t0")
  echo "# first echo $took s after the client's start" >&3
  assert_seconds_below "$took" 2 "time from the client's start to traffic"
  # A 15-byte PSK runs with one loud warning that says how to make a good one.
  run grep -E '^[^ ]+ WARN .*openssl rand' "$(log_of server)"
  assert "$status" == 0 "the server warns about the short PSK"
  run grep -E '^[^ ]+ WARN .*openssl rand' "$(log_of client)"
  assert "$status" == 0 "the client warns about the short PSK"
  # Both share $HOME/.config/portredirect; the client pinned the server's
  # cert.der from there without any copy step.
  [[ -s $PRD_SHARED_HOME/.config/portredirect/cert.der ]] || die "no shared cert.der"
  stop client
}

@test "iperf3 through the original invocation" {
  start_orig_client "$IPERF_PORT" --provide-metrics
  wait_tunnel_up
  iperf_ok
  stop client
}

@test "iperf3 -R (reverse) through the original invocation" {
  start_orig_client "$IPERF_PORT" --provide-metrics
  wait_tunnel_up
  iperf_ok --reverse
  stop client
}

@test "iperf3 -P 20 through the original invocation" {
  start_orig_client "$IPERF_PORT" --provide-metrics
  wait_tunnel_up
  iperf_ok --parallel 20
  stop client
}

@test "--provide-metrics serves Prometheus text on 127.0.0.1:9898/metrics" {
  start_orig_client "$ECHO_PORT" --provide-metrics
  wait_tunnel_up
  run_helper curl -fsS http://127.0.0.1:9898/metrics
  local samples
  samples=$(grep -cE '^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9]' <<<"$output" || true)
  assert "$samples" -ge 3 "metric samples on /metrics"
  # Every counter is there from the start.
  assert "$output" =~ "portredirect_connections_accepted_total 0" "connection counter at 0"
  echo_ok "$ORIG_PORT"
  run_helper curl -fsS http://127.0.0.1:9898/metrics
  assert "$output" =~ "portredirect_connections_accepted_total 1"$'\n' \
    "one tunneled connection counted"
  stop client
}

@test "without --provide-metrics nothing listens on 9898" {
  start_orig_client "$ECHO_PORT"
  wait_tunnel_up
  echo_ok "$ORIG_PORT"
  run_helper --rc 7 curl -sS --max-time 5 http://127.0.0.1:9898/metrics
  stop client
}

@test "100 concurrent connections each sending and receiving 4 MiB at once" {
  start_orig_client "$ECHO_PORT" --provide-metrics
  wait_tunnel_up
  run_helper --timeout 400 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$ORIG_PORT" \
    -n 100 -s $((4 * 1024 * 1024)) --timeout 360
  assert_line "ok 100"
  echo "# ${lines[0]}" >&3
  stop client
}

@test "a second server and client in the same HOME reuse cert.der and key.der" {
  local dir=$PRD_SHARED_HOME/.config/portredirect
  local sum_cert sum_key
  sum_cert=$(sha256sum <"$dir/cert.der")
  sum_key=$(sha256sum <"$dir/key.der")
  local p2 q2
  p2=$(free_port)
  q2=$(free_port)
  start_server -n server2 --local-host 127.0.0.1 --local-port "$p2" \
    --quic-server-port "$q2" --quic-psk "$ORIG_PSK"
  start_client -n client2 --destination-host 127.0.0.1 --destination-port "$ECHO_PORT" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$q2" \
    --quic-remote-hostname-match localhost --quic-psk "$ORIG_PSK"
  wait_tunnel_up client2
  echo_ok "$p2"
  assert "$(sha256sum <"$dir/cert.der")" == "$sum_cert" "cert.der unchanged"
  assert "$(sha256sum <"$dir/key.der")" == "$sum_key" "key.der unchanged"
  stop client2
  stop server2
}

@test "after all of the above: no ERROR line in either log, and SIGTERM exits 0" {
  BATS_TEST_TMPDIR='' stop server 0 20
  local -a logs
  mapfile -t logs < <(_prd_logs)
  assert "${#logs[@]}" -ge 2 "logs of the server and the clients"
  assert_no_error_lines "${logs[@]}"
  assert_no_sanitizer_reports "${logs[@]}"
}
