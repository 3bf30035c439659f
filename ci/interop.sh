#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Interop stage: installs Debian's Rust toolchain and crates (as root), builds
# the quinn + rustls peer of tests/interop/peer with Debian's cargo (offline,
# from /usr/share/cargo/registry), runs its unit tests (the spec's vectors),
# builds our binaries unless PRD_BIN_DIR names them, and runs the matrix.
#
# Environment:
#   PRD_BIN_DIR  directory holding portredirect_server and portredirect_client
#                (default: a Release build made here in build/interop-c)
#   JOBS         parallel build jobs (default: the number of CPUs)
#   KEEP=1       keep the matrix's logs
# With --build-only it stops after building and testing the peer (scripts/test
# runs that early, at idle priority, so that the stage itself only waits).
set -euo pipefail
build_only=0
[[ ${1:-} == --build-only ]] && build_only=1

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

PACKAGES=(
  cargo rustc
  librust-quinn-dev librust-rustls-dev librust-tokio-dev librust-ring-dev
  librust-hmac-dev librust-sha2-dev librust-hex-dev librust-rand-dev
  librust-clap-dev
)

missing() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      echo "$p"
  done
}

left=$(missing)
if [[ -n $left ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "interop: missing Debian packages: ${left//$'\n'/ } (run as root to install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  mapfile -t want <<<"$left"
  apt-get install -y --no-install-recommends "${want[@]}" ||
    { apt-get update && apt-get install -y --no-install-recommends "${want[@]}"; } || true
  left=$(missing)
  if [[ -n $left ]]; then
    echo "interop: could not install: ${left//$'\n'/ }" >&2
    exit 1
  fi
fi
echo "interop: Debian Rust packages installed ($(/usr/bin/rustc --version), $(/usr/bin/cargo --version))"

# Debian's toolchain only, whatever rustup puts first on PATH; a private
# CARGO_HOME so no user configuration changes the sources.
export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_HOME=$ROOT/build/interop-cargo-home
export CARGO_TARGET_DIR=$ROOT/build/interop-peer
mkdir -p "$CARGO_HOME"
t0=$SECONDS
(
  cd tests/interop/peer
  /usr/bin/cargo build --release --locked --offline -j "$JOBS"
  /usr/bin/cargo test --release --locked --offline -j "$JOBS"
)
echo "interop: peer built and unit-tested in $((SECONDS - t0)) s"
((build_only)) && exit 0

if [[ -z ${PRD_BIN_DIR:-} ]]; then
  t0=$SECONDS
  cmake -S "$ROOT" -B "$ROOT/build/interop-c" -DCMAKE_BUILD_TYPE=Release \
    -DPRD_BUILD_TESTS=OFF >/dev/null
  cmake --build "$ROOT/build/interop-c" -j "$JOBS" --target portredirect_server portredirect_client
  echo "interop: portredirect built in $((SECONDS - t0)) s"
  PRD_BIN_DIR=$ROOT/build/interop-c
fi

PRD_BIN_DIR=$PRD_BIN_DIR PRD_PEER=$CARGO_TARGET_DIR/release/prd-interop-peer \
  exec tests/interop/run-matrix.sh
