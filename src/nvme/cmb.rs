//! The NVMe Controller Memory Buffer: discovery, enable, and a capability-checked allocator.
//!
//! A controller may expose memory of its own in a PCI BAR — the Controller Memory Buffer (CMB).
//! Submission queues, PRP lists and data buffers placed there save a round trip over PCIe, and
//! other devices can DMA into it peer to peer. Finding it takes care, because controllers
//! differ:
//!
//! - **NVMe ≥ 1.4 with CAP.CMBS**: CMBLOC and CMBSZ may read zero until CMBMSC.CRE is set (QEMU
//!   does this), and the CMB answers to bus addresses only after CMBMSC.CMSE is set together with
//!   CBA, the bus address the host uses for it. [`probe`] sets CRE and reads the registers;
//!   [`enable`] writes CBA and CMSE and checks CMBSTS.CBAI.
//! - **NVMe < 1.4**: CMBLOC/CMBSZ are valid as read; CMBMSC and everything above CMBSZ were
//!   reserved, and some controllers read all-ones there. Nothing above CMBSZ is read or written.
//!   The CMB answers at its BAR's bus address plus its offset.
//!
//! Every value that cannot be right is an error rather than a guess: a reserved SZU or BIR, a
//! BIR naming a BAR that is not a memory BAR, an offset past the BAR, a size that overflows,
//! CMBSZ non-zero with CAP.CMBS clear on a 1.4+ controller, CMBSZ still zero after CRE with
//! CAP.CMBS set, all-ones reads ([`Error::DeviceGone`]). A CMB larger than the rest of its BAR
//! is clamped to the BAR (as Linux does: controllers behind a bridge may report more than the
//! BAR decodes) unless [`ProbeOptions::strict_size`] asks for an error.
//!
//! The caller supplies the BARs' bus addresses and sizes ([`BarTable`]); the Linux mapping
//! layer ([`map`](crate::map)) reads them from sysfs.
//!
//! # Example: QEMU's NVMe 1.4 controller, simulated
//! ```
//! use iomem::backend::{mock::WriteEffect, MockIo};
//! use iomem::nvme::cmb::{self, BarTable, CmbPool, PciBar};
//! use iomem::nvme::regs::{offsets, Cc, ControllerRegs};
//! use iomem::IoMem;
//!
//! let bar0 = MockIo::new(0x2000);
//! bar0.poke(offsets::CAP, &(0x20_0a01_0fffu64 | 1 << 57).to_le_bytes()); // CMBS
//! bar0.poke(offsets::VS, &0x0001_0400u32.to_le_bytes());
//! // CMBLOC/CMBSZ read zero until CMBMSC.CRE is written
//! bar0.on_write(offsets::CMBMSC..offsets::CMBMSC + 4, |ram, a| {
//!     let (loc, sz) = if a.value & 1 == 1 { (2, 16 << 12 | 2 << 8 | 0x1d) } else { (0, 0) };
//!     ram.set(offsets::CMBLOC, 4, loc);
//!     ram.set(offsets::CMBSZ, 4, sz);
//!     WriteEffect::Store
//! });
//! let regs = ControllerRegs::new(IoMem::new(&bar0))?;
//! // A real driver reads these from the platform (`BarTable::from_sysfs`); a simulated
//! // controller's are made up.
//! // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
//! let (bar0, bar2) =
//!     unsafe { (PciBar::new(0xfebf_0000, 0x4000)?, PciBar::new(0x1_0000_0000, 16 << 20)?) };
//! let bars = BarTable::new().with(0, bar0)?.with(2, bar2)?;
//!
//! let info = cmb::probe(&regs, &bars, Default::default())?.expect("a CMB");
//! assert_eq!((info.bir, info.offset(), info.size()), (2, 0, 16 << 20));
//! assert_eq!(info.bus_addr(), 0x1_0000_0000);
//! cmb::enable(&regs, &info)?;                  // CBA = 0x1_0000_0000, CMSE = 1
//!
//! // The driver maps BAR2 (here a mock) and allocates from it.
//! let pool = CmbPool::new(MockIo::new(16 << 20), info, Cc::default())?;
//! let sq = pool.alloc_sq(64)?;                 // 64 × 64 bytes, page aligned
//! assert_eq!(sq.bus_addr() % 4096, 0);
//! assert!(pool.alloc_cq(64).is_err());         // CMBSZ.CQS is clear
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

use core::fmt;

