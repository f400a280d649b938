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

#[cfg(target_arch = "x86_64")]
type W128Inner = core::arch::x86_64::__m128i;
#[cfg(target_arch = "aarch64")]
type W128Inner = core::arch::aarch64::uint8x16_t;

/// Whether this CPU has a single-instruction, 16-byte aligned load and store that the crate uses
/// for memory-like device regions (SSE2 `movdqa` on x86_64, `ldr q`/`str q` on aarch64): whether
/// [`W128`] exists.
pub const HAS_W128: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// The widest access this build of the crate makes without a call into code compiled for more
/// vector features: 64 bytes where AVX-512F is enabled at build time (`-C target-cpu=…` or
/// `-C target-feature=+avx512f`, with rustc 1.89 or newer), 32 where AVX is, 16 where
/// [`HAS_W128`], else 8. Short memory-like copies whose width is at most this run inline;
/// wider ones make one call into code compiled for their width.
pub const INLINE_WIDTH: usize = if cfg!(all(
    target_arch = "x86_64",
    iomem_avx512,
    target_feature = "avx512f"
)) {
    64
} else if cfg!(all(target_arch = "x86_64", target_feature = "avx")) {
    32
} else if HAS_W128 {
    16
} else {
    8
};

/// A 16-byte vector register's worth of data, moved as one access. Exists only where
/// [`HAS_W128`] is true; elsewhere the widest access is 8 bytes.
// Transparent over the vector type, so a volatile access of a `W128` is a volatile access of the
// vector itself (an aggregate would be staged through the stack).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct W128(W128Inner);

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
static_assertions::assert_eq_size!(W128, [u8; 16]);
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
static_assertions::const_assert_eq!(core::mem::align_of::<W128>(), 16);

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl sealed::Sealed for W128 {}
// SAFETY: `W128` is a 16-byte, 16-aligned plain-data vector type valid for every bit pattern; a
// volatile access of it is one 16-byte vector load/store on the architectures where HAS_W128.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
unsafe impl Word for W128 {
    const WIDTH: usize = 16;
    #[inline(always)]
    fn to_u128(self) -> u128 {
        // SAFETY: both types are 16 bytes of plain data valid for every bit pattern.
        unsafe { core::mem::transmute::<W128, u128>(self) }
    }
    #[inline(always)]
    fn from_u128(v: u128) -> Self {
        // SAFETY: as above.
        unsafe { core::mem::transmute::<u128, W128>(v) }
    }

    // On x86_64 the vector is built and moved with SSE2 intrinsics: a value that passes through
    // a `u128` can be lowered to two 8-byte stores, which would split a device access.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn splat(byte: u8) -> Self {
        // SAFETY: SSE2 is part of the x86_64 baseline; the intrinsic only computes a value.
        W128(unsafe { core::arch::x86_64::_mm_set1_epi8(byte as i8) })
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load_unaligned(p: *const u8) -> Self {
        // SAFETY: SSE2 is baseline on x86_64; the caller guarantees `p` is readable for 16
        // bytes, and `movdqu` has no alignment requirement.
        W128(unsafe { core::arch::x86_64::_mm_loadu_si128(p.cast()) })
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn store_unaligned(self, p: *mut u8) {
        // SAFETY: SSE2 is baseline on x86_64; the caller guarantees `p` is writable for 16
        // bytes, and `movdqu` has no alignment requirement.
        unsafe { core::arch::x86_64::_mm_storeu_si128(p.cast(), self.0) }
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl core::fmt::Debug for W128 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "W128({:#034x})", self.to_u128())
    }
}

