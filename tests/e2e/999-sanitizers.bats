#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-3.0-only
# Runs last: fails when an earlier test's logs held a sanitizer report
# (teardown records them; in bats 1.8 a teardown cannot fail its test).

# shellcheck disable=SC2030,SC2031,SC2034
# (bats runs each test in a subshell; helpers read the globals set here.)
load helpers

@test "no AddressSanitizer/UBSan/LeakSanitizer report in any test's logs" {
  local f=${BATS_RUN_TMPDIR:-/tmp}/prd-sanitizer-reports
  if [[ -s $f ]]; then
    sed -e 's/^/# /' "$f" | head -n 200
    die "sanitizer reports (see above; the full logs are in each test's output)"
  fi
}
