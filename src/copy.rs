//! Access plans and the copies that execute them: `memcpy_toio`, `memcpy_fromio`, `memset_io`.
//!
//! A device sees every access the CPU makes, so the shape of a copy matters: a device may reject
//! 64-bit accesses, treat a 1-byte write to a 32-bit register as a different operation, or fault
//! on an access that crosses a register. This module turns `(offset, len, max width)` into a
//! [`Plan`]: a head of narrowing-to-alignment accesses, a body of `max`-wide accesses and a tail
//! of narrowing accesses, where
//! - every access is naturally aligned (`offset % width == 0`);
//! - no access is wider than the policy's maximum;
//! - no access touches a byte outside `[offset, offset + len)` (never widened);
//! - no access is split, and every byte is touched exactly once.
//!
//! Planning is a pure function, tested and fuzzed on its own; every backend executes the same
//! plan, so the mock's trace shows exactly what the real backend does. The memory side of a copy
//! may have any alignment: it is read and written with unaligned loads and stores, which are
//! RAM accesses and cost nothing extra on current CPUs.
//!
//! The kernel's counterparts are `lib/iomem_copy.c` (long-sized body) and powerpc's
//! `arch/powerpc/kernel/io.c` (u32 body).
//!
//! # Speed
//! Execution is monomorphised per direction and body width, so a body is a straight loop of
//! volatile accesses, unrolled eight times with the memory-side loads of a step issued before
//! its device-side stores (no per-access branch, and a load that 4K-aliases a recent store costs
//! once per step). Planning uses masks and shifts only. A 32-byte body runs in a function
//! compiled for AVX, so each of its device accesses is one `vmovdqa ymm`. On RAM (the `report`
//! example's `copy` section) the copies run as fast as the CPU retires stores of the planned
//! width: the memory-like policy's 32-byte body keeps up with a plain `memcpy` from 4 KiB up;
//! 16-byte bodies reach about 0.6 of it while data stays in L1 and close to 1 from L2 on;
//! 8-byte bodies move half the bytes per store of 16-byte ones. Unlike `rep movsb`, the copies
//! do not slow down when `dst - src` is 1..63 (mod 4096).

use core::fmt;

use crate::backend::{has_w256, Backend, Word, HAS_W128, W128, W256};
use crate::error::{Error, Result};
use crate::order::Barrier;

/// The widest single access a copy may make.
///
/// Part of every [`IoMem`](crate::IoMem) handle. It governs bulk copies and typed reads/writes of
/// structures; single-register accessors (`read32`, `try_write64`, …) always make exactly the
/// access they name.
///
/// [`WidthPolicy::MEMORY_LIKE`] is a class rather than a number: its width is the widest the CPU
/// has ([`has_w256`], [`HAS_W128`]), limited by the alignment of the mapping it is used on
/// (a handle's policy is clamped to its backend's base alignment). All memory-like policies
/// compare equal.
#[derive(Clone, Copy)]
pub struct WidthPolicy {
    /// Widest access; for a memory-like policy, the cap from the mapping's alignment.
    max: u8,
    memory_like: bool,
}

/// Widest single access of this CPU.
#[inline]
fn widest() -> usize {
    if has_w256() {
        32
    } else if HAS_W128 {
        16
    } else {
        8
    }
}

impl WidthPolicy {
    /// At most 8-bit accesses.
    pub const U8: WidthPolicy = WidthPolicy::fixed(1);
    /// At most 16-bit accesses.
    pub const U16: WidthPolicy = WidthPolicy::fixed(2);
    /// At most 32-bit accesses: powerpc's `memcpy_toio`, and devices that reject 64-bit accesses.
    pub const U32: WidthPolicy = WidthPolicy::fixed(4);
    /// At most 64-bit accesses: register files, Linux `lib/iomem_copy.c` on 64-bit machines.
    pub const U64: WidthPolicy = WidthPolicy::fixed(8);
    /// Memory-like regions (a prefetchable BAR: NVMe CMB, GPU aperture): the widest single
    /// aligned load/store the CPU has — 32 bytes on x86_64 with AVX (detected at run time),
    /// 16 bytes on other x86_64 and aarch64, 8 elsewhere — on mappings aligned to it.
    pub const MEMORY_LIKE: WidthPolicy = WidthPolicy {
        max: 32,
        memory_like: true,
    };

