//! Bulk copies between RAM and device memory: `memcpy_toio`, `memcpy_fromio`, `memset_io`.

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
pub fn memcpy_toio<B: Backend>(dst: &IoMem<'_, [u8], B>, src: &[u8]) -> Result<()> {
    if dst.len != src.len() {
        return Err(Error::LengthMismatch {
            io_len: dst.len,
            buf_len: src.len(),
        });
    }
    let arch = dst.backend.arch();
    let plan = plan_bulk(
        dst.policy,
        arch,
        Bulk::ToIo,
        dst.offset,
        dst.len,
        src.as_ptr() as usize,
    )?;
    // SAFETY: by the type invariant `dst`'s range is in bounds; `src` is valid for `dst.len`.
    unsafe { dst.run_plan(Op::CopyTo, &plan, Transfer::ToIo(src.as_ptr()), None) };
    Ok(())
}

/// Copies device memory into `dst` (Linux `memcpy_fromio`). `dst.len()` must equal `src.len()`.
pub fn memcpy_fromio<B: Backend>(dst: &mut [u8], src: &IoMem<'_, [u8], B>) -> Result<()> {
    if dst.len() != src.len {
        return Err(Error::LengthMismatch {
            io_len: src.len,
            buf_len: dst.len(),
        });
    }
    let arch = src.backend.arch();
    let ram = dst.as_mut_ptr();
    let plan = plan_bulk(
        src.policy,
        arch,
        Bulk::FromIo,
        src.offset,
        src.len,
        ram as usize,
    )?;
    // SAFETY: by the type invariant `src`'s range is in bounds; `dst` is valid for `src.len`.
    unsafe { src.run_plan(Op::CopyFrom, &plan, Transfer::FromIo(ram), None) };
    Ok(())
}

/// Sets every byte of `dst` to `byte` (Linux `memset_io`).
pub fn memset_io<B: Backend>(dst: &IoMem<'_, [u8], B>, byte: u8) -> Result<()> {
    let arch = dst.backend.arch();
    let plan = plan_bulk(dst.policy, arch, Bulk::Set, dst.offset, dst.len, 0)?;
    // SAFETY: by the type invariant `dst`'s range is in bounds; a fill reads no memory.
    unsafe { dst.run_plan(Op::CopyTo, &plan, Transfer::Fill(byte), None) };
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
