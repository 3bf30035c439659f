#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 6 item 6, the config file: --config FILE reads "key = value" lines;
# unknown keys and bad values are errors naming FILE:LINE. The example files
# in examples/ run as they are, with only the site-specific values (ports,
# addresses, paths) replaced, and the PSK given as an environment file
# (packaging/psk.env.example, the alternative to the units' credential)
# gives it: PORTREDIRECT_PSK.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

# conf_set FILE KEY VALUE: the first "KEY = ..." line of FILE (commented
# out or not) becomes "KEY = VALUE"; fails when FILE has no such line.
conf_set() {
  local f=$1 key=$2 val=$3
  grep -qE "^#? ?$key = " "$f" || {
    die "$f has no '$key = ' line"
    return 1
  }
  awk -v k="$key" -v v="$val" '
    !done && $0 ~ "^#? ?" k " = " {print k " = " v; done = 1; next}
    {print}' "$f" >"$f.new" && mv "$f.new" "$f"
}

# conf_del FILE KEY: removes every "KEY = ..." line of FILE.
conf_del() {
  grep -vE "^$2 = " "$1" >"$1.new" || true
  mv "$1.new" "$1"
}

# psk_env FILE: an environment file like packaging/psk.env.example, with a
# real key; sets PRD_ENV to what systemd would pass from it. The file
# PSK_FILE (see new_psk) gets the same key.
psk_env() {
  local f=$1 key
  key=$(openssl rand -base64 32)
  PSK_FILE=$(_prd_state_dir)/psk
  (umask 077 && printf '%s\n' "$key" >"$PSK_FILE")
  sed -e "s|^PORTREDIRECT_PSK=.*|PORTREDIRECT_PSK=$key|" \
    "$PRD_ROOT/packaging/psk.env.example" >"$f"
  chmod 600 "$f"
  PRD_ENV=()
  local line
  while IFS= read -r line; do
    [[ $line =~ ^[A-Z_]+= ]] && PRD_ENV+=("$line")
  done <"$f"
  assert "${#PRD_ENV[@]}" == 1 "one variable in the environment file"
}

@test "examples/server.conf and examples/client.conf run a tunnel (PSK from the env file)" {
  start_dest eofecho
  psk_env "$BATS_TEST_TMPDIR/psk.env"
  local s=$BATS_TEST_TMPDIR/server.conf c=$BATS_TEST_TMPDIR/client.conf
  local srv q ms mc
  srv=$(free_port)
  q=$(free_port)
  ms=$(free_port)
  mc=$(free_port)
  cp "$PRD_ROOT/examples/server.conf" "$s"
  conf_set "$s" local-host 127.0.0.1
  conf_set "$s" local-port "$srv"
  conf_set "$s" quic-server-host 127.0.0.1
  conf_set "$s" quic-server-port "$q"
  conf_set "$s" metrics-listen "127.0.0.1:$ms"
  start_server --config "$s"
  # The certificate names what the example says.
  openssl x509 -inform DER -in "$(config_dir server)/cert.der" -noout -ext subjectAltName |
    grep -q 'DNS:frontend.example.org' || die "the example's quic-cert-hostname is not in the certificate"
  mkdir -p "$BATS_TEST_TMPDIR/etc"
  cp "$(config_dir server)/cert.der" "$BATS_TEST_TMPDIR/etc/frontend.der"
  cp "$PRD_ROOT/examples/client.conf" "$c"
  conf_set "$c" destination-port "$DEST_PORT"
  conf_set "$c" quic-remote-host 127.0.0.1
  conf_set "$c" quic-remote-port "$q"
  conf_set "$c" server-cert "$BATS_TEST_TMPDIR/etc/frontend.der"
  conf_set "$c" metrics-listen "127.0.0.1:$mc"
  mkdir -p "$(config_dir client)"
  # The certificate names frontend.example.org, not 127.0.0.1: the name to
  # match comes from the command line, on top of the file.
  start_client --config "$c" --quic-remote-hostname-match frontend.example.org
  wait_tunnel_up
  # proxy-protocol = v2 from the example: the destination reads the v2
  # signature first, then the user's bytes.
  probe 127.0.0.1 "$srv" --send "via config" --shut-wr --timeout 10 --out "$BATS_TEST_TMPDIR/got"
  run_helper "$PRD_PYTHON" -c '
import sys
b = open(sys.argv[1], "rb").read()
assert b.startswith(b"\r\n\r\n\x00\r\nQUIT\n"), b[:16]
assert b.endswith(b"via config"), b[-16:]
print("PROXY v2 header, then the bytes")' "$BATS_TEST_TMPDIR/got"
  metrics_of "127.0.0.1:$ms"
  assert "$(metric portredirect_connections_accepted_total)" == 1 "the server's metrics-listen"
  metrics_of "127.0.0.1:$mc"
  assert "$(metric portredirect_connections_accepted_total)" == 1 "the client's metrics-listen"
  stop_all_checked
}

