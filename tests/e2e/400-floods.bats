#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Floods from anyone on the network (spec/08-security.md §1, attackers 1 and
# 2): garbage datagrams at the QUIC port and TCP connection floods at the
# public port, each while the tunnel carries a checksummed transfer. The
# good traffic keeps flowing, nothing crashes, nothing is amplified.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_rel

@test "100,000 garbage datagrams at the QUIC port: the transfer goes on, no amplification" {
  start_loadgen
  start_tunnel "$DEST_PORT"
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 4 -s $((16 * 1024 * 1024)) -b 65536 --timeout 280
  sleep 1
  run_helper --timeout 300 "$PRD_PYTHON" "$PRD_TOOLS/flood.py" udp 127.0.0.1 "$QUIC_PORT" \
    -n 100000 --local-host 127.0.0.2
  local line=$output
  assert "$(field sent "$line")" -ge 99000 "garbage datagrams sent"
  # Answers (stateless resets, version negotiation) are fewer bytes than the
  # garbage: the server is no amplifier.
  assert "$(field received_bytes "$line")" -lt $(($(field sent_bytes "$line") / 10)) \
    "bytes sent back for the garbage"
  wait_for_log "$(log_of xfer)" '^(ok|failed) ' 300
  run cat "$(log_of xfer)"
  assert_line "ok 4"
  # The good client's connection was never disturbed.
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "tunnel (re)established"
  is_running server || die "the server died"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "a TCP connection flood on the public port while the tunnel carries a transfer" {
  start_loadgen
  start_tunnel "$DEST_PORT"
  local sp cp fd_s0 fd_c0
  sp=$(pid_of server)
  cp=$(pid_of client)
  fd_s0=$(fd_count "$sp")
  fd_c0=$(fd_count "$cp")
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 4 -s $((8 * 1024 * 1024)) -b 65536 --timeout 280
  sleep 1
  # Open-and-close, open-and-reset, junk, and 500 idle connections held.
  run_helper --timeout 300 "$PRD_PYTHON" "$PRD_TOOLS/flood.py" tcp 127.0.0.1 "$SRV_PORT" \
    -n 2000 --conc 200 --mode close
  assert "$(field connected "$output")" -ge 1900 "flood connections accepted (close)"
  run_helper --timeout 300 "$PRD_PYTHON" "$PRD_TOOLS/flood.py" tcp 127.0.0.1 "$SRV_PORT" \
    -n 1000 --conc 200 --mode rst
  run_helper --timeout 300 "$PRD_PYTHON" "$PRD_TOOLS/flood.py" tcp 127.0.0.1 "$SRV_PORT" \
    -n 1000 --conc 200 --mode junk
  start_tool holders "$PRD_PYTHON" "$PRD_TOOLS/flood.py" tcp 127.0.0.1 "$SRV_PORT" \
    -n 500 --conc 100 --hold 500 --hold-seconds 5
  wait_for_log "$(log_of holders)" '^tcp ' 120
  # Meanwhile a new user is served promptly.
  wait_for_echo "$SRV_PORT" 10
  echo "# a new user was served in $ECHO_SECONDS s while 500 idle connections were held"
  assert_seconds_below "$ECHO_SECONDS" 5 "time to serve a new user during the flood"
  wait_for_log "$(log_of xfer)" '^(ok|failed) ' 300
  run cat "$(log_of xfer)"
  assert_line "ok 4"
  # After the flood, everything it opened is closed again.
  wait_until 60 fds_le "$sp" $((fd_s0 + 2)) ||
    die "server fds: $fd_s0 before, $(fd_count "$sp") after the flood"
  wait_until 60 fds_le "$cp" $((fd_c0 + 2)) ||
    die "client fds: $fd_c0 before, $(fd_count "$cp") after the flood"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "tunnel (re)established"
  echo_ok "$SRV_PORT"
  stop_all_checked
}
