//! [`IoMem`]: a typed, bounds-checked handle to device memory that never becomes a reference.

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Bound, RangeBounds};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::backend::{Backend, Caching, Mmio};
use crate::copy::{self, Dir, WidthPolicy};
use crate::error::{Error, Result};
use crate::order::{Op, Placement, Strategy};

/// A handle to device memory holding a `T`: a register, a `#[repr(C)]` register block, a 64-byte
/// command, or `[u8]`.
///
/// `IoMem` is Linux's `void __iomem *` with its rules enforced by the type system: there is no
/// `Deref`, no indexing, and no method returning `&T`, `&mut T` or `&[u8]` of device memory, so
/// neither plain `memcpy` nor the compiler can touch it. Every access is a volatile access of a
/// known width at a checked offset, made by this crate through the backend `B`.
///
/// A handle borrows its backend (the mapping), so it cannot outlive it. Handles are `Copy`: two
/// handles to the same bytes are two pointers, not aliasing references.
///
/// Each handle carries a [`WidthPolicy`] (how wide its copies may go) and a [`Strategy`] (where
/// barriers go). Both are inherited by sub-handles.
///
/// # Invariant
/// `offset + len <= backend.size()`; for a sized `T`, `len == size_of::<T>()` and
/// `offset % align_of::<T>() == 0` (relative to a base aligned to `backend.base_align()`), and
/// `policy.max_width() <= backend.base_align()`.
pub struct IoMem<'a, T: ?Sized, B: Backend = Mmio> {
    backend: &'a B,
    offset: usize,
    len: usize,
    policy: WidthPolicy,
    strategy: Strategy,
    _t: PhantomData<fn(&T)>,
}

impl<T: ?Sized, B: Backend> Clone for IoMem<'_, T, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized, B: Backend> Copy for IoMem<'_, T, B> {}

impl<T: ?Sized, B: Backend> fmt::Debug for IoMem<'_, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoMem")
            .field("type", &core::any::type_name::<T>())
            .field("offset", &format_args!("{:#x}", self.offset))
            .field("len", &self.len)
            .field("policy", &self.policy)
            .field("strategy", &self.strategy)
            .finish()
    }
}

impl<'a, B: Backend> IoMem<'a, [u8], B> {
    /// A handle to the whole region of `backend`, with the default width policy
    /// ([`WidthPolicy::U64`]) and strategy ([`Strategy::Conservative`]).
    pub fn new(backend: &'a B) -> Self {
        let policy = clamp(WidthPolicy::default(), backend);
        IoMem {
            backend,
            offset: 0,
            len: backend.size(),
            policy,
            strategy: Strategy::default(),
            _t: PhantomData,
        }
    }

    /// The sub-range `range` of this handle, as a new handle.
    pub fn subslice<R: RangeBounds<usize>>(&self, range: R) -> Result<IoMem<'a, [u8], B>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s
                .checked_add(1)
                .ok_or(Error::Overflow { offset: s, len: 1 })?,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e
                .checked_add(1)
                .ok_or(Error::Overflow { offset: e, len: 1 })?,
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len,
        };
        let len = end
            .checked_sub(start)
            .ok_or(Error::InvalidArgument("range end is before its start"))?;
        let abs = self.check(start, len)?;
        Ok(self.retype(abs, len))
    }

    /// Splits the handle in two at `mid`.
    pub fn split_at(&self, mid: usize) -> Result<(Self, Self)> {
        Ok((self.subslice(..mid)?, self.subslice(mid..)?))
    }

    /// A typed handle to the `T` at byte `offset`. Fails if it does not fit or `offset` is not
    /// aligned to `align_of::<T>()`.
    pub fn cast<T>(&self, offset: usize) -> Result<IoMem<'a, T, B>> {
        let abs = self.check(offset, core::mem::size_of::<T>())?;
        let align = core::mem::align_of::<T>();
        if abs % align != 0 || align > self.backend.base_align() {
            return Err(Error::Misaligned { offset: abs, align });
        }
        Ok(self.retype(abs, core::mem::size_of::<T>()))
    }

    /// Copies `src` into the device memory of this handle (`memcpy_toio`). Lengths must match.
    pub fn copy_from_slice(&self, src: &[u8]) -> Result<()> {
        memcpy_toio(self, src)
    }

    /// Copies this handle's device memory into `dst` (`memcpy_fromio`). Lengths must match.
    pub fn copy_to_slice(&self, dst: &mut [u8]) -> Result<()> {
        memcpy_fromio(dst, self)
    }

    /// Sets every byte of this handle to `byte` (`memset_io`).
    pub fn fill(&self, byte: u8) -> Result<()> {
        memset_io(self, byte)
    }
}

