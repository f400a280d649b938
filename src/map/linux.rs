//! Linux: PCI devices through sysfs, their BARs mapped into user space, and locked host memory
//! with known physical addresses for DMA.
//!
//! This is what a user-space driver needs on Linux without VFIO:
//!
//! - [`PciDevice`] opens `/sys/bus/pci/devices/<address>` and reads its identity (`vendor`,
//!   `device`, `class`), its bound kernel driver (and [unbinds](PciDevice::unbind) it), its BARs
//!   (the `resource` file: CPU address range and flags) and the bus addresses the device decodes
//!   (the BAR registers in config space), and reads and writes the PCI COMMAND register through the
//!   `config` file ([memory space and bus master enable](PciDevice::enable)).
//! - [`BarMapping`] is a BAR mapped with `mmap` of `resourceN` (uncached) or `resourceN_wc`
//!   (write-combining). It owns the mapping, unmaps it on drop, and hands out an
//!   [`IoMem<[u8]>`](crate::IoMem) whose [`Caching`] is the mapping's.
//! - [`DmaBuffer`] is page-aligned, locked anonymous memory whose physical addresses come from
//!   `/proc/self/pagemap`: without an IOMMU they are the bus addresses a device DMAs to.
//!
//! Everything that can fail returns a [`MapError`] whose message says what to do about it (run
//! as root, unbind the kernel driver, pick a memory BAR…).
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
//! println!("VS = {:#x}", regs.try_read32(0x08)?);
//! # Ok::<(), iomem::map::linux::MapError>(())
//! ```
//!
//! # Safety of the mappings
//! Mapping a BAR is safe in Rust's sense: the mapping is valid memory for as long as the
//! [`BarMapping`] lives, and the crate only ever accesses it with volatile accesses. What a
//! device *does* with the addresses a driver writes into it (DMA) is outside what types can
//! check; that is why the functions handing out physical addresses say so.

use std::ffi::c_void;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

use rustix::mm::{MapFlags, ProtFlags};

use crate::backend::{Caching, Mmio};
use crate::error::Error;
use crate::IoMem;

/// Where the kernel lists PCI devices.
pub const SYSFS_PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// Offset of the COMMAND register in PCI configuration space.
pub const PCI_COMMAND: u64 = 0x04;
/// COMMAND bit: the device decodes accesses to its I/O BARs.
pub const PCI_COMMAND_IO: u16 = 1 << 0;
/// COMMAND bit: the device decodes accesses to its memory BARs.
pub const PCI_COMMAND_MEMORY: u16 = 1 << 1;
/// COMMAND bit: the device may master the bus (DMA).
pub const PCI_COMMAND_MASTER: u16 = 1 << 2;

/// Offset of BAR0 in configuration space; BAR n is at `0x10 + 4 n`.
const PCI_BAR0: u64 = 0x10;

// `IORESOURCE_*` flags of the kernel's `struct resource` (include/linux/ioport.h), as printed in
// the third column of the sysfs `resource` file.
const IORESOURCE_IO: u64 = 0x0000_0100;
const IORESOURCE_MEM: u64 = 0x0000_0200;
const IORESOURCE_PREFETCH: u64 = 0x0000_2000;
const IORESOURCE_MEM_64: u64 = 0x0010_0000;
const IORESOURCE_UNSET: u64 = 0x2000_0000;
const IORESOURCE_DISABLED: u64 = 0x1000_0000;

