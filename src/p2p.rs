//! Peer-to-peer memory: a sub-allocator over a region of device memory, handing out owned
//! buffers with their PCI bus addresses.
//!
//! A [`P2pPool`] manages a region of a backend (an NVMe Controller Memory Buffer, a GPU BAR)
//! whose bus address is known. [`P2pPool::alloc`] returns a [`P2pBuf`]: an owned piece of the
//! region that frees itself on drop, gives access only through an [`IoMem`] handle (never a
//! `&mut [u8]`), and knows the bus address a device uses to reach it by DMA.
//!
//! # Design
//! - **Metadata out of band.** The allocator's state lives in host RAM; device memory is never
//!   read or written by the allocator (it may be slow, write-combining, or shared with a device
//!   that would see and corrupt allocator state).
//! - **Two-level segregated fit** (TLSF): free blocks sit in 29 × 16 size classes with a bitmap
//!   per level, so finding a block, splitting it, freeing and coalescing with both neighbours
//!   are O(1) — no scan of the region, unlike a bitmap allocator (Linux `lib/genalloc.c`).
//!   A request is served from the first class whose every block fits ("good fit": at most
//!   1/16 larger than best fit). Only when that fails are the blocks of the classes in between
//!   examined one by one, so an allocation fails only if no free block can hold it. The
//!   allocation takes the top of the chosen block and a freed block merges into a free
//!   neighbour in place, so the surviving free block changes lists only when its size class
//!   changes.
//! - **Granularity.** Sizes are rounded up to the pool's granularity (a power of two ≥ 64 bytes,
//!   4 KiB by default) and to nothing more: no power-of-two rounding.
//! - **Alignment** is of the **bus address**, which is what a device checks (PRP entries, queue
//!   bases). The bus address of the region must itself be aligned to the granularity, so any
//!   alignment up to the granularity costs nothing; larger alignments are served by carving the
//!   front of a block off as a free block.
//! - **Ownership.** The pool is a cheap handle on shared state (`Arc`): it owns the backend `B`
//!   (the mapping), and every [`P2pBuf`] keeps that state alive, so a buffer cannot outlive its
//!   mapping. A [`P2pBuf`] is not `Clone` and is freed only by its own drop, so a double free
//!   cannot be written: there is no API that frees by offset or handle.
//! - **Threads.** `P2pPool<B>` and `P2pBuf<B>` are `Send + Sync` when `B` is; the allocator
//!   state is behind a lock (a `std` mutex, or a spin lock without `std`).
//!
//! # Example
//! ```
//! use iomem::{backend::MockIo, p2p::{P2pConfig, P2pPool}, Error};
//!
//! // A 1 MiB device region at bus address 0xfd00_0000 (a CMB, say).
//! let pool = P2pPool::with_config(MockIo::new(1 << 20), P2pConfig::new(0xfd00_0000))?;
//! let buf = pool.alloc(6000, 4096)?;            // rounded to 8 KiB, bus address 4 KiB aligned
//! assert_eq!(buf.len(), 8192);
//! assert_eq!(buf.bus_addr() % 4096, 0);
//! buf.io().fill(0)?;                            // device memory only through IoMem
//! let stats = pool.stats();
//! assert_eq!(stats.free, (1 << 20) - 8192);
//! assert!(matches!(pool.alloc(2 << 20, 64), Err(Error::Exhausted { .. })));
//! drop(buf);                                    // freed; the pool lives on while buffers do
//! assert_eq!(pool.stats().free, 1 << 20);
//! # Ok::<(), iomem::Error>(())
//! ```

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::fmt;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::backend::Backend;
use crate::copy::WidthPolicy;
use crate::error::{Error, Result};
use crate::iomem::IoMem;
use crate::order::Strategy;

/// The default granularity: 4 KiB, the NVMe memory page size.
pub const DEFAULT_GRANULARITY: usize = 4096;
/// The smallest granularity a pool accepts.
pub const MIN_GRANULARITY: usize = 64;

