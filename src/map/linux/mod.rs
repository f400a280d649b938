//! Linux: PCI devices through sysfs, their BARs mapped into user space, and locked host memory
//! with known physical addresses for DMA.
//!
//! This is what a user-space driver needs on Linux without VFIO:
//!
//! - [`PciDevice`] opens `/sys/bus/pci/devices/<address>` and reads its identity (`vendor`,
//!   `device`, `class`), its bound kernel driver (and [unbinds](PciDevice::unbind) it), its BARs
//!   (the `resource` file: CPU address range and flags) and the bus addresses the device decodes
//!   (the BAR registers in config space): a driver builds whatever BAR table it needs from
//!   [`bars`](PciDevice::bars). It reads and writes the PCI COMMAND register through the
//!   `config` file ([memory space and bus master enable](PciDevice::enable)).
//! - [`BarMapping`] is a BAR mapped with `mmap` of `resourceN` (uncached) or `resourceN_wc`
//!   (write-combining). It owns the mapping, unmaps it on drop, and hands out an
//!   [`IoMem<[u8]>`](crate::IoMem) whose [`Caching`](crate::Caching) is the mapping's.
//! - [`DmaBuffer`] is page-aligned, locked anonymous memory (cacheable RAM, not device memory)
//!   whose physical addresses come from `/proc/self/pagemap`: without an IOMMU they are the bus
//!   addresses a device DMAs to.
//!
//! - [`P2pDistance::between`] decides, from the sysfs topology as Linux's p2pdma code does,
//!   whether two devices can DMA to each other's BARs (same device, a common switch, or a host
//!   bridge known to route p2p; ACS redirect sends traffic up to the root), and
//!   [`PeerAccess`] is the permission a caller holds to hand a p2p buffer's address to a peer:
//!   from an acceptable distance, or an explicit, named override.
//!
//! Everything that can fail returns an [`Error`] whose message says what to do about it (run
//! as root, unbind the kernel driver, pick a memory BAR…). What the kernel writes in sysfs is
//! parsed strictly, as the kernel prints it: a value with a sign, without its `0x`, wider than
//! its field or with a range that has no size is an [`Error::Parse`] naming the file, the line
//! and what was wrong ([`Malformed`]), never a guess. [`PciDevice::find_by_class`] returns a
//! [`Scan`]: a device it cannot read is reported beside the devices found, not a failure of
//! the whole scan.
//!
//! The files, one idea each: `address` (PCI addresses), `number` (sysfs numbers), `resource`
//! (the `resource` file and [`Bar`]), `sysfs` ([`PciDevice`], [`Scan`]), `config` (config
//! space), `bar` ([`BarMapping`]), `dma` ([`DmaBuffer`]), `pagemap` (physical addresses),
//! `error`, `distance` ([`P2pDistance`]), `acs` (the ACS capability), `cpu` ([`CpuInfo`]),
//! `peer` ([`PeerAccess`]).
//!
//! ```no_run
//! use iomem::map::linux::PciDevice;
//! use iomem::Caching;
//!
//! let dev = PciDevice::open("0000:00:03.0")?;
//! if dev.driver()?.is_some() {
//!     dev.unbind()?; // a kernel driver owns the BARs: mmap would fail with EINVAL
//! }
//! dev.enable(true, false)?; // memory space on, bus master off
//! let bar0 = dev.map_bar(0, Caching::Uncached)?;
//! let regs = bar0.io();
//! println!("register 0x08 = {:#x}", regs.try_read32(0x08)?);
//! # Ok::<(), iomem::map::linux::Error>(())
//! ```
//!
//! # Safety of the mappings
//! Mapping a BAR with [`PciDevice::map_bar`] is safe in Rust's sense: the mapping is valid memory
//! for as long as the [`BarMapping`] lives, the crate only ever accesses it with volatile
//! accesses, and its [`Caching`](crate::Caching) is the one the kernel set up, because the file
//! mapped (`resourceN` or `resourceN_wc`) decides it; a file that is not on sysfs is refused
//! ([`Error::NotSysfs`]: an ordinary file may shrink under its mapping).
//! [`PciDevice::map_bar_unchecked`] maps a test's tree of ordinary files, and
//! [`BarMapping::map_path`] any file; both are `unsafe`: only their caller knows that the file
//! stays long enough (and, for `map_path`, how it maps). What a device *does* with the
//! addresses a driver writes into it (DMA) is outside what types can check; that is why the
//! functions handing out physical addresses say so.

mod acs;
mod address;
mod bar;
mod config;
mod cpu;
mod distance;
#[cfg(test)]
mod distance_tests;
mod dma;
mod error;
mod number;
mod pagemap;
mod peer;
mod resource;
mod sysfs;
#[cfg(test)]
pub(crate) mod testutil;

pub use acs::{PCI_ACS_CR, PCI_ACS_CTRL, PCI_ACS_EC, PCI_ACS_RR, PCI_EXT_CAP_ID_ACS};
pub use bar::BarMapping;
#[cfg(feature = "vfio")]
pub(crate) use config::command_with;
pub use config::{PCI_COMMAND, PCI_COMMAND_IO, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY};
pub use cpu::{CpuInfo, PROC_CPUINFO};
pub use distance::{P2pBlocker, P2pDistance};
pub use dma::{DmaBuffer, PagemapDma, HUGE_PAGE};
pub use error::{Error, Malformed, Result};
pub use peer::{PeerAccess, PeerBasis};
pub use resource::{parse_resource, Bar, BarKind};
pub use sysfs::{PciDevice, Scan, SYSFS_PCI_DEVICES};
