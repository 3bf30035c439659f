#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 6 item 2b, one backend behind several frontends: a client given
# several servers (--quic-remote repeated, or in the config file) holds one
# authenticated tunnel to each at once, reconnecting independently; losing
# one server leaves the others serving; each server may have its own pin
# and name (--quic-remote HOST:PORT,cert=FILE,name=NAME, spec/06 §3.4).

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

# two_servers: servers s1 and s2 with one identity (s2 gets s1's cert.der
# and key.der), an echo destination (counter in $BATS_TEST_TMPDIR/count) and
# the client's pin (s1's cert.der in the client's config dir).
two_servers() {
  start_dest echo --count-file "$BATS_TEST_TMPDIR/count"
  serve s1 "$@"
  same_identity s1 s2
  serve s2 "$@"
  copy_cert s1 client
  assert "$(sha256sum <"$(config_dir s2)/cert.der")" == \
    "$(sha256sum <"$(config_dir s1)/cert.der")" "s2 kept s1's identity"
}

@test "one client, two servers: a tunnel to each at once, both frontends serve" {
  two_servers
  local m
  m=$(free_port)
  start_client --destination-port "$DEST_PORT" --quic-remote "127.0.0.1:$QUIC_PORT_s1" \
    --quic-remote "127.0.0.1:$QUIC_PORT_s2" --quic-psk-file "$PSK_FILE" \
    --metrics-listen "127.0.0.1:$m"
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s1" 20
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" 20
  wait_for_log_of s1 'client authenticated' 5
  wait_for_log_of s2 'client authenticated' 5
  wait_metric "127.0.0.1:$m" portredirect_clients_connected -eq 2 10
  echo_count "$SRV_PORT_s1" 3
  echo_count "$SRV_PORT_s2" 3
  assert "$(count_of "$BATS_TEST_TMPDIR/count")" == 6 "both frontends reached the destination"
  stop_all_checked
}

@test "one of two servers killed (-9): the other keeps serving; the client reconnects to it alone" {
  two_servers --idle-timeout 6 --keepalive 2
  start_client --destination-port "$DEST_PORT" --quic-remote "127.0.0.1:$QUIC_PORT_s1" \
    --quic-remote "127.0.0.1:$QUIC_PORT_s2" --quic-psk-file "$PSK_FILE" \
    --idle-timeout 6 --keepalive 2
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s1" 20
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" 20
  start_hold hold 127.0.0.1 "$SRV_PORT_s2"
  hold_roundtrip hold "through s2"
  kill -KILL "$(pid_of s1)"
  wait_exit s1 5
  # s2 serves on, new connections and the open one, at once.
  echo_count "$SRV_PORT_s2" 5
  hold_roundtrip hold "s2 still"
  # The client notices s1 is gone (idle timeout) and retries it alone.
  wait_for_log_of client "tunnel to 127\.0\.0\.1:$QUIC_PORT_s1 down" 30
  hold_roundtrip hold "s2 after s1 went down"
  run grep -c "tunnel to 127\.0\.0\.1:$QUIC_PORT_s2 down" "$(log_of client)"
  assert "$output" == 0 "the tunnel to s2 never went down"
  # s1 comes back on the same ports: the client reconnects to it.
  local before
  before=$(log_lines "$(log_of client)")
  restart s1
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s1" 60 "$before"
  wait_for_echo "$SRV_PORT_s1" 20
  hold_roundtrip hold "s2 throughout"
  stop_all_checked
}

@test "the config file names several servers (quic-remote repeated)" {
  two_servers
  cat >"$BATS_TEST_TMPDIR/client.conf" <<EOF
# One backend behind two frontends.
destination-port = $DEST_PORT
quic-remote = 127.0.0.1:$QUIC_PORT_s1
quic-remote = 127.0.0.1:$QUIC_PORT_s2
quic-psk-file = $PSK_FILE
EOF
  start_client --config "$BATS_TEST_TMPDIR/client.conf"
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s1" 20
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" 20
  echo_ok "$SRV_PORT_s1"
  echo_ok "$SRV_PORT_s2"
  stop_all_checked
}

# Per-remote pins: --quic-remote HOST:PORT[,cert=FILE][,name=NAME] (the same
# value in the config file); cert= pins that server's own certificate, name=
# overrides --quic-remote-hostname-match for it.

@test "each server with its own pin (--quic-remote HOST:PORT,cert=FILE)" {
  start_dest echo --count-file "$BATS_TEST_TMPDIR/count"
  serve s1
  serve s2
  local c1=$BATS_TEST_TMPDIR/pins/s1.der c2=$BATS_TEST_TMPDIR/pins/s2.der
  mkdir -p "$BATS_TEST_TMPDIR/pins"
  cp "$(config_dir s1)/cert.der" "$c1"
  cp "$(config_dir s2)/cert.der" "$c2"
  [[ $(sha256_fp "$c1") != "$(sha256_fp "$c2")" ]] || die "the two servers share a certificate"
  mkdir -p "$(config_dir client)"
  start_client --destination-port "$DEST_PORT" \
    --quic-remote "127.0.0.1:$QUIC_PORT_s1,cert=$c1" \
    --quic-remote "127.0.0.1:$QUIC_PORT_s2,cert=$c2" --quic-psk-file "$PSK_FILE"
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s1" 20
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" 20
  echo_ok "$SRV_PORT_s1"
  echo_ok "$SRV_PORT_s2"
  stop_all_checked
}

