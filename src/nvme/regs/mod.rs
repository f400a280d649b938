//! NVMe controller registers (BAR0): layout, typed decode, and access.
//!
//! Mirrors the controller register map of the NVM Express Base Specification 1.4 / 2.0, section
//! "Controller Registers" (Linux names the same offsets in `include/linux/nvme.h`). Every
//! register is declared once — name, offset, width, access, and its fields with their bits and
//! meaning — and that one declaration generates the offset constant in [`offsets`],
//! the value newtype ([`Cap`], [`Vs`], [`Cc`], [`Csts`], [`Aqa`], [`QueueBase`] for ASQ/ACQ,
//! [`Cmbloc`], [`Cmbsz`], [`Cmbmsc`], [`Cmbsts`], [`Pmrcap`], [`Pmrsts`], [`Pmrmsc`], …) whose getters read like the specification,
//! the [`ControllerRegs`] accessors at compile-time offsets, and the checks that the
//! declarations match [`Registers`]. What the specification requires beyond bit extraction
//! (CAP's MQES is not zero, CMBSZ's size unit is not reserved, …) is checked where the values
//! are decoded.
//!
//! Decoding a value that cannot be real is an [`Error`]: [`Error::DeviceGone`] for all-ones
//! (surprise removal on real hardware) and for all-zeros where a register cannot be zero (CAP
//! and VS: a removed QEMU device, memory decoding off), and [`Error::BadRegister`] for values
//! the specification does not allow.
//!
//! # Registers
//! A read-only register (CAP, VS, CSTS, CMBLOC, CMBSZ, CMBSTS, BPINFO, CMBEBS, CMBSWTP, CRTO,
//! PMRCAP, PMRSTS, PMREBS, PMRSWTP) has a getter on [`ControllerRegs`] and no setter; a write-only one (NSSR, NSSD) a setter and
//! no getter; the others both. Setters of writable registers' fields are `with_*` methods on
//! the value type.
//!
//! # 64-bit registers
//! CAP, ASQ, ACQ, BPMBL, CMBMSC and PMRMSC are 64 bits wide. This crate always accesses them as **two
//! 32-bit accesses**, never one 64-bit access:
//! - reads go low dword first, then high (Linux `lo_hi_readq`); CAP and ASQ/ACQ do not change
//!   under the driver, so the pair is consistent;
//! - writes go **high dword first, then low** (Linux `hi_lo_writeq`): controllers act on the
//!   write of the low dword (QEMU enables the CMB and latches CBA when the low half of CMBMSC is
//!   written, reading the high half it already holds), so the high half must be in place first.
//!
//! The specification allows 32-bit access to every register, PCIe devices need not accept
//! 64-bit MMIO, and some controllers and bridges split or reject it; QEMU accepts both. Two
//! 32-bit accesses work everywhere.
//!
//! # Example
//! ```
//! use iomem::{backend::MockIo, nvme::regs::{offsets, Cap, ControllerRegs, Vs}, IoMem};
//!
//! let bar0 = MockIo::new(0x2000);
//! bar0.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes()); // a real 1.2 controller
//! bar0.poke(offsets::VS, &0x0001_0200u32.to_le_bytes());
//! let regs = ControllerRegs::new(IoMem::new(&bar0))?;
//! let cap = regs.cap()?;
//! assert_eq!(cap.max_queue_entries(), 4096);
//! assert_eq!(cap.timeout_ms(), 5000);
//! assert_eq!(cap.sq_tail_doorbell(1)?, 0x1008);
//! assert_eq!(regs.vs()?, Vs::new(1, 2, 0));
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::backend::Backend;
use crate::iomem::IoMem;
use crate::nvme::{Error, Result};

#[macro_use]
mod macros;
mod map;
mod values;

pub use map::*;
pub use values::{PmrHealth, Shutdown, ShutdownStatus};

