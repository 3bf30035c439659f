#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 18, live reload and --check-config (README "Reload"; spec/07-state-
# machines.md §5): SIGHUP reads --config again on both binaries; services
# added, removed and changed without touching the others; a broken file is
# refused with one ERROR naming FILE:LINE and the running configuration
# stays; a transfer goes on across reloads; the client's destinations and
# declared services follow its file; --check-config prints what would run.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

# conf_server FILE LINES...: the server's config file, one line each.
write_conf() {
  local f=$1
  shift
  printf '%s\n' "$@" >"$f.tmp"
  mv "$f.tmp" "$f"
}

# rl_server CONF: a server on a fresh PSK and QUIC port reading CONF.
rl_server() {
  new_psk
  QUIC_PORT=$(free_port)
  start_server --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --pending-timeout 2 --config "$1"
}

# rl_client ARGS...: the client of that server.
rl_client() {
  copy_cert server client
  start_client --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" "$@"
  wait_tunnel_up client
  sleep 0.3
}

# hup NAME N: SIGHUP to NAME; wait for its Nth reload summary.
hup() {
  kill -HUP "$(pid_of "$1")"
  local i
  for ((i = 0; i < 100; i++)); do
    (($(grep -cE 'INFO .*reload: [0-9]+ services' "$(log_of "$1")") >= $2)) && return 0
    sleep 0.05
  done
  tail -n 20 "$(log_of "$1")" | sed -e 's/^/# /'
  die "$1: no reload summary number $2"
}

@test "server SIGHUP: a service added is used, a removed one refuses, the other serves on" {
  local conf=$BATS_TEST_TMPDIR/server.conf p1 pa pb
  p1=$(free_port) pa=$(free_port) pb=$(free_port)
  write_conf "$conf" "local-port = $p1" "service = a=127.0.0.1:$pa"
  rl_server "$conf"
  start_dest echo
  rl_client --destination-port "$DEST_PORT" \
    --service "a=127.0.0.1:$DEST_PORT" --service "b=127.0.0.1:$DEST_PORT"
  echo_ok "$p1"
  echo_ok "$pa"
  write_conf "$conf" "local-port = $p1" "service = b=127.0.0.1:$pb"
  hup server 1
  wait_for_log_of server 'INFO .*reload: 2 services \(\+1 -1 ~0\)' 5
  echo_ok "$pb"
  echo_ok "$p1"
  probe 127.0.0.1 "$pa" --send "x" --timeout 5
  assert "${lines[0]}" =~ "end=refused" "the removed service's port"
  # A changed port: closed and opened again.
  write_conf "$conf" "local-port = $p1" "service = b=127.0.0.1:$pa"
  hup server 2
  wait_for_log_of server 'INFO .*reload: 2 services \(\+0 -0 ~1\)' 5
  echo_ok "$pa"
  probe 127.0.0.1 "$pb" --send "x" --timeout 5
  assert "${lines[0]}" =~ "end=refused" "the moved service's old port"
  is_running server || die "the server died"
  stop_all_checked
}

@test "server SIGHUP: a broken file is one ERROR naming FILE:LINE; the old configuration serves on" {
  local conf=$BATS_TEST_TMPDIR/server.conf p1 pa
  p1=$(free_port) pa=$(free_port)
  write_conf "$conf" "local-port = $p1"
  rl_server "$conf"
  start_dest echo
  rl_client --destination-port "$DEST_PORT"
  echo_ok "$p1"
  write_conf "$conf" "local-port = $p1" "service = a=127.0.0.1:$pa" "no-such-option = 1"
  kill -HUP "$(pid_of server)"
  wait_for_log_of server "ERROR .*reload refused: ${conf//./\\.}:3: " 5
  sleep 0.3
  run grep -c ' ERROR ' "$(log_of server)"
  assert "$output" == 1 "ERROR lines"
  is_running server || die "the server died of a broken reload"
  echo_ok "$p1"
  probe 127.0.0.1 "$pa" --send "x" --timeout 5
  assert "${lines[0]}" =~ "end=refused" "nothing of the broken file applied"
  # Fixed: the next SIGHUP applies it.
  write_conf "$conf" "local-port = $p1" "service = a=127.0.0.1:$pa"
  hup server 1
  stop client
  stop server
}

