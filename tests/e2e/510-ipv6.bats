#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 6 item 1, IPv6 everywhere: every host flag takes an IPv4 address, an
# IPv6 address (with or without brackets) or a host name; a server on ::
# accepts IPv4 users too (IPv4-mapped); the stream header carries IPv6 user
# addresses (seen through --proxy-protocol v1); a destination name is tried
# at all of its addresses, and so is a remote host name (resolved again
# before each round of dials, with a per-address timeout).

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

# proxy_line_of PROBE_DATA_LINE: the PROXY v1 line at the start of a
# probe.py "data=b'...'" line (eofecho destination).
proxy_line_of() {
  [[ $1 =~ ^data=b\'(PROXY [^\\]*)\\r\\n ]] || {
    die "no PROXY v1 line in: $1"
    return 1
  }
  echo "${BASH_REMATCH[1]}"
}

@test "every host flag takes [::1] in brackets: tunnel, QUIC and metrics over ::1" {
  skip_without_ipv6
  start_dest echo --host ::1
  new_psk
  local srv q m1 m2
  srv=$(free_port)
  q=$(free_port)
  m1=$(free_port)
  m2=$(free_port)
  start_server --local-host '[::1]' --local-port "$srv" --quic-server-host '[::1]' \
    --quic-server-port "$q" --quic-psk-file "$PSK_FILE" --metrics-listen "[::1]:$m1"
  wait_for_log_of server "QUIC listening on \[::1\]:$q" 5
  wait_for_log_of server "TCP listening on \[::1\]:$srv" 5
  copy_cert server client
  start_client --destination-host '[::1]' --destination-port "$DEST_PORT" \
    --quic-remote-host '[::1]' --quic-remote-port "$q" --quic-local-host '[::1]' \
    --quic-psk-file "$PSK_FILE" --metrics-listen "[::1]:$m2"
  wait_tunnel_up
  echo_ok "$srv" ::1
  # Nothing of it is on IPv4.
  probe 127.0.0.1 "$srv" --send "x" --shut-wr --timeout 5
  assert "${lines[0]}" =~ "end=refused" "the user port is on ::1 only"
  wait_for_log_of server "client authenticated from \[::1\]:" 5
  metrics_of "[::1]:$m1"
  assert "$(metric portredirect_connections_accepted_total)" == 1 "server metrics on [::1]"
  metrics_of "[::1]:$m2"
  assert "$(metric portredirect_connections_accepted_total)" == 1 "client metrics on [::1]"
  stop_all_checked
}

@test "--quic-remote [::1]:PORT; --quic-remote ::1:PORT is refused with a hint" {
  skip_without_ipv6
  start_dest echo
  new_psk
  local srv q
  srv=$(free_port)
  q=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$srv" --quic-server-host ::1 \
    --quic-server-port "$q" --quic-psk-file "$PSK_FILE"
  copy_cert server client
  start_client --destination-port "$DEST_PORT" --quic-remote "[::1]:$q" \
    --quic-psk-file "$PSK_FILE"
  wait_tunnel_up
  echo_ok "$srv"
  run_helper --rc 2 "$PRD_CLIENT" --destination-port 9 --quic-remote "::1:$q" \
    --quic-psk-file "$PSK_FILE" --config-dir "$(config_dir client)"
  assert "$output" =~ "--quic-remote" "the message names the option"
  assert "$output" =~ "\[::1\]:" "the message shows the bracket form"
  stop_all_checked
}

@test "a server on :: serves IPv4 (mapped) and IPv6 users; PROXY v1 shows each" {
  skip_without_ipv6
  start_dest eofecho
  new_psk
  local srv q
  srv=$(free_port)
  q=$(free_port)
  start_server --local-host :: --local-port "$srv" --quic-server-host 127.0.0.1 \
    --quic-server-port "$q" --quic-psk-file "$PSK_FILE"
  wait_for_log_of server "TCP listening on \[::\]:$srv" 5
  copy_cert server client
  start_client --destination-port "$DEST_PORT" --quic-remote-host 127.0.0.1 \
    --quic-remote-port "$q" --quic-psk-file "$PSK_FILE" --proxy-protocol v1
  wait_tunnel_up
  # An IPv4 user: a mapped address on the server's socket, IPv4 in the
  # header (spec/02-framing.md §4.1), so TCP4 with dotted quads.
  probe 127.0.0.1 "$srv" --send "four" --shut-wr --timeout 10
  assert "$(proxy_line_of "${lines[1]}")" =~ "^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 [0-9]+ $srv\$" \
    "an IPv4 user travels as IPv4"
  assert "${lines[1]}" =~ "\\\\r\\\\nfour'\$" "the IPv4 user's bytes follow"
  # An IPv6 user: the header carries the 16-byte address.
  probe ::1 "$srv" --send "six" --shut-wr --timeout 10
  assert "$(proxy_line_of "${lines[1]}")" =~ "^PROXY TCP6 ::1 ::1 [0-9]+ $srv\$" \
    "an IPv6 user travels as IPv6"
  assert "${lines[1]}" =~ "\\\\r\\\\nsix'\$" "the IPv6 user's bytes follow"
  stop_all_checked
}

@test "PROXY v2 carries an IPv6 user as AF_INET6 with 16-byte addresses" {
  skip_without_ipv6
  start_dest eofecho
  new_psk
  local srv q
  srv=$(free_port)
  q=$(free_port)
  start_server --local-host ::1 --local-port "$srv" --quic-server-host 127.0.0.1 \
    --quic-server-port "$q" --quic-psk-file "$PSK_FILE"
  copy_cert server client
  start_client --destination-port "$DEST_PORT" --quic-remote-host 127.0.0.1 \
    --quic-remote-port "$q" --quic-psk-file "$PSK_FILE" --proxy-protocol v2
  wait_tunnel_up
  probe ::1 "$srv" --send "hello6" --shut-wr --timeout 10 --out "$BATS_TEST_TMPDIR/got.bin"
  run_helper "$PRD_PYTHON" -c '
import socket, struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:12] == b"\r\n\r\n\x00\r\nQUIT\n", ("signature", b[:16])
assert b[12] == 0x21, ("version 2, PROXY", b[12])
assert b[13] == 0x21, ("AF_INET6, STREAM", b[13])
n = struct.unpack("!H", b[14:16])[0]
assert n >= 36, ("length", n)
src, dst, sport, dport = struct.unpack("!16s16sHH", b[16:52])
assert socket.inet_ntop(socket.AF_INET6, src) == "::1", src
assert socket.inet_ntop(socket.AF_INET6, dst) == "::1", dst
assert dport == int(sys.argv[2]), ("destination port", dport)
assert sport != 0, "source port"
assert b[16 + n:] == b"hello6", ("payload", b[16 + n:])
print("PROXY v2 TCP6 from [::1]:%d ok" % sport)
' "$BATS_TEST_TMPDIR/got.bin" "$srv"
  stop_all_checked
}

