#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Command line: help, version, usage errors (exit 2, naming the option or
# file), the missing-pin startup error, config file and config directory.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

# A complete set of client flags except the ones a test leaves out.
client_flags() {
  echo --destination-host 127.0.0.1 --destination-port 9 \
    --quic-remote-host 127.0.0.1 --quic-remote-port 9
}

@test "--help and --version exit 0 and describe both binaries" {
  run_helper "$PRD_SERVER" --help
  assert "$output" =~ "--local-port" "server --help names --local-port"
  assert "$output" =~ "--quic-psk-file" "server --help names --quic-psk-file"
  run_helper "$PRD_CLIENT" --help
  assert "$output" =~ "--destination-port" "client --help names --destination-port"
  assert "$output" =~ "--quic-remote-hostname-match" "client --help"
  run_helper "$PRD_SERVER" --version
  assert "$output" =~ [0-9]+\.[0-9]+\.[0-9]+ "server --version"
  run_helper "$PRD_CLIENT" --version
  assert "$output" =~ [0-9]+\.[0-9]+\.[0-9]+ "client --version"
}

@test "an unknown flag exits 2 and names the flag" {
  run_helper --rc 2 "$PRD_SERVER" --local-port 1 --no-such-flag
  assert "$output" =~ "--no-such-flag" "server names the bad flag"
  run_helper --rc 2 "$PRD_CLIENT" --bogus-option=3
  assert "$output" =~ "--bogus-option" "client names the bad flag"
}

@test "a missing required flag exits 2 and names it" {
  make_psk "$BATS_TEST_TMPDIR/psk"
  run_helper --rc 2 "$PRD_SERVER" --quic-psk-file "$BATS_TEST_TMPDIR/psk" \
    --config-dir "$BATS_TEST_TMPDIR/s"
  assert "$output" =~ "--local-port" "server without --local-port"
  run_helper --rc 2 "$PRD_CLIENT" --quic-psk-file "$BATS_TEST_TMPDIR/psk" \
    --quic-remote-host 127.0.0.1 --quic-remote-port 9 \
    --config-dir "$BATS_TEST_TMPDIR/c"
  assert "$output" =~ "--destination-port" "client without --destination-port"
}

@test "a bad value exits 2 and names the option" {
  run_helper --rc 2 "$PRD_SERVER" --local-port 70000 --quic-psk x1234567890123456
  assert "$output" =~ "--local-port" "port out of range"
  run_helper --rc 2 "$PRD_SERVER" --local-port 1 --log-level loud \
    --quic-psk x1234567890123456
  assert "$output" =~ "--log-level" "unknown log level"
}

@test "an empty PSK is refused with exit 2" {
  run_helper --rc 2 "$PRD_SERVER" --local-port 1 --quic-psk '' \
    --config-dir "$BATS_TEST_TMPDIR/s"
  assert "${output,,}" =~ "psk" "empty --quic-psk"
  : >"$BATS_TEST_TMPDIR/empty.psk"
  # shellcheck disable=SC2046
  run_helper --rc 2 "$PRD_CLIENT" $(client_flags) \
    --quic-psk-file "$BATS_TEST_TMPDIR/empty.psk" --config-dir "$BATS_TEST_TMPDIR/c"
  assert "$output" =~ "empty.psk" "empty PSK file is named"
  run_helper --rc 2 env PORTREDIRECT_PSK= "$PRD_SERVER" --local-port 1 \
    --config-dir "$BATS_TEST_TMPDIR/s"
  assert "${output,,}" =~ "psk" "empty PORTREDIRECT_PSK"
}

@test "no PSK at all is a usage error" {
  run_helper --rc 2 "$PRD_SERVER" --local-port 1 --config-dir "$BATS_TEST_TMPDIR/s"
  assert "${output,,}" =~ "psk" "server without a PSK"
}

@test "an unreadable PSK file is named" {
  run_helper --rc 2 "$PRD_SERVER" --local-port 1 \
    --quic-psk-file "$BATS_TEST_TMPDIR/does-not-exist" --config-dir "$BATS_TEST_TMPDIR/s"
  assert "$output" =~ "does-not-exist" "missing PSK file is named"
}

