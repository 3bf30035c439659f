#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 6 item 5, metrics: --metrics-listen ADDR:PORT serves Prometheus text
# on /metrics: connections accepted/active/failed, bytes each way, auth
# failures, clients connected, reconnects, QUIC RTT, congestion window, lost
# packets, process RSS; names prefixed portredirect_, with HELP and TYPE
# lines. Fetched with curl; the values are checked against what the test
# did. RTT and congestion window have one series per tunnel: the client
# labels them remote="HOST:PORT", the server client="NAME" (the client's
# name, "default" without one: spec/03-auth.md §4.1),peer="ADDR:PORT",
# conn="cN".

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat
# start_tunnel_relay and the UDP impairment relay (tests/tools/udprelay.py).
load helpers_rel

# The samples both binaries must serve.
REQUIRED=(portredirect_connections_accepted_total portredirect_connections_active
  portredirect_connections_failed_total portredirect_bytes_received_total
  portredirect_bytes_sent_total portredirect_auth_failures_total
  portredirect_clients_connected portredirect_reconnects_total
  portredirect_quic_lost_packets_total portredirect_heap_allocated_bytes
  process_resident_memory_bytes process_virtual_memory_bytes process_cpu_seconds_total
  process_open_fds process_max_fds process_start_time_seconds)

# Per-tunnel series (ERE, without the value): the server's labels are the
# client's name, its address and our connection name, the client's the
# server as given.
SERVER_SERIES='\{client="default",peer="127\.0\.0\.1:[0-9]+",conn="c[0-9]+"\}'
client_series() {
  echo "\\{remote=\"127\\.0\\.0\\.1:$1\"\\}"
}

# series_count NAME LABELS_ERE: how many samples of NAME with such labels
# $METRICS has (each with a non-negative value).
series_count() {
  grep -cE "^$1$2 [0-9]+(\.[0-9]+)?\$" <<<"$METRICS" || true
}

# check_exposition FILE: the Prometheus text format (version 0.0.4), as a
# scraper reads it: every sample's family has one HELP and one TYPE line
# before its samples, counters end in _total, every name is prefixed (but
# the standard process_* ones).
check_exposition() {
  run_helper "$PRD_PYTHON" - "$1" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n"), "no final newline"
helps, types, seen = {}, {}, []
name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
for n, line in enumerate(text.splitlines(), 1):
    m = re.fullmatch(r"# HELP (%s) (.+)" % name_re, line)
    if m:
        assert m.group(1) not in helps, "line %d: second HELP for %s" % (n, m.group(1))
        helps[m.group(1)] = m.group(2)
        continue
    m = re.fullmatch(r"# TYPE (%s) (counter|gauge|histogram|summary|untyped)" % name_re, line)
    if m:
        assert m.group(1) not in types, "line %d: second TYPE for %s" % (n, m.group(1))
        types[m.group(1)] = m.group(2)
        continue
    assert not line.startswith("#"), "line %d: bad comment %r" % (n, line)
    m = re.fullmatch(r"(%s)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)( -?[0-9]+)?" % name_re, line)
    assert m, "line %d: not a sample: %r" % (n, line)
    name = m.group(1)
    fam = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
    assert fam in helps, "line %d: %s has no HELP line before it" % (n, name)
    assert fam in types, "line %d: %s has no TYPE line before it" % (n, name)
    assert name.startswith(("portredirect_", "process_")), "line %d: %s lacks the prefix" % (n, name)
    if types[fam] == "counter":
        assert name.endswith("_total"), "line %d: counter %s without _total" % (n, name)
    float(m.group(3))
    seen.append(name)
assert seen, "no samples"
print("%d samples, %d families" % (len(seen), len(types)))
EOF
}

