//! Model checking with loom of the crate's own concurrency, under every interleaving of two
//! threads (with at most `LOOM_MAX_PREEMPTIONS` preemptions, 3 unless set):
//!
//! - the spin lock (`src/sync/spin.rs`), through [`IoSpinLock`] and through the allocator of a
//!   [`P2pPool`], which share it: mutual exclusion, and the release/acquire hand-over that makes
//!   one critical section's writes visible to the next;
//! - the strong counts of a pool that its live buffers share (`src/p2p/buf.rs`,
//!   `src/p2p/arena.rs`): one per arena, taken by the allocation that makes the arena's count of
//!   live allocations 1, given back by the drop that makes it 0 (a buffer across arenas holds
//!   one of each), so the pool lives while a handle or a buffer does and the last one frees it.
//!
//! With `--cfg loom` the crate's atomics, cell and `Arc` are loom's (`src/sync/mod.rs`), so loom
//! sees the lock's flag, the allocator state behind it and the pool's reference count. Without
//! the cfg this file is empty. Run by `.ci/loom.sh`:
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom --target-dir target/loom`.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use iomem::backend::{MockIo, Word};
use iomem::order::{Arch, Barrier};
use iomem::p2p::P2pPool;
use iomem::publish::IoSpinLock;
use iomem::{Backend, Caching};

const G: usize = 4096;

/// `loom::model`, with at most 3 preemptions unless `LOOM_MAX_PREEMPTIONS` says otherwise.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

// ---------------------------------------------------------------------------------------------
// The spin lock
// ---------------------------------------------------------------------------------------------

/// What the lock models need of a lock: running a closure while holding it.
trait Lock: Send + Sync + 'static {
    fn new() -> Self;
    fn locked(&self, f: impl FnOnce());
    /// Runs `f` holding the lock if it is free; whether it ran.
    fn try_locked(&self, f: impl FnOnce()) -> bool;
}

impl Lock for IoSpinLock<()> {
    fn new() -> Self {
        IoSpinLock::new(())
    }
    fn locked(&self, f: impl FnOnce()) {
        let _guard = self.lock();
        f();
    }
    fn try_locked(&self, f: impl FnOnce()) -> bool {
        match self.try_lock() {
            Some(_guard) => {
                f();
                true
            }
            None => false,
        }
    }
}

/// A counter behind a lock, as loom sees it: every access to the counter is checked against the
/// accesses of other threads (concurrent, or not ordered by a happens-before edge).
struct Guarded<L> {
    lock: L,
    count: UnsafeCell<u32>,
}

// SAFETY: `count` is reached only while holding `lock` (or after the threads are joined); whether
// that excludes and orders the accesses is what the models check, and loom's cell reports it if
// not.
unsafe impl<L: Sync> Sync for Guarded<L> {}

impl<L: Lock> Guarded<L> {
    fn new() -> Self {
        Guarded {
            lock: L::new(),
            count: UnsafeCell::new(0),
        }
    }

    /// A read-modify-write of the counter, in two accesses (so a second holder in between, or a
    /// holder that does not see the previous one's write, shows).
    fn bump(&self) {
        let seen = self.count.with(|p| {
            // SAFETY: called only with the lock held; see `Guarded`'s `Sync`.
            unsafe { *p }
        });
        thread::yield_now();
        self.count.with_mut(|p| {
            // SAFETY: as above.
            unsafe { *p = seen + 1 }
        });
    }

    fn count(&self) -> u32 {
        // SAFETY: every other thread has been joined.
        self.count.with(|p| unsafe { *p })
    }
}

/// Two threads increment a counter under the lock: neither sees the other mid-update, and each
/// sees the other's finished write, so the count is 2.
fn two_holders<L: Lock>() {
    model(|| {
        let shared = Arc::new(Guarded::<L>::new());
        let other = {
            let shared = shared.clone();
            thread::spawn(move || shared.lock.locked(|| shared.bump()))
        };
        shared.lock.locked(|| shared.bump());
        other.join().unwrap();
        assert_eq!(shared.count(), 2);
    });
}

#[test]
fn spin_lock_excludes_and_hands_over_writes() {
    two_holders::<IoSpinLock<()>>();
}

#[test]
fn spin_try_lock_excludes_or_fails() {
    model(|| {
        let shared = Arc::new(Guarded::<IoSpinLock<()>>::new());
        let other = {
            let shared = shared.clone();
            thread::spawn(move || shared.lock.try_locked(|| shared.bump()))
        };
        shared.lock.locked(|| shared.bump());
        let took = other.join().unwrap();
        assert_eq!(shared.count(), 1 + took as u32);
        // free again: a try succeeds
        assert!(shared.lock.try_locked(|| shared.bump()));
    });
}

/// The spin lock with the bug the models must catch: the unlock is a relaxed store, so the next
/// holder's acquire has nothing to synchronise with.
struct RelaxedUnlock(AtomicBool);

impl Lock for RelaxedUnlock {
    fn new() -> Self {
        RelaxedUnlock(AtomicBool::new(false))
    }
    fn locked(&self, f: impl FnOnce()) {
        while self
            .0
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            loom::hint::spin_loop();
        }
        f();
        self.0.store(false, Ordering::Relaxed);
    }
    fn try_locked(&self, _: impl FnOnce()) -> bool {
        unimplemented!()
    }
}

/// The lock model has teeth: loom reports the relaxed unlock.
#[test]
#[should_panic(expected = "Causality violation")]
fn a_relaxed_unlock_is_caught() {
    two_holders::<RelaxedUnlock>();
}

// ---------------------------------------------------------------------------------------------
// The pool's shared count
// ---------------------------------------------------------------------------------------------

/// A mock mapping that counts its drops: the pool's `Inner`, which owns it, is freed when it is.
struct Counted {
    io: MockIo,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to `MockIo`, which upholds the contract.
unsafe impl Backend for Counted {
    fn size(&self) -> usize {
        self.io.size()
    }
    fn base_align(&self) -> usize {
        self.io.base_align()
    }
    fn caching(&self) -> Caching {
        self.io.caching()
    }
    fn arch(&self) -> Arch {
        self.io.arch()
    }
    unsafe fn read<W: Word>(&self, off: usize) -> W {
        // SAFETY: the caller upholds `read`'s contract, for the same region.
        unsafe { self.io.read(off) }
    }
    unsafe fn write<W: Word>(&self, off: usize, value: W) {
        // SAFETY: the caller upholds `write`'s contract, for the same region.
        unsafe { self.io.write(off, value) }
    }
    fn barrier(&self, barrier: Barrier) {
        self.io.barrier(barrier)
    }
    fn barrier_after_read(&self, barrier: Barrier, loaded: u64) {
        self.io.barrier_after_read(barrier, loaded)
    }
}

/// A pool of four granules over a mapping whose drop is counted.
fn counted_pool() -> (P2pPool<Counted>, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let backend = Counted {
        io: MockIo::new(4 * G),
        drops: drops.clone(),
    };
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    (unsafe { P2pPool::new(backend, 0) }.unwrap(), drops)
}

/// Two threads allocate and free a buffer each while one keeps a pool handle: the count of live
/// allocations goes 0 → 1 → 2 → 1 → 0 or 0 → 1 → 0 → 1 → 0, taking and giving back the buffers'
/// strong count on the way, and the pool is alive until its handle goes, then freed once. (loom's
/// `Arc` also reports a count given back twice, and at the end a count never given back.)
#[test]
fn buffers_take_and_give_back_one_count() {
    model(|| {
        let (pool, drops) = counted_pool();
        let other = {
            let pool = pool.clone();
            thread::spawn(move || drop(pool.alloc(G, 1).unwrap()))
        };
        let buf = pool.alloc(G, 1).unwrap();
        drop(buf);
        other.join().unwrap();
        assert_eq!(
            drops.load(Ordering::Relaxed),
            0,
            "freed while a handle lives"
        );
        assert_eq!(pool.stats().allocations, 0);
        drop(pool);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

/// No handle kept: each thread drops its pool handle before its buffer, so whichever buffer drop
/// comes last frees the pool, from either thread.
#[test]
fn the_last_buffer_frees_the_pool() {
    model(|| {
        let (pool, drops) = counted_pool();
        let other = {
            let pool = pool.clone();
            thread::spawn(move || {
                let buf = pool.alloc(G, 1).unwrap();
                drop(pool);
                drop(buf);
            })
        };
        let buf = pool.alloc(G, 1).unwrap();
        drop(pool);
        drop(buf);
        other.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

/// A buffer moved to another thread, which takes a handle back from it and allocates again while
/// this thread drops the pool and its own buffer.
#[test]
fn a_buffer_moved_to_another_thread_keeps_the_pool() {
    model(|| {
        let (pool, drops) = counted_pool();
        let mine = pool.alloc(G, 1).unwrap();
        let theirs = pool.alloc(G, 1).unwrap();
        let other = thread::spawn(move || {
            let pool = theirs.pool();
            drop(theirs);
            let again = pool.alloc(2 * G, 1).unwrap();
            drop(pool);
            again.len()
        });
        drop(pool);
        drop(mine);
        assert_eq!(other.join().unwrap(), 2 * G);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

// ---------------------------------------------------------------------------------------------
// Arenas: one strong count per arena with live allocations
// ---------------------------------------------------------------------------------------------

/// A pool of four granules in two arenas (granules 0-1 and 2-3) over a mapping whose drop is
/// counted.
fn counted_arenas() -> (P2pPool<Counted>, Arc<AtomicUsize>) {
    let drops = Arc::new(AtomicUsize::new(0));
    let backend = Counted {
        io: MockIo::new(4 * G),
        drops: drops.clone(),
    };
    let config = iomem::p2p::P2pConfig::new(0).arenas(2);
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    (
        unsafe { P2pPool::with_config(backend, config) }.unwrap(),
        drops,
    )
}

/// Two threads fill one arena each (whichever thread comes second spills into the other arena),
/// each drops its pool handle before its buffer: each arena takes and gives back a count of its
/// own, and whichever release is last frees the pool, once.
#[test]
fn each_arena_takes_and_gives_back_its_count() {
    model(|| {
        let (pool, drops) = counted_arenas();
        assert_eq!(pool.arenas(), 2);
        let other = {
            let pool = pool.clone();
            thread::spawn(move || {
                let buf = pool.alloc(2 * G, 1).unwrap();
                drop(pool);
                drop(buf);
            })
        };
        let buf = pool.alloc(2 * G, 1).unwrap();
        drop(pool);
        drop(buf);
        other.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

/// A buffer across both arenas (three granules) and a one-granule one on the other thread, or
/// the other way round if the small one comes first and takes the top of arena 0: the buffer
/// across arenas holds a count of each, and a release that empties both arenas gives both back.
#[test]
fn a_buffer_across_arenas_holds_both_counts() {
    model(|| {
        let (pool, drops) = counted_arenas();
        let other = {
            let pool = pool.clone();
            thread::spawn(move || {
                let small = pool.alloc(G, 1).ok();
                drop(pool);
                drop(small);
            })
        };
        let big = pool.alloc(3 * G, 1).ok();
        drop(pool);
        drop(big);
        other.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}