@test "a client without the server's certificate says where to copy it" {
  make_psk "$BATS_TEST_TMPDIR/psk"
  mkdir -p "$BATS_TEST_TMPDIR/c"
  # shellcheck disable=SC2046
  run_helper --rc 2 --timeout 20 "$PRD_CLIENT" $(client_flags) \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk" --config-dir "$BATS_TEST_TMPDIR/c"
  assert "$output" =~ "cert\.der" "the message names cert.der"
  assert "${output,,}" =~ "copy" "the message tells to copy it"
  assert "$output" =~ "$BATS_TEST_TMPDIR/c" "the message names the config dir"
}

@test "--server-cert names a pin file that must exist" {
  make_psk "$BATS_TEST_TMPDIR/psk"
  # shellcheck disable=SC2046
  run_helper --rc 2 --timeout 20 "$PRD_CLIENT" $(client_flags) \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk" --config-dir "$BATS_TEST_TMPDIR/c" \
    --server-cert "$BATS_TEST_TMPDIR/nope.der"
  assert "$output" =~ "nope\.der" "the message names the --server-cert file"
}

@test "--config reads key = value lines; the command line wins" {
  make_psk "$BATS_TEST_TMPDIR/psk"
  local p_cfg p_cli q
  p_cfg=$(free_port)
  p_cli=$(free_port)
  q=$(free_port)
  cat >"$BATS_TEST_TMPDIR/server.conf" <<EOF
# portredirect_server configuration
local-host = 127.0.0.1
local-port = $p_cfg
quic-server-port = $q
quic-psk-file = $BATS_TEST_TMPDIR/psk
log-level = debug
EOF
  start_server --config "$BATS_TEST_TMPDIR/server.conf" --local-port "$p_cli"
  wait_for_log_of server "TCP listening on 127\.0\.0\.1:$p_cli" 5
  wait_for_log_of server "QUIC listening on 127\.0\.0\.1:$q" 5
  run grep -c "TCP listening on 127.0.0.1:$p_cfg" "$(log_of server)"
  assert "$output" == 0 "the config file's local-port is overridden"
  stop_all_checked
}

@test "--config errors name the file" {
  run_helper --rc 2 "$PRD_SERVER" --config "$BATS_TEST_TMPDIR/missing.conf"
  assert "$output" =~ "missing\.conf" "a missing config file is named"
  printf 'local-port = 1\nno-such-key = 3\n' >"$BATS_TEST_TMPDIR/bad.conf"
  run_helper --rc 2 "$PRD_SERVER" --config "$BATS_TEST_TMPDIR/bad.conf" \
    --quic-psk x1234567890123456
  assert "$output" =~ "bad\.conf" "the config file is named"
  assert "$output" =~ "no-such-key" "the bad key is named"
}

@test "default config dir: an empty XDG_CONFIG_HOME counts as unset" {
  make_psk "$BATS_TEST_TMPDIR/psk"
  local home=$BATS_TEST_TMPDIR/shared-home
  mkdir -p "$home"
  PRD_ENV=(XDG_CONFIG_HOME=)
  PRD_SHARED_HOME=$home start_server --local-host 127.0.0.1 --local-port "$(free_port)" \
    --quic-server-port "$(free_port)" --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  [[ -s $home/.config/portredirect/cert.der ]] || die "no cert.der in \$HOME/.config/portredirect"
  [[ -s $home/.config/portredirect/key.der ]] || die "no key.der in \$HOME/.config/portredirect"
  stop_all_checked
}

@test "default config dir: XDG_CONFIG_HOME/portredirect when set" {
  make_psk "$BATS_TEST_TMPDIR/psk"
  local home=$BATS_TEST_TMPDIR/shared-home xdg=$BATS_TEST_TMPDIR/xdg
  mkdir -p "$home" "$xdg"
  PRD_ENV=(XDG_CONFIG_HOME="$xdg")
  PRD_SHARED_HOME=$home start_server --local-host 127.0.0.1 --local-port "$(free_port)" \
    --quic-server-port "$(free_port)" --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  [[ -s $xdg/portredirect/cert.der ]] || die "no cert.der in \$XDG_CONFIG_HOME/portredirect"
  [[ ! -e $home/.config/portredirect/cert.der ]] || die "cert.der also written under \$HOME"
  stop_all_checked
}
