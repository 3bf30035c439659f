#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Debian 13 (trixie) itself (README: Platforms): a minimal root made with
# debootstrap and cached under build/, the build dependencies installed by
# Debian 13's own apt inside it, then a -Werror build with its gcc, GnuTLS
# 3.8 and ngtcp2 1.x, the unit tests and tests/e2e/010-basic.bats, all
# inside the root (chroot, sharing the host's loopback). Needs root.
#
# Usage: ci/debian13.sh [--refresh]    (--refresh: make the root again)
# Environment: PRD_DEBIAN13_DIR (default build/debian13),
#   PRD_DEBIAN13_SUITE (default trixie), JOBS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

if [[ $(id -u) -ne 0 ]]; then
  echo "debian13: needs root (debootstrap and chroot)" >&2
  exit 1
fi
refresh=0
[[ ${1:-} == --refresh ]] && refresh=1

dir=${PRD_DEBIAN13_DIR:-build/debian13}
suite=${PRD_DEBIAN13_SUITE:-trixie}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rootfs=$dir/root
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

DEPS=(cmake make gcc pkg-config libngtcp2-dev libngtcp2-crypto-gnutls-dev
  libgnutls28-dev libevent-dev libcmocka-dev
  bats netcat-openbsd socat curl python3 iproute2 procps openssl)

# shellcheck source=ci/mirror.sh
source ci/mirror.sh # (the working directory is the repository)

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -l "${mounted[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

mount_into() {
  local target=$rootfs$2
  mkdir -p "$target"
  mountpoint -q "$target" && return 0
  case $1 in
    proc) mount -t proc proc "$target" ;;
    sysfs) mount -t sysfs sysfs "$target" ;;
    tmpfs) mount -t tmpfs tmpfs "$target" ;;
    *) mount --bind "$1" "$target" ;;
  esac
  mounted+=("$target")
}

in_root() {
  chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# The stamp names the dependencies it was made with: a changed list reinstalls.
want="Debian $suite root with: ${DEPS[*]}"
if ((refresh)) || [[ ! -f $dir/.complete ]] ||
  [[ $(head -n 1 "$dir/.complete") != "$want" ]]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
  fi
  uri=$(mirror_uri | grep -v -- '-security' | head -n 1)
  uri=${uri:-http://deb.debian.org/debian}
  # Mounts left by a killed run must go first: rm would descend into /dev.
  awk -v r="$rootfs/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts |
    sort -r | xargs -r -n 1 umount -l
  if awk -v r="$rootfs/" 'index($2, r) == 1 { found = 1 } END { exit !found }' \
    /proc/self/mounts; then
    echo "debian13: $rootfs still has mounts; not removing it" >&2
    exit 1
  fi
  rm -rf --one-file-system "$rootfs" "$dir/.complete"
  echo "debian13: debootstrap $suite from $uri into $rootfs"
  debootstrap --variant=minbase --components=main "$suite" "$rootfs" "$uri" \
    >"$dir/debootstrap.log" 2>&1 || {
    tail -n 30 "$dir/debootstrap.log"
    exit 1
  }
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  mount_into proc /proc
  mount_into /dev /dev
  echo "debian13: apt-get install ${DEPS[*]}"
  in_root apt-get update -qq
  in_root apt-get install -y -qq --no-install-recommends "${DEPS[@]}" \
    >"$dir/apt.log" 2>&1 || {
    tail -n 30 "$dir/apt.log"
    exit 1
  }
  in_root apt-get clean
  echo "$want" >"$dir/.complete"
fi
echo "debian13: Debian $(cat "$rootfs/etc/debian_version"), $(in_root gcc --version | head -n 1)," \
  "GnuTLS $(in_root pkg-config --modversion gnutls)," \
  "ngtcp2 $(in_root pkg-config --modversion libngtcp2)"

mount_into proc /proc
mount_into sysfs /sys
mount_into /dev /dev
mount_into /dev/pts /dev/pts
mount_into tmpfs /tmp

# A fresh copy of the working tree (tracked and new files, no build dirs).
rm -rf "$rootfs/src"
mkdir -p "$rootfs/src"
git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
  tar -C "$ROOT" --null -T - -cf - | tar -C "$rootfs/src" -xf -

in_root bash -c "cd /src &&
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRD_ENABLE_WERROR=ON \
    -DPRD_BUILD_TESTS=ON >/tmp/cmake.log &&
  grep -E 'Compiler:|ngtcp2:|GnuTLS:' /tmp/cmake.log &&
  cmake --build build -j $jobs &&
  ctest --test-dir build --output-on-failure -j $jobs --timeout 300 &&
  PRD_BIN_DIR=/src/build PRD_PYTHON=/usr/bin/python3 \
    timeout --kill-after=30 900 bats --timing tests/e2e/010-basic.bats"
