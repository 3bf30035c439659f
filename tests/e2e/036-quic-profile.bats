#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# The QUIC profile as a peer sees it: datagram sizes before the handshake
# completes (spec/04-quic-profile.md §5) and a keepalive that follows the
# negotiated idle timeout (§2.2).

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers
load helpers_rel

@test "loopback: no datagram above 1,200 bytes until the handshake completes" {
  start_dest echo
  start_tunnel_relay "$DEST_PORT" --trace 400
  # Large stream data after the handshake: short-header datagrams may then
  # be large (the peer's max_udp_payload_size is known).
  run_helper --timeout 60 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 1 -s 1048576 --timeout 30
  assert_line "ok 1"
  local log nlong nbig biggest
  log=$(log_of relay)
  nlong=$(awk '$1 == "dgram" && $4 == "long"' "$log" | wc -l)
  nbig=$(awk '$1 == "dgram" && $4 == "long" && $3 > 1200' "$log" | wc -l)
  biggest=$(awk '$1 == "dgram" && $4 == "short" {if ($3 > m) m = $3} END {print m + 0}' "$log")
  echo "# $nlong handshake datagrams, $nbig above 1,200 bytes; largest after: $biggest" >&3
  ((nlong >= 2)) || die "no handshake datagram seen by the relay"
  assert "$nbig" == 0 "handshake datagrams above 1,200 bytes"
  # Loopback still gets its large datagrams once the handshake is done.
  ((biggest > 1452)) || die "largest datagram after the handshake: $biggest bytes"
}

@test "server --idle-timeout 3 --keepalive 0: the client keeps the tunnel up while idle (12 s; 30 s long)" {
  # Through the relay, which counts datagrams: the client must ping every
  # 1.5 s (half the 3 s both sides agreed on), and an endpoint with
  # --keepalive 0 must send no PINGs of its own (ngtcp2 0.12 read the 1.x
  # "off" value as an expiry in the past and pinged without pause).
  start_dest echo
  PRD_SERVER_EXTRA=(--idle-timeout 3 --keepalive 0)
  start_tunnel_relay "$DEST_PORT"
  echo_ok "$SRV_PORT"
  local before s0 s1 up down idle=12
  [[ ${LONG:-0} == 1 ]] && idle=30
  before=$(log_lines "$(log_of client)")
  s0=$(relay_cmd stats)
  sleep "$idle"
  s1=$(relay_cmd stats)
  if _log_has "$(log_of client)" 'tunnel .* down|tunnel up' "$before"; then
    tail -n 20 "$(log_of client)" | sed -e 's/^/# client: /'
    die "the tunnel went down while idle"
  fi
  up=$(($(field up_rx "$s1") - $(field up_rx "$s0")))
  down=$(($(field down_rx "$s1") - $(field down_rx "$s0")))
  echo "# idle $idle s: $up datagrams up, $down down" >&3
  # A PING every 1.5 s makes idle/1.5; ask for half of that.
  ((up >= idle / 3)) || die "only $up datagrams from the client in $idle s: no keepalive"
  ((up <= idle * 7 && down <= idle * 7)) || die "$up datagrams up, $down down in $idle s idle"
  echo_ok "$SRV_PORT"
  stop_all_checked
}
