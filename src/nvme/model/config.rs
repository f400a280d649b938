//! What the model controller is: its capabilities, its namespace and its CMB, checked once
//! when the model is made.

use std::time::Duration;

use crate::nvme::cmb::CmbScheme;
use crate::nvme::regs::offsets;
use crate::nvme::{invalid, Result};

/// The model controller's configuration: what CAP, VS, Identify and the namespace report.
///
/// The defaults are a small QEMU 7.2 controller: NVMe 1.4, 1024-entry queues, contiguous
/// queues required, 512-byte LBAs, 2048 of them, MDTS 5, 8 I/O queue pairs, no CMB, no PMR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// LBA data size in bytes: a power of two from 512 to 65536 (512 and 4096 are usual).
    pub lba_size: u32,
    /// Namespace size in LBAs (NSZE = NCAP = NUSE); at least 1.
    pub lba_count: u64,
    /// CAP.MQES: the largest queue, 0's based (at least 1).
    pub mqes: u16,
    /// CAP.CQR: queues must be physically contiguous (Create I/O CQ/SQ with PC = 0 is refused
    /// with Invalid Field in Command either way: the model keeps queues contiguous).
    pub cqr: bool,
    /// CAP.DSTRD: doorbell stride exponent (0 to 8).
    pub dstrd: u8,
    /// CAP.TO: worst-case time to ready, in 500 ms units.
    pub timeout: u8,
    /// Identify Controller MDTS: the largest transfer is `2^mdts` memory pages (CC.MPS); 0 is
    /// no limit.
    pub mdts: u8,
    /// I/O queue pairs the controller has: what Set Features Number of Queues grants at most
    /// (1 to 1024).
    pub max_io_queues: u16,
    /// VS: the version reported (major must not be 0).
    pub vs: u32,
    /// Time from CC.EN = 1 to CSTS.RDY = 1 (seen on a later BAR0 access or
    /// [`NvmeModel::advance`](super::NvmeModel::advance)).
    pub ready_delay: Duration,
    /// The Controller Memory Buffer, if the controller has one.
    pub cmb: Option<CmbConfig>,
    /// The Persistent Memory Region, if the controller has one (CAP.PMRS).
    pub pmr: Option<PmrConfig>,
    /// Bus address of BAR0 (the model refuses data pointers into it: Data Transfer Error).
    pub bar0_bus_addr: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            lba_size: 512,
            lba_count: 2048,
            mqes: 1023,
            cqr: true,
            dstrd: 0,
            timeout: 2,
            mdts: 5,
            max_io_queues: 8,
            vs: 0x0001_0400,
            ready_delay: Duration::ZERO,
            cmb: None,
            pmr: None,
            bar0_bus_addr: 0xfebf_0000,
        }
    }
}

/// The Controller Memory Buffer of the model: at offset 0 of its BAR, like QEMU's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmbConfig {
    /// Size in bytes: a non-zero multiple of 4 KiB, at most 1 GiB. CMBSZ reports it in MiB
    /// units when it is a multiple of 1 MiB (as QEMU does), else in 4 KiB units.
    pub size: u64,
    /// How it is controlled: [`CmbScheme::Legacy`] has CMBLOC/CMBSZ readable at once and the
    /// CMB always on at its BAR address; [`CmbScheme::Cmbmsc`] (NVMe 1.4+, CAP.CMBS) reads them
    /// as 0 until CMBMSC.CRE, and addresses count as CMB only while CMBMSC.CMSE is set and lie
    /// in `[CBA, CBA + size)`.
    pub scheme: CmbScheme,
    /// CMBSZ.SQS: submission queues may be created in the CMB.
    pub sqs: bool,
    /// CMBSZ.CQS: completion queues may be created in the CMB.
    pub cqs: bool,
    /// CMBSZ.LISTS: PRP lists may be in the CMB.
    pub lists: bool,
    /// CMBSZ.RDS: read data may target the CMB.
    pub rds: bool,
    /// CMBSZ.WDS: write data may come from the CMB.
    pub wds: bool,
    /// The BAR holding it (2 to 5; CMBLOC.BIR).
    pub bar: u8,
    /// The BAR's bus address (4 KiB aligned).
    pub bus_addr: u64,
}

impl CmbConfig {
    /// A CMB of `size` bytes under `scheme` with QEMU's capabilities (SQS, LISTS, RDS, WDS; no
    /// CQS) in BAR2 at bus address `0xfd00_0000` (where SeaBIOS puts it).
    pub const fn new(size: u64, scheme: CmbScheme) -> Self {
        CmbConfig {
            size,
            scheme,
            sqs: true,
            cqs: false,
            lists: true,
            rds: true,
            wds: true,
            bar: 2,
            bus_addr: 0xfd00_0000,
        }
    }