use crate::backend::Backend;
use crate::nvme::regs::{
    Cap, Cc, Cmbloc, Cmbmsc, Cmbsz, ControllerRegs, Vs, CQ_ENTRY_SIZE, MIN_PAGE_SIZE, SQ_ENTRY_SIZE,
};
use crate::nvme::{invalid, Error, Result};
use crate::p2p::{P2pBuf, P2pConfig, P2pPool, P2pStats};

pub use super::bar::{BarTable, PciBar};

/// How the controller controls its CMB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmbScheme {
    /// NVMe < 1.4: CMBLOC/CMBSZ only; the CMB is always on at its BAR address.
    Legacy,
    /// NVMe ≥ 1.4 with CAP.CMBS: CMBMSC.CRE/CMSE/CBA and CMBSTS.
    Cmbmsc,
}

/// Options of [`probe`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Refuse a CMB that extends past its BAR ([`Error::BadRegister`]) instead of clamping it.
    pub strict_size: bool,
}

/// What [`probe`] found: where the CMB is and what it may hold.
///
/// Made only by [`probe`] and [`decode`], and where the CMB is — [`offset`](Self::offset),
/// [`size`](Self::size), [`bus_addr`](Self::bus_addr) — is read, not set: a [`CmbPool`] hands
/// devices addresses from it.
///
/// # Invariant
/// `[bus_addr, bus_addr + size)` lies inside the [`PciBar`] it was decoded against.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CmbInfo {
    /// The BAR holding the CMB (0, 2, 3, 4 or 5).
    pub bir: u8,
    /// Offset of the CMB in that BAR, in bytes.
    pub(crate) offset: u64,
    /// Usable size in bytes (clamped to the BAR).
    pub(crate) size: u64,
    /// Bus address of the CMB's first byte (BAR bus address + offset); on 1.4+ this is the CBA
    /// [`enable`] programs.
    pub(crate) bus_addr: u64,
    /// The size CMBSZ reported, if it was larger than the BAR allows and was clamped.
    pub clamped_from: Option<u64>,
    /// Submission queues may live in the CMB (CMBSZ.SQS).
    pub sqs: bool,
    /// Completion queues may live in the CMB (CMBSZ.CQS).
    pub cqs: bool,
    /// PRP/SGL lists may live in the CMB (CMBSZ.LISTS).
    pub lists: bool,
    /// Read data may target the CMB (CMBSZ.RDS).
    pub rds: bool,
    /// Write data may come from the CMB (CMBSZ.WDS).
    pub wds: bool,
    /// How the CMB is controlled.
    pub scheme: CmbScheme,
    /// The raw CMBLOC read.
    pub cmbloc: Cmbloc,
    /// The raw CMBSZ read.
    pub cmbsz: Cmbsz,
}

impl CmbInfo {
    /// Offset of the CMB in its BAR ([`bir`](Self::bir)), in bytes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Usable size in bytes (clamped to the BAR).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bus address of the CMB's first byte (BAR bus address + offset); on 1.4+ this is the CBA
    /// [`enable`] programs.
    pub fn bus_addr(&self) -> u64 {
        self.bus_addr
    }
}

impl fmt::Debug for CmbInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CmbInfo")
            .field("bir", &self.bir)
            .field("offset", &format_args!("{:#x}", self.offset))
            .field("size", &self.size)
            .field("bus_addr", &format_args!("{:#x}", self.bus_addr))
            .field("clamped_from", &self.clamped_from)
            .field("sqs", &self.sqs)
            .field("cqs", &self.cqs)
            .field("lists", &self.lists)
            .field("rds", &self.rds)
            .field("wds", &self.wds)
            .field("scheme", &self.scheme)
            .finish()
    }
}

/// Whether (and how) this controller controls a CMB, from VS and CAP.
fn scheme(vs: Vs, cap: Cap) -> Option<CmbScheme> {
    if !vs.has_cmbmsc() {
        Some(CmbScheme::Legacy)
    } else if cap.cmbs() {
        Some(CmbScheme::Cmbmsc)
    } else {
        None
    }
}

