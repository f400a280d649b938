//! The map layer's error: what went wrong opening a device, mapping a BAR or preparing DMA
//! memory, with a message that says what to do about it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::string::String;

/// Everything that can go wrong opening a PCI device, mapping its BARs or preparing DMA memory.
/// Each message says what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
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
    /// The BAR does not exist on this device (index out of range, absent, or unassigned).
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
    /// A BAR file to be mapped is not a sysfs attribute (a tree given to
    /// [`PciDevice::open_in`](super::PciDevice::open_in)): an ordinary file may shrink under its
    /// mapping. [`PciDevice::map_bar_unchecked`](super::PciDevice::map_bar_unchecked) maps one.
    NotSysfs {
        /// The file.
        path: PathBuf,
    },
    /// A sysfs file did not contain what the kernel writes there.
    Parse {
        /// The file.
        path: PathBuf,
        /// The line (from 1) that was wrong.
        line: usize,
        /// What was wrong with it.
        what: Malformed,
    },
    /// The device's `driver` link does not end in a driver's name.
    BadDriverLink {
        /// The link.
        link: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// `/proc/self/pagemap` gives a locked page of a DMA buffer no usable physical address: the
    /// page is reported not present, or its frame number lies beyond 64-bit addresses.
    BadFrame {
        /// The page's index in the buffer.
        page: usize,
        /// The raw pagemap entry.
        entry: u64,
    },
    /// No free 2 MiB huge pages for a huge-page DMA allocation (`mmap` with `MAP_HUGETLB` failed
    /// with `ENOMEM`): none are reserved, or all are in use.
    NoHugePages {
        /// Bytes asked for (whole huge pages).
        bytes: usize,
    },
    /// `mmap` with `MAP_HUGETLB` was refused with `EINVAL`: this kernel (or an emulator
    /// between it and the program) does not provide 2 MiB huge pages.
    HugePagesUnsupported {
        /// Bytes asked for.
        bytes: usize,
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
    /// A device's canonical sysfs path is not the chain the kernel makes
    /// (`/sys/devices/pciDDDD:BB/<bridge>/…/<device>`), so its upstream bridges and host bridge
    /// cannot be known.
    BadTopology {
        /// The canonical path.
        path: PathBuf,
        /// What was wrong with it.
        why: &'static str,
    },
    /// The extended capability list in a `config` file is broken: a pointer below the extended
    /// space, a header beyond the file, or a list that does not end.
    BadCapability {
        /// The `config` file.
        path: PathBuf,
        /// The offset of the header (or pointer) at fault.
        offset: u64,
        /// What was wrong.
        why: &'static str,
    },
    /// Handing a p2p buffer's address to a peer was refused: the topology does not route p2p
    /// between the two devices ([`PeerAccess::check`](super::PeerAccess::check)).
    PeerDenied {
        /// Why not.
        blocker: super::P2pBlocker,
    },
    /// A check in the crate refused the mapping (for example a misaligned base).
    Iomem(crate::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadAddress(a) => write!(
                f,
                "{a:?} is not a PCI address; use the domain:bus:device.function form, e.g. 0000:00:03.0 (see `lspci -D`)"
            ),
            Error::NoDevice { addr, root } => write!(
                f,
                "no PCI device {addr} under {}; list devices with `lspci -D`",
                root.display()
            ),
            Error::PermissionDenied { path } => write!(
                f,
                "permission denied on {}: mapping BARs, writing config space and reading physical addresses need root (or CAP_SYS_ADMIN)",
                path.display()
            ),
            Error::NoHugePages { bytes } => write!(
                f,
                "no free 2 MiB huge pages for {bytes} bytes of DMA memory: reserve them as root with \
                 `echo {n} > /proc/sys/vm/nr_hugepages` (or `hugepages={n}` on the kernel command line); \
                 `grep Huge /proc/meminfo` shows what is reserved and free",
                n = bytes.div_ceil(2 << 20)
            ),
            Error::HugePagesUnsupported { bytes } => write!(
                f,
                "2 MiB huge pages are not available here for {bytes} bytes of DMA memory: the kernel \
                 has no hugetlb support (CONFIG_HUGETLBFS), or an emulator does not pass MAP_HUGETLB \
                 through; use base pages (PagemapDma::new) or an IOMMU mapping"
            ),
            Error::NoBar { addr, bar } => {
                write!(f, "PCI device {addr} has no BAR {bar} (absent or unassigned); list its BARs with `lspci -v -s {addr}`")
            }
            Error::NotMemory { addr, bar } => write!(
                f,
                "BAR {bar} of {addr} is an I/O-port BAR; only memory BARs can be mapped"
            ),
            Error::NotPrefetchable { addr, bar } => write!(
                f,
                "BAR {bar} of {addr} is not prefetchable, so it cannot be mapped write-combining; map it with Caching::Uncached"
            ),
            Error::DriverOwnsBar { addr, bar, driver } => match driver {
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
            Error::NotSysfs { path } => write!(
                f,
                "{} is not on sysfs, so it is not a BAR the kernel maps: map_bar maps only sysfs \
                 attributes (an ordinary file may shrink under its mapping); open the device under \
                 /sys/bus/pci/devices, or map a test's tree with PciDevice::map_bar_unchecked",
                path.display()
            ),
            Error::Parse { path, line, what } => write!(
                f,
                "unexpected contents in {}, line {line}: {what}; the kernel writes this file, so \
                 check that the path is the sysfs file it names and report its contents",
                path.display()
            ),
            Error::BadDriverLink { link, target } => write!(
                f,
                "{} points to {}, which names no driver; see `lspci -k` for the bound driver",
                link.display(),
                target.display()
            ),
            Error::BadFrame { page, entry } => write!(
                f,
                "/proc/self/pagemap gives page {page} of a locked DMA buffer no usable physical \
                 address (entry {entry:#018x}: not present, or beyond 64-bit addresses); the \
                 kernel did not keep it resident, so use VFIO with an IOMMU instead"
            ),
            Error::BadTopology { path, why } => write!(
                f,
                "{} is not a PCI device's place in the sysfs device tree ({why}); pass a device \
                 opened under /sys/bus/pci/devices, whose entries link into /sys/devices/pciDDDD:BB/…",
                path.display()
            ),
            Error::BadCapability { path, offset, why } => write!(
                f,
                "the extended capability list in {} is broken at {offset:#x} ({why}); check the \
                 device with `lspci -vvv`",
                path.display()
            ),
            Error::PeerDenied { blocker } => write!(
                f,
                "peer-to-peer refused: {blocker}; if the platform routes it anyway (the kernel's \
                 tables do not know it), say so with PeerAccess::override_unchecked(reason)"
            ),
            Error::Io { op, path, source } => {
                write!(f, "{op} {} failed: {source}", path.display())
            }
            Error::Iomem(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Iomem(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Error::Iomem(e)
    }
}

/// What was wrong with a number or a line in a sysfs file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// Not a number as the kernel prints one: `0x` and hexadecimal digits, with no sign, space
    /// or other text. Holds the text as found.
    NotHex(String),
    /// A number wider than its field: a 16-bit vendor or device ID, the 24-bit class code, or
    /// more than 64 bits.
    TooWide {
        /// The number as found.
        text: String,
        /// How many bits the field has.
        bits: u32,
    },
    /// Not a decimal number (a field of `/proc/cpuinfo`). Holds the text as found.
    NotDecimal(String),
    /// A line of a `resource` file that is not three numbers `start end flags`.
    NotStartEndFlags(String),
    /// A resource whose end is below its start, or that spans all 2^64 addresses (its size,
    /// `end - start + 1`, does not fit in 64 bits).
    BadRange {
        /// First address.
        start: u64,
        /// Last address (inclusive).
        end: u64,
    },
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::NotHex(t) => write!(
                f,
                "{t:?} is not a number as the kernel prints it (0x and hexadecimal digits)"
            ),
            Malformed::TooWide { text, bits } => {
                write!(f, "{text:?} does not fit in the field's {bits} bits")
            }
            Malformed::NotDecimal(t) => write!(f, "{t:?} is not a decimal number"),
            Malformed::NotStartEndFlags(l) => write!(f, "{l:?} is not `start end flags`"),
            Malformed::BadRange { start, end } if end < start => {
                write!(f, "the range {start:#x}..={end:#x} ends below its start")
            }
            Malformed::BadRange { start, end } => write!(
                f,
                "the range {start:#x}..={end:#x} spans all 2^64 addresses, a size that does not \
                 fit in 64 bits"
            ),
        }
    }
}

/// Maps an I/O error on `path` to an [`Error`], turning `EACCES`/`EPERM` into
/// [`Error::PermissionDenied`].
pub(super) fn io_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    match source.kind() {
        io::ErrorKind::PermissionDenied => Error::PermissionDenied {
            path: path.to_path_buf(),
        },
        _ => match source.raw_os_error() {
            Some(e) if e == rustix::io::Errno::PERM.raw_os_error() => Error::PermissionDenied {
                path: path.to_path_buf(),
            },
            _ => Error::Io {
                op,
                path: path.to_path_buf(),
                source,
            },
        },
    }
}

/// Result with the map layer's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
