# Sourced by scripts/console.sh, bench.sh and faults.sh: build what they run
# and say where it is.
#
#   fcx_build ARGS...   release: `cargo build --release --locked ARGS...`;
#                       PROFILE=debug: the test build instead (below)
#   $FCX_BIN_DIR        where the binaries are afterwards
#
# PROFILE=debug reuses the build scripts/test.sh makes, with its exact
# command: `cargo build --workspace --all-targets --locked`, a no-op once the
# tests are built. A narrower debug build (`-p …`, `--bins`) would not be:
# cargo unifies features over what it builds, so it compiles the affected
# crates again under other hashes. The tests run the scripts this way: one
# cargo profile, no second (release) build.
fcx_build() {
  local target="${CARGO_TARGET_DIR:-target}"
  if [ "${PROFILE:-release}" = debug ]; then
    "${CARGO:-cargo}" build --workspace --all-targets --locked
    FCX_BIN_DIR="$target/debug"
  else
    "${CARGO:-cargo}" build --release --locked "$@"
    FCX_BIN_DIR="$target/release"
  fi
}
