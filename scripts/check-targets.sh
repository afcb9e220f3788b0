#!/usr/bin/env bash
# Clippy (-D warnings) of fcx for macOS and Windows from a Linux machine:
#   scripts/check-targets.sh            # both
#   scripts/check-targets.sh macos      # x86_64-apple-darwin
#   scripts/check-targets.sh windows    # x86_64-pc-windows-gnu
#
# Type-checks only: nothing is linked or run (that needs the platform).
# Needs the targets' std (`rustup target add`, done here when missing; a
# download) and no cross C toolchain: the C that the bundled SQLite and
# aws-lc build is replaced by scripts/lib/check-only-cc.sh, unless
# CC_<target> is already set (osxcross, or mingw's x86_64-w64-mingw32-gcc,
# used when installed). Not part of scripts/test.sh: the first run builds
# every dependency twice more (minutes on 2 cores; later runs are quick).
#
# macOS: the whole workspace, every target (the test crate included).
# Windows: the product crates with their unit and integration tests, and the
# test harness library; the end-to-end tests and their fakes (shell scripts,
# signals, Unix sockets) are Unix-only.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
fake="$PWD/scripts/lib/check-only-cc.sh"

prepare() { # target
  local t="$1" v
  v="${t//-/_}"
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  if [ -z "$(printenv "CC_$v" || true)" ]; then
    if [ "$t" = x86_64-pc-windows-gnu ] && command -v x86_64-w64-mingw32-gcc >/dev/null; then
      export "CC_$v=x86_64-w64-mingw32-gcc" "AR_$v=x86_64-w64-mingw32-ar"
    else
      export "CC_$v=$fake" "CXX_$v=$fake" "AR_$v=ar"
    fi
  fi
}

macos() {
  local t=x86_64-apple-darwin
  prepare "$t"
  cargo clippy --locked --target "$t" --workspace --all-targets -- -D warnings
  echo "macOS ($t): the workspace type-checks, clippy clean."
}

windows() {
  local t=x86_64-pc-windows-gnu
  prepare "$t"
  cargo clippy --locked --target "$t" \
    -p fcx-proto -p fcx-ipc -p fcx-config -p fcx-state -p fcx-worker -p fcx-gateway -p fcx-ctl \
    --lib --bins --tests -- -D warnings
  cargo clippy --locked --target "$t" -p fcx-tests --lib -- -D warnings
  echo "Windows ($t): fcxd, fcx-worker, fcxctl and their tests type-check, clippy clean."
}

case "${1:-all}" in
  macos) macos ;;
  windows) windows ;;
  all) macos; windows ;;
  *) echo "usage: $0 [macos|windows]" >&2; exit 2 ;;
esac
