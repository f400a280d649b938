//! NVMe controller registers (BAR0): layout, typed decode, and access.
//!
//! Mirrors the controller register map of the NVM Express Base Specification 1.4 / 2.0, section
//! "Controller Registers" (Linux names the same offsets in `include/linux/nvme.h`). Every register
//! has a newtype over its raw value ([`Cap`], [`Vs`], [`Cc`], [`Csts`], [`Aqa`], [`QueueBase`]
//! for ASQ/ACQ, [`Cmbloc`], [`Cmbsz`], [`Cmbmsc`], [`Cmbsts`]) whose accessors read like the
//! specification. Decoding a value that cannot be real is an [`Error`]:
//! [`Error::DeviceGone`] for all-ones (surprise removal on real hardware) and for all-zeros where
//! a register cannot be zero (a removed QEMU device, memory decoding off), and
//! [`Error::BadRegister`] for values the specification does not allow.
//!
//! [`ControllerRegs`] reads and writes the registers through an [`IoMem`] handle on BAR0.
//!
//! # 64-bit registers
//! CAP, ASQ, ACQ and CMBMSC are 64 bits wide. This crate always accesses them as **two 32-bit
//! accesses**, never one 64-bit access:
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
//! # Ok::<(), iomem::Error>(())
//! ```

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::iomem::IoMem;

/// Byte offsets of the controller registers in BAR0.
pub mod offsets {
    /// Controller Capabilities (64-bit).
    pub const CAP: usize = 0x00;
    /// Version.
    pub const VS: usize = 0x08;
    /// Interrupt Mask Set.
    pub const INTMS: usize = 0x0C;
    /// Interrupt Mask Clear.
    pub const INTMC: usize = 0x10;
    /// Controller Configuration.
    pub const CC: usize = 0x14;
    /// Controller Status.
    pub const CSTS: usize = 0x1C;
    /// NVM Subsystem Reset.
    pub const NSSR: usize = 0x20;
    /// Admin Queue Attributes.
    pub const AQA: usize = 0x24;
    /// Admin Submission Queue Base Address (64-bit).
    pub const ASQ: usize = 0x28;
    /// Admin Completion Queue Base Address (64-bit).
    pub const ACQ: usize = 0x30;
    /// Controller Memory Buffer Location.
    pub const CMBLOC: usize = 0x38;
    /// Controller Memory Buffer Size.
    pub const CMBSZ: usize = 0x3C;
    /// Boot Partition Information.
    pub const BPINFO: usize = 0x40;
    /// Boot Partition Read Select.
    pub const BPRSEL: usize = 0x44;
    /// Boot Partition Memory Buffer Location (64-bit).
    pub const BPMBL: usize = 0x48;
    /// Controller Memory Buffer Memory Space Control (64-bit, NVMe 1.4+).
    pub const CMBMSC: usize = 0x50;
    /// Controller Memory Buffer Status (NVMe 1.4+).
    pub const CMBSTS: usize = 0x58;
    /// Controller Memory Buffer Elasticity Buffer Size (NVMe 1.4+).
    pub const CMBEBS: usize = 0x5C;
    /// Controller Memory Buffer Sustained Write Throughput (NVMe 1.4+).
    pub const CMBSWTP: usize = 0x60;
    /// NVM Subsystem Shutdown (NVMe 2.0).
    pub const NSSD: usize = 0x64;
    /// Controller Ready Timeouts (NVMe 2.0).
    pub const CRTO: usize = 0x68;
    /// Start of the doorbell registers.
    pub const DOORBELLS: usize = 0x1000;
}

/// The controller register block at the start of BAR0, as laid out by the specification.
///
/// Use it with [`IoMem::cast`] and [`project!`](crate::project), or through [`ControllerRegs`].
/// 64-bit registers are split into `_lo`/`_hi` halves because this crate accesses them as two
/// 32-bit accesses (see the [module docs](self)).
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
    pub _rsvd6c: u32,
}

macro_rules! check_offsets {
    ($($field:ident = $off:ident),* $(,)?) => {$(
        static_assertions::const_assert_eq!(core::mem::offset_of!(Registers, $field), offsets::$off);
    )*};
}
check_offsets!(
    cap_lo = CAP,
    vs = VS,
    intms = INTMS,
    intmc = INTMC,
    cc = CC,
    csts = CSTS,
    nssr = NSSR,
    aqa = AQA,
    asq_lo = ASQ,
    acq_lo = ACQ,
    cmbloc = CMBLOC,
    cmbsz = CMBSZ,
    bpinfo = BPINFO,
    bprsel = BPRSEL,
    bpmbl_lo = BPMBL,
    cmbmsc_lo = CMBMSC,
    cmbsts = CMBSTS,
    cmbebs = CMBEBS,
    cmbswtp = CMBSWTP,
    nssd = NSSD,
    crto = CRTO,
);
static_assertions::const_assert_eq!(core::mem::offset_of!(Registers, cap_hi), offsets::CAP + 4);
static_assertions::const_assert_eq!(
    core::mem::offset_of!(Registers, cmbmsc_hi),
    offsets::CMBMSC + 4
);
static_assertions::assert_eq_size!(Registers, [u8; 0x70]);