/// Clamps a policy to what the backend's base alignment can carry.
fn clamp<B: Backend>(policy: WidthPolicy, backend: &B) -> WidthPolicy {
    policy.clamped(backend.base_align())
}

impl<'a, T: ?Sized, B: Backend> IoMem<'a, T, B> {
    /// Size in bytes of the device memory this handle covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the handle covers zero bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset of this handle from the start of its backend's region.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The backend (the mapping) this handle accesses.
    pub fn backend(&self) -> &'a B {
        self.backend
    }

    /// The mapping's caching.
    pub fn caching(&self) -> Caching {
        self.backend.caching()
    }

    /// This handle's width policy.
    pub fn policy(&self) -> WidthPolicy {
        self.policy
    }

    /// This handle's ordering strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The same handle with another width policy. A policy wider than the backend's base
    /// alignment is narrowed to what it can carry.
    pub fn with_policy(self, policy: WidthPolicy) -> Self {
        IoMem {
            policy: clamp(policy, self.backend),
            ..self
        }
    }

    /// The same handle with another ordering strategy.
    pub fn with_strategy(self, strategy: Strategy) -> Self {
        IoMem { strategy, ..self }
    }

    /// The same device memory as untyped bytes.
    pub fn as_bytes(&self) -> IoMem<'a, [u8], B> {
        self.retype(self.offset, self.len)
    }

    /// Checks `[off, off + len)` against this handle; returns the absolute offset.
    #[inline(always)]
    fn check(&self, off: usize, len: usize) -> Result<usize> {
        let end = off
            .checked_add(len)
            .ok_or(Error::Overflow { offset: off, len })?;
        if end > self.len {
            return Err(Error::OutOfRange {
                offset: off,
                len,
                size: self.len,
            });
        }
        Ok(self.offset + off)
    }

    /// A handle of another type over `[abs, abs + len)`. The caller has checked the range.
    #[inline(always)]
    fn retype<U: ?Sized>(&self, abs: usize, len: usize) -> IoMem<'a, U, B> {
        IoMem {
            backend: self.backend,
            offset: abs,
            len,
            policy: self.policy,
            strategy: self.strategy,
            _t: PhantomData,
        }
    }

    #[inline(always)]
    fn placement(&self, op: Op) -> Placement {
        self.strategy.placement(self.backend.arch(), op)
    }

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
        self.write_bytes_at(abs, value.as_bytes());
        Ok(())
    }

    /// # Safety
    /// `[abs, abs + size_of::<U>())` is inside the backend's region.
    #[inline(always)]
    unsafe fn read_at<U: FromBytes>(&self, abs: usize) -> U {
        let size = core::mem::size_of::<U>();
        let mut out = core::mem::MaybeUninit::<U>::uninit();
        // A zero-sized or in-range read cannot overflow: the range was checked.
        let plan = match copy::plan(abs, size, self.policy) {
            Ok(p) => p,
            Err(_) => unreachable_checked(),
        };
        let op = if plan.len() == 1 {
            Op::Read
        } else {
            Op::CopyFrom
        };
        let pl = self.placement(op);
        if let Some(b) = pl.before {
            self.backend.barrier(b);
        }
        // SAFETY: the plan covers a checked in-range region; `out` is valid for `size` bytes.
        unsafe {
            copy::execute(
                self.backend,
                &plan,
                Dir::FromIo(out.as_mut_ptr().cast()),
                pl.each,
            )
        };
        if let Some(b) = pl.after {
            // The barrier after a read may depend on the value read (powerpc `twi; isync`).
            let mut low = [0u8; 8];
            // SAFETY: the plan wrote all `size` bytes of `out`; at most 8 of them are copied
            // into `low`, which does not overlap it.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    out.as_ptr().cast::<u8>(),
                    low.as_mut_ptr(),
                    size.min(8),
                )
            };
            self.backend.barrier_after_read(b, u64::from_ne_bytes(low));
        }
        // SAFETY: every byte of `out` was written by the plan (it covers the range exactly once)
        // and `U: FromBytes` is valid for any bytes.
        unsafe { out.assume_init() }
    }

    /// Writes `bytes` at absolute offset `abs` (range already checked).
    #[inline(always)]
    fn write_bytes_at(&self, abs: usize, bytes: &[u8]) {
        let plan = match copy::plan(abs, bytes.len(), self.policy) {
            Ok(p) => p,
            Err(_) => unreachable_checked(),
        };
        let op = if plan.len() == 1 {
            Op::Write
        } else {
            Op::CopyTo
        };
        let pl = self.placement(op);
        if let Some(b) = pl.before {
            self.backend.barrier(b);
        }
        // SAFETY: the range was checked by the caller; `bytes` is valid for its whole length.
        unsafe { copy::execute(self.backend, &plan, Dir::ToIo(bytes.as_ptr()), pl.each) };
        if let Some(b) = pl.after {
            self.backend.barrier(b);
        }
    }

    /// Writes `value` (one access of its width) as a doorbell: the write is preceded by the
    /// strategy's doorbell barrier ([`Strategy::doorbell_barrier`]: the barrier that publishes
    /// earlier stores to RAM and device memory, [`WcFlush`](crate::Barrier::WcFlush) if this
    /// mapping is write-combining, nothing under `Relaxed`). To publish data held in *another*,
    /// write-combining mapping, ring through a [`Doorbell`](crate::publish::Doorbell).
    pub fn try_doorbell32(&self, offset: usize, value: u32) -> Result<()> {
        let abs = self.check_single(offset, 4)?;
        let wc = self.backend.caching() == Caching::WriteCombining;
        if let Some(b) = self.strategy.doorbell_barrier(self.backend.arch(), wc) {
            self.backend.barrier(b);
        }
        // SAFETY: `check_single` proved the access in range and aligned.
        unsafe { self.backend.write::<u32>(abs, value) };
        Ok(())
    }

    /// Checks a single access of `width` at `off`: in range and naturally aligned — relative to
    /// the mapping, and in the address space, which needs `width <= backend.base_align()`.
    #[inline(always)]
    fn check_single(&self, off: usize, width: usize) -> Result<usize> {
        let abs = self.check(off, width)?;
        if abs % width != 0 || width > self.backend.base_align() {
            return Err(Error::Misaligned {
                offset: abs,
                align: width,
            });
        }
        Ok(abs)
    }
}

