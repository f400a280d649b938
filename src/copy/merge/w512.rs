//! 64-byte bodies (AVX-512): each aligned memory line is two neighbouring 64-byte values merged
//! by one byte permutation (VBMI `vpermt2b`), both ways. A split 64-byte store costs about twice
//! an aligned one (4 KiB of 64-byte loads with split stores, 62 ns; with the merged aligned
//! stores, 45; Zen 4).

use core::arch::x86_64::{
    __m512i, _mm512_load_si512, _mm512_loadu_si512, _mm512_permutex2var_epi8, _mm512_store_si512,
    _mm512_storeu_si512,
};

use crate::backend::{Backend, W512};
use crate::copy::exec::{Direction, FromIoOp, ToIoOp};

/// Lines per unrolled step: the device accesses of a step are issued before its merges.
const UNROLL: usize = 8;

/// The shortest body merged: below it, the split stores cost less than the merge's setup.
const MIN_LINES: usize = 16;

/// Whether a 64-byte body of `count` lines with its memory side at `mem` goes to [`from_io`] or
/// [`to_io`]: long enough, and the memory side off a cache line. The shape only: they ask
/// whether the CPU has VBMI, out of the copy's line, so the path of a short copy (a 64-byte
/// command) holds no feature detection.
#[inline(always)]
pub(in crate::copy) fn applies(count: usize, mem: usize) -> bool {
    count >= MIN_LINES && !mem.is_multiple_of(64)
}

/// Whether the CPU has AVX-512 VBMI (`vpermt2b`), detected once with the `std` feature (without
/// it, true only in a build with the feature enabled).
#[inline]
fn has_vbmi() -> bool {
    cfg_if::cfg_if! {
        if #[cfg(feature = "std")] {
            static VBMI: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
            crate::backend::detected_once(&VBMI, || std::is_x86_feature_detected!("avx512vbmi"))
        } else {
            cfg!(target_feature = "avx512vbmi")
        }
    }
}

/// The permutation that takes bytes `k..k + 64` of the 128-byte pair `(a, b)`.
#[inline(always)]
fn window(k: usize) -> [u8; 64] {
    // CAST: `k < 64` (callers), so every index is below 128.
    core::array::from_fn(|i| (k + i) as u8)
}

/// `count` 64-byte reads from the device at `off` (64-aligned), ascending, into memory at `dst`,
/// which is not 64-aligned: where the CPU has VBMI, one unaligned store for the first line and
/// one for the last, aligned stores between them ([`merged_from_io`]); else the plain body.
///
/// # Safety
/// As for [`Direction::body`] with `W512`; `count >= 2`; the CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline(never)]
pub(in crate::copy) unsafe fn from_io<B: Backend + ?Sized>(
    b: &B,
    off: usize,
    count: usize,
    dst: *mut u8,
) {
    // SAFETY: forwarded contract; the merged body only where the CPU has VBMI.
    unsafe {
        if has_vbmi() {
            merged_from_io(b, off, count, dst)
        } else {
            FromIoOp(dst).body::<B, W512>(b, off, count, 0)
        }
    }
}

/// [`from_io`] with aligned stores between the first and the last line.
///
/// # Safety
/// As for [`from_io`], and the CPU has AVX-512 VBMI.
#[target_feature(enable = "avx512f,avx512vbmi")]
unsafe fn merged_from_io<B: Backend + ?Sized>(b: &B, off: usize, count: usize, dst: *mut u8) {
    debug_assert!(count >= 2 && !dst.addr().is_multiple_of(64));
    // Bytes of the first line that precede the first aligned memory line.
    let k = 64 - dst.addr() % 64;
    let idx = window(k);
    // SAFETY: `idx` is 64 readable bytes.
    let idx = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
    // The aligned memory line that line `j` of the body ends in starts at `aligned + 64 * j`;
    // the last of them ends at `dst + 64 * count - (64 - k)`, inside the copy.
    let aligned = dst.wrapping_add(k);
    // A macro, not a closure: the access stays in this function, compiled for AVX-512F.
    macro_rules! read {
        ($j:expr) => {
            // SAFETY: `$j < count`: a planned access of the body (the caller's contract).
            unsafe { b.read::<W512>(off + 64 * $j) }.into_m512()
        };
    }
    let mut prev = read!(0);
    // SAFETY: the first line: 64 bytes at `dst`, inside the copy.
    unsafe { _mm512_storeu_si512(dst.cast(), prev) };
    let mut j = 1;
    while j + UNROLL <= count {
        let v: [__m512i; UNROLL] = core::array::from_fn(|q| read!(j + q));
        for (q, v) in v.into_iter().enumerate() {
            let line = _mm512_permutex2var_epi8(prev, idx, v);
            // SAFETY: aligned line `j + q - 1` (64-aligned: `dst + k` is), inside the copy
            // as above, since `j + q < count`.
            unsafe { _mm512_store_si512(aligned.add(64 * (j + q - 1)).cast(), line) };
            prev = v;
        }
        j += UNROLL;
    }
    while j < count {
        let v = read!(j);
        let line = _mm512_permutex2var_epi8(prev, idx, v);
        // SAFETY: as in the loop above.
        unsafe { _mm512_store_si512(aligned.add(64 * (j - 1)).cast(), line) };
        prev = v;
        j += 1;
    }
    // SAFETY: the last line: 64 bytes at `dst + 64 * (count - 1)`, inside the copy.
    unsafe { _mm512_storeu_si512(dst.add(64 * (count - 1)).cast(), prev) };
}

