#!/usr/bin/env bash
# End-to-end test of iomem against QEMU's emulated NVMe controller with a Controller Memory
# Buffer: builds the test binary (examples/nvme_e2e.rs) statically, packs it into an initramfs
# with busybox, and boots a Linux guest under QEMU (TCG) three times:
#   seabios  default firmware (the CMB BAR lands below 4 GiB)
#   qboot    -bios qboot.rom (the CMB BAR lands above 4 GiB)
#   fault    the test disables memory decoding mid-way and expects a typed error
# A run passes only if the guest prints IOMEM-E2E-EXIT=0 (QEMU exits 0 whatever the guest does).
#
# Usage: .ci/qemu/run.sh [run-name...]       (default: all runs). Needs root for apt-get.
# Env:   IOMEM_QEMU_WORK   work directory (default target/qemu)
#        IOMEM_QEMU_TIMEOUT seconds per boot (default 120)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=${IOMEM_QEMU_WORK:-$ROOT/target/qemu}
TIMEOUT=${IOMEM_QEMU_TIMEOUT:-120}
mkdir -p "$WORK"

t0=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

echo "qemu: installing what is missing"
"$ROOT/.ci/qemu/install.sh" "$WORK"

echo "qemu: building the static guest binary"
tb=$(date +%s.%N)
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
    --target x86_64-unknown-linux-gnu --target-dir "$ROOT/target/guest" \
    --features linux --example nvme_e2e
BIN=$ROOT/target/guest/x86_64-unknown-linux-gnu/release/examples/nvme_e2e
[ -x "$BIN" ] || { echo "qemu: guest binary $BIN missing" >&2; exit 1; }
echo "qemu: build $(elapsed "$tb") s"

echo "qemu: packing the initramfs"
IRD=$WORK/initramfs
rm -rf "$IRD"
mkdir -p "$IRD/bin"
cp /bin/busybox "$IRD/bin/busybox"
install -m 0755 "$ROOT/.ci/qemu/init" "$IRD/init"
install -m 0755 "$BIN" "$IRD/nvme_e2e"
(cd "$IRD" && find . | LC_ALL=C sort | cpio --quiet -o -H newc) > "$WORK/initramfs.cpio"

DISK=$WORK/disk.img
rm -f "$DISK"
truncate -s 64M "$DISK"

QBOOT=/usr/share/qemu/qboot.rom

# boot <name> <firmware: seabios|qboot> <iomem_args> [extra qemu args...]
boot() {
    local name=$1 fw=$2 args=$3; shift 3
    local log=$WORK/$name.log fwargs=() tb rc=0
    [ "$fw" = qboot ] && fwargs=(-bios "$QBOOT")
    tb=$(date +%s.%N)
    timeout "$TIMEOUT" qemu-system-x86_64 \
        -machine q35 -accel tcg -cpu max -m 512M -smp 1 \
        -nodefaults -nographic -serial stdio -no-reboot \
        "${fwargs[@]}" \
        -kernel "$WORK/vmlinuz" -initrd "$WORK/initramfs.cpio" \
        -append "console=ttyS0 quiet initcall_blacklist=nvme_init panic=-1 iomem_args=$args" \
        -drive file="$DISK",if=none,id=d0,format=raw \
        "$@" </dev/null >"$log" 2>&1 || rc=$?
    local secs
    secs=$(elapsed "$tb")
    local code
    code=$(tr -d '\r' <"$log" | sed -n 's/^IOMEM-E2E-EXIT=\([0-9]*\)$/\1/p' | tail -n 1)
    sed 's/\r$//' "$log" | grep -v '^\s*$' | sed "s/^/  [$name] /"
    if [ "$code" = 0 ]; then
        echo "qemu: run $name PASSED in $secs s"
        results+=("$name: pass ($secs s)")
    else
        echo "qemu: run $name FAILED in $secs s (guest exit code '${code:-none}', qemu rc $rc; log $log)" >&2
        results+=("$name: FAIL (guest exit '${code:-none}', qemu rc $rc, $secs s)")
        failed=1
    fi
}

NVME=(-device nvme,serial=iomem0,drive=d0,cmb_size_mb=16)

runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(seabios qboot fault)
results=()
failed=0
tg=$(date +%s.%N)
for r in "${runs[@]}"; do
    case "$r" in
        seabios) boot seabios seabios full "${NVME[@]}" ;;
        qboot) boot qboot qboot full "${NVME[@]}" ;;
        fault) boot fault qboot fault "${NVME[@]}" ;;
        *) echo "qemu: unknown run $r (seabios, qboot, fault)" >&2; exit 2 ;;
    esac
done

echo "qemu: summary (guest runs $(elapsed "$tg") s, total $(elapsed "$t0") s)"
for s in "${results[@]}"; do echo "  $s"; done
exit $failed
