#!/usr/bin/env bash
# README's first command: fcx with this terminal as the chat (no Feishu
# tenant needed). Installs the pinned Codex CLI if it is not on PATH, builds
# fcxd and fcx-worker, and starts `fcxd --console`.
#
# Codex needs credentials: export OPENAI_API_KEY (the default profile reads
# env:OPENAI_API_KEY), or configure another auth mode in ~/.fcx/config.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

CODEX_VERSION=0.169.0
CACHE="${FCX_CACHE:-$HOME/.cache/fcx}"
CODEX_DIR="$CACHE/codex-$CODEX_VERSION"
CODEX_BIN="$CODEX_DIR/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"

if [ -z "${FCX_CODEX_BINARY:-}" ] && ! command -v codex >/dev/null; then
  if [ ! -x "$CODEX_BIN" ]; then
    echo "Installing the Codex CLI $CODEX_VERSION into $CODEX_DIR ..." >&2
    mkdir -p "$CODEX_DIR"
    (cd "$CODEX_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "@openai/codex@$CODEX_VERSION") >&2
  fi
  export FCX_CODEX_BINARY="$CODEX_BIN"
fi

# The default profile's workspace; fcx never creates a workspace by itself.
if [ ! -f "${FCX_HOME:-$HOME/.fcx}/config.toml" ] && [ ! -d "$HOME/fcx-work" ]; then
  mkdir -p "$HOME/fcx-work"
  echo "Created $HOME/fcx-work, the default workspace." >&2
fi

cargo build --release --bins -q
exec ./target/release/fcxd --console "$@"
