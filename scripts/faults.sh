#!/usr/bin/env bash
# The long forms of issue 14's proof, one command: every fault-matrix row
# for 20 rounds (kill -9 of the worker and of fcxd at a different point of a
# run each round, WebSocket drop / half-open / refused reconnects, 429 and
# 5xx storms, a platform answering every call after 2 s, the platform's
# clock an hour off both ways, fcxd's and the worker's own clock stepping an
# hour both ways and the worker's state directory turning read-only under it
# (the fault shim, tests/shim/faultshim.c, built with cc), Codex crashing /
# printing garbage / hanging, a full queue; every run is the real Codex CLI
# talking to the mock model on 127.0.0.1, but the garbage row's, which only
# the scripted fake codex can print), card click → ACK timing, and a 30-minute soak with 8
# profiles. Prints one JSON object and writes it to target/fcx-figures.json
# (or $FCX_FIGURES); exits 1 when a row lost or duplicated a message or the
# soak saw growth after warm-up.
#
#   scripts/faults.sh                 release build, 20 rounds, 30-min soak
#   ROUNDS=3 SOAK_SECS=60 scripts/faults.sh    a shorter run
#   PROFILE=debug scripts/faults.sh   reuse the test build (scripts/lib/build.sh)
#   FAULT_ROWS=worker_kill9,fcxd_kill9 SOAK_SECS=0 scripts/faults.sh
#                                     those rows only (name prefixes), no soak
#
# The normal test command runs the short form (one round each, a 4 s soak)
# through `tests/tests/e2e/contract.rs`.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-20}"
soak_secs="${SOAK_SECS:-1800}"
figures="${FCX_FIGURES:-target/fcx-figures.json}"
. scripts/lib/build.sh
. scripts/lib/codex.sh
# The fault rows (and the warm-child section) run the real Codex CLI against
# the mock model: the pinned one from the npm registry unless one is named.
if [ -z "${FCX_TEST_CODEX:-}" ]; then
  codex_ok || install_codex
  export FCX_TEST_CODEX="$CODEX_BIN"
fi
fcx_build --workspace --bins -q
bin="$FCX_BIN_DIR/fcx-bench"
# Sections not run here keep their last figures in the file (the bench
# merges), so the file holds every figure.
only=faults,soak
[ "$soak_secs" = 0 ] && only=faults
exec "$bin" --no-build --only "$only" --fault-rounds "$rounds" \
  ${FAULT_ROWS:+--fault-rows "$FAULT_ROWS"} \
  --soak-secs "$soak_secs" --figures "$figures"