/// Bits `lo..=hi` of `v`.
#[inline(always)]
const fn bits(v: u64, lo: u32, hi: u32) -> u64 {
    (v >> lo) & (u64::MAX >> (63 - (hi - lo)))
}

#[inline(always)]
const fn bit(v: u64, n: u32) -> bool {
    (v >> n) & 1 == 1
}

/// The smallest memory page size an NVMe controller can have, in bytes (2^12).
pub const MIN_PAGE_SIZE: u64 = 4096;

/// Size of a submission queue entry in bytes.
pub const SQ_ENTRY_SIZE: usize = 64;
/// Size of a completion queue entry in bytes.
pub const CQ_ENTRY_SIZE: usize = 16;

// ---------------------------------------------------------------------------------------------
// CAP
// ---------------------------------------------------------------------------------------------

/// Controller Capabilities (CAP, offset 0x00).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cap(u64);

impl Cap {
    /// Decodes a raw CAP value.
    ///
    /// All-ones or zero is [`Error::DeviceGone`]; MQES of zero (a queue of one entry), no command
    /// set in CSS, or MPSMIN > MPSMAX is [`Error::BadRegister`].
    pub fn decode(raw: u64) -> Result<Self> {
        if raw == u64::MAX || raw == 0 {
            return Err(Error::DeviceGone {
                reg: "CAP",
                value: raw,
            });
        }
        let cap = Cap(raw);
        if cap.mqes() == 0 {
            return Err(bad(
                "CAP",
                raw,
                "MQES is 0 (queues must hold at least 2 entries)",
            ));
        }
        if cap.css() == 0 {
            return Err(bad("CAP", raw, "CSS names no command set"));
        }
        if cap.mpsmin() > cap.mpsmax() {
            return Err(bad("CAP", raw, "MPSMIN is larger than MPSMAX"));
        }
        Ok(cap)
    }

    /// The raw value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// MQES: maximum queue entries supported, 0's based (bits 15:0).
    pub const fn mqes(self) -> u16 {
        bits(self.0, 0, 15) as u16
    }

    /// Maximum entries of an I/O queue (MQES + 1).
    pub const fn max_queue_entries(self) -> u32 {
        self.mqes() as u32 + 1
    }

    /// CQR: contiguous queues required (bit 16).
    pub const fn cqr(self) -> bool {
        bit(self.0, 16)
    }

    /// AMS: arbitration mechanisms supported (bits 18:17).
    pub const fn ams(self) -> u8 {
        bits(self.0, 17, 18) as u8
    }

    /// TO: worst-case time to become ready, in 500 ms units (bits 31:24).
    pub const fn to(self) -> u8 {
        bits(self.0, 24, 31) as u8
    }

    /// Worst-case time for CSTS.RDY to follow CC.EN, in milliseconds.
    pub const fn timeout_ms(self) -> u64 {
        self.to() as u64 * 500
    }

    /// DSTRD: doorbell stride exponent (bits 35:32); the stride is `4 << DSTRD` bytes.
    pub const fn dstrd(self) -> u8 {
        bits(self.0, 32, 35) as u8
    }

    /// Doorbell stride in bytes (`4 << DSTRD`).
    pub const fn doorbell_stride(self) -> usize {
        4 << self.dstrd()
    }

    /// NSSRS: NVM subsystem reset supported (bit 36).
    pub const fn nssrs(self) -> bool {
        bit(self.0, 36)
    }

    /// CSS: command sets supported (bits 44:37); bit 0 = NVM, bit 6 = I/O command sets,
    /// bit 7 = admin only.
    pub const fn css(self) -> u8 {
        bits(self.0, 37, 44) as u8
    }

    /// BPS: boot partition support (bit 45).
    pub const fn bps(self) -> bool {
        bit(self.0, 45)
    }

    /// MPSMIN: minimum memory page size exponent (bits 51:48); the size is `2^(12 + MPSMIN)`.
    pub const fn mpsmin(self) -> u8 {
        bits(self.0, 48, 51) as u8
    }

    /// MPSMAX: maximum memory page size exponent (bits 55:52).
    pub const fn mpsmax(self) -> u8 {
        bits(self.0, 52, 55) as u8
    }

    /// Minimum memory page size in bytes.
    pub const fn mpsmin_bytes(self) -> u64 {
        MIN_PAGE_SIZE << self.mpsmin()
    }

    /// Maximum memory page size in bytes.
    pub const fn mpsmax_bytes(self) -> u64 {
        MIN_PAGE_SIZE << self.mpsmax()
    }

