//! Where an access lands: the [`Backend`] trait, the real [`Mmio`] backend and the [`MockIo`]
//! test backend.
//!
//! A backend executes single, naturally aligned accesses of a known width ([`Word`]) at an offset
//! inside its region, and barriers ([`Barrier`]). It does nothing else: bounds, alignment, width
//! policy and barrier placement are decided above it, by [`IoMem`](crate::IoMem) and the access
//! plans in [`copy`](crate::copy), so every backend executes exactly the same sequence and the
//! mock's trace shows what the real path does.

use crate::order::{Arch, Barrier};

mod direct;
mod mmio;
pub use direct::has_movdir64b;
pub use mmio::Mmio;

#[cfg(feature = "std")]
pub mod mock;
#[cfg(feature = "std")]
pub use mock::MockIo;

/// How the CPU maps the device memory behind a backend.
///
/// The mapping decides which barriers a doorbell needs: stores to a write-combining mapping may
/// sit in a CPU buffer and be merged or reordered until it is flushed, so a doorbell write after
/// a copy into such a mapping must be preceded by [`Barrier::WcFlush`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Caching {
    /// Uncached, strongly ordered device memory (Linux `ioremap`, sysfs `resourceN`).
    Uncached,
    /// Write-combining memory (Linux `ioremap_wc`, sysfs `resourceN_wc`): prefetchable BARs
    /// such as an NVMe CMB or a GPU aperture.
    WriteCombining,
    /// Cacheable, coherent host RAM that a device reads and writes by DMA (Linux
    /// `dma_alloc_coherent`): not device memory. Ordering against the device takes DMA barriers
    /// (`dma_rmb`/`dma_wmb`) and, before a doorbell, the barrier inside `writel`.
    Cacheable,
}

mod sealed {
    pub trait Sealed {}
}

/// A value that is moved to or from device memory as one access of `WIDTH` bytes.
///
/// Implemented for `u8`, `u16`, `u32`, `u64`; for [`W128`] only on x86_64 and aarch64 (the
/// targets with a single 16-byte load and store in their baseline); for [`W256`] only on
/// x86_64, and for [`W512`] only on x86_64 built by rustc 1.89 or newer. Sealed: a backend can
/// rely on this exact set.
///
/// # Safety
/// Sealed: only this crate implements it. `Self` is plain data of exactly `WIDTH` bytes with
/// alignment `WIDTH`, valid for every bit pattern, and a volatile access of `Self` is one
/// instruction of that width — for `u8`..`u64` and [`W128`] in any code of the targets where the
/// impl exists, for [`W256`] in code compiled with AVX enabled and for [`W512`] in code compiled
/// with AVX-512F enabled (where the real backend makes every such access; elsewhere the
/// compiler may split it).
pub unsafe trait Word: Copy + sealed::Sealed + 'static {
    /// Width of one access in bytes (a power of two).
    const WIDTH: usize;
    /// The value as a little-endian integer, for traces (zero-extended).
    fn to_u128(self) -> u128;
    /// The inverse of [`Word::to_u128`] (truncating).
    fn from_u128(v: u128) -> Self;

    /// The value as little-endian 16-byte lanes (bytes `16k..16k + 16` in lane `k`), zero beyond
    /// `WIDTH`: how traces hold accesses wider than 16 bytes ([`W256`], [`W512`]).
    #[inline(always)]
    fn to_lanes(self) -> [u128; 4] {
        [self.to_u128(), 0, 0, 0]
    }

    /// The inverse of [`Word::to_lanes`] (lanes beyond `WIDTH` ignored).
    #[inline(always)]
    fn from_lanes(lanes: [u128; 4]) -> Self {
        Self::from_u128(lanes[0])
    }

    /// `byte` repeated `WIDTH` times (the value `memset_io` stores), built so that a volatile
    /// store of it stays one instruction.
    #[inline(always)]
    fn splat(byte: u8) -> Self {
        Self::from_u128(u128::from_ne_bytes([byte; 16]))
    }

    /// Loads a value from RAM at any alignment (the memory side of a copy; never device memory).
    ///
    /// # Safety
    /// `p` is valid for reads of `WIDTH` bytes.
    #[inline(always)]
    unsafe fn load_unaligned(p: *const u8) -> Self {
        // SAFETY: the caller guarantees `p` is readable for WIDTH bytes; any bit pattern is valid.
        unsafe { core::ptr::read_unaligned(p.cast::<Self>()) }
    }

    /// Stores the value to RAM at any alignment (the memory side of a copy; never device memory).
    ///
    /// # Safety
    /// `p` is valid for writes of `WIDTH` bytes.
    #[inline(always)]
    unsafe fn store_unaligned(self, p: *mut u8) {
        // SAFETY: the caller guarantees `p` is writable for WIDTH bytes.
        unsafe { core::ptr::write_unaligned(p.cast::<Self>(), self) }
    }
}

