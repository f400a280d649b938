//! Bulk copies between RAM and device memory: `memcpy_toio`, `memcpy_fromio`, `memset_io`.
//!
//! Each is a small inline entry — the length check and, for a memory-like or fixed-width copy,
//! the copy itself ([`IoMem::try_walk`]) — and an out-of-line planned path, so a short copy
//! does not pay for the planned path's stack frame.

use super::IoMem;
use crate::backend::Backend;
use crate::copy::{plan_bulk, Bulk, Transfer};
use crate::error::{Error, Result};
use crate::order::Op;

/// Copies `src` into device memory (Linux `memcpy_toio`). `dst.len()` must equal `src.len()`.
///
/// The device sees the accesses of `dst`'s [`WidthPolicy`](crate::WidthPolicy) — by default the
/// kernel's own `memcpy_toio` for the backend's architecture ([`copy::kernel`](crate::copy::kernel))
/// — with the barriers of `dst`'s [`Strategy`](crate::Strategy) around them.
#[inline]
pub fn memcpy_toio<B: Backend>(dst: &IoMem<'_, [u8], B>, src: &[u8]) -> Result<()> {
    if dst.len != src.len() {
        return Err(Error::LengthMismatch {
            io_len: dst.len,
            buf_len: src.len(),
        });
    }
    let transfer = Transfer::ToIo(src.as_ptr());
    // SAFETY: by the type invariant `dst`'s range is in bounds; `src` is valid for `dst.len`.
    if unsafe { dst.try_walk(Op::CopyTo, transfer) } {
        return Ok(());
    }
    // SAFETY: as above; the planned path only reads through the pointer of a `ToIo` copy.
    unsafe { planned(dst, Bulk::ToIo, src.as_ptr().cast_mut(), 0) }
}

/// Copies device memory into `dst` (Linux `memcpy_fromio`). `dst.len()` must equal `src.len()`.
#[inline]
pub fn memcpy_fromio<B: Backend>(dst: &mut [u8], src: &IoMem<'_, [u8], B>) -> Result<()> {
    if dst.len() != src.len {
        return Err(Error::LengthMismatch {
            io_len: src.len,
            buf_len: dst.len(),
        });
    }
    let ram = dst.as_mut_ptr();
    let transfer = Transfer::FromIo(ram);
    // SAFETY: by the type invariant `src`'s range is in bounds; `dst` is valid for `src.len`.
    if unsafe { src.try_walk(Op::CopyFrom, transfer) } {
        return Ok(());
    }
    // SAFETY: as above.
    unsafe { planned(src, Bulk::FromIo, ram, 0) }
}

/// Sets every byte of `dst` to `byte` (Linux `memset_io`).
#[inline]
pub fn memset_io<B: Backend>(dst: &IoMem<'_, [u8], B>, byte: u8) -> Result<()> {
    let transfer = Transfer::Fill(byte);
    // SAFETY: by the type invariant `dst`'s range is in bounds; a fill reads no memory.
    if unsafe { dst.try_walk(Op::CopyTo, transfer) } {
        return Ok(());
    }
    // SAFETY: as above.
    unsafe { planned(dst, Bulk::Set, core::ptr::null_mut(), byte) }
}

/// Plans `bulk` over all of `io` and runs it (the path of every copy that is not walked): a
/// copy to or from the memory at `ram`, or a fill with `byte`. Given scalars, so the walked
/// paths in front of it keep the transfer in registers.
///
/// # Safety
/// For a copy, `ram` is valid for `io.len` bytes (read for [`Bulk::ToIo`], written for
/// [`Bulk::FromIo`]); for a fill it is not used.
// Cold: the walked copies ahead of it are laid out as the straight path.
#[cold]
#[inline(never)]
unsafe fn planned<B: Backend>(
    io: &IoMem<'_, [u8], B>,
    bulk: Bulk,
    ram: *mut u8,
    byte: u8,
) -> Result<()> {
    let (op, transfer) = match bulk {
        Bulk::ToIo => (Op::CopyTo, Transfer::ToIo(ram.cast_const())),
        Bulk::FromIo => (Op::CopyFrom, Transfer::FromIo(ram)),
        Bulk::Set => (Op::CopyTo, Transfer::Fill(byte)),
    };
    let arch = io.backend.arch();
    let plan = plan_bulk(io.policy, arch, bulk, io.offset, io.len, ram.addr())?;
    // SAFETY: by the type invariant `io`'s range is in bounds; the caller guarantees the memory
    // side.
    unsafe { io.run_plan(op, &plan, transfer, None) };
    Ok(())
}

impl<B: Backend> IoMem<'_, [u8], B> {
    /// Copies `src` into the device memory of this handle (`memcpy_toio`). Lengths must match.
    pub fn copy_from_slice(&self, src: &[u8]) -> Result<()> {
        memcpy_toio(self, src)
    }

    /// Copies this handle's device memory into `dst` (`memcpy_fromio`). Lengths must match.
    pub fn copy_to_slice(&self, dst: &mut [u8]) -> Result<()> {
        memcpy_fromio(dst, self)
    }

    /// Sets every byte of this handle to `byte` (`memset_io`).
    pub fn fill(&self, byte: u8) -> Result<()> {
        memset_io(self, byte)
    }
}
