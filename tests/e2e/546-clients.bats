#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 18, client identities (README "Clients"; spec/03-auth.md §3, §4.1;
# spec/06-files-and-cli.md §4.1): a clients file gives each client its own
# key and services; a client gets streams only of the services it may serve
# and is told SERVICE_NOT_PERMITTED for the others; allow= limits where a
# client may connect from; an unknown name, a name from outside its allow=
# and a wrong key look the same from outside (close code and timing); the
# nameless client of --quic-psk still works; file errors are FILE:LINE
# with exit status 2; a named client and an old server; an old client at a
# new server with a clients file.
#
# Old binaries: PRD_BIN_DIR_OLD (scripts/test's build-old stage); that test
# skips without it.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat
load helpers_rel

# id_server ARGS...: a server on a fresh QUIC port with the clients file.
id_server() {
  QUIC_PORT=$(free_port)
  start_server --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --clients-file "$CLIENTS_FILE" --pending-timeout 2 "$@"
}

# id_client NAME CLIENT_NAME KEYFILE ARGS...: a client NAME of that server
# named CLIENT_NAME ("" for none) with KEYFILE.
id_client() {
  local name=$1 cname=$2 keyf=$3
  shift 3
  local -a n=()
  [[ -n $cname ]] && n=(--client-name "$cname")
  copy_cert server "$name"
  start_client -n "$name" --quic-remote-host 127.0.0.1 \
    --quic-remote-port "$QUIC_PORT" --quic-psk-file "$keyf" "${n[@]}" "$@"
}

@test "two clients with their own keys serve their own services; each gets only its own" {
  local pa pb mp
  pa=$(free_port) pb=$(free_port) mp=$(free_port)
  clients_file "# two clients
alice psk-file=alice.psk services=a
bob   psk-file=$(key bob) services=b
"
  key alice >/dev/null
  id_server --service "a=127.0.0.1:$pa" --service "b=127.0.0.1:$pb" \
    --metrics-listen "127.0.0.1:$mp"
  start_dest -n dest-a echo --count-file "$BATS_TEST_TMPDIR/count-a"
  id_client alice alice "$(key alice)" --service "a=127.0.0.1:$DEST_PORT"
  start_dest -n dest-b echo --count-file "$BATS_TEST_TMPDIR/count-b"
  id_client bob bob "$(key bob)" --service "b=127.0.0.1:$DEST_PORT"
  wait_tunnel_up alice
  wait_tunnel_up bob
  wait_for_log_of server 'client authenticated from 127\.0\.0\.1:[0-9]+ as "alice"' 5
  wait_for_log_of server 'client authenticated from 127\.0\.0\.1:[0-9]+ as "bob"' 5
  echo_count "$pa" 20
  echo_count "$pb" 20
  assert "$(count_of "$BATS_TEST_TMPDIR/count-a")" == 20 "a's users reached alice only"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-b")" == 20 "b's users reached bob only"
  # Metrics: one series per client, labelled with its name.
  metrics_of "127.0.0.1:$mp"
  grep -qE '^portredirect_quic_rtt_seconds\{client="alice",peer="127\.0\.0\.1:[0-9]+",conn="c[0-9]+"\} ' <<<"$METRICS" ||
    die "no RTT series for client alice"
  grep -qE '^portredirect_quic_rtt_seconds\{client="bob",peer="127\.0\.0\.1:[0-9]+",conn="c[0-9]+"\} ' <<<"$METRICS" ||
    die "no RTT series for client bob"
  stop_all_checked
}

