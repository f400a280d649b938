//! Probes for the disassembly check (`.ci/disasm.sh`): each exported `disasm_*` function makes
//! exactly one wide device access through the crate's public API, so its machine code shows how
//! that access is compiled. `main` runs every probe once on a RAM buffer wrapped in [`Mmio`] and
//! checks the bytes, so a probe the optimiser dropped or broke is caught at run time too.
//!
//! ```text
//! cargo build --release --example disasm_probe && target/release/examples/disasm_probe
//! ```
//!
//! 16-byte probes on x86_64 and aarch64 ([`W128`]); 32-byte probes on x86_64 ([`W256`], run only
//! where [`has_w256`] is true); 64-byte probes on x86_64 built by rustc 1.89 or newer (`W512`,
//! run only where `has_w512` is true); the 64-byte direct store (`IoMem::write_direct64`:
//! `movdir64b` where the CPU has it); the typed writes of a 16-byte value (the word path) and
//! of 256-byte ones. The 32- and 64-byte bulk and typed probes move 256 bytes: a copy of at
//! most `SHORT_COPY` bytes makes accesses no wider than the build's inline width (16 bytes).
//! `disasm_selftest_split_w128` is the wrong shape on purpose (two 8-byte stores): the check
//! must reject it.

use std::hint::black_box;

#[cfg(target_arch = "x86_64")]
use iomem::backend::{has_w256, W256};
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
use iomem::backend::{has_w512, W512};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use iomem::backend::{Backend, Word, W128};
use iomem::{memcpy_fromio, memcpy_toio, memset_io, Caching, IoMem, Mmio, WidthPolicy};

/// The 16-byte handle at offset 16 of `m`, memory-like, capped at 16 bytes: one access.
#[inline(always)]
fn handle16(m: &Mmio) -> iomem::Result<IoMem<'_, [u8]>> {
    Ok(IoMem::new(m)
        .subslice(16..32)?
        .with_policy(WidthPolicy::MEMORY_LIKE.clamped(16)))
}

/// The 256-byte handle at offset 256 of `m`, memory-like: 32-byte accesses where the CPU has
/// AVX (a copy of at most `SHORT_COPY` bytes would make 16-byte ones).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn handle32(m: &Mmio) -> iomem::Result<IoMem<'_, [u8]>> {
    Ok(IoMem::new(m)
        .subslice(256..512)?
        .with_policy(WidthPolicy::MEMORY_LIKE.clamped(32)))
}

/// One 16-byte store of `v` at `off` through [`Backend::write`].
///
/// # Safety
/// `off` is 16-aligned and `off + 16 <= m.size()`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[no_mangle]
#[inline(never)]
pub unsafe fn disasm_mmio_write_w128(m: &Mmio, off: usize, v: &W128) {
    // SAFETY: the caller guarantees the access is aligned and in bounds; `Mmio::BASE_ALIGN` is 16.
    unsafe { m.write::<W128>(off, *v) }
}

/// One 16-byte load at `off` through [`Backend::read`], stored to `out` (RAM).
///
/// # Safety
/// As for [`disasm_mmio_write_w128`].
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[no_mangle]
#[inline(never)]
pub unsafe fn disasm_mmio_read_w128(m: &Mmio, off: usize, out: &mut W128) {
    // SAFETY: as for `disasm_mmio_write_w128`.
    *out = unsafe { m.read::<W128>(off) };
}

/// One 32-byte store of `*v` at `off` through [`Backend::write`].
///
/// # Safety
/// As for [`disasm_mmio_write_w128`] with 32 for 16, `m.base_align() >= 32`, and
/// [`has_w256`] is true.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
#[inline(never)]
pub unsafe fn disasm_mmio_write_w256(m: &Mmio, off: usize, v: &W256) {
    // SAFETY: forwarded contract (aligned, in bounds, AVX present).
    unsafe { m.write::<W256>(off, *v) }
}

/// One 32-byte load at `off` through [`Backend::read`], stored to `out` (RAM).
///
/// # Safety
/// As for [`disasm_mmio_write_w256`].
#[cfg(target_arch = "x86_64")]
#[no_mangle]
#[inline(never)]
pub unsafe fn disasm_mmio_read_w256(m: &Mmio, off: usize, out: &mut W256) {
    // SAFETY: forwarded contract.
    *out = unsafe { m.read::<W256>(off) };
}