    /// PMRS: persistent memory region supported (bit 56).
    pub const fn pmrs(self) -> bool {
        bit(self.0, 56)
    }

    /// CMBS: controller memory buffer supported (bit 57, NVMe 1.4+): the CMB is controlled
    /// through CMBMSC.
    pub const fn cmbs(self) -> bool {
        bit(self.0, 57)
    }

    /// Byte offset in BAR0 of submission queue `qid`'s tail doorbell:
    /// `0x1000 + (2·qid) · (4 << DSTRD)`.
    pub fn sq_tail_doorbell(self, qid: u16) -> Result<usize> {
        self.doorbell(2 * qid as usize)
    }

    /// Byte offset in BAR0 of completion queue `qid`'s head doorbell:
    /// `0x1000 + (2·qid + 1) · (4 << DSTRD)`.
    pub fn cq_head_doorbell(self, qid: u16) -> Result<usize> {
        self.doorbell(2 * qid as usize + 1)
    }

    fn doorbell(self, index: usize) -> Result<usize> {
        index
            .checked_mul(self.doorbell_stride())
            .and_then(|o| o.checked_add(offsets::DOORBELLS))
            .ok_or(Error::Overflow {
                offset: offsets::DOORBELLS,
                len: index,
            })
    }
}

impl fmt::Debug for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cap")
            .field("raw", &format_args!("{:#x}", self.0))
            .field("mqes", &self.mqes())
            .field("cqr", &self.cqr())
            .field("to", &self.to())
            .field("dstrd", &self.dstrd())
            .field("css", &format_args!("{:#x}", self.css()))
            .field("mpsmin", &self.mpsmin())
            .field("mpsmax", &self.mpsmax())
            .field("cmbs", &self.cmbs())
            .finish()
    }
}

fn bad(reg: &'static str, value: u64, why: &'static str) -> Error {
    Error::BadRegister { reg, value, why }
}

// ---------------------------------------------------------------------------------------------
// VS
// ---------------------------------------------------------------------------------------------

/// Version (VS, offset 0x08): `major.minor.tertiary`. Ordered by version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vs(u32);

impl Vs {
    /// NVMe 1.4: the first version with CMBMSC/CMBSTS and CAP.CMBS.
    pub const V1_4: Vs = Vs::new(1, 4, 0);

    /// A version from its parts.
    pub const fn new(major: u16, minor: u8, tertiary: u8) -> Self {
        Vs(((major as u32) << 16) | ((minor as u32) << 8) | tertiary as u32)
    }

    /// Decodes a raw VS value: all-ones or zero is [`Error::DeviceGone`], major 0 is
    /// [`Error::BadRegister`].
    pub fn decode(raw: u32) -> Result<Self> {
        if raw == u32::MAX || raw == 0 {
            return Err(Error::DeviceGone {
                reg: "VS",
                value: raw as u64,
            });
        }
        let vs = Vs(raw);
        if vs.major() == 0 {
            return Err(bad("VS", raw as u64, "major version is 0"));
        }
        Ok(vs)
    }

    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// MJR (bits 31:16).
    pub const fn major(self) -> u16 {
        (self.0 >> 16) as u16
    }
    /// MNR (bits 15:8).
    pub const fn minor(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// TER (bits 7:0).
    pub const fn tertiary(self) -> u8 {
        self.0 as u8
    }
    /// Whether this version has the NVMe 1.4 CMB controls (CMBMSC, CMBSTS, CAP.CMBS).
    pub fn has_cmbmsc(self) -> bool {
        self >= Self::V1_4
    }
}

impl fmt::Debug for Vs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Vs({}.{}.{})",
            self.major(),
            self.minor(),
            self.tertiary()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// CC
// ---------------------------------------------------------------------------------------------

/// Controller Configuration (CC, offset 0x14). Built with the `with_` methods.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cc(u32);

/// CC.SHN: shutdown notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// No notification.
    None,
    /// Normal shutdown.
    Normal,
    /// Abrupt shutdown.
    Abrupt,
}

impl Cc {
    /// A CC value from its raw bits (every 32-bit value is representable).
    pub const fn from_raw(raw: u32) -> Self {
        Cc(raw)
    }
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// EN: enable (bit 0).
    pub const fn en(self) -> bool {
        self.0 & 1 == 1
    }
    /// CSS: I/O command set selected (bits 6:4).
    pub const fn css(self) -> u8 {
        bits(self.0 as u64, 4, 6) as u8
    }
    /// MPS: memory page size exponent (bits 10:7); the page size is `2^(12 + MPS)`.
    pub const fn mps(self) -> u8 {
        bits(self.0 as u64, 7, 10) as u8
    }
    /// Memory page size in bytes: the alignment of queues and PRP entries.
    pub const fn page_size(self) -> u64 {
        MIN_PAGE_SIZE << self.mps()
    }
    /// AMS: arbitration mechanism selected (bits 13:11).
    pub const fn ams(self) -> u8 {
        bits(self.0 as u64, 11, 13) as u8
    }
    /// SHN: shutdown notification (bits 15:14); the reserved value 3 reads as `Abrupt`.
    pub const fn shn(self) -> Shutdown {
        match bits(self.0 as u64, 14, 15) {
            0 => Shutdown::None,
            1 => Shutdown::Normal,
            _ => Shutdown::Abrupt,
        }
    }
    /// IOSQES: I/O submission queue entry size exponent (bits 19:16).
    pub const fn iosqes(self) -> u8 {
        bits(self.0 as u64, 16, 19) as u8
    }
    /// IOCQES: I/O completion queue entry size exponent (bits 23:20).
    pub const fn iocqes(self) -> u8 {
        bits(self.0 as u64, 20, 23) as u8
    }

