#!/usr/bin/env bash
# Disassembly check of wide device accesses: every 16-byte (x86_64, aarch64), 32- and 64-byte
# (x86_64) device access the crate makes must be ONE instruction of that width, and a 64-byte
# direct store one `movdir64b`. A mock backend
# cannot see this: a 16-byte `memset_io` whose value went through a `u128` once compiled to two
# 8-byte stores, and every test still passed.
#
#   bash .ci/disasm.sh                 build, run and check the probe: all three builds
#   bash .ci/disasm.sh BUILD...        some: x86_64 (host rustc), x86_64-msrv, aarch64 (rustc 1.85)
#
# The probe binary (.ci/disasm/probe.rs, example `disasm_probe`) exports one `disasm_*` function
# per access through the crate's public API. It is built in release mode for x86_64 with the
# host rustc, and for x86_64 and aarch64-unknown-linux-gnu with the MSRV compiler of the
# cross-architecture tests (Debian's rustc 1.85, set up by .ci/xarch/cross-test.sh
# --fetch-only), run (aarch64 under qemu-user), and disassembled with llvm-objdump. For each probe, the instructions of the probe and of every
# function of the crate it reaches by direct calls are matched against the table below.
#
# Environment: CARGO_TARGET_DIR (the x86_64 build), XARCH_TARGET_DIR (the aarch64 build, default
# target/xarch as for the cross-architecture tests), XARCH_CACHE (their toolchain cache),
# LLVM_OBJDUMP, DISASM_TARGET_DIR (logs and disassembly, default target/disasm).
#
# Exit status: 0 every row holds and the self-test probe is rejected, 1 a check failed,
# 2 the check could not run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=lib.sh
. "$ROOT/.ci/lib.sh"
OUT=${DISASM_TARGET_DIR:-$ROOT/target/disasm}
t0=$SECONDS

die() {
    echo "disasm: error: $*" >&2
    exit 2
}