@test "both binaries serve every metric, with HELP and TYPE, in the Prometheus text format" {
  start_dest echo
  metered_tunnel "$DEST_PORT"
  local side addr name
  for side in server client; do
    [[ $side == server ]] && addr=$SM || addr=$CM
    run_helper curl -fsS -D "$BATS_TEST_TMPDIR/$side.headers" -o "$BATS_TEST_TMPDIR/$side.txt" \
      "http://$addr/metrics"
    grep -qiE '^content-type: text/plain; version=0\.0\.4' "$BATS_TEST_TMPDIR/$side.headers" ||
      die "$side: Content-Type is not the Prometheus text type: $(grep -i content-type "$BATS_TEST_TMPDIR/$side.headers")"
    check_exposition "$BATS_TEST_TMPDIR/$side.txt"
    METRICS=$(<"$BATS_TEST_TMPDIR/$side.txt")
    for name in "${REQUIRED[@]}"; do
      metric "$name" >/dev/null
    done
    grep -qE '^portredirect_quic_rtt_[a-z]+\{(client|remote)="' <<<"$METRICS" ||
      die "$side: no QUIC RTT sample"
    grep -qE '^portredirect_quic_cwnd_bytes\{(client|remote)="' <<<"$METRICS" ||
      die "$side: no congestion window sample"
  done
  stop_all_checked
}

@test "the counters and gauges match the traffic" {
  start_dest echo
  metered_tunnel "$DEST_PORT"
  echo_count "$SRV_PORT" 5
  local addr
  for addr in "$SM" "$CM"; do
    wait_metric "$addr" portredirect_connections_active -eq 0 10
    metrics_of "$addr"
    assert "$(metric portredirect_connections_accepted_total)" == 5 "$addr: five connections"
    assert "$(metric 'portredirect_service_connections_accepted_total{service="default"}')" == 5 \
      "$addr: five connections of the service default"
    # xfer.py sends 100 bytes on each and reads the 100 echoed back.
    assert "$(metric portredirect_bytes_received_total)" == 500 "$addr: bytes read from TCP"
    assert "$(metric portredirect_bytes_sent_total)" == 500 "$addr: bytes written to TCP"
    assert "$(metric portredirect_connections_failed_total)" == 0 "$addr: no failures"
    assert "$(metric portredirect_clients_connected)" == 1 "$addr: one tunnel"
    assert "$(metric portredirect_auth_failures_total)" == 0 "$addr: no auth failure"
    local labels rtt
    [[ $addr == "$SM" ]] && labels=$SERVER_SERIES || labels=$(client_series "$QUIC_PORT")
    assert "$(series_count portredirect_quic_cwnd_bytes "$labels")" == 1 "$addr: one cwnd series"
    assert "$(series_count portredirect_quic_rtt_seconds "$labels")" == 1 "$addr: one RTT series"
    assert "$(grep -E "^portredirect_quic_cwnd_bytes$labels " <<<"$METRICS" | awk '{print $2}')" \
      -gt 0 "$addr: a congestion window"
    rtt=$(grep -E "^portredirect_quic_rtt_seconds$labels " <<<"$METRICS" | awk '{print $2}')
    # Seconds (the base unit): above 0, below 0.1 on loopback.
    assert "$(awk -v r="$rtt" 'BEGIN {print (r > 0 && r < 0.1) ? 1 : 0}')" == 1 "$addr: an RTT in seconds ($rtt)"
    assert "$(metric process_resident_memory_bytes)" -gt 1000000 "$addr: RSS"
    assert "$(metric process_open_fds)" -gt 5 "$addr: open fds"
    assert "$(metric process_max_fds)" -ge "$(metric process_open_fds)" "$addr: max fds"
    assert "$(awk -v s="$(metric process_start_time_seconds)" -v now="$(date +%s)" \
      'BEGIN {print (s > now - 600 && s <= now + 1) ? 1 : 0}')" == 1 "$addr: start time (epoch seconds)"
    assert "$(metric portredirect_heap_allocated_bytes)" -gt 10000 "$addr: heap in use"
    assert "$(series_count portredirect_quic_max_udp_payload_bytes "$labels")" == 1 "$addr: one datagram-size series"
    # Loopback: 65,000-byte datagrams from the first packet (spec/04 §5).
    assert "$(grep -E "^portredirect_quic_max_udp_payload_bytes$labels " <<<"$METRICS" | awk '{print $2}')" \
      == 65000 "$addr: datagram size on loopback"
  done
  # An open connection is active on both sides until it ends.
  start_hold hold 127.0.0.1 "$SRV_PORT"
  hold_roundtrip hold "held"
  wait_metric "$SM" portredirect_connections_active -eq 1 10
  wait_metric "$CM" portredirect_connections_active -eq 1 10
  stop hold any
  wait_metric "$SM" portredirect_connections_active -eq 0 10
  wait_metric "$CM" portredirect_connections_active -eq 0 10
  wait_metric "$SM" portredirect_connections_accepted_total -eq 6 5
  stop_all_checked
}

