#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# CI fuzz smoke test: every libFuzzer harness for FUZZ_SECONDS (default 20).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-20} exec scripts/fuzz "$@"
