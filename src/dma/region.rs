//! [`DmaRegion`]: an owned allocation of coherent host memory and the addresses a device uses
//! for it; [`Lease`]: the memory lent to the device, which is never freed under it.
//!
//! # The rule
//! A device may use a region's memory only through a [`Lease`]: its addresses
//! ([`Lease::addr`], [`Lease::range`], [`Lease::segments`]) exist only while a lease does, and the
//! lease keeps the memory allocated. Dropping the [`DmaRegion`] handle while a lease is out does
//! not free anything. A lease ends in one of two ways:
//!
//! - [`Lease::complete`]: the device is done with the memory (its command completed); once the
//!   region and every other lease are gone, the memory is freed and may be handed out again;
//! - dropped without completing (a command abandoned, a timeout, a driver bailing out): the
//!   memory is **quarantined** — kept allocated, never reused — until the provider's
//!   [`Quarantine::release`] is called after the device is disabled or reset.
//!
//! So a read into buffer A, A dropped, B allocated: B never gets A's memory while the read may
//! still land in it.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::mem::ManuallyDrop;
use core::ops::Range;

use super::{DmaAddr, DmaMem};
use crate::backend::{Backend, Caching};
use crate::copy::WidthPolicy;
use crate::error::{Error, Result};
use crate::iomem::IoMem;
use crate::order::Strategy;
use crate::sync::spin::SpinLock;
use alloc::sync::Arc;

/// How a region's bytes map to device addresses.
// The providers that make regions, and the queue pairs that use these, need `std`.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddrMap {
    /// Byte `o` of the region is at `base + o`.
    Contiguous(u64),
    /// Byte `o` is at `addrs[o >> shift] + (o & mask)`: chunks (pages) of `1 << shift` bytes,
    /// each contiguous, in whatever order the provider found them.
    Chunks { shift: u32, addrs: Vec<u64> },
}

impl AddrMap {
    /// Checks that the map gives every byte of a `len`-byte region (`len > 0`) an address, and
    /// that the last byte of each run of addresses is at or below the top of the address space
    /// (so no `addr` below wraps; a run may end exactly at 2^64).
    fn check(&self, len: usize) -> Result<()> {
        let wraps = Error::InvalidArgument("DMA addresses past the top of the address space");
        match self {
            // CAST: a `usize` length fits in u64.
            AddrMap::Contiguous(base) => base.checked_add(len as u64 - 1).map(drop).ok_or(wraps),
            AddrMap::Chunks { shift, addrs } => {
                let size = 1usize.checked_shl(*shift).ok_or(Error::InvalidArgument(
                    "DMA address chunk larger than memory",
                ))?;
                if addrs.len() < len.div_ceil(size) {
                    return Err(Error::InvalidArgument(
                        "DMA address map shorter than its region",
                    ));
                }
                // CAST: as above.
                let last = size as u64 - 1;
                match addrs.iter().all(|a| a.checked_add(last).is_some()) {
                    true => Ok(()),
                    false => Err(wraps),
                }
            }
        }
    }

    /// The device address of byte `off` (in range).
    fn addr(&self, off: usize) -> u64 {
        match self {
            // CAST: offsets are below the region's length, which fits in memory.
            AddrMap::Contiguous(base) => base + off as u64,
            AddrMap::Chunks { shift, addrs } => {
                let mask = (1usize << shift) - 1;
                // CAST: as above.
                addrs[off >> shift] + (off & mask) as u64
            }
        }
    }

    /// The device address of `[start, start + len)` (in range, `len > 0`) if it is one run of
    /// device addresses; `None` if it spans chunks that are not adjacent. Allocates nothing.
    #[inline]
    fn run(&self, start: usize, len: usize) -> Option<u64> {
        let a = self.addr(start);
        if let AddrMap::Chunks { shift, addrs } = self {
            let (first, last) = (start >> shift, (start + len - 1) >> shift);
            let size = 1u64 << shift;
            let chunks = addrs.get(first..=last)?;
            if chunks
                .windows(2)
                .any(|w| w[0].checked_add(size) != Some(w[1]))
            {
                return None;
            }
        }
        Some(a)
    }

    /// The maximal device-contiguous runs of `[start, start + len)` (in range), in order.
    fn runs(&self, start: usize, len: usize) -> Vec<(u64, usize)> {
        let mut out: Vec<(u64, usize)> = Vec::new();
        let (mut off, end) = (start, start + len);
        while off < end {
            let step = match self {
                AddrMap::Contiguous(_) => end - off,
                AddrMap::Chunks { shift, .. } => {
                    let next = ((off >> shift) + 1) << shift;
                    next.min(end) - off
                }
            };
            let a = self.addr(off);
            match out.last_mut() {
                // CAST: run lengths are below the region's length.
                Some((b, n)) if b.checked_add(*n as u64) == Some(a) => *n += step,
                _ => out.push((a, step)),
            }
            off += step;
        }
        out
    }
}

