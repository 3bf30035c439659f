# SPDX-License-Identifier: GPL-3.0-only
# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034,SC2119,SC2120
# (bats sets status/output/lines; tests read the globals set here.)
# Helpers for the BATS end-to-end tests: start the real binaries on loopback
# with temporary HOME/config dirs, wait for log markers, check and clean up.
#
# Environment:
#   PRD_BIN_DIR        directory with portredirect_server/_client (default build/)
#   PRD_START_TIMEOUT  seconds to wait for a start marker (default 15)
#   LONG=1             also run the tests marked long
#   PRD_PYTHON         Python 3 for the tools (default /usr/bin/python3)
#
# Processes started through these helpers are recorded (PID, name, kind) in
# the test's (or, from setup_file, the file's) temporary directory; teardown
# kills them by PID. Each binary gets its own HOME and --config-dir unless
# PRD_SHARED_HOME is set, and logs to <name>.log beside the PID list; an
# older log of the same name is kept as <name>.log.1, .2, ...

PRD_ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
PRD_BIN_DIR=${PRD_BIN_DIR:-$PRD_ROOT/build}
case $PRD_BIN_DIR in
  /*) ;;
  *) PRD_BIN_DIR=$PRD_ROOT/$PRD_BIN_DIR ;;
esac
PRD_SERVER=$PRD_BIN_DIR/portredirect_server
PRD_CLIENT=$PRD_BIN_DIR/portredirect_client
PRD_TOOLS=$PRD_ROOT/tests/tools
PRD_START_TIMEOUT=${PRD_START_TIMEOUT:-15}
# Debian's python3 (a version manager's shim on PATH can take a second to
# start, which adds up over hundreds of tool runs).
if [[ -z ${PRD_PYTHON:-} ]]; then
  if [[ -x /usr/bin/python3 ]]; then
    PRD_PYTHON=/usr/bin/python3
  else
    PRD_PYTHON=python3
  fi
fi
export PRD_ROOT PRD_PYTHON PRD_BIN_DIR PRD_SERVER PRD_CLIENT PRD_TOOLS

# Sanitizer reports go to the logs; a report is a test failure (see
# assert_no_sanitizer_reports and 999-sanitizers.bats).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The binaries must never see the developer's own configuration or PSK.
unset XDG_CONFIG_HOME PORTREDIRECT_PSK SSLKEYLOGFILE

PRD_ERROR_RE='^[^ ]+ ERROR '
PRD_SANITIZER_RE='ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: |SUMMARY: UndefinedBehaviorSanitizer'

# ---------------------------------------------------------------- basics ---

# die MESSAGE... fails the test with a visible block.
die() {
  echo "#/vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
  echo "#| FAIL: $*"
  echo "#\\^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"
  return 1
}

# assert ACTUAL OP EXPECTED [DESCRIPTION]
# OP is one of == != =~ !~ -lt -le -gt -ge -eq -ne.
assert() {
  local actual=$1 op=$2 expected=$3 what=${4:-}
  local ok=0
  case $op in
    '==') [[ $actual == "$expected" ]] && ok=1 ;;
    '!=') [[ $actual != "$expected" ]] && ok=1 ;;
    '=~') [[ $actual =~ $expected ]] && ok=1 ;;
    '!~') [[ ! $actual =~ $expected ]] && ok=1 ;;
    -lt | -le | -gt | -ge | -eq | -ne)
      [[ $actual =~ ^-?[0-9]+$ ]] && test "$actual" "$op" "$expected" && ok=1 ;;
    *) die "assert: unknown operator '$op'" ;;
  esac
  if ((ok)); then
    return 0
  fi
  echo "#/vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
  echo "#|     FAIL: ${what:-assertion}"
  echo "#| expected: $op '$expected'"
  local first=1 line
  while IFS= read -r line; do
    if ((first)); then
      echo "#|   actual:    '$line'"
      first=0
    else
      echo "#|              '$line'"
    fi
  done <<<"$actual"
  echo "#\\^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"
  return 1
}

# run_helper [--rc N|'!0'|any] [--timeout S] COMMAND...
# Runs COMMAND under timeout(1) with bats' run (sets $status, $output) and
# fails unless the exit code is the expected one (default 0).
run_helper() {
  local expected_rc=0 t=${PRD_CMD_TIMEOUT:-60}
  while [[ $# -gt 0 ]]; do
    case $1 in
      --rc) expected_rc=$2; shift 2 ;;
      --timeout) t=$2; shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  echo "\$ $*"
  run timeout --kill-after=5 "$t" "$@"
  if [[ -n $output ]]; then
    printf '%s\n' "$output" | sed -e 's/^/  /' | head -n 60
  fi
  if [[ $status -eq 124 || $status -eq 137 ]] && [[ $expected_rc != 124 ]]; then
    die "command timed out after $t s: $*"
    return 1
  fi
  case $expected_rc in
    any) ;;
    '!0') [[ $status -ne 0 ]] || die "expected a non-zero exit, got 0: $*" ;;
    *) [[ $status -eq $expected_rc ]] ||
      die "exit code $status (expected $expected_rc): $*" ;;
  esac
}

# skip_unless_long skips a test unless LONG=1 (scripts/test --long).
skip_unless_long() {
  [[ ${LONG:-0} == 1 ]] || skip "long test (LONG=1 or scripts/test --long)"
}

# _prd_state_dir prints where PIDs and logs of this test (or file) go.
_prd_state_dir() {
  if [[ -n ${BATS_TEST_TMPDIR:-} ]]; then
    echo "$BATS_TEST_TMPDIR"
  else
    echo "$BATS_FILE_TMPDIR"
  fi
}

_prd_log_dir() {
  echo "${PRD_LOG_DIR:-$(_prd_state_dir)}"
}

# log_of NAME prints the log file of the process started as NAME.
log_of() {
  echo "$(_prd_log_dir)/$1.log"
}

# config_dir NAME prints the --config-dir the helpers give process NAME.
config_dir() {
  echo "$(_prd_state_dir)/$1"
}

# log_lines FILE prints the number of lines in FILE (0 when missing).
log_lines() {
  if [[ -f $1 ]]; then
    wc -l <"$1" | tr -d ' '
  else
    echo 0
  fi
}

# free_port prints a port that is free for both TCP and UDP on 127.0.0.1 and
# ::1 and was not handed out before in this run.
free_port() {
  local used=${BATS_RUN_TMPDIR:-/tmp}/prd-ports
  "$PRD_PYTHON" - "$used" <<'EOF'
import socket, sys
used_file = sys.argv[1]
try:
    used = set(open(used_file).read().split())
except OSError:
    used = set()
for _ in range(200):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    ok = str(port) not in used and port not in (4433, 9898)
    held = [s]
    for fam, host, typ in ((socket.AF_INET, "127.0.0.1", socket.SOCK_DGRAM),
                           (socket.AF_INET6, "::1", socket.SOCK_STREAM),
                           (socket.AF_INET6, "::1", socket.SOCK_DGRAM)):
        if not ok:
            break
        try:
            t = socket.socket(fam, typ)
            held.append(t)
            t.bind((host, port))
        except OSError as e:
            if fam == socket.AF_INET6 and e.errno == 99:  # no IPv6 here
                continue
            ok = False
    for t in held:
        t.close()
    if ok:
        with open(used_file, "a") as f:
            f.write("%d\n" % port)
        print(port)
        sys.exit(0)
sys.exit("free_port: no free port found")
EOF
}

# make_psk FILE writes a random base64 PSK (mode 0600) to FILE.
make_psk() {
  (umask 077 && openssl rand -base64 32 >"$1")
}

# --------------------------------------------------------- process table ---

# _rotate FILE moves an existing FILE to FILE.1, FILE.2, ...
_rotate() {
  local f=$1 n=1
  [[ -e $f ]] || return 0
  while [[ -e $f.$n ]]; do
    n=$((n + 1))
  done
  mv "$f" "$f.$n"
}

# _spawn NAME KIND LOG COMMAND... starts COMMAND in the background with
# stdout and stderr appended to LOG and records it. A small wrapper shell
# waits for it and stores its exit code in <state>/NAME.rc, so that the exit
# code can be read even from a test other than the one that started it.
# Sets $SPAWNED_PID (the PID of COMMAND itself).
_spawn() {
  local name=$1 kind=$2 log=$3
  shift 3
  local dir
  dir=$(_prd_state_dir)
  local pidf=$dir/$name.pid rcf=$dir/$name.rc
  rm -f "$pidf" "$rcf"
  (
    "$@" >>"$log" 2>&1 </dev/null &
    echo "$!" >"$pidf.tmp" && mv "$pidf.tmp" "$pidf"
    rc=0
    wait "$!" || rc=$?
    echo "$rc" >"$rcf.tmp" && mv "$rcf.tmp" "$rcf"
  ) 3>&- 4>&- &
  local i
  for ((i = 0; i < 500; i++)); do
    [[ -s $pidf ]] && break
    sleep 0.01
  done
  [[ -s $pidf ]] || die "could not start $name: $*"
  SPAWNED_PID=$(<"$pidf")
  echo "$SPAWNED_PID $name $kind" >>"$dir/pids"
  printf -v "PID_${name//[^a-zA-Z0-9_]/_}" '%s' "$SPAWNED_PID"
}

# pid_of NAME prints the PID recorded for NAME (the last one started).
pid_of() {
  local pid
  read -r pid <"$(_prd_state_dir)/$1.pid" || return 1
  echo "$pid"
}

# _alive PID succeeds while PID runs (a zombie counts as gone).
_alive() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  [[ -n $stat && ${stat:0:1} != Z ]]
}

# is_running NAME succeeds while the process started as NAME runs.
is_running() {
  local pid
  read -r pid 2>/dev/null <"${BATS_TEST_TMPDIR:-$BATS_FILE_TMPDIR}/$1.pid" || return 1
  _alive "$pid"
}

# wait_exit NAME [TIMEOUT] waits for NAME to exit (KILLing it after TIMEOUT
# seconds, default 15) and sets $EXIT_RC to its exit code (128+N for signal
# N).
wait_exit() {
  local name=$1 t=${2:-15}
  local dir pid rcf
  dir=$(_prd_state_dir)
  pid=$(pid_of "$name")
  rcf=$dir/$name.rc
  local end=$((SECONDS + t))
  while [[ ! -s $rcf ]] && ((SECONDS < end)); do
    sleep 0.05
  done
  if [[ ! -s $rcf ]]; then
    echo "# $name (pid $pid) still running after $t s: sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
      [[ -s $rcf ]] && break
      sleep 0.05
    done
  fi
  EXIT_RC=$(cat "$rcf" 2>/dev/null || echo unknown)
}

# stop NAME [EXPECTED_RC] [TIMEOUT]: SIGTERM, wait, check the exit code
# (default 0; "any" to accept whatever).
stop() {
  local name=$1 expected=${2:-0} t=${3:-15}
  local pid
  pid=$(pid_of "$name")
  kill -TERM "$pid" 2>/dev/null || true
  wait_exit "$name" "$t"
  if [[ $expected != any && $EXIT_RC != "$expected" ]]; then
    tail -n 30 "$(log_of "$name")" | sed -e "s/^/# $name: /"
    die "$name exited with $EXIT_RC after SIGTERM (expected $expected)"
  fi
}

# _start_prd NAME BINARY ARGS... (see start_server)
_start_prd() {
  local name=$1 bin=$2
  shift 2
  local dir home log
  dir=$(_prd_state_dir)
  log=$(log_of "$name")
  mkdir -p "$(dirname "$log")"
  _rotate "$log"
  local -a extra=()
  if [[ -n ${PRD_SHARED_HOME:-} ]]; then
    home=$PRD_SHARED_HOME
  else
    home=$dir/home-$name
    local a want=1
    for a in "$@"; do
      [[ $a == --config-dir || $a == --config-dir=* ]] && want=0
    done
    if ((want)) && [[ -z ${PRD_NO_CONFIG_DIR:-} ]]; then
      extra=(--config-dir "$(config_dir "$name")")
    fi
  fi
  mkdir -p "$home"
  [[ -x $bin ]] || die "$bin is missing: build first (PRD_BIN_DIR=$PRD_BIN_DIR)"
  echo "${bin##*/} ${extra[*]} $*" >"${log%.log}.cmd"
  grep -qxF "$name" "$(_prd_log_dir)/prd-names" 2>/dev/null ||
    echo "$name" >>"$(_prd_log_dir)/prd-names"
  _spawn "$name" prd "$log" "${PRD_WRAP[@]}" env HOME="$home" "${PRD_ENV[@]}" "$bin" "${extra[@]}" "$@"
}

