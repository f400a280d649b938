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
//! RAM accesses; where a long body's memory side is off its width — a 64-byte body on a CPU
//! with AVX-512 VBMI, a 32-byte one read from the device on one with AVX2 — it moves aligned
//! memory words instead, shifting bytes between registers, so no store is split across two
//! cache lines (`merge`).
//!
//! The default policy, [`WidthPolicy::LINUX`], plans bulk copies exactly as the Linux kernel's
//! own `memcpy_toio`/`memcpy_fromio`/`memset_io` do on the architecture the backend runs on (or
//! simulates), widths included ([`plan_bulk`], [`kernel`] names each function it mirrors).
//! The other policies plan greedily with [`plan`].
//!
//! # Speed
//! Execution is monomorphised per direction and body width, so a body is a straight loop of
//! volatile accesses, unrolled eight times with the memory-side loads of a step issued before
//! its device-side stores (no per-access branch). Planning uses masks and shifts only. A
//! 32-byte (64-byte) body runs in a function compiled for AVX (AVX-512F), so each of its device
//! accesses is one `vmovdqa ymm` (`vmovdqa64 zmm`); a 4- or 8-byte body runs in a function of
//! its own, so its eight values in flight stay in registers. Memory-like and fixed-width copies
//! (their plans are greedy) walk the plan in one pass without building a [`Plan`], with one
//! call into vector code at most; a [`Plan`] is built for Linux-shaped copies and for
//! strategies with a barrier after every access. A copy of at most [`SHORT_COPY`] bytes makes
//! no call into vector code: its accesses are at most the build's inline width (16 bytes on a
//! default x86_64 build), which costs less than the call there. A copy of whole aligned words
//! of that width (a 64-byte command, typed or copied) is those accesses in a straight line,
//! with the width read from the handle's policy (resolved when the handle was made) rather than
//! asked of the CPU, and the planned path out of line, so the copy's entry needs no stack
//! frame. On RAM (the `report` example's `copy` section) the memory-like policy keeps up with a
//! plain `memcpy` at 4 KiB and 1 MiB; at 64 KiB it does on Zen 4 and reaches about three
//! quarters of it on Zen 5, whose C library `memcpy` is `rep movsb` there, which writes whole
//! cache lines without reading them first — no sequence of store instructions does that;
//! `U32`/`U64` run as fast as a bare loop of their width. Unlike `rep movsb`, the copies do not
//! slow down when `dst - src` is 1..63 (mod 4096).

use core::fmt;

use crate::backend::{memory_like_width, HAS_W128, INLINE_WIDTH};
use crate::error::{Error, Result};

mod exec;
pub mod kernel;
#[cfg(target_arch = "x86_64")]
mod merge;
mod plan;
mod walk;

pub(crate) use exec::{execute, Transfer};
pub use kernel::{plan_bulk, Bulk};
pub use plan::{plan, Plan, Step};
pub(crate) use walk::execute_walk;

/// The widest single access a copy may make.
///
/// Part of every [`IoMem`](crate::IoMem) handle. It governs bulk copies and typed reads/writes of
/// structures; single-register accessors (`read32`, `try_write64`, …) always make exactly the
/// access they name.
///
/// [`WidthPolicy::MEMORY_LIKE`] is a class rather than a number: its width is the widest the CPU
/// has ([`memory_like_width`]; the environment variable `IOMEM_MAX_WIDTH` forces a narrower
/// one), limited by the alignment of the mapping it is used on
/// (a handle's policy is clamped to its backend's base alignment). All memory-like policies
/// compare equal.
///
/// [`WidthPolicy::LINUX`], the default, is a class too: bulk copies take the shape of the kernel's
/// `memcpy_toio`/`memcpy_fromio`/`memset_io` on the backend's architecture ([`kernel`]), and
/// typed reads and writes of values make accesses of up to 8 bytes (a `u64` register is one
/// `readq`-sized access). All Linux policies compare equal.
#[derive(Clone, Copy)]
pub struct WidthPolicy {
    /// Widest access; for a memory-like or Linux policy, the cap from the mapping's alignment.
    max: u8,
    kind: Kind,
}

/// The three classes of [`WidthPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// A fixed maximum width, planned greedily.
    Fixed,
    /// The widest access of the CPU, planned greedily.
    MemoryLike,
    /// The kernel's own bulk copies for the backend's architecture ([`kernel`]).
    Linux,
}

