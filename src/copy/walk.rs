//! Copies under a greedy policy (memory-like or a fixed width), planned and executed in one
//! pass, with no [`Plan`](super::Plan) built.
//!
//! A short copy's cost (a 64-byte command) is its fixed overhead, not its bytes: building a plan
//! and matching on it cost more than the handful of accesses, and a long one gains nothing from
//! it. Here the greedy plan is walked directly — narrowing accesses up to alignment, the body of
//! `max`-wide ones (the executor's [`body`](super::exec::body), unrolled), narrowing ones to
//! the end; an aligned whole-word copy is the body alone — inline where `max` is at most
//! [`INLINE_WIDTH`](crate::backend::INLINE_WIDTH), else in one call into code compiled for
//! `max` (AVX, AVX-512F). The accesses are exactly those of [`plan`](super::plan) for the same
//! range and width (the property tests compare the traces with the greedy model).

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::backend::W128;
#[cfg(target_arch = "x86_64")]
use crate::backend::W256;
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
use crate::backend::W512;
use crate::backend::{Backend, Word, INLINE_WIDTH};

/// The word of [`INLINE_WIDTH`].
#[cfg(all(target_arch = "x86_64", iomem_avx512, target_feature = "avx512f"))]
type InlineWord = W512;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx",
    not(all(iomem_avx512, target_feature = "avx512f"))
))]
type InlineWord = W256;
#[cfg(any(
    all(target_arch = "x86_64", not(target_feature = "avx")),
    target_arch = "aarch64"
))]
type InlineWord = W128;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
type InlineWord = u64;
static_assertions::const_assert_eq!(<InlineWord as Word>::WIDTH, INLINE_WIDTH);

use super::exec::{body, Direction, FillOp, FromIoOp, ToIoOp};
use super::Transfer;

