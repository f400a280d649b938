//! The allocator workload shared by `benches/alloc.rs` and the report's `alloc` section, and
//! the allocators a driver author would compare `P2pPool` with:
//!
//! - [`Bitmap`]: a genalloc-style bitmap first-fit (Linux `lib/genalloc.c` with
//!   `gen_pool_first_fit`): one bit per granule, an allocation scans from the start for the first
//!   run of clear bits long enough, a free clears the bits (the caller passes the size back);
//! - [`BTreeFit`]: best fit over free blocks kept in a `BTreeMap` by offset (coalescing) and a
//!   `BTreeSet` by (size, offset) (search).
//!
//! The workload: a 256 MiB region with 4 KiB granularity; sizes of 4 KiB to 1 MiB, half powers
//! of two and half arbitrary multiples of 4 KiB; random allocations and frees holding the fill
//! near 50% (each step allocates one buffer and frees a random live one, see [`Churn`]). The
//! sizes and random picks are drawn ahead of the timed loop, so the loop costs every allocator
//! the same few nanoseconds. The region is `Mmio` over a lazily zeroed heap allocation that no
//! allocator ever touches, so no 256 MiB of RAM is used.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};

use iomem::p2p::{P2pBuf, P2pConfig, P2pPool};
use iomem::{Caching, Mmio};

/// Region size.
pub const REGION: usize = 256 << 20;
/// Granularity.
pub const GRAN: usize = 4096;
/// Bus address of the region (any granularity-aligned value).
pub const BUS: u64 = 0x1_0000_0000;

/// xorshift64* — deterministic, fast, good enough for workload choices.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
    /// 4 KiB–1 MiB: half powers of two, half arbitrary multiples of 4 KiB.
    pub fn size(&mut self) -> usize {
        if self.next() & 1 == 0 {
            GRAN << self.below(9)
        } else {
            GRAN * (1 + self.below(256))
        }
    }
}

pub use crate::ram::thread_cpu_ns;

/// A stopwatch over the thread's CPU time where the OS tells it, else wall-clock time.
pub struct Stopwatch {
    cpu: Option<u64>,
    wall: std::time::Instant,
}

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch {
            cpu: thread_cpu_ns(),
            wall: std::time::Instant::now(),
        }
    }
    /// Seconds since `start`.
    pub fn secs(&self) -> f64 {
        match (self.cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 * 1e-9,
            _ => self.wall.elapsed().as_secs_f64(),
        }
    }
}

/// An allocator under test.
pub trait Alloc {
    type Handle;
    fn alloc(&mut self, size: usize) -> Option<Self::Handle>;
    fn free(&mut self, h: Self::Handle);
    fn len_of(h: &Self::Handle) -> usize;
    fn largest_free(&self) -> usize;
}

/// The 256 MiB region: a zeroed heap allocation made once and never touched (the kernel maps
/// its pages only on first access, which never comes; check with `/usr/bin/time -v`).
fn region_ptr() -> *mut u8 {
    static REGION_ADDR: OnceLock<usize> = OnceLock::new();
    *REGION_ADDR.get_or_init(|| {
        // Alignment 16 (what `Mmio` needs): the allocator then uses `calloc`, which maps fresh
        // zero pages without writing them; a larger alignment makes it `memset` all 256 MiB.
        let layout = std::alloc::Layout::from_size_align(REGION, 16).expect("layout");
        // SAFETY: non-zero size. Leaked on purpose: every pool's `Mmio` may point at it for the
        // rest of the process.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!p.is_null(), "no memory for the region");
        p as usize
    }) as *mut u8
}

/// A `P2pPool` over the region (as many arenas as the pool picks: one per CPU).
pub fn p2p_pool() -> P2pPool<Mmio> {
    p2p_pool_arenas(0)
}

