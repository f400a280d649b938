//! Copies under a greedy policy (memory-like or a fixed width), planned and executed in one
//! pass, with no [`Plan`](super::Plan) built.
//!
//! A short copy's cost (a 64-byte command) is its fixed overhead, not its bytes: building a plan
//! and matching on it cost more than the handful of accesses, and a long one gains nothing from
//! it. Here the greedy plan is walked directly — narrowing accesses up to alignment, the body of
//! `max`-wide ones (the executor's [`body`](super::exec::body), unrolled), narrowing ones to
//! the end. A range of whole aligned words is the body alone, and a 64-byte command its words
//! in a straight line. The caller (inlined into every copy) holds one call: into code compiled
//! for `max` (AVX, AVX-512F), where the whole-word path is laid out first, into the walk of the
//! inline width ([`INLINE_WIDTH`]: the policy's, or a copy's of at most
//! [`SHORT_COPY`](super::SHORT_COPY) bytes), or into the walk of the narrower widths; only the
//! whole words of the inline width are inline. The accesses are exactly those of
//! [`plan`](super::plan) for the same range and policy (the property tests compare the traces
//! with the greedy model).

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
use super::{short_capped, Transfer};

/// The size of an NVMe command (and of a 64-byte device descriptor): the copy whose cost is
/// the per-command cost, moved as its words in a straight line.
const COMMAND: usize = 64;

/// Whether `[off, off + len)` is whole `M`-aligned words: its walk is the body alone.
#[inline(always)]
fn whole<M: Word>(off: usize, len: usize) -> bool {
    (off | len) % M::WIDTH == 0
}

/// The walk of a range of [`whole`] words: a 64-byte command in a straight line, any other
/// length the unrolled [`body`].
///
/// # Safety
/// As for [`walk`], and the range is [`whole`] words.
#[inline(always)]
unsafe fn words<B: Backend + ?Sized, M: Word, O: Direction>(b: &B, off: usize, len: usize, op: O) {
    if len == COMMAND && M::WIDTH <= COMMAND {
        for k in 0..COMMAND / M::WIDTH {
            let at = k * M::WIDTH;
            // SAFETY: `off + at` is `M`-aligned and the word is inside the range.
            unsafe { op.one::<B, M>(b, off + at, at) };
        }
        return;
    }
    // SAFETY: `off` is `M`-aligned and the range is `len / M::WIDTH` whole words.
    unsafe { body::<B, M, O>(op, b, off, len / M::WIDTH, 0) };
}

/// The bytes of `[off, off + len)` the greedy walk moves with narrowing accesses before its
/// first `M`-aligned one: the bytes up to `M`-alignment (`head`) if the range reaches it, else
/// the longest run of `head`'s low set bits that fits (each bit is one access, smallest first;
/// the first that does not fit ends the head, and the tail takes over).
#[inline(always)]
fn head_bytes<M: Word>(off: usize, len: usize) -> usize {
    let head = off.wrapping_neg() & (M::WIDTH - 1);
    if head <= len {
        return head;
    }
    // `len < head < M::WIDTH`: no bit of `head` above `len`'s top bit fits (the head would
    // pass `len` with it), every bit below it does (their sum is less than that bit), and the
    // bit at `len`'s top position fits if the sum with it does.
    let below = (1usize << (usize::BITS - len.leading_zeros())) - 1;
    let fit = head & below;
    if fit <= len {
        fit
    } else {
        head & (below >> 1)
    }
}

/// The greedy accesses of `[off, off + len)` with widths up to `M::WIDTH`, in direction `op`:
/// narrowing accesses up to `M`-alignment (ascending; if one does not fit, the tail takes
/// over), `M`-wide ones while they fit, then narrowing ones (largest first). The head is one
/// access per set bit of [`head_bytes`], the tail one per set bit of what remains after the
/// body; each is a straight line of accesses chosen by one jump on its bits ([`by_bits`]).
///
/// # Safety
/// The range is in bounds of `b`; `M::WIDTH <= b.base_align()`; the CPU has `M` (for the vector
/// words, [`has_w256`](crate::backend::has_w256) / [`has_w512`](crate::backend::has_w512) is
/// true; wider than [`INLINE_WIDTH`] only from [`walk_w256`] / [`walk_w512`]); the memory side
/// is valid for `len` bytes.
#[inline(always)]
unsafe fn walk<B: Backend + ?Sized, M: Word, O: Direction>(b: &B, off: usize, len: usize, op: O) {
    let head = head_bytes::<M>(off, len);
    // SAFETY: the head's accesses lie in `[off, off + head)`, inside the range.
    unsafe { by_bits::<B, M, O, false>(b, off, 0, head, op) };
    // Body: `M`-aligned here if any whole word remains (the head reached alignment).
    let at = off + head;
    let rest = len - head;
    let count = rest / M::WIDTH;
    if count != 0 {
        // SAFETY: `at` is `M`-aligned and `count` whole words remain.
        unsafe { body::<B, M, O>(op, b, at, count, head) };
    }
    // Tail: fewer than `M::WIDTH` bytes, fewer than the head bit that did not fit if one did
    // not; `at + done` is aligned to its largest access (to `M` after a body, else to the head
    // bit that did not fit).
    let done = head + count * M::WIDTH;
    // SAFETY: the tail's accesses lie in `[off + done, off + len)`, inside the range.
    unsafe { by_bits::<B, M, O, true>(b, off + done, done, rest % M::WIDTH, op) };
}