/// `memset_io` of bytes 16..32 of `m` (at least 32 bytes long).
#[no_mangle]
#[inline(never)]
pub fn disasm_memset_io_16(m: &Mmio, byte: u8) -> bool {
    handle16(m).and_then(|io| memset_io(&io, byte)).is_ok()
}

/// `memcpy_toio` of `src` into bytes 16..32 of `m`.
#[no_mangle]
#[inline(never)]
pub fn disasm_memcpy_toio_16(m: &Mmio, src: &[u8; 16]) -> bool {
    handle16(m).and_then(|io| memcpy_toio(&io, src)).is_ok()
}

/// `memcpy_fromio` of bytes 16..32 of `m` into `dst`.
#[no_mangle]
#[inline(never)]
pub fn disasm_memcpy_fromio_16(m: &Mmio, dst: &mut [u8; 16]) -> bool {
    handle16(m).and_then(|io| memcpy_fromio(dst, &io)).is_ok()
}

/// `memset_io` of bytes 256..512 of `m` (at least 512 bytes long, 64-aligned).
#[cfg(target_arch = "x86_64")]
#[no_mangle]
#[inline(never)]
pub fn disasm_memset_io_32(m: &Mmio, byte: u8) -> bool {
    handle32(m).and_then(|io| memset_io(&io, byte)).is_ok()
}

/// `memcpy_toio` of `src` into bytes 256..512 of `m`.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
#[inline(never)]
pub fn disasm_memcpy_toio_32(m: &Mmio, src: &[u8; 256]) -> bool {
    handle32(m).and_then(|io| memcpy_toio(&io, src)).is_ok()
}

/// `memcpy_fromio` of bytes 256..512 of `m` into `dst`.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
#[inline(never)]
pub fn disasm_memcpy_fromio_32(m: &Mmio, dst: &mut [u8; 256]) -> bool {
    handle32(m).and_then(|io| memcpy_fromio(dst, &io)).is_ok()
}

/// The typed write of a 16-byte value into bytes 16..32 of `m` (one access: the word path).
#[no_mangle]
#[inline(never)]
pub fn disasm_typed_write_16(m: &Mmio, v: &[u8; 16]) -> bool {
    handle16(m)
        .and_then(|io| io.cast::<[u8; 16]>(0))
        .map(|c| c.write(v))
        .is_ok()
}

/// The typed write of a 256-byte value into bytes 256..512 of `m` (32-byte accesses).
#[cfg(target_arch = "x86_64")]
#[no_mangle]
#[inline(never)]
pub fn disasm_typed_write_32(m: &Mmio, v: &[u8; 256]) -> bool {
    handle32(m)
        .and_then(|io| io.cast::<[u8; 256]>(0))
        .map(|c| c.write(v))
        .is_ok()
}

/// The wrong shape on purpose, for the check's self-test: a 16-byte store at `m + off` made as
/// two 8-byte volatile stores. `.ci/disasm.sh` must reject it.
///
/// # Safety
/// As for [`disasm_mmio_write_w128`].
#[no_mangle]
#[inline(never)]
pub unsafe fn disasm_selftest_split_w128(m: &Mmio, off: usize, lo: u64, hi: u64) {
    let p = m.as_ptr().wrapping_add(off).cast::<u64>();
    // SAFETY: the caller guarantees `off..off + 16` is inside the mapping and 16-aligned, so
    // both 8-byte halves are aligned and valid for volatile writes.
    unsafe {
        p.write_volatile(lo);
        p.add(1).write_volatile(hi);
    }
}

/// A 64-byte-aligned RAM buffer standing in for device memory.
#[repr(C, align(64))]
struct Ram([u8; 512]);

/// `write_direct64` of `line` at bytes 64..128 of `m`: one `movdir64b` where the CPU has it.
#[no_mangle]
#[inline(never)]
pub fn disasm_write_direct64(m: &Mmio, line: &[u8; 64]) -> bool {
    IoMem::new(m)
        .with_policy(WidthPolicy::MEMORY_LIKE)
        .write_direct64(64, line)
        .is_ok()
}

/// The 256-byte handle at offset 256 of `m`, memory-like: 64-byte accesses where the CPU has
/// AVX-512F (a copy of at most `SHORT_COPY` bytes would make 16-byte ones).
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[inline(always)]
fn handle64(m: &Mmio) -> iomem::Result<IoMem<'_, [u8]>> {
    Ok(IoMem::new(m)
        .subslice(256..512)?
        .with_policy(WidthPolicy::MEMORY_LIKE))
}

