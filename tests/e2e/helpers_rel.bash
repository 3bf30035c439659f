# SPDX-License-Identifier: GPL-3.0-only
# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034
# (bats sets status/output/lines; tests read the globals set here.)
# Helpers for the fault (3NN) and attack (4NN) tests: the UDP impairment
# relay, the QUIC attacker (tests/tools/evilpeer.c, compiled on first use),
# process RSS/fd sampling, and gates for long tests and known bugs.
#
# Environment (besides helpers.bash's):
#   PRD_LONG=1            also run the long tests (LONG=1 works too)
#   PRD_NGTCP2_LIBDIR=D   run the binaries with LD_LIBRARY_PATH=D (another
#                         libngtcp2 build)
#   PRD_TOOL_BUILD_DIR=D  where evilpeer is built (default: the bats run dir)

load helpers

# skip_unless_long_rel skips unless PRD_LONG (or helpers.bash's LONG=1).
skip_unless_long_rel() {
  [[ -n ${PRD_LONG:-} || ${LONG:-0} == 1 ]] || skip "long test: set PRD_LONG=1"
}

rel_setup() {
  prd_setup
  if [[ -n ${PRD_NGTCP2_LIBDIR:-} ]]; then
    PRD_ENV+=("LD_LIBRARY_PATH=$PRD_NGTCP2_LIBDIR")
  fi
}

setup() {
  rel_setup
}

# asan_small_quarantine: the binaries of this test keep freed memory in a
# small ASan quarantine, so that their RSS follows what they really hold.
asan_small_quarantine() {
  PRD_ENV+=("ASAN_OPTIONS=${ASAN_OPTIONS}:quarantine_size_mb=4:thread_local_quarantine_size_kb=64")
}

# ---------------------------------------------------------------- evilpeer ---

# evilpeer_build compiles tests/tools/evilpeer.c (once per run) and sets
# $EVILPEER.
evilpeer_build() {
  local dir=${PRD_TOOL_BUILD_DIR:-${BATS_RUN_TMPDIR:-/tmp}}
  mkdir -p "$dir"
  EVILPEER=$dir/evilpeer
  (
    flock 9
    if [[ ! -x $EVILPEER || $PRD_TOOLS/evilpeer.c -nt $EVILPEER ]]; then
      # shellcheck disable=SC2046
      cc -std=c11 -O1 -g -Wall -o "$EVILPEER.tmp" "$PRD_TOOLS/evilpeer.c" \
        $(pkg-config --cflags --libs libngtcp2 libngtcp2_crypto_gnutls gnutls) &&
        mv "$EVILPEER.tmp" "$EVILPEER"
    fi
  ) 9>"$dir/evilpeer.lock"
  [[ -x $EVILPEER ]] || die "cannot build $PRD_TOOLS/evilpeer.c"
}

# evil ARGS...: runs evilpeer (with run_helper) and sets $output.
evil() {
  run_helper --timeout "${EVIL_TIMEOUT:-120}" "$EVILPEER" "$@"
}

# field NAME TEXT prints the value of NAME=VALUE in TEXT.
field() {
  [[ $2 =~ (^|[[:space:]])$1=([^[:space:]]*) ]] || {
    echo "missing"
    return 0
  }
  echo "${BASH_REMATCH[2]}"
}

# ------------------------------------------------------------------ relay ---

# start_relay NAME UPSTREAM_PORT ARGS...: tests/tools/udprelay.py towards
# 127.0.0.1:UPSTREAM_PORT; sets RELAY_PORT and RELAY_CTL.
start_relay() {
  local name=$1 up=$2
  shift 2
  start_tool "$name" "$PRD_PYTHON" -u "$PRD_TOOLS/udprelay.py" \
    --upstream "127.0.0.1:$up" "$@"
  wait_for_log "$(log_of "$name")" '^listening ' 15
  RELAY_PORT=$(awk '/^listening /{print $3; exit}' "$(log_of "$name")")
  RELAY_CTL=$(awk '/^listening /{print $5; exit}' "$(log_of "$name")")
  [[ -n $RELAY_PORT && -n $RELAY_CTL ]] || die "udprelay.py did not report its ports"
}