    /// The size of the BAR holding the CMB: the CMB rounded up to a power of two.
    pub(super) fn bar_size(&self) -> u64 {
        self.size.next_power_of_two()
    }

    /// CMBSZ as the controller reports it (once enabled).
    pub(super) fn cmbsz(&self) -> u32 {
        let (szu, sz) = if self.size % (1 << 20) == 0 {
            (2u32, self.size >> 20)
        } else {
            (0u32, self.size >> 12)
        };
        let flags = u32::from(self.sqs)
            | u32::from(self.cqs) << 1
            | u32::from(self.lists) << 2
            | u32::from(self.rds) << 3
            | u32::from(self.wds) << 4;
        // CAST: `sz` < 2^20 (checked in `ModelConfig::check`), so it fits bits 31:12.
        flags | szu << 8 | (sz as u32) << 12
    }

    /// CMBLOC as QEMU reports it (once enabled): BIR, CDPMLS and CDPCILS, offset 0.
    pub(super) fn cmbloc(&self) -> u32 {
        u32::from(self.bar) | 1 << 5 | 1 << 6
    }
}

/// The Persistent Memory Region of the model: the whole of its BAR, like QEMU's
/// (`-object memory-backend-file,…` with `-device nvme,…,pmrdev=…`).
///
/// PMRCTL.EN = 1 sets PMRSTS.NRDY until [`ready_delay`](Self::ready_delay) has passed (QEMU:
/// ready at once); EN = 0 sets NRDY and turns CMSE off. While EN = 0 the BAR reads 0 and
/// ignores writes (QEMU disables the memory region). Addresses count as the PMR only while
/// PMRMSC.CMSE is set and lie in `[CBA, CBA + size)`. A read of PMRSTS while the PMR is ready
/// and PMRWBM has bit 1 is a flush: the contents are what
/// [`NvmeModel::pmr_persisted`](super::NvmeModel::pmr_persisted) returns from then on (QEMU
/// msyncs the backing file). PMRWBM bit 0 is reported as configured, but a memory read of the
/// PMR flushes nothing in the model. PMREBS and PMRSWTP read 0, as QEMU's; the PMR is not
/// touched by a controller reset (CC.EN = 0), as the specification says of PMRCTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmrConfig {
    /// Size in bytes: a power of two from 4 KiB to 1 GiB (QEMU requires a power of two).
    pub size: u64,
    /// The BAR's bus address (aligned to its size).
    pub bus_addr: u64,
    /// The BAR (2 to 5; PMRCAP.BIR). QEMU: 4.
    pub bar: u8,
    /// PMRCAP.RDS.
    pub rds: bool,
    /// PMRCAP.WDS.
    pub wds: bool,
    /// PMRCAP.CMSS.
    pub cmss: bool,
    /// PMRCAP.PMRWBM (0 to 15). QEMU: 2 (a PMRSTS read flushes).
    pub pmrwbm: u8,
    /// PMRCAP.PMRTO, in 500 ms units. QEMU: 0.
    pub pmrto: u8,
    /// Time from PMRCTL.EN = 1 to PMRSTS.NRDY = 0; one past the clock's range never ends.
    pub ready_delay: Duration,
}

impl PmrConfig {
    /// A PMR of `size` bytes with QEMU's capabilities (RDS, WDS, CMSS, PMRWBM = 2, PMRTO = 0,
    /// ready at once) in BAR4 at `bus_addr`.
    pub const fn new(size: u64, bus_addr: u64) -> Self {
        PmrConfig {
            size,
            bus_addr,
            bar: 4,
            rds: true,
            wds: true,
            cmss: true,
            pmrwbm: 2,
            pmrto: 0,
            ready_delay: Duration::ZERO,
        }
    }

    /// PMRCAP as the controller reports it.
    pub(super) fn pmrcap(&self) -> u32 {
        u32::from(self.rds) << 3
            | u32::from(self.wds) << 4
            | u32::from(self.bar) << 5
            | u32::from(self.pmrwbm) << 10
            | u32::from(self.pmrto) << 16
            | u32::from(self.cmss) << 24
    }

    fn check(&self, vs: u32, taken: &[(u64, u64, u8)]) -> Result<()> {
        if !self.size.is_power_of_two() || !(4096..=1 << 30).contains(&self.size) {
            return Err(invalid(
                "model PMR size must be a power of two from 4 KiB to 1 GiB",
            ));
        }
        if !(2..=5).contains(&self.bar) || self.pmrwbm > 15 {
            return Err(invalid("model PMR bar must be 2 to 5 and pmrwbm 0 to 15"));
        }
        if self.bus_addr % self.size != 0 || self.bus_addr.checked_add(self.size).is_none() {
            return Err(invalid(
                "model PMR bus_addr must be aligned to its BAR's size",
            ));
        }
        for &(base, size, bar) in taken {
            if bar == self.bar || (self.bus_addr < base + size && base < self.bus_addr + self.size)
            {
                return Err(invalid("model PMR BAR overlaps BAR0 or the CMB's BAR"));
            }
        }
        if vs < 0x0001_0400 {
            return Err(invalid("model PMR needs vs 1.4 or later"));
        }
        Ok(())
    }
}