/// One 64-byte store of `*v` at `off` through [`Backend::write`].
///
/// # Safety
/// `off` is 64-aligned, `off + 64 <= m.size()`, `m.base_align() >= 64`, and [`has_w512`] is
/// true.
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[no_mangle]
#[inline(never)]
pub unsafe fn disasm_mmio_write_w512(m: &Mmio, off: usize, v: &W512) {
    // SAFETY: forwarded contract (aligned, in bounds, AVX-512F present).
    unsafe { m.write::<W512>(off, *v) }
}

/// One 64-byte load at `off` through [`Backend::read`], stored to `out` (RAM).
///
/// # Safety
/// As for [`disasm_mmio_write_w512`].
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[no_mangle]
#[inline(never)]
pub unsafe fn disasm_mmio_read_w512(m: &Mmio, off: usize, out: &mut W512) {
    // SAFETY: forwarded contract.
    *out = unsafe { m.read::<W512>(off) };
}

/// `memset_io` of bytes 256..512 of `m`.
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[no_mangle]
#[inline(never)]
pub fn disasm_memset_io_64(m: &Mmio, byte: u8) -> bool {
    handle64(m).and_then(|io| memset_io(&io, byte)).is_ok()
}

/// `memcpy_toio` of `src` into bytes 256..512 of `m`.
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[no_mangle]
#[inline(never)]
pub fn disasm_memcpy_toio_64(m: &Mmio, src: &[u8; 256]) -> bool {
    handle64(m).and_then(|io| memcpy_toio(&io, src)).is_ok()
}

/// The typed write of a 256-byte value into bytes 256..512 of `m` (64-byte accesses).
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[no_mangle]
#[inline(never)]
pub fn disasm_typed_write_64(m: &Mmio, v: &[u8; 256]) -> bool {
    handle64(m)
        .and_then(|io| io.cast::<[u8; 256]>(0))
        .map(|c| c.write(v))
        .is_ok()
}

/// `memcpy_fromio` of bytes 256..512 of `m` into `dst`.
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[no_mangle]
#[inline(never)]
pub fn disasm_memcpy_fromio_64(m: &Mmio, dst: &mut [u8; 256]) -> bool {
    handle64(m).and_then(|io| memcpy_fromio(dst, &io)).is_ok()
}

