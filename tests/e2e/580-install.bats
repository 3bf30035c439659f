#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Issue 6 item 7, packaging: cmake --install puts the binaries, the man
# pages, the systemd units and the examples (with the PSK environment file)
# under the prefix; the units are valid and hardened; cpack makes a .deb.
# The man pages and the README describe every option of --help.
# The build directory is PRD_BUILD_DIR (default: PRD_BIN_DIR, where the
# binaries are, i.e. a CMake build directory).

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers_feat

PRD_BUILD_DIR=${PRD_BUILD_DIR:-$PRD_BIN_DIR}

UNITS=(portredirect-server.service portredirect-server@.service portredirect-client@.service)

# need_build_dir: skip unless PRD_BUILD_DIR is a CMake build directory; make
# sure its install rules include cmake/Packaging.cmake (reconfigure once if
# it was configured before that file existed).
need_build_dir() {
  [[ -f $PRD_BUILD_DIR/cmake_install.cmake ]] ||
    skip "$PRD_BUILD_DIR is not a CMake build directory (set PRD_BUILD_DIR)"
  if ! grep -q 'portredirect-server.service' "$PRD_BUILD_DIR/cmake_install.cmake"; then
    run_helper --timeout 300 cmake "$PRD_BUILD_DIR"
  fi
}

# install_into DESTDIR PREFIX [ARGS...]: cmake --install into DESTDIR.
install_into() {
  local dest=$1 prefix=$2
  shift 2
  run_helper --timeout 300 env DESTDIR="$dest" cmake --install "$PRD_BUILD_DIR" \
    --prefix "$prefix" "$@"
}

# files_under DIR: the files and links under DIR, relative, sorted.
files_under() {
  (cd "$1" && find . \( -type f -o -type l \) | sed -e 's|^\./||' | sort)
}

# help_options BINARY: the long options its --help lists.
help_options() {
  "$1" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z0-9-]+' | sort -u
}

