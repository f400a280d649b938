//! Executing plans: the loops that make the planned accesses, per direction and width.

use super::Plan;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use crate::backend::W128;
#[cfg(target_arch = "x86_64")]
use crate::backend::W256;
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
use crate::backend::W512;
use crate::backend::{Backend, Word, INLINE_WIDTH};
use crate::order::Barrier;

/// What an executed plan moves, and where from or to.
#[derive(Clone, Copy)]
pub(crate) enum Transfer {
    /// Device ← memory at `src` (any alignment).
    ToIo(*const u8),
    /// Memory at `dst` (any alignment) ← device.
    FromIo(*mut u8),
    /// Device ← the byte repeated.
    Fill(u8),
}

/// One direction of a copy, monomorphised so the executor's loops hold no per-access branch.
///
/// The device side is always one [`Backend`] access of the planned width; the memory side uses
/// plain (unaligned) loads and stores, which the compiler is free to shape as it likes.
pub(super) trait Direction: Copy {
    /// One access of `W` at device offset `off`, `pos` bytes into the memory side.
    ///
    /// # Safety
    /// `off` is `W`-aligned and in bounds of `b` with `W::WIDTH <= b.base_align()`; the memory
    /// side is valid for `W::WIDTH` bytes at `pos`.
    unsafe fn one<B: Backend + ?Sized, W: Word>(self, b: &B, off: usize, pos: usize);

    /// `count` accesses of `W` from device offset `off` and memory position `pos`, in ascending
    /// order.
    ///
    /// # Safety
    /// Every access is aligned and in bounds as for [`Direction::one`]; the memory side is valid for
    /// `count * W::WIDTH` bytes from `pos`.
    unsafe fn body<B: Backend + ?Sized, W: Word>(self, b: &B, off: usize, count: usize, pos: usize);

    /// [`body`](Self::body) with `W256`, in code compiled for AVX; a read whose memory side is
    /// not 32-aligned stores aligned memory words where the CPU can merge them
    /// ([`merge`](super::merge)).
    ///
    /// # Safety
    /// As for [`body`](Self::body) with `W256`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn body_w256<B: Backend + ?Sized>(self, b: &B, off: usize, count: usize, pos: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.body::<B, W256>(b, off, count, pos) }
    }

    /// [`body`](Self::body) with `W512`, in code compiled for AVX-512F; a copy whose memory
    /// side is not 64-aligned moves aligned memory lines where the CPU can merge them
    /// ([`merge`](super::merge)).
    ///
    /// # Safety
    /// As for [`body`](Self::body) with `W512`.
    #[cfg(all(target_arch = "x86_64", iomem_avx512))]
    #[inline(always)]
    unsafe fn body_w512<B: Backend + ?Sized>(self, b: &B, off: usize, count: usize, pos: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.body::<B, W512>(b, off, count, pos) }
    }
}

/// Device ← memory.
#[derive(Clone, Copy)]
pub(super) struct ToIoOp(pub(super) *const u8);
/// Memory ← device.
#[derive(Clone, Copy)]
pub(super) struct FromIoOp(pub(super) *mut u8);
/// Device ← a repeated byte.
#[derive(Clone, Copy)]
pub(super) struct FillOp(pub(super) u8);

/// Accesses per unrolled step of a body: eight, so a 16-byte body moves two cache lines per
/// step. Volatile accesses are never merged or reordered among themselves; unrolling only
/// removes loop overhead and lets the memory-side loads of a step issue before its stores.
const UNROLL: usize = 8;

impl Direction for ToIoOp {
    #[inline(always)]
    unsafe fn one<B: Backend + ?Sized, W: Word>(self, b: &B, off: usize, pos: usize) {
        // SAFETY: the caller guarantees `src + pos` is readable for W::WIDTH bytes and the device
        // access is aligned and in bounds.
        unsafe { b.write::<W>(off, W::load_unaligned(self.0.add(pos))) }
    }

