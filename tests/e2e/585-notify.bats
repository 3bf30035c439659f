#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Type=notify: with $NOTIFY_SOCKET set (as systemd sets it), the server
# sends READY=1 once it listens, the client once its tunnel is up; both send
# STATUS=, STOPPING=1 on SIGTERM, and WATCHDOG=1 at half of $WATCHDOG_USEC.
# tests/tools/notify_sink.py stands in for systemd's socket.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

# sink NAME: a notification socket of its own; sets SOCK_<NAME>.
sink() {
  local path=$BATS_TEST_TMPDIR/$1.sock
  start_tool "$1" "$PRD_PYTHON" "$PRD_TOOLS/notify_sink.py" "$path"
  wait_for_log "$(log_of "$1")" '^bound' 10
  printf -v "SOCK_$1" '%s' "$path"
}

@test "sd_notify: server READY=1 once listening, client READY=1 once the tunnel is up, watchdog, STOPPING=1" {
  start_dest echo
  sink nserver
  sink nclient
  PRD_ENV=(NOTIFY_SOCKET="$SOCK_nserver" WATCHDOG_USEC=400000)
  make_psk "$BATS_TEST_TMPDIR/psk"
  PSK_FILE=$BATS_TEST_TMPDIR/psk
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" --quic-psk-file "$PSK_FILE"
  wait_for_log "$(log_of nserver)" "^READY=1\|STATUS=listening on TCP 127\.0\.0\.1:$SRV_PORT" 10
  # Half of 0.4 s: several pings within a second.
  sleep 1
  run grep -c '^WATCHDOG=1$' "$(log_of nserver)"
  assert "$output" -ge 3 "watchdog pings"
  # The client: not ready before its tunnel is up.
  copy_cert server client
  PRD_ENV=(NOTIFY_SOCKET="$SOCK_nclient")
  start_client --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE"
  wait_tunnel_up
  wait_for_log "$(log_of nclient)" "^READY=1\|STATUS=tunnel up to 127\.0\.0\.1:$QUIC_PORT" 10
  run grep -c 'WATCHDOG' "$(log_of nclient)"
  assert "$output" == 0 "no watchdog without WATCHDOG_USEC"
  echo_ok "$SRV_PORT"
  # STATUS= follows the number of clients.
  wait_for_log "$(log_of nserver)" '^STATUS=1 client up, 0 connections open' 5
  stop client
  wait_for_log "$(log_of nclient)" '^STOPPING=1' 5
  stop server
  wait_for_log "$(log_of nserver)" '^STOPPING=1' 5
}

@test "sd_notify: a client with no tunnel reports READY=1 only after 60 s, saying so" {
  skip_unless_long
  sink nclient
  make_psk "$BATS_TEST_TMPDIR/psk"
  mkdir -p "$(config_dir client)"
  PRD_ENV=(NOTIFY_SOCKET="$SOCK_nclient")
  start_client --destination-port 9 --quic-remote-port "$(free_port)" \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk" --trust-on-first-use
  sleep 30
  run grep -c READY "$(log_of nclient)"
  assert "$output" == 0 "not ready without a tunnel"
  wait_for_log "$(log_of nclient)" '^READY=1\|STATUS=no tunnel up yet after 60 s' 40
}
