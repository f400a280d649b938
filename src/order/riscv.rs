//! riscv64 barriers (`arch/riscv/include/asm/barrier.h`, `asm/mmio.h`, `asm/mmiowb.h`).
//!
//! RISC-V fences name predecessor and successor sets of device input (`i`), device output
//! (`o`), memory reads (`r`) and memory writes (`w`): `writel` is `fence w,o; sw`, `readl` is
//! `lw; fence i,r`, and `mmiowb` is `fence o,w`.

use super::Barrier;
use core::arch::asm;
use core::sync::atomic::{compiler_fence, Ordering};

#[inline(always)]
pub(super) fn execute(barrier: Barrier) {
    // SAFETY (every arm): fences only order memory and I/O accesses; they touch no memory.
    match barrier {
        Barrier::Mb => unsafe { asm!("fence iorw,iorw", options(nostack, preserves_flags)) },
        Barrier::Rmb => unsafe { asm!("fence ir,ir", options(nostack, preserves_flags)) },
        Barrier::Wmb | Barrier::WcFlush => unsafe {
            asm!("fence ow,ow", options(nostack, preserves_flags))
        },
        Barrier::IoBeforeWrite => unsafe { asm!("fence w,o", options(nostack, preserves_flags)) },
        Barrier::IoAfterRead => unsafe { asm!("fence i,r", options(nostack, preserves_flags)) },
        Barrier::IoOrder => unsafe { asm!("fence io,io", options(nostack, preserves_flags)) },
        Barrier::DmaOrder => unsafe { asm!("fence rw,rw", options(nostack, preserves_flags)) },
        Barrier::MmioUnlock => unsafe { asm!("fence o,w", options(nostack, preserves_flags)) },
        Barrier::IoBeforeRead => compiler_fence(Ordering::SeqCst),
    }
}