# ---- instruction classes ----------------------------------------------------------------------
# `class arch regex` (Python syntax), matched against each instruction as `mnemonic operands`
# (Intel syntax on x86_64, spaces collapsed, comments removed). Memory operands based on the
# stack or frame pointer (x86 rsp/rbp, aarch64 sp/x29) or rip (statics) are not device memory
# and never match.
CLASSES='
st16  x86_64  ^v?mov\w*\s+xmmword ptr \[(?!rsp|rbp|rip)
ld16  x86_64  ^v?mov\w*\s+xmm\d+,\s*xmmword ptr \[(?!rsp|rbp|rip)
st32  x86_64  ^v?mov\w*\s+ymmword ptr \[(?!rsp|rbp|rip)
ld32  x86_64  ^v?mov\w*\s+ymm\d+,\s*ymmword ptr \[(?!rsp|rbp|rip)
st64  x86_64  ^(v?mov\w*\s+zmmword ptr \[(?!rsp|rbp|rip)|movdir64b\s)
ld64  x86_64  ^v?mov\w*\s+zmm\d+,\s*zmmword ptr \[(?!rsp|rbp|rip)
movdir x86_64 ^movdir64b\s
stany x86_64  ^(lock\s+)?(?!cmp|test|bt\s|v?u?comi|v?ptest|prefetch|nop|clflush|call|jmp)\w+\s+(byte|word|dword|qword|xmmword|ymmword|zmmword) ptr \[(?!rsp|rbp|rip)
st16  aarch64 ^(str|stur)\s+q\d+,\s*\[(?!sp|x29)
ld16  aarch64 ^(ldr|ldur)\s+q\d+,\s*\[(?!sp|x29)
stany aarch64 ^st\w*\s+.*\[(?!sp|x29)
'

# ---- expected instructions --------------------------------------------------------------------
# `probe arch class count [xfail]` (arch `x86_64-host`: the host compiler's x86_64 build only,
# for 64-byte `zmm` accesses, which need rustc 1.89): the probe (symbol `disasm_<probe>`) and the crate functions it
# calls must hold exactly `count` instructions of `class` (`N+`: at least N). A probe may have
# several rows; all must hold. `xfail` rows must FAIL (the self-test: the checker can reject).
#
# Backend read/write probes are exact: one access of the width, and (writes) no other store to
# non-stack memory. The bulk probes (`memset_io`, `memcpy_toio`, `memcpy_fromio` of 16 bytes,
# and of 256 bytes for the 32- and 64-byte widths: shorter copies make 16-byte accesses) reach
# the crate's out-of-line copy functions, whose plan (and width) is chosen at run time, so their
# trees hold every width's loop: there the row requires the width's device-side instruction to
# be present at all (`1+`). Each class used there occurs only on the device side of
# that direction (Fill and ToIo: stores; FromIo: loads), so a W128/W256 access lowered to
# narrower instructions leaves none. A new width (64 bytes: `st64`) is one class and its rows.
TABLE='
mmio_write_w128      x86_64  st16   1
mmio_write_w128      x86_64  stany  1
mmio_read_w128       x86_64  ld16   1
mmio_write_w256      x86_64  st32   1
mmio_write_w256      x86_64  stany  1
mmio_read_w256       x86_64  ld32   1
mmio_read_w256       x86_64  ld16   0
memset_io_16         x86_64  st16   1+
memcpy_toio_16       x86_64  st16   1+
memcpy_fromio_16     x86_64  ld16   1+
typed_write_16       x86_64  st16   1+
memset_io_32         x86_64  st32   1+
memcpy_toio_32       x86_64  st32   1+
memcpy_fromio_32     x86_64  ld32   1+
typed_write_32       x86_64  st32   1+
mmio_write_w512      x86_64-host st64   1
mmio_write_w512      x86_64-host stany  1
mmio_read_w512       x86_64-host ld64   1
mmio_read_w512       x86_64-host ld32   0
write_direct64       x86_64  movdir 1
memset_io_64         x86_64-host st64   1+
memcpy_toio_64       x86_64-host st64   1+
memcpy_fromio_64     x86_64-host ld64   1+
typed_write_64       x86_64-host st64   1+
selftest_split_w128  x86_64  st16   1      xfail
selftest_split_w128  x86_64  stany  1      xfail
mmio_write_w128      aarch64 st16   1
mmio_write_w128      aarch64 stany  1
mmio_read_w128       aarch64 ld16   1
memset_io_16         aarch64 st16   1+
memcpy_toio_16       aarch64 st16   1+
memcpy_fromio_16     aarch64 ld16   1+
typed_write_16       aarch64 st16   1+
selftest_split_w128  aarch64 st16   1      xfail
selftest_split_w128  aarch64 stany  1      xfail
'

BUILDS=("$@")
[ ${#BUILDS[@]} -gt 0 ] || BUILDS=(x86_64 x86_64-msrv aarch64)
for b in "${BUILDS[@]}"; do
    case "$b" in x86_64 | x86_64-msrv | aarch64) ;; *) die "unknown build $b (x86_64 | x86_64-msrv | aarch64)" ;; esac
done

command -v python3 >/dev/null || need_pkgs python3 || die "python3 is missing"
find_objdump() {
    local c
    for c in "${LLVM_OBJDUMP:-}" llvm-objdump llvm-objdump-14 llvm-objdump-15 llvm-objdump-16 llvm-objdump-19; do
        if [ -n "$c" ] && command -v "$c" >/dev/null 2>&1; then
            echo "$c"
            return 0
        fi
    done
    return 1
}
OBJDUMP=$(find_objdump) || { need_pkgs llvm-14 && OBJDUMP=$(find_objdump); } ||
    die "no llvm-objdump (apt-get install llvm-14, or set LLVM_OBJDUMP)"
mkdir -p "$OUT"

# The MSRV compiler of the cross-architecture tests (prints the rustc wrapper's path):
# .ci/xarch/cross-test.sh --fetch-only installs gcc-aarch64-linux-gnu, the target C library and
# qemu-user-static if missing, and unpacks Debian's rustc 1.85 with the x86_64 and aarch64
# standard libraries (cached; a rerun downloads nothing).
msrv_rustc() {
    local cache tc
    bash "$ROOT/.ci/xarch/cross-test.sh" --fetch-only aarch64-unknown-linux-gnu >"$OUT/toolchain.log" 2>&1 ||
        { cat "$OUT/toolchain.log" >&2; die "MSRV toolchain setup failed (.ci/xarch/cross-test.sh --fetch-only)"; }
    # The cache directory cross-test.sh chose (it keeps only the current toolchain there).
    if [ -n "${XARCH_CACHE:-}" ]; then
        cache=$XARCH_CACHE
    elif [ -w /var/cache/iomem-xarch ]; then
        cache=/var/cache/iomem-xarch
    else
        cache=$ROOT/target/xarch-toolchain
    fi
    for tc in "$cache"/toolchain-*; do
        if [ -f "$tc/.complete" ] && [ -x "$tc/bin-wrap/rustc" ]; then
            echo "$tc/bin-wrap/rustc"
            return 0
        fi
    done
    die "no rustc wrapper under $cache (see $OUT/toolchain.log)"
}

# Builds the probe for build $1 (x86_64: host rustc; x86_64-msrv, aarch64: rustc 1.85), runs it
# (aarch64 under qemu-user) and prints the binary's path.
build() {
    local b=$1 bin log wrap t xdir
    log=$OUT/build-$b.log
    case "$b" in
    x86_64)
        # Cargo's usual target directory: CI's release build of the report example shares it.
        (cd "$ROOT" && cargo build --locked --release --example disasm_probe) \
            >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "$b build failed (see $log)"; }
        bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/disasm_probe
        "$bin" >"$OUT/run-$b.log" 2>&1 || { cat "$OUT/run-$b.log" >&2; die "$b probe binary failed"; }
        ;;
    x86_64-msrv | aarch64)
        wrap=$(msrv_rustc) || exit 2
        if [ "$b" = aarch64 ]; then t=aarch64-unknown-linux-gnu; else t=x86_64-unknown-linux-gnu; fi
        # The cross-architecture tests' target directory (same compiler, shared dependencies).
        xdir=${XARCH_TARGET_DIR:-$ROOT/target/xarch}
        (cd "$ROOT" && env RUSTC="$wrap" CARGO_TARGET_DIR="$xdir" \
            CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
            cargo build --locked --release --example disasm_probe --target "$t") \
            >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "$b build failed (see $log)"; }
        bin=$xdir/$t/release/examples/disasm_probe
        if [ "$b" = aarch64 ]; then
            qemu-aarch64-static -L /usr/aarch64-linux-gnu "$bin" >"$OUT/run-$b.log" 2>&1 ||
                { cat "$OUT/run-$b.log" >&2; die "$b probe binary failed under qemu-user"; }
        else
            "$bin" >"$OUT/run-$b.log" 2>&1 || { cat "$OUT/run-$b.log" >&2; die "$b probe binary failed"; }
        fi
        ;;
    esac
    echo "$bin"
}

status=0
for b in "${BUILDS[@]}"; do
    s=$SECONDS
    bin=$(build "$b") || exit 2
    arch=${b%-msrv}
    echo "disasm: $b: $(tail -n 1 "$OUT/run-$b.log" | sed 's/^disasm_probe: //') ($((SECONDS - s)) s to build and run)"
    dis=$OUT/$b.dis
    x86=()
    [ "$arch" != x86_64 ] || x86=(-M intel)
    "$OBJDUMP" -d --no-show-raw-insn "${x86[@]}" "$bin" >"$dis" || die "$OBJDUMP failed on $bin"
    rc=0
    python3 - "$arch" "$dis" "$CLASSES" "$TABLE" "$b" <<'PY' || rc=$?
import re, sys

arch, dis, classes_txt, table_txt, label = sys.argv[1:6]

classes = {}
for line in classes_txt.splitlines():
    parts = line.split(None, 2)
    if len(parts) == 3 and parts[1] == arch:
        classes[parts[0]] = re.compile(parts[2].strip())

# Functions of the binary: address -> list of (normalised instruction, direct call/jump target
# as (address, name)); names by address, and the first address of each name.
funcs, names, by_name, cur = {}, {}, {}, None
head = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")
insn = re.compile(r"^\s*[0-9a-f]+:\s+(.*)$")
target = re.compile(r"^(call|jmp|bl|b)\s+(?:0x)?([0-9a-f]+) <([^>+]+)>$")
with open(dis) as f:
    for raw in f:
        raw = raw.rstrip("\n")
        m = head.match(raw)
        if m:
            # Keyed by address: inlined-into-several-units copies of one function share a name.
            addr = int(m.group(1), 16)
            cur = funcs.setdefault(addr, [])
            names[addr] = m.group(2)
            by_name.setdefault(m.group(2), addr)
            continue
        m = insn.match(raw)
        if cur is None or not m:
            continue
        text = m.group(1)
        # Comments: `# <addr>` in Intel syntax, `// =..` on aarch64 (whose `#` starts an immediate).
        text = re.sub(r"\s+#.*$" if arch == "x86_64" else r"\s+//.*$", "", text)
        text = " ".join(text.split())
        if not text or text in ("int3", "nop", "udf #0") or text.startswith("nop "):
            continue
        t = target.match(text)
        cur.append((text, (int(t.group(2), 16), t.group(3)) if t else None))

# The crate's functions (and the probe's own) are followed through direct calls and tail jumps.
OWN = ("_ZN5iomem", "_ZN12disasm_probe", "disasm_")

def tree(root):
    seen, todo, out = set(), [root], []
    while todo:
        fn = todo.pop()
        if fn in seen or fn not in funcs:
            continue
        seen.add(fn)
        for text, tgt in funcs[fn]:
            out.append(text)
            if tgt and tgt[0] != fn and tgt[1].startswith(OWN):
                todo.append(tgt[0])
    return out, len(seen)

rows = {}
order = []
for line in table_txt.splitlines():
    p = line.split()
    # `x86_64-host` rows: the host compiler's build only (64-byte accesses need rustc >= 1.89).
    if len(p) < 4 or not (p[1] == arch or (p[1] == "x86_64-host" and label == "x86_64")):
        continue
    if p[0] not in rows:
        order.append(p[0])
    rows.setdefault(p[0], []).append((p[2], p[3], len(p) > 4 and p[4] == "xfail"))

fails = 0
for probe in order:
    sym = "disasm_" + probe
    want = rows[probe]
    xfail = any(x for _, _, x in want)
    if sym not in by_name:
        print(f"FAIL {label:<11} {probe:<20} symbol {sym} not in the binary (optimised away or renamed?)")
        fails += 1
        continue
    insns, nfn = tree(by_name[sym])
    good, parts, shown = True, [], []
    for cls, count, _ in want:
        if cls not in classes:
            print(f"FAIL {label:<11} {probe:<20} unknown class {cls} for {arch}")
            good = False
            continue
        hits = [i for i in insns if classes[cls].search(i)]
        n = len(hits)
        ok = n >= int(count[:-1]) if count.endswith("+") else n == int(count)
        good &= ok
        parts.append(f"{cls}={n}{'' if ok else ' (want ' + count + ')'}")
        for h in hits:
            if h not in shown:
                shown.append(h)
    found = "; ".join(shown[:4]) + (f"; ... {len(shown) - 4} more distinct" if len(shown) > 4 else "")
    where = f"{nfn} fn" + ("s" if nfn > 1 else "")
    if xfail:
        if good:
            print(f"FAIL {label:<11} {probe:<20} self-test probe ACCEPTED, must be rejected: {' '.join(parts)} [{found}]")
            fails += 1
        else:
            print(f"ok   {label:<11} {probe:<20} rejected as it must be: {' '.join(parts)} [{found}]")
    elif good:
        print(f"ok   {label:<11} {probe:<20} {' '.join(parts)} ({where}) [{found}]")
    else:
        print(f"FAIL {label:<11} {probe:<20} {' '.join(parts)} ({where}) [{found}]")
        fails += 1
if not order:
    print(f"FAIL {label:<11} no table rows")
    fails += 1
sys.exit(1 if fails else 0)
PY
    [ "$rc" -eq 0 ] || status=1
done

if [ "$status" -ne 0 ]; then
    echo "disasm: FAILED ($((SECONDS - t0)) s)"
else
    echo "disasm: every wide device access is one instruction of its width ($((SECONDS - t0)) s)"
fi
exit "$status"
