//! [`Iommu`]: what a DMA provider needs of an IOMMU domain, whatever the kernel interface
//! behind it.
//!
//! The type1 container ([`Container`](super::Container), `/dev/vfio/vfio`) is the one
//! implementation today. iommufd (`/dev/iommu`, an IOAS with `IOMMU_IOAS_MAP`/`UNMAP`, devices
//! opened through `/dev/vfio/devices/vfioN` and bound to it) is its successor; the guest CI
//! kernel (Debian 6.1) has no `CONFIG_IOMMUFD`, so it is not written yet. Such a backend
//! implements this trait, and [`VfioDma`](super::VfioDma) and the peer mappings work over it
//! unchanged: they only map and unmap memory at IOVAs they choose from the ranges the domain
//! accepts. How devices join the domain is the backend's own business.

use core::fmt;
use core::ops::Range;
use std::vec::Vec;

use super::Result;

/// What the device may do with a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The device reads the memory (a submission queue, a buffer it writes to disk).
    Read,
    /// The device reads and writes it.
    ReadAndWrite,
}

/// An IOMMU domain in which host memory (or a device BAR) is mapped at chosen IOVAs, shared by
/// every device attached to it.
pub trait Iommu: fmt::Debug + Send + Sync {
    /// The IOVA ranges (half-open) the domain accepts mappings in. The platform's reserved
    /// windows (on x86 the MSI window at `0xfee00000`) are left out.
    fn iova_ranges(&self) -> Vec<Range<u64>>;

    /// The smallest page the IOMMU maps: mappings are multiples of it, aligned to it.
    fn page_size(&self) -> u64;

    /// Maps `len` bytes of this process's memory at `vaddr` at `iova`, pinning it (the kernel
    /// keeps the pages resident and in place until they are unmapped).
    ///
    /// # Safety
    /// From here until [`unmap`](Self::unmap) every device of the domain may access
    /// `vaddr..vaddr + len` as `access` allows, at any time: the memory must be mapped in this
    /// process, and no Rust reference to it may exist while a device may write it (a device
    /// write is a data race with a reference). Memory that the process may free or reuse
    /// before unmapping must not be given here.
    unsafe fn map(&self, vaddr: usize, len: u64, iova: u64, access: Access) -> Result<()>;

    /// Unmaps `iova..iova + len` (exactly one earlier mapping, or several whole ones): once it
    /// returns, no device of the domain reaches that memory through these IOVAs (its DMA to them
    /// is blocked and, with type1, not reported to user space).
    fn unmap(&self, iova: u64, len: u64) -> Result<()>;
}