@test "server SIGHUP: a port that cannot be bound is one ERROR; that service is left out, the rest applies" {
  local conf=$BATS_TEST_TMPDIR/server.conf p1 pa
  p1=$(free_port) pa=$(free_port)
  write_conf "$conf" "local-port = $p1"
  rl_server "$conf"
  start_dest echo
  rl_client --destination-port "$DEST_PORT" \
    --service "a=127.0.0.1:$DEST_PORT" --service "busy=127.0.0.1:$DEST_PORT"
  # dest.py holds DEST_PORT: service busy cannot listen there.
  write_conf "$conf" "local-port = $p1" "service = a=127.0.0.1:$pa" \
    "service = busy=127.0.0.1:$DEST_PORT"
  hup server 1
  wait_for_log_of server 'INFO .*reload: 2 services \(\+2 -0 ~0\).*left out' 5
  run grep -c ' ERROR ' "$(log_of server)"
  assert "$output" == 1 "ERROR lines"
  grep -q "ERROR .*cannot listen for TCP on 127\.0\.0\.1:$DEST_PORT: .*service \"busy\" left out" \
    "$(log_of server)" || die "no ERROR naming the service"
  echo_ok "$pa"
  echo_ok "$p1"
  stop client
  stop server
}

@test "server SIGHUP: checksummed transfers through a service go on across reloads" {
  local conf=$BATS_TEST_TMPDIR/server.conf p1 pa pb
  p1=$(free_port) pa=$(free_port) pb=$(free_port)
  write_conf "$conf" "local-port = $p1" "service = a=127.0.0.1:$pa"
  rl_server "$conf"
  start_dest echo
  rl_client --destination-port "$DEST_PORT" --service "a=127.0.0.1:$DEST_PORT"
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$pa" \
    -n 4 -s $((16 * 1024 * 1024)) --timeout 200 --read-delay 0.002
  sleep 0.5
  write_conf "$conf" "local-port = $p1" "service = a=127.0.0.1:$pa" \
    "service = b=127.0.0.1:$pb"
  hup server 1
  write_conf "$conf" "local-port = $p1" "service = a=127.0.0.1:$pa" \
    "pending-timeout = 3"
  hup server 2
  wait_for_log "$(log_of xfer)" '^(ok|failed|FAIL)' 240
  run cat "$(log_of xfer)"
  assert_line "ok 4"
  run grep -c 'client authenticated' "$(log_of server)"
  assert "$output" == 1 "authentications (the tunnel stayed)"
  echo_ok "$pa"
  stop_all_checked
}

@test "client SIGHUP: a changed destination for new connections, a new service offered" {
  local sconf=$BATS_TEST_TMPDIR/server.conf cconf=$BATS_TEST_TMPDIR/client.conf
  local p1 pw
  p1=$(free_port) pw=$(free_port)
  write_conf "$sconf" "local-port = $p1" "service = web=127.0.0.1:$pw"
  rl_server "$sconf"
  start_dest -n dest1 echo --count-file "$BATS_TEST_TMPDIR/count1"
  local d1=$DEST_PORT
  start_dest -n dest2 echo --count-file "$BATS_TEST_TMPDIR/count2"
  local d2=$DEST_PORT
  write_conf "$cconf" "destination-port = $d1"
  rl_client --config "$cconf"
  echo_ok "$p1"
  assert "$(count_of "$BATS_TEST_TMPDIR/count1")" == 1 "dest1 before"
  write_conf "$cconf" "destination-port = $d2" "service = web=127.0.0.1:$d2"
  hup client 1
  wait_for_log_of client 'INFO .*reload: 2 services \(\+1 -0 ~1\)' 5
  sleep 0.3
  echo_ok "$p1"
  echo_ok "$pw"
  assert "$(count_of "$BATS_TEST_TMPDIR/count1")" == 1 "dest1 after"
  assert "$(count_of "$BATS_TEST_TMPDIR/count2")" == 2 "dest2 after"
  # A broken client file: one ERROR, the client carries on.
  write_conf "$cconf" "destination-port = nope"
  kill -HUP "$(pid_of client)"
  wait_for_log_of client "ERROR .*reload refused: ${cconf//./\\.}:1: " 5
  is_running client || die "the client died of a broken reload"
  echo_ok "$p1"
  stop client
  stop server
}

