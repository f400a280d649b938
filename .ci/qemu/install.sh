#!/usr/bin/env bash
# Installs what the guest test needs, only if it is missing:
#   qemu-system-x86 (qemu-system-x86_64, qboot.rom), busybox-static, cpio,
#   and a kernel with the NVMe driver built in (vmlinuz only, from linux-image-*-cloud-amd64),
#   with the VFIO modules of the same package (<work-dir>/vfio/*.ko, for the vfio run).
# Usage: install.sh <work-dir>     (the kernel lands in <work-dir>/vmlinuz)
set -euo pipefail

WORK=${1:?usage: install.sh <work-dir>}
mkdir -p "$WORK"

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

retry() { # retry <tries> <cmd...>
    local n=$1 i; shift
    for ((i = 1; i <= n; i++)); do
        if "$@"; then return 0; fi
        echo "install: attempt $i/$n failed: $*" >&2
        sleep $((i * 2))
    done
    return 1
}

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -e /usr/share/qemu/qboot.rom ] || [[ " ${need[*]-} " == *" qemu-system-x86 "* ]] || need+=(qemu-system-x86)
[ -x /bin/busybox ] && file_static=$(LC_ALL=C ldd /bin/busybox 2>&1 || true) || file_static=""
if [ ! -x /bin/busybox ] || [[ "$file_static" != *"not a dynamic executable"* ]]; then
    need+=(busybox-static)
fi
command -v cpio >/dev/null || need+=(cpio)

if [ ${#need[@]} -gt 0 ]; then
    echo "install: installing ${need[*]}"
    retry 3 $SUDO apt-get update -qq || { echo "install: apt-get update failed" >&2; exit 1; }
    if ! retry 3 $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
        echo "install: FAILED to install: ${need[*]} (need root and a reachable Debian mirror)" >&2
        exit 1
    fi
fi

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86_64)
[ -e /usr/share/qemu/qboot.rom ] || missing+=(/usr/share/qemu/qboot.rom)
[ -x /bin/busybox ] || missing+=(/bin/busybox)
command -v cpio >/dev/null || missing+=(cpio)
if [ ${#missing[@]} -gt 0 ]; then
    echo "install: still missing after install: ${missing[*]}" >&2
    exit 1
fi

# The VFIO modules must come from the kernel package vmlinuz came from: without them (or
# without the record of that package, $WORK/vmlinuz.pkg) fetch both again, from one package.
VFIO_KOS="irqbypass vfio vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci"
for ko in $VFIO_KOS; do
    [ -s "$WORK/vfio/$ko.ko" ] && [ -s "$WORK/vmlinuz.pkg" ] || rm -f "$WORK/vmlinuz"
done

# Kernel: download the cloud kernel package and extract only vmlinuz (installing it would
# regenerate the host's initrd, which takes most of the install time).
if [ ! -s "$WORK/vmlinuz" ]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        retry 3 $SUDO apt-get update -qq || true
        pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || { echo "install: cannot resolve linux-image-cloud-amd64 to a kernel package" >&2; exit 1; }
    dl="$WORK/kpkg"
    rm -rf "$dl"; mkdir -p "$dl"
    # A stale package index names a version the mirror no longer has: refresh it between tries.
    fetch_kernel() {
        (cd "$dl" && apt-get download -qq -o APT::Sandbox::User=root "$pkg") && return 0
        $SUDO apt-get update -qq || true
        return 1
    }
    if ! retry 3 fetch_kernel; then
        echo "install: FAILED to download kernel package $pkg (apt-get download; check the mirror)" >&2
        exit 1
    fi
    deb=$(ls "$dl"/*.deb)
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dl" --wildcards './boot/vmlinuz-*' \
        './lib/modules/*/kernel/drivers/vfio/*' './lib/modules/*/kernel/virt/lib/irqbypass.ko'
    rm -rf "$WORK/vfio"; mkdir -p "$WORK/vfio"
    for ko in $VFIO_KOS; do
        f=$(find "$dl/lib/modules" -name "$ko.ko" | head -n 1)
        [ -n "$f" ] || { echo "install: $pkg has no $ko.ko (uncompressed)" >&2; exit 1; }
        cp "$f" "$WORK/vfio/$ko.ko"
    done
    mv "$dl"/boot/vmlinuz-* "$WORK/vmlinuz.tmp" && mv "$WORK/vmlinuz.tmp" "$WORK/vmlinuz"
    echo "$pkg" >"$WORK/vmlinuz.pkg"
    rm -rf "$dl"
    echo "install: kernel $pkg -> $WORK/vmlinuz, VFIO modules -> $WORK/vfio"
fi
