//! Accesses through a handle: the one ordered sequence (barrier, access, barrier) every accessor
//! uses, the width accessors (`read32::<OFF>`, `try_write64`, `_relaxed` forms), typed value
//! reads and writes, doorbells and standalone barriers.
//!
//! The width accessors and typed accessors exist only on handles to plain data
//! ([`zerocopy::FromBytes`]: byte ranges, integers, blocks of integers). A register cell
//! ([`reg`](crate::reg)) is not plain data, so a read-only register has no `write32` and a
//! write-only one no `read32`: its cell's own methods are the way in.
//! [`IoMem::as_bytes_ignoring_permissions`] is the explicit way around a wrong datasheet.

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::IoMem;
use crate::backend::{Backend, Caching, Word};
use crate::copy::{self, Plan, Transfer};
use crate::error::{Error, Result};
use crate::order::{Barrier, Op, Placement};

/// Whether an accessor carries the handle's strategy barriers or is a `_relaxed` form.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ordered {
    /// The strategy's barriers for the operation.
    Yes,
    /// None (`readl_relaxed`, `writel_relaxed`).
    Relaxed,
}

impl<'a, T: ?Sized, B: Backend> IoMem<'a, T, B> {
    #[inline(always)]
    pub(super) fn placement(&self, op: Op, ordered: Ordered) -> Placement {
        match ordered {
            Ordered::Yes => self.strategy.placement(self.backend.arch(), op),
            Ordered::Relaxed => Placement::NONE,
        }
    }

    /// One read of `W` at absolute offset `abs`, with `readl`'s barriers unless relaxed.
    ///
    /// # Safety
    /// `abs % W::WIDTH == 0`, `abs + W::WIDTH <= backend.size()`, `W::WIDTH <=
    /// backend.base_align()` (and [`has_w256`](crate::backend::has_w256) for a 32-byte `W`).
    #[inline(always)]
    pub(crate) unsafe fn read_one<W: Word>(&self, abs: usize, ordered: Ordered) -> W {
        let pl = self.placement(Op::Read, ordered);
        if let Some(b) = pl.before {
            self.backend.barrier(b);
        }
        // SAFETY: forwarded contract.
        let v = unsafe { self.backend.read::<W>(abs) };
        if let Some(b) = pl.after {
            // CAST: the barrier after a read depends on the low bits of the value only
            // (powerpc `twi 0,r,0`); wider words are truncated on purpose.
            self.backend.barrier_after_read(b, v.to_u128() as u64);
        }
        v
    }

    /// One write of `value` at absolute offset `abs`, with `writel`'s barrier unless relaxed.
    ///
    /// # Safety
    /// As for [`read_one`](Self::read_one).
    #[inline(always)]
    pub(crate) unsafe fn write_one<W: Word>(&self, abs: usize, value: W, ordered: Ordered) {
        let pl = self.placement(Op::Write, ordered);
        if let Some(b) = pl.before {
            self.backend.barrier(b);
        }
        // SAFETY: forwarded contract.
        unsafe { self.backend.write::<W>(abs, value) };
        if let Some(b) = pl.after {
            self.backend.barrier(b);
        }
    }

    /// Executes `plan` as operation `op` with the strategy's barriers around (and, where the
    /// strategy says so, between) its accesses. A barrier after a read is given the first
    /// bytes read (`loaded`, read after the plan ran) when there are any.
    ///
    /// # Safety
    /// The plan covers a range inside the backend's region, planned under this handle's policy
    /// (so no wider than `base_align`); the memory side of `transfer` is valid for its length.
    #[inline(always)]
    pub(crate) unsafe fn run_plan(
        &self,
        op: Op,
        plan: &Plan,
        transfer: Transfer,
        loaded: Option<&dyn Fn() -> u64>,
    ) {
        let pl = self.placement(op, Ordered::Yes);
        if let Some(b) = pl.before {
            self.backend.barrier(b);
        }
        // SAFETY: forwarded contract.
        unsafe { copy::execute(self.backend, plan, transfer, pl.each) };
        if let Some(b) = pl.after {
            match loaded {
                Some(v) => self.backend.barrier_after_read(b, v()),
                None => self.backend.barrier(b),
            }
        }
    }

