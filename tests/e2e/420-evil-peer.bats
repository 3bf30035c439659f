#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Peers that complete the QUIC handshake and then misbehave
# (tests/tools/evilpeer.c): a client that never answers the challenge, an
# authenticated client that sends malformed or oversized control frames, and
# an authenticated server that sends malformed stream headers. Each is closed
# (or its stream aborted) with the error the spec names; the other peers and
# streams are unaffected.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_rel

@test "a client that completes the handshake and never answers the challenge is closed at the deadline" {
  evilpeer_build
  start_loadgen
  PRD_SERVER_EXTRA=(--auth-timeout 2)
  start_tunnel "$DEST_PORT"
  local mode
  for mode in noanswer silent; do
    evil "$mode" --port "$QUIC_PORT" --local-host 127.0.0.60 --timeout 20
    echo "# $output"
    # spec/03-auth.md §5: CONNECTION_CLOSE with AUTH_TIMEOUT (0x05).
    assert "$output" =~ "close=peer-app code=0x5 " "$mode: closed with AUTH_TIMEOUT"
    local t
    t=$(field t_close_after_handshake "$output")
    assert_seconds_below "$t" 4 "$mode: time from handshake to close (deadline 2 s)"
    assert_seconds_below 1.8 "$t" "$mode: not closed before the deadline"
  done
  wait_for_log_of server 'authentication timed out for 127\.0\.0\.60' 5
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "an authenticated client sending malformed or oversized control frames is closed with PROTOCOL_ERROR; the good client is unaffected" {
  evilpeer_build
  start_loadgen
  start_tunnel "$DEST_PORT"
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 4 -s $((8 * 1024 * 1024)) -b 65536 --timeout 280
  local action n=0
  for action in oversized huge unknown ext hello response nonminimal trailing garbage fin reset; do
    evil auth --port "$QUIC_PORT" --psk-file "$PSK_FILE" --local-host 127.0.0.61 \
      --then "$action" --timeout 10
    echo "# $action: $output"
    assert "$output" =~ "auth=0 " "$action: authenticated first"
    # spec/02-framing.md §3, §1.1; spec/05-errors.md §2: PROTOCOL_ERROR (0x02).
    assert "$output" =~ "close=peer-app code=0x2 " "$action: closed with PROTOCOL_ERROR"
    assert_seconds_below "$(field t_close_after_action "$output")" 2 "$action: time until closed"
    n=$((n + 1))
  done
  # The same bytes right behind AUTH_RESPONSE (parsed in the same read).
  evil auth --port "$QUIC_PORT" --psk-file "$PSK_FILE" --local-host 127.0.0.61 \
    --then oversized --inline --timeout 10
  assert "$output" =~ "close=peer-app code=0x2 " "inline oversized frame: closed with PROTOCOL_ERROR"
  wait_for_log "$(log_of xfer)" '^(ok|failed) ' 300
  run cat "$(log_of xfer)"
  assert_line "ok 4"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "the good client's tunnel (re)established"
  # An authenticated peer's protocol errors are not authentication failures:
  # its address is not put in a cool-down.
  run grep -c 'refusing its new connections' "$(log_of server)"
  assert "$output" == 0 "cool-downs after protocol errors of an authenticated peer"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "malformed stream headers from an authenticated server: each stream is aborted with PROTOCOL_ERROR, the connection and the good streams go on" {
  evilpeer_build
  start_loadgen
  # The real server's identity, for the evil server to present (so that the
  # client's pin matches).
  make_psk "$BATS_TEST_TMPDIR/psk"
  start_server -n identity --local-host 127.0.0.1 --local-port "$(free_port)" \
    --quic-server-port "$(free_port)" --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  stop identity
  local port
  port=$(free_port)
  local script=good,badver,oversized,good,nonminimal,nosrc,dupsrc,badfamily,badlen,overrun,finearly,unknownfld,good
  start_tool evilsrv "$EVILPEER" server --port "$port" --psk-file "$BATS_TEST_TMPDIR/psk" \
    --cert "$(config_dir identity)/cert.der" --key "$(config_dir identity)/key.der" \
    --script "$script" --bytes 200000 --timeout 60
  wait_for_log "$(log_of evilsrv)" '^server listening' 10
  copy_cert identity client
  start_client --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$port" \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  wait_tunnel_up client
  wait_for_log "$(log_of evilsrv)" '^server summary' 60
  run cat "$(log_of evilsrv)"
  printf '%s\n' "$output" | sed -e 's/^/# /'
  # spec/02-framing.md §4: PROTOCOL_ERROR on the stream, the connection stays.
  assert "$output" =~ "server summary ok=13 bad=0 connection=up" "every stream ended as the spec says"
  # Only the valid headers reached the destination (good x3, unknownfld).
  wait_until 10 stat_cmp "$LOADGEN_STATS" accepted -ge 4 || true
  assert "$(stat_of "$LOADGEN_STATS" accepted)" == 4 "destination connections"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "the client's tunnel (re)established"
  is_running client || die "the client died"
}
