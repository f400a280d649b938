//! [`IoLock`]: a lock whose release orders the MMIO writes made while holding it (`mmiowb`).
//!
//! Two CPUs take turns at a lock and each writes a doorbell inside its critical section:
//!
//! ```text
//! CPU 0                       CPU 1
//! lock(q)
//! writel(tail = 5, db)
//! unlock(q) ───────────────▶  lock(q)
//!                             writel(tail = 6, db)
//!                             unlock(q)
//! ```
//!
//! The lock orders the two critical sections in *memory*; nothing says CPU 0's MMIO write
//! reaches the device before CPU 1's. On powerpc the unlock's `lwsync` does not order
//! caching-inhibited stores, on riscv the release fence (`fence rw,w`) has no `o`; there, the
//! device could see tail 6 and then tail 5. Linux fixes this in `spin_unlock`
//! (`include/asm-generic/mmiowb.h`): `writeX()` sets a per-CPU `mmiowb_pending` flag, and the
//! unlock issues `mmiowb()` (powerpc `sync`, riscv `fence o,w`; nothing on x86 and arm64, whose
//! unlocks already order MMIO writes) only if the flag is set — so critical sections without MMIO
//! writes pay nothing.
//!
//! [`IoGuard`] (the guard of [`IoLock`], a `std` mutex, and of [`IoSpinLock`], a `no_std` spin
//! lock) plays the per-CPU flag: MMIO writes made inside the critical section go through the
//! guard ([`IoGuard::io`] hands out a [`Tracked`] handle whose writes set it, or
//! [`IoGuard::mark_written`] sets it by hand), and dropping the guard issues
//! [`Barrier::MmioUnlock`] on the backend last written — *before* the mutex is released — if and
//! only if it is set.
//!
//! Write-combining data written under the lock needs more: it may still sit in *this* CPU's
//! write-combining buffer when the next holder, on another CPU, rings a doorbell — and that
//! holder's flush drains only its own buffers. So if any tracked write went to a
//! write-combining mapping, the unlock issues [`Barrier::WcFlush`] instead, which orders
//! everything `MmioUnlock` orders on every architecture of the table (x86 `sfence` where
//! `MmioUnlock` is nothing; powerpc `sync` for both; riscv `fence ow,ow` ⊇ `fence o,w`; aarch64
//! `dsb st`). The guard is `!Send` (like the [`MutexGuard`] inside), so the critical
//! section stays on one thread; a thread moving between CPUs goes through the kernel's context
//! switch, which orders MMIO writes on every architecture here.
//!
//! What the guard cannot see, it cannot order: a write made through a plain [`IoMem`] handle held
//! in the protected state bypasses the flag. Keep the state's handles for reading, and write
//! through [`IoGuard::io`].

use core::cell::{Cell, UnsafeCell};
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
#[cfg(feature = "std")]
use std::sync::{Mutex, MutexGuard};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::backend::Backend;
use crate::order::Barrier;
use crate::publish::{Doorbell, Published};
use crate::sync::spin::RawSpinLock;
use crate::IoMem;

/// The one thing the guard needs from a backend: issuing a barrier. Object safe, so a guard can
/// remember the last backend written whatever its type.
trait Fence {
    fn fence(&self, barrier: Barrier);
}

impl<B: Backend> Fence for B {
    fn fence(&self, barrier: Barrier) {
        self.barrier(barrier)
    }
}

/// A mutex for driver state whose unlock issues the MMIO release barrier
/// ([`Barrier::MmioUnlock`]) when, and only when, an MMIO write happened while it was held. See
/// the [module docs](self).
///
/// ```
/// use iomem::{backend::MockIo, order::Arch, IoLock, IoMem};
///
/// let bar = MockIo::new(64).with_arch(Arch::PowerPc64);
/// let regs = IoMem::new(&bar);
/// let tail = IoLock::new(0u32);
///
/// {
///     let mut g = tail.lock();
///     *g += 1;
///     let v = *g;
///     g.io(regs.cast::<u32>(0)?).write(&v); // tracked: sets the pending flag
/// } // unlock: `sync` before the mutex is released
/// assert_eq!(bar.instructions(), ["sync", "sync"]); // writel's own sync, then mmiowb's
///
/// bar.clear_events();
/// { let g = tail.lock(); let _ = *g; } // no MMIO write: no barrier
/// assert!(bar.instructions().is_empty());
/// # Ok::<(), iomem::Error>(())
/// ```
#[cfg(feature = "std")]
#[derive(Debug, Default)]
pub struct IoLock<T> {
    inner: Mutex<T>,
}

