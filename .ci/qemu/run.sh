#!/usr/bin/env bash
# End-to-end test of iomem against QEMU's emulated NVMe controller with a Controller Memory
# Buffer: builds the test binary (examples/nvme_e2e.rs) statically, packs it into an initramfs
# with busybox, and boots a Linux guest under QEMU (TCG) four times:
#   seabios  default firmware (the CMB BAR lands below 4 GiB)
#   qboot    -bios qboot.rom (the CMB BAR lands above 4 GiB)
#   fault    the kernel's nvme driver binds first (the test expects the typed "driver owns the
#            BAR" error, then unbinds it); the test disables memory decoding mid-way and
#            expects a typed error (qboot)
#   unplug   the host hot-unplugs the controller (QEMU monitor device_del, behind a PCIe root
#            port) while the test reads; it expects a typed error (SeaBIOS)
#   p2p-root    examples/p2p_distance.rs with two controllers on the root bus (q35 pcie.0):
#               expects not-supported (the q35 host bridge 8086:29c0 is in no table) (qboot)
#   p2p-switch  the same with both behind one switch (x3130-upstream, two xio3130-downstream
#               ports, under a pcie-root-port): expects switch (qboot)
#               Both p2p runs then run examples/p2p_copy.rs: 1 MiB from A's namespace into B's
#               CMB and on to its namespace, no PRP in host RAM, and a host-bounce copy for
#               comparison (p2p-root with --override qemu-root-complex-routes-p2p: QEMU routes it)
#   pmr         examples/nvme_pmr.rs, two boots on one PMR backing file ($WORK/pmr.img):
#               pmr-write writes a pattern through the PMR and flushes it (a PMRSTS read), the
#               host checks the file, pmr-check reads it back after the reboot (qboot)
#   vfio     examples/nvme_vfio.rs behind -device intel-iommu (intel_iommu=on), the VFIO modules
#            loaded by init: binds vfio-pci, I/O at IOVAs (qboot)
#   vfio-p2p    examples/p2p_copy.rs --vfio behind intel-iommu: both controllers in one VFIO
#               container, B's CMB BAR mapped in the IOMMU; A reads 1 MiB into it at IOVAs,
#               B writes it on; no PRP in host RAM; host-bounce comparison (qboot)
#   p2p-unplug  p2p_copy --until-unplugged: B (behind a root port) is hot-unplugged while A reads
#               into its CMB; both paths end in typed errors, the pool is whole, A still works
#   vfio-nogroup    nvme_vfio expects the typed no-IOMMU-group error: VFIO modules, no IOMMU
#   vfio-notviable  two controllers behind a PCIe-to-PCI bridge (one IOMMU group), the kernel's
#                   nvme driver bound: nvme_vfio binds one to vfio-pci and expects the typed
#                   group-not-viable error naming the other, binds that one too, then opens
# A run passes only if the guest prints IOMEM-E2E-EXIT=0 (QEMU exits 0 whatever the guest does).
#
# Usage: .ci/qemu/run.sh [run-name...]       (default: all). Needs root for apt-get.
# Env:   IOMEM_QEMU_WORK   work directory (default target/qemu)
#        IOMEM_QEMU_TIMEOUT seconds per boot (default 120)
#        IOMEM_QEMU_JOBS    guests at once (default: the number of CPUs; each is one TCG thread)
# Guest consoles are printed and kept in $IOMEM_QEMU_WORK/<run>.log.
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
# .ci/qemu/guest builds examples/nvme_e2e.rs as a binary without the dev-dependencies an
# example would link. It starts from the crate's lock file, so it uses the same versions (cargo
# drops the entries it does not need).
cp "$ROOT/Cargo.lock" "$ROOT/.ci/qemu/guest/Cargo.lock"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release \
    --manifest-path "$ROOT/.ci/qemu/guest/Cargo.toml" \
    --target x86_64-unknown-linux-gnu --target-dir "$ROOT/target/guest"
BIN=$ROOT/target/guest/x86_64-unknown-linux-gnu/release/nvme_e2e
P2PBIN=$ROOT/target/guest/x86_64-unknown-linux-gnu/release/p2p_distance
VFIOBIN=$ROOT/target/guest/x86_64-unknown-linux-gnu/release/nvme_vfio
PMRBIN=$ROOT/target/guest/x86_64-unknown-linux-gnu/release/nvme_pmr
COPYBIN=$ROOT/target/guest/x86_64-unknown-linux-gnu/release/p2p_copy
[ -x "$PMRBIN" ] || { echo "qemu: guest binary $PMRBIN missing" >&2; exit 1; }
for b in "$BIN" "$P2PBIN" "$VFIOBIN" "$COPYBIN"; do
    [ -x "$b" ] || { echo "qemu: guest binary $b missing" >&2; exit 1; }
