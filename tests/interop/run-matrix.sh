#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# The interop matrix: portredirect_server/client (ngtcp2 + GnuTLS) against
# prd-interop-peer (quinn + rustls, written from spec/), in both pairings.
#
# Usage: tests/interop/run-matrix.sh
# Environment:
#   PRD_BIN_DIR  directory of portredirect_server and portredirect_client
#                (default build/)
#   PRD_PEER     the peer binary (default build/interop-peer/release/prd-interop-peer)
#   PRD_PYTHON   python3 to use (default python3)
#   KEEP=1       keep the work directory with every log
#   PAIRINGS     "c-rust rust-c" (default both; server impl first)
#   DRAIN_RUNS   runs of each drain case (default 5; 0 skips them)
#   ONLY         run only these cases of each pairing: any of wrong-psk,
#                keepalive, drain-server, drain-client, services, client-names,
#                udp, tcp-path (with tcp-path-move: root, ip netns, nft)
#                (default: everything)
#
# Prints one line per check, the throughput of one 16 MiB stream per
# pairing, and a summary whose last line is "N passed, N failed". Exits 0
# only when nothing failed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
ROOT=$PWD
BIN_DIR=${PRD_BIN_DIR:-$ROOT/build}
PEER=${PRD_PEER:-$ROOT/build/interop-peer/release/prd-interop-peer}
PY=${PRD_PYTHON:-python3}
PAIRINGS=${PAIRINGS:-c-rust rust-c}
TOOL=("$PY" "$ROOT/tests/interop/nettool.py")

for f in "$BIN_DIR/portredirect_server" "$BIN_DIR/portredirect_client" "$PEER"; do
  if [[ ! -x $f ]]; then
    echo "run-matrix: $f is missing (set PRD_BIN_DIR / PRD_PEER, or run ci/interop.sh)" >&2
    exit 2
  fi
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/prd-interop.XXXXXX")
declare -A PID=()
passed=0
failed=0
RESULTS=()
THROUGHPUT=()

