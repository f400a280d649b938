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
    // SAFETY: as above.
    unsafe { planned(dst, Op::CopyTo, Bulk::ToIo, transfer, src.as_ptr() as usize) }
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
    unsafe { planned(src, Op::CopyFrom, Bulk::FromIo, transfer, ram as usize) }
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
    unsafe { planned(dst, Op::CopyTo, Bulk::Set, transfer, 0) }
}

/// Plans `bulk` over all of `io` and runs it (the path of every copy that is not walked).
///
/// # Safety
/// The memory side of `transfer` is valid for `io.len` bytes; `ram` is its address (0 for a
/// fill).
#[inline(never)]
unsafe fn planned<B: Backend>(
    io: &IoMem<'_, [u8], B>,
    op: Op,
    bulk: Bulk,
    transfer: Transfer,
    ram: usize,
) -> Result<()> {
    let arch = io.backend.arch();
    let plan = plan_bulk(io.policy, arch, bulk, io.offset, io.len, ram)?;
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