/// A `P2pPool` over the region with `arenas` arenas (0: the pool's choice).
pub fn p2p_pool_arenas(arenas: usize) -> P2pPool<Mmio> {
    // SAFETY: the region is a live, never-freed, 16-byte aligned heap allocation of REGION bytes
    // that nothing references; it is RAM, so uncached is a true enough description for a pool
    // that never accesses it.
    let mmio = unsafe { Mmio::new(region_ptr(), REGION, Caching::Uncached) }.expect("mmio");
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    unsafe { P2pPool::with_config(mmio, P2pConfig::new(BUS).granularity(GRAN).arenas(arenas)) }
        .expect("pool")
}

impl Alloc for P2pPool<Mmio> {
    type Handle = P2pBuf<Mmio>;
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<P2pBuf<Mmio>> {
        P2pPool::alloc(self, size, GRAN).ok()
    }
    #[inline]
    fn free(&mut self, h: P2pBuf<Mmio>) {
        drop(h)
    }
    fn len_of(h: &P2pBuf<Mmio>) -> usize {
        h.len()
    }
    fn largest_free(&self) -> usize {
        self.stats().largest_free
    }
}

/// genalloc-style bitmap first-fit behind a lock (as `P2pPool` is).
pub struct Bitmap {
    state: Mutex<Vec<u64>>,
    bits: usize,
}

impl Bitmap {
    pub fn new() -> Self {
        let bits = REGION / GRAN;
        Bitmap {
            state: Mutex::new(vec![0; bits.div_ceil(64)]),
            bits,
        }
    }
}

fn test_bit(map: &[u64], i: usize) -> bool {
    map[i / 64] >> (i % 64) & 1 == 1
}

/// First clear bit at or after `i` (`bits` if none), a word at a time.
fn next_zero(map: &[u64], mut i: usize, bits: usize) -> usize {
    while i < bits {
        let w = !map[i / 64] >> (i % 64);
        if w != 0 {
            return (i + w.trailing_zeros() as usize).min(bits);
        }
        i = (i / 64 + 1) * 64;
    }
    bits
}

/// First set bit at or after `i` (`bits` if none), a word at a time.
fn next_one(map: &[u64], mut i: usize, bits: usize) -> usize {
    while i < bits {
        let w = map[i / 64] >> (i % 64);
        if w != 0 {
            return (i + w.trailing_zeros() as usize).min(bits);
        }
        i = (i / 64 + 1) * 64;
    }
    bits
}

/// Sets or clears bits `[start, start + n)`, a word at a time (Linux `bitmap_set`/`bitmap_clear`).
fn set_range(map: &mut [u64], start: usize, n: usize, on: bool) {
    let mut i = start;
    let end = start + n;
    while i < end {
        let b = i % 64;
        let take = (64 - b).min(end - i);
        let mask = if take == 64 {
            u64::MAX
        } else {
            ((1u64 << take) - 1) << b
        };
        if on {
            map[i / 64] |= mask;
        } else {
            map[i / 64] &= !mask;
        }
        i += take;
    }
}

impl Alloc for Bitmap {
    type Handle = (usize, usize);
    fn alloc(&mut self, size: usize) -> Option<(usize, usize)> {
        let n = size.div_ceil(GRAN);
        let mut map = self.state.lock().unwrap();
        let mut start = 0;
        loop {
            start = next_zero(&map, start, self.bits);
            if start + n > self.bits {
                return None;
            }
            let end = next_one(&map, start, start + n);
            if end >= start + n {
                set_range(&mut map, start, n, true);
                return Some((start, n));
            }
            start = end;
        }
    }
    fn free(&mut self, (start, n): (usize, usize)) {
        let mut map = self.state.lock().unwrap();
        debug_assert!((start..start + n).all(|i| test_bit(&map, i)));
        set_range(&mut map, start, n, false);
    }
    fn len_of(h: &(usize, usize)) -> usize {
        h.1 * GRAN
    }
    fn largest_free(&self) -> usize {
        let map = self.state.lock().unwrap();
        let (mut best, mut i) = (0, 0);
        while i < self.bits {
            let z = next_zero(&map, i, self.bits);
            let o = next_one(&map, z, self.bits);
            best = best.max(o - z);
            i = o;
        }
        best * GRAN
    }
}