macro_rules! impl_word {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        // SAFETY: primitive integers are plain data of their size and alignment, any bit pattern
        // is valid, and a volatile access of one is a single load/store of that width.
        unsafe impl Word for $t {
            const WIDTH: usize = core::mem::size_of::<$t>();
            #[inline(always)]
            fn to_u128(self) -> u128 { self as u128 }
            #[inline(always)]
            fn from_u128(v: u128) -> Self { v as $t }
        }
        static_assertions::const_assert_eq!(core::mem::size_of::<$t>(), core::mem::align_of::<$t>());
    )*};
}
impl_word!(u8, u16, u32, u64);

mod vector;
#[cfg(target_arch = "x86_64")]
pub(crate) use vector::detected_once;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub use vector::W128;
#[cfg(target_arch = "x86_64")]
pub use vector::W256;
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
pub use vector::W512;
pub use vector::{has_w256, has_w512, memory_like_width, HAS_W128, INLINE_WIDTH};

/// A region of device memory and the way to access it.
///
/// # Safety
/// Implementors promise that, for every `off` with `off % W::WIDTH == 0` and
/// `off + W::WIDTH <= self.size()`, [`read`](Backend::read) and [`write`](Backend::write) access
/// exactly those `W::WIDTH` bytes as one access, without creating a Rust reference to them, and
/// that [`base_align`](Backend::base_align) is true of the region's start address (so an offset
/// aligned to `w ≤ base_align` is an address aligned to `w`).
pub unsafe trait Backend {
    /// Size of the region in bytes.
    fn size(&self) -> usize;

    /// Alignment of the region's base address. The crate's own backends guarantee at least 16
    /// (and report more when the base has it, up to a page, so memory-like copies can use
    /// 32-byte accesses).
    fn base_align(&self) -> usize;

    /// How the region is mapped.
    fn caching(&self) -> Caching;

    /// The architecture whose barrier instructions this backend executes (the host for real
    /// backends; any architecture for a simulating mock).
    fn arch(&self) -> Arch;

    /// Reads one `W` at byte offset `off`.
    ///
    /// # Safety
    /// `off % W::WIDTH == 0`, `off + W::WIDTH <= self.size()`, `W::WIDTH <= self.base_align()`,
    /// and, if `W` is [`W256`], [`has_w256`] is true; if `W` is [`W512`], [`has_w512`] is.
    unsafe fn read<W: Word>(&self, off: usize) -> W;

    /// Writes one `W` at byte offset `off`.
    ///
    /// # Safety
    /// As for [`read`](Backend::read).
    unsafe fn write<W: Word>(&self, off: usize, value: W);

    /// Executes (or, for a mock, records) a barrier.
    fn barrier(&self, barrier: Barrier);

    /// Executes (or records) a barrier right after a device read that returned `loaded`
    /// (zero-extended). Some architectures make the barrier depend on the loaded value
    /// (powerpc's `twi 0,r,0; isync` for [`Barrier::IoAfterRead`]).
    ///
    /// No default body, on purpose: a backend that forwards to another must forward this too,
    /// or the read barrier of `readl` is lost on powerpc (plain [`barrier`](Backend::barrier)
    /// without the value orders nothing there). A backend that forgets it does not compile.
    fn barrier_after_read(&self, barrier: Barrier, loaded: u64);

    /// Whether [`write_direct64`](Backend::write_direct64) makes one non-torn 64-byte direct
    /// store (x86 `MOVDIR64B`: the device receives the 64 bytes as one write). Such a store is
    /// weakly ordered whatever the mapping, like a write-combining one: a
    /// [`Barrier::WcFlush`] (`sfence`) must come between it and a doorbell. Default: no.
    #[inline(always)]
    fn has_direct64(&self) -> bool {
        false
    }

