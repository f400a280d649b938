//! [`IoMem`]: a typed, bounds-checked handle to device memory that never becomes a reference.

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Bound, RangeBounds};

use zerocopy::FromBytes;

use crate::backend::{Backend, Caching, Mmio};
use crate::copy::WidthPolicy;
use crate::error::{Error, Result};
use crate::order::Strategy;

mod access;
mod bulk;
mod direct;
mod project;

pub(crate) use access::Ordered;
pub use bulk::{memcpy_fromio, memcpy_toio, memset_io};

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
/// `offset + len <= backend.size()`; for a sized `T`, `len == size_of::<T>()`,
/// `align_of::<T>() <= backend.base_align()` and `offset % align_of::<T>() == 0` (so the `T` sits
/// at an address aligned to `align_of::<T>()`); and `policy` was clamped to the backend
/// ([`WidthPolicy::clamped`] of its base alignment), so `policy.max_width() <=
/// backend.base_align()` and the policy's cap is its width (`clamped_width() == max_width()`).
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

    /// A handle to `offset..offset + len` of `backend` with `policy` and `strategy`, from parts
    /// the caller has checked, for owners that check their range once and hand out handles
    /// often ([`DmaRegion::mem`](crate::dma::DmaRegion::mem)).
    ///
    /// # Safety
    /// `offset + len <= backend.size()` and `policy` was clamped to the backend's base alignment
    /// ([`WidthPolicy::clamped`]: the type's invariant, which every access relies on).
    #[inline(always)]
    #[cfg(feature = "alloc")]
    pub(crate) unsafe fn from_checked_parts(
        backend: &'a B,
        offset: usize,
        len: usize,
        policy: WidthPolicy,
        strategy: Strategy,
    ) -> Self {
        debug_assert!(offset.checked_add(len).is_some_and(|e| e <= backend.size()));
        debug_assert!(policy.max_width() <= backend.base_align());
        debug_assert_eq!(policy.clamped_width(), policy.max_width());
        IoMem {
            backend,
            offset,
            len,
            policy,
            strategy,
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
    ///
    /// Only for plain data (`T: FromBytes`): a handle to a register cell
    /// ([`reg`](crate::reg)) keeps the cell's permissions, so a read-only register cannot be
    /// written through its bytes. See [`as_bytes_ignoring_permissions`](Self::as_bytes_ignoring_permissions).
    pub fn as_bytes(&self) -> IoMem<'a, [u8], B>
    where
        T: FromBytes,
    {
        self.retype(self.offset, self.len)
    }

    /// The same device memory as untyped bytes, whatever `T` says may be done with it: the
    /// explicit way to write a register the block declares read-only (or read one declared
    /// write-only) when the datasheet is wrong. Memory safety does not depend on register
    /// permissions — every access still is an aligned, bounds-checked volatile access — so this
    /// is not `unsafe`; it is named so that a review finds it.
    pub fn as_bytes_ignoring_permissions(&self) -> IoMem<'a, [u8], B> {
        self.retype(self.offset, self.len)
    }

    /// Checks `[off, off + len)` against this handle; returns the absolute offset.
    #[inline(always)]
    pub(crate) fn check(&self, off: usize, len: usize) -> Result<usize> {
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

    /// A handle of another type over `[abs, abs + len)`. The caller has checked the range (and,
    /// for a sized `U`, its size and alignment).
    #[inline(always)]
    pub(crate) fn retype<U: ?Sized>(&self, abs: usize, len: usize) -> IoMem<'a, U, B> {
        IoMem {
            backend: self.backend,
            offset: abs,
            len,
            policy: self.policy,
            strategy: self.strategy,
            _t: PhantomData,
        }
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
