//! The arenas of a pool: its region cut into a few equal, consecutive parts, each managed by a
//! [`Tlsf`] behind a spin lock of its own (on a cache line of its own), so that threads that
//! keep to different arenas share no lock and no allocator state.
//!
//! - **Homes.** A thread allocates first from its *home* arena, picked by a small index handed to
//!   threads in turn as they first allocate (so that as many threads as there are arenas get
//!   different homes); when the home has no fit, from the other arenas in turn.
//! - **Fill order.** A thread fills its home before it spills into the next arena, so one
//!   thread alone keeps the other arenas free (and their space in one piece).
//! - **Nothing is lost at the seams.** When no arena alone can hold a request, every arena is
//!   locked (in order) and a run of free space that crosses arena boundaries serves it: the
//!   free block at the end of one arena, any wholly free arenas after it, the free block at the
//!   start of the next. Such a buffer is a piece in each of those arenas (every piece after the
//!   first is its arena's first block, so a free finds them without a table). So an allocation
//!   fails only if no run of free granules of the region can hold it, exactly as with one
//!   allocator, and the statistics (taken with every arena locked) describe the region as one.
//! - **Counts of the `Arc`.** Each arena with live allocations holds one strong count of the
//!   pool's `Arc` (see `buf.rs`): taken by the allocation that makes its count of live
//!   allocations 1, given back by the release that makes it 0, both decided under its lock.
//!
//! Lock order: arenas in increasing index; the fast paths hold one lock at a time.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::tlsf::Tlsf;
use crate::sync::spin::SpinLock;

/// Most arenas a pool has.
pub(super) const MAX_ARENAS: usize = 64;
/// Fewest granules of an arena when the number of arenas is chosen by the pool.
const MIN_ARENA_GRANULES: u64 = 4096;

/// One arena: its allocator and its count of pieces that continue a buffer from a lower arena
/// (counted among the allocator's live allocations, but not buffers of their own).
pub(super) struct Arena {
    pub(super) tlsf: Tlsf,
    cont: u32,
}

impl Arena {
    /// `n` granules aligned to `align_g` from this arena's allocator, with `first()` if this
    /// makes its count of live allocations 1.
    #[inline(always)]
    fn carve(&mut self, n: u64, align_g: u64, first: &impl Fn()) -> Option<(u32, u32)> {
        let got = self.tlsf.alloc(n, align_g);
        if got.is_some() && self.tlsf.allocations == 1 {
            first();
        }
        got
    }
}

/// A cache line of its own for each arena (two: the adjacent-line prefetcher pairs them), so that
/// threads in different arenas share no line.
#[repr(align(128))]
struct Padded(SpinLock<Arena>);

/// A block handed out: the arena of its first piece, that piece's node, its first granule in
/// the region, and whether it has pieces in the arenas above.
#[derive(Clone, Copy)]
pub(super) struct Got {
    pub(super) arena: u32,
    pub(super) node: u32,
    pub(super) start: u32,
    pub(super) spans: bool,
}

/// A pool's arenas.
///
/// # Invariant
/// Arena `k` manages granules `k * span .. k * span + len(k)` of the region (its allocator's
/// granule 0 is the region's granule `k * span`); the last arena takes the remainder.
pub(super) struct Arenas {
    arenas: Box<[Padded]>,
    span: u32,
    total: u32,
}

/// The region's totals, with every arena locked at once.
pub(super) struct Totals {
    pub(super) total: u32,
    pub(super) free: u32,
    pub(super) largest: u32,
    pub(super) allocations: u32,
    pub(super) quarantined: u32,
    pub(super) free_blocks: u32,
}

impl Arenas {
    /// `total` granules whose bus address is `base_g` granules, in `count` arenas (0: one per
    /// CPU, of at least 4096 granules each), at most [`MAX_ARENAS`] and at most `total`.
    pub(super) fn new(total: u32, base_g: u64, count: usize) -> Self {
        let n = if count == 0 {
            (cpus() as u64).min(total as u64 / MIN_ARENA_GRANULES)
        } else {
            (count as u64).min(total as u64)
        }
        .clamp(1, MAX_ARENAS as u64) as u32; // CAST: at most MAX_ARENAS
        let span = total / n;
        let arenas = (0..n)
            .map(|k| {
                let len = if k == n - 1 { total - k * span } else { span };
                Padded(SpinLock::new(Arena {
                    tlsf: Tlsf::new(len, base_g + (k * span) as u64),
                    cont: 0,
                }))
            })
            .collect();
        Arenas {
            arenas,
            span,
            total,
        }
    }