#[cfg(feature = "std")]
impl<T> IoLock<T> {
    /// A new, unlocked lock holding `value`.
    pub const fn new(value: T) -> Self {
        IoLock {
            inner: Mutex::new(value),
        }
    }

    /// Takes the lock, blocking until it is free.
    ///
    /// A holder that panicked leaves the state as it was at the panic; the lock is taken anyway
    /// (driver state has no invariant the mutex could have protected better).
    pub fn lock(&self) -> IoGuard<'_, MutexGuard<'_, T>> {
        IoGuard::new(self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<IoGuard<'_, MutexGuard<'_, T>>> {
        let guard = match self.inner.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(IoGuard::new(guard))
    }

    /// The protected value, consuming the lock.
    pub fn into_inner(self) -> T {
        self.inner.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// A spin lock with the same unlock ordering as [`IoLock`], for `no_std` drivers (and critical
/// sections too short to sleep in). Waiters spin (with `std`, yielding their CPU after a short
/// spin); there is no fairness and no poisoning.
///
/// ```
/// use iomem::{backend::MockIo, order::{Arch, Strategy}, publish::IoSpinLock, IoMem};
///
/// let bar = MockIo::new(64).with_arch(Arch::Riscv64);
/// let regs = IoMem::new(&bar).with_strategy(Strategy::Relaxed);
/// let lock = IoSpinLock::new(0u32);
/// {
///     let mut g = lock.lock();
///     *g = 7;
///     g.io(regs).writes(|r| r.try_write32(0, *g))?;
/// }
/// assert_eq!(bar.instructions(), ["fence o,w"]);
/// # Ok::<(), iomem::Error>(())
/// ```
///
/// # Invariant
/// `value` is reached only through a [`SpinGuard`], and a `SpinGuard` exists only while its
/// thread holds `locked` (it is made right after the lock is taken and gives it back on drop).
#[derive(Debug, Default)]
pub struct IoSpinLock<T> {
    /// The crate's one spin lock (`src/sync/spin.rs`), which the allocator of `P2pPool` shares.
    locked: RawSpinLock,
    value: UnsafeCell<T>,
}

// SAFETY: by the invariant the value is reached only by the one thread holding `locked`, and
// `RawSpinLock` makes each holder's accesses happen before the next holder's; so sharing the lock
// between threads only moves the use of `T` between them: `T: Send`.
unsafe impl<T: Send> Sync for IoSpinLock<T> {}

impl<T> IoSpinLock<T> {
    /// A new, unlocked lock holding `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        IoSpinLock {
            locked: RawSpinLock::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// A new, unlocked lock holding `value` (not `const` under `cfg(loom)`: loom's atomics are
    /// made at run time).
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        IoSpinLock {
            locked: RawSpinLock::new(),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, spinning until it is free.
    pub fn lock(&self) -> IoGuard<'_, SpinGuard<'_, T>> {
        self.locked.lock();
        IoGuard::new(SpinGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<IoGuard<'_, SpinGuard<'_, T>>> {
        self.locked.try_lock().then(|| {
            IoGuard::new(SpinGuard {
                lock: self,
                _not_send: PhantomData,
            })
        })
    }

    /// The protected value, consuming the lock.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

/// Holding an [`IoSpinLock`]: releases it on drop. Always wrapped in an [`IoGuard`].
///
/// # Invariant
/// While the guard exists, its thread holds `lock.locked` (see [`IoSpinLock`]).
pub struct SpinGuard<'l, T> {
    lock: &'l IoSpinLock<T>,
    /// Makes the guard `!Send` and `!Sync`: the critical section stays on one thread (as with
    /// `MutexGuard`), and `&SpinGuard` cannot share `&T` between threads — the lock itself only
    /// requires `T: Send`.
    _not_send: PhantomData<*const ()>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: by the invariants this thread holds the lock while the guard lives, so no other
        // thread reaches the value, and the borrow, tied to the guard, ends before the unlock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`, and `&mut self` makes this the only borrow through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: by the invariant this thread holds the lock; the guard ends here, and with it
        // every borrow of the value (they are tied to the guard).
        unsafe { self.lock.locked.unlock() }
    }
}

/// The critical section of an [`IoLock`] or [`IoSpinLock`] (`G` is the lock's own guard):
/// dereferences to the state, tracks MMIO writes, and on drop — before the lock is released —
/// issues [`Barrier::MmioUnlock`] (or [`Barrier::WcFlush`]) if there were any.
pub struct IoGuard<'l, G> {
    guard: G,
    /// The backend of the last tracked MMIO write (the kernel's `mmiowb_pending`).
    pending: Cell<Option<&'l dyn Fence>>,
    /// Whether a tracked write went to a write-combining mapping.
    wc: Cell<bool>,
}

impl<G: Deref> core::fmt::Debug for IoGuard<'_, G>
where
    G::Target: core::fmt::Debug,
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IoGuard")
            .field("value", &&*self.guard)
            .field("write_pending", &self.write_pending())
            .finish()
    }
}

impl<G: Deref> Deref for IoGuard<'_, G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for IoGuard<'_, G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

impl<'l, G> IoGuard<'l, G> {
    fn new(guard: G) -> Self {
        IoGuard {
            guard,
            pending: Cell::new(None),
            wc: Cell::new(false),
        }
    }

    /// A handle whose writes are tracked by this guard.
    pub fn io<'g, U: ?Sized, B: Backend + 'l>(
        &'g self,
        handle: IoMem<'l, U, B>,
    ) -> Tracked<'g, 'l, U, B> {
        Tracked {
            pending: &self.pending,
            wc: &self.wc,
            io: handle,
        }
    }

    /// Rings `doorbell` (see [`Doorbell::ring`]) as a tracked MMIO write.
    pub fn ring<B: Backend + 'l>(
        &self,
        doorbell: &Doorbell<'l, B>,
        value: u32,
        published: &[&dyn Published],
    ) {
        doorbell.ring(value, published);
        self.mark_written(doorbell.register().backend());
    }

    /// Records that a write-combining mapping was written in this critical section by a path the
    /// guard did not see: the unlock will drain write-combining buffers.
    pub fn mark_written_wc<B: Backend + 'l>(&self, backend: &'l B) {
        self.pending.set(Some(backend));
        self.wc.set(true);
    }

    /// Records that an MMIO write to `backend` happened in this critical section by a path the
    /// guard did not see.
    pub fn mark_written<B: Backend + 'l>(&self, backend: &'l B) {
        self.pending.set(Some(backend));
        self.wc
            .set(self.wc.get() || backend.caching() == crate::Caching::WriteCombining);
    }

