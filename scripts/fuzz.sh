#!/usr/bin/env bash
# The libFuzzer runs behind fuzz/README.md's figures, without cargo-fuzz: builds
# every target with the coverage flags `cargo fuzz build --sanitizer none --dev`
# passes (no AddressSanitizer; nightly toolchain), then runs each one in turn
# for BUDGET seconds from fuzz/seeds/<target>, its corpus and crash artifacts
# in OUT (outside the repo), and prints one Markdown row per target.
# SANITIZER=address builds them with AddressSanitizer as well.
#
#   scripts/fuzz.sh [BUDGET_SECS=90] [OUT=/tmp/fcx-fuzz] [target...]
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-90}
out=${2:-/tmp/fcx-fuzz}
shift $(($# < 2 ? $# : 2))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(callback_token frame reassembly normalize command config codex_jsonl app_server)

export CARGO_INCREMENTAL=0
# SANITIZER=address adds AddressSanitizer (what `cargo fuzz build` does by
# default: -Zsanitizer=address on the target only, so build scripts and proc
# macros stay plain), in a target directory of its own.
sanitizer=${SANITIZER:-none}
flags="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions"
target_dir=fuzz/target
case "$sanitizer" in
  none) ;;
  address) flags="$flags -Zsanitizer=address"; target_dir=fuzz/target-asan ;;
  *) echo "SANITIZER must be none or address" >&2; exit 2 ;;
esac
RUSTFLAGS="$flags" CARGO_TARGET_DIR="$target_dir" \
  nice -n 10 cargo +nightly build --manifest-path fuzz/Cargo.toml \
  --target x86_64-unknown-linux-gnu --bins
bin=$target_dir/x86_64-unknown-linux-gnu/debug

echo "| target | executions | exec/s | coverage edges (features) | corpus | crashes | timeouts (10 s) | slowest unit | OOMs | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for t in "${targets[@]}"; do
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
  log="$out/$t.log"
  nice -n 10 "$bin/$t" "$out/corpus/$t" "fuzz/seeds/$t" -max_total_time="$budget" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" >"$log" 2>&1 || true
  stat() { grep -oP "stat::$1: +\\K\\d+" "$log" || echo "?"; }
  last() { grep -oP "$1: \\K\\S+" "$log" | tail -1; }
  echo "| \`$t\` | $(stat number_of_executed_units) | $(stat average_exec_per_sec)" \
    "| $(last cov) ($(last ft)) | $(last corp) | $(grep -cE 'deadly signal|panicked at|AddressSanitizer' "$log")" \
    "| $(grep -c 'libFuzzer: timeout' "$log") | $(stat slowest_unit_time_sec) s" \
    "| $(grep -c 'out-of-memory' "$log") | $(stat peak_rss_mb) MB |"
done
