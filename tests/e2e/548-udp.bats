#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 19, UDP services over QUIC DATAGRAM frames (README "UDP services";
# spec/10-udp.md): dnsmasq answers dig through the tunnel; iperf3 -u with
# its TCP control connection on a TCP service of the same tunnel; 1,000
# concurrent users each get only their own replies; flows expire; a
# datagram too large for the path is dropped and counted; the metrics pass
# promtool.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

# udp_server ARGS...: a server on a fresh PSK and QUIC port with a TCP
# service default (start_server waits for it) and ARGS, metrics on $SM.
udp_server() {
  new_psk
  QUIC_PORT=$(free_port)
  SM=127.0.0.1:$(free_port)
  start_server --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --local-host 127.0.0.1 \
    --local-port "$(free_port)" --metrics-listen "$SM" "$@"
  wait_for_log_of server 'UDP listening on ' 5
}

# udp_client ARGS...: its client, metrics on $CM; waits for the tunnel.
udp_client() {
  CM=127.0.0.1:$(free_port)
  copy_cert server client
  start_client --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --destination-port "$(free_port)" \
    --metrics-listen "$CM" "$@"
  wait_tunnel_up client
}

# udp_echo: a UDP echo destination (tests/tools/udpusers.py); sets UDP_DEST.
udp_echo() {
  start_tool udpecho "$PRD_PYTHON" "$PRD_TOOLS/udpusers.py" echo
  wait_for_log "$(log_of udpecho)" '^listening ' 10
  UDP_DEST=$(awk '/^listening /{print $3; exit}' "$(log_of udpecho)")
}

users() {
  run_helper --timeout 120 "$PRD_PYTHON" "$PRD_TOOLS/udpusers.py" users "$@"
}

@test "dig through the tunnel: dnsmasq answers 500 queries, all of them" {
  skip_without dnsmasq dnsmasq-base
  skip_without dig bind9-dnsutils
  local dp up
  dp=$(free_port) up=$(free_port)
  # dnsmasq as this user on a high port of 127.0.0.53-ish, one static
  # record, no upstream, no system files.
  start_tool dnsmasq dnsmasq --keep-in-foreground --conf-file=/dev/null \
    --no-resolv --no-hosts --no-poll --bind-interfaces \
    --listen-address=127.0.0.42 --port="$dp" --pid-file= \
    --user="$(id -un)" --group="$(id -gn)" --log-facility=- \
    --host-record=web.portredirect.test,192.0.2.55
  wait_for_log "$(log_of dnsmasq)" 'started' 10
  udp_server --service "dns=udp:127.0.0.1:$up"
  udp_client --service "dns=udp:127.0.0.42:$dp"
  for _ in $(seq 500); do
    echo "web.portredirect.test A"
  done >"$BATS_TEST_TMPDIR/queries"
  run_helper --timeout 120 dig @127.0.0.1 -p "$up" +short +tries=3 +time=2 \
    -f "$BATS_TEST_TMPDIR/queries"
  assert "$(grep -c '^192\.0\.2\.55$' <<<"$output")" == 500 "answers"
  wait_metric "$SM" 'portredirect_udp_datagrams_total{service="dns",direction="down"}' -ge 500 10
  stop_all_checked
}