cleanup() {
  local n
  for n in "${!PID[@]}"; do
    kill "${PID[$n]}" 2>/dev/null
  done
  wait 2>/dev/null
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

log() { printf '%s\n' "$*"; }

# start NAME CMD...: run CMD in the background, output to $WORK/NAME.log;
# under the command in WRAP if set (ip netns exec NS).
WRAP=()
start() {
  local name=$1
  shift
  "${WRAP[@]}" "$@" >"$WORK/$name.log" 2>&1 &
  PID[$name]=$!
}

# stop NAME: SIGTERM, then SIGKILL after 3 s.
stop() {
  local name=$1 p i
  p=${PID[$name]:-}
  [[ -n $p ]] || return 0
  kill "$p" 2>/dev/null
  for ((i = 0; i < 60; i++)); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  unset "PID[$name]"
}

# wait_log NAME REGEX SECONDS: until the log matches (0) or time runs out.
wait_log() {
  local name=$1 re=$2 t=$3 i
  for ((i = 0; i < t * 20; i++)); do
    grep -Eq -- "$re" "$WORK/$name.log" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

has_log() { grep -Eq -- "$2" "$WORK/$1.log" 2>/dev/null; }

# Evidence line from a log, for the report.
evidence() { grep -Em1 -- "$2" "$WORK/$1.log" 2>/dev/null | cut -c26- | cut -c1-150; }

pass() {
  passed=$((passed + 1))
  RESULTS+=("PASS $1")
  log "PASS $1${2:+ — $2}"
}

fail() {
  local name=$1 why=$2 l
  shift 2
  failed=$((failed + 1))
  RESULTS+=("FAIL $name: $why")
  log "FAIL $name: $why"
  for l in "$@"; do
    log "---- $l.log (last 15 lines)"
    tail -n 15 "$WORK/$l.log" 2>/dev/null | sed 's/^/    /'
  done
}

freeport() { "${TOOL[@]}" freeport; }

impl_name() { [[ $1 == c ]] && echo "portredirect (ngtcp2+GnuTLS)" || echo "peer (quinn+rustls)"; }

# grace IMPL ARGS...: a short --shutdown-grace (ours 1 s, the peer's 2 s)
# unless ARGS give one.
grace() {
  local impl=$1
  shift
  [[ " $* " == *" --shutdown-grace "* ]] && return
  [[ $impl == c ]] && echo "--shutdown-grace 1" || echo "--shutdown-grace 2"
}

# server IMPL NAME TCP UDP PSKFILE IDDIR [EXTRA...]
server() {
  local impl=$1 name=$2 tp=$3 qp=$4 psk=$5 id=$6
  shift 6
  local g
  read -ra g <<<"$(grace "$impl" "$@")"
  local args=(--local-host 127.0.0.1 --local-port "$tp" --quic-server-host 127.0.0.1
    --quic-server-port "$qp" --quic-psk-file "$psk" --config-dir "$id" --pending-timeout 1 "$@" "${g[@]}")
  if [[ $impl == c ]]; then
    start "$name" "$BIN_DIR/portredirect_server" "${args[@]}"
  else
    start "$name" "$PEER" server "${args[@]}"
  fi
  wait_log "$name" 'TCP listening on' 10
}

# client IMPL NAME DESTPORT UDP PSKFILE PIN HOSTNAME [EXTRA...]
client() {
  local impl=$1 name=$2 dp=$3 qp=$4 psk=$5 pin=$6 host=$7
  shift 7
  local g
  read -ra g <<<"$(grace "$impl" "$@")"
  local args=(--destination-host 127.0.0.1 --destination-port "$dp"
    --quic-remote-host 127.0.0.1 --quic-remote-port "$qp"
    --quic-remote-hostname-match "$host" --quic-psk-file "$psk"
    --server-cert "$pin" --config-dir "$WORK/cdir-$name")
  if [[ $impl == c ]]; then
    start "$name" "$BIN_DIR/portredirect_client" "${args[@]}" "${g[@]}" "$@"
  else
    start "$name" "$PEER" client "${args[@]}" "${g[@]}" "$@"
  fi
}

# --- identities and keys -------------------------------------------------
ID=$WORK/id            # made by portredirect_server: SANs 127.0.0.1, localhost, ::1
OTHER=$WORK/id-other   # another identity: the wrong pin
"$BIN_DIR/portredirect_server" --print-fingerprint --config-dir "$ID" >/dev/null || exit 1
"$BIN_DIR/portredirect_server" --print-fingerprint --config-dir "$OTHER" >/dev/null || exit 1
PSK=$WORK/psk
BADPSK=$WORK/psk-wrong
umask 077
head -c 32 /dev/urandom | base64 >"$PSK"
head -c 32 /dev/urandom | base64 >"$BADPSK"

# --- one pairing ---------------------------------------------------------
pairing() {
  local s=$1 c=$2 tag="$1→$2"
  local label
  label="server $(impl_name "$s") ↔ client $(impl_name "$c")"
  log ""
  log "=== $label"
  if [[ -n ${ONLY:-} ]]; then
    local k
    for k in $ONLY; do
      case $k in
        wrong-psk) auth_case "$s" "$c" "wrong PSK" "$BADPSK" "$ID/cert.der" localhost ;;
        keepalive) keepalive_case "$s" "$c" ;;
        drain-server) drain_case "$s" "$c" server ;;
        drain-client) drain_case "$s" "$c" client ;;
        services) services_case "$s" "$c" && services_plain_case "$s" "$c" ;;
        client-names) client_names_case "$s" "$c" ;;
        udp) udp_case "$s" "$c" ;;
        tcp-path) tcp_path_case "$s" "$c" && tcp_path_move_case "$s" "$c" ;;
        *) fail "ONLY" "unknown case $k" ;;
      esac
    done
    return
  fi
  local tp qp dp out
  tp=$(freeport)
  qp=$(freeport)
  dp=$(freeport)
  local S="srv-$s-$c" C="cli-$s-$c" D="dest-$s-$c"
  local REPORT=$WORK/$D.report
  : >"$REPORT"
  start "$D" "${TOOL[@]}" dest --port "$dp" --report "$REPORT" --bytes $((16 << 20))
  wait_log "$D" '^listening' 10
  if ! server "$s" "$S" "$tp" "$qp" "$PSK" "$ID"; then
    fail "$tag start server" "not listening" "$S"
    stop "$D"
    return
  fi
  client "$c" "$C" "$dp" "$qp" "$PSK" "$ID/cert.der" localhost
  if wait_log "$C" 'tunnel up' 15; then
    pass "$tag authenticate (PSK, pin, SAN localhost)" "$(evidence "$S" 'authenticated')"
  else
    fail "$tag authenticate" "no 'tunnel up'" "$S" "$C"
    stop "$C"
    stop "$S"
    stop "$D"
    return
  fi

  # Echo with a half-close.
  if out=$("${TOOL[@]}" echo --port "$tp" --timeout 20 2>&1) && [[ $out == ok ]]; then
    pass "$tag echo"
  else
    fail "$tag echo" "$out" "$S" "$C"
  fi

  # 16 MiB each way at once, checksummed, each side half-closing.
  if out=$("${TOOL[@]}" bulk --port "$tp" --bytes $((16 << 20)) --report "$REPORT" --timeout 30 2>&1) &&
    [[ $out == ok* ]]; then
    read -r _ up down secs <<<"$out"
    pass "$tag 16 MiB each way, SHA-256 checked, half-close" "up $up MB/s, down $down MB/s, ${secs} s"
    THROUGHPUT+=("$label: one stream, 16 MiB each way at once: user→destination $up MB/s, destination→user $down MB/s")
  else
    fail "$tag 16 MiB each way" "$out" "$S" "$C"
  fi

  # 50 concurrent transfers.
  if out=$("${TOOL[@]}" concurrent --port "$tp" -n 50 --bytes $((1 << 20)) --timeout 20 2>&1) &&
    [[ $out == ok* ]]; then
    pass "$tag 50 concurrent transfers of 1 MiB, echoed and checked" "$(awk '{print $3 " s"}' <<<"$out")"
  else
    fail "$tag 50 concurrent transfers" "$(sort <<<"$out" | head -n 3 | tr '\n' ' ')(of $(grep -c FAIL <<<"$out") failed)" "$S" "$C"
  fi

  # 50 concurrent transfers whose answers flow only after each user's
  # half-close.
  if out=$("${TOOL[@]}" concurrent --port "$tp" -n 50 --bytes $((1 << 20)) --mode eofecho --timeout 20 2>&1) &&
    [[ $out == ok* ]]; then
    pass "$tag 50 concurrent transfers of 1 MiB, answered after the half-close" "$(awk '{print $3 " s"}' <<<"$out")"
  else
    fail "$tag 50 concurrent transfers answered after the half-close" "$(sort <<<"$out" | head -n 3 | tr '\n' ' ')(of $(grep -c FAIL <<<"$out") failed)" "$S" "$C"
  fi

  # The user resets: the destination sees a reset; the client side saw
  # USER_RESET from the server side.
  "${TOOL[@]}" user-reset --port "$tp" --wait 0.5 >/dev/null 2>&1
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q '^watch' "$REPORT" && break
    sleep 0.05
  done
  if grep -q '^watch reset' "$REPORT" && wait_log "$C" 'USER_RESET' 5; then
    pass "$tag user reset → destination reset, USER_RESET (0x09) reached the client" "$(evidence "$C" 'USER_RESET')"
  else
    fail "$tag user reset" "destination: $(grep '^watch' "$REPORT" || echo nothing); client log USER_RESET: $(has_log "$C" USER_RESET && echo yes || echo no)" "$S" "$C"
  fi

  # The destination resets: the user sees a reset; the server side saw
  # DESTINATION_RESET from the client side.
  if out=$("${TOOL[@]}" expect-reset --port "$tp" --mode rst --wait 5 2>&1) && [[ $out == reset ]] &&
    wait_log "$S" 'DESTINATION_RESET' 5; then
    pass "$tag destination reset → user reset, DESTINATION_RESET (0x08) reached the server" "$(evidence "$S" 'DESTINATION_RESET')"
  else
    fail "$tag destination reset" "user saw: $out; server log DESTINATION_RESET: $(has_log "$S" DESTINATION_RESET && echo yes || echo no)" "$S" "$C"
  fi

  # The destination is down: the user sees a reset; the server side saw
  # DESTINATION_UNREACHABLE from the client side.
  stop "$D"
  if out=$("${TOOL[@]}" expect-reset --port "$tp" --wait 5 2>&1) && [[ $out == reset ]] &&
    wait_log "$S" 'DESTINATION_UNREACHABLE' 5; then
    pass "$tag destination down → user reset, DESTINATION_UNREACHABLE (0x07) reached the server" "$(evidence "$S" 'DESTINATION_UNREACHABLE')"
  else
    fail "$tag destination down" "user saw: $out; server log DESTINATION_UNREACHABLE: $(has_log "$S" DESTINATION_UNREACHABLE && echo yes || echo no)" "$S" "$C"
  fi
  stop "$C"
  stop "$S"

  auth_case "$s" "$c" "wrong PSK" "$BADPSK" "$ID/cert.der" localhost
  auth_case "$s" "$c" "wrong pin" "$PSK" "$OTHER/cert.der" localhost
  auth_case "$s" "$c" "SAN mismatch" "$PSK" "$ID/cert.der" wrong.example
  name_ok "$s" "$c" "[::1]"
  services_case "$s" "$c"
  services_plain_case "$s" "$c"
  client_names_case "$s" "$c"
  udp_case "$s" "$c"
  tcp_path_case "$s" "$c"
  tcp_path_move_case "$s" "$c"
  shutdown_case "$s" "$c"
  keepalive_case "$s" "$c"
  drain_case "$s" "$c" server
  drain_case "$s" "$c" client
}

