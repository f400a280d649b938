//! 32-byte bodies read from the device into memory that is not 32-aligned (AVX2): each aligned
//! memory word is bytes `k..k + 32` of two neighbouring device values, built by one lane
//! permutation and one in-lane byte shift (`vperm2i128`, `vpalignr`). With split stores, 4 KiB
//! read into memory off by a byte runs at about half the speed of the aligned copy (Zen 3).

use core::arch::x86_64::{
    __m256i, _mm256_alignr_epi8, _mm256_permute2x128_si256, _mm256_store_si256, _mm256_storeu_si256,
};

use crate::backend::{Backend, W256};
use crate::copy::exec::{Direction, FromIoOp};

/// Words per unrolled step: the device accesses of a step are issued before its merges.
const UNROLL: usize = 8;

/// The shortest body merged (3 KiB): below it, the split stores cost less than the jump into
/// the merge and its setup (Zen 3, memory off by 1, 17 or 63 bytes: 2 KiB 23.8 ns split,
/// 24.6–24.8 merged; 3 KiB 45.1–45.4 split, 34.4–44.1 merged; 4064 bytes 53.1 split, 45.9–47.0
/// merged).
const MIN_WORDS: usize = 96;

/// Whether a 32-byte body of `count` words with its memory side at `mem` goes to [`from_io`]:
/// long enough, and the memory side off a 32-byte word. The shape only: [`from_io`] asks
/// whether the CPU has AVX2, out of the copy's line, so the path of a short copy holds no
/// feature detection (whose call, inline, made every 64-byte read save and restore six
/// registers).
#[inline(always)]
pub(in crate::copy) fn applies(count: usize, mem: usize) -> bool {
    count >= MIN_WORDS && mem % 32 != 0
}

/// Whether the CPU has AVX2 (`vpalignr ymm`, `vperm2i128`), detected once with the `std` feature
/// (without it, true only in a build with the feature enabled).
#[inline]
fn has_avx2() -> bool {
    cfg_if::cfg_if! {
        if #[cfg(feature = "std")] {
            static AVX2: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
            crate::backend::detected_once(&AVX2, || std::is_x86_feature_detected!("avx2"))
        } else {
            cfg!(target_feature = "avx2")
        }
    }
}

/// `count` 32-byte reads from the device at `off` (32-aligned), ascending, into memory at `dst`,
/// which is not 32-aligned: where the CPU has AVX2, one unaligned store for the first word and
/// one for the last, aligned stores between them ([`merged`]); else the plain body.
///
/// # Safety
/// As for [`Direction::body`] with `W256`; `count >= 2`; the CPU has AVX.
#[target_feature(enable = "avx")]
#[inline(never)]
pub(in crate::copy) unsafe fn from_io<B: Backend + ?Sized>(
    b: &B,
    off: usize,
    count: usize,
    dst: *mut u8,
) {
    // SAFETY: forwarded contract; `merged` only where the CPU has AVX2.
    unsafe {
        if has_avx2() {
            merged(b, off, count, dst)
        } else {
            FromIoOp(dst).body::<B, W256>(b, off, count, 0)
        }
    }
}