# start_server [-n NAME] ARGS... starts portredirect_server (NAME defaults to
# "server") and waits for "QUIC listening" and "TCP listening" in its log,
# unless PRD_NO_WAIT=1. Extra environment for the binary: PRD_ENV=(K=V ...);
# a command to run it (and tools started meanwhile) under, such as
# ip netns exec NS: PRD_WRAP=(...).
# The arguments are kept in SERVER_ARGS_<NAME> for a restart.
start_server() {
  local name=server
  if [[ ${1:-} == -n ]]; then
    name=$2
    shift 2
  fi
  _start_prd "$name" "$PRD_SERVER" "$@"
  _save_args "$name" server "$@"
  if [[ -z ${PRD_NO_WAIT:-} ]]; then
    wait_for_log_of "$name" 'QUIC listening on ' "$PRD_START_TIMEOUT"
    wait_for_log_of "$name" 'TCP listening on ' "$PRD_START_TIMEOUT"
  fi
}

# start_client [-n NAME] ARGS... starts portredirect_client (NAME defaults to
# "client"). It does not wait; see wait_tunnel_up.
start_client() {
  local name=client
  if [[ ${1:-} == -n ]]; then
    name=$2
    shift 2
  fi
  _start_prd "$name" "$PRD_CLIENT" "$@"
  _save_args "$name" client "$@"
}

