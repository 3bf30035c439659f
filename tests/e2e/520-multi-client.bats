#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 6 item 2, several clients per server: any number of authenticated
# clients at once; new TCP connections go to the one with the fewest active
# streams (ties round-robin); when one disappears, new connections go to the
# others at once and only its own streams end; a reconnecting client does
# not evict the others; --max-clients bounds their number.
# Each client has its own destination (an echo server with a connection
# counter), so the counters show where each connection went.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

# two_clients [SERVER_ARGS...]: a server with metrics and the clients "a" and
# "b", each towards its own echo destination (counters in $BATS_TEST_TMPDIR/
# count-a and count-b). Sets MPORT (the server's metrics port).
two_clients() {
  MPORT=$(free_port)
  serve server --metrics-listen "127.0.0.1:$MPORT" "$@"
  local c
  for c in a b; do
    start_dest -n "dest-$c" echo --count-file "$BATS_TEST_TMPDIR/count-$c"
    copy_cert server "$c"
    start_client -n "$c" --destination-port "$DEST_PORT" --quic-remote-host 127.0.0.1 \
      --quic-remote-port "$QUIC_PORT" --quic-psk-file "$PSK_FILE"
  done
  wait_tunnel_up a
  wait_tunnel_up b
  wait_metric "127.0.0.1:$MPORT" portredirect_clients_connected -eq 2 10
}

# counts: prints "A B", the connections each destination accepted.
counts() {
  echo "$(count_of "$BATS_TEST_TMPDIR/count-a") $(count_of "$BATS_TEST_TMPDIR/count-b")"
}

@test "two clients at once: sequential connections alternate between them" {
  two_clients
  echo_count "$SRV_PORT" 10
  local a b
  read -r a b <<<"$(counts)"
  echo "# split over the two clients: $a / $b" >&3
  assert "$((a + b))" == 10 "every connection reached a destination"
  # All ties (no stream open when the next one arrives): round-robin.
  assert "$a" -ge 4 "client a got its share"
  assert "$b" -ge 4 "client b got its share"
  stop_all_checked
}

@test "the client with the fewest active streams gets the next connection" {
  two_clients
  # One long-lived connection lands on one of the two ...
  start_hold hold 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold "first"
  local a b busy idle
  read -r a b <<<"$(counts)"
  if [[ "$a $b" == "1 0" ]]; then
    busy=a idle=b
  elif [[ "$a $b" == "0 1" ]]; then
    busy=b idle=a
  else
    die "the held connection was counted as '$a $b'"
  fi
  # ... so the other one, with no active stream, gets every short one.
  echo_count "$SRV_PORT" 6
  assert "$(count_of "$BATS_TEST_TMPDIR/count-$idle")" == 6 "all six went to the idle client $idle"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-$busy")" == 1 "none went to the busy client $busy"
  # A second long-lived one goes to the idle client (0 active against 1) ...
  start_hold hold2 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold2 "second"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-$idle")" == 7 "the second held one went to $idle"
  # ... then 1 against 1: one more to each, whichever gets the tie.
  start_hold hold3 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold3 "third"
  start_hold hold4 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold4 "fourth"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-$busy")" == 2 "two active on $busy"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-$idle")" == 8 "two active on $idle"
  hold_roundtrip hold "still there"
  # The users leave first, so the server has nothing to drain at shutdown.
  local h
  for h in hold hold2 hold3 hold4; do stop "$h" any; done
  stop_all_checked
}

@test "one of two clients killed (-9): its streams end, the other's live on, new connections work at once" {
  two_clients --idle-timeout 6 --keepalive 2
  start_hold hold-1 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold-1 "one"
  local via_b=hold-1 via_a=hold-2
  [[ $(count_of "$BATS_TEST_TMPDIR/count-a") == 1 ]] && via_a=hold-1 via_b=hold-2
  start_hold hold-2 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold-2 "two"
  assert "$(counts)" == "1 1" "one held connection on each client"
  local t0
  t0=$EPOCHREALTIME
  kill -KILL "$(pid_of a)"
  wait_exit a 5
  # Ten new connections, one after the other, right after the kill: every
  # one is served (by b), none waits for a dead client.
  echo_count "$SRV_PORT" 10
  local took
  took=$(since "$t0")
  echo "# 10 connections served $took s after the kill" >&3
  assert_seconds_below "$took" 10 "ten echoes after the kill"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-b")" == 11 "all ten went to b"
  # b's own stream was never disturbed; a's ended (idle timeout at most).
  hold_roundtrip "$via_b" "b survives"
  wait_exit "$via_a" 30
  [[ $EXIT_RC != 137 ]] || die "the user connection through the dead client a was still open after 30 s"
  hold_roundtrip "$via_b" "b still there"
  stop b
  stop server
  assert_no_sanitizer_reports
}