    #[inline(always)]
    unsafe fn body<B: Backend + ?Sized, W: Word>(
        self,
        b: &B,
        off: usize,
        count: usize,
        pos: usize,
    ) {
        let w = W::WIDTH;
        let (mut d, mut s) = (off, self.0.wrapping_add(pos));
        for _ in 0..count / UNROLL {
            // SAFETY: fewer than `count / UNROLL` steps were taken before this one, so all its
            // accesses are within the planned body and its loads within `count * w` bytes of
            // memory from `pos`.
            unsafe {
                // All loads of the step first: they do not wait on the step's stores, and a
                // load that 4K-aliases a just-issued store stalls once per step, not per access.
                let v: [W; UNROLL] = core::array::from_fn(|k| W::load_unaligned(s.add(k * w)));
                for (k, v) in v.into_iter().enumerate() {
                    b.write::<W>(d + k * w, v);
                }
                s = s.add(UNROLL * w);
            }
            d += UNROLL * w;
        }
        for _ in 0..count % UNROLL {
            // SAFETY: the remaining accesses of the body.
            unsafe {
                b.write::<W>(d, W::load_unaligned(s));
                s = s.add(w);
            }
            d += w;
        }
    }

    #[cfg(all(target_arch = "x86_64", iomem_avx512))]
    #[inline(always)]
    unsafe fn body_w512<B: Backend + ?Sized>(self, b: &B, off: usize, count: usize, pos: usize) {
        let src = self.0.wrapping_add(pos);
        // SAFETY: forwarded contract; the merge takes the bodies it applies to (enough lines, a
        // misaligned source); the CPU has AVX-512F, as a 64-byte body is only planned where it
        // does.
        unsafe {
            if super::merge::w512::applies(count, src.addr()) {
                super::merge::w512::to_io(b, off, count, src)
            } else {
                self.body::<B, W512>(b, off, count, pos)
            }
        }
    }
}

impl Direction for FromIoOp {
    #[inline(always)]
    unsafe fn one<B: Backend + ?Sized, W: Word>(self, b: &B, off: usize, pos: usize) {
        // SAFETY: the caller guarantees `dst + pos` is writable for W::WIDTH bytes and the device
        // access is aligned and in bounds.
        unsafe { b.read::<W>(off).store_unaligned(self.0.add(pos)) }
    }

