#!/usr/bin/env bash
# Model checking with loom (tests/loom.rs): the crate's spin lock (src/sync/spin.rs, behind
# IoSpinLock and the p2p allocator) and the strong counts (one per arena) of a pool that its live buffers share
# (src/p2p/buf.rs), under every interleaving of two threads with at most LOOM_MAX_PREEMPTIONS
# preemptions (default 3).
#
#   .ci/loom.sh [extra arguments for the test binary, e.g. a test name]
#
# Builds with `--cfg loom` in its own target directory (target/loom), so it neither rebuilds nor
# is rebuilt by the ordinary builds. The models take well under a second once built.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib.sh

export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
export RUSTFLAGS="--cfg loom${RUSTFLAGS:+ $RUSTFLAGS}"
cmd=(cargo test --locked --release --test loom --target-dir target/loom -- "$@")

section "loom: LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS RUSTFLAGS=\"$RUSTFLAGS\" ${cmd[*]}"
if ! "${cmd[@]}"; then
  echo "ci: FAILED: a loom model found an interleaving that breaks the lock or the pool's count" \
    "(or the build failed); rerun with LOOM_LOG=1 and the test's name for its trace" >&2
  exit 1
fi
echo "ci: loom models passed"