    /// Whether an MMIO write happened in this critical section (the unlock will issue
    /// [`Barrier::MmioUnlock`], or [`Barrier::WcFlush`] if a write-combining mapping was written).
    pub fn write_pending(&self) -> bool {
        self.pending.get().is_some()
    }

    /// Releases the lock (the same as dropping the guard).
    pub fn unlock(self) {}
}

impl<G> Drop for IoGuard<'_, G> {
    fn drop(&mut self) {
        // Runs before the `MutexGuard` field is dropped, i.e. before the mutex is released.
        if let Some(backend) = self.pending.take() {
            backend.fence(if self.wc.get() {
                Barrier::WcFlush
            } else {
                Barrier::MmioUnlock
            });
        }
    }
}

/// An [`IoMem`] handle inside an [`IoGuard`]: its writes mark the guard (so the unlock orders
/// them); reads go through untouched.
pub struct Tracked<'g, 'l, U: ?Sized, B: Backend> {
    pending: &'g Cell<Option<&'l dyn Fence>>,
    wc: &'g Cell<bool>,
    io: IoMem<'l, U, B>,
}

impl<U: ?Sized, B: Backend> core::fmt::Debug for Tracked<'_, '_, U, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tracked").field("io", &self.io).finish()
    }
}

impl<'l, U: ?Sized, B: Backend + 'l> Tracked<'_, 'l, U, B> {
    fn mark(&self) {
        self.pending.set(Some(self.io.backend()));
        self.wc
            .set(self.wc.get() || self.io.caching() == crate::Caching::WriteCombining);
    }

    /// The handle, for reads. Writes made through it are **not** tracked.
    pub fn handle(&self) -> IoMem<'l, U, B> {
        self.io
    }

    /// Runs `f` with the handle and marks the guard: every write `f` makes is ordered by the
    /// unlock (`g.io(regs).writes(|r| r.try_write32(0, tail))`). Marking when `f` wrote nothing
    /// costs one barrier at unlock, never a missing one.
    pub fn writes<R>(&self, f: impl FnOnce(IoMem<'l, U, B>) -> R) -> R {
        let r = f(self.io);
        self.mark();
        r
    }
}

impl<'l, U: IntoBytes + Immutable + FromBytes, B: Backend + 'l> Tracked<'_, 'l, U, B> {
    /// [`IoMem::write`], tracked.
    pub fn write(&self, value: &U) {
        self.writes(|io| io.write(value))
    }
}
