//! [`VfioDevice`]: a PCI device opened through VFIO: its regions, config space, reset, and its
//! BARs mapped into this process.

use std::path::PathBuf;
use std::string::{String, ToString};
use std::sync::Arc;
use std::vec::Vec;

use rustix::fd::{AsFd, OwnedFd};
use vfio_bindings::bindings::vfio::{
    vfio_device_info, vfio_region_info, VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET,
};

use super::bind::check_vfio_pci;
use super::ioctl::{self, argsz};
use super::region::{bar_region, CONFIG_REGION};
use super::{Container, Error, Group, RegionInfo, Result};
use crate::backend::Caching;
use crate::map::linux::{command_with, BarMapping, PciDevice, PCI_COMMAND};

/// A PCI device opened through VFIO: its group attached to a [`Container`] (whose IOMMU domain
/// translates its DMA), its regions described by `VFIO_DEVICE_GET_REGION_INFO`.
///
/// Its BARs map **uncached** ([`map_bar`](Self::map_bar)): vfio-pci maps every BAR with
/// `pgprot_noncached`, so an NVMe CMB reached this way has no write-combining, and copies into
/// it run at uncached speed. Map the CMB through sysfs `resourceN_wc` where speed matters and
/// VFIO is not needed for it.
#[derive(Debug)]
pub struct VfioDevice {
    fd: OwnedFd,
    group: Arc<Group>,
    addr: String,
    flags: u32,
    regions: Vec<RegionInfo>,
    num_irqs: u32,
}

impl VfioDevice {
    /// Opens `pci` through VFIO in `container`: checks that it has an IOMMU group and is bound
    /// to `vfio-pci` (the typed errors say how to get there), opens its group (or reuses the one
    /// already attached for another device of it), attaches the group, sets the IOMMU type
    /// with the first group, and reads the device's regions.
    pub fn open(pci: &PciDevice, container: &Arc<Container>) -> Result<VfioDevice> {
        let (number, dir) = check_vfio_pci(pci)?;
        let group = container.group(number, &dir)?;
        let fd = group.device_fd(pci.address())?;
        let mut info = vfio_device_info {
            argsz: argsz::<vfio_device_info>(),
            ..Default::default()
        };
        // SAFETY: GET_INFO fills a `vfio_device_info` of `argsz` bytes, `info`, alive across
        // the call.
        unsafe {
            ioctl::call(
                &fd,
                ioctl::DEVICE_GET_INFO,
                (&mut info as *mut vfio_device_info).cast(),
            )
        }
        .map_err(|errno| Error::Ioctl {
            op: "VFIO_DEVICE_GET_INFO",
            errno,
        })?;
        let mut regions = Vec::new();
        for index in 0..info.num_regions {
            let mut r = vfio_region_info {
                argsz: argsz::<vfio_region_info>(),
                index,
                ..Default::default()
            };
            // SAFETY: GET_REGION_INFO fills a `vfio_region_info` of `argsz` bytes (its
            // capabilities, if any, are not asked for: `argsz` leaves them no room), `r`, alive
            // across the call.
            let got = unsafe {
                ioctl::call(
                    &fd,
                    ioctl::DEVICE_GET_REGION_INFO,
                    (&mut r as *mut vfio_region_info).cast(),
                )
            };
            match got {
                Ok(_) => regions.push(RegionInfo::from_kernel(&r)),
                // A region index the device does not implement (VGA on a non-VGA device).
                Err(rustix::io::Errno::INVAL) => regions.push(RegionInfo {
                    index,
                    flags: 0,
                    size: 0,
                    offset: 0,
                }),
                Err(errno) => {
                    return Err(Error::Ioctl {
                        op: "VFIO_DEVICE_GET_REGION_INFO",
                        errno,
                    })
                }
            }
        }
        Ok(VfioDevice {
            fd,
            group,
            addr: pci.address().to_string(),
            flags: info.flags,
            regions,
            num_irqs: info.num_irqs,
        })
    }

    /// The device's PCI address.
    pub fn address(&self) -> &str {
        &self.addr
    }

    /// Its group.
    pub fn group(&self) -> &Arc<Group> {
        &self.group
    }

    /// Whether vfio-pci drives it as a PCI device (`VFIO_DEVICE_FLAGS_PCI`).
    pub fn is_pci(&self) -> bool {
        self.flags & VFIO_DEVICE_FLAGS_PCI != 0
    }

