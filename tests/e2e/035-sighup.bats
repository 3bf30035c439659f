#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# SIGHUP: no reload yet, but it must not end either binary (its default
# action would, with status 129 and no drain).

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

@test "SIGHUP: both binaries log it and carry on; the tunnel still works" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  echo_ok "$SRV_PORT"
  kill -HUP "$(pid_of server)"
  kill -HUP "$(pid_of client)"
  wait_for_log "$(log_of server)" ' INFO .*SIGHUP: reload is not supported yet' 5
  wait_for_log "$(log_of client)" ' INFO .*SIGHUP: reload is not supported yet' 5
  sleep 0.3
  is_running server || die "the server died of SIGHUP"
  is_running client || die "the client died of SIGHUP"
  echo_ok "$SRV_PORT"
  stop_all_checked
}