# udp_case S C: a UDP service (spec/10-udp.md) beside the TCP default:
# DATAGRAMS negotiated, 50 users with 3 datagrams each all get their own
# replies back from a UDP echo behind the client, and TCP still echoes.
udp_case() {
  local s=$1 c=$2 tag="$1→$2"
  local tp up qp dp ep out ok=1 why=""
  tp=$(freeport)
  up=$(freeport)
  qp=$(freeport)
  dp=$(freeport)
  local S="srv-$s-$c-udp" C="cli-$s-$c-udp" D="dest-$s-$c-udp" E="uecho-$s-$c"
  start "$D" "${TOOL[@]}" dest --port "$dp" --report "$WORK/$D.report"
  start "$E" "$PY" "$ROOT/tests/tools/udpusers.py" echo
  wait_log "$D" '^listening' 10
  wait_log "$E" '^listening' 10
  ep=$(awk '/^listening /{print $3; exit}' "$WORK/$E.log")
  if ! server "$s" "$S" "$tp" "$qp" "$PSK" "$ID" --service "dns=udp:127.0.0.1:$up"; then
    fail "$tag udp: server" "not listening" "$S"
    stop "$D"
    stop "$E"
    return
  fi
  client "$c" "$C" "$dp" "$qp" "$PSK" "$ID/cert.der" localhost --service "dns=udp:127.0.0.1:$ep"
  if ! wait_log "$C" 'tunnel up' 15; then
    fail "$tag udp" "no 'tunnel up'" "$S" "$C"
  else
    sleep 0.3
    out=$("$PY" "$ROOT/tests/tools/udpusers.py" users 127.0.0.1 "$up" --users 50 --count 3 --timeout 10 2>&1)
    [[ $out == *"sent=150 received=150 foreign=0 bad=0"* ]] || { ok=0; why+="UDP users: $out; "; }
    out=$("${TOOL[@]}" echo --port "$tp" --timeout 20 2>&1)
    [[ $out == ok ]] || { ok=0; why+="TCP echo beside it: $out; "; }
    if [[ $ok == 1 ]]; then
      pass "$tag udp: DATAGRAMS negotiated, 150 datagrams of 50 users all answered to their own users, TCP beside them"
    else
      fail "$tag udp" "$why" "$S" "$C"
    fi
  fi
  stop "$C"
  stop "$S"
  stop "$D"
  stop "$E"
}

# tcp_path_case S C: the TCP path (spec/11-tcp-path.md). The server's QUIC
# UDP port is QP and its TCP path listens on another port, TQ; the client
# dials TQ with --quic-transport tcp, where nothing listens on UDP, so the
# tunnel can only run over TCP: authenticate, echo, 16 MiB each way
# checksummed. Then a client dialling over TCP a server whose TCP path is
# off says that the server offers no TCP path.
tcp_path_case() {
  local s=$1 c=$2 tag="$1→$2"
  local tp qp tq dp out ok=1 why=""
  tp=$(freeport)
  qp=$(freeport)
  tq=$(freeport)
  dp=$(freeport)
  local S="srv-$s-$c-tcp" C="cli-$s-$c-tcp" D="dest-$s-$c-tcp" REPORT=$WORK/dest-$s-$c-tcp.report
  : >"$REPORT"
  start "$D" "${TOOL[@]}" dest --port "$dp" --report "$REPORT" --bytes $((16 << 20))
  wait_log "$D" '^listening' 10
  if ! server "$s" "$S" "$tp" "$qp" "$PSK" "$ID" --quic-tcp-listen "127.0.0.1:$tq"; then
    fail "$tag tcp-path: server" "not listening" "$S"
    stop "$D"
    return
  fi
  client "$c" "$C" "$dp" "$tq" "$PSK" "$ID/cert.der" localhost --quic-transport tcp
  if ! wait_log "$C" 'tunnel up' 15; then
    fail "$tag tcp-path" "no 'tunnel up' over TCP" "$S" "$C"
  else
    out=$("${TOOL[@]}" echo --port "$tp" --timeout 20 2>&1)
    [[ $out == ok ]] || { ok=0; why+="echo: $out; "; }
    if out=$("${TOOL[@]}" bulk --port "$tp" --bytes $((16 << 20)) --report "$REPORT" --timeout 60 2>&1) &&
      [[ $out == ok* ]]; then
      read -r _ up down secs <<<"$out"
      THROUGHPUT+=("server $(impl_name "$s") ↔ client $(impl_name "$c") over the TCP path: one stream, 16 MiB each way at once: user→destination $up MB/s, destination→user $down MB/s")
    else
      ok=0
      why+="16 MiB each way: $out; "
    fi
    if [[ $ok == 1 ]]; then
      pass "$tag tcp-path: over TCP only (no UDP on the port dialled): authenticate, echo, 16 MiB each way SHA-256 checked" "up $up MB/s, down $down MB/s"
    else
      fail "$tag tcp-path" "$why" "$S" "$C"
    fi
  fi
  stop "$C"
  stop "$S"
  # A server without the TCP path: the client says so (spec/11 §2.1, §3.2).
  local S2="srv-$s-$c-notcp" C2="cli-$s-$c-notcp"
  qp=$(freeport)
  tp=$(freeport)
  if ! server "$s" "$S2" "$tp" "$qp" "$PSK" "$ID" --quic-tcp-listen off; then
    fail "$tag tcp-path off: server" "not listening" "$S2"
  else
    client "$c" "$C2" "$dp" "$qp" "$PSK" "$ID/cert.der" localhost --quic-transport tcp
    if wait_log "$C2" 'offers no TCP path' 15; then
      pass "$tag tcp-path off: the client says so" "$(evidence "$C2" 'offers no TCP path')"
    else
      fail "$tag tcp-path off" "no 'offers no TCP path'" "$S2" "$C2"
    fi
  fi
  stop "$C2"
  stop "$S2"
  stop "$D"
}

