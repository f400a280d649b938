#!/usr/bin/env bash
# Every-architecture checks, as run by .ci/run:
#   1. the barrier instruction check (.ci/xarch/insn-check.sh) for powerpc64le, powerpc64,
#      aarch64, riscv64 and x86_64, and its self-test (a corrupted barrier must fail the check);
#   2. the crate's tests on powerpc64le, aarch64 and riscv64 under qemu-user
#      (.ci/xarch/cross-test.sh).
# Prints a per-architecture summary; exits non-zero if anything failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib.sh
. "$ROOT/.ci/lib.sh"
X=$ROOT/.ci/xarch
OUT=$ROOT/target/xarch
mkdir -p "$OUT"
status=0
t0=$SECONDS

# The instruction check disassembles with llvm-objdump.
if ! command -v llvm-objdump-14 >/dev/null && ! command -v llvm-objdump >/dev/null && [ -z "${LLVM_OBJDUMP:-}" ]; then
    need_pkgs llvm-14 || echo "xarch: llvm-objdump is missing and llvm-14 could not be installed" >&2
fi

echo "--- instruction check"
insn_log=$OUT/insn-check.log
bash "$X/insn-check.sh" 2>&1 | tee "$insn_log"
insn_rc=${PIPESTATUS[0]}
[ "$insn_rc" -eq 0 ] || status=1

echo "--- instruction check self-test"
bash "$X/insn-check.sh" --self-test 2>&1 | tee "$OUT/insn-self-test.log"
self_rc=${PIPESTATUS[0]}
[ "$self_rc" -eq 0 ] || status=1
t_insn=$((SECONDS - t0))

echo "--- tests under qemu-user"
summary=$OUT/cross-test.summary
: >"$summary"
XARCH_SUMMARY=$summary bash "$X/cross-test.sh"
cross_rc=$?
[ "$cross_rc" -eq 0 ] || status=1
t_cross=$((SECONDS - t0 - t_insn))

insn_result() {
    if grep -q "^ok $1 " "$insn_log"; then
        echo ok
    elif grep -q "^MISMATCH $1[ :]" "$insn_log"; then
        echo FAILED
    else
        echo "not run"
    fi
}
tests_result() {
    local line
    line=$(awk -v t="$1" '$1 == t' "$summary" | tail -1)
    if [ -z "$line" ]; then
        echo "${2:-not run}"
        return
    fi
    read -r _ passed failed ignored result secs <<<"$line"
    echo "$result ($passed passed, $failed failed, $ignored ignored; ${secs} s)"
}

echo
echo "=== every-architecture summary"
printf '%-32s %-16s %s\n' target "instructions" "tests under qemu-user"
for t in powerpc64le-unknown-linux-gnu powerpc64-unknown-linux-gnu aarch64-unknown-linux-gnu \
    riscv64gc-unknown-linux-gnu x86_64-unknown-linux-gnu; do
    case "$t" in
    powerpc64-*) note="not run (big-endian ELFv1: no trixie std; compile check only)" ;;
    x86_64-*) note="host: run by the main test steps" ;;
    *) note="" ;;
    esac
    printf '%-32s %-16s %s\n' "$t" "$(insn_result "$t")" "$(tests_result "$t" "$note")"
done
if [ "$self_rc" -eq 0 ]; then self=ok; else self=FAILED; fi
echo "instruction check self-test (corrupted barriers must fail): $self"
echo "times: instruction check + self-test ${t_insn} s, tests under qemu-user ${t_cross} s"
if [ "$status" -ne 0 ]; then
    echo "xarch: FAILED"
else
    echo "xarch: all checks passed"
fi
exit "$status"
