#!/usr/bin/env bash
# Checks that the product crates compile for Windows (named pipes instead of
# Unix sockets; Job-Object-free process control is best effort there).
# Not part of scripts/test.sh: it needs the Windows std from rustup and the
# mingw C cross compiler (for the bundled SQLite and aws-lc), which this
# script installs on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed | grep -q x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
command -v x86_64-w64-mingw32-gcc >/dev/null || apt-get install -y gcc-mingw-w64-x86-64
cargo check --locked --target x86_64-pc-windows-gnu \
  -p fcx-proto -p fcx-ipc -p fcx-config -p fcx-worker -p fcx-gateway -p fcx-ctl
echo "Windows (x86_64-pc-windows-gnu): fcxd, fcx-worker and fcxctl compile."
