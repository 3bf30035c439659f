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
