# SPDX-License-Identifier: GPL-3.0-only
# CPack pre-build script (CPACK_PRE_BUILD_SCRIPTS) for the .deb: runs on
# the staged tree before it is packed, so that cmake --install stays plain
# while the package follows Debian policy (lintian-clean):
#   - man pages compressed (gzip -9n: maximum compression, no timestamp);
#   - /usr/share/doc/portredirect/copyright and changelog.gz (a native
#     package's Debian changelog) from packaging/debian/;
#   - /etc/portredirect/server.conf and client-example.conf from examples/,
#     listed as conffiles (packaging/debian/conffiles).
set(_root "${CPACK_TEMPORARY_DIRECTORY}")
set(_src "${CPACK_PRD_SOURCE_DIR}")
if(NOT IS_DIRECTORY "${_root}/usr")
  message(FATAL_ERROR "DebPreBuild: no staged tree in ${_root}")
endif()
find_program(_gzip gzip REQUIRED)

function(_prd_gzip in out)
  execute_process(COMMAND "${_gzip}" -9nc "${in}" OUTPUT_FILE "${out}"
                  RESULT_VARIABLE rv)
  if(NOT rv EQUAL 0)
    message(FATAL_ERROR "DebPreBuild: gzip ${in} failed")
  endif()
  file(CHMOD "${out}" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endfunction()

file(GLOB _pages "${_root}/usr/share/man/man1/*.1")
foreach(_p IN LISTS _pages)
  _prd_gzip("${_p}" "${_p}.gz")
  file(REMOVE "${_p}")
endforeach()

set(_doc "${_root}/usr/share/doc/portredirect")
file(MAKE_DIRECTORY "${_doc}")
_prd_gzip("${_src}/packaging/debian/changelog" "${_doc}/changelog.gz")
file(COPY_FILE "${_src}/packaging/debian/copyright" "${_doc}/copyright")

file(MAKE_DIRECTORY "${_root}/etc/portredirect")
file(COPY_FILE "${_src}/examples/server.conf"
     "${_root}/etc/portredirect/server.conf")
file(COPY_FILE "${_src}/examples/client.conf"
     "${_root}/etc/portredirect/client-example.conf")
file(GLOB_RECURSE _all LIST_DIRECTORIES true "${_root}/*")
foreach(_f IN LISTS _all)
  if(IS_DIRECTORY "${_f}")
    file(CHMOD "${_f}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
         GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endif()
endforeach()