/// The controller register block at the start of BAR0, as laid out by the specification.
///
/// Use it with [`IoMem::cast`] and [`project!`](crate::project), or through [`ControllerRegs`].
/// 64-bit registers are split into `_lo`/`_hi` halves because this crate accesses them as two
/// 32-bit accesses (see the [module docs](self)). Each register's declaration checks at compile
/// time that its offset is its field's here.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
#[allow(missing_docs)]
pub struct Registers {
    pub cap_lo: u32,
    pub cap_hi: u32,
    pub vs: u32,
    pub intms: u32,
    pub intmc: u32,
    pub cc: u32,
    pub _rsvd18: u32,
    pub csts: u32,
    pub nssr: u32,
    pub aqa: u32,
    pub asq_lo: u32,
    pub asq_hi: u32,
    pub acq_lo: u32,
    pub acq_hi: u32,
    pub cmbloc: u32,
    pub cmbsz: u32,
    pub bpinfo: u32,
    pub bprsel: u32,
    pub bpmbl_lo: u32,
    pub bpmbl_hi: u32,
    pub cmbmsc_lo: u32,
    pub cmbmsc_hi: u32,
    pub cmbsts: u32,
    pub cmbebs: u32,
    pub cmbswtp: u32,
    pub nssd: u32,
    pub crto: u32,
    pub _rsvd6c: [u32; (0xE00 - 0x6C) / 4],
    pub pmrcap: u32,
    pub pmrctl: u32,
    pub pmrsts: u32,
    pub pmrebs: u32,
    pub pmrswtp: u32,
    pub pmrmsc_lo: u32,
    pub pmrmsc_hi: u32,
    pub _rsvde1c: [u32; (0x1000 - 0xE1C) / 4],
}

static_assertions::assert_eq_size!(Registers, [u8; 0x1000]);

/// The smallest memory page size an NVMe controller can have, in bytes (2^12).
pub const MIN_PAGE_SIZE: u64 = 4096;

/// Size of a submission queue entry in bytes.
pub const SQ_ENTRY_SIZE: usize = 64;
/// Size of a completion queue entry in bytes.
pub const CQ_ENTRY_SIZE: usize = 16;

// ---------------------------------------------------------------------------------------------
// A vanished device, and the layout check
// ---------------------------------------------------------------------------------------------

/// What a register of a vanished device reads as, besides what the device would never return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// All-ones: a PCIe read that no device answered (surprise removal, link down, memory
    /// decoding off on real hardware).
    Ones,
    /// All-ones, or zero for a register that cannot be zero (QEMU after `device_del` reads
    /// zeros).
    OnesOrZero,
    /// Every value is a possible register value (an interrupt mask, for example).
    Never,
}

/// The one place a vanished device is recognised: `raw`, read from `reg`, is
/// [`Error::DeviceGone`] if it is `ones` (the register's all-ones value) or, where `gone` says
/// so, zero.
pub(crate) fn present(reg: &'static str, gone: Gone, raw: u64, ones: u64) -> Result<()> {
    let vanished = match gone {
        Gone::Ones => raw == ones,
        Gone::OnesOrZero => raw == ones || raw == 0,
        Gone::Never => false,
    };
    if vanished {
        return Err(Error::DeviceGone { reg, value: raw });
    }
    Ok(())
}

/// Whether the high dword of the 64-bit `raw` (read second of two) reads as a vanished device
/// would, as `gone` says: all-ones, or zero too for [`Gone::OnesOrZero`]. A device that
/// vanishes between the two reads leaves a real low dword and a vanished high one, which as a
/// whole may look real.
pub(crate) fn torn(gone: Gone, raw: u64) -> bool {
    // CAST: the high dword.
    let hi = (raw >> 32) as u32;
    match gone {
        Gone::Ones => hi == u32::MAX,
        Gone::OnesOrZero => hi == u32::MAX || hi == 0,
        Gone::Never => false,
    }
}