/// The longest memory-like copy that makes accesses no wider than [`INLINE_WIDTH`]
/// ([`WidthPolicy::width_for`]): two cache lines.
///
/// Wider accesses than the build's inline width run in a function compiled for their vector
/// feature (AVX, AVX-512F), one call per copy. For a copy this short the call, its checks and
/// the vector state's `vzeroupper` cost more than the accesses it saves: on Zen 2 a 64-byte
/// memory-like copy took 3.2 ns as two 32-byte accesses in that call and 2.3–2.4 ns as four
/// inline 16-byte ones (a plain `memcpy`: 2.1), a 128-byte one 5.0–5.3 ns against 3.7; at 256
/// bytes the two were equal.
pub const SHORT_COPY: usize = 128;

/// The widest access of a copy of `len` bytes when a memory-like policy allows `max`: at most
/// [`INLINE_WIDTH`] up to [`SHORT_COPY`] bytes, else `max`. (The walk applies it to any `max`:
/// only a memory-like policy has one above the inline width, since a fixed width of 16 exists
/// only where [`HAS_W128`] and so the inline width is at least 16.)
#[inline(always)]
const fn short_capped(max: usize, len: usize) -> usize {
    if len <= SHORT_COPY && max > INLINE_WIDTH {
        INLINE_WIDTH
    } else {
        max
    }
}

