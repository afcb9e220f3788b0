#!/usr/bin/env bash
# Install fcxd, fcx-worker and fcxctl (release builds, `cargo install --path`)
# into ~/.local/bin, where `fcxctl service install` and deploy/ expect them.
#
#   scripts/install.sh             install (or update) the three binaries
#   scripts/install.sh --service   then run `fcxctl service install`
#
# FCX_INSTALL_ROOT (default ~/.local) puts them in $FCX_INSTALL_ROOT/bin.
# The first build compiles every dependency: 3 to 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

root="${FCX_INSTALL_ROOT:-$HOME/.local}"
cargo="${CARGO:-cargo}"
service=no
for arg in "$@"; do
  case "$arg" in
    --service) service=yes ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (see scripts/install.sh --help)" >&2; exit 2 ;;
  esac
done

# fcxd starts fcx-worker from its own directory: all three land together.
for pkg in gateway worker ctl; do
  echo "Installing $pkg into $root/bin ..." >&2
  "$cargo" install --locked --force --path "$pkg" --root "$root"
done
echo "Installed fcxd, fcx-worker and fcxctl into $root/bin."

case ":$PATH:" in
  *":$root/bin:"*) ;;
  *) echo "note: $root/bin is not on your PATH; add it in your shell profile: export PATH=\"$root/bin:\$PATH\"" ;;
esac

if [ "$service" = yes ]; then
  exec "$root/bin/fcxctl" service install --fcxd "$root/bin/fcxd"
fi
echo "next: fcxctl doctor, then fcxctl service install"
