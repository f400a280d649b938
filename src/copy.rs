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

use core::fmt;

use crate::backend::{Backend, Word, HAS_W128, W128};
use crate::error::{Error, Result};
use crate::order::Barrier;

/// The widest single access a copy may make.
///
/// Part of every [`IoMem`](crate::IoMem) handle. It governs bulk copies and typed reads/writes of
/// structures; single-register accessors (`read32`, `try_write64`, …) always make exactly the
/// access they name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WidthPolicy {
    max: u8,
}

impl WidthPolicy {
    /// At most 8-bit accesses.
    pub const U8: WidthPolicy = WidthPolicy { max: 1 };
    /// At most 16-bit accesses.
    pub const U16: WidthPolicy = WidthPolicy { max: 2 };
    /// At most 32-bit accesses: powerpc's `memcpy_toio`, and devices that reject 64-bit accesses.
    pub const U32: WidthPolicy = WidthPolicy { max: 4 };
    /// At most 64-bit accesses: register files, Linux `lib/iomem_copy.c` on 64-bit machines.
    pub const U64: WidthPolicy = WidthPolicy { max: 8 };
    /// Memory-like regions (a prefetchable BAR: NVMe CMB, GPU aperture): the widest single
    /// aligned load/store the CPU has — 16 bytes on x86_64 and aarch64, 8 elsewhere.
    pub const MEMORY_LIKE: WidthPolicy = WidthPolicy {
        max: if HAS_W128 { 16 } else { 8 },
    };

    /// A policy allowing accesses up to `max` bytes: 1, 2, 4, 8, or 16 where the CPU has a
    /// 16-byte access ([`HAS_W128`]).
    pub const fn new(max: usize) -> Result<Self> {
        match max {
            1 | 2 | 4 | 8 => Ok(WidthPolicy { max: max as u8 }),
            16 if HAS_W128 => Ok(WidthPolicy { max: 16 }),
            _ => Err(Error::InvalidArgument(
                "width policy must be 1, 2, 4, 8 or (on x86_64/aarch64) 16 bytes",
            )),
        }
    }

    /// The widest access allowed, in bytes.
    pub const fn max_width(self) -> usize {
        self.max as usize
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
        write!(f, "WidthPolicy(max {} bytes)", self.max)
    }
}

/// One device access of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// Byte offset of the access.
    pub offset: usize,
    /// Width in bytes (1, 2, 4, 8 or 16); `offset % width == 0`.
    pub width: usize,
}

/// Up to four accesses of decreasing or increasing width (head or tail of a plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Steps {
    widths: [u8; 4],
    n: u8,
}

impl Steps {
    fn push(&mut self, w: usize) {
        self.widths[self.n as usize] = w as u8;
        self.n += 1;
    }
    fn as_slice(&self) -> &[u8] {
        &self.widths[..self.n as usize]
    }
}

/// How a range of device memory is covered by aligned, natural-width accesses.
///
/// Built by [`plan`]; iterate it with [`Plan::accesses`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    start: usize,
    head: Steps,
    body_offset: usize,
    body_width: usize,
    body_count: usize,
    tail: Steps,
}