    const fn set(self, lo: u32, width: u32, v: u32) -> Self {
        let mask = ((1u32 << width) - 1) << lo;
        Cc((self.0 & !mask) | ((v << lo) & mask))
    }

    /// Sets EN.
    pub const fn with_en(self, en: bool) -> Self {
        self.set(0, 1, en as u32)
    }
    /// Sets CSS (3 bits).
    pub fn with_css(self, css: u8) -> Result<Self> {
        if css > 7 {
            return Err(Error::InvalidArgument("CC.CSS is a 3-bit field"));
        }
        Ok(self.set(4, 3, css as u32))
    }
    /// Sets MPS from a page size in bytes (a power of two from 4 KiB to 128 MiB). Check it
    /// against [`Cap::mpsmin_bytes`]/[`Cap::mpsmax_bytes`] with [`Cc::check_against`].
    pub fn with_page_size(self, bytes: u64) -> Result<Self> {
        if !bytes.is_power_of_two() || !(MIN_PAGE_SIZE..=MIN_PAGE_SIZE << 15).contains(&bytes) {
            return Err(Error::InvalidArgument(
                "page size must be a power of two from 4 KiB to 128 MiB",
            ));
        }
        Ok(self.set(7, 4, bytes.trailing_zeros() - 12))
    }
    /// Sets AMS (3 bits).
    pub fn with_ams(self, ams: u8) -> Result<Self> {
        if ams > 7 {
            return Err(Error::InvalidArgument("CC.AMS is a 3-bit field"));
        }
        Ok(self.set(11, 3, ams as u32))
    }
    /// Sets SHN.
    pub const fn with_shn(self, shn: Shutdown) -> Self {
        self.set(
            14,
            2,
            match shn {
                Shutdown::None => 0,
                Shutdown::Normal => 1,
                Shutdown::Abrupt => 2,
            },
        )
    }
    /// Sets IOSQES and IOCQES from entry sizes in bytes (powers of two, at most 32 KiB). The
    /// standard NVM command set uses 64 and 16.
    pub fn with_queue_entry_sizes(self, sq: usize, cq: usize) -> Result<Self> {
        if !sq.is_power_of_two() || !cq.is_power_of_two() || sq > 1 << 15 || cq > 1 << 15 {
            return Err(Error::InvalidArgument(
                "queue entry sizes must be powers of two up to 32 KiB",
            ));
        }
        Ok(self
            .set(16, 4, sq.trailing_zeros())
            .set(20, 4, cq.trailing_zeros()))
    }
    /// Checks this configuration against the controller's capabilities: the page size must lie
    /// in `[MPSMIN, MPSMAX]` and the command set must be supported.
    pub fn check_against(self, cap: Cap) -> Result<()> {
        if self.mps() < cap.mpsmin() || self.mps() > cap.mpsmax() {
            return Err(Error::Unsupported {
                what: "this memory page size (CC.MPS outside CAP.MPSMIN..=MPSMAX)",
            });
        }
        let css_ok = match self.css() {
            0 => cap.css() & 1 != 0,
            6 => cap.css() & (1 << 6) != 0,
            7 => cap.css() & (1 << 7) != 0,
            _ => false,
        };
        if !css_ok {
            return Err(Error::Unsupported {
                what: "this I/O command set (CC.CSS not in CAP.CSS)",
            });
        }
        Ok(())
    }
}

impl fmt::Debug for Cc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cc")
            .field("raw", &format_args!("{:#x}", self.0))
            .field("en", &self.en())
            .field("css", &self.css())
            .field("page_size", &self.page_size())
            .field("shn", &self.shn())
            .field("iosqes", &self.iosqes())
            .field("iocqes", &self.iocqes())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// CSTS
// ---------------------------------------------------------------------------------------------

/// CSTS.SHST: shutdown status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShutdownStatus {
    /// Normal operation.
    Normal,
    /// Shutdown processing in progress.
    Occurring,
    /// Shutdown complete.
    Complete,
}

/// Controller Status (CSTS, offset 0x1C).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Csts(u32);

