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
//!   A request is served from the class it falls in when one of that class's first two
//!   blocks fits (the smaller, then the higher), else from the first class whose every block
//!   fits ("good fit": at most 1/16 larger than best fit), so that a block close to the
//!   request's size is not passed over for a cut from a larger one. Only when both fail are
//!   the blocks of the classes in between
//!   examined one by one, so an allocation fails only if no free block can hold it. The
//!   allocation takes the top of the chosen block and a freed block merges into a free
//!   neighbour in place, so the surviving free block changes lists only when its size class
//!   changes. Blocks are 24-byte nodes in an arena (indices, not pointers); free lists are
//!   circular with a head node per class, and an edge node stands for the region's ends, so
//!   list and neighbour updates need no end-of-list tests.
//! - **Granularity.** Sizes are rounded up to the pool's granularity (a power of two ≥ 64 bytes,
//!   4 KiB by default) and to nothing more: no power-of-two rounding.
//! - **Alignment** is of the **bus address**, which is what a device checks (PRP entries, queue
//!   bases). The bus address of the region must itself be aligned to the granularity, so any
//!   alignment up to the granularity costs nothing; larger alignments are served by carving the
//!   front of a block off as a free block.
//! - **Ownership.** The pool is a cheap handle on shared state (`Arc`): it owns the backend `B`
//!   (the mapping), and every [`P2pBuf`] keeps that state alive, so a buffer cannot outlive its
//!   mapping. The live buffers of a pool hold one reference count between them (taken by the
//!   first, given back by the last, under the allocator's lock), so an allocation costs no
//!   reference counting of its own. A [`P2pBuf`] is not `Clone` and is freed only by its own drop, so a double free
//!   cannot be written: there is no API that frees by offset or handle.
//! - **Threads.** `P2pPool<B>` and `P2pBuf<B>` are `Send + Sync` when `B` is; the allocator
//!   state is behind the crate's spin lock, the one [`IoSpinLock`](crate::publish::IoSpinLock)
//!   is built on (a compare-exchange to take, a release store to give back; with `std`, a
//!   waiter yields its CPU after a short spin).
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

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::ops::Range;
use core::ptr::NonNull;

use crate::backend::Backend;
use crate::copy::WidthPolicy;
use crate::error::{Error, Result};
use crate::iomem::IoMem;
use crate::order::Strategy;
use crate::sync::spin::SpinLock;
use crate::sync::Arc;

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
// TLSF over granule indices
// ---------------------------------------------------------------------------------------------

/// "No node": the end of the spare list, and the `next_free` of a node that is not free.
const NONE: u32 = u32::MAX;
const SL_BITS: u32 = 4;
const SL: usize = 1 << SL_BITS;
/// First-level classes: 0 holds sizes 1..16 exactly, then one class per power of two up to 2^31.
const FL: usize = 32 - SL_BITS as usize + 1;
/// Size classes, numbered `fl * SL + sl`: every `u32` size has one below this.
const CLASSES: usize = FL * SL;
/// The node that stands for "outside the region" as the physical neighbour of the first and
/// last blocks: never free, so coalescing needs no test for the region's ends. Nodes
/// `0..CLASSES` are the heads of the free lists, one per class.
const EDGE: u32 = CLASSES as u32;
/// The first node that can be a block.
const FIRST_BLOCK: u32 = EDGE + 1;
/// The largest number of granules a pool may have.
const MAX_GRANULES: u64 = 1 << 31;
/// How many blocks of the class a request falls in an allocation examines before it takes
/// a block of the next class up (see [`Tlsf::alloc`]).
const EXACT_PROBES: u32 = 2;

/// A block of the region, or a free-list head, or the region edge. 24 bytes.
///
/// Free blocks are on circular doubly linked lists, one per size class, whose head is node
/// `class`; so linking and unlinking never test for the end of a list.
#[derive(Clone, Copy)]
struct Node {
    start: u32,
    size: u32,
    /// Physical neighbours ([`EDGE`] at the ends). A spare node's `prev_phys` links the spare
    /// list.
    prev_phys: u32,
    next_phys: u32,
    /// Free-list neighbours while free; `next_free` is [`NONE`] while not free.
    prev_free: u32,
    next_free: u32,
}

impl Node {
    /// An allocated block (not on a free list).
    const fn used(start: u32, size: u32) -> Self {
        Node {
            start,
            size,
            prev_phys: EDGE,
            next_phys: EDGE,
            prev_free: NONE,
            next_free: NONE,
        }
    }
    #[inline(always)]
    fn is_free(&self) -> bool {
        self.next_free != NONE
    }
}

