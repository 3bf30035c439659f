#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Destinations that misbehave: refusing, accepting and then resetting,
# hanging on connect. Each user gets a prompt and correct close, the client
# holds no leftover state, and the tunnel keeps serving.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_rel

# client_fds: open fds of the client.
client_fds() {
  fd_count "$(pid_of client)"
}

@test "destination refusing: 10 users in a row are closed within 2 s each, nothing leaks" {
  local dead
  dead=$(free_port)
  start_tunnel "$dead"
  local fds0 i t worst=0
  fds0=$(client_fds)
  for ((i = 0; i < 10; i++)); do
    probe 127.0.0.1 "$SRV_PORT" --send "request $i\n" --timeout 10
    assert "${lines[0]}" =~ "^recv=0 end=(eof|reset) " "user $i closed without data"
    t=$(elapsed_of "${lines[0]}")
    assert_seconds_below "$t" 2 "time until user $i was closed"
  done
  wait_until 10 fds_le "$(pid_of client)" "$((fds0 + 2))" ||
    die "client fds: $fds0 before, $(client_fds) after"
  # The tunnel itself is fine: a destination that comes up is used at once.
  start_loadgen --port "$dead"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "destination resetting at once: the user sees a reset within 2 s" {
  start_loadgen
  start_tunnel "$DEST_PORT"
  probe 127.0.0.1 "$SRV_PORT" --send "RST 0\n" --timeout 10
  assert "${lines[0]}" =~ "^recv=0 end=reset " "the user's connection was reset"
  assert_seconds_below "$(elapsed_of "${lines[0]}")" 2 "time until the reset reached the user"
  # The client reports the abort (DESTINATION_RESET), not a normal end.
  wait_for_log_of client 'DESTINATION_RESET|reset' 5
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "destination sending 256 KiB then resetting: the user gets a reset, not a clean EOF" {
  start_loadgen
  start_tunnel "$DEST_PORT"
  local i
  for ((i = 0; i < 3; i++)); do
    probe 127.0.0.1 "$SRV_PORT" --send "RST 262144\n" --timeout 10
    assert "${lines[0]}" =~ " end=reset " "user $i: the destination's reset reached the user"
    [[ ${lines[0]} =~ ^recv=([0-9]+) ]]
    assert "${BASH_REMATCH[1]}" -le 262144 "bytes before the reset"
    assert_seconds_below "$(elapsed_of "${lines[0]}")" 2 "time until the reset reached user $i"
  done
  # The same amount with a clean close ends with EOF and every byte.
  probe 127.0.0.1 "$SRV_PORT" --send "CLS 262144\n" --timeout 10
  assert "${lines[0]}" =~ "^recv=262144 end=eof " "clean close"
  stop_all_checked
}

@test "destination hanging on connect: a user who gives up is cleaned up at once" {
  start_loadgen -n hang --mode hang
  local hang_port=$DEST_PORT
  # Self-check: a connect to it must hang (the kernel drops the SYNs).
  run timeout 5 "$PRD_PYTHON" -c "
import socket, sys
s = socket.socket(); s.settimeout(1.5)
try:
    s.connect(('127.0.0.1', int(sys.argv[1]))); print('connected')
except socket.timeout:
    print('hangs')
except OSError as e:
    print('error', e)
" "$hang_port"
  [[ $output == hangs ]] || skip "cannot make a hanging destination here ($output)"
  start_tunnel "$hang_port"
  local fds0
  fds0=$(client_fds)
  # Five users who wait 2 s for an answer, then give up with a reset.
  # (A user's FIN alone does not cancel the connect: spec/07-state-
  # machines.md §3.1 keeps it for when the destination answers.)
  local i
  for ((i = 0; i < 5; i++)); do
    start_tool "user$i" "$PRD_PYTHON" -c '
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"hello\n")
s.settimeout(2)
try:
    got = s.recv(100)
    print("got %r" % got)
except socket.timeout:
    print("timeout")
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("reset sent", flush=True)
' "$SRV_PORT"
  done
  for ((i = 0; i < 5; i++)); do
    wait_for_log "$(log_of "user$i")" '^reset sent' 15
    run cat "$(log_of "user$i")"
    assert "${lines[0]}" == timeout "user $i waited without an answer"
  done
  # The client abandons those connects: its fds return to the baseline.
  local t0=$EPOCHREALTIME
  wait_until 10 fds_le "$(pid_of client)" "$((fds0 + 2))" ||
    die "client fds: $fds0 before, $(client_fds) after the users left"
  assert_seconds_below "$(since "$t0")" 3 "time until the client dropped the connects"
  is_running client || die "the client died"
  stop_all_checked
}

@test "long: destination hanging on connect: a waiting user is closed when the connect times out" {
  skip_unless_long_rel
  start_loadgen -n hang --mode hang
  start_tunnel "$DEST_PORT"
  # The client has no connect timeout of its own (spec/07-state-machines.md
  # §3.1 "Connect fails or times out"): the kernel's SYN retries decide,
  # about 130 s with net.ipv4.tcp_syn_retries=6.
  local retries limit
  retries=$(cat /proc/sys/net/ipv4/tcp_syn_retries)
  limit=$(((1 << (retries + 1)) + 15))
  run_helper --timeout $((limit + 60)) "$PRD_PYTHON" "$PRD_TOOLS/probe.py" \
    127.0.0.1 "$SRV_PORT" --send "hello\n" --timeout $((limit + 30))
  assert "${lines[0]}" =~ "^recv=0 end=(eof|reset) " "the waiting user was closed"
  assert_seconds_below "$(elapsed_of "${lines[0]}")" "$limit" "time until the user was closed"
  stop_all_checked
}
