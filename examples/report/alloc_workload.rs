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
//! near 50%. The region is `Mmio` over a lazily zeroed heap allocation that no allocator ever
//! touches, so no 256 MiB of RAM is used.

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

/// CPU time of the calling thread in nanoseconds, from `/proc/thread-self/schedstat` (Linux),
/// so that other processes sharing the CPUs do not count; `None` elsewhere.
pub fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

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

/// A `P2pPool` over the region.
pub fn p2p_pool() -> P2pPool<Mmio> {
    // SAFETY: the region is a live, never-freed, 16-byte aligned heap allocation of REGION bytes
    // that nothing references; it is RAM, so uncached is a true enough description for a pool
    // that never accesses it.
    let mmio = unsafe { Mmio::new(region_ptr(), REGION, Caching::Uncached) }.expect("mmio");
    P2pPool::with_config(mmio, P2pConfig::new(BUS).granularity(GRAN)).expect("pool")
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

/// A steady-state churn at ~50% fill.
pub struct Churn<A: Alloc> {
    pub alloc: A,
    live: Vec<A::Handle>,
    used: usize,
    rng: Draws,
    pub allocs: u64,
    pub frees: u64,
    pub failures: u64,
}

impl<A: Alloc> Churn<A> {
    /// Fills `alloc` to 50% with the workload's sizes.
    pub fn new(alloc: A, seed: u64) -> Self {
        let mut c = Churn {
            alloc,
            live: Vec::new(),
            used: 0,
            rng: Draws::new(seed),
            allocs: 0,
            frees: 0,
            failures: 0,
        };
        while c.used < REGION / 2 {
            c.alloc_one();
        }
        c
    }

    #[inline]
    fn alloc_one(&mut self) -> bool {
        let size = self.rng.size();
        match self.alloc.alloc(size) {
            Some(h) => {
                self.used += A::len_of(&h);
                self.live.push(h);
                self.allocs += 1;
                true
            }
            None => {
                self.failures += 1;
                false
            }
        }
    }

    #[inline]
    fn free_one(&mut self) {
        if self.live.is_empty() {
            return;
        }
        let k = self.rng.below(self.live.len());
        let h = self.live.swap_remove(k);
        self.used -= A::len_of(&h);
        self.alloc.free(h);
        self.frees += 1;
    }

    /// One step: free a random live allocation when above 50% fill, else allocate.
    #[inline]
    pub fn step(&mut self) {
        // above half: free; below: allocate, or free if nothing fits
        if self.used > REGION / 2 || !self.alloc_one() {
            self.free_one();
        }
    }

    /// Runs until `pairs` alloc+free pairs more have been done.
    pub fn pairs(&mut self, pairs: u64) {
        let goal = self.allocs.min(self.frees) + pairs;
        while self.allocs.min(self.frees) < goal {
            self.step();
        }
    }

    /// Steps until the fill has just reached 50% (after an allocation).
    pub fn fill_to_half(&mut self) {
        while self.used < REGION / 2 {
            self.alloc_one();
        }
    }

    /// Bytes in use.
    pub fn used(&self) -> usize {
        self.used
    }
}