/// Marks a branch that range checks made impossible; kept panic-free for release builds.
#[cold]
#[inline(never)]
fn unreachable_checked() -> ! {
    // `plan` only fails on `offset + len` overflow, which every caller has ruled out by checking
    // the range against a region that fits in the address space.
    unreachable!("access plan overflow after a successful range check")
}

macro_rules! single_access {
    ($($t:ty, $w:literal, $read:ident, $write:ident, $try_read:ident, $try_write:ident,
       $read_rel:ident, $write_rel:ident, $try_read_rel:ident, $try_write_rel:ident, $k:literal;)*) => {
        impl<'a, T: ?Sized, B: Backend> IoMem<'a, T, B> {$(
            #[doc = concat!("Reads the ", $k, "-bit register at byte `offset` (`read", stringify!($w), "` checked at run time): one ", stringify!($w), "-byte access, with the strategy's read barriers.")]
            pub fn $try_read(&self, offset: usize) -> Result<$t> {
                let abs = self.check_single(offset, $w)?;
                let pl = self.placement(Op::Read);
                if let Some(b) = pl.before { self.backend.barrier(b); }
                // SAFETY: `check_single` proved the access in range and naturally aligned.
                let v = unsafe { self.backend.read::<$t>(abs) };
                if let Some(b) = pl.after { self.backend.barrier_after_read(b, v as u64); }
                Ok(v)
            }

            #[doc = concat!("Writes the ", $k, "-bit register at byte `offset` (checked at run time): one ", stringify!($w), "-byte access, with the strategy's write barrier.")]
            pub fn $try_write(&self, offset: usize, value: $t) -> Result<()> {
                let abs = self.check_single(offset, $w)?;
                let pl = self.placement(Op::Write);
                if let Some(b) = pl.before { self.backend.barrier(b); }
                // SAFETY: `check_single` proved the access in range and naturally aligned.
                unsafe { self.backend.write::<$t>(abs, value) };
                if let Some(b) = pl.after { self.backend.barrier(b); }
                Ok(())
            }

            #[doc = concat!("Like [`", stringify!($try_read), "`](Self::", stringify!($try_read), ") without barriers (`_relaxed`).")]
            pub fn $try_read_rel(&self, offset: usize) -> Result<$t> {
                let abs = self.check_single(offset, $w)?;
                // SAFETY: `check_single` proved the access in range and naturally aligned.
                Ok(unsafe { self.backend.read::<$t>(abs) })
            }

            #[doc = concat!("Like [`", stringify!($try_write), "`](Self::", stringify!($try_write), ") without barriers (`_relaxed`).")]
            pub fn $try_write_rel(&self, offset: usize, value: $t) -> Result<()> {
                let abs = self.check_single(offset, $w)?;
                // SAFETY: `check_single` proved the access in range and naturally aligned.
                unsafe { self.backend.write::<$t>(abs, value) };
                Ok(())
            }
        )*}

        impl<'a, T, B: Backend> IoMem<'a, T, B> {$(
            #[doc = concat!("Reads the ", $k, "-bit register at the constant byte offset `OFF` of the `T`. Bounds and alignment are checked at compile time: `OFF + ", stringify!($w), " <= size_of::<T>()`, `OFF % ", stringify!($w), " == 0` and `align_of::<T>() >= ", stringify!($w), "` (use the `try_` variant for anything else).")]
            pub fn $read<const OFF: usize>(&self) -> $t {
                const { assert_single::<T>(OFF, $w) };
                let pl = self.placement(Op::Read);
                if let Some(b) = pl.before { self.backend.barrier(b); }
                // SAFETY: the const assertion puts the access inside the `T` and aligned relative
                // to it; the type invariant aligns the `T` to align_of::<T>() >= width.
                let v = unsafe { self.backend.read::<$t>(self.offset + OFF) };
                if let Some(b) = pl.after { self.backend.barrier_after_read(b, v as u64); }
                v
            }

            #[doc = concat!("Writes the ", $k, "-bit register at the constant byte offset `OFF` of the `T`, checked at compile time as for the read.")]
            pub fn $write<const OFF: usize>(&self, value: $t) {
                const { assert_single::<T>(OFF, $w) };
                let pl = self.placement(Op::Write);
                if let Some(b) = pl.before { self.backend.barrier(b); }
                // SAFETY: as for the read.
                unsafe { self.backend.write::<$t>(self.offset + OFF, value) };
                if let Some(b) = pl.after { self.backend.barrier(b); }
            }

            #[doc = concat!("Like [`", stringify!($read), "`](Self::", stringify!($read), ") without barriers (`_relaxed`).")]
            pub fn $read_rel<const OFF: usize>(&self) -> $t {
                const { assert_single::<T>(OFF, $w) };
                // SAFETY: as for the read.
                unsafe { self.backend.read::<$t>(self.offset + OFF) }
            }

            #[doc = concat!("Like [`", stringify!($write), "`](Self::", stringify!($write), ") without barriers (`_relaxed`).")]
            pub fn $write_rel<const OFF: usize>(&self, value: $t) {
                const { assert_single::<T>(OFF, $w) };
                // SAFETY: as for the read.
                unsafe { self.backend.write::<$t>(self.offset + OFF, value) }
            }
        )*}
    };
}