# tcp_path_move_case S C: with our client only (the peer's has no `auto`
# policy), in a network namespace of its own: the server offers UDP and the
# TCP path on the same port; UDP to it is dropped (nftables) in the middle
# of 16 MiB each way, the client moves the connection to the TCP path and
# the transfer completes intact; UDP restored, the client moves back
# (spec/11-tcp-path.md §3.2) and the tunnel still echoes. Needs root, ip
# netns and nft; skipped otherwise.
tcp_path_move_case() {
  local s=$1 c=$2 tag="$1→$2"
  [[ $c == c ]] || return 0
  local NS=prd-interop-$$ NX
  if [[ $(id -u) -ne 0 ]] || ! command -v nft >/dev/null || ! ip netns add "$NS" 2>/dev/null; then
    log "SKIP $tag tcp-path move (needs root, ip netns and nft)"
    return 0
  fi
  NX=(ip netns exec "$NS")
  if ! ip -n "$NS" link set lo up || ! "${NX[@]}" nft add table inet prd ||
    ! "${NX[@]}" nft add chain inet prd out '{ type filter hook output priority 0; }'; then
    ip netns del "$NS"
    log "SKIP $tag tcp-path move (nft failed)"
    return 0
  fi
  local tp=28080 qp=24433 dp=29090 out ok=1 why=""
  local S="srv-$s-$c-move" C="cli-$s-$c-move" D="dest-$s-$c-move" REPORT=$WORK/dest-$s-$c-move.report
  : >"$REPORT"
  WRAP=("${NX[@]}")
  start "$D" "${TOOL[@]}" dest --port "$dp" --report "$REPORT" --bytes $((16 << 20))
  wait_log "$D" '^listening' 10
  if ! server "$s" "$S" "$tp" "$qp" "$PSK" "$ID" --quic-tcp-listen "127.0.0.1:$qp"; then
    fail "$tag tcp-path move: server" "not listening" "$S"
  else
    client "$c" "$C" "$dp" "$qp" "$PSK" "$ID/cert.der" localhost --keepalive 2 --quic-udp-probe-interval 2
    if ! wait_log "$C" 'tunnel up' 15; then
      fail "$tag tcp-path move" "no 'tunnel up'" "$S" "$C"
    else
      "${NX[@]}" "${TOOL[@]}" bulk --port "$tp" --bytes $((16 << 20)) --report "$REPORT" --timeout 60 >"$WORK/$C.bulk" 2>&1 &
      local bp=$!
      sleep 0.3
      "${NX[@]}" nft add rule inet prd out udp dport "$qp" drop
      wait "$bp"
      out=$(cat "$WORK/$C.bulk")
      [[ $out == ok* ]] || { ok=0; why+="16 MiB each way across the move: $out; "; }
      # Whichever the client notices first: silence or loss (spec/11 §3.2).
      has_log "$C" 'UDP may be (blocked|throttled); using TCP' || { ok=0; why+="no move to TCP; "; }
      has_log "$S" 'TCP path from' || { ok=0; why+="the server saw no TCP path; "; }
      [[ $(grep -c 'authenticated' "$WORK/$S.log") == 1 ]] || { ok=0; why+="not one connection throughout; "; }
      "${NX[@]}" nft flush chain inet prd out
      wait_log "$C" 'back on UDP' 20 || { ok=0; why+="not back on UDP within 20 s; "; }
      out=$("${NX[@]}" "${TOOL[@]}" echo --port "$tp" --timeout 10 2>&1)
      [[ $out == ok ]] || { ok=0; why+="echo back on UDP: $out; "; }
      if [[ $ok == 1 ]]; then
        pass "$tag tcp-path move: UDP dropped mid-transfer → same connection on TCP, 16 MiB each way intact; UDP back → back on UDP, echo" "$(evidence "$C" 'using TCP')"
      else
        fail "$tag tcp-path move" "$why" "$S" "$C"
      fi
    fi
  fi
  stop "$C"
  stop "$S"
  stop "$D"
  WRAP=()
  ip netns del "$NS"
}

# reached REPORT: the number of connections the destination of REPORT
# accepted.
reached() { grep -c '^accept' "$1" 2>/dev/null; }

# services_case S C: named services (spec/02-framing.md §3.7, §3.8, §4.4)
# with SERVICES negotiated. The server has `default` and `web` (ours also
# `game`); the client serves `web` and `nope` (the peer client no
# `default`, our client `default` too). Each user connection reaches the
# destination of its service and no other; a service the client does not
# serve waits the pending timeout and is reset; `nope` is refused with
# SERVICE_REFUSED(UNKNOWN_SERVICE), logged on both sides, and the
# connection stays up.
services_case() {
  local s=$1 c=$2 tag="$1→$2"
  local tp tw tg qp dd dw dn n out ok=1 why=""
  tp=$(freeport)
  tw=$(freeport)
  tg=$(freeport)
  qp=$(freeport)
  dd=$(freeport)
  dw=$(freeport)
  dn=$(freeport)
  local S="srv-$s-$c-svc" C="cli-$s-$c-svc" DD="dest-$s-$c-svc-default" DW="dest-$s-$c-svc-web" DN="dest-$s-$c-svc-nope"
  local RD=$WORK/$DD.report RW=$WORK/$DW.report RN=$WORK/$DN.report
  : >"$RD"
  : >"$RW"
  : >"$RN"
  start "$DD" "${TOOL[@]}" dest --port "$dd" --report "$RD"
  start "$DW" "${TOOL[@]}" dest --port "$dw" --report "$RW"
  start "$DN" "${TOOL[@]}" dest --port "$dn" --report "$RN"
  wait_log "$DD" '^listening' 10
  wait_log "$DW" '^listening' 10
  wait_log "$DN" '^listening' 10
  local sx=(--service "web=127.0.0.1:$tw")
  [[ $s == c ]] && sx+=(--service "game=127.0.0.1:$tg")
  if ! server "$s" "$S" "$tp" "$qp" "$PSK" "$ID" "${sx[@]}"; then
    fail "$tag services: server" "not listening" "$S"
    stop "$DD"
    stop "$DW"
    stop "$DN"
    return
  fi
  local cx=(--service "web=127.0.0.1:$dw" --service "nope=127.0.0.1:$dn")
  if [[ $c == c ]]; then
    client c "$C" "$dd" "$qp" "$PSK" "$ID/cert.der" localhost "${cx[@]}"
  else
    # No `default`: the peer client serves only its --service list.
    start "$C" "$PEER" client --quic-remote-host 127.0.0.1 --quic-remote-port "$qp" \
      --quic-remote-hostname-match localhost --quic-psk-file "$PSK" --server-cert "$ID/cert.der" \
      --config-dir "$WORK/cdir-$C" --shutdown-grace 2 "${cx[@]}"
  fi
  if ! wait_log "$C" 'tunnel up' 15; then
    fail "$tag services" "no 'tunnel up'" "$S" "$C"
    stop "$C"
    stop "$S"
    stop "$DD"
    stop "$DW"
    stop "$DN"
    return
  fi
  sleep 0.3
  # web: to the web destination only.
  out=$("${TOOL[@]}" echo --port "$tw" --timeout 20 2>&1)
  [[ $out == ok ]] || { ok=0; why+="echo on web's port: $out; "; }
  [[ $(reached "$RW") == 1 ]] || { ok=0; why+="the web destination accepted $(reached "$RW") connections, not 1; "; }
  if [[ $c == c ]]; then
    # default: our client serves it.
    out=$("${TOOL[@]}" echo --port "$tp" --timeout 20 2>&1)
    [[ $out == ok ]] || { ok=0; why+="echo on default's port: $out; "; }
    [[ $(reached "$RD") == 1 ]] || { ok=0; why+="the default destination accepted $(reached "$RD") connections, not 1; "; }
  else
    # default: the peer client does not serve it; reset after the pending
    # timeout, never reaching a destination.
    out=$("${TOOL[@]}" expect-reset --port "$tp" --wait 5 2>&1)
    [[ $out == reset ]] || { ok=0; why+="a user of default (not served) saw $out; "; }
  fi
  if [[ $s == c ]]; then
    out=$("${TOOL[@]}" expect-reset --port "$tg" --wait 5 2>&1)
    [[ $out == reset ]] || { ok=0; why+="a user of game (not served) saw $out; "; }
  fi
  [[ $(reached "$RN") == 0 ]] || { ok=0; why+="the destination of the refused service was reached; "; }
  [[ $(reached "$RW") == 1 ]] || { ok=0; why+="web's destination reached $(reached "$RW") times in the end; "; }
  [[ $c == c ]] || [[ $(reached "$RD") == 0 ]] || { ok=0; why+="the default destination was reached; "; }
  # The refusal of nope, logged on both sides.
  local sre cre
  if [[ $s == c ]]; then sre='declared service "nope".*UNKNOWN_SERVICE'; else sre='declared service nope.*UNKNOWN_SERVICE \(0x0b\)'; fi
  if [[ $c == c ]]; then cre='refused service "nope"'; else cre='the server refused service nope: UNKNOWN_SERVICE \(0x0b\)'; fi
  wait_log "$S" "$sre" 5 || { ok=0; why+="server log lacks /$sre/; "; }
  wait_log "$C" "$cre" 5 || { ok=0; why+="client log lacks /$cre/; "; }
  n=$(grep -c 'tunnel up' "$WORK/$C.log")
  [[ $n == 1 ]] || { ok=0; why+="the tunnel came up $n times; "; }
  if [[ $ok == 1 ]]; then
    pass "$tag services: SERVICES negotiated, web and default to their own destinations, unserved services reset, nope refused with UNKNOWN_SERVICE (0x0b)" "client: $(evidence "$C" "$cre") | server: $(evidence "$S" "$sre")"
  else
    fail "$tag services" "$why" "$S" "$C"
  fi
  stop "$C"
  stop "$S"
  stop "$DD"
  stop "$DW"
  stop "$DN"
}

