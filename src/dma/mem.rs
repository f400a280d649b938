//! [`DmaMem`]: the CPU's side of coherent DMA memory.

use core::fmt;
use core::ops::RangeBounds;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::backend::Backend;
use crate::error::Result;
use crate::iomem::IoMem;
use crate::order::Barrier;

/// A handle to coherent host memory that a device reads and writes by DMA, holding a `T` (a
/// completion-queue entry, a ring of them, a PRP list, `[u8]`).
///
/// Like [`IoMem`], it never becomes a Rust reference — the device writes the memory
/// concurrently, so a `&T` or `&[u8]` into it would be a data race — and every access is a
/// volatile access of a known width at a bounds-checked offset, typed through [`zerocopy`]. A
/// field of at most 8 bytes is read and written as one access (`READ_ONCE`/`WRITE_ONCE`).
/// Unlike `IoMem`, its accesses carry no MMIO barriers: the memory is cacheable and coherent,
/// and its ordering vocabulary is [`dma_rmb`](Self::dma_rmb), [`dma_wmb`](Self::dma_wmb) and
/// [`mb`](Self::mb). Ordering its stores before a doorbell is the doorbell's barrier
/// (`writel`'s, [`Doorbell`](crate::publish::Doorbell)).
///
/// Made by [`DmaRegion::mem`](super::DmaRegion::mem); a handle borrows its region, so it cannot
/// outlive the memory.
///
/// ```
/// use iomem::dma::MockDma;
///
/// let dma = MockDma::new(1 << 20);
/// let cq = dma.alloc(4096)?;
/// let entry = cq.mem().cast::<[u32; 4]>(16)?;
/// dma.device_write(cq.lease().addr(16 + 12)?, &0x0001_0000u32.to_le_bytes())?; // the device posts
/// let dw3 = entry.try_read::<u32>(12)?;
/// entry.dma_rmb(); // the phase tag before the rest of the entry
/// assert_eq!((dw3 >> 16) & 1, 1);
/// # unsafe { dma.quarantine().release() };
/// # Ok::<(), iomem::Error>(())
/// ```
pub struct DmaMem<'a, T: ?Sized, B: Backend> {
    io: IoMem<'a, T, B>,
}

impl<T: ?Sized, B: Backend> Clone for DmaMem<'_, T, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ?Sized, B: Backend> Copy for DmaMem<'_, T, B> {}

impl<T: ?Sized, B: Backend> fmt::Debug for DmaMem<'_, T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaMem")
            .field("type", &core::any::type_name::<T>())
            .field("offset", &format_args!("{:#x}", self.io.offset()))
            .field("len", &self.io.len())
            .finish()
    }
}

impl<'a, T: ?Sized, B: Backend> DmaMem<'a, T, B> {
    /// Wraps a handle over coherent host memory (relaxed strategy, memory-like policy).
    pub(crate) fn new(io: IoMem<'a, T, B>) -> Self {
        DmaMem { io }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.io.len()
    }

    /// Whether the handle covers zero bytes.
    pub fn is_empty(&self) -> bool {
        self.io.is_empty()
    }

    /// `dma_rmb()`: loads from this memory before the barrier complete before loads after it
    /// (a completion's phase tag before its other fields). Issued through the backend, so a
    /// mock records it.
    pub fn dma_rmb(&self) {
        self.io.barrier(Barrier::DmaRmb)
    }

    /// `dma_wmb()`: stores to this memory before the barrier are visible to the device before
    /// stores after it (a descriptor's payload before its "ready" flag). Not enough before an
    /// MMIO doorbell: that is the doorbell's own barrier.
    pub fn dma_wmb(&self) {
        self.io.barrier(Barrier::DmaWmb)
    }

    /// `mb()`: a full barrier.
    pub fn mb(&self) {
        self.io.barrier(Barrier::Mb)
    }
}

