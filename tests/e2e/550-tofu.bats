#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 6 item 4, trust on first use and fingerprints: --trust-on-first-use
# stores the first certificate seen in the client's config dir
# (client-tofu-cert.der) and pins it; a later different certificate is
# refused with a loud message showing both SHA-256 fingerprints and how to
# accept the change. The server prints its fingerprint
# (--print-fingerprint), the client logs the one it pins; --server-cert pins
# a certificate from any path. Fingerprints are checked against openssl's.

# shellcheck disable=SC2030,SC2031,SC2034,SC2119,SC2120
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

FP_RE='([0-9A-F]{2}:){31}[0-9A-F]{2}'

# tofu_client [ARGS...]: a client with --trust-on-first-use towards the
# server "server" (no cert.der copied).
tofu_client() {
  mkdir -p "$(config_dir client)"
  start_client --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --trust-on-first-use "$@"
}

@test "--print-fingerprint prints the SHA-256 of cert.der (as openssl computes it) and exits 0" {
  local dir=$BATS_TEST_TMPDIR/srv
  make_psk "$BATS_TEST_TMPDIR/psk"
  # Neither --local-port nor a PSK is needed for it.
  run_helper "$PRD_SERVER" --print-fingerprint --config-dir "$dir"
  [[ -s $dir/cert.der ]] || die "no cert.der made"
  local want
  want=$(sha256_fp "$dir/cert.der")
  assert "${#want}" == 95 "openssl's fingerprint has 32 pairs"
  assert "${lines[0]}" == "SHA256:$want" "the printed fingerprint"
  # Then the names the certificate carries (on stderr: stdout is the one
  # line --server-fingerprint takes).
  assert "${lines[1]}" == "certificate names: 127.0.0.1, localhost, ::1" "the certificate's names"
  assert "$("$PRD_SERVER" --print-fingerprint --config-dir "$dir" 2>/dev/null)" == "SHA256:$want" "stdout"
  # The same again: the identity is reused, not made anew.
  run_helper "$PRD_SERVER" --print-fingerprint --config-dir "$dir" --local-port 1 \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  assert "${lines[0]}" == "SHA256:$want" "the same fingerprint the second time"
  # And the running server logs it too.
  start_server --config-dir "$dir" --local-host 127.0.0.1 --local-port "$(free_port)" \
    --quic-server-port "$(free_port)" --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  wait_for_log_of server "SHA-256 fingerprint $want" 5
  stop_all_checked
}

@test "the client logs the fingerprint of the certificate it pins" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  local want
  want=$(sha256_fp "$(config_dir server)/cert.der")
  wait_for_log_of client "pinned server certificate .*cert\.der, SHA-256 fingerprint $want\$" 5
  stop_all_checked
}

@test "portredirect_client --print-fingerprint prints the pinned certificate's fingerprint" {
  serve server
  local want
  want=$(sha256_fp "$(config_dir server)/cert.der")
  # --server-cert: neither a destination nor a PSK is needed.
  run_helper "$PRD_CLIENT" --print-fingerprint --server-cert "$(config_dir server)/cert.der" \
    --config-dir "$BATS_TEST_TMPDIR/nowhere"
  assert "${lines[0]}" == "SHA256:$want" "the pinned certificate's fingerprint"
  # The server prints the same.
  run_helper "$PRD_SERVER" --print-fingerprint --config-dir "$(config_dir server)"
  assert "${lines[0]}" == "SHA256:$want" "the server agrees"
  # cert.der in the config dir.
  copy_cert server client
  run_helper "$PRD_CLIENT" --print-fingerprint --config-dir "$(config_dir client)"
  assert "${lines[0]}" == "SHA256:$want" "cert.der in the config dir"
  # Nothing pinned yet (trust on first use, no file): an error, not a
  # fingerprint.
  run_helper --rc '!0' "$PRD_CLIENT" --print-fingerprint --trust-on-first-use \
    --config-dir "$BATS_TEST_TMPDIR/empty"
  assert "$output" =~ "no certificate pinned" "the message"
  assert "$output" !~ "SHA256:" "no fingerprint"
}

@test "trust on first use: the first certificate is stored (the server's bytes, 0600) and its fingerprint logged" {
  start_dest echo
  serve server
  tofu_client
  wait_tunnel_up
  local tofu want
  tofu=$(config_dir client)/client-tofu-cert.der
  want=$(sha256_fp "$(config_dir server)/cert.der")
  wait_for_log_of client "trust on first use: pinned the certificate of 127\.0\.0\.1:$QUIC_PORT \(SHA-256 $want\) in $tofu" 5
  run_helper cmp "$(config_dir server)/cert.der" "$tofu"
  assert "$(stat -c %a "$tofu")" == 600 "the mode the README gives"
  [[ ! -e $(config_dir client)/cert.der ]] || die "the client wrote a cert.der (the server's name)"
  echo_ok "$SRV_PORT"
  # A WARN, not an ERROR: first use is what the operator asked for.
  run grep -cE '^[^ ]+ WARN .*--trust-on-first-use' "$(log_of client)"
  assert "$output" == 1 "one WARN that nothing is pinned yet"
  stop_all_checked
}

