//! The volatile copy loops the `copy` section times next to the crate's copies: per-byte and
//! u64 loops with a byte head and tail (the shape of a generic driver's `iowrite64` loop), and
//! width-limited reference loops of exactly one access width, without head or tail.

use std::ptr;

/// Per-byte volatile loop, RAM → io.
///
/// # Safety
/// `src` readable and `dst` writable for `n` bytes; `dst` is RAM we own (the io buffer).
#[inline(never)]
pub(super) unsafe fn volatile_u8_to(dst: *mut u8, src: *const u8, n: usize) {
    for i in 0..n {
        // SAFETY: i < n, within both ranges by the caller's contract.
        unsafe { ptr::write_volatile(dst.add(i), *src.add(i)) };
    }
}

/// Per-byte volatile loop, io → RAM.
///
/// # Safety
/// As for [`volatile_u8_to`], with the directions swapped.
#[inline(never)]
pub(super) unsafe fn volatile_u8_from(dst: *mut u8, src: *const u8, n: usize) {
    for i in 0..n {
        // SAFETY: i < n, within both ranges by the caller's contract.
        unsafe { *dst.add(i) = ptr::read_volatile(src.add(i)) };
    }
}

/// A plain u64 volatile loop, RAM → io: bytes until the io address is 8-aligned, u64 accesses,
/// bytes for the tail.
///
/// # Safety
/// As for [`volatile_u8_to`].
#[inline(never)]
pub(super) unsafe fn volatile_u64_to(dst: *mut u8, src: *const u8, n: usize) {
    let head = (dst.align_offset(8)).min(n);
    let mut i = 0;
    while i < head {
        // SAFETY: i < n.
        unsafe { ptr::write_volatile(dst.add(i), *src.add(i)) };
        i += 1;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, and `dst + i` is 8-aligned after the head.
        unsafe {
            let v = ptr::read_unaligned(src.add(i).cast::<u64>());
            ptr::write_volatile(dst.add(i).cast::<u64>(), v);
        }
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        unsafe { ptr::write_volatile(dst.add(i), *src.add(i)) };
        i += 1;
    }
}

/// The u64 volatile loop, io → RAM.
///
/// # Safety
/// As for [`volatile_u8_from`].
#[inline(never)]
pub(super) unsafe fn volatile_u64_from(dst: *mut u8, src: *const u8, n: usize) {
    let head = (src.align_offset(8)).min(n);
    let mut i = 0;
    while i < head {
        // SAFETY: i < n.
        unsafe { *dst.add(i) = ptr::read_volatile(src.add(i)) };
        i += 1;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, and `src + i` is 8-aligned after the head.
        unsafe {
            let v = ptr::read_volatile(src.add(i).cast::<u64>());
            ptr::write_unaligned(dst.add(i).cast::<u64>(), v);
        }
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        unsafe { *dst.add(i) = ptr::read_volatile(src.add(i)) };
        i += 1;
    }
}

/// A volatile copy loop: `(dst, src, n)`, with the safety contract of [`volatile_u8_to`] or
/// [`volatile_u8_from`] (and those of the width-limited loops).
pub(super) type VolatileFn = unsafe fn(*mut u8, *const u8, usize);

/// Accesses per step of the width-limited reference loops (as in the crate's copy loops).
const UNROLL: usize = 8;

/// The word types of the width-limited loops: unsigned integers, for which every bit pattern
/// is a valid value, so any bytes may be loaded as one.
pub(super) trait LoopWord: Copy {}
impl LoopWord for u32 {}
impl LoopWord for u64 {}

/// Width-limited reference loop, RAM → io: `n / size_of::<T>()` volatile `T` stores, eight
/// per step, each step's RAM side read first with one plain unaligned load. No head and no
/// tail: the last `n % size_of::<T>()` bytes are not copied.
///
/// # Safety
/// As for [`volatile_u8_to`], and `dst` is aligned for `T`.
#[inline(never)]
pub(super) unsafe fn width_loop_to<T: LoopWord>(dst: *mut u8, src: *const u8, n: usize) {
    let (d, s) = (dst.cast::<T>(), src.cast::<T>());
    let words = n / std::mem::size_of::<T>();
    let mut i = 0;
    while i + UNROLL <= words {
        // SAFETY: i + UNROLL <= words, so the step's words lie within the `n` bytes of both
        // ranges; `d` is aligned for `T`, so is `d + i`.
        unsafe {
            let v = ptr::read_unaligned(s.add(i).cast::<[T; UNROLL]>());
            for (k, v) in v.into_iter().enumerate() {
                ptr::write_volatile(d.add(i + k), v);
            }
        }
        i += UNROLL;
    }
    while i < words {
        // SAFETY: i < words, as above.
        unsafe { ptr::write_volatile(d.add(i), ptr::read_unaligned(s.add(i))) };
        i += 1;
    }
}

/// Width-limited reference loop, io → RAM: `n / size_of::<T>()` volatile `T` loads, eight per
/// step, each step's RAM side written with one plain unaligned store. No head and no tail.
///
/// # Safety
/// As for [`volatile_u8_from`], and `src` is aligned for `T`.
#[inline(never)]
pub(super) unsafe fn width_loop_from<T: LoopWord>(dst: *mut u8, src: *const u8, n: usize) {
    let (d, s) = (dst.cast::<T>(), src.cast::<T>());
    let words = n / std::mem::size_of::<T>();
    let mut i = 0;
    while i + UNROLL <= words {
        // SAFETY: i + UNROLL <= words, so the step's words lie within the `n` bytes of both
        // ranges; `s` is aligned for `T`, so is `s + i`.
        unsafe {
            let v: [T; UNROLL] = std::array::from_fn(|k| ptr::read_volatile(s.add(i + k)));
            ptr::write_unaligned(d.add(i).cast::<[T; UNROLL]>(), v);
        }
        i += UNROLL;
    }
    while i < words {
        // SAFETY: i < words, as above.
        unsafe { ptr::write_unaligned(d.add(i), ptr::read_volatile(s.add(i))) };
        i += 1;
    }
}

/// The width-limited reference loops: (variant name, width in bytes).
pub(super) const WIDTH_LOOPS: [(&str, usize); 2] = [("u32_loop", 4), ("u64_loop", 8)];
