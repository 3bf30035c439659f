#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 6 item 3, PROXY protocol: with --proxy-protocol v1|v2 the client
# writes the user's real source and destination addresses before any
# payload, exactly as the HAProxy specification says. Checked with real
# consumers: nginx (listen ... proxy_protocol; $proxy_protocol_addr) and
# HAProxy (bind ... accept-proxy; %ci). The user connects from 127.0.0.2 (or
# ::1) with a fixed source port, so the address the consumer reports can
# only have come from the header: its TCP peer is the client at 127.0.0.1.
# CI installs nginx-light and haproxy; without them these tests skip.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

# wait_tcp HOST PORT [TIMEOUT]: waits until HOST:PORT accepts.
wait_tcp() {
  local host=$1 port=$2 t=${3:-10}
  local end=$((SECONDS + t))
  until "$PRD_PYTHON" -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' \
    "$host" "$port" 2>/dev/null; do
    ((SECONDS < end)) || {
      die "nothing accepts on $host:$port after $t s"
      return 1
    }
    sleep 0.1
  done
}

# start_nginx: nginx in the foreground on 127.0.0.1:$PP_PORT with
# proxy_protocol; each request is answered with what nginx learned from the
# header, and logged to $BATS_TEST_TMPDIR/nginx/access.log.
start_nginx() {
  local d=$BATS_TEST_TMPDIR/nginx
  mkdir -p "$d/tmp" "$d/logs"
  PP_PORT=$(free_port)
  cat >"$d/nginx.conf" <<EOF
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
  log_format pp 'pp=\$proxy_protocol_addr:\$proxy_protocol_port peer=\$remote_addr';
  access_log $d/logs/access.log pp;
  server {
    listen 127.0.0.1:$PP_PORT proxy_protocol;
    location / {
      default_type text/plain;
      return 200 "user=\$proxy_protocol_addr port=\$proxy_protocol_port server=\$proxy_protocol_server_addr:\$proxy_protocol_server_port peer=\$remote_addr\n";
    }
  }
}
EOF
  start_tool nginx nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf"
  wait_tcp 127.0.0.1 "$PP_PORT" 15
}

# start_haproxy: HAProxy in the foreground on 127.0.0.1:$PP_PORT with
# accept-proxy (v1 and v2), answering with the addresses it learned.
start_haproxy() {
  local d=$BATS_TEST_TMPDIR/haproxy
  mkdir -p "$d"
  PP_PORT=$(free_port)
  cat >"$d/haproxy.cfg" <<EOF
defaults
  mode http
  timeout connect 5s
  timeout client 20s
  timeout server 20s
frontend pp
  bind 127.0.0.1:$PP_PORT accept-proxy
  http-request return status 200 content-type text/plain lf-string "user=%ci port=%cp server=%fi:%fp\n"
EOF
  start_tool haproxy haproxy -db -f "$d/haproxy.cfg"
  wait_tcp 127.0.0.1 "$PP_PORT" 15
}

# tunnel_to_pp V [SERVER_LOCAL_HOST]: a server (users on 127.0.0.1, or the
# given host) and a client with --proxy-protocol V (none: no option) in
# front of $PP_PORT.
tunnel_to_pp() {
  local v=$1 lh=${2:-127.0.0.1}
  new_psk
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host "$lh" --local-port "$SRV_PORT" --quic-server-host 127.0.0.1 \
    --quic-server-port "$QUIC_PORT" --quic-psk-file "$PSK_FILE"
  copy_cert server client
  local -a pp=()
  [[ $v == none ]] || pp=(--proxy-protocol "$v")
  start_client --destination-port "$PP_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" "${pp[@]}"
  wait_tunnel_up
}

# user_get FROM_HOST FROM_PORT TO_HOST: curl through the tunnel from
# FROM_HOST:FROM_PORT; sets $output.
user_get() {
  local to=$3
  [[ $to == *:* ]] && to="[$to]"
  run_helper curl -sS --max-time 15 --interface "$1" --local-port "$2" \
    "http://$to:$SRV_PORT/whoami"
}

# user_port: a free TCP port to use as the user's source port.
user_port() {
  free_port
}

