#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Authentication and identity: the PSK challenge, certificate pinning, the
# SAN check, trust on first use and the identity files on disk.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

count_of() {
  cat "$1" 2>/dev/null || echo missing
}

# start_plain_server [ARGS...]: a server on fresh ports with a fresh PSK.
start_plain_server() {
  PSK_FILE=$BATS_TEST_TMPDIR/psk
  [[ -f $PSK_FILE ]] || make_psk "$PSK_FILE"
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" "$@"
}

# client_to NAME DEST_PORT [ARGS...]: a client of the plain server.
client_to() {
  local name=$1 port=$2
  shift 2
  start_client -n "$name" --destination-host 127.0.0.1 --destination-port "$port" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" "$@"
}

# assert_user_gets_nothing: a user connection is closed with no data (no
# authenticated client; the server's --pending-timeout is 1 s).
assert_user_gets_nothing() {
  probe 127.0.0.1 "$SRV_PORT" --send "secret request\n" --timeout 10
  assert "${lines[0]}" =~ "^recv=0 end=(eof|reset) " "the user got nothing and was closed"
}

@test "wrong PSK forwards nothing while a good client keeps working" {
  start_dest -n dest_bad echo --count-file "$BATS_TEST_TMPDIR/bad.count"
  local bad_port=$DEST_PORT
  start_dest -n dest_good echo --count-file "$BATS_TEST_TMPDIR/good.count"
  local good_port=$DEST_PORT
  start_plain_server --pending-timeout 1
  make_psk "$BATS_TEST_TMPDIR/wrong.psk"
  copy_cert server bad
  client_to bad "$bad_port" --quic-psk-file "$BATS_TEST_TMPDIR/wrong.psk"
  wait_for_log_of bad 'authentication failed' 15
  # Only the impostor is there: the user's connection is closed unserved.
  assert_user_gets_nothing
  assert "$(count_of "$BATS_TEST_TMPDIR/bad.count")" == 0 "connections at the impostor's destination"
  # The server logs the failure with the peer's address.
  run grep -iE 'auth' "$(log_of server)"
  assert "$output" =~ "127\.0\.0\.1" "the server's auth failure line names the peer"
  # A good client next to the impostor carries traffic.
  copy_cert server client
  client_to client "$good_port" --quic-psk-file "$PSK_FILE"
  wait_tunnel_up client
  run_helper --timeout 120 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 10 -s 1000 --sequential --timeout 10
  assert_line "ok 10"
  assert "$(count_of "$BATS_TEST_TMPDIR/bad.count")" == 0 "connections at the impostor's destination"
  assert "$(count_of "$BATS_TEST_TMPDIR/good.count")" -ge 10 "connections at the good destination"
  run grep -c 'tunnel up' "$(log_of bad)"
  assert "$output" == 0 "the impostor never got a tunnel"
}

@test "a client pinned to another server's certificate refuses" {
  start_dest echo --count-file "$BATS_TEST_TMPDIR/count"
  # Another server, only to get a different cert.der.
  make_psk "$BATS_TEST_TMPDIR/psk"
  start_server -n other --local-host 127.0.0.1 --local-port "$(free_port)" \
    --quic-server-port "$(free_port)" --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  stop other
  start_plain_server --pending-timeout 1
  copy_cert other client
  if cmp -s "$(config_dir other)/cert.der" "$(config_dir server)/cert.der"; then
    die "two servers made the same certificate"
  fi
  client_to client "$DEST_PORT" --quic-psk-file "$PSK_FILE"
  wait_for_log_of client '([Cc]ertificate.*[Pp]in|[Pp]in.*[Cc]ertificate)' 15
  assert_user_gets_nothing
  assert "$(count_of "$BATS_TEST_TMPDIR/count")" == 0 "connections at the destination"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 0 "no tunnel with the wrong pin"
}