@test "examples/client-frontends.conf: one backend behind two frontends, each with its own pin" {
  start_dest echo
  psk_env "$BATS_TEST_TMPDIR/psk.env"
  serve s1 --quic-cert-hostname frontend-a.example.org
  serve s2 --quic-cert-hostname frontend-b.example.org
  local c=$BATS_TEST_TMPDIR/client.conf
  cp "$PRD_ROOT/examples/client-frontends.conf" "$c"
  conf_set "$c" destination-port "$DEST_PORT"
  # The example's two servers, at the test's addresses; each keeps its own
  # cert= pin and gets the name its certificate carries.
  sed -i -e "s|^quic-remote = frontend-a.example.org:4433,cert=/etc/portredirect/frontend-a.der\$|quic-remote = 127.0.0.1:$QUIC_PORT_s1,cert=$(config_dir s1)/cert.der,name=frontend-a.example.org|" \
    -e "s|^quic-remote = frontend-b.example.org:4433,cert=/etc/portredirect/frontend-b.der\$|quic-remote = 127.0.0.1:$QUIC_PORT_s2,cert=$(config_dir s2)/cert.der,name=frontend-b.example.org|" \
    "$c"
  assert "$(grep -c "^quic-remote = 127.0.0.1:" "$c")" == 2 "both example servers were rewritten"
  mkdir -p "$(config_dir client)"
  start_client --config "$c"
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s1" 20
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" 20
  echo_ok "$SRV_PORT_s1"
  echo_ok "$SRV_PORT_s2"
  stop_all_checked
}

# config_error ROLE TEXT LINE WHAT: a config file with TEXT is refused with
# exit 2 and a message naming FILE:LINE.
config_error() {
  local role=$1 text=$2 line=$3 what=$4
  local f=$BATS_TEST_TMPDIR/bad-$role.conf bin=$PRD_SERVER
  [[ $role == client ]] && bin=$PRD_CLIENT
  printf '%b' "$text" >"$f"
  run_helper --rc 2 --timeout 20 "$bin" --config "$f" --config-dir "$BATS_TEST_TMPDIR/cd"
  assert "$output" =~ "bad-$role\.conf:$line([^0-9]|\$)" "$what: FILE:LINE in the message"
}

@test "config file errors name FILE:LINE: unknown key, bad value, bad line, other role" {
  local ok='# a comment\n\nlocal-port = 4000\n'
  config_error server "${ok}no-such-key = 1\n" 4 "an unknown key"
  assert "$output" =~ "no-such-key" "the unknown key is named"
  config_error server "${ok}quic-server-port = 70000\n" 4 "a port out of range"
  assert "$output" =~ "quic-server-port" "the key with the bad value is named"
  config_error server "${ok}log-level = loud\n" 4 "a bad log level"
  config_error server "${ok}idle-timeout = soon\n" 4 "a bad duration"
  config_error server "${ok}print-metrics = maybe\n" 4 "a bad flag value"
  config_error server "${ok}just some words\n" 4 "a line without '='"
  config_error server "${ok}quic-psk-file = \"/unterminated\n" 4 "an unterminated quote"
  config_error server "${ok}local-host =\n" 4 "a missing value"
  config_error server "${ok}config = /etc/other.conf\n" 4 "config inside a config file"
  config_error server "${ok}destination-port = 80\n" 4 "a client option in the server's file"
  assert "$output" =~ "destination-port" "the other role's key is named"
  config_error client 'destination-port = 80\nlocal-port = 80\n' 2 "a server option in the client's file"
  config_error client 'destination-port = 80\nquic-remote = ::1:4433\n' 2 "an IPv6 remote without brackets"
  config_error client 'destination-port = 80\nquic-remote-host = 127.0.0.1\nquic-remote = 127.0.0.1:4433\n' 3 \
    "quic-remote with quic-remote-host"
}

@test "comments, quotes, flags: a PSK file path with '#' and spaces, yes/no flags" {
  start_dest echo
  new_psk
  local odd="$BATS_TEST_TMPDIR/dir # with hash/the psk"
  mkdir -p "${odd%/*}"
  cp "$PSK_FILE" "$odd"
  local srv q
  srv=$(free_port)
  q=$(free_port)
  cat >"$BATS_TEST_TMPDIR/server.conf" <<EOF
   # indented comment
local-host = 127.0.0.1   # a trailing comment
local-port=$srv
quic-server-port   =   $q
quic-psk-file = "$odd"
print-metrics = no
EOF
  start_server --config "$BATS_TEST_TMPDIR/server.conf"
  copy_cert server client
  cat >"$BATS_TEST_TMPDIR/client.conf" <<EOF
destination-port = $DEST_PORT
quic-remote = 127.0.0.1:$q
quic-psk-file = "$odd"
trust-on-first-use = yes
EOF
  start_client --config "$BATS_TEST_TMPDIR/client.conf"
  wait_tunnel_up
  echo_ok "$srv"
  run grep -c '^metrics:' "$(log_of server)"
  assert "$output" == 0 "print-metrics = no is off"
  stop_all_checked
}

@test "the command line wins over the file, also for a repeated key" {
  start_dest echo
  serve s1
  same_identity s1 s2
  serve s2
  copy_cert s1 client
  cat >"$BATS_TEST_TMPDIR/client.conf" <<EOF
destination-port = $DEST_PORT
quic-remote = 127.0.0.1:$QUIC_PORT_s1
quic-psk-file = $PSK_FILE
log-level = warn
EOF
  # --quic-remote on the command line replaces the file's list entirely.
  start_client --config "$BATS_TEST_TMPDIR/client.conf" --quic-remote "127.0.0.1:$QUIC_PORT_s2" \
    --log-level info
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" 20
  sleep 2
  run grep -c "127\.0\.0\.1:$QUIC_PORT_s1" "$(log_of client)"
  assert "$output" == 0 "the file's quic-remote is not used"
  run grep -c 'client authenticated' "$(log_of s1)"
  assert "$output" == 0 "no client came to s1"
  stop_all_checked
}