    /// Runs a copy of this handle's whole range without a plan if it qualifies — a greedy
    /// policy (memory-like or a fixed width: not
    /// [`WidthPolicy::LINUX`](crate::WidthPolicy::LINUX), whose plans follow the kernel's), no
    /// barrier between accesses — and says whether it did (else the caller plans it). The
    /// accesses are those of the plan.
    ///
    /// # Safety
    /// As for [`run_plan`](Self::run_plan), for this handle's whole range.
    #[inline(always)]
    pub(crate) unsafe fn try_walk(&self, op: Op, transfer: Transfer) -> bool {
        // The greedy policies (memory-like and fixed widths) plan a bulk copy as the walk;
        // Linux's kernel-shaped plans are not greedy.
        if self.policy.is_linux() {
            return false;
        }
        // SAFETY: forwarded contract.
        unsafe { self.try_walk_at(self.offset, self.len, |_| op, transfer) }
    }

    /// Walks `[abs, abs + len)` as its greedy plan under this handle's policy's width, with
    /// the operation (for its barriers) chosen by `op` from the widest access; `false`, with
    /// nothing done, where the strategy puts barriers between accesses. For ranges whose plan
    /// is greedy: a typed value's under every policy ([`plan`](copy::plan): Linux's with
    /// accesses of up to 8 bytes), a bulk copy's under a greedy one
    /// ([`try_walk`](Self::try_walk)).
    ///
    /// # Safety
    /// `[abs, abs + len)` is in bounds of the backend, and the memory side of `transfer` is
    /// valid for `len` bytes.
    #[inline(always)]
    pub(crate) unsafe fn try_walk_at(
        &self,
        abs: usize,
        len: usize,
        op: impl Fn(usize) -> Op,
        transfer: Transfer,
    ) -> bool {
        let max = self.policy.clamped_width();
        self.barriered(
            op(self.policy.clamped_width_for(len)),
            #[inline(always)]
            move || {
                // SAFETY: the caller's contract puts the range in bounds and the memory side
                // valid; the policy was clamped to the backend and the CPU (the handle's
                // invariant).
                unsafe { copy::execute_walk(self.backend, abs, len, max, transfer) }
            },
        )
    }

    /// Runs `accesses` with the strategy's barriers for `op` before and after them, unless the
    /// strategy puts barriers between accesses: then `false`, with nothing done (the caller
    /// plans the copy instead). The unplanned paths' one way of ordering their accesses.
    ///
    /// Callers pass an `#[inline(always)] move` closure: the transfer is captured by value and
    /// stays in registers. Captured by reference, it was built on the stack byte by byte and
    /// reloaded whole — a failed store forward: a 64-byte copy took 11 ns on Zen 4, 6.3
    /// without it.
    #[inline(always)]
    fn barriered(&self, op: Op, accesses: impl FnOnce()) -> bool {
        let pl = self.placement(op, Ordered::Yes);
        if pl.each.is_some() {
            return false;
        }
        if let Some(b) = pl.before {
            self.backend.barrier(b);
        }
        accesses();
        if let Some(b) = pl.after {
            self.backend.barrier(b);
        }
        true
    }

    /// Checks a single access of `width` at `off`: in range and naturally aligned — relative to
    /// the mapping, and in the address space, which needs `width <= backend.base_align()`.
    #[inline(always)]
    pub(crate) fn check_single(&self, off: usize, width: usize) -> Result<usize> {
        let abs = self.check(off, width)?;
        if abs % width != 0 || width > self.backend.base_align() {
            return Err(Error::Misaligned {
                offset: abs,
                align: width,
            });
        }
        Ok(abs)
    }