@test "a service the client may not serve: SERVICE_NOT_PERMITTED in its log, no streams of it" {
  local pa pb
  pa=$(free_port) pb=$(free_port)
  clients_file "alice psk-file=$(key alice) services=a
"
  id_server --service "a=127.0.0.1:$pa" --service "b=127.0.0.1:$pb"
  start_dest -n dest-a echo
  local da=$DEST_PORT
  start_dest -n dest-b echo --count-file "$BATS_TEST_TMPDIR/count-b"
  id_client alice alice "$(key alice)" --service "a=127.0.0.1:$da" \
    --service "b=127.0.0.1:$DEST_PORT"
  wait_tunnel_up alice
  wait_for_log_of alice 'refused service "b" \(SERVICE_NOT_PERMITTED\)' 5
  wait_for_log_of server 'client "alice" declared service "b", which its line in the clients file does not allow: refused \(SERVICE_NOT_PERMITTED\)' 5
  echo_count "$pa" 3
  # b's users find nobody allowed to serve b: closed after --pending-timeout.
  probe 127.0.0.1 "$pb" --send "x" --timeout 10
  assert "${lines[0]}" =~ "^recv=0 end=(eof|reset)" "b's user got nothing"
  wait_for_log_of server 'no client serves service "b"' 5
  assert "$(count_of "$BATS_TEST_TMPDIR/count-b")" == 0 "nothing reached b's destination"
  stop_checked_except alice
}

# fail_times CASE ARGS...: 50 authentications of evilpeer with ARGS; checks
# each ends with AUTH_RESULT AUTH_FAILED and CONNECTION_CLOSE(AUTH_FAILED)
# and writes the times from handshake to close to $BATS_TEST_TMPDIR/CASE.
fail_times() {
  local case=$1
  shift
  local i out
  : >"$BATS_TEST_TMPDIR/$case"
  for ((i = 0; i < 50; i++)); do
    out=$("$EVILPEER" wrongpsk --port "$QUIC_PORT" -n 1 "$@")
    [[ $out =~ auth=4\ close=peer-app\ code=0x4\  ]] ||
      die "$case try $i: not AUTH_FAILED: $out"
    [[ $out =~ t_close_after_handshake=([0-9.]+) ]] || die "$case: no time: $out"
    echo "${BASH_REMATCH[1]}" >>"$BATS_TEST_TMPDIR/$case"
  done
}

