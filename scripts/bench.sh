#!/usr/bin/env bash
# README's benchmark command: a release build of the workspace's binaries
# (fcxd, fcx-worker, fake-codex and the bench itself), then fcx-bench on
# them. Arguments go to the bench: `scripts/bench.sh --only load,cards`,
# `scripts/bench.sh --quick` (the short form the tests run). Prints one JSON
# object and writes target/fcx-figures.json.
#
# PROFILE=debug uses the test build instead of a release build (see
# scripts/lib/build.sh); the tests run this script that way.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/build.sh
. scripts/lib/codex.sh
# The fault rows (and the warm-child section) run the real Codex CLI against
# the mock model: the pinned one from the npm registry unless one is named.
if [ -z "${FCX_TEST_CODEX:-}" ]; then
  codex_ok || install_codex
  export FCX_TEST_CODEX="$CODEX_BIN"
fi

fcx_build --workspace --bins -q
exec "$FCX_BIN_DIR/fcx-bench" --no-build "$@"