/// Everything that can go wrong opening a PCI device, mapping its BARs or preparing DMA memory.
/// Each message says what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum MapError {
    /// The address is not a PCI address of the form `dddd:bb:dd.f` (or `bb:dd.f`).
    BadAddress(String),
    /// No device with this address exists under the sysfs root.
    NoDevice {
        /// The address asked for.
        addr: String,
        /// The directory it was looked up in.
        root: PathBuf,
    },
    /// The kernel refused access: most of these files need root (or `CAP_SYS_ADMIN`).
    PermissionDenied {
        /// The file that could not be opened or mapped.
        path: PathBuf,
    },
    /// The BAR does not exist on this device (out of range, or size 0 / unassigned).
    NoBar {
        /// The device address.
        addr: String,
        /// BAR index.
        bar: usize,
    },
    /// The BAR is an I/O-port BAR; only memory BARs can be mapped.
    NotMemory {
        /// The device address.
        addr: String,
        /// BAR index.
        bar: usize,
    },
    /// A write-combining mapping was asked for but the BAR is not prefetchable (the kernel has no
    /// `resourceN_wc` for it).
    NotPrefetchable {
        /// The device address.
        addr: String,
        /// BAR index.
        bar: usize,
    },
    /// `mmap` of the BAR failed with `EINVAL`: with `CONFIG_IO_STRICT_DEVMEM` the kernel refuses
    /// to map a BAR that a kernel driver has claimed.
    DriverOwnsBar {
        /// The device address.
        addr: String,
        /// BAR index.
        bar: usize,
        /// The driver bound to the device, if any.
        driver: Option<String>,
    },
    /// A sysfs file did not contain what the kernel writes there.
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// Any other system call failure.
    Io {
        /// What was being done (`"open"`, `"mmap"`, `"read"`…).
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The error from the kernel.
        source: io::Error,
    },
    /// A check in the crate refused the mapping (for example a misaligned base).
    Iomem(Error),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::BadAddress(a) => write!(
                f,
                "{a:?} is not a PCI address; use the domain:bus:device.function form, e.g. 0000:00:03.0 (see `lspci -D`)"
            ),
            MapError::NoDevice { addr, root } => write!(
                f,
                "no PCI device {addr} under {}; list devices with `lspci -D`",
                root.display()
            ),
            MapError::PermissionDenied { path } => write!(
                f,
                "permission denied on {}: mapping BARs, writing config space and reading physical addresses need root (or CAP_SYS_ADMIN)",
                path.display()
            ),
            MapError::NoBar { addr, bar } => {
                write!(f, "PCI device {addr} has no BAR {bar} (absent, unassigned or size 0)")
            }
            MapError::NotMemory { addr, bar } => write!(
                f,
                "BAR {bar} of {addr} is an I/O-port BAR; only memory BARs can be mapped"
            ),
            MapError::NotPrefetchable { addr, bar } => write!(
                f,
                "BAR {bar} of {addr} is not prefetchable, so it cannot be mapped write-combining; map it with Caching::Uncached"
            ),
            MapError::DriverOwnsBar { addr, bar, driver } => match driver {
                Some(d) => write!(
                    f,
                    "mmap of BAR {bar} of {addr} refused (EINVAL): the kernel driver {d:?} owns it; unbind it first \
                     (PciDevice::unbind, or `echo {addr} > /sys/bus/pci/drivers/{d}/unbind`)"
                ),
                None => write!(
                    f,
                    "mmap of BAR {bar} of {addr} refused (EINVAL): the region is claimed by a kernel driver or the \
                     BAR is not mappable; check `lspci -k -s {addr}` and unbind the driver"
                ),
            },
            MapError::Parse { path, why } => {
                write!(f, "unexpected contents in {}: {why}", path.display())
            }
            MapError::Io { op, path, source } => {
                write!(f, "{op} {} failed: {source}", path.display())
            }
            MapError::Iomem(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MapError::Io { source, .. } => Some(source),
            MapError::Iomem(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for MapError {
    fn from(e: Error) -> Self {
        MapError::Iomem(e)
    }
}

/// Maps an I/O error on `path` to a [`MapError`], turning `EACCES`/`EPERM` into
/// [`MapError::PermissionDenied`].
fn io_err(op: &'static str, path: &Path, source: io::Error) -> MapError {
    match source.kind() {
        io::ErrorKind::PermissionDenied => MapError::PermissionDenied {
            path: path.to_path_buf(),
        },
        _ => match source.raw_os_error() {
            Some(e) if e == rustix::io::Errno::PERM.raw_os_error() => MapError::PermissionDenied {
                path: path.to_path_buf(),
            },
            _ => MapError::Io {
                op,
                path: path.to_path_buf(),
                source,
            },
        },
    }
}

/// Result alias for this module.
pub type MapResult<T> = core::result::Result<T, MapError>;

/// What a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarKind {
    /// Memory space: mappable.
    Memory,
    /// I/O-port space (x86 `in`/`out`): not mappable.
    Io,
}

/// One BAR as the kernel describes it in the device's sysfs `resource` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bar {
    /// BAR index (0–5).
    pub index: usize,
    /// First CPU physical address of the BAR.
    pub start: u64,
    /// Last CPU physical address of the BAR (inclusive).
    pub end: u64,
    /// The kernel's `IORESOURCE_*` flags.
    pub flags: u64,
    /// The address the device decodes, read from the BAR register(s) in config space; equal to
    /// `start` unless the host bridge translates addresses. `None` if config space could not be
    /// read.
    pub bus: Option<u64>,
}

impl Bar {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.end.wrapping_sub(self.start).wrapping_add(1)
    }

    /// Memory or I/O.
    pub fn kind(&self) -> BarKind {
        if self.flags & IORESOURCE_IO != 0 {
            BarKind::Io
        } else {
            BarKind::Memory
        }
    }

    /// Whether the BAR is a 64-bit memory BAR (it then also occupies the next BAR register).
    pub fn is_64bit(&self) -> bool {
        self.flags & IORESOURCE_MEM_64 != 0
    }

    /// Whether the BAR is prefetchable (the kernel then offers a write-combining mapping).
    pub fn is_prefetchable(&self) -> bool {
        self.flags & IORESOURCE_PREFETCH != 0
    }

    /// The bus address a device must use to reach this BAR by peer-to-peer DMA: the BAR
    /// register's value when known, otherwise the CPU physical address (the same on x86 and on
    /// any platform whose host bridge does not translate).
    pub fn bus_addr(&self) -> u64 {
        self.bus.unwrap_or(self.start)
    }
}

/// A PCI device under sysfs.
#[derive(Debug, Clone)]
pub struct PciDevice {
    addr: String,
    root: PathBuf,
    dir: PathBuf,
}

/// Normalises a PCI address to the form sysfs names devices by (`dddd:bb:dd.f`, lower-case hex,
/// the domain at least four digits: VMD domains have five) and checks its shape, so an address
/// can never name a path outside the sysfs directory. `bb:dd.f` means domain 0.
fn normalise_addr(addr: &str) -> MapResult<String> {
    let bad = || MapError::BadAddress(addr.to_string());
    let hex = |s: &str, max_len: usize| -> Option<u32> {
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    };
    let parts: Vec<&str> = addr.split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [bus, devfn] => (Some(0), *bus, *devfn),
        [domain, bus, devfn] => (hex(domain, 8), *bus, *devfn),
        _ => return Err(bad()),
    };
    let (dev, func) = devfn.split_once('.').ok_or_else(bad)?;
    match (domain, hex(bus, 2), hex(dev, 2), hex(func, 1)) {
        (Some(d), Some(b), Some(v), Some(f)) if v < 32 && f < 8 => {
            Ok(std::format!("{d:04x}:{b:02x}:{v:02x}.{f}"))
        }
        _ => Err(bad()),
    }
}

fn parse_hex(s: &str) -> Option<u64> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(s, 16).ok()
}

