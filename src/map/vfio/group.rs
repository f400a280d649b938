//! [`Group`]: an IOMMU group's VFIO file (`/dev/vfio/<N>`), attached to a container.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use vfio_bindings::bindings::vfio::{vfio_group_status, VFIO_GROUP_FLAGS_VIABLE};

use super::bind::group_devices;
use super::error::open_err;
use super::ioctl::{self, argsz};
use super::{Container, Error, Result};

/// Where the group files are.
pub const VFIO_DIR: &str = "/dev/vfio";

/// An IOMMU group opened through VFIO and attached to a [`Container`]: the unit of isolation
/// the IOMMU can tell apart. Every device of a group shares its mappings, so VFIO hands a group
/// to user space only when all its devices are bound to `vfio-pci` (or to no driver): the group
/// is then *viable*.
///
/// Opened by [`VfioDevice::open`](super::VfioDevice::open); devices of the same group share one.
#[derive(Debug)]
pub struct Group {
    fd: OwnedFd,
    number: u32,
    container: Arc<Container>,
}

impl Group {
    /// Opens `/dev/vfio/<number>` and checks that the group is viable. `dir` is the group's
    /// sysfs directory (`/sys/kernel/iommu_groups/<number>`), for the error that lists its
    /// devices. Not yet attached: [`Container::group`] does that.
    pub(super) fn open(number: u32, dir: &Path, container: Arc<Container>) -> Result<Group> {
        let path = PathBuf::from(VFIO_DIR).join(std::format!("{number}"));
        let fd = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| open_err(&path, Some(number), e))?;
        let mut status = vfio_group_status {
            argsz: argsz::<vfio_group_status>(),
            flags: 0,
        };
        // SAFETY: GET_STATUS fills a `vfio_group_status` of `argsz` bytes, `status`, alive
        // across the call.
        unsafe {
            ioctl::call(
                &fd,
                ioctl::GROUP_GET_STATUS,
                (&mut status as *mut vfio_group_status).cast(),
            )
        }
        .map_err(|errno| Error::Ioctl {
            op: "VFIO_GROUP_GET_STATUS",
            errno,
        })?;
        if status.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(Error::GroupNotViable {
                group: number,
                devices: group_devices(dir),
            });
        }
        Ok(Group {
            fd,
            number,
            container,
        })
    }

    /// The group's number (its `/dev/vfio/<number>`).
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The container the group is attached to.
    pub fn container(&self) -> &Arc<Container> {
        &self.container
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        use rustix::fd::AsFd;
        self.fd.as_fd()
    }

    /// The descriptor of the group's device `addr` (`VFIO_GROUP_GET_DEVICE_FD`).
    pub(super) fn device_fd(&self, addr: &str) -> Result<OwnedFd> {
        let name = CString::new(addr).map_err(|_| {
            Error::Iomem(crate::Error::InvalidArgument(
                "a PCI address has no NUL byte",
            ))
        })?;
        // SAFETY: GET_DEVICE_FD reads a NUL-terminated name through the pointer (`name`, alive
        // across the call) and returns a new descriptor.
        let fd = unsafe {
            ioctl::call(
                &self.fd,
                ioctl::GROUP_GET_DEVICE_FD,
                name.as_ptr().cast_mut().cast(),
            )
        }
        .map_err(|errno| Error::Ioctl {
            op: "VFIO_GROUP_GET_DEVICE_FD",
            errno,
        })?;
        // SAFETY: on success the call returned a fresh descriptor that nothing else owns.
        Ok(unsafe { <OwnedFd as rustix::fd::FromRawFd>::from_raw_fd(fd) })
    }
}