# services_plain_case S C: a server with services `default` and `web`, and a
# client with no --service (the peer's client a client of the first text,
# HELLO Flags 0; ours declaring only `default`): default's users reach the
# destination, web's users are never sent to it and are reset after the
# pending timeout (spec/02-framing.md §4.4).
services_plain_case() {
  local s=$1 c=$2 tag="$1→$2"
  local tp tw qp dd out ok=1 why=""
  tp=$(freeport)
  tw=$(freeport)
  qp=$(freeport)
  dd=$(freeport)
  local S="srv-$s-$c-svc0" C="cli-$s-$c-svc0" D="dest-$s-$c-svc0"
  local R=$WORK/$D.report
  : >"$R"
  start "$D" "${TOOL[@]}" dest --port "$dd" --report "$R"
  wait_log "$D" '^listening' 10
  if ! server "$s" "$S" "$tp" "$qp" "$PSK" "$ID" --service "web=127.0.0.1:$tw"; then
    fail "$tag services, plain client: server" "not listening" "$S"
    stop "$D"
    return
  fi
  client "$c" "$C" "$dd" "$qp" "$PSK" "$ID/cert.der" localhost
  if wait_log "$C" 'tunnel up' 15; then
    sleep 0.3
    out=$("${TOOL[@]}" echo --port "$tp" --timeout 20 2>&1)
    [[ $out == ok ]] || { ok=0; why+="echo on default's port: $out; "; }
    out=$("${TOOL[@]}" expect-reset --port "$tw" --wait 5 2>&1)
    [[ $out == reset ]] || { ok=0; why+="a user of web saw $out; "; }
    [[ $(reached "$R") == 1 ]] || { ok=0; why+="the destination accepted $(reached "$R") connections, not 1; "; }
    if [[ $c == rust ]]; then
      has_log "$C" 'named services negotiated' && { ok=0; why+="the plain peer client negotiated services; "; }
    fi
  else
    ok=0
    why+="no 'tunnel up'; "
  fi
  if [[ $ok == 1 ]]; then
    pass "$tag services, client without --service: default echoed, web never sent to it (reset)"
  else
    fail "$tag services, client without --service" "$why" "$S" "$C"
  fi
  stop "$C"
  stop "$S"
  stop "$D"
}

# name_ok S C NAME: an expected name that one of the certificate's SANs
# matches (spec/03-auth.md §8.1); "[::1]" is an IPv6 literal in brackets,
# to be matched against the iPAddress SAN ::1 and never sent as SNI.
name_ok() {
  local s=$1 c=$2 name=$3 tag="$1→$2"
  local tp qp dp out=""
  tp=$(freeport)
  qp=$(freeport)
  dp=$(freeport)
  local S="srv-$s-$c-name" C="cli-$s-$c-name" D="dest-$s-$c-name"
  start "$D" "${TOOL[@]}" dest --port "$dp" --report "$WORK/$D.report"
  wait_log "$D" '^listening' 10
  server "$s" "$S" "$tp" "$qp" "$PSK" "$ID" || fail "$tag name $name: server" "not listening" "$S"
  client "$c" "$C" "$dp" "$qp" "$PSK" "$ID/cert.der" "$name"
  if wait_log "$C" 'tunnel up' 15 && out=$("${TOOL[@]}" echo --port "$tp" --timeout 20 2>&1) && [[ $out == ok ]]; then
    pass "$tag expected name $name matches the iPAddress SAN, echo"
  else
    fail "$tag expected name $name" "${out:-no tunnel}" "$S" "$C"
  fi
  stop "$C"
  stop "$S"
  stop "$D"
}