@test "trust on first use: a restarted client reuses the stored pin without re-pinning" {
  start_dest echo
  serve server
  tofu_client
  wait_tunnel_up
  local tofu sum
  tofu=$(config_dir client)/client-tofu-cert.der
  wait_for_log_of client 'trust on first use: pinned' 5
  sum=$(sha256sum <"$tofu")
  stop client
  # --print-fingerprint shows the stored pin.
  run_helper "$PRD_CLIENT" --print-fingerprint --trust-on-first-use --config-dir "$(config_dir client)"
  assert "${lines[0]}" == "SHA256:$(sha256_fp "$(config_dir server)/cert.der")" "the stored pin's fingerprint"
  restart client
  wait_tunnel_up
  wait_for_log_of client "pinned server certificate $tofu, SHA-256 fingerprint $(sha256_fp "$tofu")" 5
  run grep -c 'trust on first use: pinned' "$(log_of client)"
  assert "$output" == 0 "no new first use"
  run grep -c 'no pinned certificate' "$(log_of client)"
  assert "$output" == 0 "no first-use warning the second time"
  assert "$(sha256sum <"$tofu")" == "$sum" "the stored pin is unchanged"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "trust on first use: a changed certificate is refused loudly, with both fingerprints; accepting it works" {
  start_dest echo --count-file "$BATS_TEST_TMPDIR/count"
  serve server --pending-timeout 1
  tofu_client
  wait_tunnel_up
  echo_ok "$SRV_PORT"
  local tofu old new
  tofu=$(config_dir client)/client-tofu-cert.der
  old=$(sha256_fp "$tofu")
  # The server's identity changes (a new config dir), same addresses.
  stop server
  start_server -n server2 --config-dir "$BATS_TEST_TMPDIR/newid" --local-host 127.0.0.1 \
    --local-port "$SRV_PORT" --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --pending-timeout 1
  new=$(sha256_fp "$BATS_TEST_TMPDIR/newid/cert.der")
  [[ $new != "$old" ]] || die "the new identity has the old certificate"
  wait_for_log_of client "^[^ ]+ ERROR .*$old" 40
  local line
  line=$(grep -E "^[^ ]+ ERROR .*$old" "$(log_of client)" | head -n 1)
  echo "# $line" >&3
  assert "$line" =~ "$old" "the message shows the pinned fingerprint"
  assert "$line" =~ "$new" "the message shows the presented fingerprint"
  assert "$line" =~ "SHA-256" "the message names the hash"
  assert "${line,,}" =~ "replace|delete|remove" "the message says how to accept the change"
  # Nothing reaches the destination through the changed server.
  local n
  n=$(count_of "$BATS_TEST_TMPDIR/count")
  probe 127.0.0.1 "$SRV_PORT" --send "secret\n" --timeout 10
  assert "${lines[0]}" =~ "^recv=0 end=(eof|reset) " "the user got nothing"
  assert "$(count_of "$BATS_TEST_TMPDIR/count")" == "$n" "nothing forwarded"
  assert "$(sha256_fp "$tofu")" == "$old" "the stored pin was not replaced"
  # The operator accepts the change as the message says: the stored pin
  # goes, the client (restarted) trusts the new certificate.
  stop client any
  rm "$tofu"
  restart client
  wait_tunnel_up
  assert "$(sha256_fp "$tofu")" == "$new" "the new certificate is pinned"
  echo_ok "$SRV_PORT"
}

@test "trust on first use: the refusal names the stored pin file" {
  start_dest echo
  serve server
  tofu_client
  wait_tunnel_up
  local tofu
  tofu=$(config_dir client)/client-tofu-cert.der
  stop server
  start_server -n server2 --config-dir "$BATS_TEST_TMPDIR/newid" --local-host 127.0.0.1 \
    --local-port "$SRV_PORT" --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE"
  wait_for_log_of client '^[^ ]+ ERROR .*does not match the pinned certificate' 40
  grep -E '^[^ ]+ ERROR .*does not match' "$(log_of client)" | grep -F "$tofu" |
    grep -q 'delete that file and restart the client to trust on first use again'
}

@test "a stale pin without --trust-on-first-use: the advice is to copy cert.der or give --server-fingerprint, not to delete it" {
  start_dest echo
  serve other
  serve server
  copy_cert other client
  mkdir -p "$(config_dir client)"
  start_client --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE"
  wait_for_log_of client '^[^ ]+ ERROR .*does not match the pinned certificate' 30
  local line
  line=$(grep -E '^[^ ]+ ERROR .*does not match' "$(log_of client)" | head -n 1)
  echo "# $line" >&3
  assert "$line" =~ "portredirect_server --print-fingerprint" "what to run on the server"
  assert "$line" =~ "copy the server's new cert.der over $(config_dir client)/cert.der" "what to copy where"
  assert "$line" =~ "--server-fingerprint" "the alternative"
  assert "$line" !~ "delete" "deleting the pin would only give exit 2 without TOFU"
}

@test "--trust-on-first-use does not apply when a pin exists: cert.der wins" {
  start_dest echo
  serve other
  serve server
  copy_cert other client
  # The client pins "other"'s certificate but talks to "server".
  tofu_client
  wait_for_log_of client 'does not match the pinned certificate' 30
  [[ ! -e $(config_dir client)/client-tofu-cert.der ]] || die "a TOFU pin was stored despite cert.der"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 0 "no tunnel to an unpinned certificate"
}

@test "--server-cert pins a certificate from any path (spaces, outside any config dir)" {
  start_dest echo
  serve server
  local pin="$BATS_TEST_TMPDIR/some where/else/server cert.der"
  mkdir -p "${pin%/*}"
  cp "$(config_dir server)/cert.der" "$pin"
  mkdir -p "$(config_dir client)"
  start_client --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --server-cert "$pin"
  wait_tunnel_up
  wait_for_log_of client "pinned server certificate $pin, SHA-256 fingerprint $(sha256_fp "$pin")" 5
  echo_ok "$SRV_PORT"
  # A PEM file is not a DER certificate: refused at start, naming the file.
  openssl x509 -inform DER -in "$pin" -out "$BATS_TEST_TMPDIR/cert.pem"
  run_helper --rc 2 "$PRD_CLIENT" --destination-port 9 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --server-cert "$BATS_TEST_TMPDIR/cert.pem" \
    --config-dir "$(config_dir client)"
  assert "$output" =~ "cert\.pem" "the message names the file"
  stop_all_checked
}

@test "--server-fingerprint pins the server without any file; repeatable for a rotation; a config key" {
  start_dest echo
  serve server
  local fp other
  run_helper "$PRD_SERVER" --print-fingerprint --config-dir "$(config_dir server)"
  fp=${lines[0]}
  assert "$fp" =~ "^SHA256:$FP_RE\$" "what the server prints"
  # Another identity's fingerprint: the old one of a rotation.
  run_helper "$PRD_SERVER" --print-fingerprint --config-dir "$BATS_TEST_TMPDIR/oldid"
  other=${lines[0]}
  mkdir -p "$(config_dir client)"
  [[ ! -e $(config_dir client)/cert.der ]] || die "cert.der present"
  start_client --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --server-fingerprint "$other" --server-fingerprint "$fp"
  wait_tunnel_up
  wait_for_log_of client "pinned server certificate by fingerprint \(--server-fingerprint, 2 values\)" 5
  echo_ok "$SRV_PORT"
  [[ ! -e $(config_dir client)/client-tofu-cert.der ]] || die "a TOFU pin was stored"
  # The client prints the fingerprints it pins.
  run_helper "$PRD_CLIENT" --print-fingerprint --server-fingerprint "$fp"
  assert "$output" == "$fp" "the client's --print-fingerprint"
  stop client
  # As a config key, lower case and without colons is the same pin.
  local lower=${fp#SHA256:}
  lower=${lower//:/}
  printf 'server-fingerprint = sha256:%s\n' "${lower,,}" >"$BATS_TEST_TMPDIR/c.conf"
  start_client -n client2 --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --config "$BATS_TEST_TMPDIR/c.conf"
  wait_tunnel_up client2
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "--server-fingerprint: a certificate matching none of them is refused, saying what to run" {
  start_dest echo
  serve other
  serve server
  local other
  run_helper "$PRD_SERVER" --print-fingerprint --config-dir "$(config_dir other)"
  other=${lines[0]}
  mkdir -p "$(config_dir client)"
  start_client --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --server-fingerprint "$other"
  wait_for_log_of client '^[^ ]+ ERROR .*matches none of the 1 --server-fingerprint value' 30
  local line
  line=$(grep -E '^[^ ]+ ERROR .*matches none' "$(log_of client)" | head -n 1)
  assert "$line" =~ "SHA256:$(sha256_fp "$(config_dir server)/cert.der")" "the presented fingerprint"
  assert "$line" =~ "portredirect_server --print-fingerprint" "what to run"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 0 "no tunnel to an unpinned certificate"
  # Not with --server-cert: a usage error.
  run_helper --rc 2 "$PRD_CLIENT" --destination-port 9 --quic-psk-file "$PSK_FILE" \
    --server-fingerprint "$other" --server-cert /nonexistent
  assert "$output" =~ "cannot be combined with --server-cert" "the message"
}