@test "a wrong per-remote pin refuses that server only" {
  start_dest echo
  serve s1
  serve s2
  local c1=$BATS_TEST_TMPDIR/pins/s1.der
  mkdir -p "$BATS_TEST_TMPDIR/pins"
  cp "$(config_dir s1)/cert.der" "$c1"
  mkdir -p "$(config_dir client)"
  # s2 is given s1's certificate: it must be refused, s1 must serve.
  start_client --destination-port "$DEST_PORT" \
    --quic-remote "127.0.0.1:$QUIC_PORT_s1,cert=$c1" \
    --quic-remote "127.0.0.1:$QUIC_PORT_s2,cert=$c1" --quic-psk-file "$PSK_FILE"
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s1" 20
  wait_for_log_of client "127\.0\.0\.1:$QUIC_PORT_s2.*does not match the pinned certificate" 20
  echo_ok "$SRV_PORT_s1"
  run grep -c "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" "$(log_of client)"
  assert "$output" == 0 "no tunnel to the server with the wrong certificate"
}

@test "per-remote name= and cert= in the config file; bad attributes are refused" {
  start_dest echo
  serve s1 --quic-cert-hostname one.example
  serve s2 --quic-cert-hostname two.example
  mkdir -p "$(config_dir client)"
  cat >"$BATS_TEST_TMPDIR/client.conf" <<EOF
destination-port = $DEST_PORT
quic-remote = 127.0.0.1:$QUIC_PORT_s1,cert=$(config_dir s1)/cert.der,name=one.example
quic-remote = 127.0.0.1:$QUIC_PORT_s2,name=two.example,cert=$(config_dir s2)/cert.der
quic-psk-file = $PSK_FILE
EOF
  start_client --config "$BATS_TEST_TMPDIR/client.conf"
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s1" 20
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" 20
  echo_ok "$SRV_PORT_s1"
  echo_ok "$SRV_PORT_s2"
  # A name the certificate does not carry refuses that server (the name
  # check is per server too).
  start_client -n wrongname --destination-port "$DEST_PORT" --config-dir "$(config_dir client)" \
    --quic-remote "127.0.0.1:$QUIC_PORT_s1,cert=$(config_dir s1)/cert.der,name=two.example" \
    --quic-psk-file "$PSK_FILE"
  wait_for_log_of wrongname 'names do not match "two\.example"' 20
  stop wrongname any
  # Bad attributes: exit 2, naming the option.
  run_helper --rc 2 "$PRD_CLIENT" --destination-port 9 --quic-psk-file "$PSK_FILE" \
    --config-dir "$(config_dir client)" --quic-remote "127.0.0.1:$QUIC_PORT_s1,cert=$BATS_TEST_TMPDIR/nope.der"
  assert "$output" =~ "nope\.der" "a missing cert= file is named"
  run_helper --rc 2 "$PRD_CLIENT" --destination-port 9 --quic-psk-file "$PSK_FILE" \
    --config-dir "$(config_dir client)" --quic-remote "127.0.0.1:$QUIC_PORT_s1,colour=blue"
  assert "$output" =~ "--quic-remote" "an unknown attribute names the option"
  stop client
  stop s1
  stop s2
  assert_no_sanitizer_reports
}

@test "trust on first use with two servers: each server's first certificate is kept and enforced" {
  start_dest echo
  serve s1
  serve s2
  mkdir -p "$(config_dir client)"
  start_client --destination-port "$DEST_PORT" --quic-remote "127.0.0.1:$QUIC_PORT_s1" \
    --quic-remote "127.0.0.1:$QUIC_PORT_s2" --quic-psk-file "$PSK_FILE" --trust-on-first-use
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s1" 20
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" 20
  # spec/06 §3.4: one file per server, client-tofu-HOST-PORT.der.
  local f1 f2
  f1=$(config_dir client)/client-tofu-127.0.0.1-$QUIC_PORT_s1.der
  f2=$(config_dir client)/client-tofu-127.0.0.1-$QUIC_PORT_s2.der
  wait_for_log_of client "trust on first use: pinned .*$f2" 10
  wait_for_log_of client "trust on first use: pinned .*$f1" 10
  run_helper cmp "$(config_dir s1)/cert.der" "$f1"
  run_helper cmp "$(config_dir s2)/cert.der" "$f2"
  echo_ok "$SRV_PORT_s1"
  echo_ok "$SRV_PORT_s2"
  stop client
  # s2's identity changes; after a restart the client must still trust s1
  # and refuse the new s2 (not trust it anew).
  stop s2
  start_server -n s2new --config-dir "$BATS_TEST_TMPDIR/newid" --local-host 127.0.0.1 \
    --local-port "$SRV_PORT_s2" --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT_s2" \
    --quic-psk-file "$PSK_FILE"
  restart client
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s1" 20
  wait_for_log_of client "127\.0\.0\.1:$QUIC_PORT_s2.*does not match the pinned certificate" 30
  run grep -c 'trust on first use: pinned' "$(log_of client)"
  assert "$output" == 0 "nothing trusted anew after the restart"
  run grep -c "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" "$(log_of client)"
  assert "$output" == 0 "no tunnel to the changed s2"
  run_helper cmp "$(config_dir s2)/cert.der" "$f2"
  echo_ok "$SRV_PORT_s1"
}