@test "QUIC on :: accepts a client that dials 127.0.0.1" {
  skip_without_ipv6
  start_dest echo
  new_psk
  local srv q
  srv=$(free_port)
  q=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$srv" --quic-server-host :: \
    --quic-server-port "$q" --quic-psk-file "$PSK_FILE" --quic-cert-hostname localhost
  wait_for_log_of server "QUIC listening on \[::\]:$q" 5
  copy_cert server client
  start_client -n client4 --destination-port "$DEST_PORT" --quic-remote-host 127.0.0.1 \
    --quic-remote-port "$q" --quic-remote-hostname-match localhost --quic-psk-file "$PSK_FILE" \
    --config-dir "$(config_dir client)"
  start_client -n client6 --destination-port "$DEST_PORT" --quic-remote-host ::1 \
    --quic-remote-port "$q" --quic-remote-hostname-match localhost --quic-psk-file "$PSK_FILE" \
    --config-dir "$(config_dir client)"
  wait_tunnel_up client4
  wait_tunnel_up client6
  wait_for_log_of server "client authenticated from 127\.0\.0\.1:" 5
  wait_for_log_of server "client authenticated from \[::1\]:" 5
  echo_count "$srv" 6
  stop_all_checked
}

@test "host names: localhost for the listeners, the remote and the destination" {
  getent hosts localhost >/dev/null || skip "localhost does not resolve here"
  start_dest echo
  new_psk
  local srv q
  srv=$(free_port)
  q=$(free_port)
  start_server --local-host localhost --local-port "$srv" --quic-server-host localhost \
    --quic-server-port "$q" --quic-psk-file "$PSK_FILE"
  copy_cert server client
  start_client --destination-host localhost --destination-port "$DEST_PORT" \
    --quic-remote-host localhost --quic-remote-port "$q" --quic-psk-file "$PSK_FILE"
  wait_tunnel_up
  echo_ok "$srv" "$(getent hosts localhost | awk '{print $1; exit}')"
  stop_all_checked
}