impl ModelConfig {
    /// The doorbell stride in bytes.
    pub(super) fn stride(&self) -> usize {
        4 << self.dstrd
    }

    /// The size of BAR0: the registers and the doorbells of every queue, a power of two of at
    /// least 8 KiB.
    pub(super) fn bar0_size(&self) -> usize {
        let doorbells = (usize::from(self.max_io_queues) + 1) * 2 * self.stride();
        (offsets::DOORBELLS + doorbells)
            .next_power_of_two()
            .max(0x2000)
    }

    /// CAP as the controller reports it: MQES, CQR, TO, DSTRD, CSS = NVM, MPSMIN = 0 (4 KiB),
    /// MPSMAX = 4 (64 KiB), PMRS with a PMR, CMBS when the CMB uses CMBMSC.
    pub(super) fn cap(&self) -> u64 {
        let cmbs = matches!(
            self.cmb,
            Some(CmbConfig {
                scheme: CmbScheme::Cmbmsc,
                ..
            })
        );
        u64::from(self.mqes)
            | u64::from(self.cqr) << 16
            | u64::from(self.timeout) << 24
            | u64::from(self.dstrd) << 32
            | 1 << 37
            | u64::from(MPSMAX) << 52
            | u64::from(self.pmr.is_some()) << 56
            | u64::from(cmbs) << 57
    }

    /// Checks the configuration (a bad one is [`Error::Core`](crate::nvme::Error::Core) with
    /// [`InvalidArgument`](crate::Error::InvalidArgument) naming the field).
    pub(super) fn check(&self) -> Result<()> {
        if !self.lba_size.is_power_of_two() || !(512..=65536).contains(&self.lba_size) {
            return Err(invalid(
                "model lba_size must be a power of two from 512 to 65536",
            ));
        }
        if self.lba_count == 0 || self.lba_count.checked_mul(self.lba_size.into()).is_none() {
            return Err(invalid(
                "model lba_count must be at least 1 and the namespace fit in 64 bits",
            ));
        }
        if self.mqes == 0 {
            return Err(invalid("model mqes (0's based) must be at least 1"));
        }
        if self.dstrd > 8 {
            return Err(invalid("model dstrd must be 0 to 8"));
        }
        if !(1..=1024).contains(&self.max_io_queues) {
            return Err(invalid("model max_io_queues must be 1 to 1024"));
        }
        let vs = self.vs;
        if vs >> 16 == 0 {
            return Err(invalid("model vs must have a major version"));
        }
        let bar0_end = self.bar0_bus_addr.checked_add(self.bar0_size() as u64);
        if bar0_end.is_none() || self.bar0_bus_addr % self.bar0_size() as u64 != 0 {
            return Err(invalid(
                "model bar0_bus_addr must be aligned to BAR0's size",
            ));
        }
        if let Some(cmb) = &self.cmb {
            cmb.check(vs, self.bar0_bus_addr, self.bar0_size() as u64)?;
        }
        if let Some(pmr) = &self.pmr {
            let mut taken = std::vec![(self.bar0_bus_addr, self.bar0_size() as u64, 0)];
            if let Some(c) = &self.cmb {
                taken.push((c.bus_addr, c.bar_size(), c.bar));
            }
            pmr.check(vs, &taken)?;
        }
        Ok(())
    }
}

/// CAP.MPSMAX of the model: pages up to 64 KiB.
pub(super) const MPSMAX: u8 = 4;

impl CmbConfig {
    fn check(&self, vs: u32, bar0: u64, bar0_size: u64) -> Result<()> {
        if self.size == 0 || self.size % 4096 != 0 || self.size > 1 << 30 {
            return Err(invalid(
                "model CMB size must be a multiple of 4 KiB up to 1 GiB",
            ));
        }
        if !(2..=5).contains(&self.bar) {
            return Err(invalid("model CMB bar must be 2 to 5"));
        }
        let size = self.bar_size();
        if self.bus_addr % size != 0 || self.bus_addr.checked_add(size).is_none() {
            return Err(invalid(
                "model CMB bus_addr must be aligned to its BAR's size",
            ));
        }
        if self.bus_addr < bar0 + bar0_size && bar0 < self.bus_addr + size {
            return Err(invalid("model CMB BAR overlaps BAR0"));
        }
        if self.scheme == CmbScheme::Cmbmsc && vs < 0x0001_0400 {
            return Err(invalid("model CMB scheme Cmbmsc needs vs 1.4 or later"));
        }
        Ok(())
    }
}
