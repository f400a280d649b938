//! What the specification requires of register values beyond bit extraction: the checks a
//! decoded value passes, sizes and offsets in bytes, and builders from meaningful quantities.

use super::map::offsets;
use super::{
    Aqa, Cap, Cc, Cmbloc, Cmbmsc, Cmbsz, Csts, Nssr, Pmrcap, Pmrebs, Pmrmsc, QueueBase, Vs,
    MIN_PAGE_SIZE,
};
use crate::nvme::{invalid, Error, Result};

type Check = core::result::Result<(), &'static str>;

fn bad(reg: &'static str, value: u64, why: &'static str) -> Error {
    Error::BadRegister { reg, value, why }
}

// ---------------------------------------------------------------------------------------------
// Field enums
// ---------------------------------------------------------------------------------------------

/// CC.SHN: shutdown notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Shutdown {
    /// No notification.
    None = 0,
    /// Normal shutdown.
    Normal = 1,
    /// Abrupt shutdown.
    Abrupt = 2,
}

impl Shutdown {
    /// How the reserved encoding 3 reads.
    pub const RESERVED: Self = Shutdown::Abrupt;

    /// The notification a field value encodes; `None` for the reserved value.
    pub const fn from_field(v: u8) -> Option<Self> {
        match v {
            0 => Some(Shutdown::None),
            1 => Some(Shutdown::Normal),
            2 => Some(Shutdown::Abrupt),
            _ => None,
        }
    }
}

/// CSTS.SHST: shutdown status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ShutdownStatus {
    /// Normal operation.
    Normal = 0,
    /// Shutdown processing in progress.
    Occurring = 1,
    /// Shutdown complete.
    Complete = 2,
}

impl ShutdownStatus {
    /// How the reserved encoding 3 reads (a decoded CSTS never has it).
    pub const RESERVED: Self = ShutdownStatus::Complete;

    /// The status a field value encodes; `None` for the reserved value.
    pub const fn from_field(v: u8) -> Option<Self> {
        match v {
            0 => Some(ShutdownStatus::Normal),
            1 => Some(ShutdownStatus::Occurring),
            2 => Some(ShutdownStatus::Complete),
            _ => None,
        }
    }
}

/// PMRSTS.HSTS: the health of the Persistent Memory Region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PmrHealth {
    /// Normal operation.
    Normal = 0,
    /// Restore error: the contents were not restored after the last power cycle.
    RestoreError = 1,
    /// Read Only (the specification's name; a distinct one here so that rustc's diagnostics
    /// keep naming `reg::ReadOnly` briefly): writes to the PMR are not persistent (or not
    /// accepted).
    ReadOnlyMedia = 2,
    /// Unreliable: reads and writes may fail or return wrong data.
    Unreliable = 3,
}

impl PmrHealth {
    /// How the reserved encodings 4 to 7 read (a decoded PMRSTS never has them).
    pub const RESERVED: Self = PmrHealth::Unreliable;

