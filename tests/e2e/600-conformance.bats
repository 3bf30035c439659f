#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# prd-conformance (tools/conformance/, spec/conformance.md) against our own
# binaries: every server-role test passes against our server, the known
# deviations of tools/conformance/known/portredirect-server.txt being
# reported as TODO; every client-role test passes against our client; and
# the tool's own command line.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

PRD_CONFORMANCE=$PRD_BIN_DIR/prd-conformance
KNOWN=$PRD_ROOT/tools/conformance/known/portredirect-server.txt

# scripts/test's conformance stage (scripts/conformance) runs the same two
# runs against the same binaries just before the e2e stage and sets
# PRD_CONFORMANCE_DONE to their directory when it passed: not twice.
skip_if_conformance_stage_ran() {
  if [[ -n ${PRD_CONFORMANCE_DONE:-} && ${PRD_CONFORMANCE_DONE} == "$PRD_BIN_DIR" && ${LONG:-0} != 1 ]]; then
    skip "scripts/test's conformance stage passed with these binaries"
  fi
}

@test "prd-conformance server: our server passes every test, known deviations as TODO" {
  skip_if_conformance_stage_ran
  [[ -x $PRD_CONFORMANCE ]] || die "$PRD_CONFORMANCE is missing: build first"
  PSK_FILE=$(_prd_state_dir)/psk
  make_psk "$PSK_FILE"
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  WEB_PORT=$(free_port) # a second service, for the named services tests
  # A named client besides the PSK's "default", for the client name tests.
  make_psk "$BATS_TEST_TMPDIR/alice.psk"
  (umask 077 && printf 'prd-cf-alice psk-file=%s services=*\n' \
    "$BATS_TEST_TMPDIR/alice.psk" >"$BATS_TEST_TMPDIR/clients")
  # The tool fails authentication on purpose many times: exempt its address
  # from the per-address refusal; a 2 s deadline keeps the deadline tests
  # short.
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --service "web=127.0.0.1:$WEB_PORT" \
    --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --clients-file "$BATS_TEST_TMPDIR/clients" \
    --auth-timeout 2 --auth-fail-exempt 127.0.0.1
  local junit=$BATS_TEST_TMPDIR/conformance-server.xml
  run_helper --timeout 120 "$PRD_CONFORMANCE" server "127.0.0.1:$QUIC_PORT" \
    --psk-file "$PSK_FILE" --server-cert "$(config_dir server)/cert.der" \
    --tcp "127.0.0.1:$SRV_PORT" --service-tcp "web=127.0.0.1:$WEB_PORT" \
    --client "prd-cf-alice:$BATS_TEST_TMPDIR/alice.psk" \
    --tcp-path "127.0.0.1:$QUIC_PORT" \
    --auth-timeout 2 --tap --junit "$junit" \
    --known "$KNOWN"
  printf '%s\n' "$output" | grep -E '^(not ok|# spec|# prd)' | sed -e 's/^/# /' >&3
  # Every test line cites its spec section; nothing failed but the TODOs.
  local n
  n=$(grep -cE '^(not )?ok [0-9]+ - spec/[0-9][0-9]-[a-z-]+\.md §[0-9.]+: ' <<<"$output")
  assert "$n" -ge 70 "test lines citing spec/"
  assert "$(grep -cE '^(not )?ok ' <<<"$output")" == "$n" "every test line cites spec/"
  assert "$(grep -E '^not ok ' <<<"$output" | grep -vc ' # TODO ')" == 0 "failures other than known deviations"
  assert "$output" =~ "1\.\.$n" "TAP plan"
  # --client: the client name tests ran (not skipped) and passed.
  assert "$(grep -cE '^ok [0-9]+ - .* \[srv-name-[a-z0-9-]+\]$' <<<"$output")" == 6 "client name tests passed"
  assert "$output" =~ "# prd-conformance server: $n tests, 0 failed" "summary"
  # JUnit XML: one testsuite per spec file, no failure element.
  grep -q '<testsuite name="server spec/02-framing.md"' "$junit" || die "no JUnit suite for spec/02"
  ! grep -q '<failure' "$junit" || die "a JUnit failure"
  # Our server has no UDP service: the DATAGRAMS test for one skips.
  assert "$(grep -cE '^ok [0-9]+ - .* \[srv-dgram-no-udp-service\]$' <<<"$output")" == 1 "srv-dgram-no-udp-service passed"
  assert "$(grep -cF '[srv-dgram-echo] # SKIP needs --service-udp' <<<"$output")" == 1 "srv-dgram-echo skipped"
  # --tcp-path (our server's TCP path is on by default, on the QUIC port).
  assert "$(grep -cE '^ok [0-9]+ - spec/11-tcp-path\.md .* \[srv-tcp-[a-z0-9-]+\]$' <<<"$output")" == 5 "TCP path tests passed"
  stop_all_checked
}

@test "prd-conformance server: DATAGRAMS against our server with a UDP service" {
  skip_if_conformance_stage_ran
  [[ -x $PRD_CONFORMANCE ]] || die "$PRD_CONFORMANCE is missing: build first"
  PSK_FILE=$(_prd_state_dir)/psk
  make_psk "$PSK_FILE"
  QUIC_PORT=$(free_port)
  UDP_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$(free_port)" \
    --service "dns=udp:127.0.0.1:$UDP_PORT" \
    --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --auth-timeout 2 --auth-fail-exempt 127.0.0.1
  wait_for_log_of server 'UDP listening on ' 5
  run_helper --timeout 60 "$PRD_CONFORMANCE" server "127.0.0.1:$QUIC_PORT" \
    --psk-file "$PSK_FILE" --server-cert "$(config_dir server)/cert.der" \
    --service-udp "dns=127.0.0.1:$UDP_PORT" --auth-timeout 2 --tap \
    --test 'srv-dgram-*'
  printf '%s\n' "$output" | grep -E '^(not ok|# spec|# prd)' | sed -e 's/^/# /' >&3
  assert "$(grep -cE '^ok [0-9]+ - spec/10-udp\.md §[0-9.]+: .* \[srv-dgram-[a-z0-9-]+\]$' <<<"$output")" == 3 "DATAGRAMS tests passed"
  assert "$(grep -cF '[srv-dgram-no-udp-service] # SKIP ' <<<"$output")" == 1 "srv-dgram-no-udp-service skipped"
  assert "$output" =~ "# prd-conformance server: 4 tests, 0 failed" "summary"
  stop_all_checked
}