impl Csts {
    /// Decodes a raw CSTS value: all-ones is [`Error::DeviceGone`]; the reserved SHST value 3
    /// is [`Error::BadRegister`].
    pub fn decode(raw: u32) -> Result<Self> {
        if raw == u32::MAX {
            return Err(Error::DeviceGone {
                reg: "CSTS",
                value: raw as u64,
            });
        }
        if bits(raw as u64, 2, 3) == 3 {
            return Err(bad("CSTS", raw as u64, "SHST has the reserved value 3"));
        }
        Ok(Csts(raw))
    }
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// RDY: ready (bit 0).
    pub const fn rdy(self) -> bool {
        self.0 & 1 == 1
    }
    /// CFS: controller fatal status (bit 1).
    pub const fn cfs(self) -> bool {
        bit(self.0 as u64, 1)
    }
    /// SHST: shutdown status (bits 3:2).
    pub const fn shst(self) -> ShutdownStatus {
        match bits(self.0 as u64, 2, 3) {
            0 => ShutdownStatus::Normal,
            1 => ShutdownStatus::Occurring,
            _ => ShutdownStatus::Complete,
        }
    }
    /// NSSRO: NVM subsystem reset occurred (bit 4).
    pub const fn nssro(self) -> bool {
        bit(self.0 as u64, 4)
    }
    /// PP: processing paused (bit 5).
    pub const fn pp(self) -> bool {
        bit(self.0 as u64, 5)
    }
}

impl fmt::Debug for Csts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Csts")
            .field("rdy", &self.rdy())
            .field("cfs", &self.cfs())
            .field("shst", &self.shst())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// AQA, ASQ, ACQ
// ---------------------------------------------------------------------------------------------

/// Admin Queue Attributes (AQA, offset 0x24): admin queue sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aqa(u32);

impl Aqa {
    /// Admin queues of `sq_entries` and `cq_entries` entries (each 2..=4096).
    pub fn new(sq_entries: u16, cq_entries: u16) -> Result<Self> {
        let ok = |n: u16| (2..=4096).contains(&n);
        if !ok(sq_entries) || !ok(cq_entries) {
            return Err(Error::InvalidArgument(
                "admin queues hold 2 to 4096 entries",
            ));
        }
        Ok(Aqa(
            (sq_entries as u32 - 1) | ((cq_entries as u32 - 1) << 16)
        ))
    }
    /// A value from raw bits (reserved bits are kept).
    pub const fn from_raw(raw: u32) -> Self {
        Aqa(raw)
    }
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// Admin submission queue entries (ASQS + 1).
    pub const fn sq_entries(self) -> u16 {
        (self.0 & 0xfff) as u16 + 1
    }
    /// Admin completion queue entries (ACQS + 1).
    pub const fn cq_entries(self) -> u16 {
        ((self.0 >> 16) & 0xfff) as u16 + 1
    }
}

/// An admin queue base address (ASQ at 0x28, ACQ at 0x30): bits 63:12, page aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueBase(u64);

