//! aarch64 barriers, as Linux emits them.
//!
//! Sources (Linux `torvalds/linux`):
//! - `arch/arm64/include/asm/barrier.h`: `mb()` `dsb sy`, `rmb()` `dsb ld`, `wmb()` `dsb st`
//!   (full system, and wait for completion); `dma_rmb()` `dmb oshld`, `dma_wmb()` `dmb oshst`,
//!   `dma_mb()` `dmb osh` (outer shareable: the domain devices are in; order, no completion).
//! - `arch/arm64/include/asm/io.h`: `__io_bw()`/`__iowmb()` is `dma_wmb()`, so `writel` is
//!   `dmb oshst; str`; `__io_ar()`/`__iormb()` is `dma_rmb()` plus a dummy control dependency
//!   (`eor; cbnz`) on the loaded value, so `readl` is `ldr; dmb oshld; eor; cbnz`; `__io_br()`
//!   and `__io_aw()` are empty. arm64 has no `mmiowb()`: `writel`'s `dmb oshst` and the
//!   release semantics of `spin_unlock` (`stlr`) already order MMIO writes before the unlock.
//! - `arch/arm64/kernel/io.c` / `lib/iomem_copy.c`: `memcpy_toio`/`memcpy_fromio`/`memset_io`
//!   use `__raw_write*`/`__raw_read*`: no barriers.
//!
//! Deliberate difference: the `eor; cbnz` after `dmb oshld` in `readl` only exists so that a later
//! `udelay()` (whose timer read follows an `isb`) cannot start before the MMIO read returned. The
//! crate has no delay loop of its own; [`Barrier::IoAfterRead`] is `dmb oshld` only, which is what
//! orders the read before later loads of DMA'd data. Time device delays after [`Barrier::Rmb`].
//!
//! Ordinary MMIO (`ioremap`, Device-nGnRE) is non-reordering: accesses to one peripheral reach it
//! in program order without a barrier (that is why `writel_relaxed` needs none). A
//! write-combining mapping (`ioremap_wc`, Normal non-cacheable) is weakly ordered and needs
//! `dmb oshst`/`dsb st` between data stores and the store that publishes them.

use super::Barrier;
use core::arch::asm;

/// One barrier instruction, as `asm!` with the options every barrier here shares.
macro_rules! barrier {
    ($insn:literal) => {
        // SAFETY: a barrier only orders memory accesses; it reads and writes no memory,
        // registers or flags.
        unsafe { asm!($insn, options(nostack, preserves_flags)) }
    };
}

/// Executes `barrier`.
#[inline(always)]
pub(super) fn execute(barrier: Barrier) {
    match barrier {
        Barrier::Mb => barrier!("dsb sy"),
        Barrier::Rmb => barrier!("dsb ld"),
        Barrier::Wmb | Barrier::WcFlush => barrier!("dsb st"),
        Barrier::IoBeforeWrite | Barrier::DmaWmb => barrier!("dmb oshst"),
        Barrier::IoAfterRead | Barrier::DmaRmb => barrier!("dmb oshld"),
        Barrier::IoOrder => barrier!("dmb osh"),
        // No instruction in Linux either (`__io_br()` is empty; arm64 has no `mmiowb()`).
        Barrier::IoBeforeRead | Barrier::MmioUnlock => compiler_fence(),
    }
}

/// Executes `barrier` after an MMIO load that returned `loaded` (no barrier here uses it).
#[inline(always)]
pub(super) fn execute_after_read(barrier: Barrier, _loaded: u64) {
    execute(barrier)
}

/// A compiler-only fence: no instruction, but the compiler keeps every memory access on its side.
#[inline(always)]
fn compiler_fence() {
    // SAFETY: an empty `asm!` executes nothing; without `nomem` the compiler must assume it
    // reads and writes any memory, so no access is moved across it.
    unsafe { asm!("", options(nostack, preserves_flags)) }
}