/// Largest power of two ≤ `n` (`n > 0`).
#[inline(always)]
const fn floor_pow2(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// Plans the accesses covering `[offset, offset + len)` with accesses no wider than
/// `policy.max_width()`.
///
/// `offset` is the absolute offset in a region whose base is aligned to at least the policy's
/// maximum. Returns [`Error::Overflow`] if `offset + len` overflows.
pub fn plan(offset: usize, len: usize, policy: WidthPolicy) -> Result<Plan> {
    let end = offset
        .checked_add(len)
        .ok_or(Error::Overflow { offset, len })?;
    let max = policy.max_width();
    let mut p = Plan {
        start: offset,
        head: Steps::default(),
        body_offset: offset,
        body_width: max,
        body_count: 0,
        tail: Steps::default(),
    };
    let mut off = offset;
    // Head: grow alignment one step at a time (each step takes the lowest set bit of the offset,
    // bounded by what is left), until `off` is aligned to `max` or the range is used up.
    while off % max != 0 && off < end {
        let w = (off & off.wrapping_neg()).min(floor_pow2(end - off));
        p.head.push(w);
        off += w;
    }
    p.body_offset = off;
    p.body_count = (end - off) / max;
    off += p.body_count * max;
    // Tail: shrink — `off` is max-aligned, so each smaller power of two stays aligned.
    while off < end {
        let w = floor_pow2(end - off);
        p.tail.push(w);
        off += w;
    }
    Ok(p)
}

impl Plan {
    /// Every access of the plan, in ascending offset order.
    pub fn accesses(&self) -> impl Iterator<Item = Access> + '_ {
        let mut off = self.start;
        let head = self.head.as_slice().iter().map(move |&w| {
            let a = Access {
                offset: off,
                width: w as usize,
            };
            off += w as usize;
            a
        });
        let (bo, bw) = (self.body_offset, self.body_width);
        let body = (0..self.body_count).map(move |i| Access {
            offset: bo + i * bw,
            width: bw,
        });
        let mut toff = bo + self.body_count * bw;
        let tail = self.tail.as_slice().iter().map(move |&w| {
            let a = Access {
                offset: toff,
                width: w as usize,
            };
            toff += w as usize;
            a
        });
        head.chain(body).chain(tail)
    }

    /// Number of accesses in the plan.
    pub fn len(&self) -> usize {
        self.head.n as usize + self.body_count + self.tail.n as usize
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

/// One access at absolute offset `off`, `pos` bytes into the memory side.
///
/// # Safety
/// `off` is `W`-aligned and in bounds of `b` with `W::WIDTH <= b.base_align()`; the memory side
/// (for `ToIo`/`FromIo`) is valid for `W::WIDTH` bytes at `pos`.
#[inline(always)]
unsafe fn one<B: Backend + ?Sized, W: Word>(b: &B, off: usize, dir: Dir, pos: usize) {
    match dir {
        // SAFETY: the caller guarantees `src + pos` is readable for W::WIDTH bytes and the device
        // access is aligned and in bounds.
        Dir::ToIo(src) => unsafe {
            b.write::<W>(off, core::ptr::read_unaligned(src.add(pos).cast::<W>()))
        },
        // SAFETY: the caller guarantees `dst + pos` is writable for W::WIDTH bytes and the device
        // access is aligned and in bounds.
        Dir::FromIo(dst) => unsafe {
            core::ptr::write_unaligned(dst.add(pos).cast::<W>(), b.read::<W>(off))
        },
        // SAFETY: the caller guarantees the device access is aligned and in bounds.
        Dir::Fill(byte) => unsafe {
            b.write::<W>(off, W::from_u128(u128::from_ne_bytes([byte; 16])))
        },
    }
}

/// Dispatches one access by its width.
///
/// # Safety
/// As for [`one`], for the width `w`.
#[inline(always)]
unsafe fn one_dyn<B: Backend + ?Sized>(b: &B, off: usize, w: usize, dir: Dir, pos: usize) {
    // SAFETY: forwarded contract; `w` selects the matching `Word` type.
    unsafe {
        match w {
            1 => one::<B, u8>(b, off, dir, pos),
            2 => one::<B, u16>(b, off, dir, pos),
            4 => one::<B, u32>(b, off, dir, pos),
            8 => one::<B, u64>(b, off, dir, pos),
            _ => one::<B, W128>(b, off, dir, pos),
        }
    }
}

/// The body: `count` accesses of `W` from `off`, unrolled by four (volatile accesses are never
/// merged; unrolling only removes loop overhead).
///
/// # Safety
/// Every access is aligned and in bounds; the memory side is valid for `count * W::WIDTH` bytes
/// from `pos`.
#[inline(always)]
unsafe fn body<B: Backend + ?Sized, W: Word>(
    b: &B,
    off: usize,
    count: usize,
    dir: Dir,
    pos: usize,
    each: Option<Barrier>,
) {
    let w = W::WIDTH;
    if let Some(barrier) = each {
        for i in 0..count {
            // SAFETY: i < count, so the access is within the planned body.
            unsafe { one::<B, W>(b, off + i * w, dir, pos + i * w) };
            b.barrier(barrier);
        }
        return;
    }
    let mut i = 0;
    while i + 4 <= count {
        // SAFETY: i + 3 < count: all four accesses are within the planned body.
        unsafe {
            one::<B, W>(b, off + i * w, dir, pos + i * w);
            one::<B, W>(b, off + (i + 1) * w, dir, pos + (i + 1) * w);
            one::<B, W>(b, off + (i + 2) * w, dir, pos + (i + 2) * w);
            one::<B, W>(b, off + (i + 3) * w, dir, pos + (i + 3) * w);
        }
        i += 4;
    }
    while i < count {
        // SAFETY: i < count.
        unsafe { one::<B, W>(b, off + i * w, dir, pos + i * w) };
        i += 1;
    }
}

/// Executes `plan` against `b`, with `each` after every access if given.
///
/// # Safety
/// The plan's range is in bounds of `b`, its maximum width is ≤ `b.base_align()`, and the memory
/// side of `dir` is valid for the plan's whole length.
pub(crate) unsafe fn execute<B: Backend + ?Sized>(
    b: &B,
    plan: &Plan,
    dir: Dir,
    each: Option<Barrier>,
) {
    let mut off = plan.start;
    for &w in plan.head.as_slice() {
        // SAFETY: head accesses are aligned and inside the planned range (see `plan`).
        unsafe { one_dyn(b, off, w as usize, dir, off - plan.start) };
        if let Some(barrier) = each {
            b.barrier(barrier);
        }
        off += w as usize;
    }
    let pos = off - plan.start;
    // SAFETY: the body is `body_count` aligned accesses of `body_width` inside the range.
    unsafe {
        match plan.body_width {
            1 => body::<B, u8>(b, off, plan.body_count, dir, pos, each),
            2 => body::<B, u16>(b, off, plan.body_count, dir, pos, each),
            4 => body::<B, u32>(b, off, plan.body_count, dir, pos, each),
            8 => body::<B, u64>(b, off, plan.body_count, dir, pos, each),
            _ => body::<B, W128>(b, off, plan.body_count, dir, pos, each),
        }
    }
    off += plan.body_count * plan.body_width;
    for &w in plan.tail.as_slice() {
        // SAFETY: tail accesses are aligned and inside the planned range.
        unsafe { one_dyn(b, off, w as usize, dir, off - plan.start) };
        if let Some(barrier) = each {
            b.barrier(barrier);
        }
        off += w as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widths(off: usize, len: usize, max: usize) -> alloc::vec::Vec<(usize, usize)> {
        plan(off, len, WidthPolicy::new(max).unwrap())
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

    #[test]
    fn bad_policy_is_an_error() {
        assert!(WidthPolicy::new(3).is_err());
        assert!(WidthPolicy::new(32).is_err());
    }
}
