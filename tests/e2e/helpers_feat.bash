# SPDX-License-Identifier: GPL-3.0-only
# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034
# (bats sets status/output/lines; tests read the globals set here.)
# Helpers for the tests of the features beyond the original (5NN-*.bats):
# IPv6, several clients and servers, PROXY protocol consumers (nginx,
# HAProxy), fingerprints, metrics and packaging. Loads helpers.bash.

load helpers

# skip_without CMD [PACKAGE]: skip the test when CMD is not installed.
skip_without() {
  command -v "$1" >/dev/null 2>&1 ||
    skip "$1 is not installed (apt-get install ${2:-$1})"
}

# skip_without_ipv6: skip unless ::1 is configured on lo.
skip_without_ipv6() {
  ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/128' ||
    skip "no ::1 on lo here"
}

# sha256_fp FILE prints the SHA-256 fingerprint of the DER certificate FILE
# in the spec's format (upper-case hex pairs joined by colons), computed by
# openssl, independently of the binaries.
sha256_fp() {
  openssl x509 -inform DER -in "$1" -noout -fingerprint -sha256 |
    sed -e 's/^.*=//' | tr 'a-f' 'A-F'
}

# new_psk: sets PSK_FILE to a fresh PSK file of this test.
new_psk() {
  PSK_FILE=$(_prd_state_dir)/psk
  [[ -f $PSK_FILE ]] || make_psk "$PSK_FILE"
}

# serve NAME [ARGS...]: a server on 127.0.0.1 with fresh TCP and QUIC
# ports and the test's PSK. Sets SRV_PORT_<NAME> and QUIC_PORT_<NAME> (and
# SRV_PORT/QUIC_PORT, for the last one started).
serve() {
  local name=$1
  shift
  new_psk
  SRV_PORT=$(free_port)
  QUIC_PORT=$(free_port)
  printf -v "SRV_PORT_${name//[^a-zA-Z0-9_]/_}" '%s' "$SRV_PORT"
  printf -v "QUIC_PORT_${name//[^a-zA-Z0-9_]/_}" '%s' "$QUIC_PORT"
  start_server -n "$name" --local-host 127.0.0.1 --local-port "$SRV_PORT" \
    --quic-server-host 127.0.0.1 --quic-server-port "$QUIC_PORT" \
    --quic-psk-file "$PSK_FILE" "$@"
}

# same_identity FROM TO: gives server TO (not started yet) the identity
# (cert.der and key.der) of server FROM: one backend behind several frontends
# that share one certificate.
same_identity() {
  local from to
  from=$(config_dir "$1")
  to=$(config_dir "$2")
  [[ -s $from/key.der ]] || die "$from/key.der was not created"
  mkdir -p "$to"
  chmod 700 "$to"
  cp -p "$from/cert.der" "$from/key.der" "$to/"
}

# metrics_of ADDR:PORT: fetches /metrics into $output (and $METRICS).
metrics_of() {
  run_helper curl -fsS --max-time 10 "http://$1/metrics"
  METRICS=$output
}

# metric NAME [TEXT]: prints the value of the sample NAME (without labels)
# in TEXT (default $METRICS); fails when it is missing.
metric() {
  local v
  v=$(awk -v n="$1" '$1 == n {print $2; exit}' <<<"${2:-$METRICS}")
  [[ -n $v ]] || {
    die "no sample $1 in the metrics"
    return 1
  }
  echo "$v"
}

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

# wait_metric ADDR:PORT NAME OP VALUE [TIMEOUT]: polls /metrics until the
# sample NAME compares to VALUE with OP (-eq -ge -gt -le -lt).
wait_metric() {
  local addr=$1 name=$2 op=$3 want=$4 t=${5:-15}
  local end=$((SECONDS + t)) got=
  while :; do
    METRICS=$(curl -fsS --max-time 5 "http://$addr/metrics" 2>/dev/null) || METRICS=
    got=$(awk -v n="$name" '$1 == n {print $2; exit}' <<<"$METRICS")
    if [[ $got =~ ^[0-9]+$ ]] && test "$got" "$op" "$want"; then
      return 0
    fi
    if ((SECONDS >= end)); then
      die "$name on $addr is '$got' after $t s, expected $op $want"
      return 1
    fi
    sleep 0.2
  done
}