# _save_args NAME ROLE ARGS... keeps ARGS in the array ARGS_<NAME> and ROLE
# in ROLE_<NAME>, for restart.
_save_args() {
  local id=${1//[^a-zA-Z0-9_]/_}
  printf -v "ROLE_$id" '%s' "$2"
  shift 2
  eval "ARGS_$id=(\"\$@\")"
}

# restart NAME starts NAME again with the same arguments (and waits like
# start_server for a server).
restart() {
  local id=${1//[^a-zA-Z0-9_]/_}
  local role_var=ROLE_$id args_var="ARGS_${id}[@]"
  local -a args=("${!args_var}")
  case ${!role_var:-} in
    server) start_server -n "$1" "${args[@]}" ;;
    client) start_client -n "$1" "${args[@]}" ;;
    *) die "restart: $1 was not started by start_server/start_client" ;;
  esac
}

# start_tool NAME COMMAND... starts a test tool (recorded, killed at the end),
# under PRD_WRAP like the binaries.
start_tool() {
  local name=$1
  shift
  local log
  log=$(log_of "$name")
  _rotate "$log"
  _spawn "$name" tool "$log" "${PRD_WRAP[@]}" "$@"
}

# start_dest [-n NAME] MODE [ARGS...] starts tests/tools/dest.py in MODE on
# a free port of 127.0.0.1 (or --host) and sets $DEST_PORT (NAME: "dest").
start_dest() {
  local name=dest
  if [[ ${1:-} == -n ]]; then
    name=$2
    shift 2
  fi
  local mode=$1
  shift
  start_tool "$name" "$PRD_PYTHON" "$PRD_TOOLS/dest.py" --mode "$mode" "$@"
  wait_for_log "$(log_of "$name")" '^listening ' 10
  DEST_PORT=$(awk '/^listening /{print $3; exit}' "$(log_of "$name")")
  [[ -n $DEST_PORT ]] || die "dest.py did not report its port"
}