@test "a destination name with an IPv6 and an IPv4 address: every address is tried" {
  skip_without_ipv6
  can_remap_hosts || skip "cannot bind-mount /etc/hosts in a mount namespace here (needs root)"
  local hosts=$BATS_TEST_TMPDIR/hosts
  # Both orders: whichever address glibc sorts first, one of the two
  # destinations listens only on the other one.
  printf '127.0.0.1 localhost\n::1 both.prd.test\n127.0.0.1 both.prd.test\n' >"$hosts"
  start_dest -n dest4 echo --host 127.0.0.1 --count-file "$BATS_TEST_TMPDIR/count4"
  local d4=$DEST_PORT
  start_dest -n dest6 echo --host ::1 --count-file "$BATS_TEST_TMPDIR/count6"
  local d6=$DEST_PORT
  serve s4
  copy_cert s4 c4
  start_client_hosts "$hosts" c4 --destination-host both.prd.test --destination-port "$d4" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT_s4" --quic-psk-file "$PSK_FILE"
  serve s6
  copy_cert s6 c6
  start_client_hosts "$hosts" c6 --destination-host both.prd.test --destination-port "$d6" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT_s6" --quic-psk-file "$PSK_FILE"
  wait_tunnel_up c4
  wait_tunnel_up c6
  echo_count "$SRV_PORT_s4" 3
  echo_count "$SRV_PORT_s6" 3
  assert "$(count_of "$BATS_TEST_TMPDIR/count4")" == 3 "the IPv4-only destination got them"
  assert "$(count_of "$BATS_TEST_TMPDIR/count6")" == 3 "the IPv6-only destination got them"
  stop_all_checked
}

@test "a remote host name with an IPv6 and an IPv4 address: the client tries the next one" {
  skip_without_ipv6
  can_remap_hosts || skip "cannot bind-mount /etc/hosts in a mount namespace here (needs root)"
  local hosts=$BATS_TEST_TMPDIR/hosts
  printf '127.0.0.1 localhost\n::1 both.prd.test\n127.0.0.1 both.prd.test\n' >"$hosts"
  start_dest echo
  new_psk
  local srv4 q4 srv6 q6
  srv4=$(free_port)
  q4=$(free_port)
  srv6=$(free_port)
  q6=$(free_port)
  # Each server's QUIC listens on one family only and each client names the
  # host: whichever address glibc sorts first, one of the two clients must
  # move on to the second.
  start_server -n s4 --local-host 127.0.0.1 --local-port "$srv4" --quic-server-host 127.0.0.1 \
    --quic-server-port "$q4" --quic-psk-file "$PSK_FILE"
  start_server -n s6 --local-host 127.0.0.1 --local-port "$srv6" --quic-server-host ::1 \
    --quic-server-port "$q6" --quic-psk-file "$PSK_FILE"
  copy_cert s4 c4
  copy_cert s6 c6
  start_client_hosts "$hosts" c4 --destination-port "$DEST_PORT" --quic-remote-host both.prd.test \
    --quic-remote-port "$q4" --quic-remote-hostname-match localhost --quic-psk-file "$PSK_FILE"
  start_client_hosts "$hosts" c6 --destination-port "$DEST_PORT" --quic-remote-host both.prd.test \
    --quic-remote-port "$q6" --quic-remote-hostname-match localhost --quic-psk-file "$PSK_FILE"
  # Nothing listens on the other family's address: the ICMP error ends that
  # attempt at once, and the next address is dialed without a backoff.
  wait_tunnel_up c4 10
  wait_tunnel_up c6 10
  echo_ok "$srv4"
  echo_ok "$srv6"
  grep -hE 'cannot connect to both\.prd\.test:[0-9]+ \((\[::1\]|127\.0\.0\.1):[0-9]+, address 1 of 2\)' \
    "$(log_of c4)" "$(log_of c6)" >/dev/null || die "no client logged the failed first address"
  stop_all_checked
}