/// Parses the contents of a sysfs `resource` file (one `start end flags` line per resource; the
/// first six are the BARs). Absent and unassigned BARs are left out. `path` is for messages.
pub fn parse_resource(text: &str, path: &Path) -> MapResult<Vec<Bar>> {
    let mut bars = Vec::new();
    for (index, line) in text.lines().take(6).enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let vals: Option<Vec<u64>> = cols.iter().map(|c| parse_hex(c)).collect();
        let (start, end, flags) = match vals.as_deref() {
            Some(&[s, e, f]) => (s, e, f),
            _ => {
                return Err(MapError::Parse {
                    path: path.to_path_buf(),
                    why: std::format!("line {} is {line:?}, not `start end flags`", index + 1),
                })
            }
        };
        if flags & (IORESOURCE_IO | IORESOURCE_MEM) == 0
            || flags & (IORESOURCE_UNSET | IORESOURCE_DISABLED) != 0
            || end < start
            || (start == 0 && end == 0)
        {
            continue;
        }
        bars.push(Bar {
            index,
            start,
            end,
            flags,
            bus: None,
        });
    }
    Ok(bars)
}

impl PciDevice {
    /// Opens the device at `addr` (`0000:00:03.0`, or `00:03.0` for domain 0) under
    /// [`SYSFS_PCI_DEVICES`].
    pub fn open(addr: &str) -> MapResult<Self> {
        Self::open_in(SYSFS_PCI_DEVICES, addr)
    }

    /// Opens the device at `addr` under another sysfs root (a directory laid out like
    /// `/sys/bus/pci/devices`; tests use a fake tree).
    pub fn open_in(root: impl AsRef<Path>, addr: &str) -> MapResult<Self> {
        let addr = normalise_addr(addr)?;
        let root = root.as_ref().to_path_buf();
        let dir = root.join(&addr);
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(PciDevice { addr, root, dir }),
            Ok(_) => Err(MapError::NoDevice { addr, root }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(MapError::NoDevice { addr, root }),
            Err(e) => Err(io_err("stat", &dir, e)),
        }
    }

    /// Every device under [`SYSFS_PCI_DEVICES`] whose class code (24 bits: base class,
    /// sub-class, programming interface) equals `class`, e.g. `0x010802` for NVMe.
    pub fn find_by_class(class: u32) -> MapResult<Vec<PciDevice>> {
        Self::find_by_class_in(SYSFS_PCI_DEVICES, class)
    }

    /// [`find_by_class`](Self::find_by_class) under another sysfs root.
    pub fn find_by_class_in(root: impl AsRef<Path>, class: u32) -> MapResult<Vec<PciDevice>> {
        let root = root.as_ref();
        let entries = fs::read_dir(root).map_err(|e| io_err("read directory", root, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("read directory", root, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(dev) = Self::open_in(root, name) else {
                continue;
            };
            if dev.class()? == class {
                out.push(dev);
            }
        }
        out.sort_by(|a, b| a.addr.cmp(&b.addr));
        Ok(out)
    }

    /// The device's address, `dddd:bb:dd.f`.
    pub fn address(&self) -> &str {
        &self.addr
    }

    /// The device's sysfs directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn read_attr(&self, name: &str) -> MapResult<String> {
        let path = self.dir.join(name);
        fs::read_to_string(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound if !self.dir.exists() => MapError::NoDevice {
                addr: self.addr.clone(),
                root: self.root.clone(),
            },
            _ => io_err("read", &path, e),
        })
    }

    fn read_hex_attr(&self, name: &str) -> MapResult<u64> {
        let text = self.read_attr(name)?;
        parse_hex(&text).ok_or_else(|| MapError::Parse {
            path: self.dir.join(name),
            why: std::format!("{:?} is not a hexadecimal number", text.trim()),
        })
    }

    /// The 24-bit class code (`0x010802`: mass storage, NVM, NVMe).
    pub fn class(&self) -> MapResult<u32> {
        Ok(self.read_hex_attr("class")? as u32)
    }

    /// The vendor ID (`0x1b36` for QEMU's devices).
    pub fn vendor_id(&self) -> MapResult<u16> {
        Ok(self.read_hex_attr("vendor")? as u16)
    }

    /// The device ID.
    pub fn device_id(&self) -> MapResult<u16> {
        Ok(self.read_hex_attr("device")? as u16)
    }

    /// The name of the kernel driver bound to the device, if any.
    pub fn driver(&self) -> MapResult<Option<String>> {
        let link = self.dir.join("driver");
        match fs::read_link(&link) {
            Ok(target) => Ok(target
                .file_name()
                .and_then(|n| n.to_str())
                .map(ToString::to_string)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read link", &link, e)),
        }
    }

    /// Unbinds the bound kernel driver (writes the address to `driver/unbind`). Does nothing if
    /// no driver is bound. Unbinding also turns bus mastering off; see [`enable`](Self::enable).
    pub fn unbind(&self) -> MapResult<()> {
        if self.driver()?.is_none() {
            return Ok(());
        }
        let path = self.dir.join("driver").join("unbind");
        fs::write(&path, self.addr.as_bytes()).map_err(|e| io_err("write", &path, e))
    }

    /// The device's memory and I/O BARs, from the sysfs `resource` file, with their bus addresses
    /// from config space when it can be read.
    pub fn bars(&self) -> MapResult<Vec<Bar>> {
        let path = self.dir.join("resource");
        let text = self.read_attr("resource")?;
        let mut bars = parse_resource(&text, &path)?;
        if let Ok(cfg) = self.read_config(PCI_BAR0, 24) {
            for bar in &mut bars {
                bar.bus = bar_register(&cfg, bar);
            }
        }
        Ok(bars)
    }

    /// BAR `index`, or [`MapError::NoBar`].
    pub fn bar(&self, index: usize) -> MapResult<Bar> {
        self.bars()?
            .into_iter()
            .find(|b| b.index == index)
            .ok_or_else(|| MapError::NoBar {
                addr: self.addr.clone(),
                bar: index,
            })
    }

    /// The memory BARs as the NVMe CMB code wants them ([`BarTable`](crate::nvme::cmb::BarTable)):
    /// bus address and size of each; I/O BARs and absent ones are left out.
    pub fn bar_table(&self) -> MapResult<crate::nvme::cmb::BarTable> {
        let mut table = crate::nvme::cmb::BarTable::new();
        for b in self.bars()? {
            if b.kind() == BarKind::Memory {
                table = table.with(
                    b.index,
                    crate::nvme::cmb::PciBar::new(b.bus_addr(), b.size())?,
                )?;
            }
        }
        Ok(table)
    }

    /// Reads `len` bytes of configuration space at `offset` through the sysfs `config` file.
    /// Unprivileged users can read the first 64 bytes only; the rest reads short.
    pub fn read_config(&self, offset: u64, len: usize) -> MapResult<Vec<u8>> {
        let path = self.dir.join("config");
        let file = File::open(&path).map_err(|e| io_err("open", &path, e))?;
        let mut buf = std::vec![0u8; len];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| io_err("read", &path, e))?;
        Ok(buf)
    }