    const fn fixed(max: u8) -> Self {
        WidthPolicy {
            max,
            memory_like: false,
        }
    }

    /// A policy allowing accesses up to `max` bytes: 1, 2, 4, 8, or 16 where the CPU has a
    /// 16-byte access ([`HAS_W128`]). (32-byte accesses come only with
    /// [`WidthPolicy::MEMORY_LIKE`].)
    pub const fn new(max: usize) -> Result<Self> {
        match max {
            1 | 2 | 4 | 8 => Ok(WidthPolicy::fixed(max as u8)),
            16 if HAS_W128 => Ok(WidthPolicy::fixed(16)),
            _ => Err(Error::InvalidArgument(
                "width policy must be 1, 2, 4, 8 or (on x86_64/aarch64) 16 bytes",
            )),
        }
    }

    /// The widest access allowed, in bytes.
    #[inline]
    pub fn max_width(self) -> usize {
        if self.memory_like {
            widest().min(self.max as usize)
        } else {
            self.max as usize
        }
    }

    /// Whether this is [`WidthPolicy::MEMORY_LIKE`].
    pub const fn is_memory_like(self) -> bool {
        self.memory_like
    }

    /// This policy limited to accesses no wider than `align` (a mapping's base alignment, ≥ 1):
    /// unchanged if it fits; a memory-like policy stays memory-like with a smaller cap; any other
    /// becomes the largest power of two ≤ `align`, at most 8 bytes.
    pub fn clamped(self, align: usize) -> WidthPolicy {
        if self.max_width() <= align {
            return self;
        }
        let pow2 = |n: usize| 1usize << (usize::BITS - 1 - n.max(1).leading_zeros());
        if self.memory_like {
            WidthPolicy {
                max: pow2(align).min(32) as u8,
                memory_like: true,
            }
        } else {
            WidthPolicy::fixed(pow2(align).min(8) as u8)
        }
    }
}

impl PartialEq for WidthPolicy {
    fn eq(&self, other: &Self) -> bool {
        match (self.memory_like, other.memory_like) {
            (true, true) => true,
            (false, false) => self.max == other.max,
            _ => false,
        }
    }
}

impl Eq for WidthPolicy {}

impl core::hash::Hash for WidthPolicy {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.memory_like.hash(state);
        if !self.memory_like {
            self.max.hash(state);
        }
    }
}

impl Default for WidthPolicy {
    /// [`WidthPolicy::U64`], as Linux's `lib/iomem_copy.c` on a 64-bit machine.
    fn default() -> Self {
        WidthPolicy::U64
    }
}

impl fmt::Debug for WidthPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.memory_like {
            write!(
                f,
                "WidthPolicy(memory-like, max {} bytes)",
                self.max_width()
            )
        } else {
            write!(f, "WidthPolicy(max {} bytes)", self.max)
        }
    }
}

/// One device access of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// Byte offset of the access.
    pub offset: usize,
    /// Width in bytes (1, 2, 4, 8, 16 or 32); `offset % width == 0`.
    pub width: usize,
}

/// How a range of device memory is covered by aligned, natural-width accesses.
///
/// Built by [`plan`]; iterate it with [`Plan::accesses`].
///
/// A plan is a head of accesses of increasing width (one per set bit of `head`, smallest
/// first), a body of `body_count` accesses of `body_width`, and a tail of accesses of decreasing
/// width (one per set bit of `tail`, largest first). Every head and tail width is smaller than
/// the body width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    start: usize,
    body_offset: usize,
    body_width: usize,
    body_count: usize,
    head: u8,
    tail: u8,
}

