#!/usr/bin/env bash
# Runs the crate's test suite on powerpc64le, aarch64 and riscv64 under qemu-user, so the real
# per-architecture barrier code executes there.
#
#   .ci/xarch/cross-test.sh [TRIPLE...]                default: all three targets
#   .ci/xarch/cross-test.sh --fetch-only [TRIPLE...]   install and fetch the tools, build nothing
#
# The host has only the x86_64 standard library, so the compiler is Debian trixie's rustc 1.85
# with its libstd-rust-dev for each architecture, fetched with `apt-get download` into a private
# apt state (dpkg is not touched) and run through trixie's own loader (it needs glibc 2.39).
# Linkers, target C libraries and qemu-user come from the host's Debian (installed if missing).
#
# Environment: XARCH_CACHE (downloads and the unpacked toolchain; default /var/cache/iomem-xarch,
# or target/xarch-toolchain when that is not writable), XARCH_TEST_ARGS (feature arguments for
# `cargo test`; default `--all-features` as on the host, empty for the default features),
# XARCH_TARGET_DIR (cargo's target dir, default target/xarch), XARCH_SUMMARY (a file to append `triple passed failed
# ignored status` lines to).
#
# Exit status: 0 every target passed, 1 a target's build or tests failed, 2 setup failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib.sh
. "$ROOT/.ci/lib.sh"

die() {
    echo "cross-test: error: $*" >&2
    exit 2
}

ALL_TARGETS=(powerpc64le-unknown-linux-gnu aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu)
fetch_only=""
if [ "${1:-}" = --fetch-only ]; then
    fetch_only=1
    shift
fi
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

# Per target: Debian architecture, GNU triple (linker prefix and /usr/<triple> sysroot), qemu.
target_info() {
    case "$1" in
    powerpc64le-unknown-linux-gnu) echo "ppc64el powerpc64le-linux-gnu qemu-ppc64le-static" ;;
    aarch64-unknown-linux-gnu) echo "arm64 aarch64-linux-gnu qemu-aarch64-static" ;;
    riscv64gc-unknown-linux-gnu) echo "riscv64 riscv64-linux-gnu qemu-riscv64-static" ;;
    *) return 1 ;;
    esac
}

# Debian release and rustc version the toolchain comes from (the crate's MSRV).
SUITE=trixie
RUST_VERSION=1.85
MIRROR=${XARCH_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ -n "${XARCH_CACHE:-}" ]; then
    CACHE=$XARCH_CACHE
elif mkdir -p /var/cache/iomem-xarch 2>/dev/null && [ -w /var/cache/iomem-xarch ]; then
    CACHE=/var/cache/iomem-xarch
else
    CACHE=$ROOT/target/xarch-toolchain
fi
mkdir -p "$CACHE"

# ---- host packages: cross linkers, target C libraries, qemu-user ----------------------------
host_pkgs=(qemu-user-static)
for t in "${TARGETS[@]}"; do
    info=$(target_info "$t") || die "unsupported target $t (supported: ${ALL_TARGETS[*]})"
    read -r debarch gnu _qemu <<<"$info"
    host_pkgs+=("gcc-$gnu" "libc6-dev-$debarch-cross")
done
need_pkgs "${host_pkgs[@]}" || die "missing host packages (see above): ${host_pkgs[*]}"

# ---- trixie's rustc and the standard libraries, unpacked without dpkg ------------------------
# Always the standard library for every supported target, so one cached toolchain serves any
# subset of targets.
deb_arches=()
for t in "${ALL_TARGETS[@]}"; do
    read -r debarch _ <<<"$(target_info "$t")"
    deb_arches+=("$debarch")
done
arch_list=$(printf '%s\n' amd64 "${deb_arches[@]}" | sort -u | paste -sd, -)
pkgs=(rustc:amd64 "libstd-rust-$RUST_VERSION:amd64" libllvm19:amd64 libc6:amd64 libstdc++6:amd64
    libgcc-s1:amd64 libstd-rust-dev:amd64)