    /// Issues `barrier` through this handle's backend: the way for a driver to order its own
    /// accesses (a `dma_rmb()` between a completion's phase tag and its payload, an `mb()`
    /// before reading a status the device just wrote). The real backend executes the
    /// architecture's instruction; the mock records it, so a test sees it.
    ///
    /// ```
    /// use iomem::{backend::MockIo, order::{Arch, Barrier}, IoMem};
    ///
    /// let mock = MockIo::new(64).with_arch(Arch::PowerPc64);
    /// IoMem::new(&mock).barrier(Barrier::DmaRmb);
    /// assert_eq!(mock.instructions(), ["lwsync"]);
    /// ```
    #[inline(always)]
    pub fn barrier(&self, barrier: Barrier) {
        self.backend.barrier(barrier)
    }

    /// Writes `value` (one access of its width) as a doorbell: the write is preceded by the
    /// strategy's doorbell barrier ([`Strategy::doorbell_barrier`](crate::Strategy::doorbell_barrier):
    /// the barrier that publishes earlier stores to RAM and device memory,
    /// [`WcFlush`](crate::Barrier::WcFlush) if this mapping is write-combining, nothing under
    /// `Relaxed`). To publish data held in *another*, write-combining mapping, ring through a
    /// [`Doorbell`](crate::publish::Doorbell).
    pub fn try_doorbell32(&self, offset: usize, value: u32) -> Result<()>
    where
        T: FromBytes,
    {
        let abs = self.check_single(offset, 4)?;
        let wc = self.backend.caching() == Caching::WriteCombining;
        if let Some(b) = self.strategy.doorbell_barrier(self.backend.arch(), wc) {
            self.backend.barrier(b);
        }
        // SAFETY: `check_single` proved the access in range and aligned.
        unsafe { self.write_one::<u32>(abs, value, Ordered::Relaxed) };
        Ok(())
    }
}

impl<'a, T: ?Sized + FromBytes, B: Backend> IoMem<'a, T, B> {
    /// Reads a `U` at byte `offset`, with accesses as the width policy allows.
    pub fn try_read<U: FromBytes>(&self, offset: usize) -> Result<U> {
        let abs = self.check(offset, core::mem::size_of::<U>())?;
        // SAFETY: the range is checked in bounds of the backend (type invariant + `check`), and
        // `read_at` is given a range of exactly `size_of::<U>()` bytes.
        Ok(unsafe { self.read_at::<U>(abs) })
    }

    /// Writes `value` as a `U` at byte `offset`, with accesses as the width policy allows.
    pub fn try_write<U: IntoBytes + Immutable>(&self, offset: usize, value: &U) -> Result<()> {
        let abs = self.check(offset, core::mem::size_of::<U>())?;
        // SAFETY: `check` put `[abs, abs + size_of::<U>())` in bounds of the backend.
        unsafe { self.write_bytes_at(abs, value.as_bytes()) };
        Ok(())
    }

