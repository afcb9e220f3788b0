# Sourced by scripts/*.sh: where the pinned Codex CLI lives, and how to
# install it from the npm registry. The whole vendor tree is kept: codex
# needs its bundled bwrap and rg next to the binary.
CODEX_VERSION=0.169.0
CODEX_DIR="${FCX_CACHE:-$HOME/.cache/fcx}/codex-$CODEX_VERSION"
CODEX_BIN="$CODEX_DIR/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"

codex_ok() {
  [ -x "$CODEX_BIN" ] && "$CODEX_BIN" --version 2>/dev/null | grep -q "codex-cli $CODEX_VERSION"
}

install_codex() {
  command -v npm >/dev/null || { echo "npm is required to install @openai/codex@$CODEX_VERSION (apt-get install npm)" >&2; return 1; }
  rm -rf "$CODEX_DIR" && mkdir -p "$CODEX_DIR"
  (cd "$CODEX_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "@openai/codex@$CODEX_VERSION")
}
