//! [`RegionInfo`]: one region of a VFIO device (a BAR, config space), as
//! `VFIO_DEVICE_GET_REGION_INFO` describes it.

use vfio_bindings::bindings::vfio::{
    vfio_region_info, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};

/// The region index of BAR `n` (`VFIO_PCI_BAR0_REGION_INDEX + n`).
pub const fn bar_region(n: u32) -> u32 {
    VFIO_PCI_BAR0_REGION_INDEX + n
}

/// The region index of PCI configuration space.
pub const CONFIG_REGION: u32 = VFIO_PCI_CONFIG_REGION_INDEX;

/// A region of a VFIO device: where it lies in the device file and what may be done with it.
///
/// A region is reached by `pread`/`pwrite` of the device file at [`offset`](Self::offset) +
/// the offset inside the region, and, if [`mappable`](Self::mappable), by `mmap` of the device
/// file at that offset. vfio-pci maps BARs **uncached** (`pgprot_noncached`), prefetchable or
/// not: there is no write-combining mapping of a BAR through VFIO, so a copy into an NVMe CMB
/// mapped this way moves at uncached speed (one bus write per store, 8 bytes at a time at
/// best), where sysfs `resourceN_wc` would merge stores into bursts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region index.
    pub index: u32,
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Size in bytes (0: the region does not exist, e.g. an absent BAR).
    pub size: u64,
    /// Offset of the region in the device file.
    pub offset: u64,
}

impl RegionInfo {
    /// From what the kernel returned.
    pub fn from_kernel(info: &vfio_region_info) -> Self {
        RegionInfo {
            index: info.index,
            flags: info.flags,
            size: info.size,
            offset: info.offset,
        }
    }

    /// Whether the region may be read.
    pub fn readable(&self) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_READ != 0
    }

    /// Whether the region may be written.
    pub fn writable(&self) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_WRITE != 0
    }

    /// Whether the region may be mapped with `mmap` (uncached, see the type's docs).
    pub fn mappable(&self) -> bool {
        self.flags & VFIO_REGION_INFO_FLAG_MMAP != 0
    }

    /// Whether the region exists (has a size).
    pub fn exists(&self) -> bool {
        self.size != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_info_is_read_from_the_kernels_structure() {
        // What the guest's vfio-pci reported for an NVMe controller's CMB BAR: 16 MiB, flags
        // 0x7 (read, write, mmap), at the BAR's fixed offset (index << 40) in the device file.
        let raw = vfio_region_info {
            argsz: 32,
            flags: 0x7,
            index: bar_region(2),
            cap_offset: 0,
            size: 16 << 20,
            offset: 2 << 40,
        };
        let r = RegionInfo::from_kernel(&raw);
        assert!(r.readable() && r.writable() && r.mappable() && r.exists());
        assert_eq!((r.index, r.size, r.offset), (2, 16 << 20, 2 << 40));
        let cfg = RegionInfo::from_kernel(&vfio_region_info {
            flags: 0x3,
            index: CONFIG_REGION,
            size: 4096,
            ..Default::default()
        });
        assert!(cfg.readable() && !cfg.mappable());
        assert!(!RegionInfo::from_kernel(&vfio_region_info::default()).exists());
    }
}