impl QueueBase {
    /// A base address: must be 4 KiB aligned (the low 12 bits are reserved); the controller
    /// also requires alignment to CC's page size, which [`QueueBase::check_page`] checks.
    pub fn new(addr: u64) -> Result<Self> {
        if addr % MIN_PAGE_SIZE != 0 {
            return Err(Error::InvalidArgument(
                "admin queue base address must be 4 KiB aligned",
            ));
        }
        Ok(QueueBase(addr))
    }
    /// Decodes a raw register value: reserved low bits set is [`Error::BadRegister`].
    pub fn decode(reg: &'static str, raw: u64) -> Result<Self> {
        if raw % MIN_PAGE_SIZE != 0 {
            return Err(bad(reg, raw, "reserved bits 11:0 are set"));
        }
        Ok(QueueBase(raw))
    }
    /// The bus address.
    pub const fn addr(self) -> u64 {
        self.0
    }
    /// Checks alignment to the controller page size of `cc`.
    pub fn check_page(self, cc: Cc) -> Result<()> {
        if self.0 % cc.page_size() != 0 {
            return Err(Error::InvalidArgument(
                "queue base address must be aligned to the controller page size (CC.MPS)",
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// CMBLOC, CMBSZ, CMBMSC, CMBSTS
// ---------------------------------------------------------------------------------------------

/// Controller Memory Buffer Location (CMBLOC, offset 0x38).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cmbloc(u32);

impl Cmbloc {
    /// A CMBLOC value from raw bits (decoding needs CMBSZ too: see
    /// [`Cmbloc::offset_bytes`]; the BIR is checked by [`Cmbloc::bir_checked`]).
    pub const fn from_raw(raw: u32) -> Self {
        Cmbloc(raw)
    }
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// BIR: base indicator register (bits 2:0): which BAR holds the CMB.
    pub const fn bir(self) -> u8 {
        (self.0 & 7) as u8
    }
    /// The BIR as a BAR index: 0 (BAR0/1, above the registers) or 2 to 5. The values 1, 6 and 7
    /// are reserved ([`Error::BadRegister`]).
    pub fn bir_checked(self) -> Result<u8> {
        match self.bir() {
            0 | 2..=5 => Ok(self.bir()),
            _ => Err(bad("CMBLOC", self.0 as u64, "BIR has a reserved value")),
        }
    }
    /// CQMMS: CMB queue mixed memory support (bit 3).
    pub const fn cqmms(self) -> bool {
        bit(self.0 as u64, 3)
    }
    /// CQPDS: CMB queue physically discontiguous support (bit 4).
    pub const fn cqpds(self) -> bool {
        bit(self.0 as u64, 4)
    }
    /// CDPMLS: CMB data pointer mixed locations support (bit 5).
    pub const fn cdpmls(self) -> bool {
        bit(self.0 as u64, 5)
    }
    /// CDPCILS: CMB data pointer and command independent locations support (bit 6).
    pub const fn cdpcils(self) -> bool {
        bit(self.0 as u64, 6)
    }
    /// CDMMMS: CMB data metadata mixed memory support (bit 7).
    pub const fn cdmmms(self) -> bool {
        bit(self.0 as u64, 7)
    }
    /// CQDA: CMB queue dword alignment (bit 8).
    pub const fn cqda(self) -> bool {
        bit(self.0 as u64, 8)
    }
    /// OFST: offset of the CMB in the BAR, in CMBSZ.SZU units (bits 31:12).
    pub const fn ofst(self) -> u32 {
        self.0 >> 12
    }
    /// Offset of the CMB in its BAR in bytes: `OFST × unit(CMBSZ.SZU)`.
    pub fn offset_bytes(self, sz: Cmbsz) -> Result<u64> {
        let unit = sz.unit_bytes()?;
        (self.ofst() as u64).checked_mul(unit).ok_or(bad(
            "CMBLOC",
            self.0 as u64,
            "offset overflows 64 bits",
        ))
    }
}

impl fmt::Debug for Cmbloc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cmbloc")
            .field("raw", &format_args!("{:#x}", self.0))
            .field("bir", &self.bir())
            .field("ofst", &self.ofst())
            .finish()
    }
}

/// Controller Memory Buffer Size (CMBSZ, offset 0x3C). Zero means no CMB.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cmbsz(u32);

impl Cmbsz {
    /// A CMBSZ value from raw bits (every field is checked by the accessor that needs it).
    pub const fn from_raw(raw: u32) -> Self {
        Cmbsz(raw)
    }
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// Whether the register says there is no CMB (reads zero).
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
    /// SQS: submission queues may live in the CMB (bit 0).
    pub const fn sqs(self) -> bool {
        bit(self.0 as u64, 0)
    }
    /// CQS: completion queues may live in the CMB (bit 1).
    pub const fn cqs(self) -> bool {
        bit(self.0 as u64, 1)
    }
    /// LISTS: PRP and SGL lists may live in the CMB (bit 2).
    pub const fn lists(self) -> bool {
        bit(self.0 as u64, 2)
    }
    /// RDS: read data (controller-to-host transfers) may target the CMB (bit 3).
    pub const fn rds(self) -> bool {
        bit(self.0 as u64, 3)
    }
    /// WDS: write data (host-to-controller transfers) may come from the CMB (bit 4).
    pub const fn wds(self) -> bool {
        bit(self.0 as u64, 4)
    }
    /// SZU: size units (bits 11:8), raw.
    pub const fn szu(self) -> u8 {
        bits(self.0 as u64, 8, 11) as u8
    }
    /// SZ: size in SZU units (bits 31:12), raw.
    pub const fn sz(self) -> u32 {
        self.0 >> 12
    }
    /// The size unit in bytes: `4 KiB << (4 × SZU)`, for SZU 0 (4 KiB) to 6 (64 GiB); 7 to 15
    /// are reserved ([`Error::BadRegister`]).
    pub fn unit_bytes(self) -> Result<u64> {
        match self.szu() {
            s @ 0..=6 => Ok(4096u64 << (4 * s as u32)),
            _ => Err(bad("CMBSZ", self.0 as u64, "SZU has a reserved value")),
        }
    }
    /// The CMB size in bytes: `SZ × unit(SZU)`. A reserved SZU is [`Error::BadRegister`].
    pub fn size_bytes(self) -> Result<u64> {
        let unit = self.unit_bytes()?;
        (self.sz() as u64).checked_mul(unit).ok_or(bad(
            "CMBSZ",
            self.0 as u64,
            "size overflows 64 bits",
        ))
    }
}

impl fmt::Debug for Cmbsz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cmbsz")
            .field("raw", &format_args!("{:#x}", self.0))
            .field("sqs", &self.sqs())
            .field("cqs", &self.cqs())
            .field("lists", &self.lists())
            .field("rds", &self.rds())
            .field("wds", &self.wds())
            .field("szu", &self.szu())
            .field("sz", &self.sz())
            .finish()
    }
}

/// Controller Memory Buffer Memory Space Control (CMBMSC, offset 0x50, NVMe 1.4+).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cmbmsc(u64);

impl Cmbmsc {
    /// CRE: capabilities registers enabled (bit 0).
    pub const CRE: u64 = 1 << 0;
    /// CMSE: controller memory space enable (bit 1).
    pub const CMSE: u64 = 1 << 1;

