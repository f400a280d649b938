//! VFIO: a PCI device driven from user space behind an IOMMU — its group and a type1
//! container, its regions (BARs, config space) through the device file, and host memory
//! mapped for its DMA at IOVAs.
//!
//! Mirrors what QEMU, SPDK and libvfn do with `linux/vfio.h` (structures from rust-vmm's
//! `vfio-bindings`, requests through rustix):
//!
//! 1. [`Container::open`]: `/dev/vfio/vfio`, API version, `VFIO_TYPE1v2_IOMMU` offered.
//! 2. [`VfioDevice::open`]: the device's IOMMU group from sysfs (`iommu_group`), checked bound
//!    to `vfio-pci` ([`bind_vfio_pci`] binds it: `driver_override` + `drivers_probe`),
//!    `/dev/vfio/<group>` opened and checked viable, attached to the container
//!    (`VFIO_GROUP_SET_CONTAINER`; the first group sets the IOMMU type), the device's
//!    descriptor (`VFIO_GROUP_GET_DEVICE_FD`) and its regions (`VFIO_DEVICE_GET_REGION_INFO`).
//!    Several devices, of one group or of several, share one container, so one IOVA space:
//!    two controllers reach the same buffers at the same IOVAs.
//! 3. [`VfioDevice::enable`] turns memory decoding and bus mastering on through the config
//!    region; [`VfioDevice::reset`] is `VFIO_DEVICE_RESET`; [`VfioDevice::map_bar`] maps a
//!    mappable BAR as a [`BarMapping`](crate::map::linux::BarMapping), the same backend the
//!    sysfs path gives, so `nvme::ctrl::Controller` runs over it unchanged.
//! 4. [`VfioDma`] is a [`DmaProvider`](crate::dma::DmaProvider): anonymous memory mapped with
//!    `VFIO_IOMMU_MAP_DMA` at IOVAs from an [`IovaAllocator`]; every region is one run of
//!    IOVAs, so big queues need no huge pages, and its quarantine can free memory once
//!    unmapped (see [`VfioDma`]). [`VfioDma::map_peer_bar`] maps a peer device's BAR into the
//!    domain for peer-to-peer DMA.
//!
//! # BARs are uncached through VFIO
//! vfio-pci maps every BAR with `pgprot_noncached`: a prefetchable BAR such as an NVMe CMB gets
//! no write-combining mapping through VFIO (there is no `resourceN_wc` equivalent). A
//! [`BarMapping`](crate::map::linux::BarMapping) from [`VfioDevice::map_bar`] says
//! [`Caching::Uncached`](crate::Caching::Uncached), and a copy into a CMB through it moves at
//! uncached speed: one bus write per store, at most 8 bytes each. Queues and PRP lists in such
//! a CMB work; bulk data is faster in host memory at IOVAs.
//!
//! # Errors
//! [`Error`] says what to do: no IOMMU group (turn the IOMMU on: `intel_iommu=on`), not bound
//! to `vfio-pci` (how to bind it), the group not viable (which other devices hold it), no
//! VFIO modules, no permission, the memory-lock limit.
//!
//! # Not here yet
//! Interrupts (`VFIO_DEVICE_SET_IRQS`: the drivers poll), sparse-mmap capabilities of a region
//! (a BAR whose MSI-X table page may not be mapped is mapped whole, which 6.1 allows), hot
//! reset of a group, and no-IOMMU mode.
//!
//! # Another IOMMU interface
//! [`Iommu`] is what [`VfioDma`] and [`PeerBar`] need of a domain; [`Container`] implements it
//! with type1. An iommufd backend (`/dev/iommu`, device cdevs) would implement it too; the CI
//! guest's kernel has none, so there is none yet.
//!
//! ```no_run
//! use iomem::dma::DmaProvider;
//! use iomem::map::linux::PciDevice;
//! use iomem::map::vfio::{Container, VfioDevice, VfioDma};
//!
//! let pci = PciDevice::open("0000:00:01.0")?;
//! let container = Container::open()?;
//! let dev = VfioDevice::open(&pci, &container)?;
//! dev.enable(true, true)?;
//! let bar0 = dev.map_bar(0)?; // uncached, as vfio-pci maps it
//! let dma = VfioDma::new(&container)?;
//! let queue = dma.alloc_contiguous(1024 * 64)?; // 64 KiB, one run of IOVAs, no huge pages
//! println!("CAP {:#x}, queue at IOVA {}", bar0.io().try_read64(0)?, queue.lease().addr(0)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bind;
mod container;
mod device;
mod dma;
mod error;
mod group;
mod ioctl;
mod iommu;
mod iova;
mod region;

pub use bind::{bind_vfio_pci, check_vfio_pci, iommu_group, VFIO_PCI};
pub use container::{Container, Type1Info, VFIO_CONTAINER};
pub use device::VfioDevice;
pub use dma::{PeerBar, VfioDma, IOVA_FLOOR};
pub use error::{Error, Result};
pub use group::{Group, VFIO_DIR};
pub use iommu::{Access, Iommu};
pub use iova::IovaAllocator;
pub use region::{bar_region, RegionInfo, CONFIG_REGION};
