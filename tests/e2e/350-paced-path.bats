#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# A path that is not loopback: server and client in two network namespaces
# of this test's own, joined by a veth pair with a 100 Mbit/s tc tbf
# bottleneck and a shallow queue. There the endpoints pace (one send quantum
# per write, README: Performance), start at 1,200-byte datagrams and let
# path MTU discovery raise them (spec/04-quic-profile.md §5): code that the
# loopback tests never reach. Needs root (ip netns); skipped otherwise.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_rel

NS_S=prdt$$s
NS_C=prdt$$c
ADDR_S=10.201.0.1
ADDR_C=10.201.0.2

# netns_up: the two namespaces, the veth pair and the bottleneck.
netns_up() {
  [[ $(id -u) -eq 0 ]] || skip "needs root for ip netns"
  command -v tc >/dev/null 2>&1 || skip "tc (iproute2) is missing"
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
    ip netns exec "$ns" tc qdisc add dev "${ns}v" root tbf rate 100mbit \
      burst 32kb latency 10ms || die "tc tbf in $ns"
  done
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

# tbf_bytes NS: bytes the bottleneck of NS has sent.
tbf_bytes() {
  ip netns exec "$1" tc -s qdisc show dev "${1}v" |
    awk '/^ Sent /{print $2; exit}'
}

# metric_of NAME: the client's first series of a metric.
metric_of() {
  ip netns exec "$NS_C" curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk -v m="$1" 'index($0, m "{") == 1 {print $2; exit}'
}

@test "a paced path through a 100 Mbit/s bottleneck: transfers intact both ways, path MTU discovery raises the datagrams" {
  netns_up
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
    --quic-psk-file "$PSK_FILE"
  copy_cert server client
  PRD_WRAP=(ip netns exec "$NS_C")
  start_client --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host "$ADDR_S" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" --metrics-listen "127.0.0.1:$METRICS_PORT"
  wait_tunnel_up client

  local before_s before_c
  before_s=$(tbf_bytes "$NS_S")
  before_c=$(tbf_bytes "$NS_C")
  run_helper --timeout 200 ip netns exec "$NS_S" "$PRD_PYTHON" \
    "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" -n 4 -s $((4 * 1024 * 1024)) \
    --timeout 180
  assert_line "ok 4"

  # Both directions crossed the bottleneck (16 MiB each way, plus headers).
  assert $(($(tbf_bytes "$NS_S") - before_s)) -gt $((16 * 1024 * 1024)) \
    "bytes through the server's side of the bottleneck"
  assert $(($(tbf_bytes "$NS_C") - before_c)) -gt $((16 * 1024 * 1024)) \
    "bytes through the client's side of the bottleneck"
  # Datagrams started at 1,200 bytes (not the 65,000 of loopback) and path
  # MTU discovery raised them; the veth MTU of 1,500 caps them at 1,472.
  local payload
  payload=$(metric_of portredirect_quic_max_udp_payload_bytes)
  echo "# client datagrams after the transfer: $payload bytes" >&3
  assert "$payload" -gt 1200 "the client's datagram size after PMTUD"
  assert "$payload" -le 1472 "the client's datagram size fits the path"
  assert "$(metric_of portredirect_quic_cwnd_bytes)" -gt 0 "the client's cwnd"
  # For the record, not asserted (it depends on the machine's load): what
  # the bottleneck's 10 ms queue dropped.
  local ns
  for ns in "$NS_S" "$NS_C"; do
    echo "# tbf $ns: $(ip netns exec "$ns" tc -s qdisc show dev "${ns}v" | awk '/^ Sent /{print; exit}')" >&3
  done
  stop_all_checked
}