# start_silent NAME HOST PORT: a UDP socket on HOST:PORT that reads nothing
# and answers nothing (no ICMP error either): a server that is down behind a
# firewall that drops.
start_silent() {
  start_tool "$1" "$PRD_PYTHON" -u -c '
import socket, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
time.sleep(3600)' "$2" "$3"
  wait_for_log "$(log_of "$1")" '^listening' 10
}

@test "a remote address that never answers: the next one after the per-address timeout" {
  skip_without_ipv6
  can_remap_hosts || skip "cannot bind-mount /etc/hosts in a mount namespace here (needs root)"
  local hosts=$BATS_TEST_TMPDIR/hosts
  printf '127.0.0.1 localhost\n::1 both.prd.test\n127.0.0.1 both.prd.test\n' >"$hosts"
  start_dest echo
  new_psk
  local srv4 q4 srv6 q6
  srv4=$(free_port)
  q4=$(free_port)
  srv6=$(free_port)
  q6=$(free_port)
  # Each server's port on the other family swallows every datagram: without
  # a per-address timeout the client would wait for the handshake timeout
  # and then dial the same address again, forever.
  start_server -n s4 --local-host 127.0.0.1 --local-port "$srv4" --quic-server-host 127.0.0.1 \
    --quic-server-port "$q4" --quic-psk-file "$PSK_FILE"
  start_server -n s6 --local-host 127.0.0.1 --local-port "$srv6" --quic-server-host ::1 \
    --quic-server-port "$q6" --quic-psk-file "$PSK_FILE"
  start_silent sink4 ::1 "$q4"
  start_silent sink6 127.0.0.1 "$q6"
  copy_cert s4 c4
  copy_cert s6 c6
  start_client_hosts "$hosts" c4 --destination-port "$DEST_PORT" --quic-remote-host both.prd.test \
    --quic-remote-port "$q4" --quic-remote-hostname-match localhost --quic-psk-file "$PSK_FILE"
  start_client_hosts "$hosts" c6 --destination-port "$DEST_PORT" --quic-remote-host both.prd.test \
    --quic-remote-port "$q6" --quic-remote-hostname-match localhost --quic-psk-file "$PSK_FILE"
  # 3 s for the silent address, then the handshake on the other one; the
  # handshake timeout alone is 10 s.
  wait_tunnel_up c4 9
  wait_tunnel_up c6 9
  echo_ok "$srv4"
  echo_ok "$srv6"
  # After 3 s without an answer over UDP the client tries the TCP path on
  # the same address (README "TCP fallback"); the sinks have no TCP
  # listener, so it is refused and the next address follows at once.
  grep -hE 'cannot connect to both\.prd\.test:[0-9]+ \(.*address 1 of 2\): .*((no tunnel|nothing answered over UDP) within 3000 ms|offers no TCP path)' \
    "$(log_of c4)" "$(log_of c6)" >/dev/null || die "no client logged the per-address timeout"
  stop_all_checked
}

