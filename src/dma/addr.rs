//! [`DmaAddr`]: the address a device uses to reach host memory.

use core::fmt;

/// An address in a device's view of memory: a bus address (no IOMMU) or an IOVA (behind an
/// IOMMU). It is what a queue-base register, a PRP entry or a data pointer holds.
///
/// A `DmaAddr` comes from the memory that owns the bytes — a [`Lease`](super::Lease) on a
/// [`DmaRegion`](super::DmaRegion), a buffer of a pool over a BAR whose bus address the platform
/// reported (`BarTable::from_sysfs` of [`BarTable`](crate::nvme::cmb::BarTable)) or an `unsafe`
/// caller vouched for ([`P2pPool::with_config`](crate::p2p::P2pPool::with_config)) — so one
/// that points at memory the device may not use cannot be built through the safe API. The test
/// doubles ([`MockDma`](super::MockDma), the model controller's BARs) make up addresses that
/// only their own mock devices resolve; they are not for a real device. Its arithmetic stays
/// with that owner ([`Lease::addr`](super::Lease::addr) checks the offset against the region and
/// its contiguity); this type only answers questions about the address itself.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DmaAddr(u64);

impl DmaAddr {
    /// An address from its raw value.
    ///
    /// # Safety
    /// A device given this address may read and write the memory behind it: the caller vouches
    /// that the bytes are memory the device may access (mapped in its IOMMU domain, or host RAM
    /// it may reach without one), that they stay allocated for as long as the device may use
    /// them, and that no Rust reference to them exists meanwhile.
    ///
    /// For device memory — a BAR, which the process reaches only through [`IoMem`]'s volatile
    /// accesses, so no Rust reference into it ever exists — "allocated" is the owner's
    /// bookkeeping: a device that uses such an address after its owner freed the bytes
    /// overwrites or reads what a later owner keeps there, a bug in the data but not undefined
    /// behaviour. Host memory freed under a device is undefined behaviour.
    ///
    /// [`IoMem`]: crate::IoMem
    ///
    /// Behind an IOMMU the address must also be *mapped* (an IOVA of the device's domain), and
    /// nothing will tell you if it is not: in the CI guest (QEMU, `intel-iommu`, VFIO) a Read
    /// into an unmapped IOVA was blocked by the IOMMU — a DMAR fault in the kernel log, "PTE
    /// Write access is not set" — while QEMU's controller still completed the command with
    /// status 0. VFIO's type1 IOMMU reports no faults to user space, so the driver sees a
    /// successful read whose data never arrived. Addresses from a
    /// [`Lease`](super::Lease) on a region of an IOMMU provider
    /// (`map::vfio::VfioDma`) are mapped for as long as the lease lives; a raw address has no
    /// such guarantee, which is why this is `unsafe`.
    pub const unsafe fn from_raw(addr: u64) -> Self {
        DmaAddr(addr)
    }

    /// The raw value, for a register or a descriptor.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The offset of the address within a page of `page` bytes (a power of two).
    pub const fn page_offset(self, page: u64) -> u64 {
        self.0 & (page.wrapping_sub(1))
    }

    /// Whether the address is a multiple of `align` (a power of two).
    pub const fn is_aligned(self, align: u64) -> bool {
        self.page_offset(align) == 0
    }
}

impl fmt::Debug for DmaAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DmaAddr({:#x})", self.0)
    }
}

impl fmt::Display for DmaAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for DmaAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}
