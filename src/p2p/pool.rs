//! [`P2pPool`]: the shared state of a pool (the backend, the region's geometry, the arenas of
//! the allocator, each behind the crate's spin lock) and the handle that allocates from it.

use core::fmt;

use super::arena::Arenas;
use super::buf::P2pBuf;
use super::config::{P2pConfig, MIN_GRANULARITY};
use super::tlsf::MAX_GRANULES;
use crate::backend::Backend;
use crate::copy::WidthPolicy;
use crate::error::{Error, Result};
use crate::iomem::IoMem;
use crate::order::Strategy;
use crate::sync::Arc;

/// A snapshot of a pool's use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P2pStats {
    /// Bytes the pool manages.
    pub total: usize,
    /// Bytes free.
    pub free: usize,
    /// Size of the largest free block: the largest allocation with alignment ≤ the
    /// granularity that would succeed now.
    pub largest_free: usize,
    /// Live allocations.
    pub allocations: usize,
    /// Bytes quarantined: buffers lent to a device and dropped before the device was done
    /// ([`P2pLease`](super::P2pLease)); they stay allocated for the pool's life.
    pub quarantined: usize,
    /// Free blocks (a measure of fragmentation).
    pub free_blocks: usize,
    /// The pool's granularity.
    pub granularity: usize,
}

/// The state a pool's handles and buffers share (through one `Arc`).
///
/// # Invariant
/// `offset + len <= backend.size()`, `len` is a whole number of granules (`1 << shift` bytes),
/// and `arenas` manage `len >> shift` granules between them: every live allocation of `arenas`
/// lies inside `offset..offset + len` of the backend.
pub(super) struct Inner<B> {
    pub(super) backend: B,
    /// Offset of the managed region in the backend.
    pub(super) offset: usize,
    pub(super) len: usize,
    pub(super) bus_addr: u64,
    pub(super) shift: u32,
    policy: WidthPolicy,
    strategy: Strategy,
    /// The allocator: one TLSF per arena. Their counts of live allocations also decide who
    /// holds the buffers' shares of the `Arc` (see [`P2pBuf`]).
    pub(super) arenas: Arenas,
}

/// A sub-allocator over a region of device memory. See the [module docs](super).
///
/// Cloning a pool gives another handle on the same allocator.
pub struct P2pPool<B: Backend> {
    pub(super) inner: Arc<Inner<B>>,
}

impl<B: Backend> Clone for P2pPool<B> {
    fn clone(&self) -> Self {
        P2pPool {
            inner: self.inner.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for P2pPool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P2pPool")
            .field("offset", &format_args!("{:#x}", self.inner.offset))
            .field("len", &self.inner.len)
            .field("bus_addr", &format_args!("{:#x}", self.inner.bus_addr))
            .field("stats", &self.stats())
            .finish()
    }
}

impl<B: Backend> P2pPool<B> {
    /// A pool over all of `backend`, whose first byte is at bus address `bus_addr`, with the
    /// defaults of [`P2pConfig::new`].
    ///
    /// # Safety
    /// As for [`with_config`](Self::with_config): devices reach the backend's first byte at
    /// `bus_addr`.
    pub unsafe fn new(backend: B, bus_addr: u64) -> Result<Self> {
        // SAFETY: the caller's contract.
        unsafe { Self::with_config(backend, P2pConfig::new(bus_addr)) }
    }