/// How a [`P2pPool`] covers its backend.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    bus_addr: u64,
    range: Option<Range<usize>>,
    granularity: usize,
    policy: WidthPolicy,
    strategy: Strategy,
}

impl P2pConfig {
    /// A pool over the whole backend, whose first byte has bus address `bus_addr`, with 4 KiB
    /// granularity, the [`WidthPolicy::MEMORY_LIKE`] width policy and the
    /// [`Strategy::Conservative`] strategy for buffer handles.
    pub fn new(bus_addr: u64) -> Self {
        P2pConfig {
            bus_addr,
            range: None,
            granularity: DEFAULT_GRANULARITY,
            policy: WidthPolicy::MEMORY_LIKE,
            strategy: Strategy::Conservative,
        }
    }
    /// Manage only `range` of the backend; `bus_addr` is then the bus address of `range.start`.
    pub fn range(mut self, range: Range<usize>) -> Self {
        self.range = Some(range);
        self
    }
    /// Allocation granularity: a power of two, at least [`MIN_GRANULARITY`].
    pub fn granularity(mut self, granularity: usize) -> Self {
        self.granularity = granularity;
        self
    }
    /// Width policy of the handles [`P2pBuf::io`] returns.
    pub fn policy(mut self, policy: WidthPolicy) -> Self {
        self.policy = policy;
        self
    }
    /// Ordering strategy of the handles [`P2pBuf::io`] returns.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }
}

/// A snapshot of a pool's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P2pStats {
    /// Bytes the pool manages.
    pub total: usize,
    /// Bytes free.
    pub free: usize,
    /// Size of the largest free block: the largest allocation with alignment ≤ the
    /// granularity that would succeed now.
    pub largest_free: usize,
    /// Live allocations.
    pub allocations: usize,
    /// Free blocks (a measure of fragmentation).
    pub free_blocks: usize,
    /// The pool's granularity.
    pub granularity: usize,
}

// ---------------------------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------------------------

