//! The crate's one spin lock: [`RawSpinLock`], a flag taken by compare-exchange and given back
//! by a store, and [`SpinLock`], a value behind one.
//!
//! It is the test-and-test-and-set lock of Linux's `arch_spin_lock` on a single word, without
//! the queueing: taking it uncontended is one compare-exchange with acquire ordering, releasing
//! it one store with release ordering (a `std` mutex also needs an atomic swap to release, to
//! learn whether to wake a waiter). Users: `publish::IoSpinLock`, a `no_std` lock for driver
//! state, and the allocator state of `p2p::P2pPool`, held for a few dozen nanoseconds per
//! operation.
//!
//! # Ordering
//! A lock must make each critical section see the memory effects of the one before it. That is
//! one release/acquire pair per hand-over:
//! - [`RawSpinLock::unlock`] stores `false` with **release** ordering: every access of the
//!   critical section happens before the store.
//! - The compare-exchange that takes the lock succeeds only by reading a `false`, which in
//!   `locked`'s modification order is the store of the previous holder's unlock (or the lock's
//!   creation): its **acquire** ordering makes it synchronise with that store, so the previous
//!   critical section happens before everything after the lock is taken.
//! - Everything else is **relaxed**: a failed compare-exchange takes nothing and grants no
//!   access, and the plain loads a waiter spins on only decide when to try again; the
//!   compare-exchange that then succeeds does the acquiring.
//!
//! No sequentially consistent ordering is needed: critical sections are ordered by `locked`'s
//! single modification order, and only pairwise hand-overs carry data. `tests/loom.rs` checks
//! both properties, mutual exclusion and the visibility of the protected data, under every
//! interleaving of two threads (with at most three preemptions).

use core::fmt;
use core::sync::atomic::Ordering;

use super::AtomicBool;
#[cfg(feature = "alloc")]
use super::UnsafeCell;

/// A spin lock without data: [`lock`](Self::lock), [`try_lock`](Self::try_lock) and
/// [`unlock`](Self::unlock) (unsafe: only the holder may unlock). The user keeps its data beside
/// it and argues its accesses from this invariant.
///
/// Waiters spin with plain loads (not cache-line-stealing writes) and, with `std`, yield their
/// CPU after a short spin: on a machine with fewer CPUs than threads the holder may be
/// descheduled. There is no fairness and no poisoning.
///
/// # Invariant
/// `locked` is `true` exactly while one holder owns the lock: from the acquire compare-exchange
/// `false → true` that took it to the release store of `false` in [`unlock`](Self::unlock). So
/// at most one holder exists at a time, and each holder's accesses to the data the lock protects
/// happen before the next holder's (see the [module docs](self)).
pub(crate) struct RawSpinLock {
    locked: AtomicBool,
}

/// Waits with plain loads this many times before yielding the CPU between loads.
const SPINS_BEFORE_YIELD: u32 = 100;

impl RawSpinLock {
    /// A new, unlocked lock.
    #[cfg(not(loom))]
    #[inline]
    pub(crate) const fn new() -> Self {
        RawSpinLock {
            locked: AtomicBool::new(false),
        }
    }

    /// A new, unlocked lock (loom's atomics cannot be made in a `const fn`).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        RawSpinLock {
            locked: AtomicBool::new(false),
        }
    }

    /// Takes the lock, spinning until it is free.
    #[inline(always)]
    pub(crate) fn lock(&self) {
        if !self.try_acquire() {
            self.lock_contended();
        }
    }

    /// Takes the lock if it is free; `true` if this call took it.
    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        // Strong: a single attempt must not fail spuriously. Orderings: see the module docs.
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Gives the lock back.
    ///
    /// # Safety
    /// The calling thread holds the lock: its [`lock`](Self::lock), or a [`try_lock`](Self::try_lock)
    /// that returned `true`, has not been followed by an `unlock` yet; and it makes no access to
    /// the protected data after this call.
    #[inline(always)]
    pub(crate) unsafe fn unlock(&self) {
        // Release: the critical section's accesses happen before the next holder's acquire.
        self.locked.store(false, Ordering::Release);
    }

    /// Whether the lock is held by someone right now (for diagnostics: it may change at once).
    pub(crate) fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    /// One attempt to take the lock, as part of a loop: it may fail spuriously.
    #[inline(always)]
    fn try_acquire(&self) -> bool {
        // A weak compare-exchange is the cheaper one on load-linked/store-conditional machines;
        // every caller retries. Under loom a strong one: loom would explore an unbounded run of
        // spurious failures.
        #[cfg(not(loom))]
        let r =
            self.locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed);
        #[cfg(loom)]
        let r = self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed);
        r.is_ok()
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            // Test before test-and-set: wait on a shared copy of the line, relaxed (the
            // compare-exchange below acquires).
            while self.locked.load(Ordering::Relaxed) {
                if spins < SPINS_BEFORE_YIELD {
                    spins += 1;
                    super::spin_loop();
                } else {
                    super::yield_now();
                }
            }
            if self.try_acquire() {
                return;
            }
        }
    }
}

