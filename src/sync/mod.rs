//! The synchronisation primitives the crate's own lock and reference counting are built on:
//! `core`'s and `alloc`'s, or, when built with `--cfg loom`, [loom]'s, so that the model checker
//! sees every atomic access, every access to lock-protected data and every reference count
//! (`.ci/loom.sh`, `tests/loom.rs`).
//!
//! Nothing here adds behaviour: each item is the `core`/`alloc` item of the same name (the cell
//! differs only in being reached through [`UnsafeCell::with_mut`], loom's way of seeing an
//! access begin and end).
//!
//! [loom]: https://docs.rs/loom

pub(crate) mod spin;

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::AtomicBool;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicBool;

#[cfg(all(feature = "alloc", not(loom)))]
pub(crate) use alloc::sync::Arc;
#[cfg(all(feature = "alloc", loom))]
pub(crate) use loom::sync::Arc;

#[cfg(all(feature = "alloc", loom))]
pub(crate) use loom::cell::UnsafeCell;

/// `core::cell::UnsafeCell`, reached through a closure as loom's is (for the allocator's lock,
/// so with `alloc`).
#[cfg(all(feature = "alloc", not(loom)))]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

#[cfg(all(feature = "alloc", not(loom)))]
impl<T> UnsafeCell<T> {
    #[inline(always)]
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }
}

#[cfg(all(feature = "alloc", not(loom)))]
impl<T: ?Sized> UnsafeCell<T> {
    /// Runs `f` with a pointer to the value (`UnsafeCell::get`); what `f` may do with it is the
    /// caller's to argue, as for `get`.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// A busy-wait hint to the CPU (`core::hint::spin_loop`); under loom, a point where the model
/// switches to another thread.
#[inline(always)]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::hint::spin_loop();
}

/// Gives the CPU to another thread, with `std`; without it, a busy-wait hint. (A waiter that has
/// spun for long may be waiting for a holder that is not running.)
#[inline]
pub(crate) fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(all(not(loom), feature = "std"))]
    std::thread::yield_now();
    #[cfg(all(not(loom), not(feature = "std")))]
    core::hint::spin_loop();
}
