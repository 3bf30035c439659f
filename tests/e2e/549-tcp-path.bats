#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# The TCP path (spec/11-tcp-path.md): QUIC packets over TCP when UDP is
# blocked. Server and client in two network namespaces of this test's own,
# joined by a veth pair; nftables in the client's namespace drops UDP to the
# server. Needs root (ip netns) and nft; skipped otherwise.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_rel

NS_S=prdq$$s
NS_C=prdq$$c
ADDR_S=10.202.0.1
ADDR_C=10.202.0.2

netns_up() {
  [[ $(id -u) -eq 0 ]] || skip "needs root for ip netns"
  command -v nft >/dev/null 2>&1 || skip "nft (nftables) is missing"
  ip netns add "$NS_S" 2>/dev/null || skip "ip netns add failed"
  ip netns add "$NS_C" || die "ip netns add $NS_C"
  ip link add "${NS_S}v" type veth peer name "${NS_C}v" || die "veth"
  ip link set "${NS_S}v" netns "$NS_S"
  ip link set "${NS_C}v" netns "$NS_C"
  ip -n "$NS_S" addr add "$ADDR_S/30" dev "${NS_S}v"
  ip -n "$NS_C" addr add "$ADDR_C/30" dev "${NS_C}v"
  local ns
  for ns in "$NS_S" "$NS_C"; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "${ns}v" up
  done
  ip netns exec "$NS_C" nft add table inet prd || skip "nft add table failed"
  ip netns exec "$NS_C" nft add chain inet prd out \
    '{ type filter hook output priority 0; }' || die "nft add chain"
}

netns_down() {
  local ns
  for ns in "$NS_S" "$NS_C"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  return 0
}

teardown() {
  prd_teardown
  netns_down
}

# udp_drop: the client's UDP to the server's QUIC port is dropped.
udp_drop() {
  ip netns exec "$NS_C" nft add rule inet prd out ip daddr "$ADDR_S" \
    udp dport "$QUIC_PORT" drop || die "nft add rule"
}

# metric_of NAME: the client's first series of a metric (labels included
# in NAME when given).
metric_of() {
  ip netns exec "$NS_C" curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk -v m="$1" 'index($0, m) == 1 {print $2; exit}'
}

# both_up [SERVER_ARGS...]: the server (with SERVER_ARGS) and a client with
# the seed's own flags, the destination a loadgen echo.
both_up() {
  PSK_FILE=$(_prd_state_dir)/psk
  make_psk "$PSK_FILE"
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  METRICS_PORT=$(free_port)
  PRD_WRAP=(ip netns exec "$NS_C")
  start_loadgen
  PRD_WRAP=(ip netns exec "$NS_S")
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-host "$ADDR_S" --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" "$@"
  copy_cert server client
}

client_up() {
  PRD_WRAP=(ip netns exec "$NS_C")
  start_client --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host "$ADDR_S" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --metrics-listen "127.0.0.1:$METRICS_PORT" \
    "$@"
}

@test "UDP dropped from the start: the tunnel comes up over TCP within 10 s and carries 16 MiB each way intact" {
  netns_up
  both_up
  wait_for_log_of server 'QUIC over TCP .* listening on '
  udp_drop
  local start=$SECONDS
  client_up
  wait_tunnel_up client 10
  assert $((SECONDS - start)) -le 10 "seconds to a tunnel over TCP"
  wait_for_log_of client \
    "no answer over UDP from $ADDR_S:$QUIC_PORT in 3 s; UDP may be blocked; using TCP" 1
  assert "$(grep -c 'UDP may be blocked' "$(log_of client)")" -eq 1 \
    "one fallback warning"
  assert "$(metric_of 'portredirect_quic_path{path="tcp"}')" -eq 1 \
    "the path gauge says tcp"
  assert "$(metric_of portredirect_quic_path_switches_total)" -eq 1 \
    "one switch"

  run_helper --timeout 200 ip netns exec "$NS_S" "$PRD_PYTHON" \
    "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" -n 4 -s $((4 * 1024 * 1024)) \
    --timeout 180
  assert_line "ok 4"
  stop_all_checked
}

# udp_restore: the client's UDP reaches the server again.
udp_restore() {
  ip netns exec "$NS_C" nft flush chain inet prd out || die "nft flush"
}

# bottleneck RATE: a tbf on both ends of the veth, so that transfers last.
bottleneck() {
  local ns
  for ns in "$NS_S" "$NS_C"; do
    ip netns exec "$ns" tc qdisc add dev "${ns}v" root tbf rate "$1" \
      burst 32kb latency 50ms || die "tc tbf in $ns"
  done
}