@test "failed connections, auth failures and reconnects are counted" {
  local dead
  dead=$(free_port)
  metered_tunnel "$dead"
  # The destination is down: the user's connection fails.
  probe 127.0.0.1 "$SRV_PORT" --send "x" --timeout 10
  wait_metric "$CM" portredirect_connections_failed_total -ge 1 10
  # A client with the wrong PSK.
  make_psk "$BATS_TEST_TMPDIR/wrong.psk"
  copy_cert server intruder
  start_client -n intruder --destination-port "$dead" --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$BATS_TEST_TMPDIR/wrong.psk"
  wait_metric "$SM" portredirect_auth_failures_total -ge 1 20
  stop intruder any
  metrics_of "$SM"
  assert "$(metric portredirect_clients_connected)" == 1 "the intruder never counted as a client"
  # The server restarts: the client reconnects and counts it.
  metrics_of "$CM"
  local r0
  r0=$(metric portredirect_reconnects_total)
  stop server
  wait_metric "$CM" portredirect_clients_connected -eq 0 20
  restart server
  wait_metric "$CM" portredirect_clients_connected -eq 1 60
  wait_metric "$CM" portredirect_reconnects_total -gt "$r0" 5
}

@test "RTT and cwnd per tunnel: a series per client on the server, per server on the client" {
  start_dest echo
  local sm1 sm2 cm1 cm2
  sm1=127.0.0.1:$(free_port)
  sm2=127.0.0.1:$(free_port)
  cm1=127.0.0.1:$(free_port)
  cm2=127.0.0.1:$(free_port)
  serve s1 --metrics-listen "$sm1"
  same_identity s1 s2
  serve s2 --metrics-listen "$sm2"
  copy_cert s1 c1
  copy_cert s1 c2
  # c1 holds a tunnel to each server, c2 one to s1 only.
  start_client -n c1 --destination-port "$DEST_PORT" --quic-remote "127.0.0.1:$QUIC_PORT_s1" \
    --quic-remote "127.0.0.1:$QUIC_PORT_s2" --quic-psk-file "$PSK_FILE" --metrics-listen "$cm1"
  start_client -n c2 --destination-port "$DEST_PORT" --quic-remote-port "$QUIC_PORT_s1" \
    --quic-psk-file "$PSK_FILE" --metrics-listen "$cm2"
  wait_metric "$cm1" portredirect_clients_connected -eq 2 20
  wait_metric "$cm2" portredirect_clients_connected -eq 1 20
  wait_metric "$sm1" portredirect_clients_connected -eq 2 20
  wait_metric "$sm2" portredirect_clients_connected -eq 1 20
  echo_count "$SRV_PORT_s1" 4
  echo_count "$SRV_PORT_s2" 2
  local addr name
  for addr in "$sm1" "$sm2" "$cm1" "$cm2"; do
    run_helper curl -fsS -o "$BATS_TEST_TMPDIR/m.txt" "http://$addr/metrics"
    check_exposition "$BATS_TEST_TMPDIR/m.txt"
  done
  # The server: one series per connected client, labelled with its address
  # as the server's log names it.
  metrics_of "$sm1"
  local -a peers
  mapfile -t peers < <(sed -nE 's/.*client authenticated from (127\.0\.0\.1:[0-9]+).*/\1/p' \
    "$(log_of s1)" | sort -u)
  assert "${#peers[@]}" == 2 "s1 saw two clients"
  for name in portredirect_quic_rtt_seconds portredirect_quic_cwnd_bytes; do
    assert "$(series_count "$name" "$SERVER_SERIES")" == 2 "s1: two $name series"
    assert "$(grep -oE "^$name\{client=\"default\",peer=\"[^\"]+\"" <<<"$METRICS" | sort -u | wc -l)" == 2 \
      "s1: $name labels differ"
    local p
    for p in "${peers[@]}"; do
      grep -qE "^$name\{client=\"default\",peer=\"${p//./\\.}\",conn=\"c[0-9]+\"\} [0-9.]+$" <<<"$METRICS" ||
        die "s1: no $name series for client $p"
    done
  done
  metrics_of "$sm2"
  assert "$(series_count portredirect_quic_cwnd_bytes "$SERVER_SERIES")" == 1 "s2: one client"
  # The client: one series per server, labelled as the server was given.
  metrics_of "$cm1"
  for name in portredirect_quic_rtt_seconds portredirect_quic_cwnd_bytes; do
    assert "$(series_count "$name" "$(client_series "$QUIC_PORT_s1")")" == 1 "c1: $name for s1"
    assert "$(series_count "$name" "$(client_series "$QUIC_PORT_s2")")" == 1 "c1: $name for s2"
    assert "$(grep -c "^$name{" <<<"$METRICS")" == 2 "c1: two $name series"
  done
  # A client leaves: its series goes with it.
  stop c2
  wait_metric "$sm1" portredirect_clients_connected -eq 1 20
  metrics_of "$sm1"
  assert "$(series_count portredirect_quic_cwnd_bytes "$SERVER_SERIES")" == 1 "s1: c2's series gone"
  # A server goes: the client's series for it goes too.
  stop s2
  wait_metric "$cm1" portredirect_clients_connected -eq 1 20
  metrics_of "$cm1"
  assert "$(series_count portredirect_quic_cwnd_bytes "$(client_series "$QUIC_PORT_s2")")" == 0 \
    "c1: s2's series gone"
  assert "$(series_count portredirect_quic_cwnd_bytes "$(client_series "$QUIC_PORT_s1")")" == 1 \
    "c1: s1's series stays"
  stop_all_checked
}

@test "lost packets are counted: 5% loss on the path gives a non-zero counter on both sides" {
  start_loadgen
  SM=127.0.0.1:$(free_port)
  CM=127.0.0.1:$(free_port)
  # Internet-sized datagrams, so that 8 MiB is thousands of them (on
  # loopback they would be 65,000 bytes: too few for a 5 % loss to count).
  PRD_SERVER_EXTRA=(--metrics-listen "$SM" --max-udp-payload 1452)
  start_tunnel_relay "$DEST_PORT" --loss 0.05 --seed 11 -- --metrics-listen "$CM" \
    --max-udp-payload 1452
  metrics_of "$SM"
  assert "$(grep -c '^# TYPE portredirect_quic_lost_packets_total counter$' <<<"$METRICS")" == 1 \
    "the lost-packets family is a counter"
  run_helper --timeout 200 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 1 -s $((8 * 1024 * 1024)) --timeout 180
  assert_line "ok 1"
  local stats up down s c
  stats=$(relay_cmd stats)
  echo "# relay: $stats"
  up=$(field up_drop "$stats")
  down=$(field down_drop "$stats")
  assert "$down" -gt 10 "the relay dropped server->client datagrams"
  assert "$up" -gt 10 "the relay dropped client->server datagrams"
  # Each side declares lost the stream packets it sent that were dropped.
  wait_metric "$SM" portredirect_quic_lost_packets_total -gt 0 10
  s=$(metric portredirect_quic_lost_packets_total)
  wait_metric "$CM" portredirect_quic_lost_packets_total -gt 0 10
  c=$(metric portredirect_quic_lost_packets_total)
  echo "# lost: server $s, client $c; relay drops: up $up, down $down"
  # Each side's count fits what the relay dropped in its sending direction
  # (dropped ACK-only packets are not counted; the slack is for spurious
  # losses, rare without reordering). A packet counted twice would not fit.
  assert "$s" -le "$((down * 5 / 4 + 5))" "server's lost count fits the down drops"
  assert "$c" -le "$((up * 5 / 4 + 5))" "client's lost count fits the up drops"
  # A counter: it never goes down, not even when the connection goes.
  relay_cmd set loss=0 >/dev/null
  stop server
  wait_metric "$CM" portredirect_clients_connected -eq 0 20
  wait_metric "$CM" portredirect_quic_lost_packets_total -ge "$c" 5
  stop_all_checked
}

@test "metrics listen only where asked; other paths are 404; a busy port is an error" {
  start_dest echo
  metered_tunnel "$DEST_PORT"
  run_helper --rc 22 curl -fsS "http://$SM/"
  run_helper --rc 22 curl -fsS "http://$SM/metrics/x"
  run_helper curl -sS -o /dev/null -w '%{http_code}' "http://$CM/nothing"
  assert "$output" == 404 "404 for another path"
  # A query string does not change the path.
  run_helper curl -fsS "http://$SM/metrics?x=1"
  assert "$output" =~ "portredirect_connections_active" "/metrics?x=1 answers"
  # The port is taken (by the running server's metrics): the second one
  # fails at start and names the option.
  run_helper --rc '!0' --timeout 30 "$PRD_SERVER" --local-port "$(free_port)" \
    --quic-server-port "$(free_port)" --quic-psk-file "$PSK_FILE" \
    --config-dir "$(config_dir server)" --metrics-listen "$SM"
  assert "$status" -le 2 "a clean exit code"
  assert "$output" =~ "--metrics-listen" "the message names --metrics-listen"
  run grep -cE '^[^ ]+ ERROR ' <<<"$output"
  assert "$output" == 1 "one ERROR line"
  run_helper --rc '!0' --timeout 30 "$PRD_CLIENT" --destination-port 9 \
    --quic-remote-port "$QUIC_PORT" --quic-psk-file "$PSK_FILE" \
    --config-dir "$(config_dir client)" --metrics-listen "$SM"
  run grep -E '^[^ ]+ ERROR ' <<<"$output"
  assert "${#lines[@]}" == 1 "one ERROR line from the client"
  assert "$output" =~ "Address already in use" "the reason (errno)"
  stop_all_checked
}

@test "promtool check metrics passes on both binaries' /metrics" {
  skip_without promtool prometheus
  start_dest echo
  metered_tunnel "$DEST_PORT"
  echo_count "$SRV_PORT" 2
  local addr
  for addr in "$SM" "$CM"; do
    run_helper curl -fsS -o "$BATS_TEST_TMPDIR/m.txt" "http://$addr/metrics"
    grep -q '^portredirect_quic_rtt_seconds{' "$BATS_TEST_TMPDIR/m.txt" || die "$addr: no RTT series"
    # promtool prints its findings (and exits 3 on a lint problem).
    run_helper bash -c "promtool check metrics <'$BATS_TEST_TMPDIR/m.txt' 2>&1"
    assert "$output" == "" "$addr: promtool has nothing to say"
  done
  stop_all_checked
}

@test "a user's reset is not a failed connection (unreachable destinations are: test 3)" {
  start_dest echo
  metered_tunnel "$DEST_PORT"
  # The user sends, reads the echo and closes with an RST (SO_LINGER 0), as
  # wrk and browsers do.
  run_helper "$PRD_PYTHON" -c '
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"ping\n")
assert s.recv(100) == b"ping\n"
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
' "$SRV_PORT"
  wait_metric "$SM" portredirect_connections_active -eq 0 10
  wait_metric "$CM" portredirect_connections_active -eq 0 10
  metrics_of "$SM"
  assert "$(metric portredirect_connections_failed_total)" == 0 "server: the user's reset is no failure"
  metrics_of "$CM"
  assert "$(metric portredirect_connections_failed_total)" == 0 "client: the user's reset is no failure"
  grep -q 'reset' "$(log_of server)" || die "the connection did not end with a reset"
  stop_all_checked
}