/// The greedy accesses of `[off, off + len)` with widths up to `M::WIDTH`, in direction `op`:
/// narrowing accesses up to `M`-alignment (ascending; if one does not fit, the tail takes
/// over), `M`-wide ones while they fit, then narrowing ones (largest first). Every width test
/// against `M` is a constant.
///
/// # Safety
/// The range is in bounds of `b`; `M::WIDTH <= b.base_align()`; the CPU has `M` (for the vector
/// words, [`has_w256`](crate::backend::has_w256) / [`has_w512`](crate::backend::has_w512) is
/// true; wider than [`INLINE_WIDTH`] only from [`walk_w256`] / [`walk_w512`]); the memory side
/// is valid for `len` bytes.
#[inline(always)]
#[allow(unused_assignments)] // the last tail step advances `at` past its final use
unsafe fn walk<B: Backend + ?Sized, M: Word, O: Direction>(b: &B, off: usize, len: usize, op: O) {
    let end = off + len;
    let mut at = off;
    if (off | len) % M::WIDTH == 0 {
        // Aligned start and whole words (a command, an aligned buffer): the body alone.
        // SAFETY: `off` is `M`-aligned and the range is `len / M::WIDTH` whole words.
        unsafe { body::<B, M, O>(op, b, off, len / M::WIDTH, 0) };
        return;
    }
    // Head: one access per set low bit of `at`, smallest first, while it fits.
    macro_rules! head {
        ($done:lifetime, $t:ty) => {
            let w = <$t as Word>::WIDTH;
            if w < M::WIDTH && at & w != 0 {
                if end - at < w {
                    break $done;
                }
                // SAFETY: `at` has bit `w` as its lowest set bit (the smaller ones were
                // cleared before), so it is `w`-aligned, and `w` bytes remain.
                unsafe { op.one::<B, $t>(b, at, at - off) };
                at += w;
            }
        };
    }
    #[allow(clippy::never_loop)]
    'head: loop {
        head!('head, u8);
        head!('head, u16);
        head!('head, u32);
        head!('head, u64);
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        head!('head, W128);
        #[cfg(target_arch = "x86_64")]
        head!('head, W256);
        // Body: `M`-aligned here, `M`-wide accesses while they fit.
        let count = (end - at) / M::WIDTH;
        // SAFETY: `at` is `M`-aligned and `count` whole words remain.
        unsafe { body::<B, M, O>(op, b, at, count, at - off) };
        at += count * M::WIDTH;
        break;
    }
    // Tail: fewer than `M::WIDTH` bytes remain and `at` is aligned to every smaller width.
    macro_rules! tail {
        ($t:ty) => {
            let w = <$t as Word>::WIDTH;
            if w < M::WIDTH && end - at >= w {
                // SAFETY: `at` is `w`-aligned (see above) and `w` bytes remain.
                unsafe { op.one::<B, $t>(b, at, at - off) };
                at += w;
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    tail!(W256);
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    tail!(W128);
    tail!(u64);
    tail!(u32);
    tail!(u16);
    tail!(u8);
}

/// [`walk`] with 32-byte accesses, compiled for AVX (one call per copy).
///
/// # Safety
/// As for [`walk`], and the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline(never)]
unsafe fn walk_w256<B: Backend + ?Sized, O: Direction>(b: &B, off: usize, len: usize, op: O) {
    // SAFETY: forwarded contract.
    unsafe { walk::<B, W256, O>(b, off, len, op) }
}

/// [`walk`] with 64-byte accesses, compiled for AVX-512F (one call per copy).
///
/// # Safety
/// As for [`walk`], and the CPU has AVX-512F.
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[target_feature(enable = "avx512f")]
#[inline(never)]
unsafe fn walk_w512<B: Backend + ?Sized, O: Direction>(b: &B, off: usize, len: usize, op: O) {
    // SAFETY: forwarded contract.
    unsafe { walk::<B, W512, O>(b, off, len, op) }
}

/// [`walk`] with the widest access `max`: inline up to [`INLINE_WIDTH`], else one call into
/// code compiled for `max`.
///
/// # Safety
/// As for [`walk`], with `max` for `M::WIDTH` (a power of two the CPU has, ≤ the backend's
/// base alignment).
#[inline(always)]
unsafe fn walk_max<B: Backend + ?Sized, O: Direction>(
    b: &B,
    off: usize,
    len: usize,
    max: usize,
    op: O,
) {
    // SAFETY: forwarded contract; each arm's `M` is `max` wide.
    unsafe {
        // The CPU's widest and the inline width first, as plain branches (not a jump table).
        #[cfg(all(target_arch = "x86_64", iomem_avx512))]
        if max == 64 && INLINE_WIDTH < 64 {
            return walk_w512(b, off, len, op);
        }
        #[cfg(target_arch = "x86_64")]
        if max == 32 && INLINE_WIDTH < 32 {
            return walk_w256(b, off, len, op);
        }
        if max == INLINE_WIDTH {
            return walk::<B, InlineWord, O>(b, off, len, op);
        }
        match max {
            1 => walk::<B, u8, O>(b, off, len, op),
            2 => walk::<B, u16, O>(b, off, len, op),
            4 => walk::<B, u32, O>(b, off, len, op),
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            16 => walk::<B, W128, O>(b, off, len, op),
            #[cfg(all(target_arch = "x86_64", target_feature = "avx"))]
            32 => walk::<B, W256, O>(b, off, len, op),
            #[cfg(all(target_arch = "x86_64", iomem_avx512, target_feature = "avx512f"))]
            64 => walk::<B, W512, O>(b, off, len, op),
            // 8, and (never asked for) anything wider than this build has inline: at most 8.
            _ => walk::<B, u64, O>(b, off, len, op),
        }
    }
}

/// Executes the copy `transfer` on `[off, off + len)` with accesses up to `max`, without
/// barriers.
///
/// # Safety
/// As for [`walk_max`].
#[inline(always)]
pub(crate) unsafe fn execute_walk<B: Backend + ?Sized>(
    b: &B,
    off: usize,
    len: usize,
    max: usize,
    transfer: Transfer,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match transfer {
            Transfer::ToIo(src) => walk_max(b, off, len, max, ToIoOp(src)),
            Transfer::FromIo(dst) => walk_max(b, off, len, max, FromIoOp(dst)),
            Transfer::Fill(byte) => walk_max(b, off, len, max, FillOp(byte)),
        }
    }
}

/// One 32-byte access, in code compiled for AVX (one `vmovdqa ymm`).
///
/// # Safety
/// As for [`Direction::one`] with `W256`, and the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline(never)]
unsafe fn one_w256<B: Backend + ?Sized, O: Direction>(b: &B, off: usize, op: O) {
    // SAFETY: forwarded contract.
    unsafe { op.one::<B, W256>(b, off, 0) }
}

/// One 64-byte access, in code compiled for AVX-512F (one `vmovdqa64 zmm`).
///
/// # Safety
/// As for [`Direction::one`] with `W512`, and the CPU has AVX-512F.
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[target_feature(enable = "avx512f")]
#[inline(never)]
unsafe fn one_w512<B: Backend + ?Sized, O: Direction>(b: &B, off: usize, op: O) {
    // SAFETY: forwarded contract.
    unsafe { op.one::<B, W512>(b, off, 0) }
}

/// A copy that is one whole word: `len` of 16, 32 or 64 bytes at `off % len == 0` (a
/// 64-byte command, a 16-byte register block), in direction `transfer` — the one access
/// [`walk`] makes for it, with no walk: a 16-byte word inline, a 32- or 64-byte one in one call
/// into code compiled for it.
///
/// # Safety
/// As for [`walk_max`] with `max = len`: the range is in bounds, `off` is `len`-aligned, the
/// CPU has the `len`-byte word and the backend's base alignment holds it; the memory side is
/// valid for `len` bytes.
#[inline(always)]
pub(crate) unsafe fn execute_word<B: Backend + ?Sized>(
    b: &B,
    off: usize,
    len: usize,
    transfer: Transfer,
) {
    #[inline(always)]
    unsafe fn one<B: Backend + ?Sized, O: Direction>(b: &B, off: usize, len: usize, op: O) {
        // SAFETY: forwarded contract: each arm's word is `len` wide.
        unsafe {
            #[cfg(all(target_arch = "x86_64", iomem_avx512))]
            if len == 64 {
                return one_w512(b, off, op);
            }
            #[cfg(target_arch = "x86_64")]
            if len == 32 {
                return one_w256(b, off, op);
            }
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            if len == 16 {
                return op.one::<B, W128>(b, off, 0);
            }
            // A word this build has no access for (never asked for): the walk.
            walk_max(b, off, len, len, op)
        }
    }
    // SAFETY: forwarded contract.
    unsafe {
        match transfer {
            Transfer::ToIo(src) => one(b, off, len, ToIoOp(src)),
            Transfer::FromIo(dst) => one(b, off, len, FromIoOp(dst)),
            Transfer::Fill(byte) => one(b, off, len, FillOp(byte)),
        }
    }
}