@test "an unknown name, a name outside its allow= and a wrong key are indistinguishable from outside (50 tries each)" {
  evilpeer_build
  clients_file "alice psk-file=$(key alice) services=*
carol psk-file=$(key carol) services=* allow=10.0.0.0/8 allow=2001:db8::/32
"
  local p
  p=$(free_port)
  id_server --local-host 127.0.0.1 --local-port "$p" --auth-fail-exempt 127.0.0.0/8
  local wrong
  wrong=$(key wrong)
  # Only the server's log tells the reasons, with the name (one try each,
  # from its own address: failure lines are rate-limited per address).
  "$EVILPEER" wrongpsk --port "$QUIC_PORT" -n 1 --local-host 127.0.0.21 \
    --client-name mallory --psk-file "$(key alice)" >/dev/null
  wait_for_log_of server 'authentication failed from 127\.0\.0\.21:[0-9]+ as client "mallory": unknown client \(AUTH_FAILED\)' 5
  "$EVILPEER" wrongpsk --port "$QUIC_PORT" -n 1 --local-host 127.0.0.22 \
    --client-name alice --psk-file "$wrong" >/dev/null
  wait_for_log_of server 'authentication failed from 127\.0\.0\.22:[0-9]+ as client "alice": wrong key \(AUTH_FAILED\)' 5
  "$EVILPEER" wrongpsk --port "$QUIC_PORT" -n 1 --local-host 127.0.0.23 \
    --client-name carol --psk-file "$(key carol)" >/dev/null
  wait_for_log_of server 'authentication failed from 127\.0\.0\.23:[0-9]+ as client "carol": client not allowed from this address \(AUTH_FAILED\)' 5
  "$EVILPEER" wrongpsk --port "$QUIC_PORT" -n 1 --local-host 127.0.0.24 \
    --client-name "-x" --psk-file "$(key alice)" >/dev/null
  wait_for_log_of server 'authentication failed from 127\.0\.0\.24:[0-9]+ as client "-x": invalid client name \(AUTH_FAILED\)' 5
  # Interleaved, so that load affects each case alike.
  fail_times unknown --client-name mallory --psk-file "$(key alice)" &
  local pid=$!
  fail_times wrongkey --client-name alice --psk-file "$wrong"
  wait "$pid" || die "the unknown-name tries failed"
  fail_times notallowed --client-name carol --psk-file "$(key carol)"
  run "$PRD_PYTHON" - "$BATS_TEST_TMPDIR" <<'EOF'
import statistics, sys
d = sys.argv[1]
t = {c: sorted(float(x) for x in open("%s/%s" % (d, c)))
     for c in ("unknown", "wrongkey", "notallowed")}
med = {c: statistics.median(v) for c, v in t.items()}
iqr = {c: v[len(v) * 3 // 4] - v[len(v) // 4] for c, v in t.items()}
print("# median time to failure (s): " + ", ".join(
    "%s %.4f (IQR %.4f)" % (c, med[c], iqr[c]) for c in t))
noise = max(0.005, max(iqr.values()))
for c in ("unknown", "notallowed"):
    if abs(med[c] - med["wrongkey"]) > noise:
        sys.exit("%s: median %.4f s vs wrong key %.4f s (noise %.4f s)"
                 % (c, med[c], med["wrongkey"], noise))
EOF
  echo "$output" >&3
  assert "$status" == 0 "time to failure within noise"
  # No cool-down for the exempt address: alice still gets in.
  start_dest echo
  id_client alice alice "$(key alice)" --destination-port "$DEST_PORT"
  wait_tunnel_up alice
  echo_ok "$p"
  stop_all_checked
}

@test "allow=: a client from an allowed address authenticates, from another it is refused" {
  clients_file "alice psk-file=$(key alice) services=* allow=127.0.0.2/32
"
  local p
  p=$(free_port)
  id_server --local-host 127.0.0.1 --local-port "$p"
  start_dest echo
  id_client bad alice "$(key alice)" --destination-port "$DEST_PORT" \
    --quic-local-host 127.0.0.1
  wait_for_log_of bad 'rejected client "alice" with our PSK \(AUTH_FAILED\)' 15
  wait_for_log_of server 'as client "alice": client not allowed from this address' 5
  stop bad
  id_client alice alice "$(key alice)" --destination-port "$DEST_PORT" \
    --quic-local-host 127.0.0.2
  wait_tunnel_up alice
  echo_ok "$p"
  stop_checked_except bad
}

@test "the nameless client of --quic-psk-file still works beside a clients file" {
  new_psk
  clients_file "alice psk-file=$(key alice) services=*
"
  local p
  p=$(free_port)
  id_server --local-host 127.0.0.1 --local-port "$p" --quic-psk-file "$PSK_FILE"
  start_dest echo
  id_client seed "" "$PSK_FILE" --destination-port "$DEST_PORT"
  wait_tunnel_up seed
  wait_for_log_of server 'client authenticated from 127\.0\.0\.1:[0-9]+ as "default"' 5
  echo_ok "$p"
  stop seed
  id_client alice alice "$(key alice)" --destination-port "$DEST_PORT"
  wait_tunnel_up alice
  echo_ok "$p"
  # The seed's key does not work under alice's name, nor alice's nameless.
  id_client x1 alice "$PSK_FILE" --destination-port "$DEST_PORT"
  wait_for_log_of x1 'rejected client "alice"' 15
  id_client x2 "" "$(key alice)" --destination-port "$DEST_PORT"
  wait_for_log_of x2 'rejected our PSK' 15
  stop_checked_except x1 x2
}

# expect_refused ARGS...: the server exits with status 2 and one line.
expect_refused() {
  run timeout 10 "$PRD_SERVER" --config-dir "$BATS_TEST_TMPDIR/cfg" \
    --local-port "$(free_port)" --quic-server-port "$(free_port)" "$@"
  assert "$status" == 2 "exit status"
}

@test "clients file errors are FILE:LINE with exit status 2; a loose file, a duplicate default are refused" {
  clients_file "# ok
alice psk-file=$(key alice) services=web
bob psk-file=$(key alice) services=web allow=nonsense
"
  expect_refused --clients-file "$CLIENTS_FILE"
  assert "$output" =~ "$CLIENTS_FILE:3: client bob: invalid allow \"nonsense\"" "names FILE:LINE"
  clients_file "alice psk-file=$(key alice) services=web
alice psk-file=$(key alice) services=*
"
  expect_refused --clients-file "$CLIENTS_FILE"
  assert "$output" =~ "$CLIENTS_FILE:2: client alice defined twice" "duplicate"
  clients_file "alice psk-file=nowhere.psk services=web
"
  expect_refused --clients-file "$CLIENTS_FILE"
  assert "$output" =~ "$CLIENTS_FILE:1: client alice: cannot read psk-file $BATS_TEST_TMPDIR/nowhere.psk" "missing key"
  clients_file "alice psk-file=$(key alice) services=web
"
  chmod 0640 "$CLIENTS_FILE"
  expect_refused --clients-file "$CLIENTS_FILE"
  assert "$output" =~ "readable by group/others \(mode 0640\); run: chmod 600 $CLIENTS_FILE" "permissions"
  chmod 0600 "$CLIENTS_FILE"
  new_psk
  clients_file "default psk-file=$(key alice) services=web
"
  expect_refused --clients-file "$CLIENTS_FILE" --quic-psk-file "$PSK_FILE"
  assert "$output" =~ "a client named default and --quic-psk" "default twice"
  # The config file's key clients-file works the same.
  printf 'clients-file = %s\n' "$CLIENTS_FILE" >"$BATS_TEST_TMPDIR/server.conf"
  expect_refused --config "$BATS_TEST_TMPDIR/server.conf" --quic-psk-file "$PSK_FILE"
  assert "$output" =~ "a client named default and --quic-psk" "from --config"
  run timeout 10 "$PRD_CLIENT" --client-name -x --quic-psk x --destination-port 1
  assert "$status" == 2 "client: bad name"
  assert "$output" =~ "--client-name: invalid name" "client: bad name message"
}

@test "a named client and an old server: ERROR that the server may not know client names; an old client is default" {
  local old=${PRD_BIN_DIR_OLD:-}
  [[ -n $old && -x $old/portredirect_server ]] ||
    skip "PRD_BIN_DIR_OLD is not set: no old build"
  new_psk
  QUIC_PORT=$(free_port)
  local p
  p=$(free_port)
  PRD_SERVER=$old/portredirect_server start_server --local-host 127.0.0.1 \
    --local-port "$p" --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE"
  start_dest echo
  id_client client alice "$PSK_FILE" --destination-port "$DEST_PORT"
  wait_for_log_of client 'ERROR.*PROTOCOL_ERROR after our AUTH_RESPONSE with client name "alice": the server may not know client names \(upgrade it, or drop --client-name\)' 15
  stop client
  # Without --client-name the same client is "default" there.
  id_client client2 "" "$PSK_FILE" --destination-port "$DEST_PORT"
  wait_tunnel_up client2
  echo_ok "$p"
  stop client2
  stop server
  # And the old client, which sends no name, is "default" at a new server
  # with a clients file.
  clients_file "alice psk-file=$(key alice) services=*
"
  p=$(free_port)
  id_server --local-host 127.0.0.1 --local-port "$p" --quic-psk-file "$PSK_FILE"
  PRD_CLIENT=$old/portredirect_client id_client old "" "$PSK_FILE" --destination-port "$DEST_PORT"
  wait_tunnel_up old
  wait_for_log_of server 'client authenticated from 127\.0\.0\.1:[0-9]+ as "default"' 5
  echo_ok "$p"
  stop_checked_except client
}
