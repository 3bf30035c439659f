#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# Fetches Debian's ngtcp2 1.x packages (bookworm-backports) into a private
# prefix under build/, without installing anything system-wide: a temporary
# apt sources list derived from the machine's own Debian mirror, a private
# apt state directory, `apt-get download` and `dpkg -x`. The pkg-config files
# are rewritten to point at the prefix.
#
# Usage: ci/ngtcp2-1x.sh [PREFIX]      (default build/ngtcp2-1x)
# Prints the prefix on its last line. Build against it with
#   PKG_CONFIG_PATH=PREFIX/lib/pkgconfig cmake -DPRD_NGTCP2_PREFIX=PREFIX ...
# (CMakeLists.txt adds PREFIX's library directory to the RPATH).
# Environment: PRD_NGTCP2_SUITE (default bookworm-backports).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

prefix=${1:-build/ngtcp2-1x}
suite=${PRD_NGTCP2_SUITE:-bookworm-backports}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
work=$prefix/.apt
stamp=$prefix/.complete

if [[ -f $stamp ]]; then
  echo "ngtcp2-1x: already unpacked ($(cat "$stamp"))"
  echo "$prefix"
  exit 0
fi

# shellcheck source=ci/mirror.sh
source ci/mirror.sh # (the working directory is the repository)
uri=$(mirror_uri | grep -v -- '-security' | head -n 1)
uri=${uri:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

rm -rf "$work"
mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/debs"
cat >"$work/sources.list" <<EOF
deb [signed-by=$keyring] $uri $suite main
EOF
echo "ngtcp2-1x: $uri $suite"

apt_opts=(
  -o "Dir::Etc::sourcelist=$work/sources.list"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::lists=$work/lists"
  -o "Dir::Cache::archives=$work/archives"
  -o "Dir::Cache::pkgcache=$work/pkgcache.bin"
  -o "Dir::Cache::srcpkgcache=$work/srcpkgcache.bin"
  -o "APT::Get::List-Cleanup=0"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" update -qq

# The names carry the soname; ask the private index which ones it has.
names=()
for pat in '^libngtcp2-[0-9]+$' '^libngtcp2-crypto-gnutls[0-9]+$' \
  '^libngtcp2-dev$' '^libngtcp2-crypto-gnutls-dev$'; do
  n=$(apt-cache "${apt_opts[@]}" pkgnames | grep -E "$pat" | sort -V | tail -n 1)
  if [[ -z $n ]]; then
    echo "ngtcp2-1x: no package matching $pat in $suite" >&2
    exit 1
  fi
  names+=("$n/$suite")
done
echo "ngtcp2-1x: downloading ${names[*]}"
(cd "$work/debs" && apt-get "${apt_opts[@]}" download "${names[@]}")

for deb in "$work"/debs/*.deb; do
  dpkg -x "$deb" "$prefix/root"
done

# Lay the prefix out as include/ and lib/ and fix the pkg-config files.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
rm -rf "${prefix:?}/include" "${prefix:?}/lib"
ln -s root/usr/include "$prefix/include"
ln -s "root/usr/lib/$multiarch" "$prefix/lib"
for pc in "$prefix/root/usr/lib/$multiarch/pkgconfig"/*.pc; do
  sed -i -e "s|^prefix=.*|prefix=$prefix/root/usr|" \
    -e "s|^libdir=.*|libdir=$prefix/root/usr/lib/$multiarch|" \
    -e "s|^includedir=.*|includedir=$prefix/root/usr/include|" "$pc"
done

version=$(sed -n 's/^Version: *//p' "$prefix/lib/pkgconfig/libngtcp2.pc")
echo "ngtcp2 $version from $suite" >"$stamp"
echo "ngtcp2-1x: ngtcp2 $version unpacked"
echo "$prefix"