# echo_count PORT N [HOST]: N echo round trips through PORT, one after the
# other; each must come back.
echo_count() {
  local port=$1 n=$2 host=${3:-127.0.0.1}
  run_helper --timeout $((30 + n * 10)) "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" \
    "$host" "$port" -n "$n" -s 100 --sequential --timeout $((20 + n * 8))
  assert_line "ok $n"
}

# count_of FILE: the number in a dest.py --count-file (or "missing").
count_of() {
  cat "$1" 2>/dev/null || echo missing
}

# start_hold NAME HOST PORT: opens one TCP connection (socat) that stays
# open; lines written to the FIFO <state>/NAME.in are sent, what comes back
# goes to <state>/NAME.out. See hold_roundtrip.
start_hold() {
  local name=$1 host=$2 port=$3
  local dir
  dir=$(_prd_state_dir)
  rm -f "$dir/$name.in" "$dir/$name.out"
  mkfifo "$dir/$name.in"
  : >"$dir/$name.out"
  start_tool "$name" bash -c \
    "exec 7<>'$dir/$name.in'; exec socat -t 1 - 'TCP:$host:$port' <&7 >>'$dir/$name.out'"
}

# hold_roundtrip NAME TEXT [TIMEOUT]: TEXT through the held connection NAME
# (an echo destination) must come back.
hold_roundtrip() {
  local name=$1 text=$2 t=${3:-10}
  local dir
  dir=$(_prd_state_dir)
  is_running "$name" || die "the held connection $name is gone"
  echo "$text" >"$dir/$name.in"
  wait_for_log "$dir/$name.out" "^$text\$" "$t"
}

# with_hosts FILE COMMAND...: runs COMMAND with FILE bind-mounted on
# /etc/hosts in a private mount namespace (needs root).
# The PID stays that of COMMAND (everything execs).
# shellcheck disable=SC2016 # ($0 and $@ are the inner sh's)
PRD_FEAT_WITH_HOSTS=(unshare -m -- sh -c 'mount --bind "$0" /etc/hosts && exec "$@"')

# can_remap_hosts: succeeds when with_hosts works here.
can_remap_hosts() {
  local f
  f=$(_prd_state_dir)/hosts.check
  printf '127.0.0.1 localhost\n127.0.0.1 prd-check.test\n' >"$f"
  "${PRD_FEAT_WITH_HOSTS[@]}" "$f" getent hosts prd-check.test >/dev/null 2>&1
}

# start_client_hosts FILE NAME ARGS...: start_client -n NAME ARGS... with
# /etc/hosts replaced by FILE for the client only.
start_client_hosts() {
  local hosts=$1 name=$2
  shift 2
  local -a saved=("${PRD_ENV[@]}")
  # env(1) runs the first argument that is not NAME=VALUE: the wrapper.
  PRD_ENV+=("${PRD_FEAT_WITH_HOSTS[@]}" "$hosts")
  start_client -n "$name" "$@"
  PRD_ENV=("${saved[@]}")
}

# ---- client identities (546-clients.bats, 547-reload.bats) ----

# key NAME: a fresh PSK file NAME.psk (mode 0600) in the test's directory;
# prints its path.
key() {
  local f=$BATS_TEST_TMPDIR/$1.psk
  [[ -f $f ]] || make_psk "$f"
  echo "$f"
}

# clients_file TEXT: writes the clients file (mode 0600) next to the keys
# and sets CLIENTS_FILE.
clients_file() {
  CLIENTS_FILE=$BATS_TEST_TMPDIR/clients
  (umask 077 && printf '%s' "$1" >"$CLIENTS_FILE")
}

# stop_checked_except NAME...: stops everything like stop_all_checked, but
# the logs of the NAMEs may hold ERROR lines (a refused client's).
stop_checked_except() {
  local dir name f skip
  dir=$(_prd_state_dir)
  local -a names logs=()
  mapfile -t names < <(tac "$dir/pids" | awk '$3 == "prd" {print $2}' | awk '!seen[$0]++')
  for name in "${names[@]}"; do
    if is_running "$name"; then
      stop "$name" 0 20
    fi
  done
  while read -r f; do
    skip=0
    for name in "$@"; do
      [[ ${f##*/} == "$name".log* ]] && skip=1
    done
    ((skip)) || logs+=("$f")
  done < <(_prd_logs)
  ((${#logs[@]} == 0)) || assert_no_error_lines "${logs[@]}"
  assert_no_sanitizer_reports
}