for a in "${deb_arches[@]}"; do pkgs+=("libstd-rust-dev:$a"); done
# A stamp per package set: a rerun with the same set skips apt entirely.
key=$(printf '%s\n' "$SUITE" "$MIRROR" "${pkgs[@]}" | sort | sha256sum | cut -c1-16)
TC=$CACHE/toolchain-$key
if [ ! -f "$TC/.complete" ]; then
    fetch_start=$SECONDS
    echo "cross-test: fetching $SUITE rustc $RUST_VERSION and std for ${arch_list} into $TC"
    apt_dir=$CACHE/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/etc" "$CACHE/debs"
    echo "deb [arch=$arch_list signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" \
        >"$apt_dir/etc/sources.list"
    : >"$apt_dir/status"
    apt_opts=(
        -o "Dir::Etc::SourceList=$apt_dir/etc/sources.list"
        -o Dir::Etc::SourceParts=/dev/null
        -o Dir::Etc::Preferences=/dev/null
        -o Dir::Etc::PreferencesParts=/dev/null
        -o "Dir::State::Lists=$apt_dir/lists"
        -o "Dir::State::Status=$apt_dir/status"
        -o "Dir::Cache=$apt_dir/cache"
        -o APT::Architecture=amd64
        -o "APT::Architectures=$arch_list"
        -o Acquire::Languages=none
        -o Acquire::Retries=3
        -o APT::Sandbox::User=root
    )
    retry apt-get "${apt_opts[@]}" -qq update || die "apt-get update for $SUITE failed (network to $MIRROR?)"
    # Download only what is not in the cache already (file names carry the version).
    (
        cd "$CACHE/debs"
        retry apt-get "${apt_opts[@]}" -qq download "${pkgs[@]}"
    ) || die "could not download from $SUITE: ${pkgs[*]}"
    tmp=$TC.tmp
    rm -rf "$tmp"
    mkdir -p "$tmp"
    for p in "${pkgs[@]}"; do
        name=${p%%:*}
        arch=${p##*:}
        # The newest downloaded version of that package and architecture.
        deb=$(ls -1 "$CACHE/debs/${name}_"*"_$arch.deb" 2>/dev/null | sort -V | tail -1)
        [ -n "$deb" ] || die "downloaded no .deb for $p"
        dpkg-deb -x "$deb" "$tmp"
    done
    rm -rf "$TC"
    mv "$tmp" "$TC"
    touch "$TC/.complete"
    # Toolchains unpacked for an older package set are not used any more.
    for old in "$CACHE"/toolchain-*; do
        [ "$old" = "$TC" ] || rm -rf "$old"
    done
    echo "cross-test: toolchain ready in $((SECONDS - fetch_start)) s"
fi

# The wrapper host cargo uses as RUSTC: trixie's rustc under trixie's loader and libraries.
WRAP=$TC/bin-wrap/rustc
if [ ! -x "$WRAP" ]; then
    mkdir -p "$TC/bin-wrap"
    cat >"$WRAP.tmp" <<EOF
#!/bin/sh
# rustc $RUST_VERSION from Debian $SUITE, run with its own glibc (the host's is older).
exec "$TC/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \\
    --library-path "$TC/usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu" \\
    "$TC/usr/bin/rustc" --sysroot "$TC/usr" "\$@"
EOF
    chmod +x "$WRAP.tmp"
    mv "$WRAP.tmp" "$WRAP"
fi
rv=$("$WRAP" --version) || die "$SUITE rustc does not run through $WRAP"
echo "cross-test: compiler: $rv"
[ -z "$fetch_only" ] || exit 0

# ---- build and test each target --------------------------------------------------------------
status=0
for t in "${TARGETS[@]}"; do
    read -r debarch gnu qemu <<<"$(target_info "$t")"
    command -v "$qemu" >/dev/null || die "$qemu missing after installing qemu-user-static"
    command -v "$gnu-gcc" >/dev/null || die "$gnu-gcc missing after installing gcc-$gnu"
    [ -d "$TC/usr/lib/rustlib/$t/lib" ] || die "no standard library for $t in $TC"
    T=$(echo "$t" | tr 'a-z-' 'A-Z_')
    env_vars=(
        RUSTC="$WRAP"
        "CARGO_TARGET_${T}_LINKER=$gnu-gcc"
        "CARGO_TARGET_${T}_RUNNER=$qemu -L /usr/$gnu"
        CARGO_TARGET_DIR="${XARCH_TARGET_DIR:-$ROOT/target/xarch}"
        IOMEM_SKIP_UI=1
        # Tests that read the kernel's own view of this process (smaps VmFlags) skip that
        # check: qemu-user drops most madvise advice and synthesizes /proc/self/smaps.
        IOMEM_UNDER_QEMU_USER=1
        CARGO_TERM_COLOR=never
        # Faster cold builds; panics still name file and line.
        CARGO_PROFILE_DEV_DEBUG=0
        CARGO_PROFILE_TEST_DEBUG=0
        CARGO_INCREMENTAL=0
    )
    # A warning that only another architecture's build shows (an import used by x86_64 and
    # aarch64 code alone) fails here, as the host's clippy run fails on the host's.
    rustflags="-D warnings"
    case "$t" in
    powerpc64*)
        # PowerPC `asm!` is stable from Rust 1.95 only; enable the feature for this crate alone.
        env_vars+=(RUSTC_BOOTSTRAP=iomem)
        rustflags+=" --cfg iomem_ppc_asm_gate"
        ;;
    esac
    env_vars+=("CARGO_TARGET_${T}_RUSTFLAGS=$rustflags")
    log=$ROOT/target/xarch/$t.log
    mkdir -p "$ROOT/target/xarch"
    echo "cross-test: $t: cargo test --locked --target $t --tests ${XARCH_TEST_ARGS---all-features} (runner $qemu)"
    start=$SECONDS
    rc=0
    # shellcheck disable=SC2086 # XARCH_TEST_ARGS is a word list on purpose
    (cd "$ROOT" && env "${env_vars[@]}" cargo test --locked --target "$t" --tests --no-fail-fast ${XARCH_TEST_ARGS---all-features}) \
        >"$log" 2>&1 || rc=$?
    # Totals over every test binary's "test result:" line.
    read -r passed failed ignored binaries <<<"$(awk '
        /^test result:/ {
            for (i = 1; i <= NF; i++) {
                if ($(i+1) ~ /^passed;?$/) p += $i
                if ($(i+1) ~ /^failed;?$/) f += $i
                if ($(i+1) ~ /^ignored;?$/) g += $i
            }
            n++
        }
        END { printf "%d %d %d %d\n", p, f, g, n }' "$log")"
    if [ "$rc" -eq 0 ] && [ "$passed" -eq 0 ]; then
        result=FAILED
        status=1
        echo "cross-test: $t ran no test (see $log)"
    elif [ "$rc" -eq 0 ]; then
        result=ok
    else
        result=FAILED
        status=1
        echo "cross-test: $t FAILED (exit $rc); last lines of $log:"
        grep -E '^(error|test .* FAILED|failures:|---- )|panicked' "$log" | head -40 | sed 's/^/  | /' || true
        tail -n 25 "$log" | sed 's/^/  | /'
    fi
    build=$(sed -n 's/^ *Finished .* in \(.*\)$/\1/p' "$log" | tail -1)
    echo "cross-test: $t: $result: $passed passed, $failed failed, $ignored ignored in $binaries test binaries ($((SECONDS - start)) s, build ${build:-n/a})"
    if [ -n "${XARCH_SUMMARY:-}" ]; then
        echo "$t $passed $failed $ignored $result $((SECONDS - start))" >>"$XARCH_SUMMARY"
    fi
done
exit "$status"
