#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Faults on the path between client and server (tests/tools/udprelay.py):
# loss, reordering, duplication, a blackout, and NAT rebinding during
# transfers. Every byte must arrive intact, checked per block by xfer.py.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_rel

IMPAIR=(--loss 0.05 --reorder 0.05 --reorder-delay 10 --dup 0.02 --seed 7)

# relay_report: the relay's counters, into the test output.
relay_report() {
  local s
  s=$(relay_cmd stats)
  echo "# relay: $s"
  RELAY_STATS=$s
}

@test "5% loss + reordering + duplication: 32 MiB each way arrive intact" {
  start_loadgen
  start_tunnel_relay "$DEST_PORT" "${IMPAIR[@]}"
  run_helper --timeout 300 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 1 -s $((32 * 1024 * 1024)) --timeout 280
  assert_line "ok 1"
  relay_report
  # The path really was lossy in both directions. (On loopback datagrams are
  # 65,000 bytes, so 32 MiB is only about 750 of them each way.)
  assert "$(field up_drop "$RELAY_STATS")" -gt 10 "datagrams dropped client->server"
  assert "$(field down_drop "$RELAY_STATS")" -gt 10 "datagrams dropped server->client"
  assert "$(field up_dup "$RELAY_STATS")" -gt 3 "datagrams duplicated"
  assert "$(field up_reorder "$RELAY_STATS")" -gt 10 "datagrams reordered"
  # One QUIC connection carried it all.
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "tunnel (re)established"
  stop_all_checked
}

@test "5% loss + reordering + duplication: 50 concurrent transfers arrive intact" {
  start_loadgen
  start_tunnel_relay "$DEST_PORT" "${IMPAIR[@]}"
  run_helper --timeout 300 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 50 -s $((1024 * 1024)) --timeout 280
  assert_line "ok 50"
  relay_report
  assert "$(field up_drop "$RELAY_STATS")" -gt 10 "datagrams dropped"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "tunnel (re)established"
  stop_all_checked
}

@test "NAT rebinding during transfers: the connection migrates, streams stay intact" {
  start_loadgen
  start_tunnel_relay "$DEST_PORT"
  local client_lines server_lines
  client_lines=$(log_lines "$(log_of client)")
  server_lines=$(log_lines "$(log_of server)")
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 8 -s $((4 * 1024 * 1024)) --timeout 200
  sleep 1
  relay_cmd rebind
  sleep 1
  relay_cmd rebind
  wait_for_log "$(log_of xfer)" '^(ok|failed) ' 240
  run cat "$(log_of xfer)"
  assert_line "ok 8"
  relay_report
  assert "$(field rebinds "$RELAY_STATS")" == 2 "rebinds"
  # The same QUIC connection: no reconnect, no new authentication.
  run bash -c "tail -n +$((client_lines + 1)) '$(log_of client)' | grep -cE 'tunnel up|tunnel to .* down'"
  assert "$output" == 0 "client reconnects after the rebinding"
  run bash -c "tail -n +$((server_lines + 1)) '$(log_of server)' | grep -c 'authenticated'"
  assert "$output" == 0 "new authentications on the server"
  echo_ok "$SRV_PORT"
  stop_all_checked
  # spec/04-quic-profile.md §4: "The server logs the new address at INFO."
  run bash -c "tail -n +$((server_lines + 1)) '$(log_of server)' | grep -cE 'INFO .*connection migrated'"
  assert "$output" -ge 1 "INFO lines about the migrated client address"
}

@test "NAT rebinding under 5% loss: the connection migrates, streams stay intact" {
  start_loadgen
  start_tunnel_relay "$DEST_PORT" "${IMPAIR[@]}"
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 8 -s $((8 * 1024 * 1024)) --timeout 200
  sleep 1.5
  relay_cmd rebind
  wait_for_log "$(log_of xfer)" '^(ok|failed) ' 240
  run cat "$(log_of xfer)"
  assert_line "ok 8"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "tunnel (re)established"
  stop_all_checked
}

@test "a 3 s blackout (shorter than the idle timeout): the tunnel and its streams survive" {
  start_loadgen
  start_tunnel_relay "$DEST_PORT" -- --idle-timeout 10 --keepalive 2
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 4 -s $((4 * 1024 * 1024)) --timeout 200
  sleep 1
  relay_cmd blackhole on
  sleep 3
  relay_cmd blackhole off
  wait_for_log "$(log_of xfer)" '^(ok|failed) ' 240
  run cat "$(log_of xfer)"
  assert_line "ok 4"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "tunnel (re)established"
  stop_all_checked
}

@test "long: 5% loss + reordering + duplication: 256 MiB each way and 200 transfers" {
  skip_unless_long_rel
  start_loadgen
  start_tunnel_relay "$DEST_PORT" "${IMPAIR[@]}"
  run_helper --timeout 900 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 1 -s $((256 * 1024 * 1024)) -b 65536 --timeout 880
  assert_line "ok 1"
  run_helper --timeout 900 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 200 -s $((2 * 1024 * 1024)) --timeout 880
  assert_line "ok 200"
  relay_report
  stop_all_checked
}
