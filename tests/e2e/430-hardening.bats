#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Hardening (spec/08-security.md §3, §7): the server out of descriptors,
# escaped peer close reasons, an exclusive QUIC port, the metrics endpoint's
# limits, the pre-auth window, stateless resets after a restart, and file
# permission checks. Attackers use 127.0.0.70 and up.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_rel

# addrs FIRST LAST: "127.0.0.FIRST,...,127.0.0.LAST"
addrs() {
  local i out=
  for ((i = $1; i <= $2; i++)); do
    out+=${out:+,}127.0.0.$i
  done
  echo "$out"
}

@test "out of descriptors: refused handshakes do not crash the server and accept resumes on its own" {
  evilpeer_build
  start_dest echo
  # 48 descriptors: the pending handshakes' timers take the rest, so that
  # both a QUIC connection and a TCP accept meet EMFILE.
  PRD_WRAP=(prlimit --nofile=48:48)
  PRD_SERVER_EXTRA=(--auth-timeout 3)
  start_tunnel "$DEST_PORT"
  PRD_WRAP=()
  wait_for_log_of server 'descriptor limit \(RLIMIT_NOFILE 48\) is below .* accepting at most [0-9]+ user connections' 5
  start_tool flood "$EVILPEER" silent --port "$QUIC_PORT" -n 60 -c 60 \
    --local-host "$(addrs 70 79)" --timeout 30 --hs-timeout 2
  wait_for_log_of server 'cannot create a timer: .*refusing new QUIC connections' 10
  # A user connection while no descriptor is free: accept pauses.
  start_tool user "$PRD_PYTHON" "$PRD_TOOLS/probe.py" 127.0.0.1 "$SRV_PORT" \
    --send 'late user\n' --shut-wr --timeout 20
  wait_for_log_of server 'accept: Too many open files; pausing accept' 10
  is_running server || die "the server died"
  # The handshakes time out (3 s), no TCP connection closes, and the paused
  # accept still resumes: the user gets its echo.
  wait_for_log "$(log_of user)" '^recv=' 25
  run cat "$(log_of user)"
  assert "${lines[0]}" =~ "^recv=10 end=eof " "the user connection accepted after the pause"
  is_running server || die "the server died"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "a peer's close reason is escaped in the log and does not choose the log level" {
  evilpeer_build
  start_dest echo
  PRD_SERVER_EXTRA=(--log-level debug)
  start_tunnel "$DEST_PORT"
  local forged='2026-01-01T00:00:00.000Z INFO  [c9] client authenticated from 10.9.8.7'
  # An application close whose reason holds "TLS alert", a newline with a
  # forged line behind it and a terminal escape.
  evil close --port "$QUIC_PORT" --local-host 127.0.0.80 --timeout 10 \
    --close-code 0 --close-reason "TLS alert\\n$forged\\e[2J\\\\"
  echo "# $output"
  assert "$output" =~ "close=local-close" "the evil peer closed"
  # Transport error 0xca: not 0x0c, though its text starts the same.
  evil close --port "$QUIC_PORT" --local-host 127.0.0.81 --timeout 10 \
    --close-transport --close-code 0xca
  # Transport error 0x0c: quinn's certificate rejection, a WARN.
  evil close --port "$QUIC_PORT" --local-host 127.0.0.82 --timeout 10 \
    --close-transport --close-code 0x0c
  wait_for_log_of server 'client 127\.0\.0\.82:[0-9]+ aborted the handshake' 5
  wait_for_log_of server '127\.0\.0\.81:[0-9]+ ended: peer closed the connection: transport error 0xca' 5
  local log
  log=$(log_of server)
  run grep -c "^${forged//[/\\[}" "$log"
  assert "$output" == 0 "no forged line in the server's log"
  run grep -c $'\e' "$log"
  assert "$output" == 0 "no escape byte in the server's log"
  run grep -c '127\.0\.0\.80:[0-9]*.*TLS alert\\x0a2026-01-01T00:00:00\.000Z INFO  \[c9\] client authenticated from 10\.9\.8\.7\\x1b\[2J\\\\$' "$log"
  assert "$output" == 1 "the reason logged once, escaped"
  run grep -cE 'WARN .*127\.0\.0\.8[01]:' "$log"
  assert "$output" == 0 "the peers' text chose no WARN line"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "a second server on the same QUIC port refuses to start and the first keeps its client" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  local host port2
  for host in 127.0.0.1 0.0.0.0; do
    port2=$(free_port)
    PRD_NO_WAIT=1 start_server -n "second-${host//./-}" --local-host 127.0.0.1 --local-port "$port2" \
      --quic-server-host "$host" --quic-server-port "$QUIC_PORT" --quic-psk-file "$PSK_FILE"
    wait_exit "second-${host//./-}" 10
    assert "$EXIT_RC" == 1 "the second server ($host) exits 1"
    run grep -cE "ERROR +cannot listen for QUIC on ${host//./\\.}:$QUIC_PORT: .*in use" \
      "$(log_of "second-${host//./-}")"
    assert "$output" == 1 "one line naming the port in use ($host)"
  done
  sleep 1
  echo_ok "$SRV_PORT"
  run grep -c 'tunnel up' "$(log_of client)"
  assert "$output" == 1 "the first server's client was never cut off"
  stop client
  stop server
  assert_no_error_lines "$(log_of server)" "$(log_of client)"
  assert_no_sanitizer_reports
}

@test "the metrics code builds under AddressSanitizer with gcc, whose runtime lacks sanitizer/allocator_interface.h" {
  command -v gcc >/dev/null || skip "no gcc"
  local src=$BATS_TEST_DIRNAME/../../src
  run gcc -std=c11 -D_GNU_SOURCE -Wall -Werror -fsanitize=address \
    -c "$src/relay/metrics.c" -o "$BATS_TEST_TMPDIR/metrics.o"
  assert "$status" == 0 "gcc -fsanitize=address compiles metrics.c: $output"
  # The runtime has the function the header would declare.
  run nm -D "$(gcc -print-file-name=libasan.so)"
  assert "$output" =~ " T __sanitizer_get_current_allocated_bytes" "libasan exports it"
}

# metrics_abuse PORT: sends 1 MiB of headers on one connection, holds 24
# half-sent requests on the metrics port and sends a POST; prints
# "fds_check" while they are held, then "big=<how the big request ended>
# post=<status line> held_open_after_15s=N".
metrics_abuse() {
  "$PRD_PYTHON" - "$1" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
big = socket.create_connection(("127.0.0.1", port))
big.settimeout(5)
big_end = "timeout"
try:
    big.sendall(b"GET /metrics HTTP/1.1\r\n")
    line = b"X-Junk: " + b"a" * 1000 + b"\r\n"
    for _ in range(1024):
        big.sendall(line)
    big_end = big.recv(100).split(b"\r\n")[0].decode(errors="replace") or "eof"
except socket.timeout:
    big_end = "timeout"
except OSError as e:
    big_end = "reset"
held = []
for _ in range(24):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    held.append(s)
print("fds_check", flush=True)
time.sleep(15)
open_ = 0
for s in held:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            continue
    except BlockingIOError:
        open_ += 1
        continue
    except OSError:
        continue
post = socket.create_connection(("127.0.0.1", port))
post.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
post.settimeout(15)
try:
    status = post.recv(100).split(b"\r\n")[0].decode(errors="replace")
except OSError:
    status = "none"
print("big=%s post=%s held_open_after_15s=%d" % (big_end.replace(" ", "_"), status.replace(" ", "_"), open_))
PY
}

@test "the metrics endpoint caps connections, header size and time, and serves GET only" {
  start_dest echo
  local mport
  mport=$(free_port)
  PRD_SERVER_EXTRA=(--metrics-listen "127.0.0.1:$mport")
  start_tunnel "$DEST_PORT"
  local pid base
  pid=$(pid_of server)
  base=$(fd_count "$pid")
  start_tool abuse bash -c "$(declare -f metrics_abuse); PRD_PYTHON=$PRD_PYTHON metrics_abuse $mport"
  wait_for_log "$(log_of abuse)" '^fds_check' 30
  local fds rss
  fds=$(fd_count "$pid")
  rss=$(rss_kb "$pid")
  echo "# descriptors: $base before, $fds with 26 metrics connections tried; RSS $rss kB"
  assert "$fds" -le $((base + 16 + 2)) "at most 16 metrics connections held (24 tried)"
  echo_ok "$SRV_PORT"
  wait_for_log "$(log_of abuse)" '^big=' 60
  local line
  line=$(grep '^big=' "$(log_of abuse)")
  echo "# $line"
  assert "$(field big "$line")" =~ "^(HTTP/1.1_4[0-9][0-9]|eof|reset)" "1 MiB of headers refused"
  assert "$(field held_open_after_15s "$line")" == 0 "half-sent requests closed by the timeout"
  assert "$(field post "$line")" =~ "^HTTP/1.1_(405|501)" "POST refused"
  run curl -fsS --max-time 10 "http://127.0.0.1:$mport/metrics"
  assert "$output" =~ "portredirect_clients_connected 1" "metrics still served"
  stop_all_checked
}

# heap_of PORT: the server's heap gauge from its metrics endpoint.
heap_of() {
  curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" |
    awk '/^portredirect_heap_allocated_bytes /{print $2}'
}

@test "before authentication the server grants 4 KiB on stream 0: a peer withholding offset 0 cannot make it buffer more" {
  evilpeer_build
  start_dest echo
  local mport
  mport=$(free_port)
  PRD_SERVER_EXTRA=(--metrics-listen "127.0.0.1:$mport" --auth-timeout 3)
  start_tunnel "$DEST_PORT"
  evil withhold --port "$QUIC_PORT" --local-host 127.0.0.90 --timeout 2 --hold 1
  echo "# $output"
  local credit
  credit=$(field stream0_credit "$output")
  assert "$credit" -ge 1040 "stream 0 credit covers one control frame (spec/04 §2)"
  assert "$credit" -le 4096 "stream 0 credit before authentication"
  # Heap growth of 20 silent handshakes, then of 20 that fill stream 0
  # without offset 0 (each connection is gone after the 3 s deadline).
  local mode h0 h1 growth_silent growth_withhold
  sleep 4
  for mode in silent withhold; do
    h0=$(heap_of "$mport")
    start_tool "flood-$mode" "$EVILPEER" "$mode" --port "$QUIC_PORT" -n 20 -c 20 \
      --local-host "$(addrs 90 93)" --timeout 4 --hold 2
    sleep 1.5
    h1=$(heap_of "$mport")
    wait_for_log "$(log_of "flood-$mode")" '^flood ' 10
    printf -v "growth_$mode" '%s' $((h1 - h0))
    sleep 3
  done
  local line
  line=$(cat "$(log_of flood-withhold)")
  echo "# $line"
  echo "# heap growth: 20 silent $((growth_silent / 1024)) KiB, 20 withholding $((growth_withhold / 1024)) KiB"
  assert "$(field withheld "$line")" -le $((20 * 4096)) "bytes the server had to buffer"
  assert "$growth_withhold" -le $((growth_silent + 20 * 64 * 1024)) "at most 64 KiB more per withholding connection"
  # An authenticated client still gets its control frames through.
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "kill -9 and restart of the server: the idle client's keepalive gets a stateless reset and traffic flows again within seconds" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  echo_ok "$SRV_PORT"
  sleep 1
  local client_lines t0 back
  client_lines=$(log_lines "$(log_of client)")
  kill -KILL "$(pid_of server)"
  wait_exit server 5
  sleep 1
  t0=$EPOCHREALTIME
  restart server
  # The client is idle: only its keepalive PINGs (about 40 bytes, every
  # 10 s by default) reach the new server, which must answer them with a
  # stateless reset (RFC 9000 §10.3) instead of leaving the client to its
  # 30 s idle timeout.
  wait_for_log_of client 'stateless reset' 20 "$client_lines"
  wait_tunnel_up client 20 "$client_lines"
  wait_for_echo "$SRV_PORT" 20
  back=$(since "$t0")
  echo "# traffic flows again $back s after the restart"
  assert_seconds_below "$back" 15 "time from the restart until traffic flows (idle timeout 30 s)"
  stop_all_checked
}

@test "files: a readable PSK file warns; a loose key log is refused, a new one is 0600; a world-writable config dir is refused" {
  start_dest echo
  # start_tunnel's PSK file, readable by others.
  local psk
  psk=$(_prd_state_dir)/psk
  make_psk "$psk"
  chmod 644 "$psk"
  local kl=$BATS_TEST_TMPDIR/fresh.keys
  PRD_SERVER_EXTRA=(--keylog-file "$kl")
  start_tunnel "$DEST_PORT"
  wait_for_log_of server "WARN +the PSK file ${psk//./\\.} is readable by group/others \(mode 0644\); run: chmod 600" 5
  # spec/08-security.md §6: the WARN names the offline guessing too.
  wait_for_log_of server "WARN +writing TLS secrets to .*decrypt the tunnel, and test PSK guesses offline" 5
  assert "$(stat -c %a "$kl")" == 600 "a new key log file is created 0600"
  echo_ok "$SRV_PORT"
  stop_all_checked
  # An existing key log that others can read is not used.
  local old=$BATS_TEST_TMPDIR/old.keys
  : >"$old"
  chmod 644 "$old"
  PRD_NO_WAIT=1 start_server -n loosekl --local-port "$(free_port)" --quic-server-port "$(free_port)" \
    --quic-psk-file "$psk" --keylog-file "$old"
  wait_exit loosekl 10
  assert "$EXIT_RC" == 2 "a group/world-readable key log file is refused"
  run grep -c "key log file ${old//./\\.} is not a regular file that only its owner can access (mode 0644)" "$(log_of loosekl)"
  assert "$output" == 1 "one line naming it"
  assert "$(stat -c %s "$old")" == 0 "nothing written to it"
  # A configuration directory everyone may write to: anyone could replace
  # the identity (server) or the pin (client).
  local dir=$BATS_TEST_TMPDIR/opendir
  mkdir -p "$dir"
  chmod 777 "$dir"
  PRD_NO_WAIT=1 start_server -n opendir --config-dir "$dir" --local-port "$(free_port)" \
    --quic-server-port "$(free_port)" --quic-psk-file "$psk"
  wait_exit opendir 10
  assert "$EXIT_RC" == 2 "a world-writable config dir is refused"
  run grep -c "config directory ${dir//./\\.} is writable by everyone (mode 0777); run: chmod 700" "$(log_of opendir)"
  assert "$output" == 1 "one line naming it"
}

@test "authentication failures are charged to the address that completed the handshake, not to a spoofed source" {
  evilpeer_build
  start_dest echo
  start_tunnel "$DEST_PORT"
  local wrong=$BATS_TEST_TMPDIR/wrong.psk
  make_psk "$wrong"
  # 127.0.0.101 completes each handshake, then sends its AUTH_RESPONSE with
  # the source address of 127.0.0.100 (the victim).
  evil wrongpsk --port "$QUIC_PORT" --psk-file "$wrong" -n 12 -c 1 \
    --local-host 127.0.0.101 --spoof-from 127.0.0.100 --timeout 60 --hs-timeout 3
  echo "# $output"
  wait_for_log_of server 'authentication failures from 127\.0\.0\.101.*refusing' 10
  run grep -c 'authentication failures from 127\.0\.0\.100' "$(log_of server)"
  assert "$output" == 0 "the victim's address was not charged"
  # A real client from the victim's address gets in.
  copy_cert server victim
  start_client -n victim --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-local-host 127.0.0.100 --quic-psk-file "$PSK_FILE"
  wait_tunnel_up victim 10
  stop_all_checked
}

@test "silent handshakes count towards the failure budget and their WARN lines are rate-limited" {
  evilpeer_build
  start_dest echo
  PRD_SERVER_EXTRA=(--auth-timeout 1)
  start_tunnel "$DEST_PORT"
  evil noanswer --port "$QUIC_PORT" -n 14 -c 1 --local-host 127.0.0.120 --timeout 60 --hs-timeout 3
  echo "# $output"
  # spec/03-auth.md §6: "including timeouts".
  wait_for_log_of server 'authentication failures from 127\.0\.0\.120.*refusing' 5
  assert "$(field no_handshake "$output")" -ge 1 "connections refused during the cool-down"
  run grep -c 'authentication timed out for 127\.0\.0\.120' "$(log_of server)"
  echo "# $output timeout lines for 10+ timeouts"
  assert "$output" -le 2 "timeout lines from one address (one per 10 s)"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

@test "cool-down trade-off: an address with an authenticated client is not cooled down; --auth-fail-exempt and --auth-fail-cooldown 0" {
  evilpeer_build
  start_dest echo
  PRD_SERVER_EXTRA=(--auth-fail-exempt 127.0.0.132/31)
  start_tunnel "$DEST_PORT"
  local wrong=$BATS_TEST_TMPDIR/wrong.psk
  make_psk "$wrong"
  # A good client behind the same address as an attacker (CGNAT, office NAT).
  copy_cert server shared
  start_client -n shared --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-local-host 127.0.0.130 --quic-psk-file "$PSK_FILE"
  wait_tunnel_up shared 10
  evil wrongpsk --port "$QUIC_PORT" --psk-file "$wrong" -n 12 -c 1 \
    --local-host 127.0.0.130 --timeout 60 --hs-timeout 3
  wait_for_log_of server 'failures from 127\.0\.0\.130.*not cooling it down, a client that authenticated from there is connected' 5
  # So the good client can come back at once after a restart.
  stop shared
  restart shared
  wait_tunnel_up shared 10
  # An exempt address is never cooled down.
  evil wrongpsk --port "$QUIC_PORT" --psk-file "$wrong" -n 12 -c 1 \
    --local-host 127.0.0.133 --timeout 60 --hs-timeout 3
  assert "$(field no_handshake "$output")" == 0 "the exempt address was never refused"
  run grep -c 'failures from 127\.0\.0\.133' "$(log_of server)"
  assert "$output" == 0 "no cool-down for an exempt address"
  echo_ok "$SRV_PORT"
  stop_all_checked
  # --auth-fail-cooldown 0: no cool-down at all.
  PRD_SERVER_EXTRA=(--auth-fail-cooldown 0)
  start_tunnel "$DEST_PORT"
  evil wrongpsk --port "$QUIC_PORT" --psk-file "$wrong" -n 12 -c 1 \
    --local-host 127.0.0.134 --timeout 60 --hs-timeout 3
  assert "$(field no_handshake "$output")" == 0 "never refused with --auth-fail-cooldown 0"
  stop_all_checked
}

# spoofed_initials PORT N: N fake Initial datagrams (1200 bytes) to
# 127.0.0.1:PORT from random source addresses in 127.64.0.0/10 (raw socket,
# needs root).
spoofed_initials() {
  "$PRD_PYTHON" - "$1" "$2" <<'PY'
import os, random, socket, struct, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
for i in range(n):
    src = "127.%d.%d.%d" % (random.randint(64, 127), random.randint(0, 255), random.randint(1, 254))
    # Long header, Initial, version 1, 8-byte DCID, no SCID, no token.
    quic = bytes([0xc3]) + struct.pack("!I", 1) + bytes([8]) + os.urandom(8) + b"\x00\x00"
    quic += struct.pack("!H", 0x4000 | (1200 - len(quic) - 2)) + os.urandom(1200 - len(quic) - 2)
    udp = struct.pack("!HHHH", random.randint(1024, 65535), port, 8 + len(quic), 0) + quic
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xffff, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton("127.0.0.1"))
    s.sendto(ip + udp, ("127.0.0.1", 0))
print("sent", n)
PY
}

@test "spoofed Initials from many sources do not evict an address's cool-down from the per-address table" {
  [[ $(id -u) == 0 ]] || skip "needs root for a raw socket"
  evilpeer_build
  start_dest echo
  start_tunnel "$DEST_PORT"
  local wrong=$BATS_TEST_TMPDIR/wrong.psk
  make_psk "$wrong"
  evil wrongpsk --port "$QUIC_PORT" --psk-file "$wrong" -n 10 -c 1 \
    --local-host 127.0.0.110 --timeout 60 --hs-timeout 3
  wait_for_log_of server 'authentication failures from 127\.0\.0\.110.*refusing' 5
  run spoofed_initials "$QUIC_PORT" 20000
  echo "# $output"
  sleep 1
  # Still in its cool-down: the next attempt is dropped, not served.
  evil wrongpsk --port "$QUIC_PORT" --psk-file "$wrong" -n 1 \
    --local-host 127.0.0.110 --timeout 10 --hs-timeout 3
  echo "# $output"
  assert "$output" =~ "handshake=no" "127.0.0.110 still refused after 20,000 spoofed Initials"
  echo_ok "$SRV_PORT"
  stop_all_checked
}

# client_heap PORT: the client's heap gauge.
client_heap() {
  curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" |
    awk '/^portredirect_heap_allocated_bytes /{print $2}'
}

@test "a server that opens 3,000 streams with one byte of header each: the client holds little, refuses the excess, times out the rest" {
  evilpeer_build
  start_dest echo
  make_psk "$BATS_TEST_TMPDIR/psk"
  start_server -n identity --local-host 127.0.0.1 --local-port "$(free_port)" \
    --quic-server-port "$(free_port)" --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  stop identity
  local port mport
  port=$(free_port)
  mport=$(free_port)
  copy_cert identity client
  start_tool evilsrv "$EVILPEER" server --port "$port" --psk-file "$BATS_TEST_TMPDIR/psk" \
    --cert "$(config_dir identity)/cert.der" --key "$(config_dir identity)/key.der" \
    --script good --bytes 1000 --flood 3000 --hold 14 --timeout 60
  wait_for_log "$(log_of evilsrv)" '^server listening' 10
  start_client --destination-host 127.0.0.1 --destination-port "$DEST_PORT" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$port" \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk" --metrics-listen "127.0.0.1:$mport"
  wait_tunnel_up client
  local h1 h2
  wait_for_log "$(log_of evilsrv)" '^server script done' 30
  sleep 1
  h1=$(client_heap "$mport")
  echo "# client heap: $((h1 / 1024)) KiB with 3,000 incomplete headers"
  # 64 KiB each before: about 190 MiB.
  assert "$h1" -le $((16 * 1024 * 1024)) "the client's heap with 3,000 one-byte headers"
  # spec/08-security.md §3: incomplete headers time out (10 s).
  sleep 12
  h2=$(client_heap "$mport")
  echo "# client heap $((h2 / 1024)) KiB after the header timeout"
  assert "$h2" -lt "$h1" "the held headers were released"
  wait_for_log "$(log_of evilsrv)" '^server summary' 30
  run grep -c 'echo-ok' "$(log_of evilsrv)"
  assert "$output" == 1 "the good stream was served"
  is_running client || die "the client died"
}
