//! Memory for PRP lists: [`HostPrpList`] (coherent host memory) and [`CmbPrpList`] (the CMB).

use core::ops::Range;

use crate::backend::{Backend, Caching};
use crate::dma::{DmaAddr, DmaProvider, DmaRegion, Lease};
use crate::nvme::cmb::{CmbInfo, CmbPool};
use crate::nvme::cmd::Held;
use crate::nvme::{Error, Result};
use crate::order::Barrier;
use crate::p2p::{P2pBuf, P2pLease};

pub(super) mod sealed {
    pub trait Sealed {}
}
#[cfg(feature = "vfio")]
pub(super) use sealed::Sealed;

/// Memory a PRP list is written into before the command is submitted. Sealed: the builder
/// trusts it to report the device address of exactly the bytes it writes.
///
/// Each list page (`page` bytes at a multiple of the page size) must start at a page-aligned
/// device address and be one contiguous run of device addresses for the bytes used.
pub trait PrpListMem: sealed::Sealed {
    /// Bytes of list memory.
    fn len(&self) -> usize;
    /// Whether there are none (never).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The device address of `range`, which must be one contiguous run.
    fn run(&self, range: Range<usize>) -> Result<DmaAddr>;
    /// Writes `bytes` (little-endian entries) at `offset`.
    fn write(&self, offset: usize, bytes: &[u8]) -> Result<()>;
    /// Makes the written entries visible to the device before the doorbell that follows.
    /// Host memory needs nothing here: the doorbell's barrier (`writel`'s) orders stores to
    /// RAM before it. Device memory (the CMB) gets a write barrier (`wmb`, which on x86 also
    /// drains write-combining buffers), because the queue's doorbell only flushes the memory
    /// of its own ring.
    fn publish(&self);
}

/// A PRP list in coherent host memory: a region and its lease, written through
/// [`DmaMem`](crate::dma::DmaMem).
#[derive(Debug)]
pub struct HostPrpList<B: Backend + Send + Sync + 'static> {
    region: DmaRegion<B>,
    lease: Lease<B>,
}

impl<B: Backend + Send + Sync + 'static> HostPrpList<B> {
    /// A list over `region` (lent to the device from now on).
    pub fn new(region: DmaRegion<B>) -> Self {
        let lease = region.lease();
        HostPrpList { region, lease }
    }

    /// `bytes` of list memory from `provider`, one run of device addresses.
    pub fn alloc<P>(provider: &P, bytes: usize) -> Result<Self>
    where
        P: DmaProvider<Backend = B>,
        Error: From<P::Error>,
    {
        Ok(HostPrpList::new(provider.alloc_contiguous(bytes)?))
    }

    /// The lease that keeps the memory.
    pub fn lease(&self) -> &Lease<B> {
        &self.lease
    }

    /// The lease alone (the region handle is dropped; the lease keeps the memory).
    pub fn into_lease(self) -> Lease<B> {
        self.lease
    }
}

impl<B: Backend + Send + Sync + 'static> sealed::Sealed for HostPrpList<B> {}

impl<B: Backend + Send + Sync + 'static> PrpListMem for HostPrpList<B> {
    fn len(&self) -> usize {
        self.region.len()
    }
    fn run(&self, range: Range<usize>) -> Result<DmaAddr> {
        Ok(self.lease.range(range)?)
    }
    fn write(&self, offset: usize, bytes: &[u8]) -> Result<()> {
        let end = span_end(offset, bytes.len())?;
        Ok(self
            .region
            .mem()
            .subslice(offset..end)?
            .copy_from_slice(bytes)?)
    }
    fn publish(&self) {}
}

impl<B: Backend + Send + Sync + 'static> From<HostPrpList<B>> for Held<B> {
    fn from(l: HostPrpList<B>) -> Self {
        Held::Lease(l.lease)
    }
}

/// A PRP list in the Controller Memory Buffer, written through the buffer's
/// [`IoMem`](crate::IoMem). Allowed only where CMBSZ.LISTS is set.
#[derive(Debug)]
pub struct CmbPrpList<B: Backend> {
    lease: P2pLease<B>,
}