/// Finds the controller's CMB. Returns `Ok(None)` if it has none.
///
/// On an NVMe 1.4+ controller with CAP.CMBS this writes CMBMSC = CRE (capabilities on, memory
/// space off) before reading CMBLOC/CMBSZ; nothing else is written. Call [`enable`] next. Do
/// this while the controller is disabled (CC.EN = 0), as the CMB's memory space is switched
/// off meanwhile.
pub fn probe<B: Backend>(
    regs: &ControllerRegs<'_, B>,
    bars: &BarTable,
    options: ProbeOptions,
) -> Result<Option<CmbInfo>> {
    let vs = regs.vs()?;
    let cap = regs.cap()?;
    let scheme = scheme(vs, cap);
    if scheme == Some(CmbScheme::Cmbmsc) {
        regs.cmbmsc()?; // all-ones here is a vanished device
        regs.set_cmbmsc_lo(Cmbmsc::new(true, false, 0)?);
    }
    let cmbsz = regs.cmbsz()?;
    let cmbloc = regs.cmbloc()?;
    let Some(scheme) = scheme else {
        if cmbsz.is_zero() {
            return Ok(None);
        }
        return Err(Error::BadRegister {
            reg: "CMBSZ",
            value: cmbsz.raw().into(),
            why: "non-zero on an NVMe 1.4+ controller whose CAP.CMBS is clear",
        });
    };
    if cmbsz.is_zero() {
        if scheme == CmbScheme::Cmbmsc {
            return Err(Error::BadRegister {
                reg: "CMBSZ",
                value: 0,
                why: "still zero after CMBMSC.CRE although CAP.CMBS is set",
            });
        }
        return Ok(None);
    }
    decode(cmbloc, cmbsz, bars, scheme, options).map(Some)
}

/// Decodes CMBLOC/CMBSZ against the BARs (the pure part of [`probe`]; CMBSZ must be non-zero).
pub fn decode(
    cmbloc: Cmbloc,
    cmbsz: Cmbsz,
    bars: &BarTable,
    scheme: CmbScheme,
    options: ProbeOptions,
) -> Result<CmbInfo> {
    let reported = cmbsz.size_bytes()?;
    if reported == 0 {
        return Err(Error::BadRegister {
            reg: "CMBSZ",
            value: cmbsz.raw().into(),
            why: "SZ is zero: a CMB of no bytes",
        });
    }
    let bir = cmbloc.bir_checked()?;
    let bar = bars.get(usize::from(bir)).ok_or(Error::BadRegister {
        reg: "CMBLOC",
        value: cmbloc.raw().into(),
        why: "BIR names a BAR that is not a memory BAR of this function",
    })?;
    let offset = cmbloc.offset_bytes(cmbsz)?;
    if offset >= bar.size {
        return Err(Error::BadRegister {
            reg: "CMBLOC",
            value: cmbloc.raw().into(),
            why: "CMB offset is past the end of its BAR",
        });
    }
    if bir == 0 && offset < 0x1000 {
        return Err(Error::BadRegister {
            reg: "CMBLOC",
            value: cmbloc.raw().into(),
            why: "CMB in BAR0 overlaps the controller registers",
        });
    }
    let end = offset.checked_add(reported).ok_or(Error::BadRegister {
        reg: "CMBSZ",
        value: cmbsz.raw().into(),
        why: "CMB offset + size overflows 64 bits",
    })?;
    let (size, clamped_from) = if end > bar.size {
        if options.strict_size {
            return Err(Error::BadRegister {
                reg: "CMBSZ",
                value: cmbsz.raw().into(),
                why: "CMB extends past the end of its BAR",
            });
        }
        (bar.size - offset, Some(reported))
    } else {
        (reported, None)
    };
    Ok(CmbInfo {
        bir,
        offset,
        size,
        // cannot overflow: PciBar::new checked bus_addr + size, and offset < size
        bus_addr: bar.bus_addr + offset,
        clamped_from,
        sqs: cmbsz.sqs(),
        cqs: cmbsz.cqs(),
        lists: cmbsz.lists(),
        rds: cmbsz.rds(),
        wds: cmbsz.wds(),
        scheme,
        cmbloc,
        cmbsz,
    })
}