@test "the client resolves the remote host name again before each round of dials" {
  can_remap_hosts || skip "cannot bind-mount /etc/hosts in a mount namespace here (needs root)"
  local hosts=$BATS_TEST_TMPDIR/hosts
  # First the name points where no server listens.
  printf '127.0.0.1 localhost\n127.0.0.3 moving.prd.test\n' >"$hosts"
  start_dest echo
  new_psk
  local srv q
  srv=$(free_port)
  q=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$srv" --quic-server-host 127.0.0.1 \
    --quic-server-port "$q" --quic-psk-file "$PSK_FILE"
  copy_cert server client
  start_client_hosts "$hosts" client --destination-port "$DEST_PORT" \
    --quic-remote-host moving.prd.test --quic-remote-port "$q" \
    --quic-remote-hostname-match localhost --quic-psk-file "$PSK_FILE"
  wait_for_log_of client "cannot connect to moving\.prd\.test:$q" 15
  # The DNS record moves (same file, rewritten in place: the bind mount
  # shows the new contents); the next round must follow it.
  printf '127.0.0.1 localhost\n127.0.0.1 moving.prd.test\n' >"$hosts"
  wait_tunnel_up client 15
  wait_for_log_of client "moving\.prd\.test:$q now resolves to 127\.0\.0\.1:$q" 1
  echo_ok "$srv"
  stop_all_checked
}

@test "a slow DNS server: the client resolves again without stalling its other tunnels" {
  can_remap_hosts || skip "cannot bind-mount /etc/hosts in a mount namespace here (needs root)"
  local hosts=$BATS_TEST_TMPDIR/hosts resolv=$BATS_TEST_TMPDIR/resolv.conf ns=127.0.0.77
  # At start the name is in the hosts file; for the reconnect round it is
  # not, and the DNS server takes 4 s to answer.
  printf '127.0.0.1 localhost\n127.0.0.1 slow.prd.test\n' >"$hosts"
  printf 'nameserver %s\noptions timeout:10 attempts:1\n' "$ns" >"$resolv"
  start_tool dns "$PRD_PYTHON" -u "$PRD_TOOLS/slowdns.py" --host "$ns" --port 53 \
    --delay 4 --name slow.prd.test --addr 127.0.0.1
  wait_for_log "$(log_of dns)" '^listening ' 10
  start_dest echo
  serve s1
  same_identity s1 s2
  serve s2
  copy_cert s1 client
  # /etc/resolv.conf too is the test's, for the client only.
  local -a saved=("${PRD_ENV[@]}")
  # shellcheck disable=SC2016 # ($0, $1 and $@ are the inner sh's)
  PRD_ENV+=(unshare -m -- sh -c 'mount --bind "$0" /etc/hosts &&
    mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' "$hosts" "$resolv")
  start_client --destination-port "$DEST_PORT" \
    --quic-remote "slow.prd.test:$QUIC_PORT_s1,name=localhost" \
    --quic-remote "127.0.0.1:$QUIC_PORT_s2" --quic-psk-file "$PSK_FILE"
  PRD_ENV=("${saved[@]}")
  wait_for_log_of client "tunnel up: authenticated to slow\.prd\.test:$QUIC_PORT_s1" 20
  wait_for_log_of client "tunnel up: authenticated to 127\.0\.0\.1:$QUIC_PORT_s2" 20
  echo_ok "$SRV_PORT_s2"
  local before
  before=$(log_lines "$(log_of client)")
  printf '127.0.0.1 localhost\n' >"$hosts"
  stop s1
  restart s1
  # The reconnect round asks the DNS server; while it waits, s2's users are
  # served at once.
  wait_for_log "$(log_of dns)" '^query slow\.prd\.test 1$' 15
  local start
  start=$EPOCHREALTIME
  echo_ok "$SRV_PORT_s2"
  echo_ok "$SRV_PORT_s2"
  assert_seconds_below "$(since "$start")" 2 "two echoes through s2 while the name resolves"
  # Then the answer (the same address) brings the tunnel to s1 back.
  wait_for_log_of client "tunnel up: authenticated to slow\.prd\.test:$QUIC_PORT_s1" 20 "$before"
  echo_ok "$SRV_PORT_s1"
  run grep -c 'now resolves to' "$(log_of client)"
  assert "$output" == 0 "the same address is no new resolution"
  stop_all_checked
}