@test "nginx behind --proxy-protocol v1 sees the user's address and port" {
  skip_without nginx nginx-light
  start_nginx
  tunnel_to_pp v1
  local up
  up=$(user_port)
  user_get 127.0.0.2 "$up" 127.0.0.1
  assert "$output" == "user=127.0.0.2 port=$up server=127.0.0.1:$SRV_PORT peer=127.0.0.1" \
    "nginx's \$proxy_protocol_addr/_port and _server_addr/_port"
  wait_for_log "$BATS_TEST_TMPDIR/nginx/logs/access.log" "^pp=127\.0\.0\.2:$up peer=127\.0\.0\.1\$" 5
  stop_all_checked
}

@test "nginx behind --proxy-protocol v2 sees the user's address and port" {
  skip_without nginx nginx-light
  start_nginx
  tunnel_to_pp v2
  local up
  up=$(user_port)
  user_get 127.0.0.2 "$up" 127.0.0.1
  assert "$output" == "user=127.0.0.2 port=$up server=127.0.0.1:$SRV_PORT peer=127.0.0.1" \
    "nginx's \$proxy_protocol_addr/_port and _server_addr/_port"
  wait_for_log "$BATS_TEST_TMPDIR/nginx/logs/access.log" "^pp=127\.0\.0\.2:$up peer=127\.0\.0\.1\$" 5
  stop_all_checked
}

@test "nginx: an IPv6 user through v1 and v2" {
  skip_without nginx nginx-light
  skip_without_ipv6
  start_nginx
  local v up
  for v in v1 v2; do
    tunnel_to_pp "$v" ::1
    up=$(user_port)
    user_get ::1 "$up" ::1
    assert "$output" == "user=::1 port=$up server=::1:$SRV_PORT peer=127.0.0.1" \
      "nginx learned the IPv6 user through $v"
    stop client
    stop server
  done
  assert_no_error_lines
  assert_no_sanitizer_reports
}

@test "nginx with proxy_protocol refuses a client without --proxy-protocol (control)" {
  skip_without nginx nginx-light
  start_nginx
  tunnel_to_pp none
  run_helper --rc '!0' curl -sS --max-time 15 "http://127.0.0.1:$SRV_PORT/whoami"
  assert "$output" !~ "user=" "no answer without a PROXY header"
  wait_for_log "$BATS_TEST_TMPDIR/nginx/logs/error.log" "broken header" 5
}

@test "HAProxy behind --proxy-protocol v1 sees the user's address and port" {
  skip_without haproxy
  start_haproxy
  tunnel_to_pp v1
  local up
  up=$(user_port)
  user_get 127.0.0.2 "$up" 127.0.0.1
  assert "$output" == "user=127.0.0.2 port=$up server=127.0.0.1:$SRV_PORT" "HAProxy's %ci %cp %fi %fp"
  stop_all_checked
}

@test "HAProxy behind --proxy-protocol v2 sees the user's address and port (IPv4 and IPv6)" {
  skip_without haproxy
  start_haproxy
  tunnel_to_pp v2 ::
  local up
  up=$(user_port)
  # An IPv4 user on a server listening on :: (mapped, sent as AF_INET).
  user_get 127.0.0.2 "$up" 127.0.0.1
  assert "$output" == "user=127.0.0.2 port=$up server=127.0.0.1:$SRV_PORT" "HAProxy's %ci %cp %fi %fp"
  if ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/128'; then
    up=$(user_port)
    user_get ::1 "$up" ::1
    assert "$output" == "user=::1 port=$up server=::1:$SRV_PORT" "HAProxy learned the IPv6 user"
  fi
  stop_all_checked
}

@test "the v1 line is byte for byte the user's source and the server's address" {
  start_dest eofecho
  new_psk
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE"
  copy_cert server client
  start_client --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --proxy-protocol v1
  wait_tunnel_up
  local up
  up=$(user_port)
  # The user sends at once, in two pieces, and half-closes; the destination
  # (eofecho) returns exactly what it read.
  run_helper bash -c "{ printf 'GET / HTTP/1.0\r\n'; sleep 0.2; printf 'Host: x\r\n\r\n'; } |
    socat -t 10 - TCP:127.0.0.1:$SRV_PORT,bind=127.0.0.2:$up >'$BATS_TEST_TMPDIR/got'"
  printf 'PROXY TCP4 127.0.0.2 127.0.0.1 %s %s\r\nGET / HTTP/1.0\r\nHost: x\r\n\r\n' \
    "$up" "$SRV_PORT" >"$BATS_TEST_TMPDIR/want"
  run_helper cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
  stop_all_checked
}