# shutdown_case S C: graceful shutdown of each side (spec/02-framing.md
# §3.5, spec/04-quic-profile.md §6.2, §6.3). The client's GOAWAY must stop
# the server from opening streams to it while it drains; the server's
# GOAWAY and close must reach the client as SHUTTING_DOWN.
shutdown_case() {
  local s=$1 c=$2 tag="$1→$2"
  local tp qp dp i
  tp=$(freeport)
  qp=$(freeport)
  dp=$(freeport)
  local S="srv-$s-$c-sd" C="cli-$s-$c-sd" C2="cli2-$s-$c-sd" D="dest-$s-$c-sd"
  local REPORT=$WORK/$D.report
  : >"$REPORT"
  start "$D" "${TOOL[@]}" dest --port "$dp" --report "$REPORT"
  wait_log "$D" '^listening' 10
  if ! server "$s" "$S" "$tp" "$qp" "$PSK" "$ID"; then
    fail "$tag shutdown: server" "not listening" "$S"
    stop "$D"
    return
  fi
  client "$c" "$C" "$dp" "$qp" "$PSK" "$ID/cert.der" localhost
  if ! wait_log "$C" 'tunnel up' 15; then
    fail "$tag shutdown: client" "no 'tunnel up'" "$S" "$C"
    stop "$C"
    stop "$S"
    stop "$D"
    return
  fi
  # One user connection held open keeps the stopping client draining.
  "${TOOL[@]}" user-reset --port "$tp" --wait 2.5 >/dev/null 2>&1 &
  local held=$!
  for ((i = 0; i < 100; i++)); do
    grep -q '^accept' "$REPORT" && break
    sleep 0.05
  done
  local ok=1 why="" out sre
  grep -q '^accept' "$REPORT" || { ok=0; why+="the held connection never reached the destination; "; }
  kill -TERM "${PID[$C]}" 2>/dev/null
  sleep 0.5
  # A new user now: no eligible client, so it waits and is reset after the
  # pending timeout (1 s), never reaching the destination.
  out=$("${TOOL[@]}" expect-reset --port "$tp" --wait 5 2>&1)
  [[ $out == reset ]] || { ok=0; why+="new user saw $out; "; }
  [[ $(grep -c '^accept' "$REPORT") -le 1 ]] || { ok=0; why+="a user connection reached the destination after the client's GOAWAY; "; }
  wait "$held" 2>/dev/null
  sre='disconnected: .*SHUTTING_DOWN'
  wait_log "$S" "$sre" 5 || { ok=0; why+="server log lacks /$sre/; "; }
  if [[ $s == rust ]]; then
    has_log "$S" 'sent GOAWAY SHUTTING_DOWN \(0x06\)' || { ok=0; why+="the peer server logged no GOAWAY(SHUTTING_DOWN); "; }
  fi
  stop "$C"
  if [[ $ok == 1 ]]; then
    pass "$tag client shutdown → GOAWAY: no new stream to it, new user reset, SHUTTING_DOWN (0x06) reached the server" "$(evidence "$S" "$sre")"
  else
    fail "$tag client shutdown" "$why" "$S" "$C"
  fi

  ok=1
  why=""
  client "$c" "$C2" "$dp" "$qp" "$PSK" "$ID/cert.der" localhost
  if wait_log "$C2" 'tunnel up' 15; then
    kill -TERM "${PID[$S]}" 2>/dev/null
    wait_log "$C2" 'down: .*SHUTTING_DOWN' 8 || { ok=0; why+="client log lacks SHUTTING_DOWN; "; }
    if [[ $c == rust ]]; then
      has_log "$C2" 'server sent GOAWAY SHUTTING_DOWN \(0x06\)' || { ok=0; why+="the peer client saw no GOAWAY(SHUTTING_DOWN); "; }
    fi
  else
    ok=0
    why+="no 'tunnel up'; "
  fi
  if [[ $ok == 1 ]]; then
    pass "$tag server shutdown → GOAWAY, SHUTTING_DOWN (0x06) reached the client" "$(evidence "$C2" 'down: .*SHUTTING_DOWN')"
  else
    fail "$tag server shutdown" "$why" "$S" "$C2"
  fi
  stop "$C2"
  stop "$S"
  stop "$D"
}

# term_wait NAME SECONDS: SIGTERM to NAME, then wait for its exit. Sets
# EXIT_RC (124: still running, then killed) and EXIT_SECS.
term_wait() {
  local name=$1 t=$2 p i t0=$EPOCHREALTIME
  p=${PID[$name]}
  kill -TERM "$p" 2>/dev/null
  EXIT_RC=124
  for ((i = 0; i < t * 20; i++)); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$p" 2>/dev/null; then
    kill -9 "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  else
    wait "$p" 2>/dev/null
    EXIT_RC=$?
  fi
  EXIT_SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
  unset "PID[$name]"
}

# drain_case S C VICTIM: graceful shutdown loses no byte
# (spec/04-quic-profile.md §6.2-§6.4). DRAIN_RUNS times a fresh tunnel
# through tests/tools/udprelay.py (5 ms each way, 2 % of datagrams dropped)
# carries 4 concurrent checksummed 1 MiB echoes (tests/tools/xfer.py; the
# destination answers everything after the user's FIN), and VICTIM (server
# or client) gets SIGTERM once the destination has accepted all four, before
# their first byte: the whole transfer runs during the drain, whose end is
# where bytes used to be lost. Every transfer must end with all its bytes
# and a FIN, and the victim must exit with status 0.
drain_case() {
  local s=$1 c=$2 victim=$3 tag="$1→$2"
  local runs=${DRAIN_RUNS:-5} other=client vimpl=$1
  [[ $victim == client ]] && other=server && vimpl=$2
  ((runs > 0)) || return 0
  local D="dest-$s-$c-drain-$victim" count="$WORK/count-$s-$c-$victim"
  start "$D" "$PY" -u "$ROOT/tests/tools/dest.py" --mode eofecho --count-file "$count"
  if ! wait_log "$D" '^listening' 10; then
    fail "$tag drain ($victim SIGTERM)" "dest.py did not start" "$D"
    stop "$D"
    return
  fi
  local dp
  dp=$(awk '/^listening /{print $3; exit}' "$WORK/$D.log")
  local i n lost=0 why="" secs=() t_start=$SECONDS
  for ((i = 1; i <= runs; i++)); do
    local tp qp S="srv-$s-$c-drain-$victim-$i" C="cli-$s-$c-drain-$victim-$i"
    local R="relay-$s-$c-drain-$victim-$i" X="xfer-$s-$c-drain-$victim-$i" rp
    tp=$(freeport)
    qp=$(freeport)
    if ! server "$s" "$S" "$tp" "$qp" "$PSK" "$ID" --shutdown-grace 15; then
      lost=$((lost + 1))
      why+="run $i: server not listening; "
      stop "$S"
      continue
    fi
    start "$R" "$PY" -u "$ROOT/tests/tools/udprelay.py" --upstream "127.0.0.1:$qp" \
      --delay 5 --loss 0.02 --seed "$i"
    wait_log "$R" '^listening' 10
    rp=$(awk '/^listening /{print $3; exit}' "$WORK/$R.log")
    client "$c" "$C" "$dp" "$rp" "$PSK" "$ID/cert.der" localhost --shutdown-grace 15
    if ! wait_log "$C" 'tunnel up' 15; then
      lost=$((lost + 1))
      why+="run $i: no tunnel; "
      stop "$C"
      stop "$R"
      stop "$S"
      continue
    fi
    start "$X" "$PY" "$ROOT/tests/tools/xfer.py" 127.0.0.1 "$tp" -n 4 -s 1048576 \
      --timeout 30 --seed "$i" --start-delay 0.3
    local end=$((SECONDS + 20))
    while :; do
      n=$(cat "$count" 2>/dev/null || echo 0)
      ((n >= 4 * i)) && break
      ((SECONDS < end)) || break
      sleep 0.005
    done
    local vname=$S
    [[ $victim == client ]] && vname=$C
    term_wait "$vname" 25
    secs+=("$EXIT_SECS")
    local xp=${PID[$X]} j
    for ((j = 0; j < 800; j++)); do
      kill -0 "$xp" 2>/dev/null || break
      sleep 0.05
    done
    stop "$X"
    if ! grep -qx 'ok 4' "$WORK/$X.log"; then
      lost=$((lost + 1))
      why+="run $i: $(grep -m 2 FAIL "$WORK/$X.log" | tr '\n' ' ')(dest accepted $n/$((4 * i))); "
    elif [[ $EXIT_RC != 0 ]]; then
      lost=$((lost + 1))
      why+="run $i: the $victim exited with status $EXIT_RC; "
    fi
    if [[ $other == client ]]; then stop "$C"; else stop "$S"; fi
    stop "$R"
  done
  stop "$D"
  local detail
  detail="$(impl_name "$vimpl") $victim SIGTERM during 4 × 1 MiB echoes over 5 ms/2 % loss; $runs runs in $((SECONDS - t_start)) s, exit after SIGTERM ${secs[*]} s"
  if [[ $lost == 0 ]]; then
    pass "$tag drain: $victim SIGTERM, no byte lost, every transfer ended with FIN ($runs runs)" "$detail"
  else
    fail "$tag drain: $victim SIGTERM" "$lost of $runs runs lost bytes or failed: $why" "$S" "$C"
  fi
}

