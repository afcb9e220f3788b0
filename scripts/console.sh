#!/usr/bin/env bash
# README's first command: fcx with this terminal as the chat (no Feishu
# tenant needed). Installs the pinned Codex CLI if it is not on PATH, builds
# fcxd and fcx-worker, and starts `fcxd --console`.
#
# Codex needs credentials: export OPENAI_API_KEY (the default profile reads
# env:OPENAI_API_KEY), or configure another auth mode in ~/.fcx/config.toml.
# Arguments go to fcxd (`scripts/console.sh --profile work`).
#
# PROFILE=debug uses the test build instead of a release build (see
# scripts/lib/build.sh); the tests run this script that way.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/codex.sh
. scripts/lib/build.sh

if [ -z "${FCX_CODEX_BINARY:-}" ] && ! command -v codex >/dev/null; then
  if ! codex_ok; then
    echo "Installing the Codex CLI $CODEX_VERSION into $CODEX_DIR ..." >&2
    install_codex >&2
  fi
  export FCX_CODEX_BINARY="$CODEX_BIN"
fi

# The default profile's workspace; fcx never creates a workspace by itself.
if [ ! -f "${FCX_HOME:-$HOME/.fcx}/config.toml" ] && [ ! -d "$HOME/fcx-work" ]; then
  mkdir -p "$HOME/fcx-work"
  echo "Created $HOME/fcx-work, the default workspace." >&2
fi

# Only the three product binaries (not the tests' fakes or the bench). The
# first build compiles every dependency: a few minutes on a small machine.
if [ "${PROFILE:-release}" != debug ] && [ ! -x "${CARGO_TARGET_DIR:-target}/release/fcxd" ]; then
  echo "Building fcx (release; the first build takes 3-5 minutes on 2 cores) ..." >&2
fi
fcx_build -p fcx-gateway -p fcx-worker -p fcx-ctl --bins
exec "$FCX_BIN_DIR/fcxd" --console "$@"