/// Plans the accesses covering `[offset, offset + len)` with accesses no wider than
/// `policy.max_width()`.
///
/// `offset` is the absolute offset in a region whose base is aligned to at least the policy's
/// maximum. Returns [`Error::Overflow`] if `offset + len` overflows.
///
/// The plan is the greedy one: from the start, each access is the widest that is aligned at its
/// offset, fits in what is left, and is within the policy. Its widths first grow (to reach
/// alignment), stay at the maximum for the body, then shrink (to fit the end).
#[inline]
pub fn plan(offset: usize, len: usize, policy: WidthPolicy) -> Result<Plan> {
    let end = offset
        .checked_add(len)
        .ok_or(Error::Overflow { offset, len })?;
    let max = policy.max_width();
    // `max` is a power of two: masks instead of divisions (this runs on every copy).
    let mask = max - 1;
    // First and last `max`-aligned points of the range, if the range holds one.
    let first = offset.checked_add(offset.wrapping_neg() & mask);
    let last = end & !mask;
    let (mid, count) = match first {
        Some(first) if first <= last => (first, (last - first) >> max.trailing_zeros()),
        // No `max`-aligned point in [offset, end] (so `offset` is unaligned and non-zero): the
        // widths grow up to the most aligned point of the range, then shrink from it. That point
        // is `end` with the bits below the highest bit where `offset - 1` and `end` differ
        // cleared (the unique most aligned number in (offset - 1, end]).
        _ => {
            let t = usize::BITS - 1 - ((offset - 1) ^ end).leading_zeros();
            (end & !((1usize << t) - 1), 0)
        }
    };
    let body_end = mid + count * max;
    // Both differences are < max ≤ 16: they fit the u8 masks.
    Ok(Plan {
        start: offset,
        body_offset: mid,
        body_width: max,
        body_count: count,
        head: (mid - offset) as u8,
        tail: (end - body_end) as u8,
    })
}

impl Plan {
    /// Every access of the plan, in ascending offset order.
    pub fn accesses(&self) -> impl Iterator<Item = Access> + '_ {
        let mut off = self.start;
        let head = (0..8)
            .map(|k| 1usize << k)
            .filter(|w| self.head as usize & w != 0);
        let head = head.map(move |w| {
            let a = Access {
                offset: off,
                width: w,
            };
            off += w;
            a
        });
        let (bo, bw) = (self.body_offset, self.body_width);
        let body = (0..self.body_count).map(move |i| Access {
            offset: bo + i * bw,
            width: bw,
        });
        let mut toff = bo + self.body_count * bw;
        let tail = (0..8)
            .rev()
            .map(|k| 1usize << k)
            .filter(|w| self.tail as usize & w != 0);
        let tail = tail.map(move |w| {
            let a = Access {
                offset: toff,
                width: w,
            };
            toff += w;
            a
        });
        head.chain(body).chain(tail)
    }

    /// Number of accesses in the plan.
    pub fn len(&self) -> usize {
        self.head.count_ones() as usize + self.body_count + self.tail.count_ones() as usize
    }

    /// Whether the plan makes no access (zero-length range).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an executed plan does with each access.