# ------------------------------------------------------------- waiting ---

# wait_for_log FILE REGEX [TIMEOUT] [FROM_LINE] waits until a line after
# line FROM_LINE (default 0) of FILE matches the extended REGEX.
wait_for_log() {
  local file=$1 re=$2 t=${3:-10} from=${4:-0}
  local end=$((SECONDS + t))
  while :; do
    if _log_has "$file" "$re" "$from"; then
      return 0
    fi
    if ((SECONDS >= end)); then
      break
    fi
    sleep 0.05
  done
  echo "# --- $file (last 40 lines) ---"
  tail -n 40 "$file" 2>/dev/null | sed -e 's/^/# /'
  die "timed out after $t s waiting for /$re/ in ${file##*/}"
}

# _log_has FILE REGEX FROM_LINE: a line after FROM_LINE matches REGEX
# (grep -E).
_log_has() {
  [[ -f $1 ]] || return 1
  if (($3 == 0)); then
    grep -qE -- "$2" "$1"
  else
    tail -n "+$(($3 + 1))" "$1" | grep -qE -- "$2"
  fi
}

# wait_for_log_of NAME REGEX [TIMEOUT] [FROM_LINE]: like wait_for_log on
# NAME's log, but fails at once if NAME exits.
wait_for_log_of() {
  local name=$1 re=$2 t=${3:-10} from=${4:-0}
  local file end
  file=$(log_of "$name")
  end=$((SECONDS + t))
  while :; do
    if _log_has "$file" "$re" "$from"; then
      return 0
    fi
    if ! is_running "$name"; then
      # One more look: the marker may be the last thing it wrote.
      if _log_has "$file" "$re" "$from"; then
        return 0
      fi
      echo "# --- $file ---"
      tail -n 40 "$file" | sed -e 's/^/# /'
      die "$name exited (rc $(cat "$(_prd_state_dir)/$name.rc" 2>/dev/null)) while waiting for /$re/"
      return 1
    fi
    if ((SECONDS >= end)); then
      break
    fi
    sleep 0.05
  done
  echo "# --- $file (last 40 lines) ---"
  tail -n 40 "$file" | sed -e 's/^/# /'
  die "timed out after $t s waiting for /$re/ in ${file##*/}"
}