# keepalive_case S C: the server advertises a 3 s idle timeout and sends no
# PING (--idle-timeout 3 --keepalive 0); the client, at its default 10 s
# keepalive and 30 s idle timeout, must ping within half the effective idle
# timeout (spec/04-quic-profile.md §2.2), so one tunnel stays up for 12 s
# with no traffic and then carries an echo. A UDP relay counts the
# datagrams: a few dozen each way, not a flood of PINGs.
keepalive_case() {
  local s=$1 c=$2 tag="$1→$2"
  local tp qp dp rp n out="" t0=$SECONDS
  tp=$(freeport)
  qp=$(freeport)
  dp=$(freeport)
  local S="srv-$s-$c-ka" C="cli-$s-$c-ka" D="dest-$s-$c-ka" R="relay-$s-$c-ka"
  start "$D" "${TOOL[@]}" dest --port "$dp" --report "$WORK/$D.report"
  wait_log "$D" '^listening' 10
  server "$s" "$S" "$tp" "$qp" "$PSK" "$ID" --idle-timeout 3 --keepalive 0 ||
    fail "$tag keepalive: server" "not listening" "$S"
  start "$R" "$PY" -u "$ROOT/tests/tools/udprelay.py" --upstream "127.0.0.1:$qp"
  wait_log "$R" '^listening' 10
  rp=$(awk '/^listening /{print $3; exit}' "$WORK/$R.log")
  client "$c" "$C" "$dp" "$rp" "$PSK" "$ID/cert.der" localhost
  local ok=1 why="" up="" down=""
  if wait_log "$C" 'tunnel up' 15; then
    sleep 12
    out=$("${TOOL[@]}" echo --port "$tp" --timeout 10 2>&1)
    [[ $out == ok ]] || { ok=0; why+="echo after 12 s: $out; "; }
    n=$(grep -c 'tunnel up' "$WORK/$C.log")
    [[ $n == 1 ]] || { ok=0; why+="the tunnel came up $n times; "; }
    has_log "$S" 'disconnected' && { ok=0; why+="the server saw the client disconnect; "; }
  else
    ok=0
    why+="no tunnel; "
  fi
  stop "$R"
  up=$(grep -o 'up_rx=[0-9]*' "$WORK/$R.log" | tail -n 1 | cut -d= -f2)
  down=$(grep -o 'down_rx=[0-9]*' "$WORK/$R.log" | tail -n 1 | cut -d= -f2)
  if [[ -z $up || -z $down ]]; then
    ok=0
    why+="no datagram counts from the relay; "
  elif ((up > 300 || down > 300)); then
    ok=0
    why+="$up datagrams up and $down down in about 13 s: a PING flood; "
  fi
  local ka=""
  [[ $c == rust ]] && ka=$(evidence "$C" 'keepalive every')
  if [[ $ok == 1 ]]; then
    pass "$tag keepalive: server --idle-timeout 3 --keepalive 0, one tunnel up 12 s, then echo" "$((SECONDS - t0)) s, $up datagrams up, $down down${ka:+; $ka}"
  else
    fail "$tag keepalive" "$why" "$S" "$C"
  fi
  stop "$C"
  stop "$S"
  stop "$D"
}

# auth_case S C WHAT PSKFILE PIN HOSTNAME: the client must never be served.
auth_case() {
  local s=$1 c=$2 what=$3 psk=$4 pin=$5 host=$6 tag="$1→$2"
  local tp qp dp k
  tp=$(freeport)
  qp=$(freeport)
  dp=$(freeport)
  k=${what// /-}
  local S="srv-$s-$c-$k" C="cli-$s-$c-$k" D="dest-$s-$c-$k"
  local REPORT=$WORK/$D.report
  : >"$REPORT"
  start "$D" "${TOOL[@]}" dest --port "$dp" --report "$REPORT"
  wait_log "$D" '^listening' 10
  local sx=()
  [[ $s == c ]] && sx=(--log-level debug)
  server "$s" "$S" "$tp" "$qp" "$PSK" "$ID" "${sx[@]}" || fail "$tag $what: server" "not listening" "$S"
  local cx=()
  [[ $c == rust ]] && cx=(--max-attempts 2)
  client "$c" "$C" "$dp" "$qp" "$psk" "$pin" "$host" "${cx[@]}"
  local sre cre
  case $what in
    "wrong PSK")
      # The close code AUTH_FAILED (0x04), seen by both implementations.
      if [[ $s == c ]]; then sre='authentication failed.*AUTH_FAILED'; else sre='closing with AUTH_FAILED \(0x04\)'; fi
      if [[ $c == c ]]; then cre='authentication failed: .*rejected our PSK \(AUTH_FAILED\)'; else cre='peer closed the connection with AUTH_FAILED \(0x04\)'; fi
      ;;
    "wrong pin")
      if [[ $c == c ]]; then cre='does not match the pinned certificate'; else cre='pin mismatch.*|bad_certificate \(42\) \(0x12a\)'; fi
      ;;
    *)
      if [[ $c == c ]]; then cre='names do not match'; else cre='name mismatch'; fi
      ;;
  esac
  if [[ $what != "wrong PSK" ]]; then
    # The client aborts the handshake with bad_certificate (0x12a). quinn
    # 0.9 puts 0x0c (APPLICATION_ERROR) on the wire instead
    # (spec/09-implementation-notes.md §3); our server logs either at WARN
    # (spec/05-errors.md §3).
    if [[ $s == c ]]; then
      [[ $c == c ]] && sre='WARN .*TLS alert 42' || sre='WARN .*aborted the handshake .*transport error 0xc'
    else
      [[ $c == c ]] && sre='rejected our certificate.*\(0x12a\)' || sre='handshake .* failed: .*APPLICATION_ERROR \(0xc\)'
    fi
  fi
  local ok=1 why=""
  wait_log "$C" "$cre" 10 || { ok=0; why+="client log lacks /$cre/; "; }
  # A user connection meanwhile is reset after the pending timeout and
  # never reaches the destination.
  local out
  out=$("${TOOL[@]}" expect-reset --port "$tp" --wait 5 2>&1)
  [[ $out == reset ]] || { ok=0; why+="user saw $out; "; }
  stop "$C"
  stop "$S"
  has_log "$S" "$sre" || { ok=0; why+="server log lacks /$sre/; "; }
  grep -q '^accept' "$REPORT" && { ok=0; why+="the destination was reached; "; }
  has_log "$C" 'tunnel up' && { ok=0; why+="the tunnel came up; "; }
  if [[ $ok == 1 ]]; then
    pass "$tag $what → refused, user reset, destination untouched" "client: $(evidence "$C" "$cre") | server: $(evidence "$S" "$sre")"
  else
    fail "$tag $what" "$why" "$S" "$C"
  fi
  stop "$D"
}

