#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Crashes: kill -9 of the client or the server in the middle of transfers.
# The survivor notices within the idle timeout, the users' connections end
# (they do not hang), and service resumes by itself.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_rel

IDLE=6

@test "kill -9 of the client mid-transfer: users reset within the idle timeout, a restarted client serves at once" {
  start_loadgen
  PRD_SERVER_EXTRA=(--idle-timeout "$IDLE" --keepalive 2)
  start_tunnel "$DEST_PORT" --idle-timeout "$IDLE" --keepalive 2
  # Long transfers, so that they are in the middle when the client dies.
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 6 -s $((1024 * 1024 * 1024)) --timeout 120
  wait_until 30 stat_cmp "$LOADGEN_STATS" accepted -ge 6 ||
    die "the transfers did not start: $(cat "$LOADGEN_STATS")"
  sleep 2
  local server_lines t0
  server_lines=$(log_lines "$(log_of server)")
  t0=$EPOCHREALTIME
  kill -KILL "$(pid_of client)"
  wait_exit client 5
  assert "$EXIT_RC" == 137 "the client was killed"
  # A new client comes up at once and serves new users, while the server
  # still holds the dead connection.
  restart client
  wait_for_echo "$SRV_PORT" 20
  local served
  served=$(since "$t0")
  echo "# a restarted client served a new user $served s after the kill"
  assert_seconds_below "$served" "$IDLE" "time until a new user was served (before the idle timeout)"
  # The users of the dead client: their connections end (reset or EOF)
  # within the idle timeout, plus slack for a loaded machine.
  wait_for_log "$(log_of xfer)" '^failed ' $((IDLE + 30))
  local ended
  ended=$(since "$t0")
  echo "# the dead client's users were disconnected $ended s after the kill"
  run cat "$(log_of xfer)"
  assert "$output" =~ "(reset|EOF|Broken pipe)" "how the users' connections ended"
  assert_seconds_below "$ended" $((IDLE + 5)) "time until the users' connections ended"
  # The server saw the old connection go (idle timeout or probe).
  wait_for_log_of server 'disconnected|idle' $((IDLE + 10)) "$server_lines"
  is_running server || die "the server died"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "kill -9 of the server: the client notices within the idle timeout and reconnects with the same identity" {
  start_loadgen
  PRD_SERVER_EXTRA=(--idle-timeout "$IDLE" --keepalive 2)
  start_tunnel "$DEST_PORT" --idle-timeout "$IDLE" --keepalive 2
  echo_ok "$SRV_PORT"
  local fp1 client_lines t0
  fp1=$(grep -o 'fingerprint [0-9A-F:]*' "$(log_of server)" | head -n 1)
  cp "$(config_dir server)/cert.der" "$BATS_TEST_TMPDIR/cert1.der"
  # Destination connections in the middle of transfers.
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 4 -s $((1024 * 1024 * 1024)) --timeout 120
  wait_until 30 stat_cmp "$LOADGEN_STATS" open -ge 4 ||
    die "the transfers did not start: $(cat "$LOADGEN_STATS")"
  sleep 1
  client_lines=$(log_lines "$(log_of client)")
  t0=$EPOCHREALTIME
  kill -KILL "$(pid_of server)"
  wait_exit server 5
  assert "$EXIT_RC" == 137 "the server was killed"
  # Users of a dead server see their connections end at once (the kernel
  # resets them); the client must notice through the idle timeout.
  wait_for_log_of client 'tunnel to .* down' $((IDLE + 30)) "$client_lines"
  local noticed
  noticed=$(since "$t0")
  echo "# the client noticed the dead server after $noticed s"
  assert_seconds_below "$noticed" $((IDLE + 5)) "time until the client noticed"
  # Its destination connections were closed with the tunnel.
  wait_until 10 stat_cmp "$LOADGEN_STATS" open -eq 0 ||
    die "destination connections still open: $(cat "$LOADGEN_STATS")"
  # The server is back after a while: the client reconnects by itself.
  sleep 2
  client_lines=$(log_lines "$(log_of client)")
  restart server
  wait_tunnel_up client 60 "$client_lines"
  wait_for_echo "$SRV_PORT" 30
  # Same identity: the server reused its files, the client's pin still holds.
  local fp2
  fp2=$(grep -o 'fingerprint [0-9A-F:]*' "$(log_of server)" | head -n 1)
  assert "$fp2" == "$fp1" "server fingerprint after the restart"
  cmp "$BATS_TEST_TMPDIR/cert1.der" "$(config_dir server)/cert.der" ||
    die "cert.der changed"
  stop_all_checked
}
