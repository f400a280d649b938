//! The device's side of memory: coherent host RAM that a device reads and writes by DMA.
//!
//! [`IoMem`](crate::IoMem) is the CPU's view of *device* memory. A driver's other memory is host
//! RAM the *device* reaches — queues, PRP lists, data buffers — and it has rules of its own:
//!
//! - [`DmaMem`] is the CPU's access to it: volatile, typed, bounds-checked, never a reference
//!   (the device writes it concurrently), ordered with `dma_rmb`/`dma_wmb`, not MMIO barriers
//!   (Rust-for-Linux `kernel::dma::CoherentAllocation`; Linux `dma_alloc_coherent` with
//!   `READ_ONCE` and `dma_rmb()` in the NVMe driver's completion path).
//! - [`DmaAddr`] is the address the device uses (a bus address, or an IOVA behind an IOMMU),
//!   produced only by the memory that owns the bytes.
//! - [`DmaRegion`] owns an allocation; a [`Lease`] lends it to the device, and memory lent is
//!   never freed or reused under the device ([`region`] states the rule).
//! - Providers make regions: [`MockDma`] for `cargo test` (fake addresses, configurable
//!   scattering, a device side that reaches only allocated memory), [`RamDma`] for benchmarks
//!   and in-process device simulations (heap memory, made-up addresses), in
//!   [`map::linux`](crate::map) the pagemap and huge-page providers, and in `map::vfio` the
//!   IOMMU provider (host memory at IOVAs, one run of IOVAs per region).
//!
//! ```
//! use iomem::dma::MockDma;
//!
//! let dma = MockDma::new(1 << 20).with_scatter(4); // a gap in the addresses every 4 pages
//! let buf = dma.alloc(32 * 1024)?;
//! assert!(!buf.contiguous(0..buf.len())?);
//! let lease = buf.lease();
//! let segs = lease.segments(0..buf.len())?; // what a PRP list is built from
//! assert_eq!(segs.len(), 2);
//! drop(buf); // the lease keeps the memory
//! assert_eq!(dma.allocated(), 32 * 1024);
//! // SAFETY: no device was given the addresses.
//! unsafe { lease.complete() };
//! assert_eq!(dma.allocated(), 0);
//! # Ok::<(), iomem::Error>(())
//! ```

mod addr;
mod mem;
#[cfg(feature = "std")]
mod mock;
#[cfg(feature = "std")]
mod ram;
pub mod region;

pub use addr::DmaAddr;
pub use mem::DmaMem;
#[cfg(feature = "std")]
pub use mock::{MockDma, MOCK_PAGE};
#[cfg(feature = "std")]
pub use ram::RamDma;
pub use region::{DmaRegion, Lease, Quarantine};

/// Where DMA memory comes from: the mock ([`MockDma`]), locked pages with pagemap addresses
/// and huge pages (`map::linux::PagemapDma`), and an IOMMU domain (`map::vfio::VfioDma`).
///
/// Every provider has one [`Quarantine`] for the regions whose leases were dropped
/// uncompleted; release it only once the devices it served are reset — or, behind an IOMMU,
/// once the memory is unmapped from it (`VfioDma::reclaim` does that safely: it frees memory
/// only after unmapping it, and keeps the IOVAs from reuse instead).
pub trait DmaProvider {
    /// The backend of the memory it hands out (host RAM, `Caching::Cacheable`).
    type Backend: crate::Backend + Send + Sync + 'static;
    /// Its error type.
    type Error: From<crate::Error>;

    /// `len` bytes of zeroed coherent memory, rounded up to the provider's granule.
    fn alloc(&self, len: usize) -> Result<DmaRegion<Self::Backend>, Self::Error>;

    /// The same, at one run of device addresses (a queue created "physically contiguous"), or
    /// [`Error::NotContiguous`](crate::Error::NotContiguous) / `Exhausted` if the provider
    /// cannot find one.
    fn alloc_contiguous(&self, len: usize) -> Result<DmaRegion<Self::Backend>, Self::Error>;

    /// The provider's quarantine.
    fn quarantine(&self) -> &Quarantine;
}

/// A shared provider is a provider (a controller and its queue pairs on other threads hold one).
impl<P: DmaProvider + ?Sized> DmaProvider for alloc::sync::Arc<P> {
    type Backend = P::Backend;
    type Error = P::Error;
    fn alloc(&self, len: usize) -> Result<DmaRegion<Self::Backend>, Self::Error> {
        (**self).alloc(len)
    }
    fn alloc_contiguous(&self, len: usize) -> Result<DmaRegion<Self::Backend>, Self::Error> {
        (**self).alloc_contiguous(len)
    }
    fn quarantine(&self) -> &Quarantine {
        (**self).quarantine()
    }
}

/// A borrowed provider is a provider.
impl<P: DmaProvider + ?Sized> DmaProvider for &P {
    type Backend = P::Backend;
    type Error = P::Error;
    fn alloc(&self, len: usize) -> Result<DmaRegion<Self::Backend>, Self::Error> {
        (**self).alloc(len)
    }
    fn alloc_contiguous(&self, len: usize) -> Result<DmaRegion<Self::Backend>, Self::Error> {
        (**self).alloc_contiguous(len)
    }
    fn quarantine(&self) -> &Quarantine {
        (**self).quarantine()
    }
}