    /// Reads a `U` at absolute `abs`: a typed value, planned greedily up to the policy's width.
    ///
    /// # Safety
    /// `[abs, abs + size_of::<U>())` is inside the backend's region.
    #[inline(always)]
    pub(crate) unsafe fn read_at<U: FromBytes>(&self, abs: usize) -> U {
        let size = core::mem::size_of::<U>();
        // A register-sized value at its natural alignment is the plan's single access: made
        // directly, with no plan (this is a completion's phase tag, a status register).
        if size <= 8 && size.is_power_of_two() && abs % size == 0 && self.policy.allows_word(size) {
            // SAFETY: for each arm, the caller put `[abs, abs + size)` in range; `abs` is
            // `size`-aligned, and `size` is within the policy, hence within `base_align`. `U`
            // has the word's size and, being `FromBytes`, is valid for any of its bits.
            unsafe {
                return match size {
                    1 => core::mem::transmute_copy(&self.read_one::<u8>(abs, Ordered::Yes)),
                    2 => core::mem::transmute_copy(&self.read_one::<u16>(abs, Ordered::Yes)),
                    4 => core::mem::transmute_copy(&self.read_one::<u32>(abs, Ordered::Yes)),
                    _ => core::mem::transmute_copy(&self.read_one::<u64>(abs, Ordered::Yes)),
                };
            }
        }
        let mut out = core::mem::MaybeUninit::<U>::uninit();
        let dst = out.as_mut_ptr().cast::<u8>();
        let plan = value_plan(abs, size, self.policy);
        let op = if plan.len() == 1 {
            Op::Read
        } else {
            Op::CopyFrom
        };
        let first = || {
            let mut low = [0u8; 8];
            // SAFETY: the plan wrote all `size` bytes at `dst` before a barrier asks for them;
            // at most 8 are copied into `low`, which does not overlap them.
            unsafe { core::ptr::copy_nonoverlapping(dst, low.as_mut_ptr(), size.min(8)) };
            u64::from_ne_bytes(low)
        };
        // SAFETY: the plan covers a checked in-range region; `dst` is valid for `size` bytes.
        unsafe { self.run_plan(op, &plan, Transfer::FromIo(dst), Some(&first)) };
        // SAFETY: every byte of `out` was written by the plan (it covers the range exactly once)
        // and `U: FromBytes` is valid for any bytes.
        unsafe { out.assume_init() }
    }

    /// Writes `bytes` at absolute offset `abs` as a typed value.
    ///
    /// # Safety
    /// `[abs, abs + bytes.len())` is inside the backend's region.
    #[inline(always)]
    pub(crate) unsafe fn write_bytes_at(&self, abs: usize, bytes: &[u8]) {
        let size = bytes.len();
        if size <= 8 && size.is_power_of_two() && abs % size == 0 && self.policy.allows_word(size) {
            let mut w = [0u8; 8];
            w[..size].copy_from_slice(bytes);
            // SAFETY: for each arm, as in `read_at`: the range was checked, the access is
            // aligned and within the policy; the word holds exactly `bytes`.
            unsafe {
                match size {
                    1 => self.write_one::<u8>(abs, w[0], Ordered::Yes),
                    2 => self.write_one::<u16>(abs, u16::from_ne_bytes([w[0], w[1]]), Ordered::Yes),
                    4 => self.write_one::<u32>(
                        abs,
                        u32::from_ne_bytes([w[0], w[1], w[2], w[3]]),
                        Ordered::Yes,
                    ),
                    _ => self.write_one::<u64>(abs, u64::from_ne_bytes(w), Ordered::Yes),
                }
            }
            return;
        }
        // The walk of the value's greedy plan (a 64-byte command: its words in a straight
        // line); one access is a `writel`-like write.
        let single = |max: usize| size.is_power_of_two() && abs % size == 0 && size <= max;
        // SAFETY: the range was checked by the caller; `bytes` is valid for its whole length.
        if unsafe {
            self.try_walk_at(
                abs,
                size,
                |max| if single(max) { Op::Write } else { Op::CopyTo },
                Transfer::ToIo(bytes.as_ptr()),
            )
        } {
            return;
        }
        // SAFETY: the caller's contract; the policy is this handle's, clamped to the backend.
        unsafe { IoMem::write_bytes_planned(self.backend, self.policy, self.strategy, abs, bytes) };
    }
}

