#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 17, named services (README "Services"; spec/02-framing.md §3.7,
# §3.8, §4.4): several services through one tunnel, each to its own
# destination; clients serving different services behind one server, never
# crossed; port ranges; a user of a service nobody serves waits
# --pending-timeout; a service the server does not have is refused and
# logged once on both sides; old and new binaries together.
#
# Old binaries: PRD_BIN_DIR_OLD, a build from before named services
# (scripts/test's build-old stage); those tests skip without it.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

# need_services [CLIENT]: the tunnel of CLIENT (default "client") is up and
# negotiated named services with its server.
need_services() {
  local c=${1:-client}
  wait_tunnel_up "$c"
  sleep 0.3
  if grep -q 'does not support named services' "$(log_of "$c")"; then
    die "the client says its server does not support named services"
  fi
}

# free_range N: prints the first of N consecutive free TCP ports of
# 127.0.0.1.
free_range() {
  "$PRD_PYTHON" - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(500):
    base = random.randint(20000, 60000 - n)
    held, ok = [], True
    for p in range(base, base + n):
        s = socket.socket()
        held.append(s)
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
            break
    for s in held:
        s.close()
    if ok:
        print(base)
        sys.exit(0)
sys.exit("free_range: none found")
EOF
}

# svc_server ARGS...: a server on a fresh PSK and QUIC port, with ARGS (its
# services) and a 2 s --pending-timeout.
svc_server() {
  new_psk
  QUIC_PORT=$(free_port)
  start_server --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --pending-timeout 2 "$@"
}

# svc_client NAME ARGS...: a client NAME of that server with ARGS.
svc_client() {
  local name=$1
  shift
  copy_cert server "$name"
  start_client -n "$name" --quic-remote-host 127.0.0.1 \
    --quic-remote-port "$QUIC_PORT" --quic-psk-file "$PSK_FILE" "$@"
}

