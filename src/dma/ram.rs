//! [`RamDma`]: a provider over plain heap memory with made-up device addresses, for benchmarks
//! and for devices simulated in the same process.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::Ordering::Relaxed;
use std::alloc::{alloc_zeroed, dealloc, Layout};

use super::region::{AddrMap, Quarantine};
use super::{DmaProvider, DmaRegion};
use crate::backend::{Caching, Mmio};
use crate::error::{Error, Result};

/// Page-aligned heap memory handed out as DMA regions at made-up, contiguous device addresses
/// (`base + offset`, each region at the next free address). Nothing is pinned and no address is
/// real: it serves benchmarks of the CPU's side and devices simulated in the same process, which
/// reach the memory through the CPU, not by DMA.
#[derive(Debug)]
pub struct RamDma {
    next: core::sync::atomic::AtomicU64,
    quarantine: Arc<Quarantine>,
}

/// One heap allocation, freed on drop.
struct Heap {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: the allocation is plain memory owned by this value; it is only freed, on drop.
unsafe impl Send for Heap {}
// SAFETY: as above: shared use does nothing with it.
unsafe impl Sync for Heap {}

impl Drop for Heap {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `RamDma::alloc`, freed once.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

impl RamDma {
    /// A provider whose regions get device addresses from `base` on.
    ///
    /// # Safety
    /// The addresses are made up: none of them may be given to a real device (a queue-base
    /// register, a PRP entry), which would DMA to whatever memory really is there.
    pub unsafe fn new(base: u64) -> Self {
        RamDma {
            next: core::sync::atomic::AtomicU64::new(base),
            quarantine: Arc::new(Quarantine::default()),
        }
    }
}

impl DmaProvider for RamDma {
    type Backend = Mmio;
    type Error = Error;

    fn alloc(&self, len: usize) -> Result<DmaRegion<Mmio>> {
        if len == 0 {
            return Err(Error::InvalidArgument("DMA allocation of zero bytes"));
        }
        let overflow = Error::Overflow { offset: 0, len };
        let rounded = len.checked_next_multiple_of(4096).ok_or(overflow)?;
        let layout = Layout::from_size_align(rounded, 4096).map_err(|_| overflow)?;
        // CAST: a `usize` length fits in u64.
        let size = rounded as u64;
        // The region's device addresses, `[base, base + size)`, end at or below the top of the
        // address space; one that would not is refused, and the next address does not move.
        let base = self
            .next
            .fetch_update(Relaxed, Relaxed, |b| b.checked_add(size))
            .map_err(|_| overflow)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(Error::Exhausted {
                size: len,
                align: 4096,
                free: 0,
                largest: 0,
            });
        }
        let heap = Box::new(Heap { ptr, layout });
        // SAFETY: `ptr` is a fresh, page-aligned, zeroed allocation of `layout.size()` bytes that
        // `heap` owns and only frees on drop; nothing else refers to it.
        let mmio = unsafe { Mmio::new(ptr, layout.size(), Caching::Cacheable) }?;
        // SAFETY: the memory is `heap`'s, owned by the region from here on; its addresses are
        // made up, which `RamDma::new`'s caller accepted.
        unsafe {
            DmaRegion::from_parts(
                mmio,
                0,
                layout.size(),
                AddrMap::Contiguous(base),
                self.quarantine.clone(),
                heap,
            )
        }
    }

    fn alloc_contiguous(&self, len: usize) -> Result<DmaRegion<Mmio>> {
        self.alloc(len)
    }

    fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }
}

impl Drop for RamDma {
    fn drop(&mut self) {
        // SAFETY: `new`'s caller gave no address of this provider to a device, so nothing but
        // the CPU ever accesses the quarantined memory, and the CPU only through regions,
        // which are gone or hold their own share.
        unsafe { self.quarantine.release() }
    }
}