/// Compile-time check of a constant-offset single access into a `T`.
const fn assert_single<T>(off: usize, width: usize) {
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

single_access! {
    u8, 1, read8, write8, try_read8, try_write8, read8_relaxed, write8_relaxed, try_read8_relaxed, try_write8_relaxed, "8";
    u16, 2, read16, write16, try_read16, try_write16, read16_relaxed, write16_relaxed, try_read16_relaxed, try_write16_relaxed, "16";
    u32, 4, read32, write32, try_read32, try_write32, read32_relaxed, write32_relaxed, try_read32_relaxed, try_write32_relaxed, "32";
    u64, 8, read64, write64, try_read64, try_write64, read64_relaxed, write64_relaxed, try_read64_relaxed, try_write64_relaxed, "64";
}

impl<'a, T, B: Backend> IoMem<'a, T, B> {
    /// Reads the whole `T` with accesses as the width policy allows (one access if `T` is a
    /// register no wider than the policy).
    pub fn read(&self) -> T
    where
        T: FromBytes,
    {
        // SAFETY: by the type invariant the handle's range (size_of::<T>() bytes) is in bounds.
        unsafe { self.read_at::<T>(self.offset) }
    }

    /// Writes the whole `T` with accesses as the width policy allows.
    pub fn write(&self, value: &T)
    where
        T: IntoBytes + Immutable,
    {
        self.write_bytes_at(self.offset, value.as_bytes())
    }

    /// Projects to the field of type `F` at the constant byte offset `OFF` (use the
    /// [`project!`](crate::project) macro rather than calling this directly).
    ///
    /// `_field` exists only so the compiler infers `F` from the real field; it is never called.
    #[doc(hidden)]
    pub fn __project<F, const OFF: usize>(
        &self,
        _field: fn(*const T) -> *const F,
    ) -> IoMem<'a, F, B> {
        const {
            assert!(
                OFF + core::mem::size_of::<F>() <= core::mem::size_of::<T>(),
                "field outside the block"
            );
            assert!(
                OFF % core::mem::align_of::<F>() == 0,
                "field is not naturally aligned (packed struct?)"
            );
            // The block is only known to be aligned to its own alignment: a field that needs
            // more (a `u64` in a packed block) could sit at a misaligned device address.
            assert!(
                core::mem::align_of::<F>() <= core::mem::align_of::<T>(),
                "field is more aligned than its block (packed struct?)"
            );
        };
        self.retype(self.offset + OFF, core::mem::size_of::<F>())
    }
}

