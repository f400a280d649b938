//! The VFIO backend's error: what went wrong opening a device through VFIO, mapping its regions
//! or mapping memory in its IOMMU, with a message that says what to do about it.

use std::fmt;
use std::path::PathBuf;
use std::string::String;
use std::vec::Vec;

use rustix::io::Errno;

/// Everything that can go wrong with VFIO. Each message says what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The device has no `iommu_group` link in sysfs: no IOMMU is translating its DMA (none on
    /// the machine, or not turned on).
    NoIommuGroup {
        /// The device address.
        addr: String,
    },
    /// The device is not bound to `vfio-pci`, so its group cannot hand out its descriptor.
    NotBoundToVfioPci {
        /// The device address.
        addr: String,
        /// The driver bound instead, if any.
        driver: Option<String>,
    },
    /// The group is not viable: another device in it is bound to a host driver, and VFIO gives
    /// a group to user space only whole.
    GroupNotViable {
        /// The group number.
        group: u32,
        /// The devices of the group with the driver each is bound to (`None`: no driver).
        devices: Vec<(String, Option<String>)>,
    },
    /// `/dev/vfio/vfio` or `/dev/vfio/<group>` does not exist: the VFIO modules are not loaded.
    NoVfio {
        /// The missing file.
        path: PathBuf,
    },
    /// The kernel refused access to a VFIO file or a mapping: not root, or the file belongs to
    /// another user.
    PermissionDenied {
        /// The file.
        path: PathBuf,
    },
    /// The group file is already open (`EBUSY`): another process (or another container of
    /// this one) owns the group.
    GroupBusy {
        /// The group number.
        group: u32,
    },
    /// The container speaks another VFIO API version than the one this crate was built for.
    ApiVersion {
        /// The version the kernel reported.
        got: i32,
    },
    /// The container has no `VFIO_TYPE1v2_IOMMU` (the kernel lacks `vfio_iommu_type1`).
    NoType1v2,
    /// A DMA provider was asked of a container with no group attached: the IOMMU type is set
    /// with the first group, so open a device first.
    NoGroupAttached,
    /// No free IOVA range of the size asked for, in the ranges the IOMMU accepts.
    IovaExhausted {
        /// Bytes asked for.
        len: u64,
    },
    /// `VFIO_IOMMU_MAP_DMA` failed.
    MapDma {
        /// The IOVA asked for.
        iova: u64,
        /// Bytes.
        len: u64,
        /// The kernel's error.
        errno: Errno,
    },
    /// The device has no such region, or the region is empty (a BAR the device lacks).
    NoRegion {
        /// The device address.
        addr: String,
        /// The region index (`VFIO_PCI_BAR0_REGION_INDEX` + n for BAR n).
        index: u32,
    },
    /// The region cannot be mapped with `mmap` (its flags lack `VFIO_REGION_INFO_FLAG_MMAP`):
    /// reach it with reads and writes of the device file instead.
    NotMappable {
        /// The device address.
        addr: String,
        /// The region index.
        index: u32,
    },
    /// The device does not support `VFIO_DEVICE_RESET` (no function-level reset or
    /// equivalent).
    NoReset {
        /// The device address.
        addr: String,
    },
    /// Any other VFIO request failed.
    Ioctl {
        /// The request (`"VFIO_GROUP_SET_CONTAINER"`…).
        op: &'static str,
        /// The kernel's error.
        errno: Errno,
    },
    /// A VFIO structure the kernel returned is not what it documents (a capability chain
    /// pointing outside its buffer…).
    Malformed {
        /// What was wrong.
        what: &'static str,
    },
    /// Reading the device's place in sysfs, or another step of the sysfs backend, failed.
    Sysfs(crate::map::linux::Error),
    /// A check in the crate refused the mapping.
    Iomem(crate::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoIommuGroup { addr } => write!(
                f,
                "{addr} has no IOMMU group: no IOMMU translates its DMA. Turn the IOMMU on \
                 (kernel command line `intel_iommu=on`, or `amd_iommu=on`; in QEMU add \
                 `-device intel-iommu` to a q35 machine) and check `dmesg | grep -e DMAR -e IOMMU`"
            ),
            Error::NotBoundToVfioPci { addr, driver } => {
                let now = match driver {
                    Some(d) => std::format!("bound to {d:?}"),
                    None => String::from("bound to no driver"),
                };
                write!(
                    f,
                    "{addr} is {now}, not to vfio-pci: bind it with map::vfio::bind_vfio_pci, or \
                     as root `echo vfio-pci > /sys/bus/pci/devices/{addr}/driver_override`, \
                     unbind its driver (`echo {addr} > /sys/bus/pci/devices/{addr}/driver/unbind`) \
                     and `echo {addr} > /sys/bus/pci/drivers_probe` (load vfio-pci first: \
                     `modprobe vfio-pci`)"
                )
            }
            Error::GroupNotViable { group, devices } => {
                write!(
                    f,
                    "IOMMU group {group} is not viable: every device in it must be bound to \
                     vfio-pci (or to no driver) before it can be used; the group holds"
                )?;
                for (d, drv) in devices {
                    match drv {
                        Some(drv) => write!(f, " {d} ({drv})")?,
                        None => write!(f, " {d} (no driver)")?,
                    }
                }
                write!(f, "; see /sys/kernel/iommu_groups/{group}/devices")
            }
            Error::NoVfio { path } => write!(
                f,
                "{} does not exist: load the VFIO modules (`modprobe vfio-pci`, which brings \
                 vfio and vfio_iommu_type1) and bind the device to vfio-pci",
                path.display()
            ),
            Error::PermissionDenied { path } => write!(
                f,
                "permission denied on {}: VFIO needs root, or the group file owned by the user \
                 (`chown`) and a memory-lock limit (`ulimit -l`) large enough for the DMA memory",
                path.display()
            ),
            Error::GroupBusy { group } => write!(
                f,
                "/dev/vfio/{group} is busy: another process (a VM, another driver) holds IOMMU \
                 group {group}; find it with `fuser /dev/vfio/{group}`"
            ),
            Error::ApiVersion { got } => write!(
                f,
                "the kernel's VFIO API version is {got}, this crate speaks {}",
                vfio_bindings::bindings::vfio::VFIO_API_VERSION
            ),
            Error::NoType1v2 => write!(
                f,
                "the VFIO container offers no VFIO_TYPE1v2_IOMMU: load vfio_iommu_type1 \
                 (`modprobe vfio_iommu_type1`); an iommufd-only kernel needs the iommufd backend"
            ),
            Error::NoGroupAttached => write!(
                f,
                "the VFIO container has no group yet, so no IOMMU is set: open a device \
                 (VfioDevice::open) before making its DMA provider"
            ),
            Error::IovaExhausted { len } => write!(
                f,
                "no free IOVA range of {len:#x} bytes in the ranges the IOMMU accepts: free \
                 regions, or release retired ranges after resetting the devices"
            ),
            Error::MapDma { iova, len, errno } => {
                write!(
                    f,
                    "VFIO_IOMMU_MAP_DMA of {len:#x} bytes at IOVA {iova:#x} failed: {errno}"
                )?;
                match *errno {
                    Errno::NOMEM => write!(
                        f,
                        " (the pinned memory is over the memory-lock limit: raise `ulimit -l`, \
                         or run as root)"
                    ),
                    Errno::EXIST => write!(f, " (the IOVA range is already mapped)"),
                    Errno::INVAL => write!(f, " (not page-aligned, or outside the IOMMU's ranges)"),
                    _ => Ok(()),
                }
            }
            Error::NoRegion { addr, index } => write!(
                f,
                "{addr} has no VFIO region {index} (an absent BAR, or an index past the \
                 device's regions)"
            ),
            Error::NotMappable { addr, index } => write!(
                f,
                "VFIO region {index} of {addr} cannot be mmapped; access it with reads and \
                 writes of the device file"
            ),
            Error::NoReset { addr } => write!(
                f,
                "{addr} has no reset VFIO can do (no function-level reset, no PM reset); \
                 reset the function through its own registers"
            ),
            Error::Ioctl { op, errno } => write!(f, "{op} failed: {errno}"),
            Error::Malformed { what } => {
                write!(f, "the kernel returned a malformed VFIO structure: {what}")
            }
            Error::Sysfs(e) => e.fmt(f),
            Error::Iomem(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sysfs(e) => Some(e),
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

impl From<crate::map::linux::Error> for Error {
    fn from(e: crate::map::linux::Error) -> Self {
        Error::Sysfs(e)
    }
}

/// The error of opening the VFIO file `path` (`group`: its group number, for a group file).
pub(super) fn open_err(path: &std::path::Path, group: Option<u32>, errno: Errno) -> Error {
    match (errno, group) {
        (Errno::NOENT | Errno::NODEV | Errno::NXIO, _) => Error::NoVfio {
            path: path.to_path_buf(),
        },
        (Errno::ACCESS | Errno::PERM, _) => Error::PermissionDenied {
            path: path.to_path_buf(),
        },
        (Errno::BUSY, Some(group)) => Error::GroupBusy { group },
        (errno, _) => Error::Ioctl { op: "open", errno },
    }
}

/// Result with the VFIO backend's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn open_errors_say_what_to_do() {
        let g = Path::new("/dev/vfio/7");
        assert!(matches!(
            open_err(g, Some(7), Errno::NOENT),
            Error::NoVfio { .. }
        ));
        assert!(matches!(
            open_err(g, Some(7), Errno::BUSY),
            Error::GroupBusy { group: 7 }
        ));
        let e = open_err(g, Some(7), Errno::ACCESS);
        assert!(matches!(e, Error::PermissionDenied { .. }));
        assert!(std::format!("{e}").contains("ulimit -l"));
        let e = open_err(Path::new("/dev/vfio/vfio"), None, Errno::BUSY);
        assert!(matches!(
            e,
            Error::Ioctl {
                op: "open",
                errno: Errno::BUSY
            }
        ));
        let msg = std::format!("{}", open_err(g, None, Errno::NODEV));
        assert!(msg.contains("modprobe vfio-pci"), "{msg}");
    }

    #[test]
    fn messages_name_the_fix() {
        let e = Error::MapDma {
            iova: 0x10_0000,
            len: 0x1000,
            errno: Errno::NOMEM,
        };
        assert!(std::format!("{e}").contains("ulimit -l"));
        let e = Error::NotBoundToVfioPci {
            addr: "0000:00:01.0".into(),
            driver: Some("nvme".into()),
        };
        let msg = std::format!("{e}");
        assert!(
            msg.contains("driver_override") && msg.contains("drivers_probe"),
            "{msg}"
        );
        assert!(msg.contains("\"nvme\""), "{msg}");
        let e = Error::GroupNotViable {
            group: 3,
            devices: std::vec![
                ("0000:00:01.0".into(), None),
                ("0000:00:01.1".into(), Some("snd".into()))
            ],
        };
        let msg = std::format!("{e}");
        assert!(
            msg.contains("0000:00:01.1 (snd)") && msg.contains("(no driver)"),
            "{msg}"
        );
        let msg = std::format!(
            "{}",
            Error::NoIommuGroup {
                addr: "0000:00:01.0".into()
            }
        );
        assert!(msg.contains("intel_iommu=on"), "{msg}");
    }
}