# wait_tunnel_up [NAME] [TIMEOUT] [FROM_LINE] waits for "tunnel up" in the
# client's log.
wait_tunnel_up() {
  wait_for_log_of "${1:-client}" 'tunnel up' "${2:-$PRD_START_TIMEOUT}" "${3:-0}"
}

# probe HOST PORT ARGS...: tests/tools/probe.py (see there); sets $output.
probe() {
  run_helper --timeout 120 "$PRD_PYTHON" "$PRD_TOOLS/probe.py" "$@"
}

# echo_ok PORT [HOST]: one line through an echo destination must come back.
echo_ok() {
  local port=$1 host=${2:-127.0.0.1}
  local msg="hello portredirect $RANDOM$RANDOM"
  probe "$host" "$port" --send "$msg\n" --shut-wr --timeout 10
  assert "${lines[0]}" =~ "^recv=$((${#msg} + 1)) end=eof " "echo result"
  assert "${lines[1]}" == "data=b'$msg\\n'" "echoed bytes"
}

# wait_for_echo PORT TIMEOUT [HOST]: repeats an echo through PORT until it
# works; sets $ECHO_SECONDS to the time it took.
wait_for_echo() {
  local port=$1 t=$2 host=${3:-127.0.0.1}
  local start end out msg
  start=$EPOCHREALTIME
  end=$((SECONDS + t))
  while :; do
    msg="ping $RANDOM"
    out=$(timeout 5 "$PRD_PYTHON" "$PRD_TOOLS/probe.py" "$host" "$port" \
      --send "$msg" --shut-wr --timeout 2 2>&1 | sed -n 2p) || true
    if [[ $out == "data=b'$msg'" ]]; then
      ECHO_SECONDS=$(since "$start")
      return 0
    fi
    if ((SECONDS >= end)); then
      die "no echo through 127.0.0.1:$port within $t s (last: $out)"
      return 1
    fi
    sleep 0.1
  done
}

