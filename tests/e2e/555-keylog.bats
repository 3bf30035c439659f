#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 6 item 4b, --keylog-file FILE (or SSLKEYLOGFILE) writes the TLS
# secrets in the NSS key log format; off by default, with a warning when on.
# A short capture of the tunnel on lo is decrypted by tshark with that file:
# the ALPN and a stream's bytes are found in it. CI installs tshark; without
# it (or without the right to capture) the decryption test skips.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

# TLS 1.3 labels of the NSS key log format, one line per secret:
# LABEL <client random, 32 bytes hex> <secret hex>.
KEYLOG_LABELS=(CLIENT_HANDSHAKE_TRAFFIC_SECRET SERVER_HANDSHAKE_TRAFFIC_SECRET
  CLIENT_TRAFFIC_SECRET_0 SERVER_TRAFFIC_SECRET_0)

# check_keylog FILE: every line is in the NSS format, the four TLS 1.3
# secrets of one handshake are there, and the file is not world-readable.
check_keylog() {
  local f=$1
  [[ -s $f ]] || die "$f is empty or missing"
  local bad
  bad=$(grep -cvE '^[A-Z_0-9]+ [0-9a-f]{64} ([0-9a-f]{64}|[0-9a-f]{96})$' "$f" || true)
  assert "$bad" == 0 "lines of $f not in the NSS key log format"
  local l random
  random=$(awk '$1 == "CLIENT_HANDSHAKE_TRAFFIC_SECRET" {print $2; exit}' "$f")
  [[ -n $random ]] || die "no CLIENT_HANDSHAKE_TRAFFIC_SECRET in $f"
  for l in "${KEYLOG_LABELS[@]}"; do
    grep -qE "^$l $random " "$f" || die "no $l for client random $random in $f"
  done
  local mode
  mode=$(stat -c %a "$f")
  assert "$((8#$mode & 8#004))" == 0 "$f (mode $mode) is not world-readable"
}

@test "off by default: no key log and no warning" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  echo_ok "$SRV_PORT"
  run grep -ciE 'TLS secrets|keylog|key log' "$(log_of server)" "$(log_of client)"
  assert "$output" !~ ":[1-9]" "nothing about a key log in the logs"
  stop_all_checked
}

@test "--keylog-file on the client writes NSS key log lines and warns" {
  start_dest echo
  local kl=$BATS_TEST_TMPDIR/client.keys
  start_tunnel "$DEST_PORT" --keylog-file "$kl"
  echo_ok "$SRV_PORT"
  wait_for_log_of client "^[^ ]+ WARN .*TLS secrets .*$kl" 5
  check_keylog "$kl"
  stop_all_checked
}

@test "SSLKEYLOGFILE on the server writes the same secrets as the client's --keylog-file" {
  start_dest echo
  local kls=$BATS_TEST_TMPDIR/server.keys klc=$BATS_TEST_TMPDIR/client.keys
  PRD_ENV=(SSLKEYLOGFILE="$kls")
  PRD_SERVER_EXTRA=()
  new_psk
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE"
  PRD_ENV=()
  copy_cert server client
  start_client --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --keylog-file "$klc"
  wait_tunnel_up
  echo_ok "$SRV_PORT"
  wait_for_log_of server "^[^ ]+ WARN .*TLS secrets .*$kls" 5
  check_keylog "$kls"
  check_keylog "$klc"
  # Both ends saw the same handshake: the same four secrets.
  assert "$(grep -E '_SECRET' "$kls" | sort)" == "$(grep -E '_SECRET' "$klc" | sort)" \
    "server and client logged the same secrets"
  stop_all_checked
}

@test "tshark decrypts a capture with the key log: the ALPN and a stream's bytes" {
  skip_without tshark
  local cap=$BATS_TEST_TMPDIR/tunnel.pcapng kl=$BATS_TEST_TMPDIR/keys
  new_psk
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  # Capture the QUIC port on lo from before the handshake.
  start_tool tshark tshark -n -i lo -f "udp port $QUIC_PORT" -w "$cap"
  if ! wait_for_log "$(log_of tshark)" "Capturing on" 20 2>/dev/null ||
    grep -qiE "permission|don't have|not permitted" "$(log_of tshark)"; then
    skip "tshark cannot capture on lo here: $(head -n 3 "$(log_of tshark)")"
  fi
  sleep 1
  start_dest eofecho
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE"
  copy_cert server client
  start_client --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --keylog-file "$kl"
  wait_tunnel_up
  local secret="keylog-probe-$RANDOM$RANDOM"
  probe 127.0.0.1 "$SRV_PORT" --send "$secret" --shut-wr --timeout 10
  assert "${lines[1]}" == "data=b'$secret'" "the probe's bytes came back"
  stop client
  stop server
  sleep 1
  kill -INT "$(pid_of tshark)"
  wait_exit tshark 20
  check_keylog "$kl"
  local hex
  hex=$(printf '%s' "$secret" | od -An -tx1 | tr -d ' \n')
  # Without the keys: no stream data, no ALPN (QUIC encrypts the handshake).
  run_helper --timeout 120 tshark -n -r "$cap" -d "udp.port==$QUIC_PORT,quic" -Y quic \
    -T fields -e quic.stream_data
  assert "$(tr -d ':,\n' <<<"$output")" !~ "$hex" "the bytes are not readable without the keys"
  # With the keys.
  run_helper --timeout 120 tshark -n -r "$cap" -o "tls.keylog_file:$kl" \
    -d "udp.port==$QUIC_PORT,quic" -Y quic -T fields \
    -e tls.handshake.extensions_alpn_str -e quic.stream_data
  local fields=$output
  assert "$fields" =~ "portredirect/1" "the ALPN in the decrypted handshake"
  assert "$(tr -d ':,\t\n' <<<"$fields")" =~ "$hex" "the user's bytes in a decrypted stream"
}