impl<B: Backend> CmbPrpList<B> {
    /// A list in `buf`, a buffer of the CMB `info` describes; [`Error::Unsupported`] if
    /// CMBSZ.LISTS is clear.
    pub fn new(buf: P2pBuf<B>, info: &CmbInfo) -> Result<Self> {
        if !info.lists {
            return Err(Error::Unsupported {
                what: "PRP and SGL lists in the controller memory buffer (CMBSZ.LISTS)",
            });
        }
        Ok(CmbPrpList { lease: buf.lend() })
    }

    /// `bytes` of list memory from `pool` (page aligned).
    pub fn alloc(pool: &CmbPool<B>, bytes: usize) -> Result<Self> {
        CmbPrpList::new(pool.alloc_prp_list(bytes.div_ceil(8).max(1))?, pool.info())
    }

    /// The buffer back, to be freed or reused. (Dropped instead, the list is quarantined in its pool: a
    /// controller may still read it.)
    ///
    /// # Safety
    /// No controller will read the list any more: every command whose data pointer used it
    /// completed, or the controller was reset.
    pub unsafe fn complete(self) -> P2pBuf<B> {
        // SAFETY: the caller's guarantee.
        unsafe { self.lease.complete() }
    }
}

impl<B: Backend> sealed::Sealed for CmbPrpList<B> {}

impl<B: Backend> PrpListMem for CmbPrpList<B> {
    fn len(&self) -> usize {
        self.lease.len()
    }
    fn run(&self, range: Range<usize>) -> Result<DmaAddr> {
        // The buffer is one run of bus addresses, owned by this list and lent (never freed
        // under the device).
        Ok(super::p2p_segment(self.lease.dma_addr(), self.len(), range)?.0)
    }
    fn write(&self, offset: usize, bytes: &[u8]) -> Result<()> {
        let end = span_end(offset, bytes.len())?;
        Ok(self
            .lease
            .io()
            .subslice(offset..end)?
            .copy_from_slice(bytes)?)
    }
    fn publish(&self) {
        let io = self.lease.io();
        if io.caching() != Caching::Cacheable {
            io.barrier(Barrier::Wmb);
        }
    }
}

impl<B: Backend + Send + Sync + 'static, H: Backend + Send + Sync + 'static> From<CmbPrpList<B>>
    for Held<H>
{
    fn from(l: CmbPrpList<B>) -> Self {
        Held::Other(alloc::boxed::Box::new(l.lease))
    }
}

/// The end of `len` bytes from `offset`, checked for overflow.
fn span_end(offset: usize, len: usize) -> Result<usize> {
    Ok(offset
        .checked_add(len)
        .ok_or(crate::Error::Overflow { offset, len })?)
}

/// No list memory: for transfers of at most two pages. [`no_list`] is the list source that
/// gives none.
#[derive(Debug)]
pub enum NoList {}

impl sealed::Sealed for NoList {}

impl PrpListMem for NoList {
    fn len(&self) -> usize {
        match *self {}
    }
    fn run(&self, _: Range<usize>) -> Result<DmaAddr> {
        match *self {}
    }
    fn write(&self, _: usize, _: &[u8]) -> Result<()> {
        match *self {}
    }
    fn publish(&self) {
        match *self {}
    }
}

impl<B: Backend + Send + Sync + 'static> From<NoList> for Held<B> {
    fn from(l: NoList) -> Self {
        match l {}
    }
}

/// The list source for transfers that need no PRP list: asked for one, it fails with
/// [`Error::Unsupported`].
pub fn no_list(_bytes: usize) -> Result<NoList> {
    Err(list_needed())
}

/// The error for a transfer that needs a PRP list and was given no memory for one.
pub(crate) const fn list_needed() -> Error {
    Error::Unsupported {
        what: "a transfer of more than two memory pages without PRP list memory (give the \
               builder a list source)",
    }
}
