#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 6 item 5, metrics: --metrics-listen ADDR:PORT serves Prometheus text
# on /metrics: connections accepted/active/failed, bytes each way, auth
# failures, clients connected, reconnects, QUIC RTT, congestion window, lost
# packets, process RSS; names prefixed portredirect_, with HELP and TYPE
# lines. Fetched with curl; the values are checked against what the test
# did.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

# The samples both binaries must serve.
REQUIRED=(portredirect_connections_accepted_total portredirect_connections_active
  portredirect_connections_failed_total portredirect_bytes_received_total
  portredirect_bytes_sent_total portredirect_auth_failures_total
  portredirect_clients_connected portredirect_reconnects_total
  portredirect_quic_cwnd_bytes portredirect_process_resident_memory_bytes)

# metered_tunnel DEST_PORT [CLIENT_ARGS...]: start_tunnel with metrics on
# both sides; sets SM and CM (server's and client's metrics ADDR:PORT).
metered_tunnel() {
  SM=127.0.0.1:$(free_port)
  CM=127.0.0.1:$(free_port)
  PRD_SERVER_EXTRA=(--metrics-listen "$SM")
  local dest=$1
  shift
  start_tunnel "$dest" --metrics-listen "$CM" "$@"
}

# check_exposition FILE: the Prometheus text format (version 0.0.4), as a
# scraper reads it: every sample's family has one HELP and one TYPE line
# before its samples, counters end in _total, every name is prefixed.
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
    assert name.startswith("portredirect_"), "line %d: %s lacks the prefix" % (n, name)
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
    grep -qE '^portredirect_quic_rtt_[a-z]+ ' <<<"$METRICS" || die "$side: no QUIC RTT sample"
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
    # xfer.py sends 100 bytes on each and reads the 100 echoed back.
    assert "$(metric portredirect_bytes_received_total)" == 500 "$addr: bytes read from TCP"
    assert "$(metric portredirect_bytes_sent_total)" == 500 "$addr: bytes written to TCP"
    assert "$(metric portredirect_connections_failed_total)" == 0 "$addr: no failures"
    assert "$(metric portredirect_clients_connected)" == 1 "$addr: one tunnel"
    assert "$(metric portredirect_auth_failures_total)" == 0 "$addr: no auth failure"
    assert "$(metric portredirect_quic_cwnd_bytes)" -gt 0 "$addr: a congestion window"
    local rtt
    rtt=$(grep -E '^portredirect_quic_rtt_[a-z]+ ' <<<"$METRICS" | awk '{print $2}')
    assert "$(awk -v v="$rtt" 'BEGIN {print (v > 0) ? 1 : 0}')" == 1 "$addr: an RTT ($rtt)"
    assert "$(metric portredirect_process_resident_memory_bytes)" -gt 1000000 "$addr: RSS"
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

@test "lost packets are counted" {
  start_dest echo
  metered_tunnel "$DEST_PORT"
  metrics_of "$SM"
  grep -qE '^portredirect_[a-z_]*lost[a-z_]* ' <<<"$METRICS" ||
    skip "missing feature: no lost-packets metric (e.g. portredirect_quic_lost_packets_total)"
  local name
  name=$(grep -oE '^portredirect_[a-z_]*lost[a-z_]*' <<<"$METRICS" | head -n 1)
  assert "$(grep -c "^# TYPE $name counter" <<<"$METRICS")" == 1 "$name is a counter"
  metrics_of "$CM"
  metric "$name" >/dev/null
  stop_all_checked
}

@test "metrics listen only where asked; other paths are 404; a busy port is an error" {
  start_dest echo
  metered_tunnel "$DEST_PORT"
  run_helper --rc 22 curl -fsS "http://$SM/"
  run_helper --rc 22 curl -fsS "http://$SM/metrics/x"
  run_helper curl -sS -o /dev/null -w '%{http_code}' "http://$CM/nothing"
  assert "$output" == 404 "404 for another path"
  # The port is taken (by the running server's metrics): the second one
  # fails at start and names the option.
  run_helper --rc '!0' --timeout 30 "$PRD_SERVER" --local-port "$(free_port)" \
    --quic-server-port "$(free_port)" --quic-psk-file "$PSK_FILE" \
    --config-dir "$(config_dir server)" --metrics-listen "$SM"
  assert "$status" -le 2 "a clean exit code"
  assert "$output" =~ "--metrics-listen" "the message names --metrics-listen"
  stop_all_checked
}
