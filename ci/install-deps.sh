#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Installs the build, test and demo dependencies from Debian 12's packages
# (as root). Without network it carries on when everything is installed.
set -euo pipefail

PACKAGES=(
  cmake clang libclang-rt-14-dev clang-format pkg-config
  libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev libevent-dev
  libcmocka-dev
  # sd_notify for the Type=notify units (optional: CMake falls back to a
  # built-in client of the protocol without it)
  libsystemd-dev
  bats shellcheck iperf3 socat netcat-openbsd curl python3 gnutls-bin openssl
  procps iproute2
  # tests/e2e/549: nftables drops UDP in a namespace of the test's own
  nftables
  # feature tests (tests/e2e/5xx): real PROXY protocol consumers, capture
  # decryption, packaging
  nginx-light haproxy tshark dpkg-dev groff-base man-db systemd lintian
  # promtool (tests/e2e/560: promtool check metrics)
  prometheus
  # UDP services (tests/e2e/548): a DNS destination and dig
  dnsmasq-base bind9-dnsutils
  # benchmark (scripts/bench): ssh -R through a throwaway sshd
  openssh-server openssh-client
  # WAN benchmark and its self-check (scripts/bench --wan, tests/e2e/360)
  iputils-ping
)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: run as root (sudo $0)" >&2
  exit 1
fi

missing() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      echo "$p"
  done
}

export DEBIAN_FRONTEND=noninteractive
if apt-get update && apt-get install -y --no-install-recommends "${PACKAGES[@]}"; then
  echo "install-deps: all ${#PACKAGES[@]} packages installed"
  exit 0
fi

left=$(missing)
if [[ -z $left ]]; then
  echo "install-deps: apt-get failed (no network?), but every package is already installed; carrying on"
  exit 0
fi
echo "install-deps: apt-get failed and these packages are missing: ${left//$'\n'/ }" >&2
exit 1
