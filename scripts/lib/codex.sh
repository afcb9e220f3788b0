# Sourced by scripts/*.sh: where the pinned Codex CLI lives, and how to
# install it from the npm registry. The whole vendor tree is kept: codex
# needs its bundled bwrap and rg next to the binary.
CODEX_VERSION=0.169.0
CODEX_DIR="${FCX_CACHE:-$HOME/.cache/fcx}/codex-$CODEX_VERSION"

# The npm package ships one optional platform package per OS and CPU; the
# native binary sits under vendor/<target triple>/bin (as bin/codex.js finds it).
codex_platform() {
  local os arch
  os=$(uname -s); arch=$(uname -m)
  case "$os/$arch" in
    Linux/x86_64) echo "linux-x64 x86_64-unknown-linux-musl" ;;
    Linux/aarch64|Linux/arm64) echo "linux-arm64 aarch64-unknown-linux-musl" ;;
    Darwin/x86_64) echo "darwin-x64 x86_64-apple-darwin" ;;
    Darwin/arm64) echo "darwin-arm64 aarch64-apple-darwin" ;;
    *) echo "unsupported $os/$arch" ;;
  esac
}
read -r CODEX_PKG CODEX_TRIPLE <<<"$(codex_platform)"
CODEX_BIN="$CODEX_DIR/node_modules/@openai/codex-$CODEX_PKG/vendor/$CODEX_TRIPLE/bin/codex"

codex_ok() {
  [ -x "$CODEX_BIN" ] && "$CODEX_BIN" --version 2>/dev/null | grep -q "codex-cli $CODEX_VERSION"
}

install_codex() {
  if [ "$CODEX_PKG" = unsupported ]; then
    echo "no pinned Codex CLI build for $CODEX_TRIPLE; install codex $CODEX_VERSION yourself and set FCX_CODEX_BINARY" >&2
    return 1
  fi
  command -v npm >/dev/null || { echo "npm is required to install @openai/codex@$CODEX_VERSION (apt-get install npm)" >&2; return 1; }
  rm -rf "$CODEX_DIR" && mkdir -p "$CODEX_DIR"
  (cd "$CODEX_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "@openai/codex@$CODEX_VERSION")
}