    /// Whether [`reset`](Self::reset) is supported (`VFIO_DEVICE_FLAGS_RESET`).
    pub fn can_reset(&self) -> bool {
        self.flags & VFIO_DEVICE_FLAGS_RESET != 0
    }

    /// The number of interrupt types the device reports (INTx, MSI, MSI-X…).
    pub fn num_irqs(&self) -> u32 {
        self.num_irqs
    }

    /// Every region, by index (absent ones have size 0).
    pub fn regions(&self) -> &[RegionInfo] {
        &self.regions
    }

    /// Region `index`, if it exists.
    pub fn region(&self, index: u32) -> Result<RegionInfo> {
        self.regions
            .get(index as usize)
            .copied()
            .filter(RegionInfo::exists)
            .ok_or(Error::NoRegion {
                addr: self.addr.clone(),
                index,
            })
    }

    /// Reads `buf.len()` bytes of config space at `offset` ([`crate::Error::OutOfRange`] if
    /// they are not all inside it).
    pub fn read_config(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let at = config_at(&self.region(CONFIG_REGION)?, offset, buf.len())?;
        let n = rustix::io::pread(&self.fd, &mut *buf, at).map_err(|errno| Error::Ioctl {
            op: "pread of config space",
            errno,
        })?;
        short(n, buf.len(), "config space read short")
    }

    /// Writes `buf` to config space at `offset` (vfio-pci filters what it lets through: BAR
    /// sizing and the COMMAND bits are virtualised or passed as the kernel decides;
    /// [`crate::Error::OutOfRange`] if the bytes are not all inside config space).
    pub fn write_config(&self, offset: u64, buf: &[u8]) -> Result<()> {
        let at = config_at(&self.region(CONFIG_REGION)?, offset, buf.len())?;
        let n = rustix::io::pwrite(&self.fd, buf, at).map_err(|errno| Error::Ioctl {
            op: "pwrite of config space",
            errno,
        })?;
        short(n, buf.len(), "config space write short")
    }