done
echo "qemu: build $(elapsed "$tb") s"

echo "qemu: packing the initramfs"
IRD=$WORK/initramfs
rm -rf "$IRD"
mkdir -p "$IRD/bin"
cp /bin/busybox "$IRD/bin/busybox"
install -m 0755 "$ROOT/.ci/qemu/init" "$IRD/init"
install -m 0755 "$BIN" "$IRD/nvme_e2e"
install -m 0755 "$P2PBIN" "$IRD/p2p_distance"
install -m 0755 "$COPYBIN" "$IRD/p2p_copy"
install -m 0755 "$PMRBIN" "$IRD/nvme_pmr"
install -m 0755 "$VFIOBIN" "$IRD/nvme_vfio"
mkdir -p "$IRD/vfio"
cp "$WORK"/vfio/*.ko "$IRD/vfio/"
(cd "$IRD" && find . | LC_ALL=C sort | cpio --quiet -o -H newc) > "$WORK/initramfs.cpio"

QBOOT=/usr/share/qemu/qboot.rom

# boot <name> <firmware: seabios|qboot> <iomem_args> [extra qemu args...]
# Writes $WORK/<name>.log (console) and $WORK/<name>.result (one summary line; first word
# pass or FAIL).
boot() {
    local name=$1 fw=$2 args=$3; shift 3
    local log=$WORK/$name.log fwargs=() tb rc=0 secs code verdict
    [ "$fw" = qboot ] && fwargs=(-bios "$QBOOT")
    # The kernel's nvme driver is kept from binding unless BIND_NVME=1. `hugepages=4` reserves
    # 8 MiB of 2 MiB huge pages: the I/O completion queue (1024 entries) lives in one.
    local noinit="initcall_blacklist=nvme_init" binarg=
    [ "${BIND_NVME:-0}" = 1 ] && noinit=
    # IOMEM_BIN=NAME runs another binary of the initramfs than nvme_e2e.
    [ -n "${IOMEM_BIN:-}" ] && binarg=" iomem_bin=$IOMEM_BIN"
    # IOMEM_KARGS: more kernel arguments (the vfio run: intel_iommu=on iomem_vfio=modules).
    [ -n "${IOMEM_KARGS:-}" ] && binarg="$binarg $IOMEM_KARGS"
    tb=$(date +%s.%N)
    timeout "$TIMEOUT" qemu-system-x86_64 \
        -machine q35 -accel tcg -cpu max -m 512M -smp 1 \
        -nodefaults -nographic -serial stdio -no-reboot \
        "${fwargs[@]}" \
        -kernel "$WORK/vmlinuz" -initrd "$WORK/initramfs.cpio" \
        -append "console=ttyS0 quiet $noinit hugepages=4 panic=-1 iomem_args=$args$binarg" \
        "$@" </dev/null >"$log" 2>&1 || rc=$?
    secs=$(elapsed "$tb")
    code=$(tr -d '\r' <"$log" | sed -n 's/^IOMEM-E2E-EXIT=\([0-9]*\)$/\1/p' | tail -n 1)
    # The p2p runs' verdict, for the summary.
    verdict=$(tr -d '\r' <"$log" | sed -n 's/^IOMEM-P2P-DISTANCE /: /p' | tail -n 1)
    verdict="$verdict$(tr -d '\r' <"$log" | sed -n 's/^IOMEM-P2P-COPY throughput /; p2p_copy /p' | tail -n 1)"
    if [ "$code" = 0 ]; then
        echo "pass $name ($fw) in $secs s$verdict" >"$WORK/$name.result"
    else
        echo "FAIL $name ($fw): guest exit code '${code:-none}', qemu rc $rc, $secs s, log $log$verdict" >"$WORK/$name.result"
    fi
}

# One disk image per run: runs go in parallel.
disk() {
    rm -f "$WORK/$1.img"
    truncate -s 64M "$WORK/$1.img"
    echo "-drive file=$WORK/$1.img,if=none,id=d0,format=raw -device nvme,serial=iomem0,drive=d0,cmb_size_mb=16"
}

# Two small controllers with a CMB each for the p2p runs, on the buses given (p2p_copy uses
# B's CMB; 4 MiB namespaces: 1 MiB copied, two copies on B).
two_disks() {
    local name=$1 bus_a=$2 bus_b=$3 i
    for i in a b; do
        rm -f "$WORK/$name-$i.img"
        truncate -s 4M "$WORK/$name-$i.img"
    done
    echo "-drive file=$WORK/$name-a.img,if=none,id=pa,format=raw -device nvme,serial=p2pa,drive=pa,bus=$bus_a,cmb_size_mb=16"
    echo "-drive file=$WORK/$name-b.img,if=none,id=pb,format=raw -device nvme,serial=p2pb,drive=pb,bus=$bus_b,cmb_size_mb=16"
}

# The vfio run's second controller (its own IOMMU group, the same container; a CMB to map).
vfio_peer() {
    rm -f "$WORK/vfio-b.img"
    truncate -s 1M "$WORK/vfio-b.img"
    echo "-drive file=$WORK/vfio-b.img,if=none,id=d1,format=raw -device nvme,serial=iomem1,drive=d1,cmb_size_mb=16"
}

# The switch of the p2p-switch run: a root port, an upstream port, two downstream ports.
SWITCH="-device pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1 -device x3130-upstream,id=up,bus=rp1
 -device xio3130-downstream,id=dn1,bus=up,chassis=2,slot=0 -device xio3130-downstream,id=dn2,bus=up,chassis=3,slot=1"

# The unplug runs: a controller sits behind a PCIe root port; when the guest prints
# IOMEM-E2E-UNPLUG-READY the host sends `device_del <id>` through a monitor on a pipe.
# unplug_run <name> <device id> <firmware> <iomem_args> [qemu args...]
unplug_run() {
    local name=$1 id=$2 fw=$3 args=$4; shift 4
    local mon=$WORK/$name.mon log=$WORK/$name.log
    rm -f "$mon.in" "$mon.out"
    mkfifo "$mon.in" "$mon.out"
    (
        for _ in $(seq 1 $((TIMEOUT * 10))); do
            if grep -q IOMEM-E2E-UNPLUG-READY "$log" 2>/dev/null; then
                sleep 0.3
                timeout 5 sh -c "echo 'device_del $id' > '$mon.in'" || true
                exit 0
            fi
            grep -q IOMEM-E2E-EXIT "$log" 2>/dev/null && exit 0
            sleep 0.1
        done
    ) &
    local watcher=$!
    boot "$name" "$fw" "$args" "$@" -monitor pipe:"$mon"
    kill "$watcher" 2>/dev/null || true
    wait "$watcher" 2>/dev/null || true
    rm -f "$mon.in" "$mon.out"
}

# The pmr run: two boots, one after the other, on one PMR backing file. The host checks the
# file between them with the same binary (`nvme_pmr file PATH SEED`).
PMR_SEED=20261202
pmr_run() {
    local img=$WORK/pmr.img host hrc=0 w c sw sc sh
    rm -f "$img" "$WORK/pmr-disk.img" "$WORK"/pmr-write.* "$WORK"/pmr-check.*
    truncate -s 1M "$img"
    truncate -s 1M "$WORK/pmr-disk.img"
    local dev=(-object "memory-backend-file,id=pmr0,share=on,mem-path=$img,size=1M"
        -drive "file=$WORK/pmr-disk.img,if=none,id=d0,format=raw"
        -device nvme,serial=pmr0,drive=d0,pmrdev=pmr0)
    IOMEM_BIN=nvme_pmr boot pmr-write qboot "write,$PMR_SEED" "${dev[@]}"
    host=$("$PMRBIN" file "$img" "$PMR_SEED" 2>&1) || hrc=$?
    IOMEM_BIN=nvme_pmr boot pmr-check qboot "check,$PMR_SEED" "${dev[@]}"
    { sed 's/^/[pmr-write] /' "$WORK/pmr-write.log"; echo "$host" | sed 's/^/[host] /'
      sed 's/^/[pmr-check] /' "$WORK/pmr-check.log"; } >"$WORK/pmr.log"
    sum() { tr -d '\r' <"$1" | sed -n 's/^IOMEM-PMR-SUM=//p' | tail -n 1; }
    w=$(cat "$WORK/pmr-write.result"); c=$(cat "$WORK/pmr-check.result")
    sw=$(sum "$WORK/pmr-write.log"); sc=$(sum "$WORK/pmr-check.log")
    sh=$(echo "$host" | sed -n 's/^IOMEM-PMR-SUM=//p')
    local first; first=$(od -An -tx1 -N8 "$img" | tr -s ' ')
    local line="$w; host file $img: sum ${sh:-none}, first bytes$first; $c"
    case "$w/$c" in
        pass*/pass*) [ "$hrc" = 0 ] && [ -n "$sw" ] && [ "$sw" = "$sh" ] && [ "$sh" = "$sc" ] \
            && { echo "pass pmr: $line" >"$WORK/pmr.result"; return; } ;;
    esac
    echo "FAIL pmr: $line (sums: guest write ${sw:-none}, host ${sh:-none} rc $hrc, guest check ${sc:-none})" >"$WORK/pmr.result"
}

