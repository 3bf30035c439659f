#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Handshake floods at the QUIC port (tests/tools/evilpeer.c): connections
# that complete TLS and never authenticate, first Initials that are never
# continued, clients with a wrong PSK, and one address opening connections
# too fast. The server caps unauthenticated connections (256), answers with
# Retry under pressure, rate-limits per source address (spec/03-auth.md §6,
# spec/08-security.md §3), and the good client's traffic keeps flowing.
#
# The attackers use 127.0.0.2 and up; the good clients use 127.0.0.1.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_rel

# addrs FIRST LAST: "127.0.0.FIRST,...,127.0.0.LAST"
addrs() {
  local i out=
  for ((i = $1; i <= $2; i++)); do
    out+=${out:+,}127.0.0.$i
  done
  echo "$out"
}

# start_flood_target: a tunnel with a good client and a transfer running;
# the server's auth deadline is 2 s.
start_flood_target() {
  evilpeer_build
  start_loadgen
  PRD_SERVER_EXTRA=(--auth-timeout 2)
  start_tunnel "$DEST_PORT"
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 4 -s $((8 * 1024 * 1024)) -b 65536 --timeout 280
}

# good_traffic_ok: the transfer finished intact, the tunnel never dropped.
good_traffic_ok() {
  wait_for_log "$(log_of xfer)" '^(ok|failed) ' 300
  run cat "$(log_of xfer)"
  assert_line "ok 4"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "the good client's tunnel (re)established"
  echo_ok "$SRV_PORT"
}

# second_client_connects [TIMEOUT]: another good client authenticates.
second_client_connects() {
  copy_cert server client2
  start_client -n client2 --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" --quic-psk-file "$PSK_FILE"
  wait_tunnel_up client2 "${1:-20}"
}

@test "600 handshakes that never authenticate: at most 256 pending, Retry under pressure, good traffic flows" {
  start_flood_target
  evil silent --port "$QUIC_PORT" -n 600 -c 600 --local-host "$(addrs 2 21)" \
    --timeout 60 --hs-timeout 5
  local line=$output
  echo "# $line"
  assert "$(field handshakes "$line")" -ge 256 "handshakes completed"
  assert "$(field max_open_established "$line")" -le 256 "unauthenticated connections held at once"
  assert "$(field retries "$line")" -ge 1 "Retry packets (address validation under pressure)"
  assert "$(field auth_ok "$line")" == 0 "flood connections authenticated"
  # Those that got in were closed at the deadline with AUTH_TIMEOUT, or,
  # once their address had 10 timeouts (spec/03-auth.md §6: timeouts count),
  # refused with CONNECTION_REFUSED by its cool-down.
  assert "$(field auth_timeout "$line")" -ge 200 "connections closed with AUTH_TIMEOUT (10 per address)"
  assert $(($(field auth_timeout "$line") + $(field refused "$line"))) -ge 256 \
    "connections closed with AUTH_TIMEOUT or refused by a cool-down"
  good_traffic_ok
  # New clients get in again once the flood is gone.
  second_client_connects 20
  stop_all_checked
}

@test "5,000 first Initials never continued: the good client is unaffected and the pending slots come back" {
  start_flood_target
  local sp rss0
  sp=$(pid_of server)
  rss0=$(rss_kb "$sp")
  evil initials --port "$QUIC_PORT" -n 5000 --local-host "$(addrs 22 31)"
  echo "# $output"
  assert "$(field sent "$output")" == 5000 "Initials sent"
  local rss1
  rss1=$(rss_kb "$sp")
  echo "# server RSS $((rss0 / 1024)) MiB before, $((rss1 / 1024)) MiB after 5,000 Initials"
  # 256 half-open connections at most, each with its TLS state and a 64 KiB
  # send buffer (more under ASan).
  assert $(((rss1 - rss0) / 1024)) -le 96 "server RSS growth (MiB)"
  good_traffic_ok
  # The half-open connections expire (handshake timeout) and free the cap.
  second_client_connects 40
  stop_all_checked
}

@test "a wrong-PSK flood from one address: cool-down after 10 failures, other addresses unaffected" {
  start_flood_target
  make_psk "$PSK_FILE.wrong"
  evil wrongpsk --port "$QUIC_PORT" --psk-file "$PSK_FILE.wrong" -n 30 -c 15 \
    --local-host 127.0.0.40 --timeout 60 --hs-timeout 3
  local line=$output
  echo "# $line"
  local failed=$(($(field auth_failed "$line") + $(field protocol_error "$line")))
  assert "$failed" -ge 10 "wrong MACs that reached the check"
  assert "$failed" -le 25 "wrong MACs that reached the check (budget 10 + 15 in flight)"
  assert "$(field no_handshake "$line")" -ge 5 "connections dropped during the cool-down"
  assert "$(field auth_ok "$line")" == 0 "authenticated with a wrong PSK"
  wait_for_log_of server 'authentication failures from 127\.0\.0\.40.*refusing' 5
  # Another address, and the good client, are not affected.
  second_client_connects 20
  good_traffic_ok
  stop_all_checked
}

@test "the real client with a wrong PSK is refused after its failure budget and keeps retrying" {
  evilpeer_build
  start_loadgen
  start_tunnel "$DEST_PORT"
  make_psk "$BATS_TEST_TMPDIR/wrong.psk"
  # Pre-spend all but one of 127.0.0.41's budget, then let a real client
  # fail (it retries a rejected PSK only at the backoff cap, 30 s).
  evil wrongpsk --port "$QUIC_PORT" --psk-file "$BATS_TEST_TMPDIR/wrong.psk" -n 9 -c 1 \
    --local-host 127.0.0.41 --timeout 30
  copy_cert server bad
  start_client -n bad --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-local-host 127.0.0.41 --quic-psk-file "$BATS_TEST_TMPDIR/wrong.psk"
  wait_for_log_of server 'authentication failures from 127\.0\.0\.41.*refusing' 30
  # It keeps trying (with backoff), and its Initials are dropped.
  wait_for_log_of server 'dropping new connections from 127\.0\.0\.41' 45
  is_running bad || die "the client with the wrong PSK exited"
  run grep -c 'tunnel up' "$(log_of bad)"
  assert "$output" == 0 "tunnels of the client with the wrong PSK"
  echo_ok "$SRV_PORT"
}

@test "one address opening 150 connections at once: rate-limited, others unaffected" {
  start_flood_target
  evil silent --port "$QUIC_PORT" -n 150 -c 150 --local-host 127.0.0.50 \
    --timeout 60 --hs-timeout 3
  local line=$output
  echo "# $line"
  assert "$(field handshakes "$line")" -le 64 "connections from one address admitted in ~4 s (32 at once + 4/s)"
  assert "$(field no_handshake "$line")" -ge 80 "connections dropped by the per-address rate limit"
  wait_for_log_of server 'dropping new connections from 127\.0\.0\.50.*too many' 5
  second_client_connects 20
  good_traffic_ok
  stop_all_checked
}