/// Compile-time check of the register map: `(name, offset, width)` in ascending order of
/// offset, each naturally aligned, none overlapping the next, all inside a block of `size`
/// bytes.
// Called only from `const _` items, which rustc 1.85 (the MSRV) does not count as uses.
#[allow(dead_code)]
pub(crate) const fn check_layout(regs: &[(&str, usize, usize)], size: usize) {
    let mut i = 0;
    while i < regs.len() {
        let (_, off, width) = regs[i];
        assert!(off % 4 == 0, "a register offset is not dword aligned");
        assert!(
            off + width <= size,
            "a register lies outside the register block"
        );
        if i > 0 {
            let (_, prev, prev_width) = regs[i - 1];
            assert!(
                prev + prev_width <= off,
                "registers overlap, or are not declared in order of offset"
            );
        }
        i += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------------------------

/// Typed access to the controller registers through a handle on BAR0.
///
/// Each register's getter and setter (generated from its declaration) is one 32-bit access at
/// a compile-time offset, or two for a 64-bit register in the order the [module docs](self)
/// give, with the handle's strategy (use the default
/// [`Conservative`](crate::Strategy::Conservative) for registers: `readl`/`writel`). The
/// `try_` methods reach registers at run-time offsets (ones this crate does not declare) and
/// check the whole range before the first access.
#[derive(Debug, Clone, Copy)]
pub struct ControllerRegs<'a, B: Backend> {
    bar0: IoMem<'a, [u8], B>,
    regs: IoMem<'a, Registers, B>,
}

impl<'a, B: Backend> ControllerRegs<'a, B> {
    /// Wraps a handle on BAR0. It must cover at least the register block (0x1000 bytes, up to
    /// the doorbells, aligned to 4); doorbell accesses are checked against its length when they are made.
    pub fn new(bar0: IoMem<'a, [u8], B>) -> Result<Self> {
        let regs = bar0.cast::<Registers>(0)?;
        Ok(ControllerRegs { bar0, regs })
    }

    /// The BAR0 handle.
    pub fn bar0(&self) -> IoMem<'a, [u8], B> {
        self.bar0
    }

    /// The register block.
    pub fn block(&self) -> IoMem<'a, Registers, B> {
        self.regs
    }

    /// Reads the 32-bit register at byte `off` of BAR0 (checked at run time).
    pub fn try_read32(&self, off: usize) -> Result<u32> {
        Ok(self.bar0.try_read32(off)?)
    }

    /// Writes the 32-bit register at byte `off` of BAR0 (checked at run time).
    pub fn try_write32(&self, off: usize, v: u32) -> Result<()> {
        Ok(self.bar0.try_write32(off, v)?)
    }

    /// Reads the 64-bit register at byte `off` of BAR0 as two 32-bit reads, low dword first.
    /// Both dwords are checked (in range, aligned to 4) before the first read.
    pub fn try_read64_lo_hi(&self, off: usize) -> Result<u64> {
        let reg = self.bar0.cast::<[u32; 2]>(off)?;
        let lo = reg.read32::<0>();
        let hi = reg.read32::<4>();
        Ok(u64::from(lo) | u64::from(hi) << 32)
    }

    /// Writes the 64-bit register at byte `off` of BAR0 as two 32-bit writes, high dword first
    /// (the low write is the one controllers act on). Both dwords are checked (in range,
    /// aligned to 4) before the first write.
    pub fn try_write64_hi_lo(&self, off: usize, v: u64) -> Result<()> {
        let reg = self.bar0.cast::<[u32; 2]>(off)?;
        // CAST: the high dword, shifted down: 32 bits.
        reg.write32::<4>((v >> 32) as u32);
        // CAST: the low dword; the high one was written above.
        reg.write32::<0>(v as u32);
        Ok(())
    }

    /// Writes only the low dword of CMBMSC (CRE, CMSE and CBA bits 31:12): what a controller
    /// acts on, leaving the high half of CBA as it is.
    pub fn set_cmbmsc_lo(&self, v: Cmbmsc) {
        // CAST: the low dword, by intent.
        self.regs.write32::<{ offsets::CMBMSC }>(v.raw() as u32)
    }

    /// Writes submission queue `qid`'s tail doorbell as a doorbell
    /// ([`IoMem::try_doorbell32`]): earlier stores are published first. The doorbell's offset
    /// (from `qid` and CAP.DSTRD) is checked against BAR0 before anything is written.
    pub fn ring_sq_tail(&self, cap: Cap, qid: u16, tail: u16) -> Result<()> {
        Ok(self
            .bar0
            .try_doorbell32(cap.sq_tail_doorbell(qid)?, u32::from(tail))?)
    }

    /// Writes completion queue `qid`'s head doorbell, checked as for
    /// [`ring_sq_tail`](Self::ring_sq_tail).
    pub fn ring_cq_head(&self, cap: Cap, qid: u16, head: u16) -> Result<()> {
        Ok(self
            .bar0
            .try_doorbell32(cap.cq_head_doorbell(qid)?, u32::from(head))?)
    }
}