    /// Number of arenas.
    pub(super) fn count(&self) -> usize {
        self.arenas.len()
    }

    /// First granule of arena `k`.
    #[inline(always)]
    fn base(&self, k: usize) -> u32 {
        // CAST: k < count ≤ total / span
        k as u32 * self.span
    }

    /// One past the last granule of arena `k`.
    fn end(&self, k: usize) -> u32 {
        if k + 1 == self.arenas.len() {
            self.total
        } else {
            self.base(k + 1)
        }
    }

    /// `n ≥ 1` granules aligned to `align_g` granules: from the calling thread's home arena, else
    /// the others in turn, else across arenas. `first()` runs, under the arena's lock, once for
    /// each arena whose count of live allocations this allocation makes 1.
    #[inline]
    pub(super) fn alloc(&self, n: u64, align_g: u64, first: &impl Fn()) -> Option<Got> {
        let count = self.arenas.len();
        let home = if count == 1 {
            0
        } else {
            thread_index() % count
        };
        let carve = |a: &mut Arena| a.carve(n, align_g, first);
        // The home arena first, without waiting when there are others: if another thread
        // holds it, this thread moves its home to the next arena (two threads handed one home
        // part this way) and tries the arenas from there, the old home last.
        let mut start = home;
        if count > 1 {
            match self.arenas[home].0.try_with(carve) {
                Some(Some((node, at))) => return Some(self.got(home, node, at)),
                Some(None) => start = (home + 1) % count,
                None => {
                    start = (home + 1) % count;
                    set_thread_index(start);
                }
            }
        }
        // Every arena in turn from `start`, waiting for its lock (the home again last: another
        // thread may have freed into it meanwhile).
        let mut k = start;
        loop {
            if let Some((node, at)) = self.arenas[k].0.with(carve) {
                return Some(self.got(k, node, at));
            }
            k = (k + 1) % count;
            if k == start {
                return if count == 1 {
                    None
                } else {
                    self.alloc_across(n, align_g, first)
                };
            }
        }
    }

    /// The block `node` at granule `at` of arena `k`.
    #[inline(always)]
    fn got(&self, k: usize, node: u32, at: u32) -> Got {
        Got {
            // CAST: k < MAX_ARENAS
            arena: k as u32,
            node,
            start: self.base(k) + at,
            spans: false,
        }
    }

    /// No arena alone had a fit when each was tried in turn: with every arena locked, a fit
    /// within one (another thread may have freed into an arena this call had tried already,
    /// and filled one it had not: at no instant was the region without a fit), else a run of
    /// free space across arena boundaries.
    #[cold]
    #[inline(never)]
    fn alloc_across(&self, n: u64, align_g: u64, first: &impl Fn()) -> Option<Got> {
        let mut out = None;
        self.with_all(&mut |all| out = self.carve_across(all, n, align_g, first));
        out
    }