@test "cmake --install --prefix /usr into a DESTDIR: binaries, man pages, units, examples" {
  need_build_dir
  local d=$BATS_TEST_TMPDIR/root
  install_into "$d" /usr
  files_under "$d" >"$BATS_TEST_TMPDIR/files"
  cat >"$BATS_TEST_TMPDIR/want" <<'EOF'
usr/bin/portredirect_client
usr/bin/portredirect_server
usr/bin/prd-conformance
usr/lib/sysctl.d/60-portredirect.conf
usr/lib/systemd/system/portredirect-client@.service
usr/lib/systemd/system/portredirect-server.service
usr/lib/systemd/system/portredirect-server@.service
usr/share/doc/portredirect/README.md
usr/share/doc/portredirect/examples/client-frontends.conf
usr/share/doc/portredirect/examples/client.conf
usr/share/doc/portredirect/examples/grafana-dashboard.json
usr/share/doc/portredirect/examples/psk.env.example
usr/share/doc/portredirect/examples/server.conf
usr/share/man/man1/portredirect_client.1
usr/share/man/man1/portredirect_server.1
usr/share/man/man1/prd-conformance.1
EOF
  run_helper diff -u "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/files"
  [[ -x $d/usr/bin/portredirect_server && -x $d/usr/bin/portredirect_client ]] ||
    die "the binaries are not executable"
  run_helper "$d/usr/bin/portredirect_server" --version
  run_helper "$d/usr/bin/portredirect_client" --version
  local u
  for u in "${UNITS[@]}"; do
    assert "$(stat -c %a "$d/usr/lib/systemd/system/$u")" == 644 "$u mode"
  done
  run grep -h '^ExecStart=' "$d"/usr/lib/systemd/system/*.service
  assert "$output" =~ "ExecStart=/usr/bin/portredirect_server " "the server unit runs the installed binary"
  assert "$output" =~ "ExecStart=/usr/bin/portredirect_client " "the client unit runs the installed binary"
  run grep -c '@PRD_' "$d"/usr/lib/systemd/system/*.service
  assert "$output" !~ ":[1-9]" "no placeholder left in the units"
}

@test "the units follow the install-time prefix (/usr/local)" {
  need_build_dir
  local d=$BATS_TEST_TMPDIR/root
  install_into "$d" /usr/local
  [[ -f $d/usr/local/lib/systemd/system/portredirect-server.service ]] || die "no unit under /usr/local"
  run grep -h '^ExecStart=' "$d"/usr/local/lib/systemd/system/*.service
  assert "$output" =~ "ExecStart=/usr/local/bin/portredirect_server " "server unit"
  assert "$output" =~ "ExecStart=/usr/local/bin/portredirect_client " "client unit"
}

@test "components: systemd and doc install on their own" {
  need_build_dir
  install_into "$BATS_TEST_TMPDIR/u" /usr --component systemd
  assert "$(files_under "$BATS_TEST_TMPDIR/u" | tr '\n' ' ')" == \
    "usr/lib/sysctl.d/60-portredirect.conf usr/lib/systemd/system/portredirect-client@.service usr/lib/systemd/system/portredirect-server.service usr/lib/systemd/system/portredirect-server@.service " \
    "only the units and the sysctl drop-in"
  install_into "$BATS_TEST_TMPDIR/d" /usr --component doc
  run files_under "$BATS_TEST_TMPDIR/d"
  assert "$output" =~ "usr/share/man/man1/portredirect_server.1" "man pages"
  assert "$output" =~ "usr/share/doc/portredirect/examples/psk.env.example" "the env example"
  assert "$output" !~ "usr/bin/" "no binaries"
}

@test "the systemd units: notify, credentials, hardening, state and config directories, restart; systemd-analyze verify" {
  need_build_dir
  local d=$BATS_TEST_TMPDIR/root
  install_into "$d" /usr
  local u f
  for u in "${UNITS[@]}"; do
    f=$d/usr/lib/systemd/system/$u
    local want
    for want in '^DynamicUser=yes$' '^StateDirectory=portredirect-' '^ConfigurationDirectory=portredirect$' \
      '^Restart=always$' '^NoNewPrivileges=yes$' '^ProtectSystem=strict$' '^PrivateTmp=yes$' \
      '^ProtectHome=yes$' '^ExecStart=.* --config /etc/portredirect/' \
      '^ExecStart=.* --config-dir /var/lib/portredirect-' '^WantedBy=multi-user.target$' \
      '^Type=notify$' '^NotifyAccess=main$' '^WatchdogSec=' '^RestartPreventExitStatus=2$' \
      '^LoadCredential=psk:/etc/portredirect/[a-z%-]+\.psk$' '^ExecStart=.* --quic-psk-file %d/psk'; do
      grep -qE "$want" "$f" || die "$u lacks /$want/"
    done
  done
  grep -q '^AmbientCapabilities=CAP_NET_BIND_SERVICE$' "$d/usr/lib/systemd/system/portredirect-server.service" ||
    die "the server cannot bind port 443"
  # No PSK in an environment file any more (it is a credential).
  run grep -l '^EnvironmentFile=' "$d"/usr/lib/systemd/system/*.service
  assert "$output" == "" "no EnvironmentFile="
  # The templates: one state directory and one config file per instance.
  grep -q '^StateDirectory=portredirect-server/%i$' "$d/usr/lib/systemd/system/portredirect-server@.service" ||
    die "server@: no per-instance state directory"
  grep -q 'server-%i\.conf' "$d/usr/lib/systemd/system/portredirect-server@.service" ||
    die "server@: no per-instance config file"
  # The sysctl drop-in raises what the UDP buffers need (8 MiB).
  run grep -E '^net\.core\.(r|w)mem_max = 8388608$' "$d/usr/lib/sysctl.d/60-portredirect.conf"
  assert "${#lines[@]}" == 2 "rmem_max and wmem_max"
  command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed (apt-get install systemd)"
  # verify: with ExecStart pointing at the staged binaries and man: links
  # resolved in the staged man pages.
  local v=$BATS_TEST_TMPDIR/verify
  mkdir -p "$v"
  sed -e "s|^ExecStart=/usr/bin/|ExecStart=$d/usr/bin/|" "$d/usr/lib/systemd/system/portredirect-server.service" \
    >"$v/portredirect-server.service"
  sed -e "s|^ExecStart=/usr/bin/|ExecStart=$d/usr/bin/|" "$d/usr/lib/systemd/system/portredirect-client@.service" \
    >"$v/portredirect-client@web.service"
  sed -e "s|^ExecStart=/usr/bin/|ExecStart=$d/usr/bin/|" "$d/usr/lib/systemd/system/portredirect-server@.service" \
    >"$v/portredirect-server@public.service"
  run_helper --timeout 120 env MANPATH="$d/usr/share/man" systemd-analyze verify \
    "$v/portredirect-server.service" "$v/portredirect-server@public.service" \
    "$v/portredirect-client@web.service"
  assert "$output" == "" "systemd-analyze verify has nothing to say"
  # The exposure score of systemd-analyze security (0 safe .. 10 exposed).
  local score
  for u in portredirect-server.service portredirect-server@public.service portredirect-client@web.service; do
    run_helper --timeout 120 systemd-analyze security --offline=yes --no-pager "$v/$u"
    score=$(grep -oE 'Overall exposure level for [^:]+: [0-9.]+' <<<"$output" | awk '{print $NF}')
    echo "# $u: exposure $score" >&3
    assert "$(awk -v s="$score" 'BEGIN {print (s != "" && s <= 2.5) ? 1 : 0}')" == 1 \
      "$u exposure $score at most 2.5"
  done
}

@test "the man pages render without warnings and describe every option of --help" {
  local b page opt missing
  for b in server client; do
    page=$PRD_ROOT/man/portredirect_$b.1
    [[ -f $page ]] || die "no $page"
    run_helper groff -t -man -Tutf8 -ww -z "$page"
    assert "$output" == "" "groff warnings for ${page##*/}"
    missing=()
    while read -r opt; do
      # roff writes a dash as \-.
      grep -qF -- "${opt//-/\\-}" "$page" || missing+=("$opt")
    done < <(help_options "$PRD_BIN_DIR/portredirect_$b")
    assert "${missing[*]}" == "" "options of portredirect_$b --help missing from its man page"
    # And the man page names no option the binary does not have.
    missing=()
    while read -r opt; do
      "$PRD_BIN_DIR/portredirect_$b" --help | grep -qF -- "$opt" || missing+=("$opt")
    done < <(sed -n '/^\.SH OPTIONS/,/^\.SH /p' "$page" | grep -oE '^\.B[IR]? \\-\\-[a-z\\-]+' |
      grep -oE '\\-\\-[a-z\\-]+' | sed -e 's/\\-/-/g' | sort -u)
    assert "${missing[*]}" == "" "options in the man page that portredirect_$b does not have"
  done
  if command -v man >/dev/null; then
    run_helper env MANWIDTH=80 man -l "$PRD_ROOT/man/portredirect_client.1"
    assert "$output" =~ "portredirect_client - backend of a reverse TCP tunnel over QUIC" "NAME section"
  fi
}