/// Whether this CPU has a single-instruction, 32-byte aligned load and store that the crate
/// uses for memory-like device regions (AVX `vmovdqa ymm` on x86_64). Detected at run time with
/// the `std` feature; without it, true only when the crate is built with AVX enabled.
#[inline]
pub fn has_w256() -> bool {
    cfg_if::cfg_if! {
        if #[cfg(all(target_arch = "x86_64", feature = "std"))] {
            use core::sync::atomic::{AtomicU8, Ordering};
            // 0: not detected yet, 1: no, 2: yes. Every copy plans with it: one relaxed load.
            static AVX: AtomicU8 = AtomicU8::new(0);
            match AVX.load(Ordering::Relaxed) {
                0 => {
                    let yes = std::is_x86_feature_detected!("avx");
                    AVX.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                    yes
                }
                v => v == 2,
            }
        } else if #[cfg(target_arch = "x86_64")] {
            cfg!(target_feature = "avx")
        } else {
            false
        }
    }
}

/// The widest access that [`WidthPolicy::MEMORY_LIKE`](crate::WidthPolicy::MEMORY_LIKE) copies
/// make on this CPU, in bytes: 64 where [`has_w512`] is true, else 32 where [`has_w256`] is,
/// else 16 where [`HAS_W128`], else 8.
///
/// # Forcing a narrower width
/// With the `std` feature, the environment variable `IOMEM_MAX_WIDTH` (`8`, `16`, `32` or `64`) lowers
/// it for the whole process: for testing the narrower paths on a CPU that has wider ones, and for
/// devices that misbehave with wide accesses. It is read once, at the first call (the first
/// memory-like copy); a value that is not one of these widths, or wider than the CPU has, is
/// ignored. For one handle, [`WidthPolicy::clamped`](crate::WidthPolicy::clamped) gives a
/// memory-like policy with a lower cap (`WidthPolicy::MEMORY_LIKE.clamped(16)`).
///
/// Detected once and cached: afterwards each call is one relaxed atomic load.
#[inline]
pub fn memory_like_width() -> usize {
    cfg_if::cfg_if! {
        if #[cfg(feature = "std")] {
            use core::sync::atomic::{AtomicU8, Ordering};
            // 0: not detected yet; otherwise the width.
            static WIDTH: AtomicU8 = AtomicU8::new(0);
            match WIDTH.load(Ordering::Relaxed) {
                0 => {
                    let w = detect_memory_like_width();
                    // CAST: the width is at most 64.
                    WIDTH.store(w as u8, Ordering::Relaxed);
                    w
                }
                w => w as usize,
            }
        } else {
            cpu_widest()
        }
    }
}

/// The widest single access of this CPU (no environment limit).
#[inline]
fn cpu_widest() -> usize {
    if has_w512() {
        64
    } else if has_w256() {
        32
    } else if HAS_W128 {
        16
    } else {
        8
    }
}

/// [`cpu_widest`], limited by `IOMEM_MAX_WIDTH` when it names a narrower supported width.
#[cfg(feature = "std")]
#[cold]
fn detect_memory_like_width() -> usize {
    let cpu = cpu_widest();
    match std::env::var("IOMEM_MAX_WIDTH")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(w @ (8 | 16 | 32 | 64)) if w <= cpu => w,
        _ => cpu,
    }
}

/// A 32-byte vector register's worth of data, moved as one access. Exists only on x86_64.
///
/// Only used where [`has_w256`] is true: [`Mmio`] moves it with one AVX `vmovdqa` (executed in a
/// function compiled for AVX, so it is never split into two 16-byte halves). Elsewhere no plan
/// contains a `W256` access.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct W256(core::arch::x86_64::__m256i);

#[cfg(target_arch = "x86_64")]
static_assertions::assert_eq_size!(W256, [u8; 32]);
#[cfg(target_arch = "x86_64")]
static_assertions::const_assert_eq!(core::mem::align_of::<W256>(), 32);

/// Lanes of a vector word, for traces (`N` 16-byte lanes of a `W` of `16 N` bytes).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn lanes_of<W: Copy, const N: usize>(w: W) -> [u128; 4] {
    const { assert!(core::mem::size_of::<W>() == 16 * N && N <= 4) };
    // SAFETY: `W` is `16 N` bytes of plain data (checked above), valid as `[u128; N]`.
    let l: [u128; N] = unsafe { core::mem::transmute_copy(&w) };
    let mut out = [0; 4];
    out[..N].copy_from_slice(&l);
    out
}