    fn carve_across(
        &self,
        all: &mut [&mut Arena],
        n: u64,
        align_g: u64,
        first: &impl Fn(),
    ) -> Option<Got> {
        for (k, a) in all.iter_mut().enumerate() {
            if let Some((node, at)) = a.carve(n, align_g, first) {
                return Some(self.got(k, node, at));
            }
        }
        let count = all.len();
        let base_g = all[0].tlsf.base_g();
        for i in 0..count {
            let (_, tail) = all[i].tlsf.tail();
            if tail == 0 {
                continue;
            }
            let end_i = self.end(i) as u64;
            let mut s = end_i - tail as u64;
            s += (align_g - (base_g + s) % align_g) % align_g;
            if s >= end_i {
                continue;
            }
            // the run grows over wholly free arenas, and ends in the head of the first other
            let mut j = i;
            let mut run_end = end_i;
            while run_end < s + n && j + 1 < count {
                j += 1;
                let t = &all[j].tlsf;
                let (_, head) = t.head();
                run_end = self.base(j) as u64 + head as u64;
                if t.free != t.total {
                    break;
                }
            }
            if run_end < s + n {
                continue;
            }
            // Carve: arena i from `s` to its end (or to `s + n`), then arenas i+1..=j from their
            // start. CAST: all granule figures are below `total`, a u32.
            let end = s + n;
            let mut node = 0;
            for (k, a) in all.iter_mut().enumerate().take(j + 1).skip(i) {
                let from = (s.max(self.base(k) as u64) - self.base(k) as u64) as u32;
                let to = (end.min(self.end(k) as u64) - self.base(k) as u64) as u32;
                if to <= from {
                    break;
                }
                let got = a.tlsf.alloc_at(from, to - from);
                debug_assert!(got.is_some(), "a free run changed under the locks");
                let got = got?;
                if k == i {
                    node = got;
                } else {
                    a.cont += 1;
                }
                if a.tlsf.allocations == 1 {
                    first();
                }
            }
            return Some(Got {
                // CAST: i < MAX_ARENAS; s < total
                arena: i as u32,
                node,
                start: s as u32,
                spans: end > end_i,
            });
        }
        None
    }

    /// Frees (or `quarantine`s) the block `got` of `n` granules. Returns whether it was
    /// allocated, and how many arenas this made free of live allocations (the strong counts to
    /// give back, after this returns).
    #[inline]
    pub(super) fn release(&self, got: Got, n: u32, quarantine: bool) -> (bool, u32) {
        let k = got.arena as usize;
        if got.spans {
            return self.release_across(got, n, quarantine);
        }
        let Some(arena) = self.arenas.get(k) else {
            return (false, 0);
        };
        arena.0.with(|a| {
            let done = if quarantine {
                a.tlsf.quarantine(got.node)
            } else {
                a.tlsf.free(got.node)
            };
            (done, (done && a.tlsf.allocations == 0) as u32)
        })
    }

    /// Releases a block with pieces in several arenas, with exactly those arenas locked, in
    /// order. (Only those: the first of them is unlocked last, and until then its count of live
    /// allocations, which only its lock's holder changes, or the strong count this release
    /// took from it keeps the pool alive. A lock on an arena outside the block would have no
    /// such guarantee behind it.)
    #[cold]
    #[inline(never)]
    fn release_across(&self, got: Got, n: u32, quarantine: bool) -> (bool, u32) {
        let first = got.arena as usize;
        let end = got.start as u64 + n as u64;
        let Some(last) = (first..self.arenas.len())
            .take_while(|&k| (self.base(k) as u64) < end)
            .last()
        else {
            return (false, 0);
        };
        let mut out = (true, 0);
        self.with_range(first, last, &mut |held| {
            for (i, a) in held.iter_mut().enumerate() {
                let cont = i != 0;
                let node = if cont { a.tlsf.head().0 } else { got.node };
                let done = if quarantine {
                    a.tlsf.quarantine(node)
                } else {
                    a.tlsf.free(node)
                };
                if done && cont {
                    a.cont -= 1;
                }
                out.0 &= done;
                out.1 += (done && a.tlsf.allocations == 0) as u32;
            }
        });
        out
    }

    /// The region's totals, as one allocator's would be: free blocks that meet at an arena
    /// boundary count as one, and the largest free run may cross boundaries.
    pub(super) fn totals(&self) -> Totals {
        let mut t = Totals {
            total: 0,
            free: 0,
            largest: 0,
            allocations: 0,
            quarantined: 0,
            free_blocks: 0,
        };
        self.with_all(&mut |all| {
            let mut run = 0u32;
            let mut prev_tail = 0u32;
            for a in all.iter() {
                let x = &a.tlsf;
                t.total += x.total;
                t.free += x.free;
                t.quarantined += x.quarantined;
                t.allocations += x.allocations - a.cont;
                t.free_blocks += x.free_blocks;
                let (_, head) = x.head();
                if prev_tail != 0 && head != 0 {
                    t.free_blocks -= 1;
                }
                if x.free == x.total {
                    run += x.total;
                } else {
                    t.largest = t.largest.max(run + head).max(x.largest_free());
                    run = x.tail().1;
                }
                prev_tail = x.tail().1;
            }
            t.largest = t.largest.max(run);
        });
        t
    }