/// Free blocks by offset (for coalescing) and by (size, offset) (for best-fit search).
type FreeBlocks = (BTreeMap<usize, usize>, BTreeSet<(usize, usize)>);

/// Best fit over free blocks in B-trees, behind a lock.
pub struct BTreeFit {
    state: Mutex<FreeBlocks>,
}

impl BTreeFit {
    pub fn new() -> Self {
        let n = REGION / GRAN;
        BTreeFit {
            state: Mutex::new((BTreeMap::from([(0, n)]), BTreeSet::from([(n, 0)]))),
        }
    }
}

impl Alloc for BTreeFit {
    type Handle = (usize, usize);
    fn alloc(&mut self, size: usize) -> Option<(usize, usize)> {
        let n = size.div_ceil(GRAN);
        let mut g = self.state.lock().unwrap();
        let (by_off, by_size) = &mut *g;
        let &(len, off) = by_size.range((n, 0)..).next()?;
        by_size.remove(&(len, off));
        by_off.remove(&off);
        if len > n {
            by_off.insert(off + n, len - n);
            by_size.insert((len - n, off + n));
        }
        Some((off, n))
    }
    fn free(&mut self, (mut off, mut n): (usize, usize)) {
        let mut g = self.state.lock().unwrap();
        let (by_off, by_size) = &mut *g;
        if let Some((&o, &l)) = by_off.range(..off).next_back() {
            if o + l == off {
                by_off.remove(&o);
                by_size.remove(&(l, o));
                off = o;
                n += l;
            }
        }
        if let Some(&l) = by_off.get(&(off + n)) {
            by_off.remove(&(off + n));
            by_size.remove(&(l, off + n));
            n += l;
        }
        by_off.insert(off, n);
        by_size.insert((n, off));
    }
    fn len_of(h: &(usize, usize)) -> usize {
        h.1 * GRAN
    }
    fn largest_free(&self) -> usize {
        let g = self.state.lock().unwrap();
        g.1.iter().next_back().map_or(0, |&(l, _)| l * GRAN)
    }
}

/// Random choices drawn ahead of time, so that the measured loop costs the allocator's time
/// and little else: a table of request sizes and one of random 32-bit picks, used in turn.
struct Draws {
    sizes: Vec<u32>,
    picks: Vec<u32>,
    i: usize,
    j: usize,
}

const DRAWS: usize = 1 << 16;

impl Draws {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        Draws {
            sizes: (0..DRAWS).map(|_| rng.size() as u32).collect(),
            picks: (0..DRAWS).map(|_| rng.next() as u32).collect(),
            i: 0,
            j: 0,
        }
    }
    #[inline]
    fn size(&mut self) -> usize {
        self.i = (self.i + 1) & (DRAWS - 1);
        self.sizes[self.i] as usize
    }
    #[inline]
    fn below(&mut self, n: usize) -> usize {
        self.j = (self.j + 1) & (DRAWS - 1);
        ((self.picks[self.j] as u64 * n as u64) >> 32) as usize
    }
}

/// Half the region: the fill the churn holds.
pub const HALF: usize = REGION / 2;
/// How far the churn lets the fill wander from [`HALF`] before correcting it (8 MiB, 3% of the
/// region: eight of the largest requests).
pub const BAND: usize = 8 << 20;

/// A steady-state churn at ~50% fill.
///
/// Each pair allocates a new buffer and frees a random live one, so the number of live buffers
/// stays put and the fill is a sum of that many random sizes: it wanders around 50% (a few MiB
/// either way) without a data-dependent choice between allocating and freeing on every step,
/// which would cost the loop a mispredicted branch per step and so weigh on the fastest
/// allocator most. When the fill leaves the band of ±[`BAND`] around 50%, an extra free or
/// allocation brings it back.
pub struct Churn<A: Alloc> {
    pub alloc: A,
    live: Vec<A::Handle>,
    rng: Draws,
    tally: Tally,
    /// The fill held, and how far it may wander.
    half: usize,
    band: usize,
    pub allocs: u64,
    pub frees: u64,
    pub failures: u64,
}

