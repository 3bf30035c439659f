#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# CI fuzz smoke test: every libFuzzer harness for FUZZ_SECONDS (default 60).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60} exec scripts/fuzz "$@"
