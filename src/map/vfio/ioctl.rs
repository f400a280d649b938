//! The VFIO ioctl request numbers and one way to issue them.
//!
//! `linux/vfio.h` defines every VFIO request as `_IO(VFIO_TYPE, VFIO_BASE + n)`: no direction
//! and no size are encoded (the structures carry their own `argsz`). The bindings crate has the
//! structures and `VFIO_TYPE`/`VFIO_BASE` but not the request numbers (bindgen does not expand
//! the `_IO` macro), so they are built here from those two constants with rustix's
//! [`opcode::none`], which is `_IO`. The structures always come from `vfio_bindings`.

use core::ffi::c_void;

use rustix::fd::AsFd;
use rustix::ioctl::{opcode, Ioctl, IoctlOutput, Opcode};
use vfio_bindings::bindings::vfio::{VFIO_BASE, VFIO_TYPE};

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`.
const fn vfio_io(n: u32) -> Opcode {
    // CAST: VFIO_BASE + n is at most 117 (the last request), below 256.
    opcode::none(VFIO_TYPE, (VFIO_BASE + n) as u8)
}

/// `VFIO_GET_API_VERSION` (container): returns `VFIO_API_VERSION`.
pub(super) const GET_API_VERSION: Opcode = vfio_io(0);
/// `VFIO_CHECK_EXTENSION` (container): argument an IOMMU type, returns > 0 if supported.
pub(super) const CHECK_EXTENSION: Opcode = vfio_io(1);
/// `VFIO_SET_IOMMU` (container): argument an IOMMU type.
pub(super) const SET_IOMMU: Opcode = vfio_io(2);
/// `VFIO_GROUP_GET_STATUS` (group): `struct vfio_group_status`.
pub(super) const GROUP_GET_STATUS: Opcode = vfio_io(3);
/// `VFIO_GROUP_SET_CONTAINER` (group): pointer to the container's descriptor (`int`).
pub(super) const GROUP_SET_CONTAINER: Opcode = vfio_io(4);
/// `VFIO_GROUP_GET_DEVICE_FD` (group): pointer to the device name (NUL-terminated); returns
/// the device's descriptor.
pub(super) const GROUP_GET_DEVICE_FD: Opcode = vfio_io(6);
/// `VFIO_DEVICE_GET_INFO` (device): `struct vfio_device_info`.
pub(super) const DEVICE_GET_INFO: Opcode = vfio_io(7);
/// `VFIO_DEVICE_GET_REGION_INFO` (device): `struct vfio_region_info`.
pub(super) const DEVICE_GET_REGION_INFO: Opcode = vfio_io(8);
/// `VFIO_DEVICE_RESET` (device): no argument.
pub(super) const DEVICE_RESET: Opcode = vfio_io(11);
/// `VFIO_IOMMU_GET_INFO` (container): `struct vfio_iommu_type1_info` and its capabilities.
pub(super) const IOMMU_GET_INFO: Opcode = vfio_io(12);
/// `VFIO_IOMMU_MAP_DMA` (container): `struct vfio_iommu_type1_dma_map`.
pub(super) const IOMMU_MAP_DMA: Opcode = vfio_io(13);
/// `VFIO_IOMMU_UNMAP_DMA` (container): `struct vfio_iommu_type1_dma_unmap`.
pub(super) const IOMMU_UNMAP_DMA: Opcode = vfio_io(14);

/// One VFIO request: its number and its argument, passed to the kernel as the raw third
/// argument of `ioctl(2)` (a pointer to a structure, or an integer), returning the call's
/// value (a descriptor, a flag, 0).
struct Request {
    op: Opcode,
    arg: *mut c_void,
}

// SAFETY: `opcode` is the request given, `as_ptr` its argument as given; the kernel may write
// through the pointer (IS_MUTATING), and the output is the call's return value, which needs
// no pointer. What the argument must be is the contract of `call`, the only constructor.
unsafe impl Ioctl for Request {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = true;
    fn opcode(&self) -> Opcode {
        self.op
    }
    fn as_ptr(&mut self) -> *mut c_void {
        self.arg
    }
    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

/// Issues request `op` on `fd` with the raw argument `arg`; returns the call's value.
///
/// # Safety
/// `op` is a VFIO request that `fd` (a container, group or device descriptor) understands, and
/// `arg` is what that request takes: for a structure, a pointer to a value of the kernel's type
/// (from `vfio_bindings`), with `argsz` set to the bytes the pointer may be read and written
/// through, valid for the call; for an integer, the integer cast to a pointer.
pub(super) unsafe fn call<F: AsFd>(fd: F, op: Opcode, arg: *mut c_void) -> rustix::io::Result<i32> {
    // SAFETY: the caller's contract is what `ioctl` needs of a request and its argument.
    unsafe { rustix::ioctl::ioctl(fd, Request { op, arg }) }
}

/// `size_of::<T>()` as the `argsz` field of a VFIO structure.
pub(super) const fn argsz<T>() -> u32 {
    // CAST: the VFIO structures are a few dozen bytes.
    core::mem::size_of::<T>() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers `linux/vfio.h` gives: `_IO(t, n)` is `t << 8 | n` plus the "no data"
    /// direction, which is 0 on x86, arm64 and riscv and bit 29 on powerpc, mips and sparc
    /// (their `_IOC_NONE` is 1 in a 3-bit direction field at bit 29).
    #[test]
    fn request_numbers_are_the_kernels() {
        const NONE: Opcode = if cfg!(any(
            target_arch = "powerpc",
            target_arch = "powerpc64",
            target_arch = "mips",
            target_arch = "mips64",
            target_arch = "sparc",
            target_arch = "sparc64"
        )) {
            1 << 29
        } else {
            0
        };
        assert_eq!(GET_API_VERSION, NONE | 0x3b64);
        assert_eq!(SET_IOMMU, NONE | 0x3b66);
        assert_eq!(GROUP_GET_DEVICE_FD, NONE | 0x3b6a);
        assert_eq!(DEVICE_GET_REGION_INFO, NONE | 0x3b6c);
        assert_eq!(DEVICE_RESET, NONE | 0x3b6f);
        assert_eq!(IOMMU_MAP_DMA, NONE | 0x3b71);
        assert_eq!(IOMMU_UNMAP_DMA, NONE | 0x3b72);
    }
}
