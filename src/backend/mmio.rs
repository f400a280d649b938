//! The real backend: volatile loads and stores through a mapped pointer.

use core::ptr::NonNull;

use super::{Backend, Caching, Word};
use crate::error::{Error, Result};
use crate::order::{self, Arch, Barrier};

/// A mapped region of device memory, accessed with volatile loads and stores.
///
/// `Mmio` is the zero-overhead backend: every access is one `read_volatile`/`write_volatile` of
/// the access width, monomorphised and inlined; barriers are the host architecture's instructions
/// from [`order`](crate::order).
///
/// # Invariant
/// `base` is valid for volatile reads and writes of `size` bytes for as long as this value lives,
/// is aligned to [`Mmio::BASE_ALIGN`], and no Rust reference to those bytes exists.
#[derive(Debug)]
pub struct Mmio {
    base: NonNull<u8>,
    size: usize,
    caching: Caching,
}

// SAFETY: by the type invariant the pointer is valid for volatile access from any thread (device
// memory has no thread affinity); `Mmio` holds no thread-local state.
unsafe impl Send for Mmio {}
// SAFETY: shared use only performs volatile accesses through the pointer; concurrent volatile
// accesses to device memory are what the device sees, never a Rust data race on a reference.
unsafe impl Sync for Mmio {}

impl Mmio {
    /// Alignment the base address must have: the widest single access this crate makes.
    pub const BASE_ALIGN: usize = 16;

    /// Wraps a mapped region of device memory.
    ///
    /// Returns [`Error::BadMapping`] if `base` is null or not aligned to [`Mmio::BASE_ALIGN`]
    /// (every page-granular mapping is).
    ///
    /// # Safety
    /// For the whole life of the returned value:
    /// - `base .. base + size` is mapped and valid for volatile reads and writes of 1, 2, 4, 8 and
    ///   16 bytes at naturally aligned addresses (device memory, or RAM);
    /// - no Rust reference (`&`/`&mut`) to any byte of it exists or is created by other code;
    /// - `caching` truly describes the mapping.
    pub unsafe fn new(base: *mut u8, size: usize, caching: Caching) -> Result<Self> {
        let addr = base as usize;
        let Some(base) = NonNull::new(base) else {
            return Err(Error::BadMapping {
                addr,
                align: Self::BASE_ALIGN,
            });
        };
        if addr % Self::BASE_ALIGN != 0 {
            return Err(Error::BadMapping {
                addr,
                align: Self::BASE_ALIGN,
            });
        }
        if addr.checked_add(size).is_none() {
            return Err(Error::Overflow {
                offset: addr,
                len: size,
            });
        }
        Ok(Self {
            base,
            size,
            caching,
        })
    }

    /// The base address of the mapping (for diagnostics; never dereference it).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }
}

// SAFETY: by the type invariant `base..base+size` is valid for volatile access; `read`/`write`
// access exactly `W::WIDTH` bytes with one volatile operation and create no reference.
unsafe impl Backend for Mmio {
    #[inline(always)]
    fn size(&self) -> usize {
        self.size
    }
    #[inline(always)]
    fn base_align(&self) -> usize {
        Self::BASE_ALIGN
    }
    #[inline(always)]
    fn caching(&self) -> Caching {
        self.caching
    }
    #[inline(always)]
    fn arch(&self) -> Arch {
        Arch::HOST
    }
    #[inline(always)]
    unsafe fn read<W: Word>(&self, off: usize) -> W {
        // SAFETY: the caller guarantees `off` is `W`-aligned and in bounds; the type invariant
        // makes base+off valid for a volatile read, and base alignment ≥ W::WIDTH.
        unsafe { core::ptr::read_volatile(self.base.as_ptr().add(off).cast::<W>()) }
    }
    #[inline(always)]
    unsafe fn write<W: Word>(&self, off: usize, value: W) {
        // SAFETY: as for `read`.
        unsafe { core::ptr::write_volatile(self.base.as_ptr().add(off).cast::<W>(), value) }
    }
    #[inline(always)]
    fn barrier(&self, barrier: Barrier) {
        order::execute(barrier)
    }
    #[inline(always)]
    fn barrier_after_read(&self, barrier: Barrier, loaded: u64) {
        order::execute_after_read(barrier, loaded)
    }
}