impl<'a, B: Backend> DmaMem<'a, [u8], B> {
    /// The sub-range `range` of this handle.
    pub fn subslice<R: RangeBounds<usize>>(&self, range: R) -> Result<DmaMem<'a, [u8], B>> {
        Ok(DmaMem::new(self.io.subslice(range)?))
    }

    /// A typed handle to the `T` at byte `offset` (in range and aligned to `align_of::<T>()`).
    pub fn cast<T>(&self, offset: usize) -> Result<DmaMem<'a, T, B>> {
        Ok(DmaMem::new(self.io.cast::<T>(offset)?))
    }

    /// Copies `src` into the memory (a command, data for the device). Lengths must match.
    pub fn copy_from_slice(&self, src: &[u8]) -> Result<()> {
        self.io.copy_from_slice(src)
    }

    /// Copies the memory into `dst` (data the device wrote). Lengths must match.
    pub fn copy_to_slice(&self, dst: &mut [u8]) -> Result<()> {
        self.io.copy_to_slice(dst)
    }

    /// Sets every byte to `byte`.
    pub fn fill(&self, byte: u8) -> Result<()> {
        self.io.fill(byte)
    }
}

impl<'a, T: ?Sized + FromBytes, B: Backend> DmaMem<'a, T, B> {
    /// Reads a `U` at byte `offset` (one access if `U` is at most 8 bytes and aligned).
    pub fn try_read<U: FromBytes>(&self, offset: usize) -> Result<U> {
        self.io.try_read::<U>(offset)
    }

    /// Writes `value` as a `U` at byte `offset` (one access if `U` is at most 8 bytes and
    /// aligned).
    pub fn try_write<U: IntoBytes + Immutable>(&self, offset: usize, value: &U) -> Result<()> {
        self.io.try_write(offset, value)
    }

    /// The same memory as untyped bytes.
    pub fn as_bytes(&self) -> DmaMem<'a, [u8], B> {
        DmaMem::new(self.io.as_bytes())
    }
}

impl<'a, T: FromBytes, B: Backend> DmaMem<'a, T, B> {
    /// Reads the whole `T`.
    pub fn read(&self) -> T {
        self.io.read()
    }

    /// Writes the whole `T`.
    pub fn write(&self, value: &T)
    where
        T: IntoBytes + Immutable,
    {
        self.io.write(value)
    }
}

impl<'a, T: FromBytes, B: Backend> DmaMem<'a, T, B> {
    /// Reads the `u32` at the constant byte offset `OFF` of the `T` (a completion's dword):
    /// one access, bounds and alignment checked at compile time as for
    /// [`IoMem::read32`] (`OFF + 4 <= size_of::<T>()`, `OFF % 4 == 0`, `align_of::<T>() >= 4`).
    #[inline]
    pub fn read32<const OFF: usize>(&self) -> u32 {
        // DMA memory carries no MMIO barriers: the relaxed access is this type's access.
        self.io.read32_relaxed::<OFF>()
    }

    /// Writes the `u64` at the constant byte offset `OFF` of the `T` (a dword pair of a
    /// submission queue entry): one access, checked at compile time as for [`IoMem::write64`].
    #[inline]
    pub fn write64<const OFF: usize>(&self, value: u64) {
        // As for `read32`: no MMIO barriers on DMA memory.
        self.io.write64_relaxed::<OFF>(value)
    }
}

impl<'a, T, const N: usize, B: Backend> DmaMem<'a, [T; N], B> {
    /// A handle to element `i` (one entry of a ring).
    pub fn at(&self, i: usize) -> Result<DmaMem<'a, T, B>> {
        Ok(DmaMem::new(self.io.at(i)?))
    }
}

impl<'a, T, B: Backend> DmaMem<'a, T, B> {
    /// Projects to a field; use [`project!`](crate::project), which works on `DmaMem` as on
    /// `IoMem`.
    #[doc(hidden)]
    pub fn __project<F, const OFF: usize>(&self, field: fn(&T) -> &F) -> DmaMem<'a, F, B> {
        DmaMem::new(self.io.__project::<F, OFF>(field))
    }
}