/// [`from_io`] with aligned stores between the first and the last word.
///
/// # Safety
/// As for [`from_io`], and the CPU has AVX2.
#[target_feature(enable = "avx,avx2")]
unsafe fn merged<B: Backend + ?Sized>(b: &B, off: usize, count: usize, dst: *mut u8) {
    debug_assert!(count >= 2 && dst.addr() % 32 != 0);
    // Bytes of the first word that precede the first aligned memory word: 1..=31.
    let k = 32 - dst.addr() % 32;
    // One body per shift (`vpalignr` takes it as an immediate).
    macro_rules! by_shift {
        ($($k:literal => $s:literal $upper:literal),* $(,)?) => {
            match k {
                // SAFETY: forwarded contract; the arm's shift is `k`.
                $($k => unsafe { shifted::<B, $s, $upper>(b, off, count, dst) },)*
                // SAFETY: forwarded contract: the plain body.
                _ => unsafe { FromIoOp(dst).body::<B, W256>(b, off, count, 0) },
            }
        };
    }
    by_shift!(
            1 => 1 false,
            2 => 2 false,
            3 => 3 false,
            4 => 4 false,
            5 => 5 false,
            6 => 6 false,
            7 => 7 false,
            8 => 8 false,
            9 => 9 false,
            10 => 10 false,
            11 => 11 false,
            12 => 12 false,
            13 => 13 false,
            14 => 14 false,
            15 => 15 false,
            16 => 0 true,
            17 => 1 true,
            18 => 2 true,
            19 => 3 true,
            20 => 4 true,
            21 => 5 true,
            22 => 6 true,
            23 => 7 true,
            24 => 8 true,
            25 => 9 true,
            26 => 10 true,
            27 => 11 true,
            28 => 12 true,
            29 => 13 true,
            30 => 14 true,
            31 => 15 true
    )
}