@test "the README documents every option of both binaries" {
  local b opt
  local -a missing=()
  for b in server client; do
    while read -r opt; do
      grep -qF -- "\`$opt" "$PRD_ROOT/README.md" || missing+=("$opt ($b)")
    done < <(help_options "$PRD_BIN_DIR/portredirect_$b")
  done
  assert "${missing[*]}" == "" "options missing from README.md"
}

@test "cpack -G DEB makes a lintian-clean .deb; installed into a throwaway root it works, /etc files are conffiles" {
  need_build_dir
  skip_without cpack cmake
  skip_without dpkg-deb dpkg
  [[ -f $PRD_BUILD_DIR/CPackConfig.cmake ]] || die "no CPackConfig.cmake in $PRD_BUILD_DIR"
  local out=$BATS_TEST_TMPDIR/deb
  mkdir -p "$out"
  run_helper --timeout 600 bash -c "cd '$out' && cpack -G DEB --config '$PRD_BUILD_DIR/CPackConfig.cmake' -B '$out'"
  local deb
  deb=$(find "$out" -maxdepth 1 -name 'portredirect_*.deb' | head -n 1)
  [[ -n $deb ]] || die "no .deb made"
  run_helper dpkg-deb -f "$deb" Package Version Architecture Section Depends
  assert "$output" =~ "Package: portredirect" "package name"
  assert "$output" =~ "Depends: .*libngtcp2" "depends on ngtcp2"
  assert "$output" =~ "Depends: .*libgnutls30" "depends on GnuTLS"
  assert "$output" =~ "Depends: .*libevent-core" "depends on libevent"
  run_helper dpkg-deb -c "$deb"
  local f
  for f in ./usr/bin/portredirect_server ./usr/bin/portredirect_client \
    ./usr/share/man/man1/portredirect_server.1.gz ./usr/share/man/man1/portredirect_client.1.gz \
    ./usr/lib/systemd/system/portredirect-server.service \
    ./usr/lib/systemd/system/portredirect-server@.service \
    ./usr/lib/systemd/system/portredirect-client@.service \
    ./usr/lib/sysctl.d/60-portredirect.conf \
    ./usr/share/doc/portredirect/copyright ./usr/share/doc/portredirect/changelog.gz \
    ./usr/share/doc/portredirect/examples/grafana-dashboard.json \
    ./etc/portredirect/server.conf ./etc/portredirect/client-example.conf; do
    assert "$output" =~ " $f"$'(\n|$)' "$f in the package"
  done
  assert "$output" !~ "\.1"$'(\n|$)' "no uncompressed man page"
  # The packaged unit runs the packaged binary.
  run_helper bash -c "dpkg-deb --fsys-tarfile '$deb' | tar -xO ./usr/lib/systemd/system/portredirect-server.service | grep '^ExecStart='"
  assert "$output" =~ "^ExecStart=/usr/bin/portredirect_server " "ExecStart in the packaged unit"
  # Every file under /etc is a conffile.
  run_helper dpkg-deb -I "$deb" conffiles
  assert "$output" == $'/etc/portredirect/server.conf\n/etc/portredirect/client-example.conf' "the conffiles"
  # Installed into a throwaway root (its own dpkg database; the libraries
  # come from this machine): the binaries run, units and man pages are in
  # place, dpkg records the conffiles.
  local root=$BATS_TEST_TMPDIR/sysroot
  mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
  touch "$root/var/lib/dpkg/status"
  run_helper --timeout 120 dpkg --root="$root" --force-depends --force-not-root -i "$deb"
  run_helper "$root/usr/bin/portredirect_server" --version
  run_helper "$root/usr/bin/portredirect_client" --version
  [[ -f $root/usr/lib/systemd/system/portredirect-client@.service ]] || die "no client unit"
  run_helper env MANWIDTH=80 man -l "$root/usr/share/man/man1/portredirect_server.1.gz"
  assert "$output" =~ "portredirect_server - frontend" "the installed man page"
  run_helper dpkg --root="$root" -s portredirect
  assert "$output" =~ $'Conffiles:\n /etc/portredirect/server.conf [0-9a-f]{32}' "dpkg recorded the conffiles"
  # The installed server.conf is the example, and it parses.
  run_helper --rc 0 "$root/usr/bin/portredirect_server" --config "$root/etc/portredirect/server.conf" \
    --config-dir "$BATS_TEST_TMPDIR/id" --print-fingerprint
  # lintian has nothing to say (errors, warnings).
  command -v lintian >/dev/null || skip "lintian is not installed (apt-get install lintian)"
  run_helper --timeout 300 lintian --tag-display-limit 0 "$deb"
  assert "$(grep -vE '^running with root privileges' <<<"$output")" == "" "lintian's findings"
}

