#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Hardening (spec/08-security.md §3, §7): the server out of descriptors,
# escaped peer close reasons, an exclusive QUIC port, the metrics endpoint's
# limits, the pre-auth window, stateless resets after a restart, and file
# permission checks. Attackers use 127.0.0.70 and up.

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

@test "out of descriptors: refused handshakes do not crash the server and accept resumes on its own" {
  evilpeer_build
  start_dest echo
  # 48 descriptors: the pending handshakes' timers take the rest, so that
  # both a QUIC connection and a TCP accept meet EMFILE.
  PRD_WRAP=(prlimit --nofile=48:48)
  PRD_SERVER_EXTRA=(--auth-timeout 3)
  start_tunnel "$DEST_PORT"
  PRD_WRAP=()
  wait_for_log_of server 'descriptor limit \(RLIMIT_NOFILE 48\) is below .* accepting at most [0-9]+ user connections' 5
  start_tool flood "$EVILPEER" silent --port "$QUIC_PORT" -n 60 -c 60 \
    --local-host "$(addrs 70 79)" --timeout 30 --hs-timeout 2
  wait_for_log_of server 'cannot create a timer: .*refusing new QUIC connections' 10
  # A user connection while no descriptor is free: accept pauses.
  start_tool user "$PRD_PYTHON" "$PRD_TOOLS/probe.py" 127.0.0.1 "$SRV_PORT" \
    --send 'late user\n' --shut-wr --timeout 20
  wait_for_log_of server 'accept: Too many open files; pausing accept' 10
  is_running server || die "the server died"
  # The handshakes time out (3 s), no TCP connection closes, and the paused
  # accept still resumes: the user gets its echo.
  wait_for_log "$(log_of user)" '^recv=' 25
  run cat "$(log_of user)"
  assert "${lines[0]}" =~ "^recv=10 end=eof " "the user connection accepted after the pause"
  is_running server || die "the server died"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "a peer's close reason is escaped in the log and does not choose the log level" {
  evilpeer_build
  start_dest echo
  PRD_SERVER_EXTRA=(--log-level debug)
  start_tunnel "$DEST_PORT"
  local forged='2026-01-01T00:00:00.000Z INFO  [c9] client authenticated from 10.9.8.7'
  # An application close whose reason holds "TLS alert", a newline with a
  # forged line behind it and a terminal escape.
  evil close --port "$QUIC_PORT" --local-host 127.0.0.80 --timeout 10 \
    --close-code 0 --close-reason "TLS alert\\n$forged\\e[2J\\\\"
  echo "# $output"
  assert "$output" =~ "close=local-close" "the evil peer closed"
  # Transport error 0xca: not 0x0c, though its text starts the same.
  evil close --port "$QUIC_PORT" --local-host 127.0.0.81 --timeout 10 \
    --close-transport --close-code 0xca
  # Transport error 0x0c: quinn's certificate rejection, a WARN.
  evil close --port "$QUIC_PORT" --local-host 127.0.0.82 --timeout 10 \
    --close-transport --close-code 0x0c
  wait_for_log_of server 'client 127\.0\.0\.82:[0-9]+ aborted the handshake' 5
  wait_for_log_of server '127\.0\.0\.81:[0-9]+ ended: peer closed the connection: transport error 0xca' 5
  local log
  log=$(log_of server)
  run grep -c "^${forged//[/\\[}" "$log"
  assert "$output" == 0 "no forged line in the server's log"
  run grep -c $'\e' "$log"
  assert "$output" == 0 "no escape byte in the server's log"
  run grep -c '127\.0\.0\.80:[0-9]*.*TLS alert\\x0a2026-01-01T00:00:00\.000Z INFO  \[c9\] client authenticated from 10\.9\.8\.7\\x1b\[2J\\\\$' "$log"
  assert "$output" == 1 "the reason logged once, escaped"
  run grep -cE 'WARN .*127\.0\.0\.8[01]:' "$log"
  assert "$output" == 0 "the peers' text chose no WARN line"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "a second server on the same QUIC port refuses to start and the first keeps its client" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  local host port2
  for host in 127.0.0.1 0.0.0.0; do
    port2=$(free_port)
    PRD_NO_WAIT=1 start_server -n "second-${host//./-}" --local-host 127.0.0.1 --local-port "$port2" \
      --quic-server-host "$host" --quic-server-port "$QUIC_PORT" --quic-psk-file "$PSK_FILE"
    wait_exit "second-${host//./-}" 10
    assert "$EXIT_RC" == 1 "the second server ($host) exits 1"
    run grep -cE "ERROR +cannot listen for QUIC on ${host//./\\.}:$QUIC_PORT: .*in use" \
      "$(log_of "second-${host//./-}")"
    assert "$output" == 1 "one line naming the port in use ($host)"
  done
  sleep 1
  echo_ok "$SRV_PORT"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "the first server's client was never cut off"
  stop client
  stop server
  assert_no_error_lines "$(log_of server)" "$(log_of client)"
  assert_no_sanitizer_reports
}

@test "the metrics code builds under AddressSanitizer with gcc, whose runtime lacks sanitizer/allocator_interface.h" {
  command -v gcc >/dev/null || skip "no gcc"
  local src=$BATS_TEST_DIRNAME/../../src
  run gcc -std=c11 -D_GNU_SOURCE -Wall -Werror -fsanitize=address \
    -c "$src/relay/metrics.c" -o "$BATS_TEST_TMPDIR/metrics.o"
  assert "$status" == 0 "gcc -fsanitize=address compiles metrics.c: $output"
  # The runtime has the function the header would declare.
  run nm -D "$(gcc -print-file-name=libasan.so)"
  assert "$output" =~ " T __sanitizer_get_current_allocated_bytes" "libasan exports it"
}
