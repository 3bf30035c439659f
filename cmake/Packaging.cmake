# SPDX-License-Identifier: GPL-3.0-only
# Install rules beyond the two binaries (man pages, systemd units, examples,
# the PSK environment file example) and the CPack settings for a .deb.
# Included at the end of CMakeLists.txt. Components:
#   Unspecified  the binaries (CMakeLists.txt)
#   doc          man pages, README, examples
#   systemd      the service units and the sysctl.d drop-in
# Everything goes under the install prefix, so that
#   DESTDIR=/tmp/root cmake --install build --prefix /usr
# stages a tree for packaging; the units name the binaries by the prefix
# given at install time (not at configure time).

set(PRD_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Directory of the systemd units; a relative one is under the prefix")
set(PRD_SYSCTLDIR "lib/sysctl.d" CACHE STRING
    "Directory of sysctl.d drop-ins; a relative one is under the prefix")
install(FILES packaging/sysctl/60-portredirect.conf
        DESTINATION ${PRD_SYSCTLDIR} COMPONENT systemd)

install(FILES man/portredirect_server.1 man/portredirect_client.1
              man/prd-conformance.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT doc)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT doc)
install(FILES examples/server.conf examples/client.conf
              examples/client-frontends.conf packaging/psk.env.example
              packaging/grafana-dashboard.json
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT doc)

# prd_install_path(VAR DIR) sets VAR to the install-time expression of DIR:
# DIR itself when absolute, else DIR under ${CMAKE_INSTALL_PREFIX} as it is
# when the install script runs.
function(prd_install_path var dir)
  if(IS_ABSOLUTE "${dir}")
    set(${var} "${dir}" PARENT_SCOPE)
  else()
    set(${var} "\${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

prd_install_path(_prd_bindir "${CMAKE_INSTALL_BINDIR}")
prd_install_path(_prd_docdir "${CMAKE_INSTALL_DOCDIR}")
prd_install_path(_prd_unitdir "${PRD_SYSTEMD_UNITDIR}")
foreach(_prd_unit portredirect-server.service portredirect-server@.service
                  portredirect-client@.service)
  install(CODE "
    set(PRD_BINDIR \"${_prd_bindir}\")
    set(PRD_DOCDIR \"${_prd_docdir}\")
    file(READ \"${CMAKE_SOURCE_DIR}/packaging/systemd/${_prd_unit}.in\" _text)
    string(CONFIGURE \"\${_text}\" _text @ONLY)
    file(WRITE \"${CMAKE_BINARY_DIR}/packaging/${_prd_unit}\" \"\${_text}\")
    file(INSTALL DESTINATION \"${_prd_unitdir}\" TYPE FILE
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
         FILES \"${CMAKE_BINARY_DIR}/packaging/${_prd_unit}\")
  " COMPONENT systemd)
endforeach()

# CPack: cpack -G DEB in the build directory makes portredirect_VERSION_ARCH.deb.
set(CPACK_PACKAGE_NAME portredirect)
set(CPACK_PACKAGE_VENDOR portredirect)
set(CPACK_PACKAGE_CONTACT
    "portredirect developers <portredirect@users.noreply.github.com>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "reverse TCP tunnel over QUIC")
# The extended description: dpkg wants lines of at most 80 columns.
set(CPACK_PACKAGE_DESCRIPTION
    "portredirect carries TCP connections made to a public frontend, through
one QUIC connection, to a backend behind NAT that dialled out. The client
pins the server's self-signed certificate (or its fingerprint), the server
authenticates the client with a pre-shared key. Includes systemd units and
PROXY protocol support.")
set(CPACK_RESOURCE_FILE_README "${CMAKE_SOURCE_DIR}/README.md")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "nginx | haproxy")
# Debian policy on the staged tree (compressed man pages, copyright,
# changelog, /etc conffiles): cmake/DebPreBuild.cmake.
set(CPACK_PRD_SOURCE_DIR "${CMAKE_SOURCE_DIR}")
set(CPACK_PRE_BUILD_SCRIPTS "${CMAKE_SOURCE_DIR}/cmake/DebPreBuild.cmake")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${CMAKE_SOURCE_DIR}/packaging/debian/conffiles")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
find_program(PRD_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(PRD_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  # Without dpkg-shlibdeps: the package names of the ngtcp2 we built against
  # (0.12 in Debian 12; 1.x in bookworm-backports and Debian 13, whose
  # GnuTLS and libevent packages carry the t64 suffix).
  if(NGTCP2_VERSION VERSION_LESS 1.0)
    set(CPACK_DEBIAN_PACKAGE_DEPENDS
        "libc6, libngtcp2-9, libngtcp2-crypto-gnutls2, libgnutls30 (>= 3.7.2), libevent-core-2.1-7, libevent-extra-2.1-7")
  else()
    set(CPACK_DEBIAN_PACKAGE_DEPENDS
        "libc6, libngtcp2-16, libngtcp2-crypto-gnutls8, libgnutls30t64 | libgnutls30 (>= 3.7.2), libevent-core-2.1-7t64 | libevent-core-2.1-7, libevent-extra-2.1-7t64 | libevent-extra-2.1-7")
  endif()
endif()
include(CPack)