    /// Writes `bytes` to configuration space at `offset` (root only).
    pub fn write_config(&self, offset: u64, bytes: &[u8]) -> MapResult<()> {
        let path = self.dir.join("config");
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| io_err("open", &path, e))?;
        file.write_all_at(bytes, offset)
            .map_err(|e| io_err("write", &path, e))
    }

    /// The PCI COMMAND register.
    pub fn command(&self) -> MapResult<u16> {
        let b = self.read_config(PCI_COMMAND, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Writes the PCI COMMAND register.
    pub fn set_command(&self, value: u16) -> MapResult<()> {
        self.write_config(PCI_COMMAND, &value.to_le_bytes())
    }

    /// Sets or clears memory-space decoding and bus mastering in COMMAND, leaving the other bits
    /// alone; returns the new value. With memory space off every BAR access reads as nothing
    /// (QEMU: 0, hardware: all-ones); without bus mastering the device cannot DMA.
    pub fn enable(&self, memory: bool, bus_master: bool) -> MapResult<u16> {
        let mut cmd = self.command()?;
        for (bit, on) in [
            (PCI_COMMAND_MEMORY, memory),
            (PCI_COMMAND_MASTER, bus_master),
        ] {
            if on {
                cmd |= bit;
            } else {
                cmd &= !bit;
            }
        }
        self.set_command(cmd)?;
        Ok(cmd)
    }

    /// Maps BAR `index` with `caching`: `resourceN` for [`Caching::Uncached`], `resourceN_wc` for
    /// [`Caching::WriteCombining`] (prefetchable BARs only).
    ///
    /// Fails with [`MapError::DriverOwnsBar`] if a kernel driver owns the BAR (unbind it), with
    /// [`MapError::PermissionDenied`] if not root.
    pub fn map_bar(&self, index: usize, caching: Caching) -> MapResult<BarMapping> {
        let bar = self.bar(index)?;
        if bar.kind() != BarKind::Memory {
            return Err(MapError::NotMemory {
                addr: self.addr.clone(),
                bar: index,
            });
        }
        let name = match caching {
            Caching::Uncached => std::format!("resource{index}"),
            Caching::WriteCombining => std::format!("resource{index}_wc"),
            Caching::Cacheable => {
                return Err(MapError::Iomem(Error::InvalidArgument(
                    "a BAR is device memory: map it Uncached or WriteCombining",
                )))
            }
        };
        let path = self.dir.join(name);
        if caching == Caching::WriteCombining && !path.exists() {
            return Err(MapError::NotPrefetchable {
                addr: self.addr.clone(),
                bar: index,
            });
        }
        let size = usize::try_from(bar.size()).map_err(|_| {
            MapError::Iomem(Error::InvalidArgument("BAR larger than the address space"))
        })?;
        let mut map = BarMapping::map_path(&path, size, caching).map_err(|e| match e {
            MapError::Io {
                op: "mmap",
                ref source,
                ..
            } if source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                MapError::DriverOwnsBar {
                    addr: self.addr.clone(),
                    bar: index,
                    driver: self.driver().ok().flatten(),
                }
            }
            other => other,
        })?;
        map.bar = Some(bar);
        Ok(map)
    }
}

