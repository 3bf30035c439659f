#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Faults: an unreachable destination, clients and servers that die or
# restart, users that arrive before any client, and SIGTERM.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

@test "destination down: the user's connection is closed within 2 s" {
  local dead
  dead=$(free_port)
  start_tunnel "$dead"
  probe 127.0.0.1 "$SRV_PORT" --send "anyone there?\n" --timeout 10
  assert "${lines[0]}" =~ "^recv=0 end=(eof|reset) " "closed without data"
  local t
  t=$(elapsed_of "${lines[0]}")
  assert_seconds_below "$t" 2 "time until the user's connection was closed"
  # A silent user is closed just as fast.
  probe 127.0.0.1 "$SRV_PORT" --timeout 10
  assert "${lines[0]}" =~ "^recv=0 end=(eof|reset) " "silent user closed"
  t=$(elapsed_of "${lines[0]}")
  assert_seconds_below "$t" 2 "time until the silent user's connection was closed"
  # The destination comes up on that port: it is simply used (dialled afresh
  # for each connection).
  start_dest echo --port "$dead"
  echo_ok "$SRV_PORT"
  is_running client || die "the client died"
  is_running server || die "the server died"
}

@test "kill -9 of the client and a restart: working again within seconds" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  echo_ok "$SRV_PORT"
  kill -KILL "$(pid_of client)"
  wait_exit client 5
  assert "$EXIT_RC" == 137 "the client was killed"
  restart client
  wait_for_echo "$SRV_PORT" 20
  echo "# working again $ECHO_SECONDS s after the restart" >&3
  assert_seconds_below "$ECHO_SECONDS" 5 "time until traffic flowed again"
  # No connection is handed to the dead client's leftover state.
  run_helper --timeout 120 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 30 -s 1000 --sequential --timeout 10
  assert_line "ok 30"
}

@test "server restart (SIGTERM): the client reconnects by itself" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  echo_ok "$SRV_PORT"
  local before
  before=$(log_lines "$(log_of client)")
  stop server
  restart server
  wait_tunnel_up client 60 "$before"
  wait_for_echo "$SRV_PORT" 30
  echo "# traffic again $ECHO_SECONDS s after tunnel up" >&3
  echo_ok "$SRV_PORT"
  # Reconnecting after a server restart is normal operation.
  stop_all_checked
}

@test "server kill -9 and restart: the client notices and reconnects" {
  start_dest echo
  start_tunnel "$DEST_PORT" --idle-timeout 3 --keepalive 1
  echo_ok "$SRV_PORT"
  local before
  before=$(log_lines "$(log_of client)")
  kill -KILL "$(pid_of server)"
  wait_exit server 5
  restart server
  wait_tunnel_up client 60 "$before"
  wait_for_echo "$SRV_PORT" 30
  echo_ok "$SRV_PORT"
}

@test "SIGTERM: the client exits 0" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  echo_ok "$SRV_PORT"
  stop client 0 15
  is_running server || die "the server went away with the client"
  stop server 0 15
}

@test "SIGTERM: with a client but no open stream the server exits at once" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  echo_ok "$SRV_PORT"
  # spec/04-quic-profile.md §6.2: streams drain "until they all end or" the
  # grace period (default 10 s) passes; with none open there is no wait.
  local t0=$EPOCHREALTIME
  stop server 0 15
  local took
  took=$(since "$t0")
  echo "# server exit $took s after SIGTERM" >&3
  assert_seconds_below "$took" 3 "server shutdown time with nothing to drain"
  stop client 0 15
  assert_no_error_lines
}

@test "SIGTERM: the server exits 0 within the grace period with a user connected" {
  start_dest echo
  PRD_SERVER_EXTRA=(--shutdown-grace 2)
  start_tunnel "$DEST_PORT"
  echo_ok "$SRV_PORT"
  # A user that stays connected and silent.
  start_tool user "$PRD_PYTHON" "$PRD_TOOLS/probe.py" 127.0.0.1 "$SRV_PORT" --timeout 60
  sleep 0.5
  local t0=$EPOCHREALTIME
  stop server 0 15
  assert_seconds_below "$(since "$t0")" 6 "server shutdown time"
  # The user's connection ended with the server.
  wait_for_log "$(log_of user)" '^recv=0 end=(eof|reset) ' 10
  stop client 0 15
  assert_no_error_lines
}

@test "a user who arrives before any client is served when one connects" {
  start_dest echo
  make_psk "$BATS_TEST_TMPDIR/psk"
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-port "$QUIC_PORT" --quic-psk-file "$BATS_TEST_TMPDIR/psk" \
    --pending-timeout 15
  start_tool early "$PRD_PYTHON" "$PRD_TOOLS/probe.py" 127.0.0.1 "$SRV_PORT" \
    --send "early bird\n" --shut-wr --timeout 30
  sleep 1
  copy_cert server client
  start_client --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  wait_tunnel_up
  wait_for_log "$(log_of early)" '^data=' 20
  run cat "$(log_of early)"
  assert "${lines[1]}" == "data=b'early bird\\n'" "the early user's echo"
  stop_all_checked
}

@test "without a client, a user is closed after --pending-timeout" {
  make_psk "$BATS_TEST_TMPDIR/psk"
  SRV_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-port "$(free_port)" --quic-psk-file "$BATS_TEST_TMPDIR/psk" \
    --pending-timeout 1
  probe 127.0.0.1 "$SRV_PORT" --send "hello?\n" --timeout 10
  assert "${lines[0]}" =~ "^recv=0 end=(eof|reset) " "closed without data"
  local t
  t=$(elapsed_of "${lines[0]}")
  assert_seconds_below "$t" 3.5 "closed about --pending-timeout after connecting"
  assert_seconds_below 0.8 "$t" "not closed before --pending-timeout"
  stop_all_checked
}

@test "a user reset reaches the destination; the tunnel stays up" {
  start_dest echo --record "$BATS_TEST_TMPDIR/record"
  start_tunnel "$DEST_PORT"
  # Connect, send, and close with RST (SO_LINGER 0) at once.
  run_helper "$PRD_PYTHON" -c '
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x" * 100000)
time.sleep(0.3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
' "$SRV_PORT"
  # The abort reaches the destination as an abort (TCP RST), not a FIN.
  wait_for_log "$BATS_TEST_TMPDIR/record" ' (reset|epipe)$' 10
  echo_ok "$SRV_PORT"
  stop_all_checked
}