impl Default for RawSpinLock {
    fn default() -> Self {
        RawSpinLock::new()
    }
}

impl fmt::Debug for RawSpinLock {
    /// As the flag: `true` while held.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.is_locked(), f)
    }
}

/// A value behind a [`RawSpinLock`] (for the allocator, so with `alloc`), reached only by [`with`](Self::with) (a closure, so the lock
/// is held exactly for the closure's run and no guard can be leaked or moved to another thread).
///
/// # Invariant
/// `value` is accessed only inside [`with`](Self::with), by the thread holding `raw`.
#[cfg(feature = "alloc")]
pub(crate) struct SpinLock<T> {
    raw: RawSpinLock,
    value: UnsafeCell<T>,
}

// SAFETY: by the invariant, only the thread holding `raw` reaches `value`, and each holder's
// accesses happen before the next holder's (`RawSpinLock`'s invariant): sharing the lock between
// threads only moves the use of `T` from thread to thread, which `T: Send` allows.
#[cfg(feature = "alloc")]
unsafe impl<T: Send> Sync for SpinLock<T> {}

// Like a `std` mutex, which a panicking holder poisons: the closures run under this lock (the
// allocator's O(1) operations and statistics) do not panic, so no caller can observe a half-done
// update.
#[cfg(feature = "alloc")]
impl<T> core::panic::RefUnwindSafe for SpinLock<T> {}
#[cfg(feature = "alloc")]
impl<T> core::panic::UnwindSafe for SpinLock<T> {}

#[cfg(feature = "alloc")]
impl<T> SpinLock<T> {
    /// A new, unlocked lock holding `value`.
    pub(crate) fn new(value: T) -> Self {
        SpinLock {
            raw: RawSpinLock::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with exclusive access to the value if the lock is free now (`None` if another
    /// thread holds it: nothing waits). Released as by [`with`](Self::with).
    #[inline(always)]
    pub(crate) fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        if self.raw.is_locked() || !self.raw.try_lock() {
            return None;
        }
        // SAFETY: this thread took the lock just now; `run_locked` releases it exactly once.
        Some(unsafe { self.run_locked(f) })
    }

    /// Runs `f` with exclusive access to the value. The lock is released when `f` returns or
    /// unwinds.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.raw.lock();
        // SAFETY: this thread took the lock just now; `run_locked` releases it exactly once.
        unsafe { self.run_locked(f) }
    }

    /// Runs `f` on the value, then releases the lock (also when `f` unwinds).
    ///
    /// # Safety
    /// The calling thread holds the lock, taken just before this call and not released since.
    #[inline(always)]
    unsafe fn run_locked<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        /// Holding `0`: gives it back on drop, also when `f` unwinds.
        ///
        /// # Invariant
        /// Made only right after this thread took the lock, and dropped once.
        struct Unlock<'a>(&'a RawSpinLock);
        impl Drop for Unlock<'_> {
            #[inline(always)]
            fn drop(&mut self) {
                // SAFETY: by the invariant this thread holds the lock, and the drop runs after
                // `f` and the cell access below have ended (the guard is declared before them).
                unsafe { self.0.unlock() }
            }
        }
        let _unlock = Unlock(&self.raw);
        self.value.with_mut(|value| {
            // This thread holds `raw` (the caller's contract) until `_unlock` drops after
            // `with_mut` returns, so by the invariant no other access to the value exists or
            // happens meanwhile.
            // SAFETY: as just said, and the previous holder's accesses happen before this one:
            // the reference is unique for its lifetime, which ends with `f`.
            f(unsafe { &mut *value })
        })
    }
}
