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

@test "server --idle-timeout 3 --keepalive 0: the client keeps the tunnel up for 30 s" {
  start_dest echo
  PRD_SERVER_EXTRA=(--idle-timeout 3 --keepalive 0)
  start_tunnel "$DEST_PORT"
  echo_ok "$SRV_PORT"
  local before
  before=$(log_lines "$(log_of client)")
  sleep 30
  if _log_has "$(log_of client)" 'tunnel .* down|tunnel up' "$before"; then
    tail -n 20 "$(log_of client)" | sed -e 's/^/# client: /'
    die "the tunnel went down while idle"
  fi
  echo_ok "$SRV_PORT"
  stop_all_checked
}