@test "--service listens on its ports; a client serving default only: the others wait --pending-timeout, then close naming the service" {
  local p1 web mp
  p1=$(free_port) mp=$(free_port)
  web=$(free_range 3)
  svc_server --local-host 127.0.0.1 --local-port "$p1" \
    --service "web=127.0.0.1:$web-$((web + 2))" --metrics-listen "127.0.0.1:$mp"
  wait_for_log_of server "for service \"web\"" 5
  start_dest echo
  svc_client client --destination-port "$DEST_PORT"
  wait_tunnel_up client
  echo_ok "$p1"
  # Every port of the range accepts; nobody serves web: closed after 2 s.
  probe 127.0.0.1 "$((web + 2))" --send "x" --timeout 10
  assert "${lines[0]}" =~ "end=(eof|reset)" "closed by the server"
  local el=${lines[0]##*elapsed=}
  el=${el%% *}
  awk -v e="$el" 'BEGIN { exit !(e >= 1.5) }' ||
    die "closed after $el s, before --pending-timeout (2 s)"
  wait_for_log_of server 'no client serves service "web" port offset 2 \(--pending-timeout\)' 5
  echo_ok "$p1"
  wait_metric "127.0.0.1:$mp" portredirect_connections_active -eq 0 10
  assert "$(metric 'portredirect_service_connections_accepted_total{service="web"}')" == 1 "web: one"
  assert "$(metric 'portredirect_service_connections_accepted_total{service="default"}')" == 2 "default: two"
  assert "$(metric 'portredirect_service_connections_active{service="web"}')" == 0 "web: none open"
  stop_all_checked
}

@test "three services through one tunnel to three destinations" {
  local pa pb pc
  pa=$(free_port) pb=$(free_port) pc=$(free_port)
  svc_server --service "a=127.0.0.1:$pa" --service "b=127.0.0.1:$pb" \
    --service "c=127.0.0.1:$pc"
  local -a cargs=()
  local s
  for s in a b c; do
    start_dest -n "dest-$s" echo --count-file "$BATS_TEST_TMPDIR/count-$s"
    cargs+=(--service "$s=127.0.0.1:$DEST_PORT")
  done
  svc_client client "${cargs[@]}"
  need_services client
  echo_count "$pa" 3
  echo_count "$pb" 4
  echo_count "$pc" 5
  assert "$(count_of "$BATS_TEST_TMPDIR/count-a")" == 3 "service a's destination"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-b")" == 4 "service b's destination"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-c")" == 5 "service c's destination"
  stop_all_checked
}

@test "two clients serving different services behind one server are never crossed (100 connections each)" {
  local pa pb
  pa=$(free_port) pb=$(free_port)
  svc_server --service "a=127.0.0.1:$pa" --service "b=127.0.0.1:$pb"
  start_dest -n dest-a echo --count-file "$BATS_TEST_TMPDIR/count-a"
  svc_client ca --service "a=127.0.0.1:$DEST_PORT"
  start_dest -n dest-b echo --count-file "$BATS_TEST_TMPDIR/count-b"
  svc_client cb --service "b=127.0.0.1:$DEST_PORT"
  need_services ca
  need_services cb
  echo_count "$pa" 100
  echo_count "$pb" 100
  assert "$(count_of "$BATS_TEST_TMPDIR/count-a")" == 100 "a's users reached a's destination only"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-b")" == 100 "b's users reached b's destination only"
  stop_all_checked
}

@test "a port range maps one to one onto the client's range" {
  local lp dp
  lp=$(free_range 3)
  dp=$(free_range 3)
  svc_server --service "game=127.0.0.1:$lp-$((lp + 2))"
  local i
  for i in 0 1 2; do
    start_dest -n "dest-$i" echo --port "$((dp + i))" --count-file "$BATS_TEST_TMPDIR/count-$i"
  done
  svc_client client --service "game=127.0.0.1:$dp-$((dp + 2))"
  need_services client
  echo_count "$lp" 1
  echo_count "$((lp + 1))" 2
  echo_count "$((lp + 2))" 3
  for i in 0 1 2; do
    assert "$(count_of "$BATS_TEST_TMPDIR/count-$i")" == "$((i + 1))" "port $((lp + i)) -> $((dp + i))"
  done
  stop_all_checked
}

@test "a port beyond the client's shorter range is refused by the client, which connects nothing" {
  local lp dp
  lp=$(free_range 3)
  dp=$(free_range 3)
  svc_server --service "game=127.0.0.1:$lp-$((lp + 2))"
  local i
  for i in 0 1 2; do
    start_dest -n "dest-$i" echo --port "$((dp + i))" --count-file "$BATS_TEST_TMPDIR/count-$i"
  done
  svc_client client --service "game=127.0.0.1:$dp-$((dp + 1))"
  need_services client
  echo_count "$((lp + 1))" 1
  local n
  for n in 1 2; do
    probe 127.0.0.1 "$((lp + 2))" --send "x" --timeout 10
    assert "${lines[0]}" =~ "recv=0 end=(eof|reset)" "offset 2 closed"
  done
  wait_for_log_of client 'service "game" port offset 2, which this client does not serve' 5
  assert "$(grep -c 'which this client does not serve' "$(log_of client)")" == 1 "logged once"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-2")" == 0 "nothing connected to $((dp + 2))"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-1")" == 1 "offset 1 went to $((dp + 1))"
  stop_all_checked
}

@test "a service the server does not have is refused and logged once on both sides" {
  local pa
  pa=$(free_port)
  svc_server --service "a=127.0.0.1:$pa"
  start_dest -n dest-a echo
  local da=$DEST_PORT
  start_dest -n dest-x echo --count-file "$BATS_TEST_TMPDIR/count-x"
  svc_client client --service "a=127.0.0.1:$da" --service "x=127.0.0.1:$DEST_PORT"
  need_services client
  wait_for_log_of client 'refused service "x"' 5
  wait_for_log_of server 'declared service "x", which this server does not have' 5
  echo_count "$pa" 3
  assert "$(grep -c 'refused service "x"' "$(log_of client)")" == 1 "client: once"
  assert "$(grep -c 'declared service "x"' "$(log_of server)")" == 1 "server: once"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-x")" == 0 "nothing reached x"
  stop_all_checked
}

# old_bins: the binaries from before named services (PRD_BIN_DIR_OLD), or
# skip.
old_bins() {
  OLD_BIN=${PRD_BIN_DIR_OLD:-}
  [[ -n $OLD_BIN && -x $OLD_BIN/portredirect_server &&
    -x $OLD_BIN/portredirect_client ]] ||
    skip "PRD_BIN_DIR_OLD is not set: no build from before named services"
}

@test "old server, new client with services: it warns once and serves default" {
  old_bins
  local p1
  p1=$(free_port)
  PRD_SERVER=$OLD_BIN/portredirect_server svc_server --local-host 127.0.0.1 --local-port "$p1"
  start_dest echo
  local d=$DEST_PORT
  start_dest -n dest-w echo
  svc_client client --destination-port "$d" --service "web=127.0.0.1:$DEST_PORT"
  wait_tunnel_up client
  wait_for_log_of client "the server at 127.0.0.1:$QUIC_PORT does not support named services \(an older portredirect_server\): serving only default" 5
  echo_ok "$p1"
  assert "$(grep -c 'does not support named services' "$(log_of client)")" == 1 "warned once"
  stop_all_checked
}

@test "new server with services, old client: default goes through, the others wait" {
  old_bins
  local p1 pw
  p1=$(free_port) pw=$(free_port)
  # The services from a --config file this time.
  printf '# two services\nlocal-port = %s\nservice = web=127.0.0.1:%s\n' "$p1" "$pw" \
    >"$BATS_TEST_TMPDIR/server.conf"
  svc_server --config "$BATS_TEST_TMPDIR/server.conf"
  wait_for_log_of server "TCP listening on 127.0.0.1:$pw for service \"web\"" 5
  start_dest echo
  PRD_CLIENT=$OLD_BIN/portredirect_client svc_client client --destination-port "$DEST_PORT"
  wait_tunnel_up client
  echo_ok "$p1"
  probe 127.0.0.1 "$pw" --send "x" --timeout 10
  assert "${lines[0]}" =~ "end=(eof|reset)" "closed by the server"
  wait_for_log_of server 'no client serves service "web"' 5
  stop_all_checked
}

@test "allow=: a source outside a service's allowlist is closed at accept, logged once, counted; one inside passes" {
  local p open mp
  p=$(free_port) open=$(free_port) mp=$(free_port)
  svc_server --service "priv=127.0.0.1:$p,allow=127.0.0.2/32" \
    --service "open=127.0.0.1:$open" --metrics-listen "127.0.0.1:$mp"
  start_dest echo
  svc_client client --service "priv=127.0.0.1:$DEST_PORT" \
    --service "open=127.0.0.1:$DEST_PORT"
  need_services client
  local i el
  for i in 1 2 3; do
    probe 127.0.0.1 "$p" --send "x" --timeout 10
    assert "${lines[0]}" =~ "^recv=0 end=(eof|reset)" "127.0.0.1 is closed"
    el=${lines[0]##*elapsed=}
    el=${el%% *}
    awk -v e="$el" 'BEGIN { exit !(e < 1) }' ||
      die "closed after $el s: not at accept"
  done
  # From 127.0.0.2 it passes; the service without allow= takes anyone.
  local msg="allowed $RANDOM"
  probe 127.0.0.1 "$p" --source 127.0.0.2 --send "$msg\n" --shut-wr --timeout 10
  assert "${lines[0]}" =~ "^recv=$((${#msg} + 1)) end=eof " "127.0.0.2 passes"
  echo_ok "$open"
  wait_for_log_of server 'refused a connection from 127\.0\.0\.1:[0-9]+ to service "priv": not in its allow list' 5
  local n
  n=$(grep -c 'to service "priv": not in its allow list' "$(log_of server)")
  assert "$n" == 1 "three refusals, one line (rate-limited)"
  wait_metric "127.0.0.1:$mp" 'portredirect_service_connections_refused_total{service="priv",reason="allowlist"}' -eq 3 10
  assert "$(metric 'portredirect_service_connections_refused_total{service="open",reason="allowlist"}')" == 0 "open: none refused"
  assert "$(metric 'portredirect_service_connections_accepted_total{service="priv"}')" == 1 "priv: the allowed one only"
  stop_all_checked
}

@test "allow=: IPv6 prefixes on ::1" {
  skip_without_ipv6
  local p6 no6
  p6=$(free_port) no6=$(free_port)
  svc_server --service "v6=[::1]:$p6,allow=::1/128" \
    --service "no6=[::1]:$no6,allow=2001:db8::/32,allow=127.0.0.0/8"
  start_dest echo
  svc_client client --service "v6=127.0.0.1:$DEST_PORT" \
    --service "no6=127.0.0.1:$DEST_PORT"
  need_services client
  echo_ok "$p6" ::1
  probe ::1 "$no6" --send "x" --timeout 10
  assert "${lines[0]}" =~ "^recv=0 end=(eof|reset)" "::1 is not in no6's list"
  wait_for_log_of server 'refused a connection from \[::1\]:[0-9]+ to service "no6"' 5
  stop_all_checked
}

# start_tls_sites PORT_A PORT_B: nginx with TLS (a self-signed certificate
# for a.example and b.example) answering "site a" on 127.0.0.1:PORT_A and
# "site b" on PORT_B.
start_tls_sites() {
  local d=$BATS_TEST_TMPDIR/nginx
  mkdir -p "$d/tmp" "$d/logs"
  run_helper openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -nodes -subj /CN=a.example -days 2 \
    -addext "subjectAltName=DNS:a.example,DNS:b.example" \
    -keyout "$d/key.pem" -out "$d/cert.pem"
  cat >"$d/nginx.conf" <<NGX
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log info;
events { worker_connections 64; }
http {
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  access_log $d/logs/access.log;
  ssl_certificate $d/cert.pem;
  ssl_certificate_key $d/key.pem;
  server { listen 127.0.0.1:$1 ssl; location / { default_type text/plain; return 200 "site a \$ssl_server_name\n"; } }
  server { listen 127.0.0.1:$2 ssl; location / { default_type text/plain; return 200 "site b \$ssl_server_name\n"; } }
}
NGX
  start_tool nginx nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf"
  local end=$((SECONDS + 15))
  until "$PRD_PYTHON" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
    "$1" 2>/dev/null; do
    ((SECONDS < end)) || die "nginx does not accept on $1"
    sleep 0.1
  done
}

@test "sni=: two names on one port to two TLS destinations (nginx), the ClientHello passed unchanged; an unknown name without a default is closed" {
  command -v nginx >/dev/null || skip "no nginx"
  local pa pb sh
  pa=$(free_port) pb=$(free_port) sh=$(free_port)
  start_tls_sites "$pa" "$pb"
  svc_server --service "a=127.0.0.1:$sh,sni=a.example" \
    --service "b=127.0.0.1:$sh,sni=B.example"
  svc_client client --service "a=127.0.0.1:$pa" --service "b=127.0.0.1:$pb"
  need_services client
  local i
  for i in 1 2; do
    run_helper curl -sS -k --max-time 15 --resolve "a.example:$sh:127.0.0.1" "https://a.example:$sh/"
    assert "$output" == "site a a.example" "a.example to a"
    run_helper curl -sS -k --max-time 15 --resolve "b.example:$sh:127.0.0.1" "https://b.example:$sh/"
    assert "$output" == "site b b.example" "b.example to b"
  done
  run curl -sS -k --max-time 15 --resolve "c.example:$sh:127.0.0.1" "https://c.example:$sh/"
  ((status != 0)) || die "c.example got an answer: $output"
  wait_for_log_of server 'no service for TLS server name "c\.example" and no default' 5
  stop_all_checked
}

@test "host=: HTTP Host routing to two http.servers, the default for other hosts; services sharing an address need sni=/host=" {
  local www p sh
  local -a cargs=()
  sh=$(free_port)
  for s in a b c; do
    www=$BATS_TEST_TMPDIR/www-$s
    mkdir -p "$www"
    echo "site $s" >"$www/index.html"
    p=$(free_port)
    start_tool "http-$s" "$PRD_PYTHON" -u -m http.server --bind 127.0.0.1 \
      --directory "$www" "$p"
    wait_for_log "$(log_of "http-$s")" "Serving HTTP" 10
    cargs+=(--service "$s=127.0.0.1:$p")
  done
  svc_server --service "a=127.0.0.1:$sh,host=a.example" \
    --service "b=127.0.0.1:$sh,host=b.example" --service "c=127.0.0.1:$sh"
  svc_client client "${cargs[@]}"
  need_services client
  run_helper curl -sS --max-time 15 -H "Host: a.example" "http://127.0.0.1:$sh/"
  assert "$output" == "site a" "Host: a.example"
  run_helper curl -sS --max-time 15 -H "Host: B.Example:8080" "http://127.0.0.1:$sh/"
  assert "$output" == "site b" "Host: B.Example:8080"
  run_helper curl -sS --max-time 15 "http://127.0.0.1:$sh/"
  assert "$output" == "site c" "another host: the default"
  # absolute-form (through a proxy): its authority, to a (whose
  # http.server answers such a target with a 404).
  run curl -sS --max-time 15 --proxy "http://127.0.0.1:$sh" "http://a.example/"
  wait_for_log "$(log_of http-a)" '"GET http://a\.example/ HTTP/1\.1" 404' 5
  stop_all_checked

  run timeout 20 "$PRD_BIN_DIR/portredirect_server" \
    --config-dir "$BATS_TEST_TMPDIR/cd" --quic-psk k \
    --quic-server-port "$(free_port)" \
    --service "x=127.0.0.1:$sh" --service "y=127.0.0.1:$sh"
  assert "$status" == 1 "two defaults on one address"
  assert "$output" =~ 'services "x" and "y" both listen on 127\.0\.0\.1:[0-9]+: give each sni= or host=' "the error"
}

@test "sni=/host= with a default: a user that names nothing, or sends nothing, reaches the default unchanged; a host with no match and no default is closed" {
  local sh sh2
  sh=$(free_port) sh2=$(free_port)
  svc_server --service "a=127.0.0.1:$sh,sni=a.example" \
    --service "plain=127.0.0.1:$sh" --service "h=127.0.0.1:$sh2,host=h.example"
  start_dest -n dest-a echo --count-file "$BATS_TEST_TMPDIR/count-a"
  local pa=$DEST_PORT
  start_dest -n dest-plain echo --count-file "$BATS_TEST_TMPDIR/count-plain"
  svc_client client --service "a=127.0.0.1:$pa" \
    --service "plain=127.0.0.1:$DEST_PORT" --service "h=127.0.0.1:$pa"
  need_services client
  # Not TLS, not HTTP: the default, bytes unchanged.
  echo_ok "$sh"
  # Silent until the peek gives up (5 s): then the default, and what it
  # sends after that arrives.
  run_helper --timeout 30 "$PRD_PYTHON" -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 20)
time.sleep(6)
s.sendall(b"late\n")
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(100)
    if not d:
        break
    got += d
print(got.decode())' "$sh"
  assert "$output" == "late" "the silent user reached the default"
  assert "$(count_of "$BATS_TEST_TMPDIR/count-plain")" == 2 "both went to the default"
  # host= without a default: a request for another host is closed.
  probe 127.0.0.1 "$sh2" --send "GET / HTTP/1.1\r\nHost: x.example\r\n\r\n" --timeout 10
  assert "${lines[0]}" =~ "^recv=0 end=(eof|reset)" "closed"
  wait_for_log_of server 'no service for HTTP host "x\.example" and no default' 5
  stop_all_checked
}