@test "the README points at the man pages, examples, units and package; its ports are distinct; --help and man page agree on value lists" {
  local readme=$PRD_ROOT/README.md
  local want
  for want in 'man pages' 'portredirect_server(1)' 'examples/' 'portredirect-client@.service' \
    'portredirect-server@.service' 'cpack -G DEB' 'LoadCredential=' 'sysctl.d' \
    'packaging/grafana-dashboard.json'; do
    grep -qF -- "$want" "$readme" || die "README.md does not mention $want"
  done
  # Usage: the client's destination (nginx) is not the QUIC port.
  local usage dest quic
  usage=$(sed -n '/^## Usage/,/^### Options/p' "$readme")
  dest=$(grep -oE -- '--destination-port [0-9]+' <<<"$usage" | head -n 1 | awk '{print $2}')
  quic=$(grep -oE -- '--quic-remote-port [0-9]+' <<<"$usage" | head -n 1 | awk '{print $2}')
  [[ -n $dest && -n $quic ]] || die "no client command line in Usage"
  assert "$dest" != "$quic" "Usage: --destination-port differs from the QUIC port"
  # The diagram: the backend's destination port is not the QUIC port 4433.
  run grep -E '──TCP──▶ 127\.0\.0\.1:4433' "$readme"
  assert "$status" == 1 "the diagram's destination is not 4433"
  # Value lists in --help are the man page's.
  local b opt arg
  for b in server client; do
    while read -r opt arg; do
      grep -F -- "${opt//-/\\-}" "$PRD_ROOT/man/portredirect_$b.1" | grep -qF -- "$arg" ||
        die "portredirect_$b --help shows '$opt $arg', the man page does not"
    done < <("$PRD_BIN_DIR/portredirect_$b" --help | grep -oE -- '--[a-z-]+ [a-z0-9]+(\|[a-z0-9]+)+')
  done
  "$PRD_BIN_DIR/portredirect_client" --help | grep -qF -- '--proxy-protocol none|v1|v2' ||
    die "--help does not list none for --proxy-protocol"
}