/// Memory kept from reuse because a device may still write it: the regions whose leases were
/// dropped without completing. One per provider (and so per device domain).
pub struct Quarantine {
    held: SpinLock<Vec<Box<dyn Send + Sync>>>,
}

impl Default for Quarantine {
    fn default() -> Self {
        Quarantine {
            held: SpinLock::new(Vec::new()),
        }
    }
}

impl fmt::Debug for Quarantine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quarantine")
            .field("regions", &self.len())
            .finish()
    }
}

impl Quarantine {
    /// Regions (leases) held.
    pub fn len(&self) -> usize {
        self.held.with(|h| h.len())
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hold(&self, what: Box<dyn Send + Sync>) {
        self.held.with(|h| h.push(what));
    }

    /// Frees the quarantined memory (what is not otherwise still in use). Until then it is never
    /// freed — not even when its provider is dropped (a provider over real memory keeps it for
    /// the life of the process; the mock and the RAM provider, which no real device reaches,
    /// release it when dropped).
    ///
    /// # Safety
    /// No device can still access the quarantined memory: every device it was lent to has been
    /// disabled or reset since (NVMe: CC.EN = 0 and CSTS.RDY = 0), had its bus mastering turned
    /// off, or lost its IOMMU mapping of it. (An IOMMU provider whose regions unmap themselves
    /// before freeing their memory can release safely at any time: `map::vfio::VfioDma::reclaim`.)
    pub unsafe fn release(&self) {
        let held = self.held.with(core::mem::take);
        drop(held);
    }
}

/// The shared state of a region: its memory, the addresses, the provider's quarantine.
///
/// # Invariant
/// `len > 0` and `offset + len <= backend.size()` (checked by
/// [`DmaRegion::from_parts_hooked`]); `offset..offset + len` of `backend` is coherent host
/// memory ([`Caching::Cacheable`]) that
/// this value owns (through `backend` and `_owner`, dropped after it), valid for volatile access
/// for as long as this value lives, and byte `o` of it is reached by a device at
/// `map.addr(o)`. A device is given those addresses only through a [`Lease`], which holds this
/// value.
struct Inner<B> {
    backend: B,
    offset: usize,
    len: usize,
    map: AddrMap,
    /// [`WidthPolicy::MEMORY_LIKE`] clamped to `backend`'s base alignment, once: the policy of
    /// every [`DmaRegion::mem`] handle.
    policy: WidthPolicy,
    quarantine: Arc<Quarantine>,
    /// What frees the memory when dropped (an unmapping, a return to the provider's allocator).
    _owner: Box<dyn Send + Sync>,
    /// Told when a lease is dropped uncompleted, before the region goes into quarantine (an
    /// IOMMU provider then keeps the region's IOVA from reuse after unmapping it).
    on_quarantine: Option<QuarantineHook>,
}

/// What [`DmaRegion::from_parts_hooked`] calls when a lease of the region is quarantined.
pub(crate) type QuarantineHook = Box<dyn Fn() + Send + Sync>;

/// An owned allocation of coherent host memory a device may read and write by DMA: a queue, a
/// PRP list, a data buffer. Made by a provider (the mock's [`MockDma`](super::MockDma), or the
/// Linux pagemap and huge-page providers in [`map::linux`](crate::map)).
///
/// The CPU reaches it through [`mem`](Self::mem) (volatile accesses, never a reference); a device
/// through the addresses of a [`Lease`]. See the [module docs](self) for when it is freed.
pub struct DmaRegion<B: Backend> {
    inner: Arc<Inner<B>>,
}

impl<B: Backend> fmt::Debug for DmaRegion<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaRegion")
            .field("len", &self.inner.len)
            .field("holders", &self.holders())
            .field("map", &self.inner.map)
            .finish()
    }
}