    /// A CMBMSC value. `cba` (the CMB's bus address) must be 4 KiB aligned.
    pub fn new(cre: bool, cmse: bool, cba: u64) -> Result<Self> {
        if cba % MIN_PAGE_SIZE != 0 {
            return Err(Error::InvalidArgument("CMBMSC.CBA must be 4 KiB aligned"));
        }
        Ok(Cmbmsc(
            cba | if cre { Self::CRE } else { 0 } | if cmse { Self::CMSE } else { 0 },
        ))
    }
    /// Decodes a raw CMBMSC: all-ones is [`Error::DeviceGone`] (or a pre-1.4 controller, which
    /// must not be asked), reserved bits 11:2 set is [`Error::BadRegister`].
    pub fn decode(raw: u64) -> Result<Self> {
        if raw == u64::MAX {
            return Err(Error::DeviceGone {
                reg: "CMBMSC",
                value: raw,
            });
        }
        if raw & 0xffc != 0 {
            return Err(bad("CMBMSC", raw, "reserved bits 11:2 are set"));
        }
        Ok(Cmbmsc(raw))
    }
    /// The raw value.
    pub const fn raw(self) -> u64 {
        self.0
    }
    /// CRE (bit 0).
    pub const fn cre(self) -> bool {
        bit(self.0, 0)
    }
    /// CMSE (bit 1).
    pub const fn cmse(self) -> bool {
        bit(self.0, 1)
    }
    /// CBA: controller base address of the CMB (bits 63:12).
    pub const fn cba(self) -> u64 {
        self.0 & !0xfff
    }
}

impl fmt::Debug for Cmbmsc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cmbmsc")
            .field("cre", &self.cre())
            .field("cmse", &self.cmse())
            .field("cba", &format_args!("{:#x}", self.cba()))
            .finish()
    }
}

/// Controller Memory Buffer Status (CMBSTS, offset 0x58, NVMe 1.4+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cmbsts(u32);

impl Cmbsts {
    /// A CMBSTS value from raw bits.
    pub const fn from_raw(raw: u32) -> Self {
        Cmbsts(raw)
    }
    /// The raw value.
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// CBAI: controller base address invalid (bit 0): the CBA written to CMBMSC was refused.
    pub const fn cbai(self) -> bool {
        self.0 & 1 == 1
    }
}

// ---------------------------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------------------------

/// Typed access to the controller registers through a handle on BAR0.
///
/// Register reads and writes are single 32-bit accesses with the handle's strategy (use the
/// default [`Conservative`](crate::Strategy::Conservative) for registers: `readl`/`writel`);
/// 64-bit registers are two 32-bit accesses in the order the [module docs](self) give.
#[derive(Debug, Clone, Copy)]
pub struct ControllerRegs<'a, B: Backend> {
    bar0: IoMem<'a, [u8], B>,
}

impl<'a, B: Backend> ControllerRegs<'a, B> {
    /// Wraps a handle on BAR0. It must cover at least the register block (0x70 bytes); doorbell
    /// accesses are checked against its length when they are made.
    pub fn new(bar0: IoMem<'a, [u8], B>) -> Result<Self> {
        bar0.subslice(..core::mem::size_of::<Registers>())?;
        Ok(ControllerRegs { bar0 })
    }