# relay_cmd COMMAND...: sends one control command; prints the reply.
relay_cmd() {
  local ctl=${RELAY_CTL:?} reply=
  exec 8<>"/dev/tcp/127.0.0.1/$ctl" || die "relay control port $ctl"
  printf '%s\n' "$*" >&8
  IFS= read -r -t 10 reply <&8 || true
  exec 8>&- 8<&-
  echo "$reply"
  [[ $reply == ok* || $reply == stats* ]] || die "relay: '$*' -> '$reply'"
}

# start_tunnel_relay DEST_PORT [RELAY_ARGS...] [-- CLIENT_ARGS...]
# Like start_tunnel, but the client talks to the server through udprelay.py.
# "${PRD_SERVER_EXTRA[@]}" go to the server. Sets PSK_FILE, SRV_PORT,
# QUIC_PORT, RELAY_PORT, RELAY_CTL.
start_tunnel_relay() {
  local dest_port=$1
  shift
  local -a rargs=()
  while [[ $# -gt 0 && $1 != -- ]]; do
    rargs+=("$1")
    shift
  done
  [[ ${1:-} == -- ]] && shift
  PSK_FILE=$(_prd_state_dir)/psk
  [[ -f $PSK_FILE ]] || make_psk "$PSK_FILE"
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" "${PRD_SERVER_EXTRA[@]}"
  start_relay relay "$QUIC_PORT" "${rargs[@]}"
  copy_cert server client
  start_client --destination-host 127.0.0.1 --destination-port "$dest_port" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$RELAY_PORT" \
    --quic-psk-file "$PSK_FILE" "$@"
  wait_tunnel_up client
}

# start_loadgen [-n NAME] ARGS...: tests/tools/loadgen.py serve; sets
# DEST_PORT and LOADGEN_STATS (the stats file).
start_loadgen() {
  local name=dest
  if [[ ${1:-} == -n ]]; then
    name=$2
    shift 2
  fi
  LOADGEN_STATS=$(_prd_state_dir)/$name.stats
  start_tool "$name" "$PRD_PYTHON" -u "$PRD_TOOLS/loadgen.py" serve \
    --stats "$LOADGEN_STATS" "$@"
  wait_for_log "$(log_of "$name")" '^listening ' 15
  DEST_PORT=$(awk '/^listening /{print $3; exit}' "$(log_of "$name")")
  [[ -n $DEST_PORT ]] || die "loadgen.py did not report its port"
}

# stat_of FILE NAME: a number from a loadgen stats file.
stat_of() {
  local v
  v=$(tr ' ' '\n' <"$1" 2>/dev/null | awk -F= -v k="$2" '$1 == k {print $2}')
  echo "${v:-0}"
}

# ---------------------------------------------------------------- process ---

rss_kb() {
  awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

fd_count() {
  local n
  n=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  echo "$n"
}

# start_rss_sampler NAME PID: records the maximum RSS (kB) of PID every
# 0.2 s into <state>/NAME.maxrss until PID exits or the test ends.
start_rss_sampler() {
  local name=$1 pid=$2
  local f
  f=$(_prd_state_dir)/$name.maxrss
  echo 0 >"$f"
  start_tool "$name" bash -c '
    pid=$1; f=$2; max=0
    while r=$(awk "/^VmRSS:/ {print \$2}" /proc/$pid/status 2>/dev/null); do
      [ -n "$r" ] || break
      if [ "$r" -gt "$max" ]; then max=$r; echo "$max" >"$f"; fi
      sleep 0.2
    done' sampler "$pid" "$f"
}

max_rss_of() {
  cat "$(_prd_state_dir)/$1.maxrss" 2>/dev/null || echo 0
}

# wait_until SECONDS COMMAND...: repeats COMMAND until it succeeds.
wait_until() {
  local t=$1
  shift
  local end=$((SECONDS + t))
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}

# stat_cmp FILE KEY OP N: a loadgen counter compares (-ge, -eq, ...) to N.
stat_cmp() {
  local v
  v=$(stat_of "$1" "$2")
  test "$v" "$3" "$4"
}

# fds_le PID N: PID has at most N open file descriptors (for wait_until).
fds_le() {
  test "$(fd_count "$1")" -le "$2"
}