    /// The health a field value encodes; `None` for the reserved values.
    pub const fn from_field(v: u8) -> Option<Self> {
        match v {
            0 => Some(PmrHealth::Normal),
            1 => Some(PmrHealth::RestoreError),
            2 => Some(PmrHealth::ReadOnlyMedia),
            3 => Some(PmrHealth::Unreliable),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CAP
// ---------------------------------------------------------------------------------------------

impl Cap {
    /// What a decoded CAP satisfies beyond its bits.
    pub(super) fn check(self) -> Check {
        if self.mqes() == 0 {
            return Err("MQES is 0 (queues must hold at least 2 entries)");
        }
        if self.css() == 0 {
            return Err("CSS names no command set");
        }
        if self.mpsmin() > self.mpsmax() {
            return Err("MPSMIN is larger than MPSMAX");
        }
        Ok(())
    }

    /// Maximum entries of an I/O queue (MQES + 1).
    pub const fn max_queue_entries(self) -> u32 {
        // u16 to u32: widening (`From` is not const).
        self.mqes() as u32 + 1
    }

    /// Worst-case time for CSTS.RDY to follow CC.EN, in milliseconds.
    pub const fn timeout_ms(self) -> u64 {
        // u8 to u64: widening.
        self.to() as u64 * 500
    }

    /// Doorbell stride in bytes (`4 << DSTRD`).
    pub const fn doorbell_stride(self) -> usize {
        4 << self.dstrd()
    }

    /// Minimum memory page size in bytes.
    pub const fn mpsmin_bytes(self) -> u64 {
        MIN_PAGE_SIZE << self.mpsmin()
    }

    /// Maximum memory page size in bytes.
    pub const fn mpsmax_bytes(self) -> u64 {
        MIN_PAGE_SIZE << self.mpsmax()
    }

    /// Byte offset in BAR0 of submission queue `qid`'s tail doorbell:
    /// `0x1000 + (2·qid) · (4 << DSTRD)`. An offset that does not fit in `usize` is an error.
    pub fn sq_tail_doorbell(self, qid: u16) -> Result<usize> {
        self.doorbell(2 * usize::from(qid))
    }

    /// Byte offset in BAR0 of completion queue `qid`'s head doorbell:
    /// `0x1000 + (2·qid + 1) · (4 << DSTRD)`.
    pub fn cq_head_doorbell(self, qid: u16) -> Result<usize> {
        self.doorbell(2 * usize::from(qid) + 1)
    }

    fn doorbell(self, index: usize) -> Result<usize> {
        index
            .checked_mul(self.doorbell_stride())
            .and_then(|o| o.checked_add(offsets::DOORBELLS))
            .ok_or(Error::Core(crate::Error::Overflow {
                offset: offsets::DOORBELLS,
                len: index,
            }))
    }
}

// ---------------------------------------------------------------------------------------------
// VS
// ---------------------------------------------------------------------------------------------

impl Vs {
    /// NVMe 1.4: the first version with CMBMSC/CMBSTS and CAP.CMBS.
    pub const V1_4: Vs = Vs::new(1, 4, 0);

    /// A version from its parts.
    pub const fn new(major: u16, minor: u8, tertiary: u8) -> Self {
        Vs(0)
            .with_major(major)
            .with_minor(minor)
            .with_tertiary(tertiary)
    }

    pub(super) fn check(self) -> Check {
        if self.major() == 0 {
            return Err("major version is 0");
        }
        Ok(())
    }

    /// Whether this version has the NVMe 1.4 CMB controls (CMBMSC, CMBSTS, CAP.CMBS).
    pub fn has_cmbmsc(self) -> bool {
        self >= Self::V1_4
    }
}

// ---------------------------------------------------------------------------------------------
// CC
// ---------------------------------------------------------------------------------------------

impl Cc {
    /// Memory page size in bytes: the alignment of queues and PRP entries.
    pub const fn page_size(self) -> u64 {
        MIN_PAGE_SIZE << self.mps()
    }

    /// Sets MPS from a page size in bytes (a power of two from 4 KiB to 128 MiB). Check it
    /// against [`Cap::mpsmin_bytes`]/[`Cap::mpsmax_bytes`] with [`Cc::check_against`].
    pub fn with_page_size(self, bytes: u64) -> Result<Self> {
        if !bytes.is_power_of_two() || !(MIN_PAGE_SIZE..=MIN_PAGE_SIZE << 15).contains(&bytes) {
            return Err(invalid(
                "page size must be a power of two from 4 KiB to 128 MiB",
            ));
        }
        // CAST: `bytes` is 2^12 to 2^27 (checked above), so the exponent is 0 to 15.
        self.with_mps((bytes.trailing_zeros() - 12) as u8)
    }

    /// Sets IOSQES and IOCQES from entry sizes in bytes (powers of two, at most 32 KiB). The
    /// standard NVM command set uses 64 and 16.
    pub fn with_queue_entry_sizes(self, sq: usize, cq: usize) -> Result<Self> {
        if !sq.is_power_of_two() || !cq.is_power_of_two() || sq > 1 << 15 || cq > 1 << 15 {
            return Err(invalid(
                "queue entry sizes must be powers of two up to 32 KiB",
            ));
        }
        // CAST: powers of two up to 2^15 (checked above): exponents 0 to 15.
        self.with_iosqes(sq.trailing_zeros() as u8)?
            .with_iocqes(cq.trailing_zeros() as u8)
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

impl Nssr {
    /// The value that resets the NVM subsystem: "NVMe" in ASCII.
    pub const RESET: Nssr = Nssr(0x4E56_4D65);
}

// ---------------------------------------------------------------------------------------------
// CSTS, AQA, ASQ/ACQ
// ---------------------------------------------------------------------------------------------

use super::ShutdownStatus as Shst;

impl Csts {
    /// Whether the controller is shut down (SHST = complete).
    pub const fn is_shut_down(self) -> bool {
        matches!(self.shst(), Shst::Complete)
    }
}

impl Aqa {
    /// Admin queues of `sq_entries` and `cq_entries` entries (each 2..=4096).
    pub fn new(sq_entries: u16, cq_entries: u16) -> Result<Self> {
        let ok = |n: u16| (2..=4096).contains(&n);
        if !ok(sq_entries) || !ok(cq_entries) {
            return Err(invalid("admin queues hold 2 to 4096 entries"));
        }
        Aqa(0).with_asqs(sq_entries - 1)?.with_acqs(cq_entries - 1)
    }
    /// Admin submission queue entries (ASQS + 1).
    pub const fn sq_entries(self) -> u16 {
        self.asqs() + 1
    }
    /// Admin completion queue entries (ACQS + 1).
    pub const fn cq_entries(self) -> u16 {
        self.acqs() + 1
    }
}

impl QueueBase {
    /// The base of a queue at `addr` (from the memory that holds the queue: a
    /// [`Lease`](crate::dma::Lease) on host memory, a CMB buffer's
    /// [`dma_addr`](crate::p2p::P2pBuf::dma_addr)): must be 4 KiB aligned (the low 12 bits are
    /// reserved); the controller also requires alignment to CC's page size, which
    /// [`QueueBase::check_page`] checks.
    pub fn new(addr: crate::dma::DmaAddr) -> Result<Self> {
        QueueBase(0).with_addr(addr.get())
    }

    /// Decodes a raw value read from `reg` (`"ASQ"` or `"ACQ"`): all-ones is
    /// [`Error::DeviceGone`], reserved low bits set is [`Error::BadRegister`].
    pub fn decode(reg: &'static str, raw: u64) -> Result<Self> {
        Self::decode_as(reg, super::Gone::Ones, raw)
    }

    pub(super) fn check(self) -> Check {
        if self.raw() & Self::RESERVED != 0 {
            return Err("reserved bits below the page-aligned address are set");
        }
        Ok(())
    }

    /// Checks alignment to the controller page size of `cc`.
    pub fn check_page(self, cc: Cc) -> Result<()> {
        if self.addr() % cc.page_size() != 0 {
            return Err(invalid(
                "queue base address must be aligned to the controller page size (CC.MPS)",
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// CMBLOC, CMBSZ, CMBMSC
// ---------------------------------------------------------------------------------------------

impl Cmbloc {
    /// The BIR as a BAR index: 0 (BAR0/1, above the registers) or 2 to 5. The values 1, 6 and 7
    /// are reserved ([`Error::BadRegister`]).
    pub fn bir_checked(self) -> Result<u8> {
        match self.bir() {
            0 | 2..=5 => Ok(self.bir()),
            _ => Err(bad("CMBLOC", self.raw().into(), "BIR has a reserved value")),
        }
    }

    /// Offset of the CMB in its BAR in bytes: `OFST × unit(CMBSZ.SZU)`.
    pub fn offset_bytes(self, sz: Cmbsz) -> Result<u64> {
        let unit = sz.unit_bytes()?;
        u64::from(self.ofst()).checked_mul(unit).ok_or(bad(
            "CMBLOC",
            self.raw().into(),
            "offset overflows 64 bits",
        ))
    }
}

impl Cmbsz {
    /// Whether the register says there is no CMB (reads zero).
    pub const fn is_zero(self) -> bool {
        self.raw() == 0
    }

    /// The size unit in bytes: `4 KiB << (4 × SZU)`, for SZU 0 (4 KiB) to 6 (64 GiB); 7 to 15
    /// are reserved ([`Error::BadRegister`]).
    pub fn unit_bytes(self) -> Result<u64> {
        match self.szu() {
            s @ 0..=6 => Ok(4096u64 << (4 * u32::from(s))),
            _ => Err(bad("CMBSZ", self.raw().into(), "SZU has a reserved value")),
        }
    }

    /// The CMB size in bytes: `SZ × unit(SZU)`. A reserved SZU is [`Error::BadRegister`].
    pub fn size_bytes(self) -> Result<u64> {
        let unit = self.unit_bytes()?;
        u64::from(self.sz()).checked_mul(unit).ok_or(bad(
            "CMBSZ",
            self.raw().into(),
            "size overflows 64 bits",
        ))
    }
}

impl Cmbmsc {
    /// A CMBMSC value. `cba` (the CMB's bus address) must be 4 KiB aligned.
    pub fn new(cre: bool, cmse: bool, cba: u64) -> Result<Self> {
        Cmbmsc(0).with_cre(cre).with_cmse(cmse).with_cba(cba)
    }

    pub(super) fn check(self) -> Check {
        if self.raw() & Self::RESERVED != 0 {
            return Err("reserved bits between CMSE and CBA are set");
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// PMRCAP, PMREBS, PMRMSC
// ---------------------------------------------------------------------------------------------

impl Pmrcap {
    /// PMRWBM bit 0 (CMR): a completed memory read of any PMR address makes earlier writes to
    /// the PMR persistent.
    pub const WBM_MEMORY_READ: u8 = 1 << 0;
    /// PMRWBM bit 1 (CPMRSTSR): a completed read of PMRSTS makes earlier writes to the PMR
    /// persistent.
    pub const WBM_PMRSTS_READ: u8 = 1 << 1;

    pub(super) fn check(self) -> Check {
        if self.pmrtu() > 1 {
            return Err("PMRTU has a reserved value");
        }
        if self.pmrwbm() & (Self::WBM_MEMORY_READ | Self::WBM_PMRSTS_READ) == 0 {
            return Err("PMRWBM names no write barrier mechanism (at least one is required)");
        }
        if (self.rds() || self.wds()) && !self.cmss() {
            return Err("RDS or WDS is set although CMSS is clear");
        }
        Ok(())
    }

    /// The BIR as a BAR index: 2 to 5; the values 0, 1, 6 and 7 are reserved
    /// ([`Error::BadRegister`]).
    pub fn bir_checked(self) -> Result<u8> {
        match self.bir() {
            2..=5 => Ok(self.bir()),
            _ => Err(bad("PMRCAP", self.raw().into(), "BIR has a reserved value")),
        }
    }

    /// One PMRTO unit in milliseconds: 500 ms (PMRTU 0) or a minute (PMRTU 1).
    pub const fn time_unit_ms(self) -> u64 {
        if self.pmrtu() == 0 {
            500
        } else {
            60_000
        }
    }

    /// PMRTO in milliseconds (0 if the controller gives no time).
    pub const fn timeout_ms(self) -> u64 {
        // u8 to u64: widening.
        self.pmrto() as u64 * self.time_unit_ms()
    }

    /// Whether a read of PMRSTS makes earlier PMR writes persistent (PMRWBM bit 1).
    pub const fn persists_on_pmrsts_read(self) -> bool {
        self.pmrwbm() & Self::WBM_PMRSTS_READ != 0
    }

    /// Whether a memory read of the PMR makes earlier PMR writes persistent (PMRWBM bit 0).
    pub const fn persists_on_memory_read(self) -> bool {
        self.pmrwbm() & Self::WBM_MEMORY_READ != 0
    }
}

impl Pmrebs {
    /// The elasticity buffer size in bytes: `PMRWBZ × unit(PMRSZU)` for PMRSZU 0 (bytes) to 3
    /// (GiB); 4 to 15 are reserved ([`Error::BadRegister`]).
    pub fn buffer_bytes(self) -> Result<u64> {
        let unit = match self.pmrszu() {
            u @ 0..=3 => 1u64 << (10 * u32::from(u)),
            _ => {
                return Err(bad(
                    "PMREBS",
                    self.raw().into(),
                    "PMRSZU has a reserved value",
                ))
            }
        };
        // At most 2^24 × 2^30: no overflow.
        Ok(u64::from(self.pmrwbz()) * unit)
    }
}

impl Pmrmsc {
    /// A PMRMSC value. `cba` (the PMR's bus address) must be 4 KiB aligned.
    pub fn new(cmse: bool, cba: u64) -> Result<Self> {
        Pmrmsc(0).with_cmse(cmse).with_cba(cba)
    }

    pub(super) fn check(self) -> Check {
        if self.raw() & Self::RESERVED != 0 {
            return Err("reserved bits below CBA are set");
        }
        Ok(())
    }
}
