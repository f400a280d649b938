//! 64-byte direct stores: x86 `MOVDIR64B`, the instruction Linux's `movdir64b()` and
//! `iosubmit_cmds512()` (`arch/x86/include/asm/io.h`) use to hand a device a 64-byte descriptor
//! as one non-torn write.
//!
//! A direct store writes a whole, 64-aligned cache line of the destination with one write the
//! device receives at once, whatever the mapping's memory type; the CPU orders it weakly, like a
//! write-combining store, so a doorbell after it needs an `sfence`
//! ([`Barrier::WcFlush`](crate::Barrier::WcFlush)). [`Mmio`](super::Mmio) makes its
//! [`write_direct64`](super::Backend::write_direct64) one `MOVDIR64B` where
//! [`has_movdir64b`] is true; [`MockIo`](super::MockIo) records one 64-byte write when built
//! `with_direct64(true)`.

/// Whether this CPU has `MOVDIR64B` (CPUID leaf 7, sub-leaf 0, ECX bit 28). Detected once and
/// cached; always false off x86_64.
#[inline]
pub fn has_movdir64b() -> bool {
    cfg_if::cfg_if! {
        if #[cfg(target_arch = "x86_64")] {
            static MOVDIR64B: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
            super::detected_once(&MOVDIR64B, detect)
        } else {
            false
        }
    }
}

/// CPUID: leaf 0's highest leaf, then leaf 7 sub-leaf 0's ECX bit 28.
#[cfg(target_arch = "x86_64")]
#[cold]
fn detect() -> bool {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: CPUID exists on every x86_64 CPU and only reads identification registers (the
    // intrinsics are `unsafe fn` on older compilers, safe on newer ones).
    #[allow(unused_unsafe)]
    let max_leaf = unsafe { __cpuid(0) }.eax;
    if max_leaf < 7 {
        return false;
    }
    // SAFETY: as above; leaf 7 exists (checked against the highest leaf).
    #[allow(unused_unsafe)]
    let ecx = unsafe { __cpuid_count(7, 0) }.ecx;
    ecx & (1 << 28) != 0
}

/// The 64 bytes of `src` at `off` of `b` as eight naturally aligned `u64` writes, in order:
/// what a backend without direct stores makes of [`write_direct64`](super::Backend::write_direct64)
/// (never anything wider).
///
/// # Safety
/// `off % 64 == 0`, `off + 64 <= b.size()` and `b.base_align() >= 64`.
#[inline(always)]
pub(super) unsafe fn as_u64s<B: super::Backend + ?Sized>(b: &B, off: usize, src: &[u8; 64]) {
    for (k, q) in src.chunks_exact(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(q);
        // SAFETY: the caller puts all 64 bytes in bounds at a 64-aligned offset of a base aligned
        // to ≥ 64, so each 8-byte piece is aligned and in bounds.
        unsafe { b.write::<u64>(off + 8 * k, u64::from_le_bytes(w)) };
    }
}

/// One `MOVDIR64B` of the 64 bytes at `src` to `dst`.
///
/// # Safety
/// The CPU has `MOVDIR64B` ([`has_movdir64b`]); `dst` is 64-aligned and valid for a 64-byte
/// write the caller is entitled to make (device memory or RAM, no Rust reference to it);
/// `src` is valid for a 64-byte read.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn movdir64b(dst: *mut u8, src: *const [u8; 64]) {
    // SAFETY: the caller's contract. The instruction reads 64 bytes at `src` (any alignment)
    // and writes 64 bytes at `dst` (64-aligned), nothing else; it changes no flags or registers
    // other than its operands, and needs no stack.
    unsafe {
        core::arch::asm!(
            "movdir64b {dst}, zmmword ptr [{src}]",
            dst = in(reg) dst,
            src = in(reg) src,
            options(nostack, preserves_flags),
        )
    }
}