impl<B: Backend + Send + Sync + 'static> DmaRegion<B> {
    /// A region over `offset..offset + len` of `backend`, reached by a device at the addresses of
    /// `map`, freed by dropping `owner`.
    ///
    /// # Safety
    /// `offset..offset + len` of `backend` is coherent host memory that stays valid and is used
    /// by nothing else until `owner` is dropped, and byte `o` of it is what a device reaches at
    /// `map.addr(o)`.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) unsafe fn from_parts(
        backend: B,
        offset: usize,
        len: usize,
        map: AddrMap,
        quarantine: Arc<Quarantine>,
        owner: Box<dyn Send + Sync>,
    ) -> Result<Self> {
        // SAFETY: the caller's contract is the same.
        unsafe { Self::from_parts_hooked(backend, offset, len, map, quarantine, owner, None) }
    }

    /// [`from_parts`](Self::from_parts), calling `hook` each time a lease of the region is
    /// dropped uncompleted, before the region is put in quarantine.
    ///
    /// # Safety
    /// As for [`from_parts`](Self::from_parts).
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub(crate) unsafe fn from_parts_hooked(
        backend: B,
        offset: usize,
        len: usize,
        map: AddrMap,
        quarantine: Arc<Quarantine>,
        owner: Box<dyn Send + Sync>,
        hook: Option<QuarantineHook>,
    ) -> Result<Self> {
        let end = offset
            .checked_add(len)
            .ok_or(Error::Overflow { offset, len })?;
        if len == 0 || end > backend.size() {
            return Err(Error::OutOfRange {
                offset,
                len,
                size: backend.size(),
            });
        }
        map.check(len)?;
        if backend.caching() != Caching::Cacheable {
            return Err(Error::InvalidArgument(
                "DMA memory is host RAM: its backend must be Caching::Cacheable",
            ));
        }
        let policy = WidthPolicy::MEMORY_LIKE.clamped(backend.base_align());
        Ok(DmaRegion {
            inner: Arc::new(Inner {
                backend,
                offset,
                len,
                map,
                policy,
                quarantine,
                _owner: owner,
                on_quarantine: hook,
            }),
        })
    }

    /// Lends the region to a device: the returned lease gives its addresses and keeps the memory
    /// allocated until it completes (or, dropped without completing, quarantines it).
    pub fn lease(&self) -> Lease<B> {
        Lease {
            inner: ManuallyDrop::new(self.inner.clone()),
        }
    }
}

impl<B: Backend> DmaRegion<B> {
    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Whether the region is empty (never: a provider refuses zero-length regions).
    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    /// What else keeps the memory: leases not yet ended, quarantined ones, and other handles'
    /// shares (`0` when dropping this handle frees the memory).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.inner) - 1
    }

    /// The CPU's side of the whole region.
    #[inline]
    pub fn mem(&self) -> DmaMem<'_, [u8], B> {
        let i = &*self.inner;
        // Built from checked parts, so no policy is clamped again per handle.
        // SAFETY: by the invariant of `Inner`, `offset..offset + len` is inside the backend's
        // region (checked in `from_parts`) and `policy` was clamped to its base alignment there.
        let io = unsafe {
            IoMem::from_checked_parts(&i.backend, i.offset, i.len, i.policy, Strategy::Relaxed)
        };
        DmaMem::new(io)
    }

    /// The backend the region lives in and the region's absolute offset in it: byte `o` of the
    /// region is byte `offset + o` of the backend. For a ring that checks its bounds and
    /// alignment against these once and then accesses the backend directly
    /// ([`Backend::read`]/[`Backend::write`]): by the invariant of `Inner`,
    /// `offset + self.len() <= backend.size()`, and the memory stays valid while `self` lives.
    #[inline(always)]
    pub(crate) fn raw_parts(&self) -> (&B, usize) {
        let i = &*self.inner;
        (&i.backend, i.offset)
    }

    /// Whether `range` of the region is one run of device addresses (what a queue created with
    /// "physically contiguous" set, or a single data pointer, needs).
    pub fn contiguous(&self, range: Range<usize>) -> Result<bool> {
        let (start, len) = check(self.inner.len, &range)?;
        Ok(len == 0 || self.inner.map.run(start, len).is_some())
    }
}

/// `range` checked against a region of `size` bytes: `(start, len)`.
fn check(size: usize, range: &Range<usize>) -> Result<(usize, usize)> {
    let len = range
        .end
        .checked_sub(range.start)
        .ok_or(Error::InvalidArgument("range end is before its start"))?;
    if range.end > size {
        return Err(Error::OutOfRange {
            offset: range.start,
            len,
            size,
        });
    }
    Ok((range.start, len))
}

/// A region lent to a device. See the [module docs](self).
///
/// # Invariant
/// `inner` holds a share of the region until the lease ends: it is taken exactly once, by
/// [`complete`](Lease::complete) (which then forgets the lease) or by `drop`.
pub struct Lease<B: Backend + Send + Sync + 'static> {
    inner: ManuallyDrop<Arc<Inner<B>>>,
}

