//! [`P2pBuf`]: an owned piece of a pool, and the protocol by which the live buffers of a pool
//! share strong counts of the pool's `Arc`: one per arena with live allocations.
//!
//! The allocation that makes an arena's count of live allocations 1 takes a strong count
//! (without an `Arc` to show for it); the release that makes it 0 gives it back. Both decide
//! under that arena's lock, so the decisions about one arena are totally ordered: at any time an
//! arena's count is held exactly when it has live allocations, and the release that gives back
//! the last count of all is the last release of the pool's buffers (another thread that then
//! allocates sees a count of 1 again and takes a count of its own). A buffer across arena
//! boundaries is a live allocation of each arena it has a piece in (see `arena.rs`).
//! `tests/loom.rs` checks this under every interleaving of two threads (with one arena).

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use super::arena::Got;
use super::pool::{Inner, P2pPool};
use crate::backend::Backend;
use crate::iomem::IoMem;
use crate::sync::Arc;

/// The bit of [`P2pBuf::granules`] that says the buffer crosses arena boundaries.
const SPANS_BIT: u32 = 63;

/// An owned piece of a [`P2pPool`]: freed when dropped.
///
/// Device memory is reached only through [`P2pBuf::io`]; devices reach it at
/// [`P2pBuf::bus_addr`]. The buffer keeps its pool (and so the mapping) alive.
///
/// # Invariant
/// From its allocation to its drop, the buffer's node (`slot`'s low half) is allocated in the
/// arena of its pool that `granules` names (with its pieces in the arenas above, if it crosses
/// arena boundaries), with `granules`'s low half of granules from `slot`'s high half; so that
/// arena's count of live allocations is at least 1, its strong count of the pool's `Arc` is held,
/// and `pool` points to a live `Inner`.
pub struct P2pBuf<B: Backend> {
    /// The pool's shared state: [`Arc::as_ptr`] of the pool's `Arc`. The live buffers of an
    /// arena hold **one** strong count of that `Arc` between them, taken by the allocation that
    /// makes the arena's count of live allocations 1 and given back by the release that makes it
    /// 0 (both decided under the arena's lock), so a buffer costs no reference counting of its
    /// own.
    pool: NonNull<Inner<B>>,
    /// The allocator's node for this buffer (low 32 bits; in its first arena) and its first
    /// granule in the region (high 32 bits).
    /// The byte figures are computed from these, `granules` and the pool's constants, so a
    /// buffer is three words, cheap to move. (Whole words: a buffer is often built and then
    /// moved through the stack at once, and a word-sized load of two separately stored halves
    /// would wait for both stores to reach the cache.)
    slot: u64,
    /// Length in granules (low 32 bits), the arena of its first piece (bits 32..39), and whether
    /// it has pieces in the arenas above ([`SPANS_BIT`]).
    granules: u64,
    /// Owns (a share of) an `Arc<Inner<B>>`: the same auto traits and drop check as one.
    _owns: PhantomData<Arc<Inner<B>>>,
}

// SAFETY: a buffer gives access to its pool's `Inner` exactly as an `Arc<Inner<B>>` would: shared
// references from any thread, and the last drop (from any thread) may drop the `Inner`. An
// `Arc<Inner<B>>` is `Send` and `Sync` when `Inner<B>` is `Send + Sync`, which holds when `B` is
// (the allocator state is behind `SpinLock`s, which are `Sync`; the other fields are plain data).
unsafe impl<B: Backend + Send + Sync> Send for P2pBuf<B> {}
// SAFETY: as for `Send` above; `&P2pBuf` only reads the buffer's own fields and shares `Inner`.
unsafe impl<B: Backend + Send + Sync> Sync for P2pBuf<B> {}

impl<B: Backend> P2pBuf<B> {
    /// Allocates `n ≥ 1` granules aligned to `align_g` granules from `pool`, taking a strong
    /// count of `pool` for each arena of which this is the first live allocation. `None` if no
    /// free run fits.
    #[inline]
    pub(super) fn alloc(pool: &Arc<Inner<B>>, n: u64, align_g: u64) -> Option<Self> {
        // The first live allocation of an arena: take that arena's strong count.
        let got = pool
            .arenas
            .alloc(n, align_g, &|| core::mem::forget(Arc::clone(pool)))?;
        Some(P2pBuf {
            // SAFETY: `Arc::as_ptr` points into the `Arc`'s allocation: not null. (The pointer
            // comes from the `Arc`, not from `&Inner`, so that it may be given back to `Arc`
            // functions.)
            pool: unsafe { NonNull::new_unchecked(Arc::as_ptr(pool).cast_mut()) },
            slot: got.node as u64 | (got.start as u64) << 32,
            granules: n | (got.arena as u64) << 32 | (got.spans as u64) << SPANS_BIT,
            _owns: PhantomData,
        })
    }