@test "sd_notify: RELOADING=1 then READY=1 around a reload" {
  local conf=$BATS_TEST_TMPDIR/server.conf p1
  p1=$(free_port)
  write_conf "$conf" "local-port = $p1"
  local sock=$BATS_TEST_TMPDIR/n.sock
  start_tool nserver "$PRD_PYTHON" "$PRD_TOOLS/notify_sink.py" "$sock"
  wait_for_log "$(log_of nserver)" '^bound' 10
  PRD_ENV=(NOTIFY_SOCKET="$sock")
  rl_server "$conf"
  wait_for_log "$(log_of nserver)" '^READY=1' 10
  hup server 1
  wait_for_log "$(log_of nserver)" '^RELOADING=1\|MONOTONIC_USEC=[0-9]+\|STATUS=reloading' 5
  run grep -c '^READY=1' "$(log_of nserver)"
  assert "$output" == 2 "READY=1 at start and after the reload"
  stop server
}

@test "--check-config: prints what would run (exit 0), or FILE:LINE (exit 2); creates nothing" {
  local conf=$BATS_TEST_TMPDIR/server.conf dir=$BATS_TEST_TMPDIR/cfgdir
  make_psk "$BATS_TEST_TMPDIR/psk"
  write_conf "$conf" "local-port = 8080" "service = web=127.0.0.1:8443" \
    "quic-psk-file = $BATS_TEST_TMPDIR/psk"
  run "$PRD_SERVER" --config-dir "$dir" --config "$conf" --check-config
  assert "$status" == 0 "exit status: $output"
  assert "$output" =~ 'service default: TCP 127\.0\.0\.1:8080' "default listed"
  assert "$output" =~ 'service web: TCP 127\.0\.0\.1:8443' "web listed"
  [[ ! -e $dir ]] || die "--check-config created $dir"
  write_conf "$conf" "local-port = 8080" "service = web=127.0.0.1:" \
    "quic-psk-file = $BATS_TEST_TMPDIR/psk"
  run "$PRD_SERVER" --config-dir "$dir" --config "$conf" --check-config
  assert "$status" == 2 "exit status of a bad file"
  assert "$output" =~ "${conf//./\\.}:2: " "FILE:LINE"
  # The client: its services and remotes.
  write_conf "$conf" "destination-port = 22" "service = web=127.0.0.1:80" \
    "quic-psk-file = $BATS_TEST_TMPDIR/psk" "quic-remote = 127.0.0.1:4433" \
    "trust-on-first-use"
  run "$PRD_CLIENT" --config-dir "$dir" --config "$conf" --check-config
  assert "$status" == 0 "client exit status: $output"
  assert "$output" =~ 'service web: to 127\.0\.0\.1:80' "client web listed"
  assert "$output" =~ 'remote 127\.0\.0\.1:4433' "remote listed"
  [[ ! -e $dir ]] || die "--check-config created $dir"
}

@test "server SIGHUP: a client removed from the clients file is revoked (CLIENT_REVOKED), the other's transfer goes on" {
  local conf=$BATS_TEST_TMPDIR/server.conf pa pb
  pa=$(free_port) pb=$(free_port)
  clients_file "alice psk-file=$(key alice) services=a
bob psk-file=$(key bob) services=b
"
  write_conf "$conf" "clients-file = $CLIENTS_FILE" \
    "service = a=127.0.0.1:$pa" "service = b=127.0.0.1:$pb"
  QUIC_PORT=$(free_port)
  start_server --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --pending-timeout 2 --config "$conf"
  start_dest echo
  local c
  for c in alice bob; do
    copy_cert server "$c"
    start_client -n "$c" --quic-remote-host 127.0.0.1 \
      --quic-remote-port "$QUIC_PORT" --quic-psk-file "$(key "$c")" \
      --client-name "$c" --service "${c:0:1}=127.0.0.1:$DEST_PORT"
    wait_tunnel_up "$c"
  done
  sleep 0.3
  echo_ok "$pb"
  start_tool xfer "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$pa" \
    -n 4 -s $((16 * 1024 * 1024)) --timeout 200 --read-delay 0.002
  sleep 0.5
  clients_file "alice psk-file=$(key alice) services=a
"
  hup server 1
  wait_for_log_of server 'INFO .*reload: 2 services .*1 clients \(\+0 -1\), 1 revoked' 5
  wait_for_log_of server 'WARN .*client "bob" from 127\.0\.0\.1:[0-9]+ revoked \(reload\)' 5
  wait_for_log_of bob 'ERROR .*revoked this client \(CLIENT_REVOKED\)' 5
  wait_for_log "$(log_of xfer)" '^(ok|failed|FAIL)' 240
  run cat "$(log_of xfer)"
  assert_line "ok 4"
  run grep -c 'as "alice"' "$(log_of server)"
  assert "$output" == 1 "alice's authentications (her tunnel stayed)"
  echo_ok "$pa"
  stop_checked_except bob
}

