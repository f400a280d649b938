//! The wide words — 16-byte [`W128`], 32-byte [`W256`], 64-byte [`W512`] — and the widths this
//! CPU has for them: what [`WidthPolicy::MEMORY_LIKE`](crate::WidthPolicy::MEMORY_LIKE) copies
//! use ([`memory_like_width`]), detected at run time, and what this build makes inline
//! ([`INLINE_WIDTH`]).

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::{sealed, Word};
#[cfg(doc)]
use super::{Backend, Mmio};

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

/// A CPU feature detected once: `cell` holds 0 (not yet detected), 1 (absent) or 2 (present),
/// so every call after the first is one relaxed load (every copy plans with one).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn detected_once(cell: &core::sync::atomic::AtomicU8, detect: fn() -> bool) -> bool {
    use core::sync::atomic::Ordering;
    match cell.load(Ordering::Relaxed) {
        0 => {
            let yes = detect();
            cell.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
        v => v == 2,
    }
}

/// Whether this CPU has a single-instruction, 32-byte aligned load and store that the crate
/// uses for memory-like device regions (AVX `vmovdqa ymm` on x86_64). Detected at run time with
/// the `std` feature; without it, true only when the crate is built with AVX enabled.
#[inline]
pub fn has_w256() -> bool {
    cfg_if::cfg_if! {
        if #[cfg(all(target_arch = "x86_64", feature = "std"))] {
            static AVX: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
            detected_once(&AVX, || std::is_x86_feature_detected!("avx"))
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
impl W256 {
    /// The register.
    #[inline(always)]
    pub(crate) fn into_m256(self) -> core::arch::x86_64::__m256i {
        self.0
    }
}

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
            static AVX512: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
            detected_once(&AVX512, || std::is_x86_feature_detected!("avx512f"))
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
impl W512 {
    /// The register.
    #[inline(always)]
    pub(crate) fn into_m512(self) -> core::arch::x86_64::__m512i {
        self.0
    }

    /// The word of a register.
    #[inline(always)]
    pub(crate) fn from_m512(v: core::arch::x86_64::__m512i) -> Self {
        W512(v)
    }
}

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