/// Enables the CMB's memory space (NVMe 1.4+): writes CMBMSC = CBA | CMSE | CRE (high dword
/// first, then the low dword the controller acts on), then checks CMBSTS.CBAI and reads CMBMSC
/// back. Nothing is written for a [`CmbScheme::Legacy`] CMB, which is always on.
///
/// Errors: [`InvalidArgument`](crate::Error::InvalidArgument) if the CMB's bus address is not 4 KiB aligned (CBA cannot
/// express it); [`Error::BadRegister`] if the controller sets CBAI or does not keep the value.
pub fn enable<B: Backend>(regs: &ControllerRegs<'_, B>, info: &CmbInfo) -> Result<()> {
    if info.scheme == CmbScheme::Legacy {
        return Ok(());
    }
    if info.bus_addr % MIN_PAGE_SIZE != 0 {
        return Err(invalid(
            "CMB bus address is not 4 KiB aligned, so CMBMSC.CBA cannot hold it",
        ));
    }
    let want = Cmbmsc::new(true, true, info.bus_addr)?;
    regs.set_cmbmsc(want);
    let sts = regs.cmbsts()?;
    if sts.cbai() {
        return Err(Error::BadRegister {
            reg: "CMBSTS",
            value: sts.raw().into(),
            why: "CBAI: the controller refused the CMB bus address written to CMBMSC.CBA",
        });
    }
    let got = regs.cmbmsc()?;
    if got != want {
        return Err(Error::BadRegister {
            reg: "CMBMSC",
            value: got.raw(),
            why: "did not keep the CRE/CMSE/CBA value written",
        });
    }
    Ok(())
}

/// Turns the CMB's memory space and capability registers off (NVMe 1.4+: CMBMSC = 0). Does
/// nothing for a legacy CMB.
pub fn disable<B: Backend>(regs: &ControllerRegs<'_, B>, info: &CmbInfo) -> Result<()> {
    if info.scheme == CmbScheme::Legacy {
        return Ok(());
    }
    regs.set_cmbmsc(Cmbmsc::default());
    Ok(())
}

/// [`probe`] then [`enable`].
pub fn probe_and_enable<B: Backend>(
    regs: &ControllerRegs<'_, B>,
    bars: &BarTable,
    options: ProbeOptions,
) -> Result<Option<CmbInfo>> {
    let info = probe(regs, bars, options)?;
    if let Some(info) = &info {
        enable(regs, info)?;
    }
    Ok(info)
}

/// A [`P2pPool`] over a CMB that hands out only what the controller supports: queues, lists and
/// data buffers, aligned to the controller's memory page size.
///
/// Cloning gives another handle on the same pool.
#[derive(Clone)]
pub struct CmbPool<B: Backend> {
    pool: P2pPool<B>,
    info: CmbInfo,
    page_size: u64,
}

impl<B: Backend> fmt::Debug for CmbPool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CmbPool")
            .field("info", &self.info)
            .field("page_size", &self.page_size)
            .field("stats", &self.pool.stats())
            .finish()
    }
}

impl<B: Backend> CmbPool<B> {
    /// A pool over the CMB described by `info`, inside `bar`: a mapping of the **whole** BAR
    /// `info.bir` (the CMB is at `info.offset` in it). Queues and buffers are aligned to the
    /// page size of `cc` (CC.MPS), which is also the granularity.
    ///
    /// The mapping should be write-combining for speed (sysfs `resourceN_wc`); queue rings then
    /// need a flush before their doorbell, which
    /// [`CmbSubmissionQueue`](super::sq::CmbSubmissionQueue) issues.
    pub fn new(bar: B, info: CmbInfo, cc: Cc) -> Result<Self> {
        Self::with_config(bar, info, cc, None)
    }

    /// Like [`CmbPool::new`] with a smaller granularity (a power of two from 64 bytes to the
    /// page size) for pools holding many small PRP lists. Queues and data buffers are still
    /// page aligned.
    pub fn with_granularity(bar: B, info: CmbInfo, cc: Cc, granularity: usize) -> Result<Self> {
        Self::with_config(bar, info, cc, Some(granularity))
    }

    fn with_config(bar: B, info: CmbInfo, cc: Cc, gran: Option<usize>) -> Result<Self> {
        let page_size = cc.page_size();
        // CAST: CC.MPS is at most 15, so the page size is at most 128 MiB, which fits usize.
        let gran = gran.unwrap_or(page_size as usize);
        // CAST: usize is at most 64 bits wide.
        if gran as u64 > page_size {
            return Err(invalid(
                "CMB pool granularity must not exceed the controller page size",
            ));
        }
        let to_usize = |v: u64| {
            usize::try_from(v).map_err(|_| invalid("CMB does not fit in the address space"))
        };
        let start = to_usize(info.offset)?;
        let len = to_usize(info.size)?;
        let end = start
            .checked_add(len)
            .ok_or(crate::Error::Overflow { offset: start, len })?;
        let config = P2pConfig::new(info.bus_addr)
            .range(start..end)
            .granularity(gran);
        Ok(CmbPool {
            // SAFETY: `info.bus_addr` is where devices reach byte `info.offset` of BAR
            // `info.bir` (`CmbInfo`'s invariant), which `bar` maps whole.
            pool: unsafe { P2pPool::with_config(bar, config) }?,
            info,
            page_size,
        })
    }