# since START prints the seconds elapsed since START (an $EPOCHREALTIME).
since() {
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f\n", b - a}'
}

# elapsed_of PROBE_LINE prints the elapsed= value of a probe.py result line.
elapsed_of() {
  [[ $1 =~ elapsed=([0-9.]+) ]] || die "no elapsed= in '$1'"
  echo "${BASH_REMATCH[1]}"
}

# assert_seconds_below VALUE LIMIT [WHAT]: VALUE < LIMIT (decimals allowed).
assert_seconds_below() {
  if awk -v v="$1" -v l="$2" 'BEGIN {exit !(v < l)}'; then
    return 0
  fi
  die "${3:-time}: $1 s, expected below $2 s"
}

# assert_line TEXT: one of $lines (from run/run_helper) equals TEXT.
assert_line() {
  local l
  for l in "${lines[@]}"; do
    [[ $l == "$1" ]] && return 0
  done
  assert "$output" == "$1" "a line of the output"
}

# --------------------------------------------------------------- tunnel ---

# start_tunnel DEST_PORT [CLIENT_ARGS...]
# Starts a server (TCP on a free port, QUIC on another, a fresh PSK file and
# config dir, plus "${PRD_SERVER_EXTRA[@]}"), copies its cert.der into the
# client's config dir as the README says, starts a client towards
# 127.0.0.1:DEST_PORT and waits for "tunnel up".
# Sets PSK_FILE, SRV_PORT (the user-facing TCP port) and QUIC_PORT.
start_tunnel() {
  local dest_port=$1
  shift
  PSK_FILE=$(_prd_state_dir)/psk
  [[ -f $PSK_FILE ]] || make_psk "$PSK_FILE"
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  start_server --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" "${PRD_SERVER_EXTRA[@]}"
  copy_cert server client
  start_client --destination-host 127.0.0.1 --destination-port "$dest_port" \
    --quic-remote-host 127.0.0.1 --quic-remote-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" "$@"
  wait_tunnel_up client
}

# copy_cert FROM TO copies FROM's cert.der into TO's config dir (the
# documented "copy the server's certificate to the client" step).
copy_cert() {
  local from to
  from=$(config_dir "$1")
  to=$(config_dir "$2")
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s $from/cert.der ]] && break
    sleep 0.05
  done
  [[ -s $from/cert.der ]] || die "$from/cert.der was not created"
  mkdir -p "$to"
  chmod 700 "$to"
  cp "$from/cert.der" "$to/cert.der"
}

# ----------------------------------------------------------- log checks ---

# _prd_logs prints the logs of the binaries (not of the tools) of this test.
_prd_logs() {
  local dir name f
  dir=$(_prd_log_dir)
  [[ -f $dir/prd-names ]] || return 0
  while read -r name; do
    for f in "$dir/$name.log" "$dir/$name.log".[0-9]*; do
      [[ -f $f ]] && echo "$f"
    done
  done <"$dir/prd-names"
}

