#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# ngtcp2 versions: every --congestion-control value carries checksummed
# transfers, and builds against different ngtcp2 releases (0.12.1 and 1.x,
# README: Platforms) interoperate in both roles.
#
# Environment:
#   PRD_BIN_DIR_B   a second build directory, made against another ngtcp2
#                   (scripts/test passes build/ here when it tests the 1.x
#                   build); without it the mixed-pair tests skip.
#   PRD_BIN_DIR_OLD a build from before named services (issue 17; e.g. of
#                   commit fd4c0b4): old and new binaries interoperate in
#                   both roles (spec/02-framing.md §3.1, §3.4); without it
#                   those tests skip.

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

md5_of() {
  md5sum "$1" | cut -d' ' -f1
}

# ngtcp2_of BIN: the libngtcp2 the binary loads (e.g. libngtcp2.so.16).
ngtcp2_of() {
  ldd "$1" | awk '$1 ~ /^libngtcp2\.so/ { print $1 " => " $3 }'
}

# mixed_setup SERVER_DIR CLIENT_DIR: run the server from one build and the
# client from the other.
mixed_setup() {
  local b=${PRD_BIN_DIR_B:-}
  [[ -n $b ]] || skip "PRD_BIN_DIR_B is not set: no second build to pair with"
  [[ $b == /* ]] || b=$PRD_ROOT/$b
  [[ -x $b/portredirect_server && -x $b/portredirect_client ]] ||
    die "PRD_BIN_DIR_B=$b has no portredirect_server/_client"
  local a_lib b_lib
  a_lib=$(ngtcp2_of "$PRD_BIN_DIR/portredirect_server")
  b_lib=$(ngtcp2_of "$b/portredirect_server")
  [[ ${a_lib%% *} != "${b_lib%% *}" ]] ||
    skip "both builds load the same ngtcp2 (${a_lib%% *})"
  if [[ $1 == A ]]; then
    PRD_SERVER=$PRD_BIN_DIR/portredirect_server
    PRD_CLIENT=$b/portredirect_client
  else
    PRD_SERVER=$b/portredirect_server
    PRD_CLIENT=$PRD_BIN_DIR/portredirect_client
  fi
  echo "# server: $(ngtcp2_of "$PRD_SERVER")" >&3
  echo "# client: $(ngtcp2_of "$PRD_CLIENT")" >&3
}

# old_setup A|B: this build's server and PRD_BIN_DIR_OLD's client (A), or
# the other way round (B).
old_setup() {
  local o=${PRD_BIN_DIR_OLD:-}
  [[ -n $o ]] || skip "PRD_BIN_DIR_OLD is not set: no build from before named services"
  [[ $o == /* ]] || o=$PRD_ROOT/$o
  [[ -x $o/portredirect_server && -x $o/portredirect_client ]] ||
    die "PRD_BIN_DIR_OLD=$o has no portredirect_server/_client"
  if [[ $1 == A ]]; then
    PRD_CLIENT=$o/portredirect_client
  else
    PRD_SERVER=$o/portredirect_server
  fi
}

# transfers: 16 MiB each way (md5) and 50 concurrent checksummed echoes,
# each through a fresh tunnel.
transfers() {
  head -c 16M /dev/urandom >"$BATS_TEST_TMPDIR/up.bin"
  start_dest sink
  start_tunnel "$DEST_PORT"
  run_helper --timeout 120 bash -c "nc -N 127.0.0.1 $SRV_PORT <'$BATS_TEST_TMPDIR/up.bin'"
  assert "$output" == "$(md5_of "$BATS_TEST_TMPDIR/up.bin") 16777216" \
    "md5 and size seen by the destination"
  stop_all_checked

  start_dest source --file "$BATS_TEST_TMPDIR/up.bin"
  start_tunnel "$DEST_PORT"
  probe 127.0.0.1 "$SRV_PORT" --timeout 100 --out "$BATS_TEST_TMPDIR/got.bin"
  assert "${lines[0]}" =~ "^recv=16777216 end=eof " "all bytes, then EOF"
  assert "$(md5_of "$BATS_TEST_TMPDIR/got.bin")" == \
    "$(md5_of "$BATS_TEST_TMPDIR/up.bin")" "md5 of what the user got"
  stop_all_checked

  start_dest echo
  start_tunnel "$DEST_PORT"
  run_helper --timeout 120 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 50 -s $((256 * 1024)) --timeout 100
  assert_line "ok 50"
  stop_all_checked
}

@test "every --congestion-control value carries checksummed transfers" {
  echo "# $(ngtcp2_of "$PRD_SERVER")" >&3
  local cc
  for cc in bbr2 bbr cubic reno; do
    PRD_SERVER_EXTRA=(--congestion-control "$cc")
    start_dest echo
    start_tunnel "$DEST_PORT" --congestion-control "$cc"
    run_helper --timeout 120 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
      -n 20 -s $((1024 * 1024)) --timeout 100
    assert_line "ok 20"
    stop_all_checked
  done
}

@test "mixed ngtcp2 versions: this build's server, PRD_BIN_DIR_B's client" {
  mixed_setup A
  transfers
}

@test "mixed ngtcp2 versions: PRD_BIN_DIR_B's server, this build's client" {
  mixed_setup B
  transfers
}

@test "mixed ngtcp2 versions: bbr and cubic on either side" {
  mixed_setup A
  PRD_SERVER_EXTRA=(--congestion-control cubic)
  start_dest echo
  start_tunnel "$DEST_PORT" --congestion-control bbr
  run_helper --timeout 120 "$PRD_PYTHON" "$PRD_TOOLS/xfer.py" 127.0.0.1 "$SRV_PORT" \
    -n 20 -s $((1024 * 1024)) --timeout 100
  assert_line "ok 20"
  stop_all_checked
}

@test "before named services: this build's server, PRD_BIN_DIR_OLD's client" {
  old_setup A
  transfers
}

@test "before named services: PRD_BIN_DIR_OLD's server, this build's client" {
  old_setup B
  transfers
}