@test "--server-cert pins a certificate file outside the config dir" {
  start_dest echo
  start_plain_server
  cp "$(config_dir server)/cert.der" "$BATS_TEST_TMPDIR/frontend.der"
  mkdir -p "$(config_dir client)"
  client_to client "$DEST_PORT" --quic-psk-file "$PSK_FILE" \
    --server-cert "$BATS_TEST_TMPDIR/frontend.der"
  wait_tunnel_up client
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "a hostname that is not in the certificate (SAN mismatch) refuses" {
  start_dest echo --count-file "$BATS_TEST_TMPDIR/count"
  start_plain_server --pending-timeout 1
  copy_cert server client
  client_to client "$DEST_PORT" --quic-psk-file "$PSK_FILE" \
    --quic-remote-hostname-match wrong.example
  wait_for_log_of client '(not match.*wrong\.example|wrong\.example.*not match)' 15
  assert_user_gets_nothing
  assert "$(count_of "$BATS_TEST_TMPDIR/count")" == 0 "connections at the destination"
  # The message lists the names the certificate carries and the option of
  # each side that fixes it.
  local line
  line=$(grep -E '^[^ ]+ ERROR .*names do not match' "$(log_of client)" | head -n 1)
  echo "# $line" >&3
  assert "$line" =~ 'it names 127\.0\.0\.1, localhost, ::1\.' "the certificate's names"
  assert "$line" =~ "--quic-remote-hostname-match" "the client's option"
  assert "$line" =~ '--quic-cert-hostname "wrong\.example"' "the server's option"
}

@test "a server on a wildcard address without --quic-cert-hostname warns once with its certificate's names" {
  # In a network namespace of its own (only a down loopback), so that the
  # wildcard address reaches no real interface.
  unshare -n true 2>/dev/null || skip "unshare -n is not permitted here"
  make_psk "$BATS_TEST_TMPDIR/psk"
  run_helper --rc 124 --timeout 3 unshare -n "$PRD_SERVER" --config-dir "$BATS_TEST_TMPDIR/srv" \
    --local-host 0.0.0.0 --local-port 8080 --quic-server-host 0.0.0.0 \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  run grep -cE '^[^ ]+ WARN .*wildcard address 0\.0\.0\.0 without --quic-cert-hostname: the certificate names localhost, 127\.0\.0\.1, ::1' <<<"$output"
  assert "$output" == 1 "one warning with the names"
  # With --quic-cert-hostname (a new identity): no warning.
  run_helper --rc 124 --timeout 3 unshare -n "$PRD_SERVER" --config-dir "$BATS_TEST_TMPDIR/srv2" \
    --local-host 0.0.0.0 --local-port 8080 --quic-server-host :: \
    --quic-cert-hostname tunnel.example --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  assert "$output" !~ "wildcard" "no warning with --quic-cert-hostname"
  assert "$output" =~ "QUIC listening on \[::\]:4433" "the server started"
}

@test "--quic-cert-hostname sets the names the client can match" {
  start_dest echo
  start_plain_server --quic-cert-hostname tunnel.example
  copy_cert server client
  copy_cert server client2
  client_to client "$DEST_PORT" --quic-psk-file "$PSK_FILE" \
    --quic-remote-hostname-match tunnel.example
  wait_tunnel_up client
  echo_ok "$SRV_PORT"
  # Without the name (default: the remote host 127.0.0.1, not in the
  # certificate now) the check fails.
  client_to client2 "$DEST_PORT" --quic-psk-file "$PSK_FILE"
  wait_for_log_of client2 'not match' 15
  run grep -c 'tunnel up' "$(log_of client2)"
  assert "$output" == 0 "no tunnel for a name the certificate lacks"
}

@test "the default certificate names localhost, 127.0.0.1 and ::1" {
  start_plain_server
  local der
  der=$(config_dir server)/cert.der
  run_helper openssl x509 -inform DER -in "$der" -noout -ext subjectAltName
  assert "$output" =~ "DNS:localhost" "SAN localhost"
  assert "$output" =~ "IP Address:127\.0\.0\.1" "SAN 127.0.0.1"
  assert "$output" =~ "IP Address:0:0:0:0:0:0:0:1" "SAN ::1"
  stop_all_checked
}

@test "identity files: dir 0700, key.der 0600 PKCS#8, a key readable by others is refused" {
  start_plain_server
  local dir
  dir=$(config_dir server)
  assert "$(stat -c %a "$dir")" == 700 "config dir mode"
  assert "$(stat -c %a "$dir/key.der")" == 600 "key.der mode"
  [[ -s $dir/cert.der ]] || die "no cert.der"
  run_helper openssl pkey -inform DER -in "$dir/key.der" -noout
  run_helper openssl x509 -inform DER -in "$dir/cert.der" -noout
  # The private key never shows up in the log.
  local keyhex
  keyhex=$(od -An -tx1 -v "$dir/key.der" | tr -d ' \n' | tail -c 64)
  run grep -ci "$keyhex" "$(log_of server)"
  assert "$output" == 0 "key bytes in the log"
  stop server
  chmod 644 "$dir/key.der"
  PRD_NO_WAIT=1 restart server
  wait_exit server 15
  assert "$EXIT_RC" == 2 "exit code with a world-readable key"
  run grep -c 'key\.der' "$(log_of server)"
  assert "$output" -ge 1 "the error names key.der"
  run grep -c 'chmod 600' "$(log_of server)"
  assert "$output" -ge 1 "the error says how to fix it"
}

@test "a second server on the same config dir reuses cert.der and key.der" {
  start_dest echo
  start_plain_server
  local dir sum_cert sum_key
  dir=$(config_dir server)
  sum_cert=$(sha256sum <"$dir/cert.der")
  sum_key=$(sha256sum <"$dir/key.der")
  local p2 q2
  p2=$(free_port)
  q2=$(free_port)
  start_server -n server2 --config-dir "$dir" --local-host 127.0.0.1 --local-port "$p2" \
    --quic-server-port "$q2" --quic-psk-file "$PSK_FILE"
  assert "$(sha256sum <"$dir/cert.der")" == "$sum_cert" "cert.der unchanged"
  assert "$(sha256sum <"$dir/key.der")" == "$sum_key" "key.der unchanged"
  copy_cert server client
  start_client --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$q2" --quic-psk-file "$PSK_FILE"
  wait_tunnel_up client
  echo_ok "$p2"
  stop_all_checked
}

@test "the PSK can come from PORTREDIRECT_PSK" {
  start_dest echo
  start_plain_server
  copy_cert server client
  PRD_ENV=("PORTREDIRECT_PSK=$(cat "$PSK_FILE")")
  client_to client "$DEST_PORT"
  wait_tunnel_up client
  echo_ok "$SRV_PORT"
  run grep -F -c "$(cat "$PSK_FILE")" "$(log_of client)" "$(log_of server)"
  assert "$output" !~ ":[1-9]" "the PSK never appears in a log"
  stop_all_checked
}

@test "trust on first use: the first certificate is kept, a changed one refused" {
  start_dest echo --count-file "$BATS_TEST_TMPDIR/count"
  start_plain_server --pending-timeout 1
  mkdir -p "$(config_dir client)"
  client_to client "$DEST_PORT" --quic-psk-file "$PSK_FILE" --trust-on-first-use
  wait_tunnel_up client
  echo_ok "$SRV_PORT"
  local before
  before=$(log_lines "$(log_of client)")
  # The same addresses now answer with another identity.
  stop server
  start_server -n impostor --config-dir "$BATS_TEST_TMPDIR/impostor" \
    --local-host 127.0.0.1 --local-port "$SRV_PORT" --quic-server-host 127.0.0.1 \
    --quic-server-port "$QUIC_PORT" --quic-psk-file "$PSK_FILE" --pending-timeout 1
  wait_for_log_of client '[Cc]ertificate' 30 "$before"
  local n
  n=$(count_of "$BATS_TEST_TMPDIR/count")
  assert_user_gets_nothing
  assert "$(count_of "$BATS_TEST_TMPDIR/count")" == "$n" "nothing forwarded via the impostor"
  run bash -c "tail -n +$((before + 1)) '$(log_of client)' | grep -c 'tunnel up'"
  assert "$output" == 0 "no tunnel to a changed certificate"
}