impl<'a, T, const N: usize, B: Backend> IoMem<'a, [T; N], B> {
    /// A handle to element `i` of this array (one register of a register array, one entry of
    /// a queue): an `IoMem<T>` at `i * size_of::<T>()`. Fails with [`Error::OutOfRange`] if
    /// `i >= N`.
    pub fn at(&self, i: usize) -> Result<IoMem<'a, T, B>> {
        let size = core::mem::size_of::<T>();
        if i >= N {
            return Err(Error::OutOfRange {
                offset: i.saturating_mul(size),
                len: size,
                size: self.len,
            });
        }
        // `i < N` and the handle covers `N * size` bytes, so the element is in range; it is
        // aligned to `align_of::<T>()` because the array is and `size` is a multiple of it.
        Ok(self.retype(self.offset + i * size, size))
    }
}

/// Projects an `IoMem<Block>` handle to one of the block's fields, without ever forming a
/// reference: `project!(regs, Block, field)` is an `IoMem<FieldType>` at `offset_of!(Block,
/// field)`.
///
/// Bounds and alignment of the field are checked at compile time.
///
/// ```
/// use iomem::{project, IoMem, backend::MockIo};
/// use zerocopy::{FromBytes, IntoBytes, Immutable};
///
/// #[derive(FromBytes, IntoBytes, Immutable)]
/// #[repr(C)]
/// struct Regs { ctrl: u32, status: u32, data: u64 }
///
/// let mock = MockIo::new(64);
/// let regs = IoMem::new(&mock).cast::<Regs>(0)?;
/// let status = project!(regs, Regs, status);
/// status.write(&0xabcd);
/// assert_eq!(regs.read32::<4>(), 0xabcd);
/// # Ok::<(), iomem::Error>(())
/// ```
#[macro_export]
macro_rules! project {
    ($io:expr, $Block:ty, $field:ident) => {
        $io.__project::<_, { ::core::mem::offset_of!($Block, $field) }>(|p: *const $Block| {
            // SAFETY: never called; it exists only so the compiler infers the field's type. Had it
            // run, `addr_of!` computes an address without reading or referencing memory.
            unsafe { ::core::ptr::addr_of!((*p).$field) }
        })
    };
}