@test "UDP dropped in the middle of a transfer: the tunnel moves to TCP and the transfer completes intact; UDP restored: back on UDP" {
  netns_up
  command -v tc >/dev/null 2>&1 || skip "tc (iproute2) is missing"
  bottleneck 40mbit
  both_up
  client_up --quic-udp-probe-interval 2
  wait_tunnel_up client 10
  assert "$(metric_of 'portredirect_quic_path{path="udp"}')" -eq 1 "on UDP"

  local xfer_out=$BATS_TEST_TMPDIR/xfer.out
  ip netns exec "$NS_S" "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 \
    "$SRV_PORT" -n 4 -s $((6 * 1024 * 1024)) --timeout 120 \
    >"$xfer_out" 2>&1 &
  local xfer_pid=$!
  sleep 1.5
  udp_drop
  wait_for_log_of client 'no answer over UDP from .* UDP may be blocked; using TCP' 20
  wait "$xfer_pid" || { cat "$xfer_out"; die "xfer failed"; }
  grep -qx "ok 4" "$xfer_out" || { cat "$xfer_out"; die "xfer: not ok 4"; }
  assert "$(metric_of 'portredirect_quic_path{path="tcp"}')" -eq 1 "on TCP"
  # One connection all along: its streams survived the move.
  assert "$(grep -c 'tunnel up' "$(log_of client)")" -eq 1 "tunnels up"

  local start=$SECONDS
  udp_restore
  wait_for_log_of client 'answers again; back on UDP' 60
  echo "# back on UDP after $((SECONDS - start)) s" >&3
  assert "$(metric_of 'portredirect_quic_path{path="udp"}')" -eq 1 "on UDP"
  assert "$(metric_of portredirect_quic_path_switches_total)" -eq 2 "switches"
  echo_ok_in_ns

  # Hysteresis: UDP lost again within a minute of the move back -> TCP,
  # and UDP is probed half as often.
  udp_drop
  echo_ok_in_ns
  wait_for_log_of client 'UDP did not last a minute: probing it every 4 s' 30
  assert "$(metric_of 'portredirect_quic_path{path="tcp"}')" -eq 1 "on TCP"
  assert "$(grep -c 'tunnel up' "$(log_of client)")" -eq 1 "tunnels up"
  stop_all_checked
}

@test "50 % random UDP loss: detected, the tunnel moves to TCP and the transfer completes intact" {
  netns_up
  both_up
  client_up
  wait_tunnel_up client 10
  ip netns exec "$NS_C" nft add rule inet prd out ip daddr "$ADDR_S" \
    udp dport "$QUIC_PORT" numgen random mod 2 == 0 drop || die "nft numgen"
  run_helper --timeout 200 ip netns exec "$NS_S" "$PRD_PYTHON" \
    "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" -n 4 -s $((4 * 1024 * 1024)) \
    --timeout 180
  assert_line "ok 4"
  wait_for_log_of client 'UDP to .* loses [0-9]+ % of packets; UDP may be throttled; using TCP|UDP may be blocked; using TCP' 20
  assert "$(grep -c 'tunnel up' "$(log_of client)")" -eq 1 "tunnels up"
  stop_all_checked
}

@test "--quic-transport tcp: over TCP from the first packet, no UDP tried" {
  netns_up
  both_up
  client_up --quic-transport tcp
  wait_tunnel_up client 5
  ! grep -q 'UDP may be blocked' "$(log_of client)" || die "fallback logged"
  assert "$(metric_of 'portredirect_quic_path{path="tcp"}')" -eq 1 \
    "the path gauge says tcp"
  echo_ok_in_ns
  stop_all_checked
}

# echo_ok_in_ns: one line through the tunnel from the server's namespace.
echo_ok_in_ns() {
  run_helper --timeout 60 ip netns exec "$NS_S" "$PRD_PYTHON" \
    "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" -n 1 -s 65536 --timeout 30
  assert_line "ok 1"
}

@test "a server with --quic-tcp-listen off: the client says the server offers no TCP path" {
  netns_up
  both_up --quic-tcp-listen off
  ! grep -q 'QUIC over TCP' "$(log_of server)" || die "TCP path listening"
  udp_drop
  client_up
  wait_for_log_of client 'UDP may be blocked; using TCP' 10
  wait_for_log_of client \
    "the server at $ADDR_S:$QUIC_PORT offers no TCP path \\(TCP connect: Connection refused\\)" 10
  # Said once, however often the client tries again.
  sleep 8
  assert "$(grep -c 'offers no TCP path' "$(log_of client)")" -eq 1 \
    "one 'no TCP path' message"
  stop_all_checked
}

@test "another service on the TCP port: the preface goes unanswered and the client says the server offers no TCP path" {
  netns_up
  both_up --quic-tcp-listen off
  PRD_WRAP=(ip netns exec "$NS_S")
  start_tool other nc -lk "$ADDR_S" "$QUIC_PORT"
  sleep 0.3
  udp_drop
  client_up
  wait_for_log_of client \
    "the server at $ADDR_S:$QUIC_PORT offers no TCP path \\(no answer to the preface within 3 s\\)" 15
  stop_all_checked
}

