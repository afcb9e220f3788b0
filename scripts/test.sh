#!/usr/bin/env bash
# README's second command: runs every test from a fresh machine.
#
# Installs what it needs (nothing is assumed but the Rust toolchain, Node/npm
# and a C compiler): the pinned Codex CLI from the npm registry into a cache
# directory, cargo-nextest if it is missing (plain `cargo test` otherwise).
# Fails, never skips, when the real Codex CLI cannot be installed or run.
set -euo pipefail
cd "$(dirname "$0")/.."

CODEX_VERSION=0.169.0
CACHE="${FCX_CACHE:-$HOME/.cache/fcx}"
CODEX_DIR="$CACHE/codex-$CODEX_VERSION"
CODEX_BIN="$CODEX_DIR/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"

step() { printf '\n== %s\n' "$*"; }

step "Codex CLI $CODEX_VERSION (pinned, npm registry)"
if [ ! -x "$CODEX_BIN" ] || ! "$CODEX_BIN" --version 2>/dev/null | grep -q "codex-cli $CODEX_VERSION"; then
  command -v npm >/dev/null || { echo "npm is required to install @openai/codex@$CODEX_VERSION (apt-get install npm)"; exit 1; }
  rm -rf "$CODEX_DIR" && mkdir -p "$CODEX_DIR"
  # The whole vendor tree is kept: codex needs its bundled bwrap and rg.
  (cd "$CODEX_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "@openai/codex@$CODEX_VERSION")
fi
if ! "$CODEX_BIN" --version | grep -q "codex-cli $CODEX_VERSION"; then
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