    #[inline(always)]
    unsafe fn body<B: Backend + ?Sized, W: Word>(
        self,
        b: &B,
        off: usize,
        count: usize,
        pos: usize,
    ) {
        let w = W::WIDTH;
        let (mut s, mut d) = (off, self.0.wrapping_add(pos));
        for _ in 0..count / UNROLL {
            // SAFETY: fewer than `count / UNROLL` steps were taken before this one, so all its
            // accesses are within the planned body and its stores within `count * w` bytes of
            // memory from `pos`.
            unsafe {
                let v: [W; UNROLL] = core::array::from_fn(|k| b.read::<W>(s + k * w));
                store_step(v, d);
                d = d.add(UNROLL * w);
            }
            s += UNROLL * w;
        }
        for _ in 0..count % UNROLL {
            // SAFETY: the remaining accesses of the body.
            unsafe {
                b.read::<W>(s).store_unaligned(d);
                d = d.add(w);
            }
            s += w;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn body_w256<B: Backend + ?Sized>(self, b: &B, off: usize, count: usize, pos: usize) {
        let dst = self.0.wrapping_add(pos);
        // SAFETY: forwarded contract; the merge takes the bodies it applies to (enough words, a
        // misaligned destination); the CPU has AVX, as a 32-byte body is only planned where it
        // does.
        unsafe {
            if super::merge::w256::applies(count, dst.addr()) {
                super::merge::w256::from_io(b, off, count, dst)
            } else {
                self.body::<B, W256>(b, off, count, pos)
            }
        }
    }

    #[cfg(all(target_arch = "x86_64", iomem_avx512))]
    #[inline(always)]
    unsafe fn body_w512<B: Backend + ?Sized>(self, b: &B, off: usize, count: usize, pos: usize) {
        let dst = self.0.wrapping_add(pos);
        // SAFETY: forwarded contract; the merge takes the bodies it applies to (enough lines, a
        // misaligned destination); the CPU has AVX-512F, as a 64-byte body is only planned
        // where it does.
        unsafe {
            if super::merge::w512::applies(count, dst.addr()) {
                super::merge::w512::from_io(b, off, count, dst)
            } else {
                self.body::<B, W512>(b, off, count, pos)
            }
        }
    }
}

/// Stores one body step of device values to RAM at `d` (any alignment), one RAM store per
/// device access. (Packing 4- and 8-byte values into 16-byte RAM stores pays only on a CPU
/// that retires one store per cycle; on those that retire two, the shuffles make it slower.)
///
/// # Safety
/// `d` is writable for `UNROLL * W::WIDTH` bytes.
#[inline(always)]
unsafe fn store_step<W: Word>(v: [W; UNROLL], d: *mut u8) {
    for (k, v) in v.into_iter().enumerate() {
        // SAFETY: inside the step.
        unsafe { v.store_unaligned(d.add(k * W::WIDTH)) };
    }
}

impl Direction for FillOp {
    #[inline(always)]
    unsafe fn one<B: Backend + ?Sized, W: Word>(self, b: &B, off: usize, _pos: usize) {
        // SAFETY: the caller guarantees the device access is aligned and in bounds.
        unsafe { b.write::<W>(off, W::splat(self.0)) }
    }

    #[inline(always)]
    unsafe fn body<B: Backend + ?Sized, W: Word>(
        self,
        b: &B,
        off: usize,
        count: usize,
        _pos: usize,
    ) {
        let w = W::WIDTH;
        let v = W::splat(self.0);
        let mut i = 0;
        while i + UNROLL <= count {
            for k in 0..UNROLL {
                // SAFETY: i + UNROLL <= count: the access is within the planned body.
                unsafe { b.write::<W>(off + (i + k) * w, v) };
            }
            i += UNROLL;
        }
        while i < count {
            // SAFETY: i < count.
            unsafe { b.write::<W>(off + i * w, v) };
            i += 1;
        }
    }
}

/// One access of width `w` (a width of the plan being executed).
///
/// # Safety
/// As for [`Direction::one`], for the width `w`.
#[inline(always)]
unsafe fn one_dyn<B: Backend + ?Sized, O: Direction>(
    op: O,
    b: &B,
    off: usize,
    w: usize,
    pos: usize,
) {
    // SAFETY: forwarded contract; `w` selects the matching `Word` type.
    unsafe {
        match w {
            1 => op.one::<B, u8>(b, off, pos),
            2 => op.one::<B, u16>(b, off, pos),
            4 => op.one::<B, u32>(b, off, pos),
            8 => op.one::<B, u64>(b, off, pos),
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            16 => op.one::<B, W128>(b, off, pos),
            // Through the backend's out-of-line AVX (AVX-512F) helpers: one instruction each.
            #[cfg(target_arch = "x86_64")]
            32 => op.one::<B, W256>(b, off, pos),
            #[cfg(all(target_arch = "x86_64", iomem_avx512))]
            64 => op.one::<B, W512>(b, off, pos),
            // No plan has wider accesses on this CPU (policies are capped at its widest); were
            // one asked for, it is done as narrower accesses, never a wider one.
            _ => op.body::<B, u64>(b, off, w / 8, pos),
        }
    }
}

/// A body of general-purpose-register words, in a function of its own: eight values in flight
/// need eight registers, which the rest of [`run`] would otherwise hold (and spill).
///
/// # Safety
/// As for [`Direction::body`].
#[inline(never)]
unsafe fn body_apart<B: Backend + ?Sized, W: Word, O: Direction>(
    op: O,
    b: &B,
    off: usize,
    count: usize,
    pos: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { op.body::<B, W>(b, off, count, pos) }
}

/// The body of `count` accesses of `W` from device offset `off` and memory position `pos`, in
/// the shape each width runs fastest: a 4- or 8-byte one in a function of its own
/// ([`body_apart`]), a 32- or 64-byte one through [`Direction::body_w256`] /
/// [`Direction::body_w512`] (aligned memory words where the memory side is off them), the others
/// inline. The one body of planned and walked copies.
///
/// # Safety
/// As for [`Direction::body`]; for a 32- or 64-byte `W`, the code is compiled for AVX
/// (AVX-512F).
#[inline(always)]
pub(super) unsafe fn body<B: Backend + ?Sized, W: Word, O: Direction>(
    op: O,
    b: &B,
    off: usize,
    count: usize,
    pos: usize,
) {
    // SAFETY: forwarded contract; `W::WIDTH` is a constant, so one arm remains, and the only
    // 32-byte (64-byte) word is `W256` (`W512`).
    unsafe {
        match W::WIDTH {
            4 | 8 => body_apart::<B, W, O>(op, b, off, count, pos),
            #[cfg(target_arch = "x86_64")]
            32 => op.body_w256(b, off, count, pos),
            #[cfg(all(target_arch = "x86_64", iomem_avx512))]
            64 => op.body_w512(b, off, count, pos),
            _ => op.body::<B, W>(b, off, count, pos),
        }
    }
}

/// [`run`] compiled for AVX, for plans with a 32-byte body: the backend's 32-byte accesses
/// (inlined here) are single `vmovdqa ymm` instructions, and the memory side moves 32 bytes per
/// instruction.
///
/// # Safety
/// As for [`execute`], and the CPU has AVX ([`has_w256`](crate::backend::has_w256); a plan only
/// has a 32-byte body when its memory-like policy found it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn run_w256<B: Backend + ?Sized, O: Direction>(b: &B, plan: &Plan, op: O) {
    // SAFETY: forwarded contract.
    unsafe { run(b, plan, op) }
}

/// [`run`] compiled for AVX-512F, for plans with a 64-byte body: each 64-byte access is one
/// `vmovdqa64 zmm` (and each 32-byte one of the head or tail one `vmovdqa ymm`).
///
/// # Safety
/// As for [`execute`], and the CPU has AVX-512F ([`has_w512`](crate::backend::has_w512)).
#[cfg(all(target_arch = "x86_64", iomem_avx512))]
#[target_feature(enable = "avx512f")]
unsafe fn run_w512<B: Backend + ?Sized, O: Direction>(b: &B, plan: &Plan, op: O) {
    // SAFETY: forwarded contract.
    unsafe { run(b, plan, op) }
}

/// Executes `plan` in direction `op`, in code compiled for the plan's body width.
///
/// # Safety
/// As for [`execute`].
#[inline(always)]
unsafe fn dispatch<B: Backend + ?Sized, O: Direction>(b: &B, plan: &Plan, op: O) {
    // SAFETY: forwarded contract; a body of 32 (64) bytes is only planned where the CPU has
    // AVX (AVX-512F), by the memory-like policy.
    unsafe {
        match plan.body_width {
            // Widths this build makes inline: no call.
            w if w <= INLINE_WIDTH => run(b, plan, op),
            #[cfg(all(target_arch = "x86_64", iomem_avx512))]
            64 if plan.body_count != 0 => run_w512(b, plan, op),
            #[cfg(target_arch = "x86_64")]
            32 | 64 if plan.body_count != 0 => run_w256(b, plan, op),
            _ => run(b, plan, op),
        }
    }
}

/// Executes `plan` in direction `op`, without barriers.
///
/// # Safety
/// As for [`execute`].
#[inline(always)]
#[allow(unused_assignments)] // the last `step!` advances `off` past its final use
unsafe fn run<B: Backend + ?Sized, O: Direction>(b: &B, plan: &Plan, op: O) {
    let start = plan.start;
    let mut off = start;
    // Head: one access per set bit, smallest first; each leaves `off` aligned to the next.
    macro_rules! step {
        ($mask:expr, $t:ty) => {
            if $mask as usize & <$t as Word>::WIDTH != 0 {
                // SAFETY: planned access: aligned, inside the range (see `plan`).
                unsafe { op.one::<B, $t>(b, off, off - start) };
                off += <$t as Word>::WIDTH;
            }
        };
    }
    if plan.bytewise {
        for _ in 0..plan.head {
            // SAFETY: planned single-byte access inside the range.
            unsafe { op.one::<B, u8>(b, off, off - start) };
            off += 1;
        }
    } else {
        step!(plan.head, u8);
        step!(plan.head, u16);
        step!(plan.head, u32);
        step!(plan.head, u64);
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        step!(plan.head, W128);
        #[cfg(target_arch = "x86_64")]
        step!(plan.head, W256);
    }
    let count = plan.body_count;
    // SAFETY: the body is `body_count` aligned accesses of `body_width` inside the range.
    unsafe {
        match plan.body_width {
            1 => body::<B, u8, O>(op, b, off, count, off - start),
            2 => body::<B, u16, O>(op, b, off, count, off - start),
            4 => body::<B, u32, O>(op, b, off, count, off - start),
            8 => body::<B, u64, O>(op, b, off, count, off - start),
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            16 => body::<B, W128, O>(op, b, off, count, off - start),
            #[cfg(target_arch = "x86_64")]
            32 => body::<B, W256, O>(op, b, off, count, off - start),
            #[cfg(all(target_arch = "x86_64", iomem_avx512))]
            64 => body::<B, W512, O>(op, b, off, count, off - start),
            // As in `one_dyn`: never planned here; narrower accesses if it were.
            w => op.body::<B, u64>(b, off, count * (w / 8), off - start),
        }
    }
    off += count * plan.body_width;
    // Tail: largest first, each access aligned because `off` is aligned to the one before.
    if plan.bytewise {
        for _ in 0..plan.tail {
            // SAFETY: planned single-byte access inside the range.
            unsafe { op.one::<B, u8>(b, off, off - start) };
            off += 1;
        }
    } else {
        #[cfg(target_arch = "x86_64")]
        step!(plan.tail, W256);
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        step!(plan.tail, W128);
        step!(plan.tail, u64);
        step!(plan.tail, u32);
        step!(plan.tail, u16);
        step!(plan.tail, u8);
    }
}

/// Executes `plan` in direction `op` with `barrier` after every access.
///
/// # Safety
/// As for [`execute`].
#[inline(never)]
unsafe fn run_each<B: Backend + ?Sized, O: Direction>(b: &B, plan: &Plan, op: O, barrier: Barrier) {
    for a in plan.accesses() {
        // SAFETY: every planned access is aligned and inside the planned range.
        unsafe { one_dyn(op, b, a.offset, a.width, a.offset - plan.start) };
        b.barrier(barrier);
    }
}

/// Executes `plan` against `b`, with `each` after every access if given.
///
/// # Safety
/// The plan's range is in bounds of `b`, its maximum width is ≤ `b.base_align()`, and the memory
/// side of `transfer` is valid for the plan's whole length.
#[inline(always)]
pub(crate) unsafe fn execute<B: Backend + ?Sized>(
    b: &B,
    plan: &Plan,
    transfer: Transfer,
    each: Option<Barrier>,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match (transfer, each) {
            (Transfer::ToIo(src), None) => dispatch(b, plan, ToIoOp(src)),
            (Transfer::FromIo(dst), None) => dispatch(b, plan, FromIoOp(dst)),
            (Transfer::Fill(byte), None) => dispatch(b, plan, FillOp(byte)),
            (Transfer::ToIo(src), Some(x)) => run_each(b, plan, ToIoOp(src), x),
            (Transfer::FromIo(dst), Some(x)) => run_each(b, plan, FromIoOp(dst), x),
            (Transfer::Fill(byte), Some(x)) => run_each(b, plan, FillOp(byte), x),
        }
    }
}
