#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Normal operation: bytes through the tunnel arrive intact in both
# directions, with half-close, many connections, HTTP and server-first
# protocols. Each test ends with both binaries stopped by SIGTERM (exit 0)
# and no ERROR line in their logs.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

md5_of() {
  md5sum "$1" | cut -d' ' -f1
}

@test "echo through the tunnel (nc, socat)" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  run_helper bash -c "printf 'hello\nworld\n' | nc -N 127.0.0.1 $SRV_PORT"
  assert "$output" == $'hello\nworld' "echo through nc"
  run_helper bash -c "printf 'via socat\n' | socat -t 10 - TCP:127.0.0.1:$SRV_PORT"
  assert "$output" == "via socat" "echo through socat"
  echo_ok "$SRV_PORT"
  wait_for_log_of server 'client authenticated.*127\.0\.0\.1' 5
  stop_all_checked
}

@test "64 MiB of random data user -> destination arrive intact (md5)" {
  head -c 64M /dev/urandom >"$BATS_TEST_TMPDIR/up.bin"
  start_dest sink
  start_tunnel "$DEST_PORT"
  run_helper --timeout 240 bash -c "nc -N 127.0.0.1 $SRV_PORT <'$BATS_TEST_TMPDIR/up.bin'"
  assert "$output" == "$(md5_of "$BATS_TEST_TMPDIR/up.bin") 67108864" \
    "md5 and size seen by the destination"
  stop_all_checked
}

@test "64 MiB of random data destination -> user arrive intact (md5)" {
  head -c 64M /dev/urandom >"$BATS_TEST_TMPDIR/down.bin"
  start_dest source --file "$BATS_TEST_TMPDIR/down.bin"
  start_tunnel "$DEST_PORT"
  probe 127.0.0.1 "$SRV_PORT" --timeout 200 --out "$BATS_TEST_TMPDIR/got.bin"
  assert "${lines[0]}" =~ "^recv=67108864 end=eof " "all bytes, then EOF"
  assert "$(md5_of "$BATS_TEST_TMPDIR/got.bin")" == \
    "$(md5_of "$BATS_TEST_TMPDIR/down.bin")" "md5 of what the user got"
  stop_all_checked
}

@test "200 concurrent checksummed transfers" {
  start_dest echo
  start_tunnel "$DEST_PORT"
  run_helper --timeout 300 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 200 -s $((256 * 1024)) --timeout 240
  assert_line "ok 200"
  echo "# ${lines[0]}" >&3
  stop_all_checked
}

@test "curl through the tunnel to python3 http.server" {
  local www=$BATS_TEST_TMPDIR/www http_port
  mkdir -p "$www"
  echo "<h1>portredirect e2e</h1>" >"$www/index.html"
  head -c 3M /dev/urandom >"$www/blob.bin"
  http_port=$(free_port)
  start_tool http "$PRD_PYTHON" -u -m http.server --bind 127.0.0.1 \
    --directory "$www" "$http_port"
  wait_for_log "$(log_of http)" "Serving HTTP" 10
  start_tunnel "$http_port"
  run_helper curl -fsS "http://127.0.0.1:$SRV_PORT/index.html"
  assert "$output" == "<h1>portredirect e2e</h1>" "the page through the tunnel"
  run_helper curl -fsS -o "$BATS_TEST_TMPDIR/a.bin" "http://127.0.0.1:$SRV_PORT/blob.bin" \
    -o "$BATS_TEST_TMPDIR/b.bin" "http://127.0.0.1:$SRV_PORT/blob.bin"
  assert "$(md5_of "$BATS_TEST_TMPDIR/a.bin")" == "$(md5_of "$www/blob.bin")" "first download"
  assert "$(md5_of "$BATS_TEST_TMPDIR/b.bin")" == "$(md5_of "$www/blob.bin")" "second download"
  stop_all_checked
}

@test "a destination that speaks first (banner) reaches a silent user" {
  start_dest banner --banner "220 e2e.example ESMTP ready"
  start_tunnel "$DEST_PORT"
  probe 127.0.0.1 "$SRV_PORT" --until "ready" --timeout 5
  assert "${lines[0]}" =~ " end=until " "banner arrived without the user sending"
  assert "${lines[1]}" == "data=b'220 e2e.example ESMTP ready\\r\\n'" "banner bytes"
  # The conversation goes on after the banner.
  probe 127.0.0.1 "$SRV_PORT" --send "EHLO user\r\n" --shut-wr --timeout 5
  assert "${lines[1]}" == "data=b'220 e2e.example ESMTP ready\\r\\nEHLO user\\r\\n'" \
    "banner, then the echoed command"
  stop_all_checked
}

@test "half-close: the user shuts down writing and still gets the whole answer" {
  head -c 1M /dev/urandom >"$BATS_TEST_TMPDIR/in.bin"
  start_dest eofecho
  start_tunnel "$DEST_PORT"
  # The destination answers only after it has read EOF.
  run_helper --timeout 60 bash -c \
    "socat -t 30 - TCP:127.0.0.1:$SRV_PORT <'$BATS_TEST_TMPDIR/in.bin' >'$BATS_TEST_TMPDIR/out.bin'"
  assert "$(md5_of "$BATS_TEST_TMPDIR/out.bin")" == "$(md5_of "$BATS_TEST_TMPDIR/in.bin")" \
    "answer sent after EOF"
  run_helper --timeout 30 bash -c "printf abc | socat -t 10 - TCP:127.0.0.1:$SRV_PORT"
  assert "$output" == "abc" "small answer after EOF"
  stop_all_checked
}

