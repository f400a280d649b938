//! powerpc64 barriers, as Linux emits them.
//!
//! Sources (Linux `torvalds/linux`):
//! - `arch/powerpc/include/asm/barrier.h`: `mb()`, `rmb()`, `wmb()` are all `sync`, "the only
//!   instruction sufficient" to order every kind of access (cacheable and caching-inhibited)
//!   with every other; `dma_rmb()`/`dma_wmb()` are `lwsync` (cacheable memory only).
//! - `arch/powerpc/include/asm/io.h`, `DEF_MMIO_OUT_D`/`DEF_MMIO_IN_D`: `out_le32` (what
//!   `writel` calls) is `sync; stw`, then `mmiowb_set_pending()`; `in_le32` (`readl`) is
//!   `sync; lwz; twi 0,r,0; isync`.
//! - `arch/powerpc/include/asm/mmiowb.h`: `mmiowb()` is `mb()`, i.e. `sync`.
//! - `arch/powerpc/kernel/io.c`: `_memcpy_toio`/`_memset_io` are `sync`, the copy (bytes up to
//!   4-byte alignment, then `u32` stores), `sync`; `_memcpy_fromio` puts `eieio` after every load.
//!
//! Why `lwsync` is not enough for MMIO: `lwsync` orders load→load, load→store and store→store
//! for *cacheable* (memory-coherence-required) storage only. Stores to caching-inhibited storage
//! (MMIO, and write-combining mappings, which are caching-inhibited without the guarded bit) are
//! not ordered by it against anything, so `lwsync` between a command written to RAM and a
//! doorbell written to MMIO lets the device see the doorbell first. `eieio` orders stores to
//! caching-inhibited storage among themselves (and cacheable stores among themselves) but not one
//! class against the other. Only `sync` orders RAM against MMIO.
//!
//! After an MMIO load, `twi 0,r,0` (a trap that never fires) makes the next instruction depend on
//! the loaded value and `isync` keeps later instructions from starting until it has resolved:
//! nothing after it runs before the load has returned. The dependency is real only when `r` is
//! the loaded register, so the crate's read paths call [`execute_after_read`] with the value.

use super::Barrier;
use core::arch::asm;

/// Executes `barrier`. For [`Barrier::IoAfterRead`] prefer [`execute_after_read`]: without the
/// loaded value the `twi` depends on a constant and orders nothing by itself.
#[inline(always)]
pub(super) fn execute(barrier: Barrier) {
    execute_after_read(barrier, 0)
}

/// Executes `barrier` after an MMIO load that returned `loaded` (only [`Barrier::IoAfterRead`]
/// uses the value).
#[inline(always)]
pub(super) fn execute_after_read(barrier: Barrier, loaded: u64) {
    match barrier {
        Barrier::Mb
        | Barrier::Rmb
        | Barrier::Wmb
        | Barrier::IoBeforeWrite
        | Barrier::IoBeforeRead
        | Barrier::WcFlush
        | Barrier::MmioUnlock => sync(),
        Barrier::IoAfterRead => twi_isync(loaded),
        Barrier::IoOrder => eieio(),
        Barrier::DmaRmb | Barrier::DmaWmb => lwsync(),
    }
}

/// `sync` (heavyweight sync): orders every earlier access before every later one.
#[inline(always)]
fn sync() {
    // SAFETY: `sync` only orders memory accesses; it touches no registers or memory.
    unsafe { asm!("sync", options(nostack, preserves_flags)) }
}

/// `lwsync`: orders cacheable accesses only (not MMIO).
#[inline(always)]
fn lwsync() {
    // SAFETY: `lwsync` only orders memory accesses.
    unsafe { asm!("lwsync", options(nostack, preserves_flags)) }
}

/// `eieio`: orders caching-inhibited (MMIO) accesses among themselves.
#[inline(always)]
fn eieio() {
    // SAFETY: `eieio` only orders memory accesses.
    unsafe { asm!("eieio", options(nostack, preserves_flags)) }
}

/// `twi 0,r,0; isync` on a value just loaded from MMIO: completes the load before anything later.
#[inline(always)]
fn twi_isync(loaded: u64) {
    // SAFETY: `twi` with TO=0 never traps; `isync` discards prefetched instructions. Neither
    // touches memory; the register is only read.
    unsafe { asm!("twi 0, {0}, 0", "isync", in(reg) loaded, options(nostack, preserves_flags)) }
}
