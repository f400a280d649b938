//! The Linux kernel's own bulk copies, as plans: what [`WidthPolicy::LINUX`] (the default)
//! makes a device see for `memcpy_toio`, `memcpy_fromio` and `memset_io`.
//!
//! Each architecture's loop, from the kernel source:
//!
//! | arch | functions | accesses |
//! |---|---|---|
//! | powerpc64 | `arch/powerpc/kernel/io.c`: `_memcpy_toio`, `_memcpy_fromio`, `_memset_io` | bytes `while (n && (!IO_CHECK_ALIGN(io, 4) \|\| !IO_CHECK_ALIGN(ram, 4)))`, then u32 `while (n >= 4)`, then bytes; `_memset_io` aligns the device side only |
//! | aarch64 | `arch/arm64/kernel/io.c` (`__memcpy_toio`, `__memcpy_fromio`, `__memset_io`), now `lib/iomem_copy.c` | bytes until the device side is 8-aligned, then u64 `while (count >= 8)`, then bytes |
//! | riscv64 | `arch/riscv/kernel/io.c`, now `lib/iomem_copy.c` | the same, `sizeof(long)` = 8 |
//! | x86_64 | `arch/x86/lib/iomem.c`: `memcpy_toio`, `memcpy_fromio` (`movs` + `rep movsl`) | a byte if the device side is odd, a u16 if it is then 2 mod 4 (and 2 bytes remain), u32s, then a u16 and a byte: the greedy plan up to 4 bytes |
//! | other | `lib/iomem_copy.c` | as aarch64, with `sizeof(long)` = the target's pointer width |
//!
//! x86's `memset_io` is a plain `memset`, whose access widths the kernel does not define; the
//! crate uses the `memcpy_toio` plan for it. The RAM side matters only on powerpc, and only for
//! copies: when the device and RAM addresses differ modulo 4, the kernel's head loop never
//! reaches alignment and the whole copy is bytes.
//!
//! The widths are capped by the mapping's alignment (a handle's policy is clamped to its
//! backend's base alignment); the crate's own backends align to at least 16, so the caps never
//! bind there.

use super::{Kind, Plan, WidthPolicy};
use crate::error::{Error, Result};
use crate::order::Arch;

/// Which bulk operation a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bulk {
    /// `memcpy_toio`: device ← RAM.
    ToIo,
    /// `memcpy_fromio`: RAM ← device.
    FromIo,
    /// `memset_io`: device ← a repeated byte (no RAM side).
    Set,
}

/// Plans a bulk operation on `[offset, offset + len)` of a device region under `policy`.
///
/// For [`WidthPolicy::LINUX`] the plan is the kernel's loop for `arch` ([`linux`]), which on
/// powerpc also depends on `ram` (the address of the RAM side's first byte; ignored for
/// [`Bulk::Set`]). Every other policy plans greedily ([`plan`](super::plan)).
#[inline]
pub fn plan_bulk(
    policy: WidthPolicy,
    arch: Arch,
    bulk: Bulk,
    offset: usize,
    len: usize,
    ram: usize,
) -> Result<Plan> {
    match policy.kind() {
        Kind::Linux => linux(arch, bulk, offset, len, ram, policy.max_width()),
        Kind::Fixed | Kind::MemoryLike => super::plan(offset, len, policy),
    }
}

/// The kernel's plan for `bulk` on `arch` (see the [module docs](self)), with widths capped at
/// `cap` (a power of two ≥ 1). Fails with [`Error::Overflow`] if `offset + len` overflows.
#[inline]
pub fn linux(
    arch: Arch,
    bulk: Bulk,
    offset: usize,
    len: usize,
    ram: usize,
    cap: usize,
) -> Result<Plan> {
    offset
        .checked_add(len)
        .ok_or(Error::Overflow { offset, len })?;
    Ok(match arch {
        Arch::X86_64 => return super::plan(offset, len, WidthPolicy::fixed(narrow(4, cap))),
        Arch::PowerPc64 => {
            let w = 4.min(cap);
            let in_step = bulk == Bulk::Set || (offset ^ ram) & (w - 1) == 0;
            if in_step {
                bytewise(offset, len, w)
            } else {
                // The head loop's condition never becomes false: every byte is a u8 access.
                bytewise(offset, len, 1)
            }
        }
        Arch::Aarch64 | Arch::Riscv64 => bytewise(offset, len, 8.min(cap)),
        Arch::Other => bytewise(offset, len, core::mem::size_of::<usize>().min(cap)),
    })
}

/// `w` (≤ 8) narrowed to `cap`, as the `u8` a fixed policy holds.
#[inline]
fn narrow(w: usize, cap: usize) -> u8 {
    // CAST: both are at most 8 here.
    w.min(cap) as u8
}

/// Bytes until `offset` is `w`-aligned (or the range ends), `w`-wide accesses while `w` bytes
/// remain, then bytes: the shape of every kernel loop above. `offset + len` does not overflow.
#[inline]
fn bytewise(offset: usize, len: usize, w: usize) -> Plan {
    let head = (offset.wrapping_neg() & (w - 1)).min(len);
    let count = (len - head) / w;
    let tail = len - head - count * w;
    // CAST: head and tail are each below `w` ≤ 8 (or zero when `w` is 1).
    Plan {
        start: offset,
        body_offset: offset + head,
        body_width: w,
        body_count: count,
        head: head as u8,
        tail: tail as u8,
        bytewise: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_capped_and_overflow_is_an_error() {
        let p = linux(Arch::Aarch64, Bulk::ToIo, 0, 32, 0, 4).unwrap();
        assert!(p.accesses().all(|a| a.width == 4));
        assert_eq!(
            linux(Arch::Aarch64, Bulk::ToIo, usize::MAX, 2, 0, 8),
            Err(Error::Overflow {
                offset: usize::MAX,
                len: 2
            })
        );
    }
}