    /// A pool as `config` says.
    ///
    /// Errors ([`Error::InvalidArgument`] unless said otherwise): granularity not a power of two
    /// or below [`MIN_GRANULARITY`]; the range not inside the backend ([`Error::OutOfRange`]);
    /// the region start not 64-byte aligned in the backend; the bus address not aligned to the
    /// granularity; a region smaller than one granule or of more than 2^31 granules; bus
    /// address + length overflowing 64 bits ([`Error::Overflow`]). A length that is not a
    /// multiple of the granularity is rounded down.
    ///
    /// # Safety
    /// `backend` is device memory that devices reach at the config's bus address: its first
    /// byte, or `config.range`'s first byte if a range is set, is at that bus address, and the
    /// rest follows contiguously. The pool hands devices addresses from it
    /// ([`P2pBuf::dma_addr`](super::P2pBuf::dma_addr), queue bases, data pointers): with a wrong
    /// one, their DMA goes to whatever memory really is there — host RAM too. A pool over a
    /// mock backend whose addresses no real device is given meets this. [`CmbPool`] and
    /// [`PmrPool`] make their pools from what the controller and the platform report.
    ///
    /// [`CmbPool`]: crate::nvme::cmb::CmbPool
    /// [`PmrPool`]: crate::nvme::pmr::PmrPool
    pub unsafe fn with_config(backend: B, config: P2pConfig) -> Result<Self> {
        let g = config.granularity;
        if !g.is_power_of_two() || g < MIN_GRANULARITY {
            return Err(Error::InvalidArgument(
                "granularity must be a power of two of at least 64 bytes",
            ));
        }
        let range = config.range.clone().unwrap_or(0..backend.size());
        let len = range
            .end
            .checked_sub(range.start)
            .ok_or(Error::InvalidArgument("range end is before its start"))?;
        if range.end > backend.size() {
            return Err(Error::OutOfRange {
                offset: range.start,
                len,
                size: backend.size(),
            });
        }
        if range.start % 64 != 0 {
            return Err(Error::InvalidArgument(
                "pool region must start 64-byte aligned in its mapping",
            ));
        }
        if config.bus_addr % g as u64 != 0 {
            return Err(Error::InvalidArgument(
                "bus address of the pool must be aligned to its granularity",
            ));
        }
        let granules = (len / g) as u64;
        if granules == 0 || granules > MAX_GRANULES {
            return Err(Error::InvalidArgument(
                "pool must hold between 1 and 2^31 granules",
            ));
        }
        let len = granules as usize * g;
        config
            .bus_addr
            .checked_add(len as u64)
            .ok_or(Error::Overflow {
                offset: config.bus_addr as usize,
                len,
            })?;
        let shift = g.trailing_zeros();
        // CAST: granules ≤ MAX_GRANULES = 2^31
        let arenas = Arenas::new(granules as u32, config.bus_addr >> shift, config.arenas);
        Ok(P2pPool {
            inner: Arc::new(Inner {
                backend,
                offset: range.start,
                len,
                bus_addr: config.bus_addr,
                shift,
                policy: config.policy,
                strategy: config.strategy,
                arenas,
            }),
        })
    }

    /// Allocates `size` bytes (rounded up to the granularity) whose bus address is aligned to
    /// `align` (a power of two).
    ///
    /// Errors: [`Error::InvalidArgument`] for a zero size or an alignment that is not a power of
    /// two; [`Error::Exhausted`] (with the pool's free bytes and largest free block) when no
    /// free block fits.
    #[inline]
    pub fn alloc(&self, size: usize, align: usize) -> Result<P2pBuf<B>> {
        if size == 0 || !align.is_power_of_two() {
            return Err(Self::bad_request(size));
        }
        let shift = self.inner.shift;
        // granules, rounding up (shifts: a division by a run-time power of two is slow)
        let n = (size as u64 >> shift) + (size as u64 & ((1 << shift) - 1) != 0) as u64;
        let align_g = ((align as u64) >> shift).max(1);
        match P2pBuf::alloc(&self.inner, n, align_g) {
            Some(buf) => Ok(buf),
            None => Err(self.exhausted(size, align)),
        }
    }

    #[cold]
    fn bad_request(size: usize) -> Error {
        if size == 0 {
            Error::InvalidArgument("allocation size must not be zero")
        } else {
            Error::InvalidArgument("alignment must be a power of two")
        }
    }

    #[cold]
    fn exhausted(&self, size: usize, align: usize) -> Error {
        let s = self.stats();
        Error::Exhausted {
            size,
            align,
            free: s.free,
            largest: s.largest_free,
        }
    }

    /// A snapshot of the pool's use, taken with every arena locked: exact whenever no other
    /// thread is inside an allocation or a free of this pool, and the same as with one arena
    /// (free blocks that meet at an arena boundary count as one block).
    pub fn stats(&self) -> P2pStats {
        let shift = self.inner.shift;
        let t = self.inner.arenas.totals();
        P2pStats {
            total: (t.total as usize) << shift,
            free: (t.free as usize) << shift,
            largest_free: (t.largest as usize) << shift,
            allocations: t.allocations as usize,
            quarantined: (t.quarantined as usize) << shift,
            free_blocks: t.free_blocks as usize,
            granularity: 1 << shift,
        }
    }