@test "half-close: the destination finishes first, the user keeps sending" {
  head -c 2M /dev/urandom >"$BATS_TEST_TMPDIR/in.bin"
  start_dest source --bytes 5000 --record "$BATS_TEST_TMPDIR/record"
  start_tunnel "$DEST_PORT"
  probe 127.0.0.1 "$SRV_PORT" --wait-eof-first --send-file "$BATS_TEST_TMPDIR/in.bin" \
    --shut-wr --timeout 30
  assert "${lines[0]}" =~ "^recv=5000 end=eof " "the destination's bytes and its FIN"
  wait_for_log "$BATS_TEST_TMPDIR/record" \
    " $(md5_of "$BATS_TEST_TMPDIR/in.bin") 2097152 5000 eof$" 20
  stop_all_checked
}

@test "stream credit is replenished: many connections one after another" {
  start_dest echo
  start_tunnel "$DEST_PORT" --max-streams 8
  run_helper --timeout 120 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 100 -s 1000 --sequential --timeout 30
  assert_line "ok 100"
  echo "# ${lines[0]}" >&3
  stop_all_checked
}

@test "IPv6 loopback end to end" {
  ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/128' || skip "no ::1 here"
  start_dest echo --host ::1
  make_psk "$BATS_TEST_TMPDIR/psk"
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host ::1 --local-port "$SRV_PORT" --quic-server-host ::1 \
    --quic-server-port "$QUIC_PORT" --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  copy_cert server client
  start_client --destination-host ::1 --destination-port "$DEST_PORT" \
    --quic-remote-host ::1 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$BATS_TEST_TMPDIR/psk"
  wait_tunnel_up
  echo_ok "$SRV_PORT" ::1
  stop_all_checked
}

@test "--log-level debug works and stays free of ERROR lines" {
  start_dest echo
  PRD_SERVER_EXTRA=(--log-level debug)
  start_tunnel "$DEST_PORT" --log-level debug
  echo_ok "$SRV_PORT"
  wait_for_log_of server ' DEBUG ' 5
  stop_all_checked
}

@test "--print-metrics prints a counter line when the counters change" {
  start_dest echo
  PRD_SERVER_EXTRA=(--print-metrics)
  start_tunnel "$DEST_PORT"
  echo_ok "$SRV_PORT"
  wait_for_log_of server 'connections_total=1[^0-9]' 5
  stop_all_checked
}

@test "--proxy-protocol v1 tells the destination the user's address" {
  start_dest eofecho
  start_tunnel "$DEST_PORT" --proxy-protocol v1
  probe 127.0.0.1 "$SRV_PORT" --send "hello" --shut-wr --timeout 10
  local re="^data=b'PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 [0-9]+ $SRV_PORT"
  re+="\\\\r\\\\nhello'\$"
  assert "${lines[1]}" =~ "$re" "PROXY v1 line, then the user's bytes"
  stop_all_checked
}

@test "--proxy-protocol v2 tells the destination the user's address" {
  start_dest eofecho
  start_tunnel "$DEST_PORT" --proxy-protocol v2
  probe 127.0.0.1 "$SRV_PORT" --send "hello" --shut-wr --timeout 10 \
    --out "$BATS_TEST_TMPDIR/got.bin"
  run_helper "$PRD_PYTHON" -c '
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:12] == b"\r\n\r\n\x00\r\nQUIT\n", ("signature", b[:16])
assert b[12] == 0x21 and b[13] == 0x11, ("version/command, family", b[12:14])
n = struct.unpack("!H", b[14:16])[0]
assert n >= 12, ("length", n)
src, dst, sport, dport = struct.unpack("!4s4sHH", b[16:28])
assert src == dst == bytes([127, 0, 0, 1]), (src, dst)
assert dport == int(sys.argv[2]), ("destination port", dport)
assert b[16 + n:] == b"hello", ("payload", b[16 + n:])
print("PROXY v2 from port %d ok" % sport)
' "$BATS_TEST_TMPDIR/got.bin" "$SRV_PORT"
  stop_all_checked
}

@test "long: 1 GiB each way through one connection" {
  skip_unless_long
  start_dest echo
  start_tunnel "$DEST_PORT"
  run_helper --timeout 900 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 1 -s $((1024 * 1024 * 1024)) -b 65536 --timeout 800
  assert_line "ok 1"
  echo "# ${lines[0]}" >&3
  stop_all_checked
}

@test "long: 500 concurrent checksummed transfers" {
  skip_unless_long
  start_dest echo
  start_tunnel "$DEST_PORT"
  run_helper --timeout 600 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 500 -s $((1024 * 1024)) --timeout 500
  assert_line "ok 500"
  echo "# ${lines[0]}" >&3
  stop_all_checked
}