@test "one of two clients stopped (SIGTERM): the other takes the new connections at once" {
  two_clients
  start_hold hold-1 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold-1 "one"
  local via_b=hold-1 via_a=hold-2
  [[ $(count_of "$BATS_TEST_TMPDIR/count-a") == 1 ]] && via_a=hold-1 via_b=hold-2
  start_hold hold-2 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold-2 "two"
  assert "$(counts)" == "1 1" "one held connection on each client"
  # a drains its stream (the user's connection ends) and leaves.
  stop "$via_a" any
  stop a 0 30
  wait_metric "127.0.0.1:$MPORT" portredirect_clients_connected -eq 1 10
  echo_count "$SRV_PORT" 5
  assert "$(count_of "$BATS_TEST_TMPDIR/count-b")" == 6 "all five new ones went to b"
  hold_roundtrip "$via_b" "b's stream lives on"
  stop_all_checked
}

@test "a reconnecting client does not evict the others" {
  # A short idle timeout (with keep-alives) ends the dead a's connection soon.
  two_clients --idle-timeout 6 --keepalive 2
  start_hold hold-1 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold-1 "one"
  local via_b=hold-1 via_a=hold-2
  [[ $(count_of "$BATS_TEST_TMPDIR/count-a") == 1 ]] && via_a=hold-1 via_b=hold-2
  start_hold hold-2 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold-2 "two"
  assert "$(counts)" == "1 1" "one held connection on each client"
  # a dies and comes back (as after a crash or a network change) ...
  kill -KILL "$(pid_of a)"
  wait_exit a 5
  local before
  before=$(log_lines "$(log_of server)")
  restart a
  wait_tunnel_up a
  wait_for_log_of server "client authenticated" 10 "$before"
  # ... and b is still connected, with its stream.
  is_running b || die "b exited"
  run grep -c 'tunnel to .* down' "$(log_of b)"
  assert "$output" == 0 "b's tunnel never went down"
  hold_roundtrip "$via_b" "b's stream lives on"
  wait_metric "127.0.0.1:$MPORT" portredirect_clients_connected -eq 2 40
  # The stream that went through the dead a has ended (within the idle
  # timeout at most).
  wait_exit "$via_a" 30
  [[ $EXIT_RC != 137 ]] || die "the user connection through the dead client a was still open after 30 s"
  # New connections go to the reconnected a (no active stream; b has one) ...
  echo_count "$SRV_PORT" 4
  assert "$(counts)" == "5 1" "the reconnected client a takes the new connections"
  # ... and once b's stream is done, to both in turn.
  stop "$via_b" any
  sleep 1
  echo_count "$SRV_PORT" 10
  local a b
  read -r a b <<<"$(counts)"
  echo "# after a's reconnect: $a / $b (including one held each)" >&3
  assert "$a" -ge 9 "the reconnected client a gets new connections"
  assert "$b" -ge 5 "client b keeps getting new connections"
  stop_all_checked
}

@test "--max-clients 1: a second client is refused, and gets in when the first leaves" {
  MPORT=$(free_port)
  serve server --max-clients 1 --metrics-listen "127.0.0.1:$MPORT"
  start_dest -n dest-a echo --count-file "$BATS_TEST_TMPDIR/count-a"
  local da=$DEST_PORT
  start_dest -n dest-b echo --count-file "$BATS_TEST_TMPDIR/count-b"
  local db=$DEST_PORT
  copy_cert server a
  copy_cert server b
  start_client -n a --destination-port "$da" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE"
  wait_tunnel_up a
  start_client -n b --destination-port "$db" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE"
  wait_for_log_of server 'client limit reached \(--max-clients 1\)' 20
  echo_count "$SRV_PORT" 6
  assert "$(counts)" == "6 0" "only the first client serves"
  metrics_of "127.0.0.1:$MPORT"
  assert "$(metric portredirect_clients_connected)" == 1 "one client connected"
  run grep -c 'tunnel up' "$(log_of b)"
  assert "$output" == 0 "b never had a tunnel"
  # The first one leaves: b, still retrying, takes over.
  stop a
  wait_tunnel_up b 60
  echo_count "$SRV_PORT" 3
  assert "$(counts)" == "6 3" "b serves now"
  stop b
  stop server
  assert_no_sanitizer_reports
}