# assert_no_error_lines [LOG...]: no line with the level ERROR in the logs of
# the binaries (default: all of this test's).
assert_no_error_lines() {
  local -a logs
  if [[ $# -gt 0 ]]; then
    logs=("$@")
  else
    mapfile -t logs < <(_prd_logs)
  fi
  local f bad=0
  for f in "${logs[@]}"; do
    if grep -qE "$PRD_ERROR_RE" "$f"; then
      echo "# ERROR lines in ${f##*/}:"
      grep -E "$PRD_ERROR_RE" "$f" | head -n 20 | sed -e 's/^/#   /'
      bad=1
    fi
  done
  ((bad == 0)) || die "ERROR lines in the logs during normal operation"
}

# assert_no_sanitizer_reports [LOG...]
assert_no_sanitizer_reports() {
  local -a logs
  if [[ $# -gt 0 ]]; then
    logs=("$@")
  else
    mapfile -t logs < <(_prd_logs)
  fi
  local f bad=0
  for f in "${logs[@]}"; do
    if grep -qE "$PRD_SANITIZER_RE" "$f"; then
      echo "# sanitizer report in ${f##*/}:"
      grep -E -A 12 "$PRD_SANITIZER_RE" "$f" | head -n 60 | sed -e 's/^/#   /'
      bad=1
    fi
  done
  ((bad == 0)) || die "sanitizer report in the logs"
}

# stop_all_checked: SIGTERM every running binary of this test (the last
# started first), expect exit code 0 from each, then no ERROR line and no
# sanitizer report in any of their logs.
stop_all_checked() {
  local dir
  dir=$(_prd_state_dir)
  [[ -f $dir/pids ]] || return 0
  local -a names
  mapfile -t names < <(tac "$dir/pids" | awk '$3 == "prd" {print $2}' | awk '!seen[$0]++')
  local name
  for name in "${names[@]}"; do
    if is_running "$name"; then
      stop "$name" 0 20
    fi
  done
  assert_no_error_lines
  assert_no_sanitizer_reports
}

# ------------------------------------------------------------- teardown ---

# _kill_recorded PIDFILE: TERM every recorded process, KILL after 2 s.
_kill_recorded() {
  local pidf=$1
  [[ -f $pidf ]] || return 0
  local pid name kind
  local -a pids=()
  while read -r pid name kind; do
    if _alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done <"$pidf"
  local i p any
  for ((i = 0; i < 40; i++)); do
    any=0
    for p in "${pids[@]}"; do
      _alive "$p" && any=1
    done
    ((any)) || break
    sleep 0.05
  done
  for p in "${pids[@]}"; do
    if _alive "$p"; then
      echo "# pid $p did not exit within 2 s of SIGTERM: KILL"
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  # Let the wrapper shells record the exit codes.
  sleep 0.1
}

# _record_sanitizer_reports: sanitizer reports found in this test's logs are
# kept for 999-sanitizers.bats (teardown cannot fail a test in bats 1.8).
_record_sanitizer_reports() {
  local f
  while read -r f; do
    if grep -qE "$PRD_SANITIZER_RE" "$f"; then
      {
        echo "== ${BATS_TEST_FILENAME##*/}: ${BATS_TEST_DESCRIPTION:-setup_file}: ${f##*/}"
        grep -E -A 12 "$PRD_SANITIZER_RE" "$f" | head -n 40
      } >>"${BATS_RUN_TMPDIR:-/tmp}/prd-sanitizer-reports"
      echo "# sanitizer report in ${f##*/}"
    fi
  done < <(_prd_logs)
}

# _dump_logs prints the tail of every log of this test.
_dump_logs() {
  local dir f
  dir=$(_prd_log_dir)
  for f in "$dir"/*.log "$dir"/*.log.[0-9]*; do
    [[ -f $f ]] || continue
    echo "# --- ${f##*/} (last 60 lines) ---"
    [[ -f ${f%.log}.cmd ]] && sed -e 's/^/# $ /' "${f%.log}.cmd"
    tail -n 60 "$f" | sed -e 's/^/# /'
  done
}

# prd_teardown kills what this test started and shows the logs on failure.
prd_teardown() {
  _kill_recorded "$(_prd_state_dir)/pids"
  _record_sanitizer_reports
  if [[ -z ${BATS_TEST_COMPLETED:-} ]]; then
    _dump_logs
  fi
}

# prd_teardown_file: the same for processes started in setup_file.
prd_teardown_file() {
  local BATS_TEST_TMPDIR=
  _kill_recorded "$BATS_FILE_TMPDIR/pids"
  _record_sanitizer_reports
}

# prd_setup gives the test its own HOME (so nothing reads the developer's).
prd_setup() {
  export HOME=$BATS_TEST_TMPDIR/home
  mkdir -p "$HOME"
  PRD_SERVER_EXTRA=()
  PRD_ENV=()
  PRD_WRAP=()
}

setup() {
  prd_setup
}

teardown() {
  prd_teardown
}