/// The vector word whose `16 N` bytes are the first `N` lanes (the inverse of [`lanes_of`]).
///
/// # Safety
/// `W` is `16 N` bytes of plain data valid for every bit pattern.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn word_of_lanes<W: Copy, const N: usize>(lanes: [u128; 4]) -> W {
    const { assert!(core::mem::size_of::<W>() == 16 * N && N <= 4) };
    let mut l = [0u128; N];
    l.copy_from_slice(&lanes[..N]);
    // SAFETY: same size (checked above); every bit pattern is valid by the caller's contract.
    unsafe { core::mem::transmute_copy(&l) }
}

/// `Word` for a vector word of 16-byte lanes (type, width, lanes), moved as one access only in
/// code compiled for its target feature (the real backend's helpers), where its `has_*`
/// function is true.
macro_rules! impl_vector_word {
    ($(#[$cfg:meta])* $t:ident, $width:literal, $lanes:literal) => {
        $(#[$cfg])*
        impl sealed::Sealed for $t {}
        $(#[$cfg])*
        // SAFETY: the type is a plain-data vector as wide as `WIDTH` and aligned to it, valid
        // for every bit pattern (asserted next to its definition). The crate's real backend
        // accesses it only inside functions compiled for its target feature (AVX for `W256`,
        // AVX-512F for `W512`), where a volatile access of it is one instruction of that width;
        // callers of `Backend::read`/`write` with it must ensure its `has_*` function is true.
        unsafe impl Word for $t {
            const WIDTH: usize = $width;
            #[inline(always)]
            fn to_u128(self) -> u128 {
                self.to_lanes()[0]
            }
            #[inline(always)]
            fn from_u128(v: u128) -> Self {
                Self::from_lanes([v, 0, 0, 0])
            }
            #[inline(always)]
            fn to_lanes(self) -> [u128; 4] {
                lanes_of::<$t, $lanes>(self)
            }
            #[inline(always)]
            fn from_lanes(lanes: [u128; 4]) -> Self {
                // SAFETY: the type is as many 16-byte lanes of plain data as `lanes_of` takes,
                // valid for every bit pattern.
                unsafe { word_of_lanes::<$t, $lanes>(lanes) }
            }
            #[inline(always)]
            fn splat(byte: u8) -> Self {
                // SAFETY: as in `from_lanes`.
                unsafe { core::mem::transmute::<[u8; $width], $t>([byte; $width]) }
            }
        }
    };
}

// Accessed only in AVX code, where `has_w256` is true.
impl_vector_word!(
    #[cfg(target_arch = "x86_64")]
    W256,
    32,
    2
);

#[cfg(target_arch = "x86_64")]
impl core::fmt::Debug for W256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [lo, hi, ..] = self.to_lanes();
        write!(f, "W256({hi:#034x}{lo:032x})")
    }
}

/// Whether this CPU has a single-instruction, 64-byte aligned load and store that the crate
/// uses for memory-like device regions (AVX-512F `vmovdqa64 zmm` on x86_64): whether [`W512`]
/// accesses may be made. Detected at run time with the `std` feature (without it, true only
/// when the crate is built with AVX-512F enabled); always false where [`W512`] does not exist
/// (other architectures, and x86_64 builds by rustc older than 1.89).
#[inline]
pub fn has_w512() -> bool {
    cfg_if::cfg_if! {
        if #[cfg(all(target_arch = "x86_64", iomem_avx512, feature = "std"))] {
            use core::sync::atomic::{AtomicU8, Ordering};
            // 0: not detected yet, 1: no, 2: yes.
            static AVX512: AtomicU8 = AtomicU8::new(0);
            match AVX512.load(Ordering::Relaxed) {
                0 => {
                    let yes = std::is_x86_feature_detected!("avx512f");
                    AVX512.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                    yes
                }
                v => v == 2,
            }
        } else if #[cfg(all(target_arch = "x86_64", iomem_avx512))] {
            cfg!(target_feature = "avx512f")
        } else {
            false
        }
    }
}