@test "prd-conformance client: our client passes every test" {
  skip_if_conformance_stage_ran
  [[ -x $PRD_CONFORMANCE ]] || die "$PRD_CONFORMANCE is missing: build first"
  PSK_FILE=$(_prd_state_dir)/psk
  make_psk "$PSK_FILE"
  QUIC_PORT=$(free_port)
  DEST_PORT=$(free_port) # nothing listens there: the tests look at QUIC only
  local tool=$BATS_TEST_TMPDIR/tool junit=$BATS_TEST_TMPDIR/conformance-client.xml
  start_tool conformance "$PRD_CONFORMANCE" client --listen "127.0.0.1:$QUIC_PORT" \
    --psk-file "$PSK_FILE" --config-dir "$tool" --tap --junit "$junit"
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s $tool/cert.der ]] && break
    sleep 0.1
  done
  [[ -s $tool/cert.der ]] || die "the tool made no cert.der"
  start_client --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --server-cert "$tool/cert.der"
  wait_exit conformance 120
  local out
  out=$(cat "$(log_of conformance)")
  grep -E '^(not ok|# spec|# prd)' <<<"$out" | sed -e 's/^/# /' >&3
  assert "$EXIT_RC" == 0 "prd-conformance client's exit status"
  local n
  n=$(grep -cE '^ok [0-9]+ - spec/[0-9][0-9]-[a-z-]+\.md §[0-9.]+: ' <<<"$out")
  assert "$n" -ge 15 "passed test lines citing spec/"
  assert "$out" =~ "# prd-conformance client: $n tests, 0 failed" "summary"
  ! grep -q '<failure' "$junit" || die "a JUnit failure"
  # The client logged each provoked failure and never crashed.
  assert_no_sanitizer_reports
  stop client 0 20
}

@test "prd-conformance: a wrong PSK fails the run with exit status 1 and a reason per test" {
  [[ -x $PRD_CONFORMANCE ]] || die "$PRD_CONFORMANCE is missing: build first"
  PSK_FILE=$(_prd_state_dir)/psk
  make_psk "$PSK_FILE"
  make_psk "$BATS_TEST_TMPDIR/wrong"
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --auth-fail-exempt 127.0.0.1
  run_helper --rc 1 --timeout 60 "$PRD_CONFORMANCE" server "127.0.0.1:$QUIC_PORT" \
    --psk-file "$BATS_TEST_TMPDIR/wrong" --server-cert "$(config_dir server)/cert.der" \
    --test 'srv-auth-ok'
  assert "$output" =~ "FAIL srv-auth-ok " "the failed test"
  assert "$output" =~ "AUTH_FAILED" "the reason names the close code"
  assert "$output" =~ "1 tests, 1 failed" "summary"
}

@test "prd-conformance: bad usage is a one-line error and exit status 2; --list cites spec/" {
  [[ -x $PRD_CONFORMANCE ]] || die "$PRD_CONFORMANCE is missing: build first"
  run_helper --rc 2 "$PRD_CONFORMANCE" server 127.0.0.1:1 --psk-file /nonexistent --server-cert /nonexistent
  assert "$output" =~ "cannot open '/nonexistent'" "missing file"
  run_helper --rc 2 "$PRD_CONFORMANCE" server nohostport --psk-file x --server-cert y
  assert "$output" =~ "'nohostport' is not HOST:PORT" "bad address"
  run_helper --rc 2 "$PRD_CONFORMANCE" server 127.0.0.1:1 --auth-timeout x --psk-file x --server-cert y
  assert "$output" =~ "--auth-timeout: 'x' is not a number of seconds" "bad number"
  run_helper --rc 2 "$PRD_CONFORMANCE" server 127.0.0.1:1 --service-udp x --psk-file x --server-cert y
  assert "$output" =~ "--service-udp: 'x' is not NAME=HOST:PORT" "bad --service-udp"
  run_helper --rc 2 "$PRD_CONFORMANCE" server 127.0.0.1:1 --tcp-path nohost --psk-file x --server-cert y
  assert "$output" =~ "--tcp-path: 'nohost' is not HOST:PORT" "bad --tcp-path"
  make_psk "$BATS_TEST_TMPDIR/psk"
  run_helper --rc 2 "$PRD_CONFORMANCE" server 127.0.0.1:1 --psk-file "$BATS_TEST_TMPDIR/psk" \
    --server-cert "$BATS_TEST_TMPDIR/psk" --client '.bad:x'
  assert "$output" =~ "--client: '.bad:x' is not NAME:FILE" "bad --client"
  run_helper "$PRD_CONFORMANCE" --list
  local n
  n=$(printf '%s\n' "$output" | grep -cE $'^(srv|cli)-[a-z0-9-]+\tspec/[0-9][0-9]-[a-z-]+\\.md §[0-9.]+\t(MUST|MUST NOT|SHOULD|SHOULD NOT)\t')
  assert "$n" == "${#lines[@]}" "every listed test cites a spec section and a level"
}