/// [`merged`] for `k = S + 16 * UPPER` (`S < 16`): aligned memory word `j - 1` is bytes
/// `k..k + 32` of device values `j - 1` and `j`. With `mid` the lanes `(prev.hi, v.lo)`, those
/// are the lane pairs `(prev, mid)` shifted by `S` (`k < 16`), or `(mid, v)` (`k ≥ 16`): one
/// `vperm2i128` and one `vpalignr` per word.
///
/// A misaligned 32-byte store costs two aligned ones on Zen 2: 4 KiB read into memory off by 1
/// or 8 bytes takes 82–83 ns with split stores, and 75.5 with this merge at every offset
/// measured (1, 8, 16, 17, 24, 63), against memcpy's 40–42, which may load its source
/// unaligned. The merge's floor there is its lane crossing: each aligned word off by 1..=31
/// bytes takes bytes from two device lanes, and any lane-crossing shuffle (`vperm2i128`,
/// `vpermq`, `vinserti128`) beside a store per word runs at 2 cycles a word, a lane-local one
/// at 1 (scratch loops over RAM).
///
/// # Safety
/// As for [`merged`], and `k` is the bytes of `dst` before the next 32-byte boundary.
#[target_feature(enable = "avx,avx2")]
#[allow(unused_unsafe)] // the intrinsics are `unsafe fn` on older compilers, safe here on newer
unsafe fn shifted<B: Backend + ?Sized, const S: i32, const UPPER: bool>(
    b: &B,
    off: usize,
    count: usize,
    dst: *mut u8,
) {
    // CAST: `S < 16`
    let k = S as usize + if UPPER { 16 } else { 0 };
    // The aligned memory word that value `j` of the body ends in starts at `aligned + 32 * j`;
    // the last of them ends at `dst + 32 * count - (32 - k)`, inside the copy.
    let aligned = dst.wrapping_add(k);
    // Macros, not closures: the accesses and shuffles stay in this function, compiled for AVX2.
    macro_rules! read {
        ($j:expr) => {
            // SAFETY: `$j < count`: a planned access of the body (the caller's contract).
            unsafe { b.read::<W256>(off + 32 * $j) }.into_m256()
        };
    }
    macro_rules! merged {
        ($prev:expr, $v:expr) => {
            // SAFETY: AVX2 is enabled here; the intrinsics and the empty `asm!` compute values.
            unsafe {
                let mut mid = _mm256_permute2x128_si256::<0x21>($prev, $v);
                // Hidden from the optimiser where the shift is whole 8-byte words: it folds the
                // two shuffles into a `vpermq` and a blend, which on Zen 3 read 4 KiB into memory
                // off by 8 in 50.8 ns, against 47.6 split and 46.2 for the other shifts with
                // these two shuffles (on Zen 2 both forms take 75.5 ns). The template is empty:
                // no instruction, no memory, no flags; `mid` stays in its register.
                if S == 8 {
                    core::arch::asm!(
                        "/* {0} */",
                        inout(ymm_reg) mid,
                        options(pure, nomem, nostack, preserves_flags)
                    );
                }
                if UPPER {
                    _mm256_alignr_epi8::<S>($v, mid)
                } else {
                    _mm256_alignr_epi8::<S>(mid, $prev)
                }
            }
        };
    }
    let mut prev = read!(0);
    // SAFETY: the first word: 32 bytes at `dst`, inside the copy.
    unsafe { _mm256_storeu_si256(dst.cast(), prev) };
    let mut j = 1;
    while j + UNROLL <= count {
        let v: [__m256i; UNROLL] = core::array::from_fn(|q| read!(j + q));
        for (q, v) in v.into_iter().enumerate() {
            let word = merged!(prev, v);
            // SAFETY: aligned word `j + q - 1` (32-aligned: `dst + k` is), inside the copy as
            // above, since `j + q < count`.
            unsafe { _mm256_store_si256(aligned.add(32 * (j + q - 1)).cast(), word) };
            prev = v;
        }
        j += UNROLL;
    }
    while j < count {
        let v = read!(j);
        let word = merged!(prev, v);
        // SAFETY: as in the loop above.
        unsafe { _mm256_store_si256(aligned.add(32 * (j - 1)).cast(), word) };
        prev = v;
        j += 1;
    }
    // SAFETY: the last word: 32 bytes at `dst + 32 * (count - 1)`, inside the copy.
    unsafe { _mm256_storeu_si256(dst.add(32 * (count - 1)).cast(), prev) };
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::backend::MockIo;
    use alloc::vec::Vec;

    /// Every shift (the memory side 1..=31 bytes off a 32-byte word), bodies of 2 to 19 words
    /// (the unrolled step and each remainder): the device sees `count` ascending 32-byte reads,
    /// the memory side gets exactly the device's bytes, and no byte around them changes.
    #[test]
    fn every_shift_moves_exactly_the_body() {
        if !has_avx2() {
            std::println!("skipped: this CPU has no AVX2");
            return;
        }
        let device: Vec<u8> = (0..19 * 32).map(|i| (i * 7 + 3) as u8).collect();
        let mock = MockIo::new(device.len()).with_max_width(32);
        mock.poke(0, &device);
        let guard = 0xc3;
        for mis in 1..32 {
            for count in [2usize, 3, 7, 8, 9, 10, 15, 16, 17, 19] {
                // The copy `mis` bytes past a 64-byte boundary, a line or more into the buffer.
                let mut buf: Vec<u8> = alloc::vec![guard; 32 * count + 3 * 64];
                let start = 64 + (64 - buf.as_ptr().addr() % 64) % 64 + mis;
                mock.clear_events();
                // The CPU has AVX2 (checked above) and so AVX; `start` is 1..32 past a 64-byte
                // boundary and below 3 * 64, so `buf` holds the `32 * count` bytes from it.
                // SAFETY: as above; the mock holds `count` 32-byte words at 0; `buf` is unused.
                unsafe { from_io(&mock, 0, count, buf.as_mut_ptr().add(start)) };
                let reads: Vec<(usize, usize)> =
                    mock.reads().iter().map(|a| (a.offset, a.width)).collect();
                let planned: Vec<(usize, usize)> = (0..count).map(|j| (32 * j, 32)).collect();
                assert_eq!(reads, planned, "memory +{mis}, {count} words");
                let got = &buf[..];
                let end = start + 32 * count;
                assert_eq!(
                    &got[start..end],
                    &device[..32 * count],
                    "+{mis}, {count} words"
                );
                assert!(
                    got[..start].iter().chain(&got[end..]).all(|&b| b == guard),
                    "memory +{mis}, {count} words: wrote outside the copy"
                );
            }
        }
    }
}
