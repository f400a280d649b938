//! powerpc64 barriers (`arch/powerpc/include/asm/barrier.h`, `asm/io.h`).
//!
//! `sync` is the only barrier that orders caching-inhibited (MMIO) accesses against cacheable
//! ones, so every MMIO barrier is `sync`. `lwsync` orders cacheable memory only — never use it to
//! order a doorbell. `eieio` orders caching-inhibited accesses among themselves. After an MMIO
//! load the kernel's `readX` uses `twi 0,r,0; isync`: a trap that never fires but depends on the
//! loaded value, then `isync`, so nothing after it executes before the load has returned.

use super::Barrier;
use core::arch::asm;

#[inline(always)]
pub(super) fn execute(barrier: Barrier) {
    match barrier {
        Barrier::Mb
        | Barrier::Rmb
        | Barrier::Wmb
        | Barrier::IoBeforeWrite
        | Barrier::IoBeforeRead
        | Barrier::WcFlush
        | Barrier::MmioUnlock => sync(),
        Barrier::IoAfterRead => twi_isync(0),
        Barrier::IoOrder => eieio(),
        Barrier::DmaOrder => lwsync(),
    }
}

/// `sync` (heavyweight sync): orders every earlier access before every later one.
#[inline(always)]
pub(crate) fn sync() {
    // SAFETY: `sync` only orders memory accesses; it touches no registers or memory.
    unsafe { asm!("sync", options(nostack, preserves_flags)) }
}

/// `lwsync`: orders cacheable accesses only (not MMIO).
#[inline(always)]
pub(crate) fn lwsync() {
    // SAFETY: `lwsync` only orders memory accesses.
    unsafe { asm!("lwsync", options(nostack, preserves_flags)) }
}

/// `eieio`: orders caching-inhibited (MMIO) accesses among themselves.
#[inline(always)]
pub(crate) fn eieio() {
    // SAFETY: `eieio` only orders memory accesses.
    unsafe { asm!("eieio", options(nostack, preserves_flags)) }
}

/// `twi 0,r,0; isync` on a value just loaded from MMIO: completes the load before anything later.
#[inline(always)]
pub(crate) fn twi_isync(loaded: u64) {
    // SAFETY: `twi` with TO=0 never traps; `isync` discards prefetched instructions. Neither
    // touches memory; the register is only read.
    unsafe { asm!("twi 0, {0}, 0", "isync", in(reg) loaded, options(nostack, preserves_flags)) }
}