impl<B: Backend> IoMem<'_, [u8], B> {
    /// [`write_bytes_at`](IoMem::write_bytes_at) for a value that is neither a register nor
    /// walked (a strategy with barriers between accesses): its plan, through a handle on the
    /// whole of `backend` with the caller's `policy` and `strategy` (a policy a handle on
    /// `backend` has, so within its base alignment). Out of line and given scalars, so the
    /// paths in front of it need neither a frame nor a handle in memory.
    ///
    /// # Safety
    /// `[abs, abs + bytes.len())` is inside `backend`'s region, and `policy` was clamped to
    /// `backend` (a handle's policy on it).
    #[inline(never)]
    unsafe fn write_bytes_planned(
        backend: &B,
        policy: copy::WidthPolicy,
        strategy: crate::order::Strategy,
        abs: usize,
        bytes: &[u8],
    ) {
        // The type's invariant: the whole backend, and the policy of a handle on it (clamped
        // to it).
        let io = IoMem::<[u8], B> {
            backend,
            offset: 0,
            len: backend.size(),
            policy,
            strategy,
            _t: core::marker::PhantomData,
        };
        let plan = value_plan(abs, bytes.len(), policy);
        let op = if plan.len() == 1 {
            Op::Write
        } else {
            Op::CopyTo
        };
        // SAFETY: the range was checked by the caller of `write_bytes_at`; `bytes` is valid for
        // its whole length.
        unsafe { io.run_plan(op, &plan, Transfer::ToIo(bytes.as_ptr()), None) };
    }
}

/// The plan of a typed value at a range already checked against a region (so `abs + len` does
/// not overflow: the region fits in the address space).
#[inline(always)]
fn value_plan(abs: usize, len: usize, policy: copy::WidthPolicy) -> Plan {
    match copy::plan(abs, len, policy) {
        Ok(p) => p,
        // Unreachable after the range check; an empty plan makes no access rather than a
        // wrong one.
        Err(_) => copy::Plan::EMPTY,
    }
}

impl<'a, T: FromBytes, B: Backend> IoMem<'a, T, B> {
    /// Reads the whole `T` with accesses as the width policy allows (one access if `T` is a
    /// register no wider than the policy).
    pub fn read(&self) -> T {
        // SAFETY: by the type invariant the handle's range (size_of::<T>() bytes) is in bounds.
        unsafe { self.read_at::<T>(self.offset) }
    }

    /// Writes the whole `T` with accesses as the width policy allows.
    pub fn write(&self, value: &T)
    where
        T: IntoBytes + Immutable,
    {
        // SAFETY: by the type invariant the handle's range (size_of::<T>() bytes) is in bounds.
        unsafe { self.write_bytes_at(self.offset, value.as_bytes()) }
    }
}