    /// The BAR0 handle.
    pub fn bar0(&self) -> IoMem<'a, [u8], B> {
        self.bar0
    }

    /// Reads a 32-bit register.
    pub fn read32(&self, off: usize) -> Result<u32> {
        self.bar0.try_read32(off)
    }

    /// Writes a 32-bit register.
    pub fn write32(&self, off: usize, v: u32) -> Result<()> {
        self.bar0.try_write32(off, v)
    }

    /// Reads a 64-bit register as two 32-bit reads, low dword first.
    pub fn read64_lo_hi(&self, off: usize) -> Result<u64> {
        let lo = self.bar0.try_read32(off)?;
        let hi = self.bar0.try_read32(off + 4)?;
        Ok(((hi as u64) << 32) | lo as u64)
    }

    /// Writes a 64-bit register as two 32-bit writes, high dword first (the low write is the
    /// one controllers act on).
    pub fn write64_hi_lo(&self, off: usize, v: u64) -> Result<()> {
        self.bar0.try_write32(off + 4, (v >> 32) as u32)?;
        self.bar0.try_write32(off, v as u32)
    }

    /// CAP, decoded.
    pub fn cap(&self) -> Result<Cap> {
        Cap::decode(self.read64_lo_hi(offsets::CAP)?)
    }
    /// VS, decoded.
    pub fn vs(&self) -> Result<Vs> {
        Vs::decode(self.read32(offsets::VS)?)
    }
    /// CC.
    pub fn cc(&self) -> Result<Cc> {
        let raw = self.read32(offsets::CC)?;
        if raw == u32::MAX {
            return Err(Error::DeviceGone {
                reg: "CC",
                value: raw as u64,
            });
        }
        Ok(Cc(raw))
    }
    /// Writes CC.
    pub fn set_cc(&self, cc: Cc) -> Result<()> {
        self.write32(offsets::CC, cc.raw())
    }
    /// CSTS, decoded.
    pub fn csts(&self) -> Result<Csts> {
        Csts::decode(self.read32(offsets::CSTS)?)
    }
    /// AQA.
    pub fn aqa(&self) -> Result<Aqa> {
        Ok(Aqa(self.read32(offsets::AQA)?))
    }
    /// Writes AQA.
    pub fn set_aqa(&self, aqa: Aqa) -> Result<()> {
        self.write32(offsets::AQA, aqa.raw())
    }
    /// ASQ, decoded.
    pub fn asq(&self) -> Result<QueueBase> {
        QueueBase::decode("ASQ", self.read64_lo_hi(offsets::ASQ)?)
    }
    /// Writes ASQ.
    pub fn set_asq(&self, base: QueueBase) -> Result<()> {
        self.write64_hi_lo(offsets::ASQ, base.addr())
    }
    /// ACQ, decoded.
    pub fn acq(&self) -> Result<QueueBase> {
        QueueBase::decode("ACQ", self.read64_lo_hi(offsets::ACQ)?)
    }
    /// Writes ACQ.
    pub fn set_acq(&self, base: QueueBase) -> Result<()> {
        self.write64_hi_lo(offsets::ACQ, base.addr())
    }
    /// CMBLOC (raw; see [`Cmbloc`]). All-ones is [`Error::DeviceGone`].
    pub fn cmbloc(&self) -> Result<Cmbloc> {
        let raw = self.read32(offsets::CMBLOC)?;
        if raw == u32::MAX {
            return Err(Error::DeviceGone {
                reg: "CMBLOC",
                value: raw as u64,
            });
        }
        Ok(Cmbloc(raw))
    }
    /// CMBSZ (raw; see [`Cmbsz`]). All-ones is [`Error::DeviceGone`].
    pub fn cmbsz(&self) -> Result<Cmbsz> {
        let raw = self.read32(offsets::CMBSZ)?;
        if raw == u32::MAX {
            return Err(Error::DeviceGone {
                reg: "CMBSZ",
                value: raw as u64,
            });
        }
        Ok(Cmbsz(raw))
    }
    /// CMBMSC, decoded. Only meaningful on NVMe 1.4+ controllers with CAP.CMBS: older ones may
    /// read all-ones here, which decodes as [`Error::DeviceGone`].
    pub fn cmbmsc(&self) -> Result<Cmbmsc> {
        Cmbmsc::decode(self.read64_lo_hi(offsets::CMBMSC)?)
    }
    /// Writes CMBMSC, high dword first.
    pub fn set_cmbmsc(&self, v: Cmbmsc) -> Result<()> {
        self.write64_hi_lo(offsets::CMBMSC, v.raw())
    }
    /// Writes only the low dword of CMBMSC (CRE, CMSE and CBA bits 31:12).
    pub fn set_cmbmsc_lo(&self, v: Cmbmsc) -> Result<()> {
        self.write32(offsets::CMBMSC, v.raw() as u32)
    }
    /// CMBSTS. All-ones is [`Error::DeviceGone`].
    pub fn cmbsts(&self) -> Result<Cmbsts> {
        let raw = self.read32(offsets::CMBSTS)?;
        if raw == u32::MAX {
            return Err(Error::DeviceGone {
                reg: "CMBSTS",
                value: raw as u64,
            });
        }
        Ok(Cmbsts(raw))
    }

    /// Writes submission queue `qid`'s tail doorbell as a doorbell
    /// ([`IoMem::try_doorbell32`]): earlier stores are published first.
    pub fn ring_sq_tail(&self, cap: Cap, qid: u16, tail: u16) -> Result<()> {
        self.bar0
            .try_doorbell32(cap.sq_tail_doorbell(qid)?, tail as u32)
    }

    /// Writes completion queue `qid`'s head doorbell.
    pub fn ring_cq_head(&self, cap: Cap, qid: u16, head: u16) -> Result<()> {
        self.bar0
            .try_doorbell32(cap.cq_head_doorbell(qid)?, head as u32)
    }
}