# loopback_server: a server on 127.0.0.1 (no namespace needed).
loopback_server() {
  PSK_FILE=$(_prd_state_dir)/psk
  make_psk "$PSK_FILE"
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE"
  wait_for_log_of server "QUIC over TCP .* listening on 127.0.0.1:$QUIC_PORT"
}

# tcp_path_probe BYTES...: sends the bytes (printf escapes) to the TCP path
# and reads what comes back until EOF; sets $output.
tcp_path_probe() {
  local f=$BATS_TEST_TMPDIR/send.bin
  # shellcheck disable=SC2059
  printf "$1" >"$f"
  probe 127.0.0.1 "$QUIC_PORT" --send-file "$f" --timeout 10
}

@test "the server's TCP path: garbage is closed unanswered, a preface answered, framing errors close (spec/11-tcp-path.md §2)" {
  loopback_server
  # §2.1: not a preface (an HTTP request): closed, no answer.
  tcp_path_probe 'GET / HTTP/1.0\r\n\r\n'
  assert "${lines[0]}" =~ "^recv=0 end=eof " "garbage"
  # §2.1: the server answers the preface with its own; §2.2: a record of
  # length 0 then closes the connection.
  tcp_path_probe 'PRD-QOT\001\000\000'
  assert "${lines[0]}" =~ "^recv=8 end=eof " "preface, then length 0"
  assert "${lines[1]}" == "data=b'PRD-QOT\\x01'" "the server's preface"
  # §2.1: another version: the server says which it speaks, and closes.
  tcp_path_probe 'PRD-QOT\002'
  assert "${lines[0]}" =~ "^recv=8 end=eof " "version 2"
  assert "${lines[1]}" == "data=b'PRD-QOT\\x01'" "the server's version"
  # §2.3: a record that is no QUIC packet is dropped; the connection stays
  # (the probe times out waiting).
  tcp_path_probe 'PRD-QOT\001\000\003abc'
  assert "${lines[0]}" =~ "^recv=8 end=timeout " "garbage record"
  stop_all_checked
}

@test "an established tunnel loses UDP and the server has no TCP path: said once, no retry storm" {
  netns_up
  both_up --quic-tcp-listen off
  client_up
  wait_tunnel_up client 10
  udp_drop
  wait_for_log_of client 'no answer over UDP from .* UDP may be blocked; using TCP' 30
  wait_for_log_of client 'the server offers no TCP path: .*; staying on UDP' 10
  sleep 8
  assert "$(grep -c 'UDP may be blocked' "$(log_of client)")" -eq 1 \
    "one fallback warning"
  assert "$(grep -c 'offers no TCP path' "$(log_of client)")" -eq 1 \
    "one 'no TCP path' message"
  stop_all_checked
}

@test "UDP rejected with ICMP rather than dropped: the client moves to TCP at once" {
  netns_up
  both_up
  ip netns exec "$NS_C" nft add rule inet prd out ip daddr "$ADDR_S" \
    udp dport "$QUIC_PORT" reject || die "nft reject"
  local start=$SECONDS
  client_up
  wait_tunnel_up client 5
  assert $((SECONDS - start)) -le 3 "seconds to a tunnel over TCP"
  wait_for_log_of client "UDP to $ADDR_S:$QUIC_PORT refused \\(ICMP\\); UDP may be blocked; using TCP" 1
  echo_ok_in_ns
  stop_all_checked
}

@test "no server at all: refused over UDP and TCP, the client says the server may not be running" {
  netns_up
  PSK_FILE=$(_prd_state_dir)/psk
  make_psk "$PSK_FILE"
  QUIC_PORT=$(free_port)
  METRICS_PORT=$(free_port)
  DEST_PORT=$(free_port)
  PRD_WRAP=(ip netns exec "$NS_C")
  start_client --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host "$ADDR_S" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --trust-on-first-use
  wait_for_log_of client \
    "connection refused by $ADDR_S:$QUIC_PORT over UDP and TCP \\(is the server running\\?\\)" 10
  ! grep -q 'offers no TCP path' "$(log_of client)" || die "'no TCP path' said"
  sleep 3
  assert "$(grep -c 'UDP may be blocked' "$(log_of client)")" -eq 1 \
    "one fallback warning"
}

@test "the server caps TCP paths that carry no authenticated connection (spec/08-security.md §3)" {
  loopback_server
  run_helper --timeout 60 "$PRD_PYTHON" - "$QUIC_PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
socks = []
for _ in range(300):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"PRD-QOT\x01")
    socks.append(s)
answered = closed = 0
for s in socks:
    s.settimeout(3)
    try:
        d = s.recv(8)
    except socket.timeout:
        d = None
    except ConnectionResetError:  # closed with the preface unread
        d = b""
    if d == b"PRD-QOT\x01":
        answered += 1
    elif d == b"":
        closed += 1
print(f"answered={answered} closed={closed}")
PY
  assert "${lines[0]}" == "answered=256 closed=44" "paths beyond the cap"
  stop_all_checked
}