start_run() {
    local r=$1
    rm -f "$WORK/$r.result" "$WORK/$r.log"
    case "$r" in
        # shellcheck disable=SC2046
        seabios) boot seabios seabios full $(disk seabios) ;;
        # shellcheck disable=SC2046
        qboot) boot qboot qboot full $(disk qboot) ;;
        # shellcheck disable=SC2046
        fault) BIND_NVME=1 boot fault qboot fault,bound $(disk fault) ;;
        unplug) disk unplug >/dev/null
            unplug_run unplug nvme0 seabios unplug -device pcie-root-port,id=rp1,slot=1,chassis=1 \
                -drive file="$WORK/unplug.img",if=none,id=d0,format=raw \
                -device nvme,id=nvme0,bus=rp1,serial=iomem0,drive=d0,cmb_size_mb=16 ;;
        # B behind a root port, unplugged while A DMAs into its CMB.
        p2p-unplug) two_disks p2p-unplug x x >/dev/null
            IOMEM_BIN=p2p_copy unplug_run p2p-unplug nvmeb qboot --until-unplugged,--override,qemu-root-complex-routes-p2p \
                -device pcie-root-port,id=rp1,slot=1,chassis=1 \
                -drive file="$WORK/p2p-unplug-a.img",if=none,id=pa,format=raw \
                -device nvme,serial=p2pa,drive=pa,bus=pcie.0,cmb_size_mb=16 \
                -drive file="$WORK/p2p-unplug-b.img",if=none,id=pb,format=raw \
                -device nvme,id=nvmeb,serial=p2pb,drive=pb,bus=rp1,cmb_size_mb=16 ;;
        # shellcheck disable=SC2046
        p2p-root) IOMEM_BIN=p2p_distance IOMEM_KARGS="iomem_then=p2p_copy iomem_then_args=--override,qemu-root-complex-routes-p2p,--host-bounce" boot p2p-root qboot not-supported $(two_disks p2p-root pcie.0 pcie.0) ;;
        # shellcheck disable=SC2046,SC2086
        p2p-switch) IOMEM_BIN=p2p_distance IOMEM_KARGS="iomem_then=p2p_copy iomem_then_args=--host-bounce" boot p2p-switch qboot switch $SWITCH $(two_disks p2p-switch dn1 dn2) ;;
        pmr) pmr_run ;;
        # intel-iommu first, before the PCI devices it translates.
        # shellcheck disable=SC2046
        vfio) IOMEM_BIN=nvme_vfio IOMEM_KARGS="intel_iommu=on iomem_vfio=modules" boot vfio qboot vfio -device intel-iommu $(disk vfio) $(vfio_peer) ;;
        # shellcheck disable=SC2046
        vfio-p2p) IOMEM_BIN=p2p_copy IOMEM_KARGS="intel_iommu=on iomem_vfio=modules" boot vfio-p2p qboot --vfio,--override,qemu-root-complex-routes-p2p,--host-bounce -device intel-iommu $(two_disks vfio-p2p pcie.0 pcie.0) ;;
        # shellcheck disable=SC2046
        vfio-nogroup) IOMEM_BIN=nvme_vfio IOMEM_KARGS="iomem_vfio=modules" boot vfio-nogroup qboot expect,no-iommu-group $(disk vfio-nogroup) ;;
        # shellcheck disable=SC2046
        vfio-notviable) BIND_NVME=1 IOMEM_BIN=nvme_vfio IOMEM_KARGS="intel_iommu=on iomem_vfio=modules" boot vfio-notviable qboot expect,group-not-viable -device intel-iommu -device pcie-pci-bridge,id=pbr,bus=pcie.0 $(two_disks vfio-notviable pbr pbr) ;;
        *) echo "FAIL $r: unknown run (seabios, qboot, fault, unplug, p2p-root, p2p-switch, vfio, vfio-p2p, vfio-nogroup, vfio-notviable, p2p-unplug, pmr)" >"$WORK/$r.result" ;;
    esac
}

runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(seabios qboot fault unplug p2p-root p2p-switch p2p-unplug vfio vfio-p2p vfio-nogroup vfio-notviable pmr)
# Each guest is one TCG thread: run as many at once as there are CPUs.
jobs_max=${IOMEM_QEMU_JOBS:-$(nproc)}
tg=$(date +%s.%N)
pids=()
for r in "${runs[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
    start_run "$r" &
    pids+=($!)
done
wait "${pids[@]}" || true

failed=0
for r in "${runs[@]}"; do
    echo "---- guest console: $r"
    if [ -f "$WORK/$r.log" ]; then
        sed 's/\r$//' "$WORK/$r.log" | grep -v '^\s*$' | sed "s/^/  [$r] /"
    fi
done
echo "qemu: summary (guest runs $(elapsed "$tg") s with $jobs_max at a time, total $(elapsed "$t0") s)"
for r in "${runs[@]}"; do
    line=$(cat "$WORK/$r.result" 2>/dev/null || echo "FAIL $r: no result")
    echo "  $line"
    case "$line" in pass*) ;; *) failed=1 ;; esac
done
exit $failed
