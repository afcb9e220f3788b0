#!/bin/sh
# A stand-in C compiler for `cargo check`/`cargo clippy` of another target
# when no cross C toolchain (macOS SDK, mingw) is installed. The bundled
# SQLite (libsqlite3-sys) and aws-lc (aws-lc-sys, rustls's crypto) compile C
# in their build scripts; a check never links, so their objects may be
# empty. It writes an empty file for `-o FILE`, answers the compiler-family
# probe (`-E`) with the host gcc so cc-rs takes it for GCC, and fails `-?`
# (cc-rs's MSVC probe). Never use it for a build that links.
out=""
prev=""
for a in "$@"; do
  case "$a" in
    -E) exec gcc -E "$@" 2>/dev/null ;;
    "-?") exit 1 ;;
  esac
  if [ "$prev" = "-o" ]; then out="$a"; fi
  case "$a" in -o?*) out="${a#-o}" ;; esac
  prev="$a"
done
if [ -n "$out" ]; then : >"$out"; fi
exit 0