macro_rules! width_accessors {
    ($($t:ty, $w:literal, $read:ident, $write:ident, $try_read:ident, $try_write:ident,
       $read_rel:ident, $write_rel:ident, $try_read_rel:ident, $try_write_rel:ident, $k:literal;)*) => {
        impl<'a, T: ?Sized + FromBytes, B: Backend> IoMem<'a, T, B> {$(
            #[doc = concat!("Reads the ", $k, "-bit register at byte `offset` (`read", stringify!($w), "` checked at run time): one ", stringify!($w), "-byte access, with the strategy's read barriers.")]
            pub fn $try_read(&self, offset: usize) -> Result<$t> {
                let abs = self.check_single(offset, $w)?;
                // SAFETY: `check_single` proved the access in range and naturally aligned.
                Ok(unsafe { self.read_one::<$t>(abs, Ordered::Yes) })
            }

            #[doc = concat!("Writes the ", $k, "-bit register at byte `offset` (checked at run time): one ", stringify!($w), "-byte access, with the strategy's write barrier.")]
            pub fn $try_write(&self, offset: usize, value: $t) -> Result<()> {
                let abs = self.check_single(offset, $w)?;
                // SAFETY: `check_single` proved the access in range and naturally aligned.
                unsafe { self.write_one::<$t>(abs, value, Ordered::Yes) };
                Ok(())
            }

            #[doc = concat!("Like [`", stringify!($try_read), "`](Self::", stringify!($try_read), ") without barriers (`_relaxed`).")]
            pub fn $try_read_rel(&self, offset: usize) -> Result<$t> {
                let abs = self.check_single(offset, $w)?;
                // SAFETY: `check_single` proved the access in range and naturally aligned.
                Ok(unsafe { self.read_one::<$t>(abs, Ordered::Relaxed) })
            }

            #[doc = concat!("Like [`", stringify!($try_write), "`](Self::", stringify!($try_write), ") without barriers (`_relaxed`).")]
            pub fn $try_write_rel(&self, offset: usize, value: $t) -> Result<()> {
                let abs = self.check_single(offset, $w)?;
                // SAFETY: `check_single` proved the access in range and naturally aligned.
                unsafe { self.write_one::<$t>(abs, value, Ordered::Relaxed) };
                Ok(())
            }
        )*}

        impl<'a, T: FromBytes, B: Backend> IoMem<'a, T, B> {$(
            #[doc = concat!("Reads the ", $k, "-bit register at the constant byte offset `OFF` of the `T`. Bounds and alignment are checked at compile time: `OFF + ", stringify!($w), " <= size_of::<T>()`, `OFF % ", stringify!($w), " == 0` and `align_of::<T>() >= ", stringify!($w), "` (use the `try_` variant for anything else).")]
            pub fn $read<const OFF: usize>(&self) -> $t {
                const { assert_single::<T>(OFF, $w) };
                // SAFETY: the const assertion puts the access inside the `T` and aligned relative
                // to it; the type invariant aligns the `T` to align_of::<T>() >= width, and
                // align_of::<T>() <= base_align.
                unsafe { self.read_one::<$t>(self.offset + OFF, Ordered::Yes) }
            }

            #[doc = concat!("Writes the ", $k, "-bit register at the constant byte offset `OFF` of the `T`, checked at compile time as for the read.")]
            pub fn $write<const OFF: usize>(&self, value: $t) {
                const { assert_single::<T>(OFF, $w) };
                // SAFETY: as for the read.
                unsafe { self.write_one::<$t>(self.offset + OFF, value, Ordered::Yes) }
            }

            #[doc = concat!("Like [`", stringify!($read), "`](Self::", stringify!($read), ") without barriers (`_relaxed`).")]
            pub fn $read_rel<const OFF: usize>(&self) -> $t {
                const { assert_single::<T>(OFF, $w) };
                // SAFETY: as for the read.
                unsafe { self.read_one::<$t>(self.offset + OFF, Ordered::Relaxed) }
            }

            #[doc = concat!("Like [`", stringify!($write), "`](Self::", stringify!($write), ") without barriers (`_relaxed`).")]
            pub fn $write_rel<const OFF: usize>(&self, value: $t) {
                const { assert_single::<T>(OFF, $w) };
                // SAFETY: as for the read.
                unsafe { self.write_one::<$t>(self.offset + OFF, value, Ordered::Relaxed) }
            }
        )*}
    };
}

/// Compile-time check of a constant-offset single access into a `T`.
pub(crate) const fn assert_single<T>(off: usize, width: usize) {
    assert!(
        off + width <= core::mem::size_of::<T>(),
        "register access past the end of the block"
    );
    assert!(
        off % width == 0,
        "register offset is not aligned to the access width"
    );
    assert!(
        core::mem::align_of::<T>() >= width,
        "block alignment is smaller than the access width; use the try_ accessor"
    );
}

width_accessors! {
    u8, 1, read8, write8, try_read8, try_write8, read8_relaxed, write8_relaxed, try_read8_relaxed, try_write8_relaxed, "8";
    u16, 2, read16, write16, try_read16, try_write16, read16_relaxed, write16_relaxed, try_read16_relaxed, try_write16_relaxed, "16";
    u32, 4, read32, write32, try_read32, try_write32, read32_relaxed, write32_relaxed, try_read32_relaxed, try_write32_relaxed, "32";
    u64, 8, read64, write64, try_read64, try_write64, read64_relaxed, write64_relaxed, try_read64_relaxed, try_write64_relaxed, "64";
}
