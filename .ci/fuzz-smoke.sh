#!/usr/bin/env bash
# Fuzz smoke run: each cargo-fuzz target of fuzz/ for a short time (FUZZ_SECONDS, default 25).
#
#   .ci/fuzz-smoke.sh [target ...]
#
# Installs cargo-fuzz from crates.io if it is missing (with retries). Uses the nightly
# toolchain when rustup has one; otherwise stable with RUSTC_BOOTSTRAP=1 (cargo-fuzz needs the
# nightly-only sanitizer flags). Fails, naming the target, if a target crashes or cannot build.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib.sh

SECONDS_PER_TARGET="${FUZZ_SECONDS:-25}"
TARGETS=("$@")
[ "${#TARGETS[@]}" -eq 0 ] && TARGETS=(regs_decode alloc_ops access_plan)

section "fuzz smoke: ${TARGETS[*]}, ${SECONDS_PER_TARGET}s each"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "ci: cargo-fuzz not found; installing it from crates.io"
  if ! retry cargo install cargo-fuzz --locked; then
    echo "ci: FAILED: could not install cargo-fuzz (network or build failure)" >&2
    exit 1
  fi
fi

TOOLCHAIN=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  TOOLCHAIN=(+nightly)
  echo "ci: using the nightly toolchain"
else
  export RUSTC_BOOTSTRAP=1
  echo "ci: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1"
fi

failed=()
for t in "${TARGETS[@]}"; do
  section "fuzz $t"
  # `cargo fuzz run` builds first; libFuzzer stops after max_total_time with status 0, and
  # exits non-zero with the crashing input saved under fuzz/artifacts/$t/ otherwise.
  if ! cargo "${TOOLCHAIN[@]}" fuzz run "$t" -- -max_total_time="$SECONDS_PER_TARGET" \
      -print_final_stats=1 2>&1 | tail -n 25; then
    echo "ci: FAILED: fuzz target $t crashed or did not build (see fuzz/artifacts/$t/)" >&2
    failed+=("$t")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "ci: fuzz smoke FAILED for: ${failed[*]}" >&2
  exit 1
fi
echo "ci: fuzz smoke passed: ${TARGETS[*]}"