@test "server SIGHUP: a rotated key; the connected client keeps its tunnel, new connections need the new key" {
  local conf=$BATS_TEST_TMPDIR/server.conf pa
  pa=$(free_port)
  local old new
  old=$(key old) new=$(key new)
  clients_file "alice psk-file=$old services=a
"
  write_conf "$conf" "clients-file = $CLIENTS_FILE" "service = a=127.0.0.1:$pa"
  QUIC_PORT=$(free_port)
  start_server --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --pending-timeout 2 --config "$conf" --auth-fail-exempt 127.0.0.1
  start_dest echo
  copy_cert server alice
  start_client -n alice --quic-remote-host 127.0.0.1 \
    --quic-remote-port "$QUIC_PORT" --quic-psk-file "$old" \
    --client-name alice --service "a=127.0.0.1:$DEST_PORT"
  wait_tunnel_up alice
  sleep 0.3
  echo_ok "$pa"
  clients_file "alice psk-file=$new services=a
"
  hup server 1
  sleep 0.3
  echo_ok "$pa"
  run grep -c 'as "alice"' "$(log_of server)"
  assert "$output" == 1 "alice's authentications (her tunnel stayed)"
  # A second connection with the old key is refused, with the new one served.
  copy_cert server old2
  start_client -n old2 --quic-remote-host 127.0.0.1 \
    --quic-remote-port "$QUIC_PORT" --quic-psk-file "$old" \
    --client-name alice --service "a=127.0.0.1:$DEST_PORT"
  wait_for_log_of old2 'ERROR .*rejected client "alice"' 10
  copy_cert server new2
  start_client -n new2 --quic-remote-host 127.0.0.1 \
    --quic-remote-port "$QUIC_PORT" --quic-psk-file "$new" \
    --client-name alice --service "a=127.0.0.1:$DEST_PORT"
  wait_tunnel_up new2
  stop_checked_except old2
}

@test "server SIGHUP: two refused reloads after an applied one; a new client still authenticates" {
  local conf=$BATS_TEST_TMPDIR/server.conf p1 pa n
  p1=$(free_port) pa=$(free_port)
  write_conf "$conf" "local-port = $p1"
  rl_server "$conf"
  start_dest echo
  rl_client --destination-port "$DEST_PORT"
  write_conf "$conf" "local-port = $p1" "service = a=127.0.0.1:$pa"
  hup server 1
  # Two services on one address, neither routed: the file parses, the
  # relay refuses it, and the configuration applied last must stay whole.
  write_conf "$conf" "local-port = $p1" "service = a=127.0.0.1:$pa" \
    "service = b=127.0.0.1:$pa"
  for n in 1 2; do
    kill -HUP "$(pid_of server)"
    for ((i = 0; i < 100; i++)); do
      (($(grep -c 'reload refused: no usable service' "$(log_of server)") >= n)) && break
      sleep 0.05
    done
  done
  (($(grep -c 'reload refused: no usable service' "$(log_of server)") == 2)) ||
    die "the server did not refuse both reloads"
  # A new connection authenticates with the running clients table.
  stop client
  rl_client --destination-port "$DEST_PORT"
  echo_ok "$p1"
  is_running server || die "the server died"
  stop client
  stop server
}
