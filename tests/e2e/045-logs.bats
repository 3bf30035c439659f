#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Log wording an operator relies on: byte counts named from the user's side
# (server and client agree), one tag per TCP connection, the reason a
# destination is unreachable, a rejected PSK treated as a configuration
# error, and a handshake that times out because no UDP came back.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

@test "closed lines: both sides name the bytes from and to the user alike; one tag per connection" {
  # The destination sends 5000 bytes and reads what the user sends (6).
  start_dest source --bytes 5000
  PRD_SERVER_EXTRA=(--log-level debug)
  start_tunnel "$DEST_PORT" --log-level debug
  probe 127.0.0.1 "$SRV_PORT" --send "hello\n" --shut-wr --timeout 10
  assert "${lines[0]}" =~ "^recv=5000 " "the user got the destination's bytes"
  local side
  for side in server client; do
    wait_for_log_of "$side" '\] closed ' 10
    run grep -E '\] closed ' "$(log_of "$side")"
    echo "# $side: $output" >&3
    assert "$output" =~ ", 6 bytes from user, 5000 bytes to user, " "$side's byte counts"
    # Every line about the connection carries the same tag, [tN].
    run grep -cE '\[[a-z]+[0-9]+/t[0-9]+\]' "$(log_of "$side")"
    assert "$output" == 0 "$side: no combined [qN/tN] tags"
    run grep -E '\[t1\]' "$(log_of "$side")"
    assert "${#lines[@]}" -ge 2 "$side: several lines tagged [t1]"
  done
}

@test "destination unreachable: the WARN line gives the reason" {
  local dead
  dead=$(free_port)
  start_tunnel "$dead"
  probe 127.0.0.1 "$SRV_PORT" --send "x\n" --timeout 10
  wait_for_log_of client "WARN .*destination 127\.0\.0\.1:$dead unreachable: Connection refused" 10
}

@test "a PSK the server rejects: one ERROR, straight to the backoff cap" {
  make_psk "$BATS_TEST_TMPDIR/psk"
  make_psk "$BATS_TEST_TMPDIR/wrong"
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  copy_cert server client
  start_client --destination-port 9 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$BATS_TEST_TMPDIR/wrong"
  wait_for_log_of client 'ERROR .*rejected our PSK' 10
  # Before: an ERROR and a WARN per attempt, attempts 0.5, 1, 2, 4 s apart.
  sleep 5
  run grep -cE '^[^ ]+ (ERROR|WARN) ' "$(log_of client)"
  assert "$output" == 1 "one ERROR or WARN line in 5 s"
  run grep -E '^[^ ]+ ERROR ' "$(log_of client)"
  assert "$output" =~ "a configuration error; check --quic-psk/--quic-psk-file on both sides" "the advice"
  run grep -c 'authentication failed from' "$(log_of server)"
  assert "$output" == 1 "one attempt in 5 s: the backoff went to its cap"
  is_running client || die "the client gave up"
}

@test "UDP dropped: the handshake timeout says nothing answered over UDP and what to check" {
  # A UDP socket that reads nothing and answers nothing (no ICMP either).
  local port
  port=$(free_port)
  start_tool blackhole "$PRD_PYTHON" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("bound", flush=True)
time.sleep(120)
' "$port"
  wait_for_log "$(log_of blackhole)" '^bound' 10
  make_psk "$BATS_TEST_TMPDIR/psk"
  mkdir -p "$(config_dir client)"
  start_client --destination-port 9 --quic-remote-port "$port" \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk" --trust-on-first-use
  wait_for_log_of client "nothing answered over UDP; check that UDP reaches 127\.0\.0\.1:$port" 20
}
