//! Greedy access plans: the widest aligned access at each offset, within a policy.

use super::WidthPolicy;
use crate::error::{Error, Result};

/// One device access of a plan (a planned step; the mock's record of an executed access is
/// [`backend::mock::Access`](crate::backend::mock::Access)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    /// Byte offset of the access.
    pub offset: usize,
    /// Width in bytes (1, 2, 4, 8, 16, 32 or 64); `offset % width == 0`.
    pub width: usize,
}

/// How a range of device memory is covered by aligned, natural-width accesses.
///
/// Built by [`plan`] or [`plan_bulk`](super::plan_bulk); iterate it with [`Plan::accesses`].
///
/// A plan is a head, a body of `body_count` accesses of `body_width`, and a tail. In a greedy
/// plan the head has accesses of increasing width (one per set bit of `head`, smallest first)
/// and the tail accesses of decreasing width (one per set bit of `tail`, largest first). In a
/// bytewise plan (the kernel's loops, [`kernel`](super::kernel)) `head` and `tail` count
/// single-byte accesses. Either way every head and tail access is narrower than the body's and
/// the head and tail each cover fewer bytes than one body access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub(super) start: usize,
    pub(super) body_offset: usize,
    pub(super) body_width: usize,
    pub(super) body_count: usize,
    pub(super) head: u8,
    pub(super) tail: u8,
    pub(super) bytewise: bool,
}

/// Plans the accesses covering `[offset, offset + len)` with accesses no wider than
/// `policy.width_for(len)` ([`WidthPolicy::width_for`]: the policy's maximum, or the build's
/// inline width for a copy of at most [`SHORT_COPY`](super::SHORT_COPY) bytes).
///
/// `offset` is the absolute offset in a region whose base is aligned to at least the policy's
/// maximum. Returns [`Error::Overflow`] if `offset + len` overflows.
///
/// The plan is the greedy one: from the start, each access is the widest that is aligned at its
/// offset, fits in what is left, and is within that width. Its widths first grow (to reach
/// alignment), stay at the maximum for the body, then shrink (to fit the end).
#[inline]
pub fn plan(offset: usize, len: usize, policy: WidthPolicy) -> Result<Plan> {
    let end = offset
        .checked_add(len)
        .ok_or(Error::Overflow { offset, len })?;
    let max = policy.width_for(len);
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
    Ok(Plan {
        start: offset,
        body_offset: mid,
        body_width: max,
        body_count: count,
        // CAST: both differences are below `max` ≤ 64.
        head: (mid - offset) as u8,
        tail: (end - body_end) as u8,
        bytewise: false,
    })
}

impl Plan {
    /// The plan that makes no access.
    pub const EMPTY: Plan = Plan {
        start: 0,
        body_offset: 0,
        body_width: 1,
        body_count: 0,
        head: 0,
        tail: 0,
        bytewise: true,
    };

    /// Every access of the plan, in ascending offset order.
    pub fn accesses(&self) -> impl Iterator<Item = Step> + '_ {
        let (head, tail) = (self.head as usize, self.tail as usize);
        // Widths of the head (smallest first) and the tail (largest first).
        let widths = |mask: usize, rev: bool| {
            let mut w = [0usize; 8];
            let mut n = 0;
            for k in 0..8 {
                let bit = 1usize << if rev { 7 - k } else { k };
                if mask & bit != 0 {
                    w[n] = bit;
                    n += 1;
                }
            }
            (w, n)
        };
        let ((hw, hn), (tw, tn)) = if self.bytewise {
            (([1; 8], head), ([1; 8], tail))
        } else {
            (widths(head, false), widths(tail, true))
        };
        let mut off = self.start;
        let head = hw.into_iter().take(hn).map(move |w| {
            let a = Step {
                offset: off,
                width: w,
            };
            off += w;
            a
        });
        let (bo, bw) = (self.body_offset, self.body_width);
        let body = (0..self.body_count).map(move |i| Step {
            offset: bo + i * bw,
            width: bw,
        });
        let mut toff = bo + self.body_count * bw;
        let tail = tw.into_iter().take(tn).map(move |w| {
            let a = Step {
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
        if self.bytewise {
            self.head as usize + self.body_count + self.tail as usize
        } else {
            self.head.count_ones() as usize + self.body_count + self.tail.count_ones() as usize
        }
    }

    /// Whether the plan makes no access (zero-length range).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