/// The address a BAR register pair holds, from the 24 bytes of config space at `PCI_BAR0`.
fn bar_register(cfg: &[u8], bar: &Bar) -> Option<u64> {
    let word = |i: usize| -> Option<u32> {
        let b = cfg.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let lo = word(bar.index)?;
    let addr = match bar.kind() {
        BarKind::Io => u64::from(lo & !0x3),
        BarKind::Memory if bar.is_64bit() => {
            (u64::from(word(bar.index + 1)?) << 32) | u64::from(lo & !0xf)
        }
        BarKind::Memory => u64::from(lo & !0xf),
    };
    (addr != 0).then_some(addr)
}

/// A file (normally a BAR's `resourceN`) mapped shared, read-write, into this process. Unmapped
/// on drop.
///
/// # Invariant
/// `ptr..ptr + map_len` is a live `MAP_SHARED` mapping owned by this value, page-aligned, with
/// `map_len >= mmio.size()`; `mmio` describes its first `mmio.size()` bytes.
#[derive(Debug)]
pub struct BarMapping {
    ptr: *mut c_void,
    map_len: usize,
    mmio: Mmio,
    bar: Option<Bar>,
    path: PathBuf,
}

// SAFETY: the mapping is process-wide memory with no thread affinity; `Mmio` is Send + Sync and
// the raw pointer is only used again to unmap on drop.
unsafe impl Send for BarMapping {}
// SAFETY: shared use goes through `Mmio`, which is Sync (volatile accesses only).
unsafe impl Sync for BarMapping {}

impl BarMapping {
    /// Maps the first `len` bytes of the file at `path` (shared, read-write) and describes the
    /// mapping as `caching`. `len` is rounded up to whole pages for `mmap`; the handle covers
    /// exactly `len` bytes.
    ///
    /// This is how [`PciDevice::map_bar`] maps `resourceN`; it also maps a regular file, which is
    /// how the mapping path is tested. A regular file must be at least `len` bytes long. The
    /// caller is responsible for `caching` describing what the kernel really set up (sysfs
    /// `resourceN` is uncached, `resourceN_wc` write-combining, a regular file is cached RAM).
    pub fn map_path(path: &Path, len: usize, caching: Caching) -> MapResult<BarMapping> {
        if len == 0 {
            return Err(Error::InvalidArgument("mapping length is zero").into());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => MapError::Io {
                    op: "open",
                    path: path.to_path_buf(),
                    source: e,
                },
                _ => io_err("open", path, e),
            })?;
        let meta = file.metadata().map_err(|e| io_err("stat", path, e))?;
        // sysfs reports a BAR file's size as the BAR size; a regular file must cover `len` or
        // touching the tail would raise SIGBUS.
        if meta.len() < len as u64 {
            return Err(Error::OutOfRange {
                offset: 0,
                len,
                size: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            }
            .into());
        }
        let page = rustix::param::page_size();
        let map_len = len
            .checked_add(page - 1)
            .map(|l| l & !(page - 1))
            .ok_or(Error::Overflow { offset: 0, len })?;
        // SAFETY: a fresh mapping at an address the kernel chooses (null hint), so no existing
        // memory is affected; the file descriptor is valid for the call.
        let ptr = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                map_len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &file,
                0,
            )
        }
        .map_err(|e| match e {
            rustix::io::Errno::ACCESS | rustix::io::Errno::PERM => MapError::PermissionDenied {
                path: path.to_path_buf(),
            },
            e => MapError::Io {
                op: "mmap",
                path: path.to_path_buf(),
                source: e.into(),
            },
        })?;
        // The descriptor can close now: the mapping keeps the file referenced.
        drop(file);
        // SAFETY: `ptr..ptr + map_len` was just mapped read-write and is owned by the value
        // returned below, which unmaps it only on drop, after every borrow of `mmio` has ended;
        // nothing in this crate creates a reference into it; the caller vouches for `caching`.
        let mmio = unsafe { Mmio::new(ptr.cast(), len, caching) };
        match mmio {
            Ok(mmio) => Ok(BarMapping {
                ptr,
                map_len,
                mmio,
                bar: None,
                path: path.to_path_buf(),
            }),
            Err(e) => {
                // SAFETY: the mapping was created above and is not used after this.
                let _ = unsafe { rustix::mm::munmap(ptr, map_len) };
                Err(e.into())
            }
        }
    }

    /// The backend over the mapping.
    pub fn mmio(&self) -> &Mmio {
        &self.mmio
    }

    /// A handle to the whole mapping, with the mapping's caching.
    pub fn io(&self) -> IoMem<'_, [u8], Mmio> {
        IoMem::new(&self.mmio)
    }

    /// The mapping's caching.
    pub fn caching(&self) -> Caching {
        crate::Backend::caching(&self.mmio)
    }

    /// Size in bytes of the mapped region.
    pub fn len(&self) -> usize {
        crate::Backend::size(&self.mmio)
    }

    /// Whether the mapping is empty (never true: zero-length mappings are refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The BAR this maps, when it came from [`PciDevice::map_bar`].
    pub fn bar(&self) -> Option<&Bar> {
        self.bar.as_ref()
    }

    /// The mapped file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

// SAFETY: forwards to the `Mmio` over the mapping, which upholds the contract; the mapping lives
// as long as `self`, so an owner of a `BarMapping` (a pool keeping it in an `Arc`) may use it
// as its backend.
unsafe impl crate::Backend for BarMapping {
    #[inline(always)]
    fn size(&self) -> usize {
        crate::Backend::size(&self.mmio)
    }
    #[inline(always)]
    fn base_align(&self) -> usize {
        crate::Backend::base_align(&self.mmio)
    }
    #[inline(always)]
    fn caching(&self) -> Caching {
        crate::Backend::caching(&self.mmio)
    }
    #[inline(always)]
    fn arch(&self) -> crate::Arch {
        crate::Backend::arch(&self.mmio)
    }
    #[inline(always)]
    unsafe fn read<W: crate::backend::Word>(&self, off: usize) -> W {
        // SAFETY: the caller upholds `read`'s contract, which is the same for the `Mmio`.
        unsafe { crate::Backend::read(&self.mmio, off) }
    }
    #[inline(always)]
    unsafe fn write<W: crate::backend::Word>(&self, off: usize, value: W) {
        // SAFETY: the caller upholds `write`'s contract, which is the same for the `Mmio`.
        unsafe { crate::Backend::write(&self.mmio, off, value) }
    }
    #[inline(always)]
    fn barrier(&self, barrier: crate::Barrier) {
        crate::Backend::barrier(&self.mmio, barrier)
    }
    #[inline(always)]
    fn barrier_after_read(&self, barrier: crate::Barrier, loaded: u64) {
        crate::Backend::barrier_after_read(&self.mmio, barrier, loaded)
    }
}

impl Drop for BarMapping {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the mapping is live and owned by `self`; borrows of
        // `self.mmio` (and so every `IoMem` over it) have ended since `drop` has `&mut self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.map_len) };
    }
}