/// The churn's counters. `pairs` keeps them in a local so that they stay in registers: kept in
/// the struct, the compiler may update neighbouring fields with one wide load and store, which
/// then waits on the previous step's narrow stores.
#[derive(Clone, Copy, Default)]
struct Tally {
    used: usize,
    allocs: u64,
    frees: u64,
    failures: u64,
}

#[inline]
fn alloc_one<A: Alloc>(a: &mut A, live: &mut Vec<A::Handle>, rng: &mut Draws, t: &mut Tally) {
    match a.alloc(rng.size()) {
        Some(h) => {
            t.used += A::len_of(&h);
            t.allocs += 1;
            live.push(h);
        }
        None => t.failures += 1,
    }
}

#[inline]
fn free_one<A: Alloc>(a: &mut A, live: &mut Vec<A::Handle>, rng: &mut Draws, t: &mut Tally) {
    if live.is_empty() {
        return;
    }
    let h = live.swap_remove(rng.below(live.len()));
    t.used -= A::len_of(&h);
    t.frees += 1;
    a.free(h);
}

impl<A: Alloc> Churn<A> {
    /// Fills `alloc` to 50% with the workload's sizes.
    pub fn new(alloc: A, seed: u64) -> Self {
        Self::with_fill(alloc, seed, HALF, BAND)
    }

    /// Fills `alloc` to `fill` bytes more with the workload's sizes, to hold that fill
    /// within ±`band` (a churn of its own buffers: several can share an allocator).
    pub fn with_fill(alloc: A, seed: u64, fill: usize, band: usize) -> Self {
        let mut c = Churn {
            half: fill,
            band,
            alloc,
            live: Vec::with_capacity(REGION / GRAN / 64),
            rng: Draws::new(seed),
            tally: Tally::default(),
            allocs: 0,
            frees: 0,
            failures: 0,
        };
        c.fill_to_half();
        c
    }

    /// Runs until `pairs` alloc+free pairs more have been done.
    ///
    /// Each step allocates a buffer and frees a random live one, whose place in the list of live
    /// buffers the new one takes (no push and pop: the list keeps its length); before that, an
    /// extra free or allocation if the fill has left the band around 50%.
    pub fn pairs(&mut self, pairs: u64) {
        let Churn {
            alloc: a,
            live,
            rng,
            ..
        } = self;
        let mut t = self.tally;
        let (hi, lo) = (self.half + self.band, self.half.saturating_sub(self.band));
        let goal = t.allocs.min(t.frees) + pairs;
        while t.allocs.min(t.frees) < goal {
            if t.used > hi {
                free_one(a, live, rng, &mut t);
            } else if t.used < lo {
                alloc_one(a, live, rng, &mut t);
            }
            let Some(h) = a.alloc(rng.size()) else {
                t.failures += 1;
                free_one(a, live, rng, &mut t);
                continue;
            };
            t.used += A::len_of(&h);
            t.allocs += 1;
            if live.is_empty() {
                live.push(h);
                continue;
            }
            let k = rng.below(live.len());
            let old = core::mem::replace(&mut live[k], h);
            t.used -= A::len_of(&old);
            t.frees += 1;
            a.free(old);
        }
        self.set(t);
    }

    fn set(&mut self, t: Tally) {
        self.tally = t;
        (self.allocs, self.frees, self.failures) = (t.allocs, t.frees, t.failures);
    }

    /// Frees random live buffers while the fill is above its target (50%, or the `fill` of
    /// [`with_fill`](Self::with_fill)), then allocates until it has just reached it (after an
    /// allocation).
    pub fn fill_to_half(&mut self) {
        let mut t = self.tally;
        while t.used > self.half {
            free_one(&mut self.alloc, &mut self.live, &mut self.rng, &mut t);
        }
        while t.used < self.half {
            alloc_one(&mut self.alloc, &mut self.live, &mut self.rng, &mut t);
        }
        self.set(t);
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.tally.used
    }
}