/// Copies `src` into device memory (Linux `memcpy_toio`). `dst.len()` must equal `src.len()`.
///
/// The device sees aligned accesses no wider than `dst`'s [`WidthPolicy`] (see
/// [`copy`](crate::copy)), with the barriers of `dst`'s [`Strategy`] around them.
pub fn memcpy_toio<B: Backend>(dst: &IoMem<'_, [u8], B>, src: &[u8]) -> Result<()> {
    if dst.len != src.len() {
        return Err(Error::LengthMismatch {
            io_len: dst.len,
            buf_len: src.len(),
        });
    }
    let plan = copy::plan(dst.offset, dst.len, dst.policy)?;
    let pl = dst.placement(Op::CopyTo);
    if let Some(b) = pl.before {
        dst.backend.barrier(b);
    }
    // SAFETY: by the type invariant `dst`'s range is in bounds; `src` is valid for `dst.len`.
    unsafe { copy::execute(dst.backend, &plan, Dir::ToIo(src.as_ptr()), pl.each) };
    if let Some(b) = pl.after {
        dst.backend.barrier(b);
    }
    Ok(())
}

/// Copies device memory into `dst` (Linux `memcpy_fromio`). `dst.len()` must equal `src.len()`.
pub fn memcpy_fromio<B: Backend>(dst: &mut [u8], src: &IoMem<'_, [u8], B>) -> Result<()> {
    if dst.len() != src.len {
        return Err(Error::LengthMismatch {
            io_len: src.len,
            buf_len: dst.len(),
        });
    }
    let plan = copy::plan(src.offset, src.len, src.policy)?;
    let pl = src.placement(Op::CopyFrom);
    if let Some(b) = pl.before {
        src.backend.barrier(b);
    }
    // SAFETY: by the type invariant `src`'s range is in bounds; `dst` is valid for `src.len`.
    unsafe { copy::execute(src.backend, &plan, Dir::FromIo(dst.as_mut_ptr()), pl.each) };
    if let Some(b) = pl.after {
        src.backend.barrier(b);
    }
    Ok(())
}

/// Sets every byte of `dst` to `byte` (Linux `memset_io`).
pub fn memset_io<B: Backend>(dst: &IoMem<'_, [u8], B>, byte: u8) -> Result<()> {
    let plan = copy::plan(dst.offset, dst.len, dst.policy)?;
    let pl = dst.placement(Op::CopyTo);
    if let Some(b) = pl.before {
        dst.backend.barrier(b);
    }
    // SAFETY: by the type invariant `dst`'s range is in bounds; a fill reads no memory.
    unsafe { copy::execute(dst.backend, &plan, Dir::Fill(byte), pl.each) };
    if let Some(b) = pl.after {
        dst.backend.barrier(b);
    }
    Ok(())
}