#[derive(Clone, Copy)]
pub(crate) enum Dir {
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
trait Op: Copy {
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
    /// Every access is aligned and in bounds as for [`Op::one`]; the memory side is valid for
    /// `count * W::WIDTH` bytes from `pos`.
    unsafe fn body<B: Backend + ?Sized, W: Word>(self, b: &B, off: usize, count: usize, pos: usize);
}

/// Device ← memory.
#[derive(Clone, Copy)]
struct ToIo(*const u8);
/// Memory ← device.
#[derive(Clone, Copy)]
struct FromIo(*mut u8);
/// Device ← a repeated byte.
#[derive(Clone, Copy)]
struct Fill(u8);

/// Accesses per unrolled step of a body: eight, so a 16-byte body moves two cache lines per
/// step. Volatile accesses are never merged or reordered among themselves; unrolling only
/// removes loop overhead and lets the memory-side loads of a step issue before its stores.
const UNROLL: usize = 8;

impl Op for ToIo {
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
}

impl Op for FromIo {
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
}

/// Stores one body step of device values to RAM at `d` (any alignment).
///
/// On x86_64, 4- and 8-byte values are packed into 16-byte RAM stores: the CPU retires about
/// one store per cycle, so halving (or quartering) the RAM-side stores is what lets a
/// `memcpy_fromio` of 8-byte device reads approach a plain copy. The device side is unchanged:
/// one volatile load per planned access.
///
/// # Safety
/// `d` is writable for `UNROLL * W::WIDTH` bytes.
#[inline(always)]
unsafe fn store_step<W: Word>(v: [W; UNROLL], d: *mut u8) {
    #[cfg(target_arch = "x86_64")]
    if W::WIDTH == 8 {
        use core::arch::x86_64::{_mm_set_epi64x, _mm_storeu_si128};
        // SAFETY: W is 8 bytes wide here, so `[W; UNROLL]` and `[u64; UNROLL]` have the same
        // size and every bit pattern is a valid u64.
        let q: [u64; UNROLL] = unsafe { core::mem::transmute_copy(&v) };
        for k in 0..UNROLL / 2 {
            // SAFETY: SSE2 is baseline on x86_64; the 16 bytes at `d + 16k` are inside the step.
            unsafe {
                let x = _mm_set_epi64x(q[2 * k + 1] as i64, q[2 * k] as i64);
                _mm_storeu_si128(d.add(16 * k).cast(), x);
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if W::WIDTH == 4 {
        use core::arch::x86_64::{_mm_set_epi32, _mm_storeu_si128};
        // SAFETY: W is 4 bytes wide here: `[W; UNROLL]` and `[u32; UNROLL]` have the same size
        // and every bit pattern is a valid u32.
        let q: [u32; UNROLL] = unsafe { core::mem::transmute_copy(&v) };
        for k in 0..UNROLL / 4 {
            // SAFETY: SSE2 is baseline on x86_64; the 16 bytes at `d + 16k` are inside the step.
            unsafe {
                let x = _mm_set_epi32(
                    q[4 * k + 3] as i32,
                    q[4 * k + 2] as i32,
                    q[4 * k + 1] as i32,
                    q[4 * k] as i32,
                );
                _mm_storeu_si128(d.add(16 * k).cast(), x);
            }
        }
        return;
    }
    for (k, v) in v.into_iter().enumerate() {
        // SAFETY: inside the step.
        unsafe { v.store_unaligned(d.add(k * W::WIDTH)) };
    }
}

impl Op for Fill {
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

/// One access of width `w` (1, 2, 4, 8 or 16).
///
/// # Safety
/// As for [`Op::one`], for the width `w`.
#[inline(always)]
unsafe fn one_dyn<B: Backend + ?Sized, O: Op>(op: O, b: &B, off: usize, w: usize, pos: usize) {
    // SAFETY: forwarded contract; `w` selects the matching `Word` type.
    unsafe {
        match w {
            1 => op.one::<B, u8>(b, off, pos),
            2 => op.one::<B, u16>(b, off, pos),
            4 => op.one::<B, u32>(b, off, pos),
            8 => op.one::<B, u64>(b, off, pos),
            16 => op.one::<B, W128>(b, off, pos),
            _ => op.one::<B, W256>(b, off, pos),
        }
    }
}

/// A body of 32-byte accesses, compiled for AVX: the backend's 32-byte accesses (inlined here)
/// are single `vmovdqa ymm` instructions, and the memory side moves 32 bytes per instruction.
///
/// # Safety
/// As for [`Op::body`], and the CPU has AVX ([`has_w256`]; a plan only has a 32-byte body when
/// its memory-like policy found it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn body_w256<B: Backend + ?Sized, O: Op>(
    op: O,
    b: &B,
    off: usize,
    count: usize,
    pos: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { op.body::<B, W256>(b, off, count, pos) }
}

/// No 32-byte accesses without AVX: never called, since no plan has a 32-byte body here.
///
/// # Safety
/// As for [`Op::body`].
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
unsafe fn body_w256<B: Backend + ?Sized, O: Op>(
    op: O,
    b: &B,
    off: usize,
    count: usize,
    pos: usize,
) {
    // SAFETY: forwarded contract.
    unsafe { op.body::<B, W256>(b, off, count, pos) }
}

/// Executes `plan` in direction `op`, without barriers.
///
/// # Safety
/// As for [`execute`].
#[inline]
#[allow(unused_assignments)] // the last `step!` advances `off` past its final use
unsafe fn run<B: Backend + ?Sized, O: Op>(b: &B, plan: &Plan, op: O) {
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
    step!(plan.head, u8);
    step!(plan.head, u16);
    step!(plan.head, u32);
    step!(plan.head, u64);
    step!(plan.head, W128);
    let count = plan.body_count;
    // SAFETY: the body is `body_count` aligned accesses of `body_width` inside the range.
    unsafe {
        match plan.body_width {
            1 => op.body::<B, u8>(b, off, count, off - start),
            2 => op.body::<B, u16>(b, off, count, off - start),
            4 => op.body::<B, u32>(b, off, count, off - start),
            8 => op.body::<B, u64>(b, off, count, off - start),
            16 => op.body::<B, W128>(b, off, count, off - start),
            // Skip the call into AVX code when a short range has no 32-byte body.
            _ if count == 0 => {}
            _ => body_w256(op, b, off, count, off - start),
        }
    }
    off += count * plan.body_width;
    // Tail: largest first, each access aligned because `off` is aligned to the one before.
    step!(plan.tail, W128);
    step!(plan.tail, u64);
    step!(plan.tail, u32);
    step!(plan.tail, u16);
    step!(plan.tail, u8);
}

/// Executes `plan` in direction `op` with `barrier` after every access.
///
/// # Safety
/// As for [`execute`].
#[inline(never)]
unsafe fn run_each<B: Backend + ?Sized, O: Op>(b: &B, plan: &Plan, op: O, barrier: Barrier) {
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
/// side of `dir` is valid for the plan's whole length.
#[inline(always)]
pub(crate) unsafe fn execute<B: Backend + ?Sized>(
    b: &B,
    plan: &Plan,
    dir: Dir,
    each: Option<Barrier>,
) {
    // SAFETY: forwarded contract.
    unsafe {
        match (dir, each) {
            (Dir::ToIo(src), None) => run(b, plan, ToIo(src)),
            (Dir::FromIo(dst), None) => run(b, plan, FromIo(dst)),
            (Dir::Fill(byte), None) => run(b, plan, Fill(byte)),
            (Dir::ToIo(src), Some(x)) => run_each(b, plan, ToIo(src), x),
            (Dir::FromIo(dst), Some(x)) => run_each(b, plan, FromIo(dst), x),
            (Dir::Fill(byte), Some(x)) => run_each(b, plan, Fill(byte), x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The planned (offset, width) pairs. Planning is pure arithmetic, so every width (16 too)
    /// is tested on every architecture, whatever accesses its CPU has.
    fn widths(off: usize, len: usize, max: usize) -> alloc::vec::Vec<(usize, usize)> {
        plan(off, len, WidthPolicy::fixed(max as u8))
            .unwrap()
            .accesses()
            .map(|a| (a.offset, a.width))
            .collect()
    }

    #[test]
    fn head_body_tail() {
        assert_eq!(
            widths(1, 14, 8),
            [(1, 1), (2, 2), (4, 4), (8, 4), (12, 2), (14, 1)]
        );
        assert_eq!(widths(0, 16, 8), [(0, 8), (8, 8)]);
        assert_eq!(widths(3, 2, 8), [(3, 1), (4, 1)]);
        assert_eq!(widths(4, 3, 8), [(4, 2), (6, 1)]);
        assert_eq!(widths(6, 0, 4), []);
    }

    #[test]
    fn u32_policy_never_emits_u64() {
        assert!(widths(0, 64, 4).iter().all(|&(_, w)| w == 4));
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            plan(usize::MAX, 2, WidthPolicy::U64),
            Err(Error::Overflow {
                offset: usize::MAX,
                len: 2
            })
        );
    }

    /// The greedy plan, one access at a time: the widest access aligned at the offset, fitting
    /// in what is left, within the policy.
    fn greedy(off: usize, len: usize, max: usize) -> alloc::vec::Vec<(usize, usize)> {
        let (mut off, end) = (off, off + len);
        let mut v = alloc::vec::Vec::new();
        while off < end {
            let mut w = max;
            while off % w != 0 || w > end - off {
                w /= 2;
            }
            v.push((off, w));
            off += w;
        }
        v
    }

    #[test]
    fn matches_greedy_model() {
        for max in [1, 2, 4, 8, 16] {
            for off in 0..80 {
                for len in 0..80 {
                    assert_eq!(
                        widths(off, len, max),
                        greedy(off, len, max),
                        "{off} {len} {max}"
                    );
                }
            }
        }
    }

    #[test]
    fn short_unaligned_range_in_one_block() {
        // Grows to the 8-aligned point, then shrinks: six accesses, no body.
        assert_eq!(
            widths(1, 14, 16),
            [(1, 1), (2, 2), (4, 4), (8, 4), (12, 2), (14, 1)]
        );
        assert_eq!(widths(5, 2, 16), [(5, 1), (6, 1)]);
        assert_eq!(widths(9, 0, 16), []);
    }

    #[test]
    fn near_the_end_of_the_address_space() {
        let off = usize::MAX - 20;
        assert_eq!(widths(off, 20, 16), greedy(off, 20, 16));
        assert_eq!(plan(off, 20, WidthPolicy::fixed(16)).unwrap().len(), 6);
    }

    #[test]
    fn memory_like_matches_greedy_model_at_the_widest_width() {
        let p = WidthPolicy::MEMORY_LIKE;
        let max = p.max_width();
        assert_eq!(max, widest());
        for off in 0..80 {
            for len in 0..100 {
                let got: alloc::vec::Vec<_> = plan(off, len, p)
                    .unwrap()
                    .accesses()
                    .map(|a| (a.offset, a.width))
                    .collect();
                assert_eq!(got, greedy(off, len, max), "{off} {len}");
            }
        }
    }

    #[test]
    fn clamping_keeps_memory_like_and_lowers_its_width() {
        let m = WidthPolicy::MEMORY_LIKE.clamped(16);
        assert_eq!(m, WidthPolicy::MEMORY_LIKE);
        assert!(m.is_memory_like());
        assert_eq!(m.max_width(), widest().min(16));
        assert_eq!(WidthPolicy::MEMORY_LIKE.clamped(4096).max_width(), widest());
        assert_eq!(WidthPolicy::U64.clamped(4), WidthPolicy::U32);
        assert_eq!(WidthPolicy::U64.clamped(64), WidthPolicy::U64);
        assert_ne!(WidthPolicy::MEMORY_LIKE, WidthPolicy::fixed(16));
    }

    /// Copies through the mock with the memory-like policy: every write is recorded with its
    /// full value (32-byte ones too) and the data round-trips.
    #[test]
    fn memory_like_copies_are_recorded_whole() {
        use crate::backend::MockIo;
        use crate::{memcpy_fromio, memcpy_toio, IoMem};
        let mock = MockIo::new(512);
        let io = IoMem::new(&mock).with_policy(WidthPolicy::MEMORY_LIKE);
        let src: alloc::vec::Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        let win = io.subslice(5..205).unwrap();
        memcpy_toio(&win, &src).unwrap();
        let writes = mock.writes();
        assert_eq!(
            writes.iter().map(|a| a.width).max(),
            Some(widest()),
            "{writes:?}"
        );
        for a in &writes {
            assert_eq!(
                a.bytes(),
                src[a.offset - 5..a.offset - 5 + a.width],
                "{a:?}"
            );
        }
        assert_eq!(mock.peek(5, 200), src);
        let mut back = alloc::vec![0u8; 200];
        memcpy_fromio(&mut back, &win).unwrap();
        assert_eq!(back, src);
        mock.assert_no_violations();
    }

    /// The real backend's widest accesses (32-byte AVX ones where the CPU has them) over a
    /// page-aligned RAM buffer: copies and fills land exactly where planned.
    #[test]
    fn mmio_memory_like_round_trips() {
        use crate::{memcpy_fromio, memcpy_toio, memset_io, Caching, IoMem, Mmio};
        #[repr(C, align(4096))]
        struct Page([u8; 4096]);
        let mut page = alloc::boxed::Box::new(Page([0x11; 4096]));
        let base = page.0.as_mut_ptr();
        let src: alloc::vec::Vec<u8> = (0..1000u32).map(|i| (i * 13 + 1) as u8).collect();
        for (off, len) in [(0, 1000), (1, 999), (31, 700), (64, 96), (100, 3)] {
            let mut back = alloc::vec![0u8; len];
            {
                // SAFETY: `base` is this test's own page (4096-aligned), valid for volatile
                // access of any width; it is not used otherwise until `mmio` is dropped at the
                // end of this block. RAM needs no write-combining flush.
                let mmio = unsafe { Mmio::new(base, 4096, Caching::Uncached) }.unwrap();
                let io = IoMem::new(&mmio).with_policy(WidthPolicy::MEMORY_LIKE);
                assert_eq!(io.policy().max_width(), widest());
                let win = io.subslice(off..off + len).unwrap();
                memcpy_toio(&win, &src[..len]).unwrap();
                memcpy_fromio(&mut back, &win).unwrap();
                memset_io(&io.subslice(2000..2000 + len).unwrap(), 0xee).unwrap();
            }
            assert_eq!(back, src[..len]);
            assert_eq!(page.0[off..off + len], src[..len]);
            assert!(page.0[2000..2000 + len].iter().all(|&b| b == 0xee));
            assert!(page.0[2000 + len..].iter().all(|&b| b == 0x11));
            page.0.fill(0x11);
        }
    }

    #[test]
    fn bad_policy_is_an_error() {
        assert!(WidthPolicy::new(3).is_err());
        assert!(WidthPolicy::new(32).is_err());
    }
}