/// `count` 64-byte writes to the device at `off` (64-aligned), ascending, from memory at `src`,
/// which is not 64-aligned: where the CPU has VBMI, the first and the last line by unaligned
/// loads, the others merged from aligned loads, none of which reaches outside the copy
/// ([`merged_to_io`]); else the plain body.
///
/// # Safety
/// As for [`Direction::body`] with `W512`; `count >= 2`; the CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
#[inline(never)]
pub(in crate::copy) unsafe fn to_io<B: Backend + ?Sized>(
    b: &B,
    off: usize,
    count: usize,
    src: *const u8,
) {
    // SAFETY: forwarded contract; the merged body only where the CPU has VBMI.
    unsafe {
        if has_vbmi() {
            merged_to_io(b, off, count, src)
        } else {
            ToIoOp(src).body::<B, W512>(b, off, count, 0)
        }
    }
}

/// [`to_io`] with the lines between the first and the last merged from aligned loads.
///
/// # Safety
/// As for [`to_io`], and the CPU has AVX-512 VBMI.
#[target_feature(enable = "avx512f,avx512vbmi")]
unsafe fn merged_to_io<B: Backend + ?Sized>(b: &B, off: usize, count: usize, src: *const u8) {
    debug_assert!(count >= 2 && !src.addr().is_multiple_of(64));
    // Line `j` of the body is bytes `s..64` of aligned memory line `j - 1` and bytes `0..s` of
    // line `j`, where aligned line `i` starts at `aligned + 64 * i`.
    let s = src.addr() % 64;
    let idx = window(s);
    // SAFETY: `idx` is 64 readable bytes.
    let idx = unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) };
    let aligned = src.wrapping_add(64 - s);
    // A macro, not a closure: the access stays in this function, compiled for AVX-512F.
    macro_rules! write {
        ($j:expr, $v:expr) => {
            // SAFETY: `$j < count`: a planned access of the body (the caller's contract).
            unsafe { b.write::<W512>(off + 64 * $j, W512::from_m512($v)) }
        };
    }
    // SAFETY: the first line: 64 bytes at `src`, inside the copy.
    let first = unsafe { _mm512_loadu_si512(src.cast()) };
    write!(0, first);
    // Aligned lines `0..count - 1` lie inside the copy (the last ends at
    // `src + 64 * count - s`); line `count - 1` of the body would need the one after, which
    // does not, so it is loaded unaligned.
    // SAFETY: aligned line 0, inside the copy as above (`count >= 2`).
    let mut prev = unsafe { _mm512_load_si512(aligned.cast()) };
    let mut j = 1;
    while j + UNROLL < count {
        // SAFETY: aligned lines `j..j + UNROLL`, all below `count - 1`.
        let a: [__m512i; UNROLL] = core::array::from_fn(|q| unsafe {
            _mm512_load_si512(aligned.add(64 * (j + q)).cast())
        });
        for (q, a) in a.into_iter().enumerate() {
            write!(j + q, _mm512_permutex2var_epi8(prev, idx, a));
            prev = a;
        }
        j += UNROLL;
    }
    while j + 1 < count {
        // SAFETY: aligned line `j < count - 1`.
        let a = unsafe { _mm512_load_si512(aligned.add(64 * j).cast()) };
        write!(j, _mm512_permutex2var_epi8(prev, idx, a));
        prev = a;
        j += 1;
    }
    // SAFETY: the last line: 64 bytes at `src + 64 * (count - 1)`, inside the copy.
    let last = unsafe { _mm512_loadu_si512(src.add(64 * (count - 1)).cast()) };
    write!(count - 1, last);
}
