//! [`P2pLease`]: a [`P2pBuf`] lent to a device, never freed under it.

use core::fmt;
use core::mem::ManuallyDrop;

use super::P2pBuf;
use crate::backend::Backend;
use crate::dma::DmaAddr;
use crate::iomem::IoMem;

/// A peer-to-peer buffer lent to a device (a CMB buffer a command reads into or writes from,
/// a PRP list in the CMB): the buffer stays allocated until [`complete`](Self::complete).
///
/// Dropped without completing — a command abandoned, a timeout — the buffer is
/// **quarantined**: its memory stays allocated for as long as the pool lives, so no later
/// allocation gets memory the device may still write
/// ([`P2pStats::quarantined`](super::P2pStats::quarantined) counts it).
///
/// ```
/// use iomem::backend::MockIo;
/// use iomem::p2p::P2pPool;
///
/// // SAFETY: a mock at a made-up bus address: no device is given its addresses.
/// let pool = unsafe { P2pPool::new(MockIo::new(16 * 4096), 0x1_0000_0000) }?;
/// let lent = pool.alloc(4096, 4096)?.lend();
/// let addr = lent.dma_addr().get();
/// drop(lent);                                 // abandoned: quarantined
/// assert_ne!(pool.alloc(4096, 4096)?.bus_addr(), addr);
/// assert_eq!(pool.stats().quarantined, 4096);
/// let lent = pool.alloc(4096, 4096)?.lend();
/// let addr = lent.dma_addr().get();
/// // SAFETY: no device was given the address.
/// let buf = unsafe { lent.complete() };       // completed: back, and freed when dropped
/// drop(buf);
/// assert_eq!(pool.alloc(4096, 4096)?.bus_addr(), addr);
/// # Ok::<(), iomem::Error>(())
/// ```
///
/// # Invariant
/// `buf` is taken once: by `complete`, which consumes the lease without dropping it, or by the
/// drop, which quarantines it.
pub struct P2pLease<B: Backend> {
    buf: ManuallyDrop<P2pBuf<B>>,
}

impl<B: Backend> P2pBuf<B> {
    /// Lends the buffer to a device: see [`P2pLease`].
    pub fn lend(self) -> P2pLease<B> {
        P2pLease {
            buf: ManuallyDrop::new(self),
        }
    }
}

impl<B: Backend> P2pLease<B> {
    /// The address the device uses for the first byte.
    pub fn dma_addr(&self) -> DmaAddr {
        self.buf.dma_addr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Always `false`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The CPU's handle to the buffer (to fill a PRP list before submission).
    pub fn io(&self) -> IoMem<'_, [u8], B> {
        self.buf.io()
    }

    /// The device is done: the buffer comes back.
    ///
    /// # Safety
    /// No device will access the buffer through its addresses any more (the command that used
    /// it completed, or the device was reset).
    pub unsafe fn complete(self) -> P2pBuf<B> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the buffer is taken once (the invariant).
        unsafe { ManuallyDrop::take(&mut this.buf) }
    }
}

impl<B: Backend> fmt::Debug for P2pLease<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("P2pLease").field(&*self.buf).finish()
    }
}

impl<B: Backend> Drop for P2pLease<B> {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and `complete` forgets the lease instead of dropping it, so
        // the buffer is taken here only (the invariant).
        let buf = unsafe { ManuallyDrop::take(&mut self.buf) };
        buf.quarantine();
    }
}