@test "iperf3 -u through a UDP service, its control connection through a TCP service of the same tunnel" {
  skip_without iperf3
  local ip p
  ip=$(free_port) p=$(free_port)
  start_tool iperf3 iperf3 -s -B 127.0.0.1 -p "$ip"
  sleep 0.5
  udp_server --service "perf=127.0.0.1:$p" --service "perfu=udp:127.0.0.1:$p"
  udp_client --service "perf=127.0.0.1:$ip" --service "perfu=udp:127.0.0.1:$ip"
  run_helper --timeout 60 iperf3 -c 127.0.0.1 -p "$p" -u -b 20M -l 1200 \
    -t 3 -J
  local lost
  lost=$("$PRD_PYTHON" -c 'import json,sys; d=json.load(sys.stdin); s=d["end"]["sum"]; print("%d %d" % (s["lost_packets"], s["packets"]))' <<<"$output")
  echo "# iperf3 -u 20 Mbit/s: lost/packets $lost" >&3
  local l=${lost% *} n=${lost#* }
  ((n > 5000)) || die "iperf3 sent only $n packets"
  ((l * 100 <= n)) || die "lost $l of $n packets (more than 1 %)"
  assert "$(curl -fsS "http://$SM/metrics" | awk '$1 == "portredirect_service_connections_accepted_total{service=\"perf\"}" {print $2}')" -ge 1 "the control connection went through the TCP service"
  stop_all_checked
}

@test "1,000 concurrent users each get only their own replies" {
  local up
  up=$(free_port)
  udp_echo
  udp_server --service "echo=udp:127.0.0.1:$up"
  udp_client --service "echo=udp:127.0.0.1:$UDP_DEST"
  users 127.0.0.1 "$up" --users 1000 --count 2 --rounds 2 --timeout 20
  echo "# $output" >&3
  assert "${lines[0]}" =~ "received=4000 foreign=0 bad=0" "every reply to its own user"
  wait_metric "$SM" 'portredirect_udp_flows_active{service="echo"}' -eq 1000 5
  wait_metric "$CM" 'portredirect_udp_flows_active{service="echo"}' -eq 1000 5
  stop_all_checked
}

@test "flows expire: timeout= without replies, stream-timeout= with" {
  local up sink
  up=$(free_port) sink=$(free_port)
  udp_echo
  udp_server --service "echo=udp:127.0.0.1:$up,timeout=1,stream-timeout=3" \
    --service "sink=udp:127.0.0.1:$sink,timeout=1"
  udp_client --service "echo=udp:127.0.0.1:$UDP_DEST,timeout=1,stream-timeout=3" \
    --service "sink=udp:127.0.0.1:$(free_port),timeout=1"
  users 127.0.0.1 "$up" --users 5
  assert "${lines[0]}" =~ "received=5 " "echoed"
  # No replies from the sink's destination: one-way flows.
  run_helper --rc 1 "$PRD_PYTHON" "$PRD_TOOLS/udpusers.py" users 127.0.0.1 \
    "$sink" --users 3 --timeout 0.5
  wait_metric "$SM" 'portredirect_udp_flows_active{service="sink"}' -eq 3 5
  wait_metric "$SM" 'portredirect_udp_flows_active{service="echo"}' -eq 5 5
  # One-way flows go after about 1 s, replied ones after about 3 s.
  wait_metric "$SM" 'portredirect_udp_flows_active{service="sink"}' -eq 0 4
  wait_metric "$CM" 'portredirect_udp_flows_active{service="sink"}' -eq 0 4
  assert "$(metric 'portredirect_udp_flows_active{service="echo"}')" == 5 "replied flows still there"
  wait_metric "$SM" 'portredirect_udp_flows_active{service="echo"}' -eq 0 6
  wait_metric "$CM" 'portredirect_udp_flows_active{service="echo"}' -eq 0 6
  # A user after expiry gets a new flow and its replies.
  users 127.0.0.1 "$up" --users 5
  assert "${lines[0]}" =~ "received=5 " "echoed again"
  stop_all_checked
}

@test "a datagram too large for the path is dropped and counted, the largest one passes (spec/10-udp.md §5)" {
  local up
  up=$(free_port)
  udp_echo
  # 1,500-byte QUIC datagrams, no path MTU discovery: a DATAGRAM frame
  # carries 1500 - 40 = 1460 bytes; FLOW_OPEN for "dns", an IPv4 user and
  # flow 0 or 1 takes 14 of them: 1,446 bytes of user datagram.
  udp_server --service "dns=udp:127.0.0.1:$up" --max-udp-payload 1500
  udp_client --service "dns=udp:127.0.0.1:$UDP_DEST" --max-udp-payload 1500
  run_helper "$PRD_PYTHON" "$PRD_TOOLS/udpusers.py" send 127.0.0.1 "$up" --size 1446
  assert "$output" == "reply=1446" "the largest datagram"
  run_helper "$PRD_PYTHON" "$PRD_TOOLS/udpusers.py" send 127.0.0.1 "$up" --size 1447
  assert "$output" == "reply=none" "one byte more"
  wait_metric "$SM" 'portredirect_udp_dropped_total{service="dns",reason="oversize"}' -eq 1 5
  stop_all_checked
}

@test "UDP metrics pass promtool on both binaries" {
  skip_without promtool prometheus
  local up addr
  up=$(free_port)
  udp_echo
  udp_server --service "echo=udp:127.0.0.1:$up"
  udp_client --service "echo=udp:127.0.0.1:$UDP_DEST"
  users 127.0.0.1 "$up" --users 3
  for addr in "$SM" "$CM"; do
    curl -fsS "http://$addr/metrics" >"$BATS_TEST_TMPDIR/m.txt"
    grep -q 'portredirect_udp_datagrams_total{service="echo",direction="up"} 3' "$BATS_TEST_TMPDIR/m.txt" ||
      die "$addr: no UDP datagram counts"
    run_helper bash -c "promtool check metrics <'$BATS_TEST_TMPDIR/m.txt' 2>&1"
    assert "$output" == "" "$addr: promtool has nothing to say"
  done
  stop_all_checked
}

@test "bad UDP service values are one-line errors" {
  run_helper --rc 2 "$PRD_SERVER" --quic-psk x --service "dns=udp:127.0.0.1:53,sni=a.example"
  assert "${lines[0]}" =~ "unknown attribute" "sni= on a UDP service"
  run_helper --rc 2 "$PRD_CLIENT" --quic-psk x --service "dns=udp:127.0.0.1:53,timeout=0"
  assert "${lines[0]}" =~ "invalid timeout" "timeout=0"
}

@test "flow limits: past 1,024 flows of a service new users are dropped and counted" {
  local up
  up=$(free_port)
  udp_echo
  udp_server --service "echo=udp:127.0.0.1:$up"
  udp_client --service "echo=udp:127.0.0.1:$UDP_DEST"
  run_helper --rc 1 --timeout 120 "$PRD_PYTHON" "$PRD_TOOLS/udpusers.py" \
    users 127.0.0.1 "$up" --users 1100 --timeout 5
  assert "${lines[0]}" =~ "received=1024 foreign=0 bad=0" "1,024 flows answered"
  wait_metric "$SM" 'portredirect_udp_flows_active{service="echo"}' -eq 1024 5
  wait_metric "$SM" 'portredirect_udp_dropped_total{service="echo",reason="flow_limit"}' -eq 76 5
  stop_all_checked
}

@test "a flow the client forgot is reopened: FLOW_CLOSE, then FLOW_OPEN again" {
  local up
  up=$(free_port)
  udp_echo
  udp_server --service "echo=udp:127.0.0.1:$up"
  # The client forgets its flows after 1 s; the server keeps them.
  udp_client --service "echo=udp:127.0.0.1:$UDP_DEST,timeout=1,stream-timeout=1"
  run_helper --rc any "$PRD_PYTHON" "$PRD_TOOLS/udpusers.py" users 127.0.0.1 \
    "$up" --users 4 --rounds 3 --pause 2.5 --timeout 2 --keep-going
  assert "${lines[0]}" == "round=0 received=4/4" "before the client forgot"
  # Round 1 went as FLOW_DATA to flows the client no longer had: dropped,
  # answered with FLOW_CLOSE; round 2 reopened them.
  assert "${lines[2]}" == "round=2 received=4/4" "after FLOW_CLOSE"
  wait_metric "$CM" 'portredirect_udp_dropped_total{service="echo",reason="unknown_flow"}' -ge 1 5
  stop_all_checked
}

# old_bin ROLE: sets OLD to PRD_BIN_DIR_OLD's portredirect_ROLE (a build
# from before named services), or skips the test.
old_bin() {
  local o=${PRD_BIN_DIR_OLD:-}
  [[ -n $o ]] || skip "PRD_BIN_DIR_OLD is not set"
  [[ $o == /* ]] || o=$PRD_ROOT/$o
  [[ -x $o/portredirect_$1 ]] || die "PRD_BIN_DIR_OLD=$o has no portredirect_$1"
  OLD=$o/portredirect_$1
}

@test "old client, new server with a UDP service: TCP goes through, UDP users are dropped as no_client" {
  local up
  old_bin client
  up=$(free_port)
  start_dest echo
  udp_server --service "dns=udp:127.0.0.1:$up"
  PRD_CLIENT=$OLD
  copy_cert server client
  start_client --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --destination-port "$DEST_PORT"
  wait_tunnel_up client
  local tcp
  tcp=$(awk '/TCP listening on/ {print $NF; exit}' "$(log_of server)")
  echo_ok "${tcp##*:}"
  run_helper --rc 1 "$PRD_PYTHON" "$PRD_TOOLS/udpusers.py" users 127.0.0.1 \
    "$up" --users 2 --timeout 0.5
  wait_metric "$SM" 'portredirect_udp_dropped_total{service="dns",reason="no_client"}' -eq 2 5
  stop_all_checked
}

@test "old server, new client with a UDP service: it serves default over TCP" {
  old_bin server
  start_dest echo
  new_psk
  QUIC_PORT=$(free_port)
  local lp
  lp=$(free_port)
  PRD_SERVER=$OLD
  start_server --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --local-host 127.0.0.1 --local-port "$lp"
  copy_cert server client
  start_client --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --destination-port "$DEST_PORT" \
    --service "dns=udp:127.0.0.1:$(free_port)"
  wait_tunnel_up client
  echo_ok "$lp"
  stop_all_checked
}

@test "SIGHUP: UDP services keep their sockets and flows; a changed one is a WARN, the TCP part applies" {
  local up p1 p2 conf=$BATS_TEST_TMPDIR/server.conf
  up=$(free_port) p1=$(free_port) p2=$(free_port)
  udp_echo
  start_dest echo
  printf '%s\n' "service = echo=udp:127.0.0.1:$up" "service = a=127.0.0.1:$p1" >"$conf"
  udp_server --config "$conf"
  udp_client --service "echo=udp:127.0.0.1:$UDP_DEST" \
    --service "a=127.0.0.1:$DEST_PORT" --service "b=127.0.0.1:$DEST_PORT"
  users 127.0.0.1 "$up" --users 5
  assert "${lines[0]}" =~ "foreign=0 bad=0" "UDP before the reload"
  printf '%s\n' "service = echo=udp:127.0.0.1:$up,timeout=5" \
    "service = a=127.0.0.1:$p1" "service = b=127.0.0.1:$p2" >"$conf.new"
  mv "$conf.new" "$conf"
  kill -HUP "$(pid_of server)"
  wait_for_log_of server 'WARN .*reload: a UDP service .* changed; restart to apply' 5
  wait_for_log_of server 'INFO .*reload: 4 services \(\+1 -0 ~0\)' 5
  sleep 0.3
  echo_ok "$p2"
  users 127.0.0.1 "$up" --users 5
  assert "${lines[0]}" =~ "foreign=0 bad=0" "UDP after the reload"
  # The server's log has the WARN, no ERROR.
  stop_all_checked
}

@test "a reload that takes a UDP service from a client: its flows go to it no more" {
  local up
  up=$(free_port)
  udp_echo
  clients_file "alice psk-file=$(key alice) services=*
"
  udp_server --clients-file "$CLIENTS_FILE" --service "echo=udp:127.0.0.1:$up"
  copy_cert server client
  start_client --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$(key alice)" --client-name alice \
    --destination-port "$(free_port)" --service "echo=udp:127.0.0.1:$UDP_DEST"
  wait_tunnel_up client
  start_tool users "$PRD_PYTHON" "$PRD_TOOLS/udpusers.py" users 127.0.0.1 \
    "$up" --users 4 --rounds 2 --pause 4 --timeout 2 --keep-going
  wait_for_log "$(log_of users)" '^round=0 received=4/4' 10
  # spec/03-auth.md §4.1: alice may no longer serve echo.
  clients_file "alice psk-file=$(key alice) services=default
"
  kill -HUP "$(pid_of server)"
  wait_for_log_of server 'INFO .*reload: [0-9]+ services' 5
  wait_for_log "$(log_of users)" '^round=1 ' 15
  grep -q '^round=1 received=0/4' "$(log_of users)" ||
    die "the flows of a service the client lost still reach it: $(grep '^round=1' "$(log_of users)")"
  wait_metric "$SM" 'portredirect_udp_dropped_total{service="echo",reason="no_client"}' -ge 4 5
  stop_all_checked
}