/// A 64-byte vector register's worth of data (one cache line), moved as one access. Exists
/// only on x86_64 built by rustc 1.89 or newer (`cfg(iomem_avx512)`, set by the build script).
///
/// Only used where [`has_w512`] is true: [`Mmio`] moves it with one AVX-512F `vmovdqa64`
/// (executed in a function compiled for AVX-512F, so it is never split). Elsewhere no plan
/// contains a `W512` access.
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct W512(core::arch::x86_64::__m512i);

#[cfg(all(target_arch = "x86_64", iomem_avx512))]
static_assertions::assert_eq_size!(W512, [u8; 64]);
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
static_assertions::const_assert_eq!(core::mem::align_of::<W512>(), 64);

// Accessed only in AVX-512F code, where `has_w512` is true.
impl_vector_word!(
    #[cfg(all(target_arch = "x86_64", iomem_avx512))]
    W512,
    64,
    4
);

#[cfg(all(target_arch = "x86_64", iomem_avx512))]
impl core::fmt::Debug for W512 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [l0, l1, l2, l3] = self.to_lanes();
        write!(f, "W512({l3:#034x}{l2:032x}{l1:032x}{l0:032x})")
    }
}

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
        for (k, q) in src.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(q);
            // SAFETY: the caller's contract puts all 64 bytes in bounds, 64-aligned, so each
            // 8-byte piece is aligned and in bounds (base alignment ≥ 64 ≥ 8).
            unsafe { self.write::<u64>(off + 8 * k, u64::from_le_bytes(b)) };
        }
    }
}

/// Forwards every method of a [`Backend`] to another: the one way a backend wraps or shares
/// another (a reference, an `Arc`), so none can drop a method that carries ordering.
macro_rules! forward_backend {
    ($($(#[$m:meta])* impl[$($g:tt)*] $ty:ty;)*) => {$(
        $(#[$m])*
        // SAFETY: forwards every call to `B`, which upholds the contract.
        unsafe impl<$($g)*> Backend for $ty {
            #[inline(always)]
            fn size(&self) -> usize {
                (**self).size()
            }
            #[inline(always)]
            fn base_align(&self) -> usize {
                (**self).base_align()
            }
            #[inline(always)]
            fn caching(&self) -> Caching {
                (**self).caching()
            }
            #[inline(always)]
            fn arch(&self) -> Arch {
                (**self).arch()
            }
            #[inline(always)]
            unsafe fn read<W: Word>(&self, off: usize) -> W {
                // SAFETY: the caller upholds `read`'s contract, which is the same for `B`.
                unsafe { (**self).read(off) }
            }
            #[inline(always)]
            unsafe fn write<W: Word>(&self, off: usize, value: W) {
                // SAFETY: the caller upholds `write`'s contract, which is the same for `B`.
                unsafe { (**self).write(off, value) }
            }
            #[inline(always)]
            fn barrier(&self, barrier: Barrier) {
                (**self).barrier(barrier)
            }
            #[inline(always)]
            fn barrier_after_read(&self, barrier: Barrier, loaded: u64) {
                (**self).barrier_after_read(barrier, loaded)
            }
            #[inline(always)]
            fn has_direct64(&self) -> bool {
                (**self).has_direct64()
            }
            #[inline(always)]
            unsafe fn write_direct64(&self, off: usize, src: &[u8; 64]) {
                // SAFETY: the caller upholds `write_direct64`'s contract, the same for `B`.
                unsafe { (**self).write_direct64(off, src) }
            }
        }
    )*};
}

forward_backend! {
    impl[B: Backend + ?Sized] &B;
    #[cfg(feature = "alloc")]
    impl[B: Backend + ?Sized] alloc::sync::Arc<B>;
}