    /// Runs `f` with every arena locked, in order.
    fn with_all(&self, f: &mut dyn FnMut(&mut [&mut Arena])) {
        self.with_range(0, self.arenas.len() - 1, f)
    }

    /// Runs `f` with arenas `first..=last` locked, in order.
    fn with_range(&self, first: usize, last: usize, f: &mut dyn FnMut(&mut [&mut Arena])) {
        fn go(locks: &[Padded], held: &mut Vec<&mut Arena>, f: &mut dyn FnMut(&mut [&mut Arena])) {
            match locks.split_first() {
                None => f(held),
                Some((first, rest)) => first.0.with(|a| {
                    let mut more: Vec<&mut Arena> = held.iter_mut().map(|x| &mut **x).collect();
                    more.push(a);
                    go(rest, &mut more, f)
                }),
            }
        }
        let locks = &self.arenas[first..=last];
        go(locks, &mut Vec::with_capacity(locks.len()), f)
    }
}

/// CPUs the process may run on (1 without `std`, and under loom).
fn cpus() -> usize {
    #[cfg(all(feature = "std", not(loom)))]
    {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
    #[cfg(any(not(feature = "std"), loom))]
    {
        1
    }
}

/// Moves the calling thread's [`thread_index`] to `v` (a hint, as the index is).
#[inline(always)]
fn set_thread_index(v: usize) {
    #[cfg(all(feature = "std", not(loom)))]
    {
        let _ = INDEX.try_with(|i| i.set(v & (usize::MAX >> 1)));
    }
    #[cfg(any(not(feature = "std"), loom))]
    {
        let _ = v;
    }
}

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    /// The calling thread's index, `usize::MAX` until its first allocation.
    static INDEX: core::cell::Cell<usize> = const { core::cell::Cell::new(usize::MAX) };
}

/// A small number for each thread, handed out in turn as threads first allocate (and moved
/// when a thread finds its home arena held by another); 0 without `std` and under loom. Only a
/// hint: any value is correct, distinct ones are faster.
#[inline(always)]
fn thread_index() -> usize {
    #[cfg(all(feature = "std", not(loom)))]
    {
        use core::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        INDEX
            .try_with(|i| {
                let mut v = i.get();
                if v == usize::MAX {
                    // Relaxed: the value is a hint and orders nothing.
                    v = NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
                    i.set(v);
                }
                v
            })
            .unwrap_or(0)
    }
    #[cfg(any(not(feature = "std"), loom))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search with every arena locked also looks inside each arena: a thread that found no
    /// fit arena by arena may have seen a hole freed behind it (in an arena it had tried) while
    /// the one ahead filled. Here arena 0's only free run is in its middle, arena 1 is full.
    #[test]
    fn the_search_under_every_lock_finds_a_hole_inside_an_arena() {
        let arenas = Arenas::new(32, 0, 2);
        let blocks: Vec<(u32, u32)> = arenas.arenas[0]
            .0
            .with(|a| (0..4).map(|_| a.tlsf.alloc(4, 1).unwrap()).collect());
        arenas.arenas[1].0.with(|a| a.tlsf.alloc(16, 1).unwrap());
        // Free a block that is neither the arena's first nor its last.
        let &(node, at) = blocks.iter().find(|b| b.1 == 4).unwrap();
        assert!(arenas.arenas[0].0.with(|a| a.tlsf.free(node)));
        let got = arenas
            .alloc_across(4, 1, &|| ())
            .expect("the hole at granules 4..8 fits");
        assert_eq!((got.arena, got.start, got.spans), (0, at, false));
        assert!(arenas.alloc_across(1, 1, &|| ()).is_none(), "now full");
    }
}