/// The accesses of `bits` (below `M::WIDTH`) from device offset `at`, memory position `pos`:
/// one per set bit, the smallest first (a head) or the largest first (`TAIL`), as a straight
/// line of code per value of `bits`, reached by one jump (a table) rather than a test and a
/// branch per width. (A 64-byte copy 8 bytes past a 32-byte boundary, four accesses, took 21
/// cycles with a branch per width, Zen 3.)
///
/// # Safety
/// As for [`walk`]: the accesses are inside the range, and `at` is aligned to each of them in
/// turn (a head: `at + bits` is aligned to the next wider bit, or `bits` is all of a range that
/// ends there; a tail: `at` is aligned to its largest bit).
#[inline(always)]
unsafe fn by_bits<B: Backend + ?Sized, M: Word, O: Direction, const TAIL: bool>(
    b: &B,
    at: usize,
    pos: usize,
    bits: usize,
    op: O,
) {
    macro_rules! arms {
        ($($k:literal)*) => {
            // Masked: the arms of values of `M::WIDTH` or more are never taken, and the
            // compiler drops them.
            match bits & (M::WIDTH - 1) {
                // SAFETY: forwarded contract, `bits` being `$k`.
                $($k => unsafe { line::<B, M, O, TAIL, $k>(b, at, pos, op) },)*
                _ => {}
            }
        };
    }
    arms!(
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61
        62 63
    );
}

/// [`by_bits`] for `BITS`: its accesses, each width's test a constant.
///
/// # Safety
/// As for [`by_bits`] with `bits = BITS`.
#[inline(always)]
#[allow(unused_assignments)] // the last step advances `at` past its final use
unsafe fn line<B: Backend + ?Sized, M: Word, O: Direction, const TAIL: bool, const BITS: usize>(
    b: &B,
    mut at: usize,
    mut pos: usize,
    op: O,
) {
    macro_rules! step {
        ($t:ty) => {
            let w = <$t as Word>::WIDTH;
            if w < M::WIDTH && BITS & w != 0 {
                // SAFETY: `at` is `w`-aligned (the smaller bits were moved before it in a head;
                // in a tail, `at` is aligned to the larger one before it) and the bit is inside
                // the range (the caller's contract).
                unsafe { op.one::<B, $t>(b, at, pos) };
                at += w;
                pos += w;
            }
        };
    }
    if !TAIL {
        step!(u8);
        step!(u16);
        step!(u32);
        step!(u64);
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        step!(W128);
        #[cfg(target_arch = "x86_64")]
        step!(W256);
    } else {
        #[cfg(target_arch = "x86_64")]
        step!(W256);
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        step!(W128);
        step!(u64);
        step!(u32);
        step!(u16);
        step!(u8);
    }
}