/// Widest access of memory-like copies ([`memory_like_width`]: the CPU's, or less if forced).
#[inline(always)]
fn widest() -> usize {
    memory_like_width()
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
    /// aligned load/store the CPU has — 64 bytes on x86_64 with AVX-512F, 32 with AVX (both
    /// detected at run time; 64-byte accesses need the crate built by rustc 1.89 or newer),
    /// 16 bytes on other x86_64 and aarch64, 8 elsewhere — on mappings aligned to it. Copies
    /// and typed values of at most [`SHORT_COPY`] bytes make accesses no wider than the build's
    /// inline width ([`width_for`](Self::width_for)).
    pub const MEMORY_LIKE: WidthPolicy = WidthPolicy {
        max: 64,
        kind: Kind::MemoryLike,
    };
    /// What Linux does (the default): bulk copies shaped exactly as the kernel's own
    /// `memcpy_toio`/`memcpy_fromio`/`memset_io` on the backend's architecture — powerpc's
    /// 32-bit loops with bytes wherever the device and RAM sides are not both aligned, the
    /// bytes-then-64-bit loops of arm64, riscv and `lib/iomem_copy.c`, x86's `movs` sequence
    /// ([`kernel`]); typed values with accesses of up to 8 bytes.
    pub const LINUX: WidthPolicy = WidthPolicy {
        max: 8,
        kind: Kind::Linux,
    };

    pub(crate) const fn fixed(max: u8) -> Self {
        WidthPolicy {
            max,
            kind: Kind::Fixed,
        }
    }

    pub(crate) const fn kind(self) -> Kind {
        self.kind
    }

    /// A policy allowing accesses up to `max` bytes: 1, 2, 4, 8, or 16 where the CPU has a
    /// 16-byte access ([`HAS_W128`]). (32- and 64-byte accesses come only with
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

    /// The widest access allowed, in bytes (for [`WidthPolicy::LINUX`], the widest typed access
    /// and the cap on the kernel loops' widths).
    #[inline]
    pub fn max_width(self) -> usize {
        match self.kind {
            Kind::MemoryLike => widest().min(self.max as usize),
            Kind::Fixed | Kind::Linux => self.max as usize,
        }
    }

    /// The widest access a copy (or a typed value) of `len` bytes makes under this policy:
    /// [`max_width`](Self::max_width), except that a memory-like copy of at most [`SHORT_COPY`]
    /// bytes makes none wider than [`INLINE_WIDTH`] (16 bytes on an x86_64 build without `-C
    /// target-feature=+avx`), which the copy's entry makes inline. [`plan`] plans with it.
    ///
    /// ```
    /// use iomem::backend::INLINE_WIDTH;
    /// use iomem::copy::SHORT_COPY;
    /// use iomem::WidthPolicy;
    ///
    /// let p = WidthPolicy::MEMORY_LIKE;
    /// assert_eq!(p.width_for(4096), p.max_width());
    /// assert_eq!(p.width_for(64), p.max_width().min(INLINE_WIDTH));
    /// assert_eq!(p.width_for(SHORT_COPY + 1), p.max_width());
    /// assert_eq!(WidthPolicy::U32.width_for(64), 4);
    /// ```
    #[inline]
    pub fn width_for(self, len: usize) -> usize {
        self.capped(self.max_width(), len)
    }

    /// [`width_for`](Self::width_for) of a policy that [`clamped`](Self::clamped) made,
    /// without asking the CPU ([`clamped_width`](Self::clamped_width)).
    #[inline(always)]
    pub(crate) fn clamped_width_for(self, len: usize) -> usize {
        self.capped(self.clamped_width(), len)
    }

    /// The policy's widest access `width`, as its kind narrows it for a copy of `len` bytes
    /// (a memory-like one: [`short_capped`]).
    #[inline(always)]
    fn capped(self, width: usize, len: usize) -> usize {
        match self.kind {
            Kind::MemoryLike => short_capped(width, len),
            Kind::Fixed | Kind::Linux => width,
        }
    }

    /// The widest access of a policy that [`clamped`](Self::clamped) made (a handle's): its
    /// cap, which already holds the CPU's widest for a memory-like policy — what
    /// [`max_width`](Self::max_width) gives, without asking the CPU.
    #[inline(always)]
    pub(crate) fn clamped_width(self) -> usize {
        self.max as usize
    }

    /// Whether one access of `width` bytes (1, 2, 4 or 8) is within the policy, without asking
    /// the CPU what it has (every memory-like width is at least 8 bytes).
    #[inline(always)]
    pub(crate) fn allows_word(self, width: usize) -> bool {
        width <= 8 && width <= self.max as usize
    }

    /// Whether this is [`WidthPolicy::MEMORY_LIKE`].
    pub const fn is_memory_like(self) -> bool {
        matches!(self.kind, Kind::MemoryLike)
    }

    /// Whether this is [`WidthPolicy::LINUX`].
    pub const fn is_linux(self) -> bool {
        matches!(self.kind, Kind::Linux)
    }

    /// This policy limited to accesses no wider than `align` (a mapping's base alignment, ≥ 1):
    /// unchanged if it fits; a memory-like or Linux policy keeps its class with a smaller cap;
    /// a fixed one becomes the largest power of two ≤ `align`, at most 8 bytes. A memory-like
    /// policy's cap is also brought down to the CPU's widest access, so a handle's policy
    /// (every handle's is clamped) holds its width without asking the CPU again.
    #[inline]
    pub fn clamped(self, align: usize) -> WidthPolicy {
        // CAST: the widest access is at most 64 bytes.
        let resolved = WidthPolicy {
            max: self.max_width() as u8,
            kind: self.kind,
        };
        if resolved.max_width() <= align {
            return resolved;
        }
        let pow2 = |n: usize| 1usize << (usize::BITS - 1 - n.max(1).leading_zeros());
        let cap = match self.kind {
            Kind::MemoryLike => 64,
            Kind::Fixed | Kind::Linux => 8,
        };
        // CAST: the cap is at most 64, so the power of two fits a u8.
        WidthPolicy {
            max: pow2(align).min(cap) as u8,
            kind: self.kind,
        }
    }
}

impl PartialEq for WidthPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && (self.kind != Kind::Fixed || self.max == other.max)
    }
}

impl Eq for WidthPolicy {}

impl core::hash::Hash for WidthPolicy {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        if self.kind == Kind::Fixed {
            self.max.hash(state);
        }
    }
}

impl Default for WidthPolicy {
    /// [`WidthPolicy::LINUX`]: what the kernel does on the backend's architecture.
    fn default() -> Self {
        WidthPolicy::LINUX
    }
}

impl fmt::Debug for WidthPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::MemoryLike => write!(
                f,
                "WidthPolicy(memory-like, max {} bytes)",
                self.max_width()
            ),
            Kind::Linux => write!(f, "WidthPolicy(linux, max {} bytes)", self.max),
            Kind::Fixed => write!(f, "WidthPolicy(max {} bytes)", self.max),
        }
    }
}

#[cfg(test)]
mod tests;