    /// Writes the 64 bytes of `src` at `off` as one direct store
    /// ([`has_direct64`](Backend::has_direct64)).
    ///
    /// The default body, for backends without direct stores, is never reached by the crate (it
    /// asks `has_direct64` first); it writes eight naturally aligned `u64`s, never anything wider.
    ///
    /// # Safety
    /// `off % 64 == 0`, `off + 64 <= self.size()`, `self.base_align() >= 64`, and
    /// [`has_direct64`](Backend::has_direct64) is true.
    #[inline(always)]
    unsafe fn write_direct64(&self, off: usize, src: &[u8; 64]) {
        // SAFETY: the caller's contract (all 64 bytes in bounds, 64-aligned, base ≥ 64).
        unsafe { direct::as_u64s(self, off, src) }
    }
}

/// Forwards every method of a [`Backend`] to another: the one way a backend wraps or shares
/// another (a reference, an `Arc`, a type holding one in a field), so none can drop a method
/// that carries ordering. `impl[generics] Type;` forwards to `**self`, `impl[generics] Type =>
/// field;` to `self.field`.
macro_rules! forward_backend {
    ($($(#[$m:meta])* impl[$($g:tt)*] $ty:ty $(=> $field:ident)?;)*) => {$(
        $crate::backend::forward_backend!(
            @one $(#[$m])* [$($g)*] $ty, this => $crate::backend::forward_backend!(@to this $($field)?)
        );
    )*};
    (@to $this:ident) => { **$this };
    (@to $this:ident $field:ident) => { $this.$field };
    (@one $(#[$m:meta])* [$($g:tt)*] $ty:ty, $this:ident => $to:expr) => {
        $(#[$m])*
        // SAFETY: forwards every call to the backend it wraps, which upholds the contract.
        unsafe impl<$($g)*> $crate::backend::Backend for $ty {
            #[inline(always)]
            fn size(&self) -> usize {
                let $this = self;
                $crate::backend::Backend::size(&$to)
            }
            #[inline(always)]
            fn base_align(&self) -> usize {
                let $this = self;
                $crate::backend::Backend::base_align(&$to)
            }
            #[inline(always)]
            fn caching(&self) -> $crate::backend::Caching {
                let $this = self;
                $crate::backend::Backend::caching(&$to)
            }
            #[inline(always)]
            fn arch(&self) -> $crate::Arch {
                let $this = self;
                $crate::backend::Backend::arch(&$to)
            }
            #[inline(always)]
            unsafe fn read<W: $crate::backend::Word>(&self, off: usize) -> W {
                let $this = self;
                // SAFETY: the caller upholds `read`'s contract, the same for the wrapped one.
                unsafe { $crate::backend::Backend::read(&$to, off) }
            }
            #[inline(always)]
            unsafe fn write<W: $crate::backend::Word>(&self, off: usize, value: W) {
                let $this = self;
                // SAFETY: the caller upholds `write`'s contract, the same for the wrapped one.
                unsafe { $crate::backend::Backend::write(&$to, off, value) }
            }
            #[inline(always)]
            fn barrier(&self, barrier: $crate::Barrier) {
                let $this = self;
                $crate::backend::Backend::barrier(&$to, barrier)
            }
            #[inline(always)]
            fn barrier_after_read(&self, barrier: $crate::Barrier, loaded: u64) {
                let $this = self;
                $crate::backend::Backend::barrier_after_read(&$to, barrier, loaded)
            }
            #[inline(always)]
            fn has_direct64(&self) -> bool {
                let $this = self;
                $crate::backend::Backend::has_direct64(&$to)
            }
            #[inline(always)]
            unsafe fn write_direct64(&self, off: usize, src: &[u8; 64]) {
                let $this = self;
                // SAFETY: the caller upholds `write_direct64`'s contract, the same for the
                // wrapped one.
                unsafe { $crate::backend::Backend::write_direct64(&$to, off, src) }
            }
        }
    };
}
// Used by the mappings of feature `linux` (`BarMapping`), besides the impls below.
#[allow(unused_imports)]
pub(crate) use forward_backend;

forward_backend! {
    impl[B: Backend + ?Sized] &B;
    #[cfg(feature = "alloc")]
    impl[B: Backend + ?Sized] alloc::sync::Arc<B>;
}
