#!/usr/bin/env bash
# README's second command: runs every test from a fresh machine.
#
# Installs what it needs (nothing is assumed but the Rust toolchain, Node/npm
# and a C compiler): the pinned Codex CLI from the npm registry into a cache
# directory. Tests run under cargo-nextest when it is installed (plain
# `cargo test` otherwise).
# Fails, never skips, when the real Codex CLI cannot be installed or run.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/codex.sh

step() { printf '\n== %s\n' "$*"; }

step "Codex CLI $CODEX_VERSION (pinned, npm registry)"
codex_ok || install_codex
if ! codex_ok; then
  echo "the real Codex CLI at $CODEX_BIN does not run; the end-to-end tests need it"; exit 1
fi
"$CODEX_BIN" --version
export FCX_TEST_CODEX="$CODEX_BIN"

step "format"
cargo fmt --all -- --check

step "build (one dev profile for everything: the tests drive the real binaries)"
cargo build --workspace --all-targets --locked

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
