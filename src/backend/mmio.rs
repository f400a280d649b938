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
    /// Alignment the base address must have. Memory-like copies use 32- and 64-byte accesses
    /// (where the CPU has them) only on a base aligned to their width, which every page-granular
    /// mapping is.
    pub const BASE_ALIGN: usize = 16;

    /// Wraps a mapped region of device memory.
    ///
    /// Returns [`Error::BadMapping`] if `base` is null or not aligned to [`Mmio::BASE_ALIGN`]
    /// (every page-granular mapping is).
    ///
    /// # Safety
    /// For the whole life of the returned value:
    /// - `base .. base + size` is mapped and valid for volatile reads and writes of 1, 2, 4, 8,
    ///   16 and (where the CPU has them, for memory-like copies) 32 and 64 bytes at naturally aligned
    ///   addresses (device memory, or RAM);
    /// - no Rust reference (`&`/`&mut`) to any byte of it exists or is created by other code;
    /// - `caching` is at least as strong as the mapping needs: [`Caching::WriteCombining`] for a
    ///   write-combining mapping (otherwise a doorbell loses its flush);
    ///   [`Caching::Uncached`] or `WriteCombining` for uncached device memory; any of the three
    ///   for RAM. A stronger label only adds barriers (the benchmarks label RAM to time them).
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
        // The base's own alignment (≥ BASE_ALIGN by the type invariant), up to a page.
        (1usize << (self.base.as_ptr() as usize).trailing_zeros().min(12)).max(Self::BASE_ALIGN)
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
        #[cfg(all(target_arch = "x86_64", iomem_avx512))]
        if W::WIDTH == 64 {
            let mut v = core::mem::MaybeUninit::<W>::uninit();
            // SAFETY: as below; the caller guarantees AVX-512F (`has_w512`), and `W` is 64 bytes,
            // the size of the `__m512i` the helper writes.
            unsafe { avx512::load(self.base.as_ptr().add(off).cast(), v.as_mut_ptr().cast()) };
            // SAFETY: fully written by the helper; any bit pattern is a valid `W`.
            return unsafe { v.assume_init() };
        }
        #[cfg(target_arch = "x86_64")]
        if W::WIDTH == 32 {
            let mut v = core::mem::MaybeUninit::<W>::uninit();
            // SAFETY: as below; the caller guarantees AVX (`has_w256`), and `W` is 32 bytes, the
            // size of the `__m256i` the helper writes.
            unsafe { avx::load(self.base.as_ptr().add(off).cast(), v.as_mut_ptr().cast()) };
            // SAFETY: fully written by the helper; any bit pattern is a valid `W`.
            return unsafe { v.assume_init() };
        }
        // SAFETY: the caller guarantees `off` is `W`-aligned and in bounds; the type invariant
        // makes base+off valid for a volatile read, and base alignment ≥ W::WIDTH.
        unsafe { core::ptr::read_volatile(self.base.as_ptr().add(off).cast::<W>()) }
    }
    #[inline(always)]
    unsafe fn write<W: Word>(&self, off: usize, value: W) {
        #[cfg(all(target_arch = "x86_64", iomem_avx512))]
        if W::WIDTH == 64 {
            // SAFETY: as for `read`; `value` is 64 bytes, read by the helper as a `__m512i`.
            unsafe {
                avx512::store(
                    self.base.as_ptr().add(off).cast(),
                    (&value as *const W).cast(),
                )
            };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if W::WIDTH == 32 {
            // SAFETY: as for `read`; `value` is 32 bytes, read by the helper as a `__m256i`.
            unsafe {
                avx::store(
                    self.base.as_ptr().add(off).cast(),
                    (&value as *const W).cast(),
                )
            };
            return;
        }
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
    /// `MOVDIR64B` where the CPU has it ([`has_movdir64b`](super::has_movdir64b)).
    #[inline(always)]
    fn has_direct64(&self) -> bool {
        super::has_movdir64b()
    }
    #[inline(always)]
    unsafe fn write_direct64(&self, off: usize, src: &[u8; 64]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees `off` is 64-aligned and in bounds with base alignment
        // ≥ 64 (so the address is 64-aligned), and that the CPU has MOVDIR64B (`has_direct64`);
        // the type invariant makes the 64 bytes valid for a write and unreferenced.
        unsafe {
            super::direct::movdir64b(self.base.as_ptr().add(off), src)
        }
        // Unreachable here (`has_direct64` is false off x86_64): eight u64 stores, never wider.
        #[cfg(not(target_arch = "x86_64"))]
        // SAFETY: the caller's aligned, in-bounds 64 bytes.
        unsafe {
            super::direct::as_u64s(self, off, src)
        }
    }
}

/// 32-byte accesses, compiled for AVX so each volatile access is one `vmovdqa ymm` (a function
/// compiled without AVX would split it into two 16-byte halves). Inlined into AVX-enabled
/// callers (the copy executor's 32-byte bodies); an out-of-line call elsewhere.
#[cfg(target_arch = "x86_64")]
mod avx {
    use core::arch::x86_64::__m256i;

    /// # Safety
    /// The CPU has AVX; `p` is 32-aligned and valid for a volatile 32-byte read; `out` is valid
    /// for a 32-byte write.
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) unsafe fn load(p: *const __m256i, out: *mut __m256i) {
        // SAFETY: forwarded contract.
        unsafe { out.write_unaligned(core::ptr::read_volatile(p)) }
    }

    /// # Safety
    /// The CPU has AVX; `p` is 32-aligned and valid for a volatile 32-byte write; `v` is valid
    /// for a 32-byte read.
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) unsafe fn store(p: *mut __m256i, v: *const __m256i) {
        // SAFETY: forwarded contract.
        unsafe { core::ptr::write_volatile(p, v.read_unaligned()) }
    }
}

/// 64-byte accesses, compiled for AVX-512F so each volatile access is one `vmovdqa64 zmm`.
/// Inlined into AVX-512F-enabled callers (the copy executor's 64-byte bodies); an out-of-line
/// call elsewhere.
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
mod avx512 {
    use core::arch::x86_64::__m512i;

    /// # Safety
    /// The CPU has AVX-512F; `p` is 64-aligned and valid for a volatile 64-byte read; `out` is
    /// valid for a 64-byte write.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn load(p: *const __m512i, out: *mut __m512i) {
        // SAFETY: forwarded contract.
        unsafe { out.write_unaligned(core::ptr::read_volatile(p)) }
    }

    /// # Safety
    /// The CPU has AVX-512F; `p` is 64-aligned and valid for a volatile 64-byte write; `v` is
    /// valid for a 64-byte read.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn store(p: *mut __m512i, v: *const __m512i) {
        // SAFETY: forwarded contract.
        unsafe { core::ptr::write_volatile(p, v.read_unaligned()) }
    }
}