impl<B: Backend + Send + Sync + 'static> fmt::Debug for Lease<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("len", &self.len()).finish()
    }
}

impl<B: Backend + Send + Sync + 'static> Lease<B> {
    fn inner(&self) -> &Inner<B> {
        &self.inner
    }

    /// Size of the leased region in bytes.
    pub fn len(&self) -> usize {
        self.inner().len
    }

    /// Whether the region is empty (never).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device address of byte `offset` of the region.
    pub fn addr(&self, offset: usize) -> Result<DmaAddr> {
        let i = self.inner();
        check(i.len, &(offset..offset.saturating_add(1)))?;
        // SAFETY: by the invariant of `Inner` the device reaches byte `offset` of memory this
        // lease keeps allocated at this address.
        Ok(unsafe { DmaAddr::from_raw(i.map.addr(offset)) })
    }

    /// The device address of `range`, which must be one contiguous run of device addresses
    /// ([`Error::NotContiguous`] otherwise; [`segments`](Self::segments) splits any range).
    pub fn range(&self, range: Range<usize>) -> Result<DmaAddr> {
        let i = self.inner();
        let (start, len) = check(i.len, &range)?;
        if len == 0 {
            return self.addr(start);
        }
        match i.map.run(start, len) {
            // SAFETY: as in `addr`: the run is memory this lease keeps allocated.
            Some(a) => Ok(unsafe { DmaAddr::from_raw(a) }),
            None => Err(Error::NotContiguous { offset: start, len }),
        }
    }

    /// The device address of `range` if it is non-empty, inside the region and one run of
    /// device addresses; `None` otherwise (then [`range`](Self::range) says why). The data
    /// pointer builders' hot path: no error is built.
    #[inline]
    pub(crate) fn run(&self, range: &Range<usize>) -> Option<DmaAddr> {
        let i = self.inner();
        if range.start >= range.end || range.end > i.len {
            return None;
        }
        let a = i.map.run(range.start, range.end - range.start)?;
        // SAFETY: as in `addr`: the run is memory this lease keeps allocated.
        Some(unsafe { DmaAddr::from_raw(a) })
    }

    /// The maximal device-contiguous runs of `range`, in order: `(address, bytes)` pairs (for a
    /// PRP list or a scatter-gather list).
    pub fn segments(&self, range: Range<usize>) -> Result<Vec<(DmaAddr, usize)>> {
        let i = self.inner();
        let (start, len) = check(i.len, &range)?;
        Ok(i.map
            .runs(start, len)
            .into_iter()
            // SAFETY: as in `addr`.
            .map(|(a, n)| (unsafe { DmaAddr::from_raw(a) }, n))
            .collect())
    }

    /// The device is done with the memory: the lease ends without quarantine.
    ///
    /// # Safety
    /// No device will access the leased memory through the addresses this lease gave out any
    /// more (the command that used them completed, or the device was reset). The NVMe queue
    /// layer calls this when the completion arrives.
    pub unsafe fn complete(self) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so its share is taken here only (the invariant).
        drop(unsafe { ManuallyDrop::take(&mut this.inner) });
    }
}

impl<B: Backend + Send + Sync + 'static> Drop for Lease<B> {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and `complete` forgets the lease instead of dropping it, so
        // the share is taken here only (the invariant).
        let i = unsafe { ManuallyDrop::take(&mut self.inner) };
        // Not completed: the device may still write this memory. Keep it from reuse.
        if let Some(hook) = &i.on_quarantine {
            hook();
        }
        let q = i.quarantine.clone();
        q.hold(Box::new(i));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_adjacent_chunks() {
        let m = AddrMap::Chunks {
            shift: 12,
            addrs: alloc::vec![0x10000, 0x11000, 0x30000, 0x31000],
        };
        assert_eq!(m.runs(0, 0x4000), [(0x10000, 0x2000), (0x30000, 0x2000)]);
        assert_eq!(m.runs(0x1800, 0x1000), [(0x11800, 0x800), (0x30000, 0x800)]);
        assert_eq!(m.runs(0x100, 0x10), [(0x10100, 0x10)]);
        assert_eq!(AddrMap::Contiguous(0x5000).runs(3, 9), [(0x5003, 9)]);
        for (start, len) in [
            (0, 0x4000),
            (0x1800, 0x1000),
            (0x100, 0x10),
            (0, 0x2000),
            (0x2fff, 2),
        ] {
            let one = match m.runs(start, len).as_slice() {
                [(a, _)] => Some(*a),
                _ => None,
            };
            assert_eq!(m.run(start, len), one, "{start:#x}+{len:#x}");
        }
    }
}