    /// What the controller reported.
    pub fn info(&self) -> &CmbInfo {
        &self.info
    }

    /// The controller page size (CC.MPS) queues and buffers are aligned to.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// The underlying pool, for uses the capability checks do not cover.
    pub fn pool(&self) -> &P2pPool<B> {
        &self.pool
    }

    /// The pool's use.
    pub fn stats(&self) -> P2pStats {
        self.pool.stats()
    }

    fn page_aligned(&self, bytes: usize) -> Result<P2pBuf<B>> {
        // CAST: at most 128 MiB (CC.MPS ≤ 15), which fits usize.
        Ok(self.pool.alloc(bytes, self.page_size as usize)?)
    }

    /// A submission queue ring of `entries` 64-byte entries (2 to 65536), page aligned.
    /// Needs CMBSZ.SQS ([`Error::Unsupported`] otherwise).
    pub fn alloc_sq(&self, entries: u32) -> Result<P2pBuf<B>> {
        if !self.info.sqs {
            return Err(Error::Unsupported {
                what: "submission queues in the controller memory buffer (CMBSZ.SQS)",
            });
        }
        check_entries(entries)?;
        // CAST: 2 to 65536 entries (checked above).
        self.page_aligned(entries as usize * SQ_ENTRY_SIZE)
    }

    /// A completion queue ring of `entries` 16-byte entries (2 to 65536), page aligned.
    /// Needs CMBSZ.CQS.
    pub fn alloc_cq(&self, entries: u32) -> Result<P2pBuf<B>> {
        if !self.info.cqs {
            return Err(Error::Unsupported {
                what: "completion queues in the controller memory buffer (CMBSZ.CQS)",
            });
        }
        check_entries(entries)?;
        // CAST: 2 to 65536 entries (checked above).
        self.page_aligned(entries as usize * CQ_ENTRY_SIZE)
    }

    /// Room for a PRP list of `entries` 8-byte entries, page aligned (so that no page of the
    /// list crosses a page boundary; chaining lists longer than a page is the caller's job).
    /// Needs CMBSZ.LISTS.
    pub fn alloc_prp_list(&self, entries: usize) -> Result<P2pBuf<B>> {
        if !self.info.lists {
            return Err(Error::Unsupported {
                what: "PRP and SGL lists in the controller memory buffer (CMBSZ.LISTS)",
            });
        }
        if entries == 0 {
            return Err(invalid("a PRP list has at least one entry"));
        }
        let bytes = entries.checked_mul(8).ok_or(invalid("PRP list too long"))?;
        self.page_aligned(bytes)
    }

    /// A page-aligned buffer for the data of Read commands (controller to host). Needs
    /// CMBSZ.RDS.
    pub fn alloc_read_buf(&self, bytes: usize) -> Result<P2pBuf<B>> {
        if !self.info.rds {
            return Err(Error::Unsupported {
                what: "read data in the controller memory buffer (CMBSZ.RDS)",
            });
        }
        self.page_aligned(bytes)
    }

    /// A page-aligned buffer for the data of Write commands (host to controller). Needs
    /// CMBSZ.WDS.
    pub fn alloc_write_buf(&self, bytes: usize) -> Result<P2pBuf<B>> {
        if !self.info.wds {
            return Err(Error::Unsupported {
                what: "write data in the controller memory buffer (CMBSZ.WDS)",
            });
        }
        self.page_aligned(bytes)
    }

    /// A page-aligned buffer usable for both reads and writes. Needs CMBSZ.RDS and WDS.
    pub fn alloc_data_buf(&self, bytes: usize) -> Result<P2pBuf<B>> {
        if !(self.info.rds && self.info.wds) {
            return Err(Error::Unsupported {
                what: "read and write data in the controller memory buffer (CMBSZ.RDS and WDS)",
            });
        }
        self.page_aligned(bytes)
    }
}

fn check_entries(entries: u32) -> Result<()> {
    if !(2..=65536).contains(&entries) {
        return Err(invalid("a queue holds 2 to 65536 entries"));
    }
    Ok(())
}