    /// The pool's shared state.
    #[inline(always)]
    fn inner(&self) -> &Inner<B> {
        // SAFETY: `pool` is `Arc::as_ptr` of the pool's `Arc`, and while this buffer is live the
        // allocator counts it among its live allocations, so the buffers' strong count of that
        // `Arc` is held: the `Inner` is alive for at least as long as `&self`.
        unsafe { self.pool.as_ref() }
    }

    /// A handle to the buffer's device memory, with the pool's width policy and strategy.
    pub fn io(&self) -> IoMem<'_, [u8], B> {
        self.inner().region(self.offset(), self.len())
    }

    /// Offset of the buffer in the pool's region.
    #[inline]
    fn rel(&self) -> usize {
        ((self.slot >> 32) as usize) << self.inner().shift
    }

    /// The bus address a device uses for the first byte of the buffer, as a number (for
    /// printing and range checks; a device is given [`dma_addr`](Self::dma_addr)).
    #[inline]
    pub fn bus_addr(&self) -> u64 {
        self.inner().bus_addr + self.rel() as u64
    }

    /// The address a device uses for the first byte of the buffer, typed for queue bases and
    /// data pointers. The buffer must outlive every use the device makes of it: freed first,
    /// its bytes go to the next allocation, whose data the device then reads or overwrites.
    /// [`lend`](Self::lend) the buffer for an address that cannot outlive it
    /// ([`P2pLease::dma_addr`](super::P2pLease::dma_addr): a lease dropped early is
    /// quarantined, not freed).
    #[inline]
    pub fn dma_addr(&self) -> crate::dma::DmaAddr {
        // SAFETY: the bus address of bytes this buffer owns in its pool's region, which a peer
        // device may reach: device memory, reached only through `IoMem`, so a device's use after
        // the buffer is freed is a data bug, not undefined behaviour (see `from_raw`).
        unsafe { crate::dma::DmaAddr::from_raw(self.bus_addr()) }
    }

    /// Length in bytes (the request rounded up to the granularity).
    #[inline]
    pub fn len(&self) -> usize {
        // CAST: the low half of `granules` is the length
        (self.granules as u32 as usize) << self.inner().shift
    }

    /// Always `false`: allocations are at least one granule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Offset of the buffer in the pool's backend (the mapping).
    #[inline]
    pub fn offset(&self) -> usize {
        self.inner().offset + self.rel()
    }

    /// The pool this buffer came from.
    pub fn pool(&self) -> P2pPool<B> {
        let ptr = self.pool.as_ptr().cast_const();
        // SAFETY: `ptr` is `Arc::as_ptr` of a live `Arc` (the buffers' count keeps it alive, see
        // `inner`), i.e. the pointer `Arc::into_raw` returns; the count taken here is the one the
        // new `Arc` owns.
        let inner = unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        };
        P2pPool { inner }
    }
}

impl<B: Backend> fmt::Debug for P2pBuf<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P2pBuf")
            .field("offset", &format_args!("{:#x}", self.offset()))
            .field("len", &self.len())
            .field("bus_addr", &format_args!("{:#x}", self.bus_addr()))
            .finish()
    }
}

impl<B: Backend> P2pBuf<B> {
    /// Gives the buffer's node back to the allocator: freed, or (`quarantine`) kept allocated
    /// for the pool's life. Runs once per buffer (its drop, or [`quarantine`](Self::quarantine),
    /// which forgets the buffer).
    #[inline]
    fn release(&mut self, quarantine: bool) {
        let got = Got {
            // CAST: the fields as `alloc` packed them
            arena: (self.granules >> 32) as u32 & 0xff,
            node: self.slot as u32,
            start: (self.slot >> 32) as u32,
            spans: self.granules >> SPANS_BIT != 0,
        };
        // CAST: the low half of `granules` is the length
        let n = self.granules as u32;
        let (released, last) = self.inner().arenas.release(got, n, quarantine);
        // Every buffer owns exactly one allocated node until it is released.
        debug_assert!(released, "P2pBuf released a node that was not allocated");
        for _ in 0..last {
            // This release made `last` arenas' counts of live allocations 0, so their strong
            // counts (taken when each count became 1) are this thread's to give back; until the
            // last of them the `Inner` is alive. (If another thread meanwhile made a count 1
            // again, it took a strong count of its own.)
            // SAFETY: `pool` is `Arc::as_ptr` of that `Arc` (the pointer `Arc::into_raw` returns)
            // and we own `last` strong counts, as above; after the last one nothing of `Inner`
            // is used (`self.pool` is a copy of the pointer, read from the buffer).
            unsafe { Arc::decrement_strong_count(self.pool.as_ptr().cast_const()) }
        }
        // Otherwise another buffer is live and keeps the `Inner` alive past the release of the
        // lock above, the last access to it here (as in `Arc`'s own drop, the memory may be freed
        // by another thread as soon as that atomic store is done).
    }

    /// Drops the handle but keeps its memory allocated for as long as the pool lives: for a
    /// buffer a device may still write (its command never completed). Counted in
    /// [`P2pStats::quarantined`](super::P2pStats::quarantined).
    pub(crate) fn quarantine(self) {
        let mut this = core::mem::ManuallyDrop::new(self);
        this.release(true);
    }
}

