//! riscv64 barriers, as Linux emits them.
//!
//! RISC-V fences name a predecessor and a successor set of device input (`i`), device output
//! (`o`), memory reads (`r`) and memory writes (`w`); the fence orders every access of the first
//! set before every access of the second.
//!
//! Sources (Linux `torvalds/linux`):
//! - `arch/riscv/include/asm/barrier.h`: `mb()` `fence iorw,iorw`, `rmb()` `fence ir,ir`,
//!   `wmb()` `fence ow,ow`; `dma_rmb()`/`dma_wmb()` fall back (`asm-generic/barrier.h`) to
//!   `rmb()`/`wmb()`.
//! - `arch/riscv/include/asm/mmio.h`: `__io_bw()` `fence w,o` (`writel` = `fence w,o; sw`),
//!   `__io_ar()` `fence i,ir` (`readl` = `lw; fence i,ir`: the read is ordered before later
//!   memory reads *and* before later device reads, which keeps it ahead of a `delay()` loop;
//!   older kernels used `fence i,r`), `__io_br()` empty, `__io_aw()`
//!   `mmiowb_set_pending()`. The `_relaxed` accessors need no fence: the platform spec makes I/O
//!   regions strongly ordered among themselves.
//! - `arch/riscv/include/asm/mmiowb.h`: `mmiowb()` is `fence o,w` — device writes complete
//!   before the store that releases the lock.
//! - copies come from `lib/iomem_copy.c` (raw accesses, no fences).

use super::Barrier;
use core::arch::asm;

/// One barrier instruction, as `asm!` with the options every barrier here shares.
macro_rules! barrier {
    ($insn:literal) => {
        // SAFETY: a fence only orders memory and I/O accesses; it reads and writes no memory,
        // registers or flags.
        unsafe { asm!($insn, options(nostack, preserves_flags)) }
    };
}

/// Executes `barrier`.
#[inline(always)]
pub(super) fn execute(barrier: Barrier) {
    match barrier {
        Barrier::Mb => barrier!("fence iorw,iorw"),
        Barrier::Rmb | Barrier::DmaRmb => barrier!("fence ir,ir"),
        Barrier::Wmb | Barrier::WcFlush | Barrier::DmaWmb => barrier!("fence ow,ow"),
        Barrier::IoBeforeWrite => barrier!("fence w,o"),
        Barrier::IoAfterRead => barrier!("fence i,ir"),
        Barrier::IoOrder => barrier!("fence io,io"),
        Barrier::MmioUnlock => barrier!("fence o,w"),
        // `__io_br()` is empty in Linux.
        Barrier::IoBeforeRead => compiler_fence(),
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