/// A spin lock: taking it uncontended is one compare-exchange, releasing it one release store
/// (a `std` mutex also needs an atomic swap to release, to learn whether to wake a waiter).
/// The allocator holds it for a few dozen nanoseconds (every operation under it is O(1) but
/// `stats`), so a waiter spins briefly and then, with `std`, yields its CPU between attempts
/// (on a machine with fewer CPUs than threads the holder may be descheduled).
struct Lock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is reached only through `with`, which holds the lock: `locked` was changed
// from false to true with acquire ordering by this thread and is reset with release ordering,
// so accesses from different threads never overlap and each sees the previous one's writes.
// `T: Send` because the value is used from whichever thread holds the lock.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    fn new(v: T) -> Self {
        Lock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(v),
        }
    }

    /// Runs `f` with exclusive access to the value. The lock is released when `f` returns or
    /// unwinds (the allocator's state is consistent at every point it could panic: it does not).
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        struct Unlock<'a>(&'a AtomicBool);
        impl Drop for Unlock<'_> {
            #[inline(always)]
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: this thread holds the lock (the compare-exchange above or in `lock_contended`
        // succeeded) until `_unlock` drops after `f` returns, so this is the only reference to
        // the value.
        f(unsafe { &mut *self.value.get() })
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            // test before test-and-set: wait with plain loads, not cache-line-stealing writes
            while self.locked.load(Ordering::Relaxed) {
                if spins < 100 {
                    spins += 1;
                    core::hint::spin_loop();
                } else {
                    #[cfg(feature = "std")]
                    std::thread::yield_now();
                    #[cfg(not(feature = "std"))]
                    core::hint::spin_loop();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TLSF over granule indices
// ---------------------------------------------------------------------------------------------

const NIL: u32 = u32::MAX;
const SL_BITS: u32 = 4;
const SL: usize = 1 << SL_BITS;
/// First-level classes: 0 holds sizes 1..16 exactly, then one class per power of two up to 2^31.
const FL: usize = 32 - SL_BITS as usize + 1;
/// The largest number of granules a pool may have.
const MAX_GRANULES: u64 = 1 << 31;

#[derive(Clone, Copy)]
struct Node {
    start: u32,
    size: u32,
    prev_phys: u32,
    next_phys: u32,
    prev_free: u32,
    next_free: u32,
    /// Size class (`fl * SL + sl`) while on a free list.
    class: u16,
    free: bool,
}

/// Size class of a block of `n ≥ 1` granules (rounding down).
#[inline(always)]
fn class_of(n: u64) -> (usize, usize) {
    if n < SL as u64 {
        (0, n as usize)
    } else {
        let f = 63 - n.leading_zeros();
        let sl = ((n >> (f - SL_BITS)) as usize) - SL;
        ((f - SL_BITS + 1) as usize, sl)
    }
}

/// The smallest class whose every block holds at least `n ≥ 1` granules (rounding up).
#[inline(always)]
fn class_at_least(n: u64) -> (usize, usize) {
    if n < SL as u64 {
        (0, n as usize)
    } else {
        let f = 63 - n.leading_zeros();
        class_of(n + (1u64 << (f - SL_BITS)) - 1)
    }
}

/// The allocator proper, in granule units. Pure bookkeeping: it never touches device memory.
pub(crate) struct Tlsf {
    nodes: Vec<Node>,
    spare: Vec<u32>,
    heads: [[u32; SL]; FL],
    fl_map: u32,
    sl_map: [u32; FL],
    /// Bus address of the region in granules (for alignment).
    base_g: u64,
    total: u32,
    free: u32,
    allocations: u32,
    free_blocks: u32,
}

impl Tlsf {
    /// A region of `total` granules (1..=2^31) whose bus address is `base_g` granules.
    pub(crate) fn new(total: u32, base_g: u64) -> Self {
        let mut t = Tlsf {
            nodes: Vec::new(),
            spare: Vec::new(),
            heads: [[NIL; SL]; FL],
            fl_map: 0,
            sl_map: [0; FL],
            base_g,
            total,
            free: 0,
            allocations: 0,
            free_blocks: 0,
        };
        let n = t.new_node(0, total);
        t.insert_free(n);
        t.free = total;
        t
    }

    #[inline(always)]
    fn new_node(&mut self, start: u32, size: u32) -> u32 {
        let node = Node {
            start,
            size,
            prev_phys: NIL,
            next_phys: NIL,
            prev_free: NIL,
            next_free: NIL,
            class: 0,
            free: false,
        };
        if let Some(i) = self.spare.pop() {
            self.nodes[i as usize] = node;
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    #[inline(always)]
    fn insert_free(&mut self, i: u32) {
        let (f, s) = class_of(self.nodes[i as usize].size as u64);
        let head = self.heads[f][s];
        {
            let n = &mut self.nodes[i as usize];
            n.class = (f * SL + s) as u16;
            n.free = true;
            n.prev_free = NIL;
            n.next_free = head;
        }
        if head != NIL {
            self.nodes[head as usize].prev_free = i;
        }
        self.heads[f][s] = i;
        self.fl_map |= 1 << f;
        self.sl_map[f] |= 1 << s;
        self.free_blocks += 1;
    }

    #[inline(always)]
    fn remove_free(&mut self, i: u32) {
        let Node {
            class,
            prev_free,
            next_free,
            ..
        } = self.nodes[i as usize];
        let (f, s) = (class as usize / SL, class as usize % SL);
        if prev_free != NIL {
            self.nodes[prev_free as usize].next_free = next_free;
        } else {
            self.heads[f][s] = next_free;
            if next_free == NIL {
                self.sl_map[f] &= !(1 << s);
                if self.sl_map[f] == 0 {
                    self.fl_map &= !(1 << f);
                }
            }
        }
        if next_free != NIL {
            self.nodes[next_free as usize].prev_free = prev_free;
        }
        self.nodes[i as usize].free = false;
        self.free_blocks -= 1;
    }

    /// Where an allocation of `n` granules aligned to `align_g` goes in free block `i`: as high
    /// as possible (at its end, or below it by the alignment's slack). `None` if it does not fit.
    #[inline(always)]
    fn place(&self, i: u32, n: u64, align_g: u64) -> Option<u32> {
        let node = &self.nodes[i as usize];
        let end = node.start as u64 + node.size as u64;
        let mut at = end.checked_sub(n)?;
        if align_g > 1 {
            at = at.checked_sub((self.base_g + at) & (align_g - 1))?;
        }
        (at >= node.start as u64).then_some(at as u32)
    }

    /// Re-files free block `i` after its size changed, if its size class changed.
    #[inline(always)]
    fn refile(&mut self, i: u32) {
        let (f, s) = class_of(self.nodes[i as usize].size as u64);
        if self.nodes[i as usize].class as usize != f * SL + s {
            self.remove_free(i);
            self.insert_free(i);
        }
    }

    /// Links a new node `j` into the physical order right after `i`.
    #[inline(always)]
    fn link_after(&mut self, i: u32, j: u32) {
        let next = self.nodes[i as usize].next_phys;
        self.nodes[j as usize].prev_phys = i;
        self.nodes[j as usize].next_phys = next;
        if next != NIL {
            self.nodes[next as usize].prev_phys = j;
        }
        self.nodes[i as usize].next_phys = j;
    }

    /// Unlinks node `j` from the physical order and recycles it.
    #[inline(always)]
    fn unlink(&mut self, j: u32) {
        let Node {
            prev_phys,
            next_phys,
            ..
        } = self.nodes[j as usize];
        if prev_phys != NIL {
            self.nodes[prev_phys as usize].next_phys = next_phys;
        }
        if next_phys != NIL {
            self.nodes[next_phys as usize].prev_phys = prev_phys;
        }
        self.nodes[j as usize].size = 0;
        self.nodes[j as usize].free = false;
        self.spare.push(j);
    }

    /// First non-empty class at or above `(f, s)`.
    #[inline(always)]
    fn find_class(&self, f: usize, s: usize) -> Option<(usize, usize)> {
        if f >= FL {
            return None;
        }
        let sl = self.sl_map[f] & (u32::MAX << s);
        if sl != 0 {
            return Some((f, sl.trailing_zeros() as usize));
        }
        let fl = if f + 1 >= 32 {
            0
        } else {
            self.fl_map & (u32::MAX << (f + 1))
        };
        if fl == 0 {
            return None;
        }
        let f = fl.trailing_zeros() as usize;
        Some((f, self.sl_map[f].trailing_zeros() as usize))
    }

    /// Allocates `n ≥ 1` granules whose bus address is aligned to `align_g` (a power of two)
    /// granules. Returns the node index and the start granule, or `None`.
    pub(crate) fn alloc(&mut self, n: u64, align_g: u64) -> Option<(u32, u32)> {
        if n == 0 || n > self.free as u64 {
            return None;
        }
        // Worst-case need: a block this large fits whatever its alignment.
        let worst = n.checked_add(align_g - 1)?;
        // 1. The first block of the first class whose blocks are all large enough.
        let (fw, sw) = if worst <= MAX_GRANULES {
            class_at_least(worst)
        } else {
            (FL, 0)
        };
        let found = match self.find_class(fw, sw) {
            Some((f, s)) => self.heads[f][s],
            // 2. Near exhaustion: every block of the classes in between, so that an allocation
            //    fails only if no free block can hold it. (Smaller classes hold only blocks < n.)
            None => self.scan_classes(class_of(n), (fw, sw), n, align_g)?,
        };
        // The allocation takes the top of the block: the rest of the block stays where it is
        // (often in the same size class, so no list operation at all).
        let at = self.place(found, n, align_g)?;
        let n = n as u32;
        let Node { start, size, .. } = self.nodes[found as usize];
        let front = at - start;
        let after = start + size - (at + n);
        let a = if front == 0 {
            self.remove_free(found);
            self.nodes[found as usize].size = n;
            found
        } else {
            self.nodes[found as usize].size = front;
            self.refile(found);
            let a = self.new_node(at, n);
            self.link_after(found, a);
            a
        };
        if after > 0 {
            // Alignment slack above the allocation. Its right neighbour is in use (free blocks
            // are coalesced), so it stays a block of its own.
            let t = self.new_node(at + n, after);
            self.link_after(a, t);
            self.insert_free(t);
        }
        self.free -= n;
        self.allocations += 1;
        Some((a, at))
    }

    /// The first block in classes `[from, to)` that holds `n` granules aligned to `align_g`.
    fn scan_classes(
        &self,
        from: (usize, usize),
        to: (usize, usize),
        n: u64,
        align_g: u64,
    ) -> Option<u32> {
        let (mut f, mut s) = from;
        while (f, s) < to && f < FL {
            if self.sl_map[f] & (1 << s) != 0 {
                let mut i = self.heads[f][s];
                while i != NIL {
                    if self.place(i, n, align_g).is_some() {
                        return Some(i);
                    }
                    i = self.nodes[i as usize].next_free;
                }
            }
            s += 1;
            if s == SL {
                s = 0;
                f += 1;
            }
        }
        None
    }

    /// Start granule of allocated node `i`.
    #[cfg(test)]
    fn start(&self, i: u32) -> u32 {
        self.nodes[i as usize].start
    }

    /// Frees allocated node `i`, coalescing with free neighbours. Returns `false` (and changes
    /// nothing) if `i` is not an allocated block.
    pub(crate) fn free(&mut self, i: u32) -> bool {
        match self.nodes.get(i as usize) {
            Some(n) if !n.free && n.size != 0 => {}
            _ => return false,
        }
        let Node {
            start,
            size,
            prev_phys: prev,
            next_phys: next,
            ..
        } = self.nodes[i as usize];
        self.free += size;
        self.allocations -= 1;
        let prev_free = prev != NIL && self.nodes[prev as usize].free;
        let next_free = next != NIL && self.nodes[next as usize].free;
        match (prev_free, next_free) {
            (true, true) => {
                // prev absorbs this block and next
                let next_size = self.nodes[next as usize].size;
                self.remove_free(next);
                self.unlink(next);
                self.unlink(i);
                self.nodes[prev as usize].size += size + next_size;
                self.refile(prev);
            }
            (true, false) => {
                self.unlink(i);
                self.nodes[prev as usize].size += size;
                self.refile(prev);
            }
            (false, true) => {
                // next grows down over this block
                self.unlink(i);
                self.nodes[next as usize].start = start;
                self.nodes[next as usize].size += size;
                self.refile(next);
            }
            (false, false) => self.insert_free(i),
        }
        true
    }

    /// Largest free block in granules.
    pub(crate) fn largest_free(&self) -> u32 {
        if self.fl_map == 0 {
            return 0;
        }
        let f = 31 - self.fl_map.leading_zeros() as usize;
        let s = 31 - self.sl_map[f].leading_zeros() as usize;
        let mut best = 0;
        let mut i = self.heads[f][s];
        while i != NIL {
            best = best.max(self.nodes[i as usize].size);
            i = self.nodes[i as usize].next_free;
        }
        best
    }
}

// ---------------------------------------------------------------------------------------------
// Pool and buffers
// ---------------------------------------------------------------------------------------------

struct Inner<B> {
    backend: B,
    /// Offset of the managed region in the backend.
    offset: usize,
    len: usize,
    bus_addr: u64,
    shift: u32,
    policy: WidthPolicy,
    strategy: Strategy,
    state: Lock<Tlsf>,
}

/// A sub-allocator over a region of device memory. See the [module docs](self).
///
/// Cloning a pool gives another handle on the same allocator.
pub struct P2pPool<B: Backend> {
    inner: Arc<Inner<B>>,
}

impl<B: Backend> Clone for P2pPool<B> {
    fn clone(&self) -> Self {
        P2pPool {
            inner: self.inner.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for P2pPool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P2pPool")
            .field("offset", &format_args!("{:#x}", self.inner.offset))
            .field("len", &self.inner.len)
            .field("bus_addr", &format_args!("{:#x}", self.inner.bus_addr))
            .field("stats", &self.stats())
            .finish()
    }
}

impl<B: Backend> P2pPool<B> {
    /// A pool over all of `backend`, whose first byte is at bus address `bus_addr`, with the
    /// defaults of [`P2pConfig::new`].
    pub fn new(backend: B, bus_addr: u64) -> Result<Self> {
        Self::with_config(backend, P2pConfig::new(bus_addr))
    }

    /// A pool as `config` says.
    ///
    /// Errors ([`Error::InvalidArgument`] unless said otherwise): granularity not a power of two
    /// or below [`MIN_GRANULARITY`]; the range not inside the backend ([`Error::OutOfRange`]);
    /// the region start not 64-byte aligned in the backend; the bus address not aligned to the
    /// granularity; a region smaller than one granule or of more than 2^31 granules; bus
    /// address + length overflowing 64 bits ([`Error::Overflow`]). A length that is not a
    /// multiple of the granularity is rounded down.
    pub fn with_config(backend: B, config: P2pConfig) -> Result<Self> {
        let g = config.granularity;
        if !g.is_power_of_two() || g < MIN_GRANULARITY {
            return Err(Error::InvalidArgument(
                "granularity must be a power of two of at least 64 bytes",
            ));
        }
        let range = config.range.clone().unwrap_or(0..backend.size());
        let len = range
            .end
            .checked_sub(range.start)
            .ok_or(Error::InvalidArgument("range end is before its start"))?;
        if range.end > backend.size() {
            return Err(Error::OutOfRange {
                offset: range.start,
                len,
                size: backend.size(),
            });
        }
        if range.start % 64 != 0 {
            return Err(Error::InvalidArgument(
                "pool region must start 64-byte aligned in its mapping",
            ));
        }
        if config.bus_addr % g as u64 != 0 {
            return Err(Error::InvalidArgument(
                "bus address of the pool must be aligned to its granularity",
            ));
        }
        let granules = (len / g) as u64;
        if granules == 0 || granules > MAX_GRANULES {
            return Err(Error::InvalidArgument(
                "pool must hold between 1 and 2^31 granules",
            ));
        }
        let len = granules as usize * g;
        config
            .bus_addr
            .checked_add(len as u64)
            .ok_or(Error::Overflow {
                offset: config.bus_addr as usize,
                len,
            })?;
        let shift = g.trailing_zeros();
        let tlsf = Tlsf::new(granules as u32, config.bus_addr >> shift);
        Ok(P2pPool {
            inner: Arc::new(Inner {
                backend,
                offset: range.start,
                len,
                bus_addr: config.bus_addr,
                shift,
                policy: config.policy,
                strategy: config.strategy,
                state: Lock::new(tlsf),
            }),
        })
    }

    /// Allocates `size` bytes (rounded up to the granularity) whose bus address is aligned to
    /// `align` (a power of two).
    ///
    /// Errors: [`Error::InvalidArgument`] for a zero size or an alignment that is not a power of
    /// two; [`Error::Exhausted`] (with the pool's free bytes and largest free block) when no
    /// free block fits.
    #[inline]
    pub fn alloc(&self, size: usize, align: usize) -> Result<P2pBuf<B>> {
        if size == 0 || !align.is_power_of_two() {
            return Err(Self::bad_request(size));
        }
        let inner = &*self.inner;
        let shift = inner.shift;
        // granules, rounding up (shifts: a division by a run-time power of two is slow)
        let n = (size as u64 >> shift) + (size as u64 & ((1 << shift) - 1) != 0) as u64;
        let align_g = ((align as u64) >> shift).max(1);
        match inner.state.with(|t| t.alloc(n, align_g)) {
            Some((node, start)) => Ok(P2pBuf {
                pool: self.inner.clone(),
                node,
                start,
                // `Tlsf::alloc` succeeds only for n ≤ its free granules, a u32
                granules: n as u32,
            }),
            None => Err(self.exhausted(size, align)),
        }
    }

    #[cold]
    fn bad_request(size: usize) -> Error {
        if size == 0 {
            Error::InvalidArgument("allocation size must not be zero")
        } else {
            Error::InvalidArgument("alignment must be a power of two")
        }
    }

    #[cold]
    fn exhausted(&self, size: usize, align: usize) -> Error {
        let s = self.stats();
        Error::Exhausted {
            size,
            align,
            free: s.free,
            largest: s.largest_free,
        }
    }

    /// A snapshot of the pool's use.
    pub fn stats(&self) -> P2pStats {
        let shift = self.inner.shift;
        self.inner.state.with(|t| P2pStats {
            total: (t.total as usize) << shift,
            free: (t.free as usize) << shift,
            largest_free: (t.largest_free() as usize) << shift,
            allocations: t.allocations as usize,
            free_blocks: t.free_blocks as usize,
            granularity: 1 << shift,
        })
    }

    /// The backend (the mapping) the pool allocates from.
    pub fn backend(&self) -> &B {
        &self.inner.backend
    }

    /// A handle to the whole managed region (for diagnostics and initialisation; buffers are
    /// the way to use it).
    pub fn io(&self) -> IoMem<'_, [u8], B> {
        self.inner.region(self.inner.offset, self.inner.len)
    }

    /// Bus address of the start of the managed region.
    pub fn bus_addr(&self) -> u64 {
        self.inner.bus_addr
    }

    /// Bytes the pool manages.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Always `false`: a pool manages at least one granule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The allocation granularity in bytes.
    pub fn granularity(&self) -> usize {
        1 << self.inner.shift
    }

    /// Whether `[bus_addr, bus_addr + len)` lies inside this pool's region.
    pub fn contains_bus(&self, bus_addr: u64, len: u64) -> bool {
        let start = self.inner.bus_addr;
        bus_addr >= start
            && bus_addr
                .checked_add(len)
                .is_some_and(|end| end <= start + self.inner.len as u64)
    }
}

impl<B: Backend> Inner<B> {
    fn region(&self, offset: usize, len: usize) -> IoMem<'_, [u8], B> {
        let io = IoMem::new(&self.backend)
            .with_policy(self.policy)
            .with_strategy(self.strategy);
        // The pool checked its region against the backend at construction and buffers lie
        // inside the region, so the first subslice succeeds; the fallbacks avoid a panic path.
        io.subslice(offset..offset + len)
            .or_else(|_| io.subslice(0..0))
            .unwrap_or(io)
    }
}

/// An owned piece of a [`P2pPool`]: freed when dropped.
///
/// Device memory is reached only through [`P2pBuf::io`]; devices reach it at
/// [`P2pBuf::bus_addr`]. The buffer keeps its pool (and so the mapping) alive.
pub struct P2pBuf<B: Backend> {
    pool: Arc<Inner<B>>,
    /// The allocator's node for this buffer.
    node: u32,
    /// First granule and length in granules (the byte figures are computed from these and the
    /// pool's constants: a small buffer is cheap to move).
    start: u32,
    granules: u32,
}

impl<B: Backend> P2pBuf<B> {
    /// A handle to the buffer's device memory, with the pool's width policy and strategy.
    pub fn io(&self) -> IoMem<'_, [u8], B> {
        self.pool.region(self.offset(), self.len())
    }

    /// Offset of the buffer in the pool's region.
    #[inline]
    fn rel(&self) -> usize {
        (self.start as usize) << self.pool.shift
    }

    /// The bus address a device uses for the first byte of the buffer.
    #[inline]
    pub fn bus_addr(&self) -> u64 {
        self.pool.bus_addr + self.rel() as u64
    }

    /// Length in bytes (the request rounded up to the granularity).
    #[inline]
    pub fn len(&self) -> usize {
        (self.granules as usize) << self.pool.shift
    }

    /// Always `false`: allocations are at least one granule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Offset of the buffer in the pool's backend (the mapping).
    #[inline]
    pub fn offset(&self) -> usize {
        self.pool.offset + self.rel()
    }

    /// The pool this buffer came from.
    pub fn pool(&self) -> P2pPool<B> {
        P2pPool {
            inner: self.pool.clone(),
        }
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

impl<B: Backend> Drop for P2pBuf<B> {
    #[inline]
    fn drop(&mut self) {
        let node = self.node;
        let freed = self.pool.state.with(|t| t.free(node));
        // Every buffer owns exactly one allocated node until this drop.
        debug_assert!(freed, "P2pBuf freed a node that was not allocated");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Tlsf {
        fn alloc_node(&mut self, n: u64, align_g: u64) -> Option<u32> {
            self.alloc(n, align_g).map(|(i, start)| {
                assert_eq!(self.start(i), start);
                i
            })
        }
    }

    #[test]
    fn classes_round_as_documented() {
        for n in 1..5000u64 {
            let (f, s) = class_of(n);
            let (fu, su) = class_at_least(n);
            assert!((fu, su) >= (f, s));
            // every size in the round-up class is ≥ n
            let lo = if fu == 0 {
                su as u64
            } else {
                let e = fu as u32 + SL_BITS - 1;
                (1u64 << e) + ((su as u64) << (e - SL_BITS))
            };
            assert!(lo >= n, "n={n} class ({fu},{su}) starts at {lo}");
            assert_eq!(class_of(lo), (fu, su));
        }
        assert_eq!(class_of(MAX_GRANULES).0, FL - 1);
    }

    #[test]
    fn split_and_coalesce() {
        // allocations take the top of the free block they come from
        let mut t = Tlsf::new(100, 0);
        let a = t.alloc_node(10, 1).unwrap();
        let b = t.alloc_node(20, 1).unwrap();
        let c = t.alloc_node(30, 1).unwrap();
        assert_eq!((t.start(a), t.start(b), t.start(c)), (90, 70, 40));
        assert_eq!((t.free, t.free_blocks), (40, 1));
        assert!(t.free(b)); // neither neighbour free
        assert!(!t.free(b));
        assert_eq!((t.largest_free(), t.free_blocks), (40, 2));
        assert!(t.free(a)); // merges into b's block (prev free)
        assert_eq!((t.largest_free(), t.free_blocks), (40, 2));
        assert!(t.free(c)); // both neighbours free
        assert_eq!((t.free, t.largest_free(), t.free_blocks), (100, 100, 1));
        // next grows down over a freed block
        let x = t.alloc_node(50, 1).unwrap();
        let y = t.alloc_node(50, 1).unwrap();
        assert_eq!((t.start(x), t.start(y)), (50, 0));
        assert!(t.free(x));
        assert!(t.free(y));
        assert_eq!((t.free, t.largest_free(), t.free_blocks), (100, 100, 1));
        // aligned: base 3 granules, align 8 → highest start with (3 + start) % 8 == 0 below 60
        let mut t = Tlsf::new(64, 3);
        let x = t.alloc_node(4, 8).unwrap();
        assert_eq!(t.start(x), 53);
        assert_eq!(t.free_blocks, 2); // below it, and the 7-granule slack above it
        assert!(t.free(x));
        assert_eq!((t.free_blocks, t.largest_free()), (1, 64));
        // an alignment that only the region's first granule meets
        let mut t = Tlsf::new(64, 0);
        assert_eq!(t.alloc_node(1, 1 << 40).map(|i| t.start(i)), Some(0));
        assert!(t.alloc_node(1, 1 << 40).is_none());
    }
}