impl<B: Backend> Drop for P2pBuf<B> {
    #[inline]
    fn drop(&mut self) {
        self.release(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[cfg(feature = "std")]
    static_assertions::assert_impl_all!(P2pBuf<crate::backend::MockIo>: Send, Sync, std::panic::UnwindSafe, std::panic::RefUnwindSafe);

    #[test]
    fn buffers_share_one_count_of_the_pool() {
        use crate::backend::MockIo;
        // SAFETY: a mock at a made-up bus address: no device is given its addresses.
        let pool = unsafe { P2pPool::new(MockIo::new(64 * 4096), 0) }.unwrap();
        let weak = Arc::downgrade(&pool.inner);
        assert_eq!(Arc::strong_count(&pool.inner), 1);
        let a = pool.alloc(4096, 1).unwrap();
        let b = pool.alloc(4096, 1).unwrap();
        assert_eq!(Arc::strong_count(&pool.inner), 2);
        drop(a);
        assert_eq!(Arc::strong_count(&pool.inner), 2);
        let c = b.pool(); // a handle of its own
        assert_eq!(Arc::strong_count(&pool.inner), 3);
        drop(b);
        assert_eq!(Arc::strong_count(&pool.inner), 2);
        drop(c);
        // the last buffer of a dropped pool frees the pool
        let d = pool.alloc(4096, 1).unwrap();
        drop(pool);
        assert!(weak.upgrade().is_some());
        assert_eq!(d.len(), 4096);
        drop(d);
        assert!(weak.upgrade().is_none());
        // a failed allocation takes no count
        // SAFETY: a mock at a made-up bus address: no device is given its addresses.
        let pool = unsafe { P2pPool::new(MockIo::new(4 * 4096), 0) }.unwrap();
        assert!(pool.alloc(8 * 4096, 1).is_err());
        assert_eq!(Arc::strong_count(&pool.inner), 1);
    }

    #[test]
    fn each_arena_with_buffers_holds_one_count() {
        use crate::backend::MockIo;
        use crate::p2p::P2pConfig;
        let config = P2pConfig::new(0).arenas(2);
        // SAFETY: a mock at a made-up bus address: no device is given its addresses.
        let pool = unsafe { P2pPool::with_config(MockIo::new(8 * 4096), config) }.unwrap();
        let weak = Arc::downgrade(&pool.inner);
        // fills arena 0 (granules 0..4), then one in arena 1, then one across both
        let a = pool.alloc(4 * 4096, 1).unwrap();
        assert_eq!(Arc::strong_count(&pool.inner), 2);
        let b = pool.alloc(4096, 1).unwrap();
        assert_eq!(Arc::strong_count(&pool.inner), 3);
        drop(a);
        assert_eq!(Arc::strong_count(&pool.inner), 2);
        let c = pool.alloc(6 * 4096, 1).unwrap();
        assert_eq!((c.offset(), c.len()), (0, 6 * 4096));
        assert_eq!(Arc::strong_count(&pool.inner), 3);
        drop(b);
        assert_eq!(Arc::strong_count(&pool.inner), 3, "c is in both arenas");
        drop(pool);
        assert!(weak.upgrade().is_some());
        drop(c); // gives back both counts, the last one frees the pool
        assert!(weak.upgrade().is_none());
    }

    #[cfg(feature = "std")]
    #[test]
    fn last_buffer_across_threads_frees_the_pool() {
        use crate::backend::MockIo;
        // Buffers dropped on several threads at once, the pool handle gone: whichever drop is
        // last frees the pool, and the count goes 0 → 1 → 0 many times on the way.
        for round in 0..40 {
            // one arena, then two (threads get homes in both)
            let config = crate::p2p::P2pConfig::new(0).arenas(1 + round / 20);
            // SAFETY: a mock at a made-up bus address: no device is given its addresses.
            let pool = unsafe { P2pPool::with_config(MockIo::new(256 * 4096), config) }.unwrap();
            let weak = Arc::downgrade(&pool.inner);
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    let p = pool.clone();
                    std::thread::spawn(move || {
                        for i in 0..200 {
                            if let Ok(b) = p.alloc(4096 * (1 + (i + t + round) % 4), 1) {
                                drop(b);
                            }
                        }
                        let mine: Vec<_> = (0..4).filter_map(|_| p.alloc(4096, 1).ok()).collect();
                        drop(p);
                        mine
                    })
                })
                .collect();
            drop(pool);
            let kept: Vec<Vec<P2pBuf<MockIo>>> =
                handles.into_iter().map(|h| h.join().unwrap()).collect();
            assert!(weak.upgrade().is_some());
            let droppers: Vec<_> = kept
                .into_iter()
                .map(|bufs| std::thread::spawn(move || drop(bufs)))
                .collect();
            for d in droppers {
                d.join().unwrap();
            }
            assert!(weak.upgrade().is_none(), "round {round}");
        }
    }
}