/// Page-aligned anonymous memory, locked in RAM, whose physical addresses are known: the host
/// side of a device's DMA (completion queues, data buffers) when there is no IOMMU.
///
/// Accessed through [`io`](Self::io) with volatile accesses, like device memory: the device
/// writes it behind the compiler's back.
///
/// `mlock` keeps the pages resident, but the kernel may still *migrate* locked pages (memory
/// compaction) and the physical addresses read at creation would then be stale. User space
/// cannot pin pages without VFIO; on a test machine set `vm.compact_unevictable_allowed = 0`
/// (the CI guest does), and use VFIO with an IOMMU for anything real.
///
/// # Invariant
/// `ptr..ptr + len` is a live private anonymous mapping owned by this value, locked, every page
/// present; `phys[i]` is the physical address of page `i` as read once locked.
#[derive(Debug)]
pub struct DmaBuffer {
    ptr: *mut c_void,
    len: usize,
    page: usize,
    phys: Vec<u64>,
    mmio: Mmio,
}

// SAFETY: as for `BarMapping`: process-wide memory, accessed only through the Sync `Mmio`.
unsafe impl Send for DmaBuffer {}
// SAFETY: as above.
unsafe impl Sync for DmaBuffer {}

impl DmaBuffer {
    /// Allocates `len` bytes (rounded up to whole pages), zeroed, locks them (`mlock`) and reads
    /// their physical addresses from `/proc/self/pagemap`. Needs root (without `CAP_SYS_ADMIN`
    /// the kernel reports every frame as 0, refused here as [`MapError::PermissionDenied`]).
    pub fn new(len: usize) -> MapResult<DmaBuffer> {
        if len == 0 {
            return Err(Error::InvalidArgument("DMA buffer length is zero").into());
        }
        let page = rustix::param::page_size();
        let len = len
            .checked_add(page - 1)
            .map(|l| l & !(page - 1))
            .ok_or(Error::Overflow { offset: 0, len })?;
        let anon = Path::new("anonymous memory");
        // SAFETY: a fresh private anonymous mapping at a kernel-chosen address.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::POPULATE,
            )
        }
        .map_err(|e| io_err("mmap", anon, e.into()))?;
        // SAFETY: the mapping was just created read-write, is page-aligned anonymous RAM, and
        // lives as long as the `DmaBuffer` that owns `mmio`.
        let mmio = match unsafe { Mmio::new(ptr.cast(), len, Caching::Cacheable) } {
            Ok(m) => m,
            Err(e) => {
                // SAFETY: the mapping was created above and is not used after this.
                let _ = unsafe { rustix::mm::munmap(ptr, len) };
                return Err(e.into());
            }
        };
        // From here on the value owns the mapping; an early return unmaps it through Drop.
        let mut buf = DmaBuffer {
            ptr,
            len,
            page,
            phys: Vec::new(),
            mmio,
        };
        // SAFETY: `ptr..ptr + len` is our own live mapping.
        unsafe { rustix::mm::mlock(ptr, len) }.map_err(|e| match e {
            rustix::io::Errno::PERM | rustix::io::Errno::NOMEM => MapError::PermissionDenied {
                path: PathBuf::from("mlock"),
            },
            e => io_err("mlock", anon, e.into()),
        })?;
        // Touch every page so each has a frame (POPULATE did, but make it independent of it).
        for off in (0..len).step_by(page) {
            // SAFETY: in range and 1-byte aligned; the buffer is RAM.
            unsafe { crate::Backend::write::<u8>(&buf.mmio, off, 0) };
        }
        buf.phys = pagemap_frames(ptr as usize, len / page, page)?;
        Ok(buf)
    }

    /// A handle over the buffer.
    pub fn io(&self) -> IoMem<'_, [u8], Mmio> {
        IoMem::new(&self.mmio)
    }

    /// Size in bytes (a whole number of pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (never true).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The page size the buffer is made of.
    pub fn page_size(&self) -> usize {
        self.page
    }

    /// The physical (bus, without an IOMMU) address of byte `offset`. Pages are not physically
    /// contiguous: a DMA range must not cross a page boundary unless each page's address is
    /// given separately (PRP lists, scatter-gather).
    ///
    /// Giving this address to a device lets it write this memory; the buffer must outlive every
    /// DMA the device may still do.
    pub fn phys_addr(&self, offset: usize) -> crate::Result<u64> {
        if offset >= self.len {
            return Err(Error::OutOfRange {
                offset,
                len: 1,
                size: self.len,
            });
        }
        Ok(self.phys[offset / self.page] + (offset % self.page) as u64)
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the mapping is live and owned by `self`; no borrow of
        // `self.mmio` outlives `&mut self`. munmap also unlocks.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

/// Physical addresses of `pages` pages starting at virtual address `va`, from
/// `/proc/self/pagemap` (8 bytes per page: bit 63 present, bits 0–54 frame number).
fn pagemap_frames(va: usize, pages: usize, page: usize) -> MapResult<Vec<u64>> {
    let path = Path::new("/proc/self/pagemap");
    let file = File::open(path).map_err(|e| io_err("open", path, e))?;
    let mut raw = std::vec![0u8; pages * 8];
    file.read_exact_at(&mut raw, (va / page) as u64 * 8)
        .map_err(|e| io_err("read", path, e))?;
    let mut out = Vec::with_capacity(pages);
    for chunk in raw.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let entry = u64::from_le_bytes(b);
        let pfn = entry & ((1 << 55) - 1);
        if entry >> 63 == 0 {
            return Err(MapError::Parse {
                path: path.to_path_buf(),
                why: "a locked page is reported not present".to_string(),
            });
        }
        if pfn == 0 {
            return Err(MapError::PermissionDenied {
                path: path.to_path_buf(),
            });
        }
        out.push(pfn * page as u64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;
    use std::os::unix::fs::symlink;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(std::format!(
                "iomem-linux-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const NVME_RESOURCE: &str = "\
0x00000000febf0000 0x00000000febf3fff 0x0000000000140204
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000100000000 0x0000000100ffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x000000000000c000 0x000000000000c03f 0x0000000000040101
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
";

    /// A fake `/sys/bus/pci/devices` with a QEMU-like NVMe controller at 0000:00:03.0 bound to
    /// `nvme`, and a device at 0000:00:04.0 with no driver.
    fn fake_tree() -> (TempDir, PathBuf) {
        let t = TempDir::new("sysfs");
        let root = t.0.join("devices");
        let drv = t.0.join("drivers").join("nvme");
        fs::create_dir_all(&drv).unwrap();
        fs::write(drv.join("unbind"), b"").unwrap();
        let dev = root.join("0000:00:03.0");
        fs::create_dir_all(&dev).unwrap();
        fs::write(dev.join("class"), "0x010802\n").unwrap();
        fs::write(dev.join("vendor"), "0x1b36\n").unwrap();
        fs::write(dev.join("device"), "0x0010\n").unwrap();
        fs::write(dev.join("resource"), NVME_RESOURCE).unwrap();
        let mut cfg = std::vec![0u8; 256];
        cfg[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        cfg[4..6].copy_from_slice(&0x0007u16.to_le_bytes());
        cfg[0x10..0x14].copy_from_slice(&0xfebf_0004u32.to_le_bytes());
        cfg[0x14..0x18].copy_from_slice(&0u32.to_le_bytes());
        cfg[0x18..0x1c].copy_from_slice(&0x0000_000cu32.to_le_bytes());
        cfg[0x1c..0x20].copy_from_slice(&1u32.to_le_bytes());
        cfg[0x20..0x24].copy_from_slice(&0xc001u32.to_le_bytes());
        fs::write(dev.join("config"), &cfg).unwrap();
        fs::write(dev.join("resource0"), std::vec![0u8; 0x4000]).unwrap();
        fs::write(dev.join("resource2_wc"), std::vec![0u8; 0x1000]).unwrap();
        symlink(&drv, dev.join("driver")).unwrap();
        let other = root.join("0000:00:04.0");
        fs::create_dir_all(&other).unwrap();
        fs::write(other.join("class"), "0x020000\n").unwrap();
        fs::write(other.join("resource"), "").unwrap();
        (t, root)
    }

    #[test]
    fn addresses_are_normalised_and_checked() {
        assert_eq!(normalise_addr("00:03.0").unwrap(), "0000:00:03.0");
        assert_eq!(normalise_addr("0000:AB:1f.7").unwrap(), "0000:ab:1f.7");
        assert_eq!(normalise_addr("10000:e1:00.0").unwrap(), "10000:e1:00.0");
        assert_eq!(normalise_addr("1:2:3.4").unwrap(), "0001:02:03.4");
        for bad in [
            "",
            "0000:00:03",
            "../../etc",
            "0000:00:03.8",
            "0000:00:20.0",
            "0000:00:03.0/x",
            "a:b:c:d",
        ] {
            assert!(
                matches!(normalise_addr(bad), Err(MapError::BadAddress(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn identity_driver_and_bars_come_from_sysfs() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "00:03.0").unwrap();
        assert_eq!(dev.address(), "0000:00:03.0");
        assert_eq!(dev.class().unwrap(), 0x010802);
        assert_eq!(dev.vendor_id().unwrap(), 0x1b36);
        assert_eq!(dev.device_id().unwrap(), 0x0010);
        assert_eq!(dev.driver().unwrap().as_deref(), Some("nvme"));

        let bars = dev.bars().unwrap();
        assert_eq!(bars.iter().map(|b| b.index).collect::<Vec<_>>(), [0, 2, 4]);
        let b0 = bars[0];
        assert_eq!(
            (b0.start, b0.size(), b0.kind()),
            (0xfebf_0000, 0x4000, BarKind::Memory)
        );
        assert!(b0.is_64bit() && !b0.is_prefetchable());
        assert_eq!(b0.bus_addr(), 0xfebf_0000);
        let b2 = bars[1];
        assert_eq!(b2.size(), 16 << 20);
        assert!(b2.is_64bit() && b2.is_prefetchable());
        assert_eq!(b2.bus, Some(0x1_0000_0000));
        assert_eq!(bars[2].kind(), BarKind::Io);
        assert_eq!(bars[2].bus_addr(), 0xc000);
        let table = dev.bar_table().unwrap();
        assert_eq!(
            table.get(0).map(|b| (b.bus_addr, b.size)),
            Some((0xfebf_0000, 0x4000))
        );
        assert_eq!(table.get(2).map(|b| b.bus_addr), Some(0x1_0000_0000));
        assert_eq!((table.get(1), table.get(4)), (None, None));

        assert_eq!(
            PciDevice::find_by_class_in(&root, 0x010802)
                .unwrap()
                .iter()
                .map(|d| d.address().to_string())
                .collect::<Vec<_>>(),
            ["0000:00:03.0"]
        );
    }

    #[test]
    fn missing_device_and_bars_are_typed_errors() {
        let (_t, root) = fake_tree();
        assert!(matches!(
            PciDevice::open_in(&root, "0000:00:05.0"),
            Err(MapError::NoDevice { .. })
        ));
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        assert!(matches!(dev.bar(1), Err(MapError::NoBar { bar: 1, .. })));
        assert!(matches!(dev.bar(9), Err(MapError::NoBar { bar: 9, .. })));
        assert!(matches!(
            dev.map_bar(4, Caching::Uncached),
            Err(MapError::NotMemory { bar: 4, .. })
        ));
        assert!(matches!(
            dev.map_bar(0, Caching::WriteCombining),
            Err(MapError::NotPrefetchable { bar: 0, .. })
        ));
        let msg = MapError::DriverOwnsBar {
            addr: "0000:00:03.0".into(),
            bar: 0,
            driver: Some("nvme".into()),
        }
        .to_string();
        assert!(msg.contains("/sys/bus/pci/drivers/nvme/unbind"), "{msg}");
    }

    #[test]
    fn bus_address_falls_back_to_the_cpu_address_without_config_space() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        // A host bridge that translates: config space says the device decodes another address.
        let mut cfg = fs::read(dev.path().join("config")).unwrap();
        cfg[0x10..0x14].copy_from_slice(&0x8000_0004u32.to_le_bytes());
        fs::write(dev.path().join("config"), &cfg).unwrap();
        assert_eq!(dev.bar(0).unwrap().bus_addr(), 0x8000_0000);
        assert_eq!(dev.bar(0).unwrap().start, 0xfebf_0000);
        fs::remove_file(dev.path().join("config")).unwrap();
        let b0 = dev.bar(0).unwrap();
        assert_eq!((b0.bus, b0.bus_addr()), (None, 0xfebf_0000));
        assert!(matches!(
            dev.command(),
            Err(MapError::Io { op: "open", .. })
        ));
    }

    #[test]
    fn malformed_resource_is_a_parse_error() {
        let p = Path::new("resource");
        assert!(matches!(
            parse_resource("0x0 0x1\n", p),
            Err(MapError::Parse { .. })
        ));
        assert!(matches!(
            parse_resource("zz 0x1 0x200\n", p),
            Err(MapError::Parse { .. })
        ));
        assert!(parse_resource("", p).unwrap().is_empty());
    }

    #[test]
    fn command_register_round_trips_through_config() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        assert_eq!(dev.command().unwrap(), 0x0007);
        assert_eq!(dev.enable(false, false).unwrap(), 0x0001);
        assert_eq!(dev.command().unwrap(), 0x0001);
        assert_eq!(dev.enable(true, true).unwrap(), 0x0007);
        let cfg = dev.read_config(0, 8).unwrap();
        assert_eq!(&cfg[4..6], &[0x07, 0x00]);
    }

    #[test]
    fn unbind_writes_the_address_to_the_driver() {
        let (t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        dev.unbind().unwrap();
        let written = fs::read_to_string(t.0.join("drivers/nvme/unbind")).unwrap();
        assert_eq!(written, "0000:00:03.0");
        // No driver: nothing to do, and nothing written.
        PciDevice::open_in(&root, "0000:00:04.0")
            .unwrap()
            .unbind()
            .unwrap();
    }

    #[test]
    fn map_bar_maps_the_resource_file_with_its_caching() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        let map = dev.map_bar(0, Caching::Uncached).unwrap();
        assert_eq!(map.len(), 0x4000);
        assert_eq!(map.caching(), Caching::Uncached);
        assert_eq!(map.bar().map(|b| b.index), Some(0));
        let io = map.io();
        io.try_write32(0x14, 0x0046_0001).unwrap();
        io.try_write64(0x28, 0x1234_5678_9abc_def0).unwrap();
        assert_eq!(io.try_read32(0x14).unwrap(), 0x0046_0001);
        assert!(io.try_read32(0x4000).is_err());
        drop(map);
        // MAP_SHARED: the writes reached the file.
        let bytes = fs::read(dev.path().join("resource0")).unwrap();
        assert_eq!(&bytes[0x14..0x18], &0x0046_0001u32.to_le_bytes());
        assert_eq!(&bytes[0x28..0x30], &0x1234_5678_9abc_def0u64.to_le_bytes());
    }

    #[test]
    fn map_path_refuses_short_files_and_zero_length() {
        let t = TempDir::new("map");
        let f = t.0.join("short");
        fs::write(&f, [0u8; 100]).unwrap();
        assert!(matches!(
            BarMapping::map_path(&f, 4096, Caching::Uncached),
            Err(MapError::Iomem(Error::OutOfRange { .. }))
        ));
        assert!(matches!(
            BarMapping::map_path(&f, 0, Caching::Uncached),
            Err(MapError::Iomem(Error::InvalidArgument(_)))
        ));
        let m = BarMapping::map_path(&f, 100, Caching::WriteCombining).unwrap();
        assert_eq!((m.len(), m.caching()), (100, Caching::WriteCombining));
        assert_eq!(m.mmio().size(), 100);
        m.io().subslice(0..100).unwrap().fill(0x5a).unwrap();
        drop(m);
        assert_eq!(fs::read(&f).unwrap(), std::vec![0x5a; 100]);
    }

    #[test]
    fn dma_buffer_is_page_granular_and_has_frames_when_privileged() {
        match DmaBuffer::new(5000) {
            Ok(buf) => {
                let page = buf.page_size();
                assert_eq!(buf.len(), 2 * page);
                for p in 0..2 {
                    let pa = buf.phys_addr(p * page).unwrap();
                    assert_ne!(pa, 0);
                    assert_eq!(pa % page as u64, 0);
                    assert_eq!(buf.phys_addr(p * page + 12).unwrap(), pa + 12);
                }
                assert!(buf.phys_addr(2 * page).is_err());
                let io = buf.io();
                io.try_write64(8, 0xfeed).unwrap();
                assert_eq!(io.try_read64(8).unwrap(), 0xfeed);
                assert_eq!(io.try_read64(0).unwrap(), 0);
            }
            // Unprivileged: pagemap hides frame numbers, mlock may be limited.
            Err(MapError::PermissionDenied { .. }) => {
                assert!(!rustix::process::geteuid().is_root())
            }
            Err(e) => panic!("{e}"),
        }
        assert!(matches!(
            DmaBuffer::new(0),
            Err(MapError::Iomem(Error::InvalidArgument(_)))
        ));
    }
}
