#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-only
# CI stages: scripts/test is the one place they are defined.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec scripts/test "$@"