/// Size class of `n ≥ 1` granules, rounding down: `n` exactly below 16, else the power of two
/// below `n` and the next [`SL_BITS`] bits of `n`. (Branch-free: with `e = msb(n | 16) - 4`,
/// the class is `16·e + (n >> e)` for every `n`.)
#[inline(always)]
fn class_of(n: u32) -> usize {
    let e = 27 - (n | SL as u32).leading_zeros();
    (e as usize) * SL + (n >> e) as usize
}

/// The smallest class whose every block holds at least `n ≥ 1` granules (rounding up); may be
/// `CLASSES` or more when no class is large enough.
#[inline(always)]
fn class_at_least(n: u64) -> usize {
    let e = 59 - (n | SL as u64).leading_zeros();
    let up = n + (1 << e) - 1;
    let e = 59 - (up | SL as u64).leading_zeros();
    (e as usize) * SL + (up >> e) as usize
}

/// The allocator proper, in granule units. Pure bookkeeping: it never touches device memory.
pub(crate) struct Tlsf {
    /// Free-list heads (`0..CLASSES`), the [`EDGE`], then blocks and spare nodes.
    nodes: Vec<Node>,
    /// First spare node ([`NONE`] if none), linked through `prev_phys`.
    spare: u32,
    fl_map: u32,
    /// Bit `sl` of `sl_map[fl]`: class `fl * SL + sl` has free blocks. (32 entries, so that
    /// any index masked with 31 is in bounds.)
    sl_map: [u32; 32],
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
        let mut nodes = Vec::with_capacity(FIRST_BLOCK as usize + 64);
        // empty lists: each head is its own neighbour both ways
        nodes.extend((0..CLASSES as u32).map(|c| Node {
            prev_free: c,
            next_free: c,
            ..Node::used(0, 0)
        }));
        nodes.push(Node::used(0, 0)); // EDGE
        let mut t = Tlsf {
            nodes,
            spare: NONE,
            fl_map: 0,
            sl_map: [0; 32],
            base_g,
            total,
            free: total,
            allocations: 0,
            free_blocks: 0,
        };
        let n = t.new_node(0, total);
        t.insert_free(n);
        t
    }

    #[inline(always)]
    fn new_node(&mut self, start: u32, size: u32) -> u32 {
        let node = Node::used(start, size);
        if self.spare != NONE {
            let i = self.spare;
            self.spare = self.nodes[i as usize].prev_phys;
            self.nodes[i as usize] = node;
            i
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        }
    }

    /// Puts free block `i` at the head of its class's list.
    #[inline(always)]
    fn insert_free(&mut self, i: u32) {
        let c = class_of(self.nodes[i as usize].size);
        let head = self.nodes[c].next_free;
        self.nodes[i as usize].prev_free = c as u32;
        self.nodes[i as usize].next_free = head;
        self.nodes[head as usize].prev_free = i;
        self.nodes[c].next_free = i;
        let (f, s) = (c / SL, c % SL);
        self.fl_map |= 1 << f;
        self.sl_map[f & 31] |= 1 << s;
        self.free_blocks += 1;
    }

    /// Takes free block `i` off its list.
    #[inline(always)]
    fn remove_free(&mut self, i: u32) {
        let Node {
            prev_free: p,
            next_free: q,
            ..
        } = self.nodes[i as usize];
        self.nodes[p as usize].next_free = q;
        self.nodes[q as usize].prev_free = p;
        self.nodes[i as usize].next_free = NONE;
        self.free_blocks -= 1;
        // The list is now empty iff both neighbours are its head, node `p = class`: then clear
        // the class's bit (and the first level's if it was the last). Branch-free: otherwise
        // `empty` is 0 and an arbitrary `sl_map` word is left as it was (its first-level bit is
        // already clear if it is 0).
        let empty = (p == q) as u32;
        let f = (p as usize / SL) & 31;
        self.sl_map[f] &= !(empty << (p as usize % SL));
        self.fl_map &= !(((self.sl_map[f] == 0) as u32) << f);
    }

    /// Re-files free block `i`, which had `old` granules, after its size changed, if its size
    /// class changed.
    #[inline(always)]
    fn refile(&mut self, i: u32, old: u32) {
        if class_of(old) != class_of(self.nodes[i as usize].size) {
            self.remove_free(i);
            self.insert_free(i);
        }
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

    /// Links node `j` into the physical order right after `i`.
    #[inline(always)]
    fn link_after(&mut self, i: u32, j: u32) {
        let next = self.nodes[i as usize].next_phys;
        self.nodes[j as usize].prev_phys = i;
        self.nodes[j as usize].next_phys = next;
        self.nodes[next as usize].prev_phys = j;
        self.nodes[i as usize].next_phys = j;
    }

    /// Unlinks node `j` (not free) from the physical order and makes it spare.
    #[inline(always)]
    fn unlink(&mut self, j: u32) {
        let Node {
            prev_phys,
            next_phys,
            ..
        } = self.nodes[j as usize];
        self.nodes[prev_phys as usize].next_phys = next_phys;
        self.nodes[next_phys as usize].prev_phys = prev_phys;
        let n = &mut self.nodes[j as usize];
        n.size = 0;
        n.prev_phys = self.spare;
        self.spare = j;
    }

    /// First non-empty class at or above `c`.
    #[inline(always)]
    fn find_class(&self, c: usize) -> Option<usize> {
        let (f, s) = (c / SL, c % SL);
        if f >= FL {
            return None;
        }
        let sl = self.sl_map[f] & (u32::MAX << s);
        if sl != 0 {
            return Some(f * SL + sl.trailing_zeros() as usize);
        }
        // f + 1 ≤ FL < 32
        let fl = self.fl_map & (u32::MAX << (f + 1));
        if fl == 0 {
            return None;
        }
        let f = fl.trailing_zeros() as usize;
        Some(f * SL + self.sl_map[f & 31].trailing_zeros() as usize)
    }

    /// Allocates `n ≥ 1` granules whose bus address is aligned to `align_g` (a power of two)
    /// granules. Returns the node index and the start granule, or `None`.
    #[inline]
    pub(crate) fn alloc(&mut self, n: u64, align_g: u64) -> Option<(u32, u32)> {
        if n == 0 || n > self.free as u64 {
            return None;
        }
        // Worst-case need: a block this large fits whatever its alignment.
        let worst = n.checked_add(align_g - 1)?;
        // The class `worst` falls in holds blocks both smaller and larger than it; the first
        // class above it holds only blocks large enough.
        let (ce, cw) = if worst < MAX_GRANULES {
            (class_of(worst as u32), class_at_least(worst))
        } else {
            (CLASSES, CLASSES)
        };
        // 1. The snuggest of the first few blocks of the class `worst` falls in, if one fits:
        //    a block no more than 1/16 larger than the request is not cut from a larger one.
        // 2. The first block of the first class whose blocks are all large enough.
        // 3. Near exhaustion: every block of the classes in between, so that an allocation
        //    fails only if no free block can hold it. (Smaller classes hold only blocks < n.)
        let exact = if ce < cw && self.sl_map[(ce / SL) & 31] & (1 << (ce % SL)) != 0 {
            self.snuggest(ce, n, align_g)
        } else {
            None
        };
        let found = match exact {
            Some(i) => i,
            None => match self.find_class(cw) {
                Some(c) => self.nodes[c].next_free,
                None => self.scan_classes(class_of(n as u32), cw, n, align_g)?,
            },
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
            self.refile(found, size);
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

    /// The smallest of the first [`EXACT_PROBES`] blocks of class `c` that holds `n` granules
    /// aligned to `align_g`, the highest of those of that size (an exact fit ends the search).
    #[inline(always)]
    fn snuggest(&self, c: usize, n: u64, align_g: u64) -> Option<u32> {
        let mut i = self.nodes[c].next_free;
        let mut best = NONE;
        let mut best_key = u64::MAX;
        let mut k = 0;
        while i != c as u32 && k < EXACT_PROBES {
            let node = &self.nodes[i as usize];
            // smaller first, then higher
            let key = ((node.size as u64) << 32) | (u32::MAX - node.start) as u64;
            if key < best_key && self.place(i, n, align_g).is_some() {
                best = i;
                best_key = key;
                if node.size as u64 == n {
                    break;
                }
            }
            i = node.next_free;
            k += 1;
        }
        (best != NONE).then_some(best)
    }

    /// The first block in classes `[from, to)` that holds `n` granules aligned to `align_g`.
    fn scan_classes(&self, from: usize, to: usize, n: u64, align_g: u64) -> Option<u32> {
        for c in from..to.min(CLASSES) {
            let mut i = self.nodes[c].next_free;
            while i != c as u32 {
                if self.place(i, n, align_g).is_some() {
                    return Some(i);
                }
                i = self.nodes[i as usize].next_free;
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
    #[inline]
    pub(crate) fn free(&mut self, i: u32) -> bool {
        let Some(&node) = self.nodes.get(i as usize) else {
            return false;
        };
        if i < FIRST_BLOCK || node.is_free() || node.size == 0 {
            return false;
        }
        let Node {
            start,
            size,
            prev_phys: prev,
            next_phys: next,
            ..
        } = node;
        self.free += size;
        self.allocations -= 1;
        // The edge is never free: no test for the region's ends.
        let prev_free = self.nodes[prev as usize].is_free();
        let next_free = self.nodes[next as usize].is_free();
        match (prev_free, next_free) {
            (true, true) => {
                // prev absorbs this block and next
                let next_size = self.nodes[next as usize].size;
                self.remove_free(next);
                self.unlink(next);
                self.unlink(i);
                let old = self.nodes[prev as usize].size;
                self.nodes[prev as usize].size = old + size + next_size;
                self.refile(prev, old);
            }
            (true, false) => {
                self.unlink(i);
                let old = self.nodes[prev as usize].size;
                self.nodes[prev as usize].size = old + size;
                self.refile(prev, old);
            }
            (false, true) => {
                // next grows down over this block
                self.unlink(i);
                let old = self.nodes[next as usize].size;
                self.nodes[next as usize].start = start;
                self.nodes[next as usize].size = old + size;
                self.refile(next, old);
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
        let s = 31 - self.sl_map[f & 31].leading_zeros() as usize;
        let c = f * SL + s;
        let mut best = 0;
        let mut i = self.nodes[c].next_free;
        while i != c as u32 {
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
    state: SpinLock<Tlsf>,
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
                state: SpinLock::new(tlsf),
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
        let got = inner.state.with(|t| {
            let got = t.alloc(n, align_g);
            if got.is_some() && t.allocations == 1 {
                // The first live buffer: take the buffers' strong count (see `P2pBuf::pool`).
                core::mem::forget(Arc::clone(&self.inner));
            }
            got
        });
        match got {
            Some((node, start)) => Ok(P2pBuf {
                // SAFETY: `Arc::as_ptr` points into the `Arc`'s allocation: not null. (The
                // pointer comes from the `Arc`, not from `&Inner`, so that it may be given back
                // to `Arc` functions.)
                pool: unsafe { NonNull::new_unchecked(Arc::as_ptr(&self.inner).cast_mut()) },
                slot: node as u64 | (start as u64) << 32,
                granules: n,
                _owns: PhantomData,
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
    /// A handle to the whole backend, with the pool's width policy and strategy.
    #[inline]
    fn handle(&self) -> IoMem<'_, [u8], B> {
        IoMem::new(&self.backend)
            .with_policy(self.policy)
            .with_strategy(self.strategy)
    }

    /// The `len` bytes at `offset` of the backend, exactly: [`Error::Overflow`] if `offset + len`
    /// overflows, [`Error::OutOfRange`] if the range is not inside the backend.
    #[inline]
    pub(super) fn try_region(&self, offset: usize, len: usize) -> Result<IoMem<'_, [u8], B>> {
        let end = offset
            .checked_add(len)
            .ok_or(Error::Overflow { offset, len })?;
        self.handle().subslice(offset..end)
    }

    /// The `len` bytes at `offset` of the backend, for a range the invariant puts inside it (the
    /// managed region, or a buffer's piece of it). Were the range outside the backend after all,
    /// an empty handle: never more than was asked for.
    #[inline]
    pub(super) fn region(&self, offset: usize, len: usize) -> IoMem<'_, [u8], B> {
        match self.try_region(offset, len) {
            Ok(io) => io,
            Err(_) => self.empty(),
        }
    }

    /// An empty handle at the start of the backend.
    #[cold]
    #[inline(never)]
    fn empty(&self) -> IoMem<'_, [u8], B> {
        // PANIC: `subslice(0..0)` checks `0 + 0 <= len`, which holds for every handle.
        match self.handle().subslice(0..0) {
            Ok(io) => io,
            Err(_) => unreachable!("an empty range at offset 0 is inside every handle"),
        }
    }
}

/// An owned piece of a [`P2pPool`]: freed when dropped.
///
/// Device memory is reached only through [`P2pBuf::io`]; devices reach it at
/// [`P2pBuf::bus_addr`]. The buffer keeps its pool (and so the mapping) alive.
pub struct P2pBuf<B: Backend> {
    /// The pool's shared state: [`Arc::as_ptr`] of the pool's `Arc`. The live buffers of a pool
    /// hold **one** strong count of that `Arc` between them, taken by the allocation that makes
    /// the allocator's count of live allocations 1 and given back by the drop that makes it 0
    /// (both decided under the lock), so a buffer costs no reference counting of its own.
    pool: NonNull<Inner<B>>,
    /// The allocator's node for this buffer (low 32 bits) and its first granule (high 32 bits).
    /// The byte figures are computed from these, `granules` and the pool's constants, so a
    /// buffer is three words, cheap to move. (Whole words: a buffer is often built and then
    /// moved through the stack at once, and a word-sized load of two separately stored halves
    /// would wait for both stores to reach the cache.)
    slot: u64,
    /// Length in granules.
    granules: u64,
    /// Owns (a share of) an `Arc<Inner<B>>`: the same auto traits and drop check as one.
    _owns: PhantomData<Arc<Inner<B>>>,
}

// SAFETY: a buffer gives access to its pool's `Inner` exactly as an `Arc<Inner<B>>` would: shared
// references from any thread, and the last drop (from any thread) may drop the `Inner`. An
// `Arc<Inner<B>>` is `Send` and `Sync` when `Inner<B>` is `Send + Sync`, which holds when `B` is
// (the allocator state is behind a `SpinLock`, which is `Sync`; the other fields are plain data).
unsafe impl<B: Backend + Send + Sync> Send for P2pBuf<B> {}
// SAFETY: as for `Send` above; `&P2pBuf` only reads the buffer's own fields and shares `Inner`.
unsafe impl<B: Backend + Send + Sync> Sync for P2pBuf<B> {}

impl<B: Backend> P2pBuf<B> {
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

    /// The bus address a device uses for the first byte of the buffer.
    #[inline]
    pub fn bus_addr(&self) -> u64 {
        self.inner().bus_addr + self.rel() as u64
    }

    /// Length in bytes (the request rounded up to the granularity).
    #[inline]
    pub fn len(&self) -> usize {
        (self.granules as usize) << self.inner().shift
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

impl<B: Backend> Drop for P2pBuf<B> {
    #[inline]
    fn drop(&mut self) {
        let node = self.slot as u32;
        let (freed, last) = self.inner().state.with(|t| {
            let freed = t.free(node);
            (freed, freed && t.allocations == 0)
        });
        // Every buffer owns exactly one allocated node until this drop.
        debug_assert!(freed, "P2pBuf freed a node that was not allocated");
        if last {
            // This drop made the pool's count of live allocations 0, so the buffers' strong
            // count (taken when the count became 1) is this thread's to give back; until then
            // the `Inner` is alive. (If another thread meanwhile made the count 1 again, it took
            // a strong count of its own.)
            // SAFETY: `pool` is `Arc::as_ptr` of that `Arc` (the pointer `Arc::into_raw` returns)
            // and we own one strong count, as above; nothing of `Inner` is used after this.
            unsafe { Arc::decrement_strong_count(self.pool.as_ptr().cast_const()) }
        }
        // Otherwise another buffer is live and keeps the `Inner` alive past the release of the
        // lock above, the last access to it here (as in `Arc`'s own drop, the memory may be freed
        // by another thread as soon as that atomic store is done).
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

    #[cfg(feature = "std")]
    static_assertions::assert_impl_all!(P2pPool<crate::backend::MockIo>: Send, Sync, Clone, std::panic::UnwindSafe, std::panic::RefUnwindSafe);
    #[cfg(feature = "std")]
    static_assertions::assert_impl_all!(P2pBuf<crate::backend::MockIo>: Send, Sync, std::panic::UnwindSafe, std::panic::RefUnwindSafe);

    #[test]
    fn classes_round_as_documented() {
        // the branch-free class equals the two-level definition
        let two_level = |n: u64| {
            if n < SL as u64 {
                n as usize
            } else {
                let f = 63 - n.leading_zeros();
                let sl = (n >> (f - SL_BITS)) as usize - SL;
                (f - SL_BITS + 1) as usize * SL + sl
            }
        };
        let samples = (1..5000u64)
            .chain((4..32).flat_map(|b| [(1u64 << b) - 1, 1 << b, (1 << b) + 1, 3 << (b - 1)]))
            .chain([u32::MAX as u64]);
        for n in samples {
            let c = class_of(n as u32);
            assert_eq!(c, two_level(n), "n={n}");
            assert!(c < CLASSES);
            let cu = class_at_least(n);
            assert!(cu >= c);
            // every size in the round-up class is ≥ n, and the class below has smaller sizes
            let lo = if cu < SL {
                cu as u64
            } else {
                let e = (cu / SL) as u32 + SL_BITS - 1;
                (1u64 << e) + (((cu % SL) as u64) << (e - SL_BITS))
            };
            assert!(lo >= n, "n={n} class {cu} starts at {lo}");
            if lo < 1 << 32 {
                assert_eq!(class_of(lo as u32), cu);
            }
            assert!(cu == c || cu == c + 1, "n={n}");
        }
        assert_eq!(class_of(MAX_GRANULES as u32) / SL, FL - 1);
        assert_eq!(class_at_least(MAX_GRANULES), class_of(MAX_GRANULES as u32));
        assert!(class_at_least(u32::MAX as u64 + 1) >= CLASSES);
    }

    #[test]
    fn a_region_outside_the_mapping_is_never_wider() {
        use crate::backend::MockIo;
        let size = 16 * 4096;
        let pool = P2pPool::new(MockIo::new(size), 0).unwrap();
        let inner = &*pool.inner;
        let io = inner.region(4096, 8192);
        assert_eq!((io.offset(), io.len()), (4096, 8192));
        // past the end, overflowing `offset + len`, and straddling the end: an error, and as a
        // handle an empty one
        for (offset, len) in [
            (size, 4096),
            (usize::MAX, 2),
            (2, usize::MAX),
            (size - 4096, 8192),
        ] {
            let err = inner.try_region(offset, len).unwrap_err();
            assert!(
                matches!(err, Error::Overflow { .. } | Error::OutOfRange { .. }),
                "{offset:#x} + {len:#x}: {err:?}"
            );
            let io = inner.region(offset, len);
            assert_eq!(io.len(), 0, "{offset:#x} + {len:#x}");
        }
        assert!(matches!(
            inner.try_region(usize::MAX, 2),
            Err(Error::Overflow { .. })
        ));
    }

    #[test]
    fn buffers_share_one_count_of_the_pool() {
        use crate::backend::MockIo;
        let pool = P2pPool::new(MockIo::new(64 * 4096), 0).unwrap();
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
        let pool = P2pPool::new(MockIo::new(4 * 4096), 0).unwrap();
        assert!(pool.alloc(8 * 4096, 1).is_err());
        assert_eq!(Arc::strong_count(&pool.inner), 1);
    }

    #[cfg(feature = "std")]
    #[test]
    fn last_buffer_across_threads_frees_the_pool() {
        use crate::backend::MockIo;
        // Buffers dropped on several threads at once, the pool handle gone: whichever drop is
        // last frees the pool, and the count goes 0 → 1 → 0 many times on the way.
        for round in 0..20 {
            let pool = P2pPool::new(MockIo::new(256 * 4096), 0).unwrap();
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

    #[test]
    fn a_close_block_of_the_request_class_is_preferred() {
        // classes: 100..=103 is one, 104..=107 the next; free blocks of 103 and 200 granules
        let mut t = Tlsf::new(305, 0);
        let _a = t.alloc_node(1, 1).unwrap();
        let b = t.alloc_node(200, 1).unwrap();
        let _c = t.alloc_node(1, 1).unwrap();
        let d = t.alloc_node(103, 1).unwrap();
        assert_eq!((t.start(b), t.start(d)), (104, 0));
        assert!(t.free(d));
        assert!(t.free(b));
        assert_eq!(class_of(103), class_of(101));
        assert!(class_at_least(101) > class_of(103));
        // 101 granules: the 103-granule block of its own class, not a cut from the 200
        let x = t.alloc_node(101, 1).unwrap();
        assert_eq!(t.start(x), 2);
        assert!(t.free(x));
        // 104 granules fit no block of their class: the 200-granule block
        let y = t.alloc_node(104, 1).unwrap();
        assert_eq!(t.start(y), 200);
        // of two fitting blocks of the class, the smaller (the exact fit)
        let mut t = Tlsf::new(1000, 0);
        let nodes: Vec<u32> = [1, 102, 1, 103, 1]
            .iter()
            .map(|&n| t.alloc_node(n, 1).unwrap())
            .collect();
        let exact = t.start(nodes[1]);
        assert!(t.free(nodes[1]));
        assert!(t.free(nodes[3])); // first on the list
        let z = t.alloc_node(102, 1).unwrap();
        assert_eq!(t.start(z), exact);
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