/// Defines `$name`: [`walk`] with `$word` accesses in code compiled for `$feature` (one call
/// per copy) — [`words`] inline (no frame, no jump for a command), any other range in a second
/// function.
macro_rules! vector_walk {
    ($(#[$cfg:meta])* $name:ident, $word:ty, $feature:literal) => {
        /// [`walk`] with the accesses of its word type, compiled for its vector feature.
        ///
        /// # Safety
        /// As for [`walk`], and the CPU has the feature.
        $(#[$cfg])*
        #[target_feature(enable = $feature)]
        #[inline(never)]
        unsafe fn $name<B: Backend + ?Sized, O: Direction>(b: &B, off: usize, len: usize, op: O) {
            /// The walk of a range that is not whole words.
            ///
            /// # Safety
            /// As for the function it is in.
            #[target_feature(enable = $feature)]
            #[inline(never)]
            unsafe fn rest<B: Backend + ?Sized, O: Direction>(
                b: &B,
                off: usize,
                len: usize,
                op: O,
            ) {
                // SAFETY: forwarded contract.
                unsafe { walk::<B, $word, O>(b, off, len, op) }
            }
            // SAFETY: forwarded contract.
            unsafe {
                if !whole::<$word>(off, len) {
                    return rest(b, off, len, op);
                }
                words::<B, $word, O>(b, off, len, op)
            }
        }
    };
}

vector_walk!(
    #[cfg(target_arch = "x86_64")]
    walk_w256,
    W256,
    "avx"
);
vector_walk!(
    #[cfg(all(target_arch = "x86_64", iomem_avx512))]
    walk_w512,
    W512,
    "avx512f"
);

/// [`walk`] with the widest access the policy's `max` allows for `len`
/// ([`WidthPolicy::width_for`](super::WidthPolicy::width_for): at most [`INLINE_WIDTH`] for a
/// copy of up to [`SHORT_COPY`](super::SHORT_COPY) bytes): inline up to [`INLINE_WIDTH`], else
/// one call into code compiled for `max`.
///
/// # Safety
/// As for [`walk`], with that width for `M::WIDTH` (`max` a power of two the CPU has, ≤ the
/// backend's base alignment).
#[inline(always)]
unsafe fn walk_max<B: Backend + ?Sized, O: Direction>(
    b: &B,
    off: usize,
    len: usize,
    max: usize,
    op: O,
) {
    // SAFETY: forwarded contract; each arm's `M` is the width `max` allows for `len`.
    unsafe {
        // A copy of the inline width — the policy's, or a short copy's (`SHORT_COPY`) — first:
        // its whole words inline, any other range one call straight into its walk.
        if max >= INLINE_WIDTH && short_capped(max, len) == INLINE_WIDTH {
            if whole::<InlineWord>(off, len) {
                return words::<B, InlineWord, O>(b, off, len, op);
            }
            return walk_out::<B, InlineWord, O>(b, off, len, op);
        }
        // The CPU's widest, as plain branches (not a jump table).
        #[cfg(all(target_arch = "x86_64", iomem_avx512))]
        if max == 64 && INLINE_WIDTH < 64 {
            return walk_w512(b, off, len, op);
        }
        #[cfg(target_arch = "x86_64")]
        if max == 32 && INLINE_WIDTH < 32 {
            return walk_w256(b, off, len, op);
        }
        walk_apart(b, off, len, max, op)
    }
}

/// [`walk`] with `max` below [`INLINE_WIDTH`], out of line: the narrower fixed-width policies.
/// The caller, inlined into every copy, holds only calls and the inline width's [`words`], so
/// it needs no frame; this holds only the choice of width (each arm a jump to
/// [`walk_fixed`]).
///
/// # Safety
/// As for [`walk_max`].
#[inline(never)]
unsafe fn walk_apart<B: Backend + ?Sized, O: Direction>(
    b: &B,
    off: usize,
    len: usize,
    max: usize,
    op: O,
) {
    // SAFETY: forwarded contract; each arm's `M` is `max` wide.
    unsafe {
        match max {
            1 => walk_fixed::<B, u8, O>(b, off, len, op),
            2 => walk_fixed::<B, u16, O>(b, off, len, op),
            4 => walk_fixed::<B, u32, O>(b, off, len, op),
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            16 => walk_fixed::<B, W128, O>(b, off, len, op),
            #[cfg(all(target_arch = "x86_64", target_feature = "avx"))]
            32 => walk_fixed::<B, W256, O>(b, off, len, op),
            #[cfg(all(target_arch = "x86_64", iomem_avx512, target_feature = "avx512f"))]
            64 => walk_fixed::<B, W512, O>(b, off, len, op),
            // 8, and (never asked for) anything wider than this build has inline: at most 8.
            _ => walk_fixed::<B, u64, O>(b, off, len, op),
        }
    }
}

/// [`walk`] with `M` accesses, shaped as the vector walks: [`words`] first (no frame for a
/// command), any other range in a second function.
///
/// # Safety
/// As for [`walk`].
#[inline(never)]
unsafe fn walk_fixed<B: Backend + ?Sized, M: Word, O: Direction>(
    b: &B,
    off: usize,
    len: usize,
    op: O,
) {
    // SAFETY: forwarded contract.
    unsafe {
        if !whole::<M>(off, len) {
            return walk_out::<B, M, O>(b, off, len, op);
        }
        words::<B, M, O>(b, off, len, op)
    }
}

/// [`walk`] out of line: a range of `M` accesses that is not whole words.
///
/// # Safety
/// As for [`walk`].
#[inline(never)]
unsafe fn walk_out<B: Backend + ?Sized, M: Word, O: Direction>(
    b: &B,
    off: usize,
    len: usize,
    op: O,
) {
    // SAFETY: forwarded contract.
    unsafe { walk::<B, M, O>(b, off, len, op) }
}

/// Executes the copy `transfer` on `[off, off + len)` with accesses up to the width a policy of
/// widest access `max` has for `len` (the accesses of [`plan`](super::plan)), without barriers.
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
