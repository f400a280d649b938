//! x86_64 barriers, as Linux emits them.
//!
//! Sources (Linux `torvalds/linux`):
//! - `arch/x86/include/asm/barrier.h`: on 64-bit `mb()` is `mfence`, `rmb()` `lfence`, `wmb()`
//!   `sfence`; `dma_rmb()`/`dma_wmb()` and `smp_rmb()`/`smp_wmb()` are compiler barriers;
//!   `smp_mb()` is `lock addl $0,-4(%rsp)` (commit 450cbdd0125c), which orders cacheable memory
//!   only.
//! - `arch/x86/include/asm/io.h` (`build_mmio_write`/`build_mmio_read`): `writel`/`readl` are
//!   single `mov`s with a `"memory"` clobber; uncached (UC) MMIO is strongly ordered against
//!   every other access, so no instruction is needed. No `mmiowb()`.
//! - `arch/x86/lib/iomem.c`: `memcpy_toio`/`memcpy_fromio` are `rep movs` based, no fences.
//!
//! Write-combining mappings (`ioremap_wc`, PAT WC) are weakly ordered: stores may sit in a
//! write-combining buffer and become visible after later stores, including a later UC doorbell.
//! `sfence` drains them ([`Barrier::WcFlush`]).
//!
//! [`Barrier::Mb`] stays `mfence`, although a store followed by a locked add to the stack measured
//! ≈ 2.6 ns on this project's reference host against ≈ 45–70 ns for `mfence` (see the report's
//! `barrier` section). A locked instruction orders stores of every memory type (Intel SDM Vol. 3
//! "Software controlled bus locking"; AMD APM Vol. 2 §7.4.2), but the Intel SDM exempts *loads
//! from weakly ordered memory types such as WC* from that serialisation, and `Mb` promises to
//! order every earlier load too — a `movntdqa` read of a WC buffer may pass a locked op, not an
//! `mfence`. Linux made the same call: `smp_mb()` (cacheable memory only) became `lock addl` in
//! commit 450cbdd0125c, while `mb()`, the one drivers use around devices, stayed `mfence`. A
//! doorbell never needs `Mb` on x86 anyway: uncached stores are ordered, and write-combining
//! data needs only `sfence` ([`Barrier::WcFlush`]).

use super::Barrier;
use core::arch::asm;

/// Executes `barrier`.
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
        // Uncached MMIO is strongly ordered: only the compiler must keep its order.
        Barrier::IoBeforeWrite
        | Barrier::IoBeforeRead
        | Barrier::IoAfterRead
        | Barrier::IoOrder
        | Barrier::DmaRmb
        | Barrier::DmaWmb
        | Barrier::MmioUnlock => compiler_fence(),
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
