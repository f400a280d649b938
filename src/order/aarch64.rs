//! aarch64 barriers (`arch/arm64/include/asm/barrier.h`, `asm/io.h`).
//!
//! The I/O barriers use the outer-shareable domain (`osh`), which covers devices: `writel` is
//! `dmb oshst; str`, `readl` is `ldr; dmb oshld`. The full `mb`/`rmb`/`wmb` use `dsb`, which
//! also waits for completion. aarch64 needs no `mmiowb`: spin-lock release (`stlr`) after a
//! `dmb oshst`-ordered MMIO write is ordered already.

use super::Barrier;
use core::arch::asm;
use core::sync::atomic::{compiler_fence, Ordering};

#[inline(always)]
pub(super) fn execute(barrier: Barrier) {
    // SAFETY (every arm): barriers only order memory accesses; they touch no memory or flags.
    match barrier {
        Barrier::Mb => unsafe { asm!("dsb sy", options(nostack, preserves_flags)) },
        Barrier::Rmb => unsafe { asm!("dsb ld", options(nostack, preserves_flags)) },
        Barrier::Wmb | Barrier::WcFlush => unsafe {
            asm!("dsb st", options(nostack, preserves_flags))
        },
        Barrier::IoBeforeWrite => unsafe { asm!("dmb oshst", options(nostack, preserves_flags)) },
        Barrier::IoAfterRead => unsafe { asm!("dmb oshld", options(nostack, preserves_flags)) },
        Barrier::IoOrder => unsafe { asm!("dmb osh", options(nostack, preserves_flags)) },
        Barrier::DmaOrder => unsafe {
            asm!("dmb oshld", "dmb oshst", options(nostack, preserves_flags))
        },
        Barrier::IoBeforeRead | Barrier::MmioUnlock => compiler_fence(Ordering::SeqCst),
    }
}