@test "the Grafana dashboard parses and uses only metric names the binaries export" {
  start_dest echo
  metered_tunnel "$DEST_PORT"
  echo_count "$SRV_PORT" 1
  run_helper curl -fsS -o "$BATS_TEST_TMPDIR/s.txt" "http://$SM/metrics"
  run_helper curl -fsS -o "$BATS_TEST_TMPDIR/c.txt" "http://$CM/metrics"
  run_helper "$PRD_PYTHON" "$PRD_TOOLS/check_dashboard.py" "$PRD_ROOT/packaging/grafana-dashboard.json" \
    "$BATS_TEST_TMPDIR/s.txt" "$BATS_TEST_TMPDIR/c.txt"
  assert "$output" =~ "all exported" "the dashboard's metric names"
  # A name the binaries do not export is caught.
  sed -e 's/portredirect_quic_rtt_seconds/portredirect_quic_rtt_microseconds/' \
    "$PRD_ROOT/packaging/grafana-dashboard.json" >"$BATS_TEST_TMPDIR/bad.json"
  run_helper --rc 1 "$PRD_PYTHON" "$PRD_TOOLS/check_dashboard.py" "$BATS_TEST_TMPDIR/bad.json" \
    "$BATS_TEST_TMPDIR/s.txt" "$BATS_TEST_TMPDIR/c.txt"
  assert "$output" =~ "not exported: portredirect_quic_rtt_microseconds" "the stale name"
  stop_all_checked
}