    /// Number of arenas (see [`P2pConfig::arenas`]).
    pub fn arenas(&self) -> usize {
        self.inner.arenas.count()
    }

    /// The backend (the mapping) the pool allocates from.
    pub fn backend(&self) -> &B {
        &self.inner.backend
    }

    /// A handle to the whole managed region (for diagnostics and initialisation; buffers are
    /// the way to use it).
    pub fn io(&self) -> IoMem<'_, [u8], B> {
        self.inner.region(self.inner.offset, self.inner.len)
    }

    /// Bus address of the start of the managed region.
    pub fn bus_addr(&self) -> u64 {
        self.inner.bus_addr
    }

    /// Bytes the pool manages.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    /// Always `false`: a pool manages at least one granule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The allocation granularity in bytes.
    pub fn granularity(&self) -> usize {
        1 << self.inner.shift
    }

    /// Whether `[bus_addr, bus_addr + len)` lies inside this pool's region.
    pub fn contains_bus(&self, bus_addr: u64, len: u64) -> bool {
        let start = self.inner.bus_addr;
        bus_addr >= start
            && bus_addr
                .checked_add(len)
                .is_some_and(|end| end <= start + self.inner.len as u64)
    }
}

impl<B: Backend> Inner<B> {
    /// A handle to the whole backend, with the pool's width policy and strategy.
    #[inline]
    fn handle(&self) -> IoMem<'_, [u8], B> {
        IoMem::new(&self.backend)
            .with_policy(self.policy)
            .with_strategy(self.strategy)
    }

    /// The `len` bytes at `offset` of the backend, exactly: [`Error::Overflow`] if `offset + len`
    /// overflows, [`Error::OutOfRange`] if the range is not inside the backend.
    #[inline]
    pub(super) fn try_region(&self, offset: usize, len: usize) -> Result<IoMem<'_, [u8], B>> {
        let end = offset
            .checked_add(len)
            .ok_or(Error::Overflow { offset, len })?;
        self.handle().subslice(offset..end)
    }

    /// The `len` bytes at `offset` of the backend, for a range the invariant puts inside it (the
    /// managed region, or a buffer's piece of it). Were the range outside the backend after all,
    /// an empty handle: never more than was asked for.
    #[inline]
    pub(super) fn region(&self, offset: usize, len: usize) -> IoMem<'_, [u8], B> {
        match self.try_region(offset, len) {
            Ok(io) => io,
            Err(_) => self.empty(),
        }
    }

    /// An empty handle at the start of the backend.
    #[cold]
    #[inline(never)]
    fn empty(&self) -> IoMem<'_, [u8], B> {
        let h = self.handle();
        // Zero bytes at the handle's own offset: in range for every handle.
        h.retype(h.offset(), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MockIo;

    #[cfg(feature = "std")]
    static_assertions::assert_impl_all!(P2pPool<MockIo>: Send, Sync, Clone, std::panic::UnwindSafe, std::panic::RefUnwindSafe);

    #[test]
    fn a_region_outside_the_mapping_is_never_wider() {
        let size = 16 * 4096;
        // SAFETY: a mock at a made-up bus address: no device is given its addresses.
        let pool = unsafe { P2pPool::new(MockIo::new(size), 0) }.unwrap();
        let inner = &*pool.inner;
        let io = inner.region(4096, 8192);
        assert_eq!((io.offset(), io.len()), (4096, 8192));
        // past the end, overflowing `offset + len`, and straddling the end: an error, and as a
        // handle an empty one
        for (offset, len) in [
            (size, 4096),
            (usize::MAX, 2),
            (2, usize::MAX),
            (size - 4096, 8192),
        ] {
            let err = inner.try_region(offset, len).unwrap_err();
            assert!(
                matches!(err, Error::Overflow { .. } | Error::OutOfRange { .. }),
                "{offset:#x} + {len:#x}: {err:?}"
            );
            let io = inner.region(offset, len);
            assert_eq!(io.len(), 0, "{offset:#x} + {len:#x}");
        }
        assert!(matches!(
            inner.try_region(usize::MAX, 2),
            Err(Error::Overflow { .. })
        ));
    }
}