# client_names_case S C: client identities (spec/03-auth.md §3, §4.1): a
# client of implementation C named alice, with alice's own key, reaches the
# server of implementation S, which knows her by name (our server from a
# clients file, the peer from --client alice:FILE) besides the nameless
# client default; the name mallory with alice's key is refused with
# AUTH_FAILED, like a wrong key.
client_names_case() {
  local s=$1 c=$2 tag="$1→$2"
  local tp qp dp out
  tp=$(freeport)
  qp=$(freeport)
  dp=$(freeport)
  local S="srv-$s-$c-names" C="cli-$s-$c-alice" M="cli-$s-$c-mallory" D="dest-$s-$c-names"
  local ALICE=$WORK/psk-alice
  [[ -f $ALICE ]] || head -c 32 /dev/urandom | base64 >"$ALICE"
  printf 'alice psk-file=%s services=*\n' "$ALICE" >"$WORK/clients"
  local sx=(--clients-file "$WORK/clients")
  [[ $s == rust ]] && sx=(--client "alice:$ALICE")
  start "$D" "${TOOL[@]}" dest --port "$dp"
  wait_log "$D" '^listening' 10
  if ! server "$s" "$S" "$tp" "$qp" "$PSK" "$ID" "${sx[@]}"; then
    fail "$tag client name: server" "not listening" "$S"
    stop "$D"
    return
  fi
  client "$c" "$C" "$dp" "$qp" "$ALICE" "$ID/cert.der" localhost --client-name alice
  local ok=1 why=""
  wait_log "$C" 'tunnel up' 15 || { ok=0; why+="alice's tunnel did not come up; "; }
  wait_log "$S" 'client authenticated from .* as "alice"' 5 || { ok=0; why+="the server does not name alice; "; }
  if out=$("${TOOL[@]}" echo --port "$tp" --timeout 20 2>&1) && [[ $out == ok ]]; then
    :
  else
    ok=0
    why+="echo through alice: $out; "
  fi
  stop "$C"
  local cx=()
  [[ $c == rust ]] && cx=(--max-attempts 2)
  client "$c" "$M" "$dp" "$qp" "$ALICE" "$ID/cert.der" localhost --client-name mallory "${cx[@]}"
  local cre sre='as client "mallory": unknown client'
  if [[ $c == c ]]; then cre='rejected client "mallory" with our PSK \(AUTH_FAILED\)'; else cre='peer closed the connection with AUTH_FAILED \(0x04\)'; fi
  wait_log "$M" "$cre" 10 || { ok=0; why+="mallory's log lacks /$cre/; "; }
  stop "$M"
  stop "$S"
  has_log "$S" "$sre" || { ok=0; why+="server log lacks /$sre/; "; }
  has_log "$M" 'tunnel up' && { ok=0; why+="mallory's tunnel came up; "; }
  if [[ $ok == 1 ]]; then
    pass "$tag client name alice with her own key → authenticated, named by the server; mallory → AUTH_FAILED" "server: $(evidence "$S" 'as "alice"') | $(evidence "$S" "$sre")"
  else
    fail "$tag client names" "$why" "$S" "$C" "$M"
  fi
  stop "$D"
}

# The peer's server role with an identity made by openssl, pinned by our
# client: the identity files are interchangeable between implementations.
openssl_identity() {
  local tag="rust→c"
  command -v openssl >/dev/null || {
    log "SKIP openssl identity (no openssl)"
    return
  }
  local OID=$WORK/id-openssl
  mkdir -p "$OID"
  if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$OID/key.pem" -outform DER -out "$OID/cert.der" >/dev/null 2>&1 ||
    ! openssl pkcs8 -topk8 -nocrypt -in "$OID/key.pem" -outform DER -out "$OID/key.der" 2>/dev/null; then
    fail "$tag openssl identity" "openssl failed"
    return
  fi
  chmod 600 "$OID/key.der"
  local tp qp dp
  tp=$(freeport)
  qp=$(freeport)
  dp=$(freeport)
  local S=srv-openssl C=cli-openssl D=dest-openssl
  start "$D" "${TOOL[@]}" dest --port "$dp" --report "$WORK/$D.report"
  wait_log "$D" '^listening' 10
  server rust "$S" "$tp" "$qp" "$PSK" "$OID"
  client c "$C" "$dp" "$qp" "$PSK" "$OID/cert.der" 127.0.0.1
  local out=""
  if wait_log "$C" 'tunnel up' 15 && out=$("${TOOL[@]}" echo --port "$tp" --timeout 20 2>&1) && [[ $out == ok ]]; then
    pass "$tag openssl-made identity (peer server), pinned by our client, SAN IP 127.0.0.1, echo"
  else
    fail "$tag openssl identity" "${out:-no tunnel}" "$S" "$C"
  fi
  stop "$C"
  stop "$S"
  stop "$D"
}

t0=$SECONDS
log "interop matrix: $BIN_DIR/portredirect_{server,client} vs $PEER"
for p in $PAIRINGS; do
  pairing "${p%-*}" "${p#*-}"
done
[[ $PAIRINGS == *rust-c* && -z ${ONLY:-} ]] && openssl_identity

log ""
log "=== Throughput (loopback, one stream)"
for t in "${THROUGHPUT[@]}"; do
  log "$t"
done
log ""
log "=== Summary ($((SECONDS - t0)) s)"
for r in "${RESULTS[@]}"; do
  log "$r"
done
log "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
