//! x86_64 barriers (`arch/x86/include/asm/barrier.h`). Uncached MMIO is strongly ordered on x86,
//! so the I/O barriers are compiler fences; `sfence` drains write-combining buffers.

use super::Barrier;
use core::arch::asm;
use core::sync::atomic::{compiler_fence, Ordering};

#[inline(always)]
pub(super) fn execute(barrier: Barrier) {
    match barrier {
        // SAFETY: `mfence` only orders memory accesses; it reads and writes no memory.
        Barrier::Mb => unsafe { asm!("mfence", options(nostack, preserves_flags)) },
        // SAFETY: `lfence` only orders loads.
        Barrier::Rmb => unsafe { asm!("lfence", options(nostack, preserves_flags)) },
        // SAFETY: `sfence` only orders stores and drains write-combining buffers.
        Barrier::Wmb | Barrier::WcFlush => unsafe {
            asm!("sfence", options(nostack, preserves_flags))
        },
        Barrier::IoBeforeWrite
        | Barrier::IoBeforeRead
        | Barrier::IoAfterRead
        | Barrier::IoOrder
        | Barrier::DmaOrder
        | Barrier::MmioUnlock => compiler_fence(Ordering::SeqCst),
    }
}