    /// The 32-bit config register at `offset`.
    pub fn config_u32(&self, offset: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_config(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// The PCI COMMAND register.
    pub fn command(&self) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read_config(PCI_COMMAND, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Sets or clears memory-space decoding and bus mastering in COMMAND; returns the new value.
    /// A device opened through VFIO may come with both off (vfio-pci disables it on open and
    /// release): its BARs read 0 until memory is on, and it cannot DMA until bus master is.
    pub fn enable(&self, memory: bool, bus_master: bool) -> Result<u16> {
        let cmd = command_with(self.command()?, memory, bus_master);
        self.write_config(PCI_COMMAND, &cmd.to_le_bytes())?;
        self.command()
    }

    /// The bus address BAR `n` (0..=5) decodes, from its config registers (a 64-bit BAR spans
    /// `n` and `n + 1`). The device's own view: what it compares its CMB addresses against.
    /// [`Error::NoRegion`] for a BAR that decodes no memory, and for `n > 5` (a type-0 header
    /// has six BARs; the registers after them are others).
    pub fn bar_bus_addr(&self, n: u32) -> Result<u64> {
        let no = || Error::NoRegion {
            addr: self.addr.clone(),
            index: bar_region(n),
        };
        let reg = bar_register(n).ok_or_else(no)?;
        let lo = self.config_u32(reg)?;
        let hi = match bar_register(n + 1) {
            Some(next) if lo & 0b110 == 0b100 => self.config_u32(next)?,
            _ => 0,
        };
        decode_bar(lo, hi).ok_or_else(no)
    }

    /// Resets the function (`VFIO_DEVICE_RESET`: a function-level reset or what the kernel
    /// finds instead). COMMAND is restored by the kernel; the device's own state (an NVMe
    /// controller's queues) is gone.
    pub fn reset(&self) -> Result<()> {
        if !self.can_reset() {
            return Err(Error::NoReset {
                addr: self.addr.clone(),
            });
        }
        // SAFETY: RESET takes no argument.
        unsafe { ioctl::call(&self.fd, ioctl::DEVICE_RESET, core::ptr::null_mut()) }
            .map(drop)
            .map_err(|errno| Error::Ioctl {
                op: "VFIO_DEVICE_RESET",
                errno,
            })
    }

    /// Maps BAR `n` (the whole region) with `mmap` of the device file. The mapping is
    /// [`Caching::Uncached`], always: vfio-pci maps BARs with `pgprot_noncached` (no
    /// write-combining, see the type's docs). Fails with [`Error::NotMappable`] when the region
    /// does not allow `mmap`.
    pub fn map_bar(&self, n: u32) -> Result<BarMapping> {
        let r = self.region(bar_region(n))?;
        if !r.mappable() {
            return Err(Error::NotMappable {
                addr: self.addr.clone(),
                index: r.index,
            });
        }
        let len = usize::try_from(r.size).map_err(|_| {
            Error::Iomem(crate::Error::InvalidArgument(
                "BAR larger than the address space",
            ))
        })?;
        let name = PathBuf::from(std::format!("vfio:{}/bar{n}", self.addr));
        let (fd, caching) = (self.fd.as_fd(), Caching::Uncached);
        // SAFETY: vfio-pci maps a mappable BAR region uncached (`vfio_pci_core_mmap` sets
        // `pgprot_noncached`), which `Uncached` says, and the region is `size` bytes for as
        // long as the device file (kept referenced by the mapping) is open.
        let map = unsafe { BarMapping::map_fd(fd, r.offset, &name, len, caching) };
        Ok(map?)
    }
}

/// `n` bytes moved of `want`.
fn short(n: usize, want: usize, what: &'static str) -> Result<()> {
    if n == want {
        Ok(())
    } else {
        Err(Error::Malformed { what })
    }
}

/// The bus address of a memory BAR from its low and high config dwords; `None` for an I/O BAR
/// or an unassigned one.
/// The offset in the device file of `len` bytes at `offset` of the config region `r`, if they
/// lie inside it: VFIO picks a region by the high bits of the file offset, so an offset past
/// the region's end, or one that wraps, would reach another region.
fn config_at(r: &RegionInfo, offset: u64, len: usize) -> Result<u64> {
    // CAST: a slice length fits in 64 bits.
    let inside = offset
        .checked_add(len as u64)
        .is_some_and(|end| end <= r.size);
    match r.offset.checked_add(offset) {
        Some(at) if inside => Ok(at),
        _ => Err(Error::Iomem(crate::Error::OutOfRange {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            len,
            size: usize::try_from(r.size).unwrap_or(usize::MAX),
        })),
    }
}

/// The config offset of BAR `n`'s register: one of the six of a type-0 header, else `None`.
fn bar_register(n: u32) -> Option<u64> {
    (n < 6).then(|| 0x10 + 4 * u64::from(n))
}

fn decode_bar(lo: u32, hi: u32) -> Option<u64> {
    if lo & 1 != 0 {
        return None;
    }
    let addr = u64::from(lo & !0xf)
        | if lo & 0b110 == 0b100 {
            u64::from(hi) << 32
        } else {
            0
        };
    (addr != 0).then_some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_registers_decode_to_bus_addresses() {
        // qboot's CMB BAR: 64-bit prefetchable at 0x1_0000_0000.
        assert_eq!(decode_bar(0x0000_000c, 0x1), Some(0x1_0000_0000));
        // A 32-bit BAR ignores the next register.
        assert_eq!(decode_bar(0xfebf_0000, 0x1), Some(0xfebf_0000));
        assert_eq!(decode_bar(0xc001, 0), None, "I/O BAR");
        assert_eq!(decode_bar(0x4, 0), None, "unassigned");
    }

    #[test]
    fn a_type_0_header_has_six_bars() {
        assert_eq!(bar_register(0), Some(0x10));
        assert_eq!(bar_register(5), Some(0x24));
        // 0x28 is the CardBus CIS pointer, then the subsystem ids: no BAR.
        assert_eq!(bar_register(6), None);
        assert_eq!(bar_register(u32::MAX), None);
    }

    #[test]
    fn config_accesses_stay_inside_config_space() {
        let r = RegionInfo {
            index: CONFIG_REGION,
            flags: 3,
            size: 256,
            offset: 7 << 40,
        };
        assert_eq!(config_at(&r, 0, 4).unwrap(), 7 << 40);
        assert_eq!(config_at(&r, 252, 4).unwrap(), (7 << 40) + 252);
        // Past the end, straddling it, wrapping (which would reach another region's offset),
        // and a region whose own offset is at the top of the file's range.
        for (offset, len) in [
            (256, 1),
            (253, 4),
            (u64::MAX - 8, 4),
            (0u64.wrapping_sub(7 << 40), 4),
        ] {
            assert!(
                matches!(
                    config_at(&r, offset, len),
                    Err(Error::Iomem(crate::Error::OutOfRange { .. }))
                ),
                "{offset:#x} + {len}"
            );
        }
        let top = RegionInfo {
            offset: u64::MAX - 2,
            ..r
        };
        assert!(config_at(&top, 4, 4).is_err());
    }
}