fn main() {
    let mut ram = Box::new(Ram([0; 512]));
    let base = ram.0.as_mut_ptr();
    // SAFETY: `ram` is 512 bytes of RAM, 64-aligned, outlives `m` (dropped at the end of
    // `main`), and is reached only through `m` while `m` lives (`base` is not used otherwise).
    let m = unsafe { Mmio::new(base, 512, Caching::Cacheable) }.expect("aligned RAM");
    let m = black_box(&m);
    let mut checks = 0;
    let read = |off: usize, len: usize| {
        let mut b = vec![0u8; len];
        let io = IoMem::new(m).subslice(off..off + len).expect("in range");
        memcpy_fromio(&mut b, &io).expect("lengths match");
        b
    };

    assert!(disasm_memset_io_16(m, black_box(0xa5)));
    assert_eq!(read(16, 16), [0xa5; 16], "memset_io 16");
    let src: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
    assert!(disasm_memcpy_toio_16(m, black_box(&src)));
    assert_eq!(read(16, 16), src, "memcpy_toio 16");
    let mut dst = [0u8; 16];
    assert!(disasm_memcpy_fromio_16(m, black_box(&mut dst)));
    assert_eq!(dst, src, "memcpy_fromio 16");
    let v: [u8; 16] = core::array::from_fn(|i| 0x20 ^ i as u8);
    assert!(disasm_typed_write_16(m, black_box(&v)));
    assert_eq!(read(16, 16), v, "typed write 16");
    checks += 4;

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let v = W128::from_u128(0x0f0e0d0c_0b0a0908_07060504_03020100);
        // SAFETY: offset 48 is 16-aligned and 48 + 16 <= 512.
        unsafe { disasm_mmio_write_w128(m, black_box(48), black_box(&v)) };
        let mut back = W128::from_u128(0);
        // SAFETY: as above.
        unsafe { disasm_mmio_read_w128(m, black_box(48), black_box(&mut back)) };
        assert_eq!(back.to_u128(), v.to_u128(), "Backend W128");
        assert_eq!(
            read(48, 16),
            v.to_u128().to_le_bytes(),
            "Backend W128 bytes"
        );
        checks += 2;
    }

    #[cfg(target_arch = "x86_64")]
    if has_w256() {
        let v = W256::from_lanes([u128::MAX / 3, u128::MAX / 5, 0, 0]);
        // SAFETY: offset 64 is 32-aligned, 64 + 32 <= 512, the base is 64-aligned (base_align
        // ≥ 32) and the CPU has AVX.
        unsafe { disasm_mmio_write_w256(m, black_box(64), black_box(&v)) };
        let mut back = W256::from_u128(0);
        // SAFETY: as above.
        unsafe { disasm_mmio_read_w256(m, black_box(64), black_box(&mut back)) };
        assert_eq!(back.to_lanes(), v.to_lanes());
        assert!(disasm_memset_io_32(m, black_box(0x5a)));
        assert_eq!(read(256, 256), [0x5a; 256], "memset_io 32");
        let src: [u8; 256] = core::array::from_fn(|i| 0x80 ^ i as u8);
        assert!(disasm_memcpy_toio_32(m, black_box(&src)));
        assert_eq!(read(256, 256), src, "memcpy_toio 32");
        let mut dst = [0u8; 256];
        assert!(disasm_memcpy_fromio_32(m, black_box(&mut dst)));
        assert_eq!(dst, src, "memcpy_fromio 32");
        let v: [u8; 256] = core::array::from_fn(|i| 0x60 ^ i as u8);
        assert!(disasm_typed_write_32(m, black_box(&v)));
        assert_eq!(read(256, 256), v, "typed write 32");
        checks += 6;
    } else {
        println!("disasm_probe: no AVX: the 32-byte probes are not run");
    }

    // The direct store: MOVDIR64B where the CPU has it, else the handle's plan.
    let line: [u8; 64] = core::array::from_fn(|i| 0x40 ^ i as u8);
    assert!(disasm_write_direct64(m, black_box(&line)));
    assert_eq!(read(64, 64), line, "write_direct64");
    checks += 1;

    #[cfg(all(target_arch = "x86_64", iomem_avx512))]
    if has_w512() {
        let v = W512::from_lanes([u128::MAX / 3, u128::MAX / 5, u128::MAX / 7, 9]);
        // SAFETY: offset 64 is 64-aligned, 64 + 64 <= 512, the base is 64-aligned and the CPU
        // has AVX-512F.
        unsafe { disasm_mmio_write_w512(m, black_box(64), black_box(&v)) };
        let mut back = W512::from_u128(0);
        // SAFETY: as above.
        unsafe { disasm_mmio_read_w512(m, black_box(64), black_box(&mut back)) };
        assert_eq!(back.to_lanes(), v.to_lanes(), "Backend W512");
        assert!(disasm_memset_io_64(m, black_box(0x3c)));
        assert_eq!(read(256, 256), [0x3c; 256], "memset_io 64");
        let src: [u8; 256] = core::array::from_fn(|i| 0xc0 ^ i as u8);
        assert!(disasm_memcpy_toio_64(m, black_box(&src)));
        assert_eq!(read(256, 256), src, "memcpy_toio 64");
        let mut dst = [0u8; 256];
        assert!(disasm_memcpy_fromio_64(m, black_box(&mut dst)));
        assert_eq!(dst, src, "memcpy_fromio 64");
        let v: [u8; 256] = core::array::from_fn(|i| 0xa0 ^ i as u8);
        assert!(disasm_typed_write_64(m, black_box(&v)));
        assert_eq!(read(256, 256), v, "typed write 64");
        checks += 6;
    } else {
        println!("disasm_probe: no AVX-512F: the 64-byte probes are not run");
    }

    // SAFETY: offset 96 is 16-aligned and 96 + 16 <= 512.
    unsafe { disasm_selftest_split_w128(m, black_box(96), black_box(1), black_box(2)) };
    let mut want = [0u8; 16];
    want[..8].copy_from_slice(&1u64.to_ne_bytes());
    want[8..].copy_from_slice(&2u64.to_ne_bytes());
    assert_eq!(read(96, 16), want, "self-test probe");
    checks += 1;

    println!("disasm_probe: {checks} probes ran and wrote what they should");
}
