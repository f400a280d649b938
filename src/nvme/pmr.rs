//! The NVMe Persistent Memory Region: discovery, enable, flush, and a capability-checked
//! allocator.
//!
//! A controller with CAP.PMRS exposes persistent memory in one of its BARs (PMRCAP.BIR; QEMU
//! uses BAR4/5): memory that the CPU and the controller read and write like the Controller
//! Memory Buffer ([`cmb`](super::cmb)), but whose contents survive a power cycle once a
//! write barrier mechanism (PMRCAP.PMRWBM) has run. The registers are PMRCAP (0xE00), PMRCTL,
//! PMRSTS, PMREBS, PMRSWTP and PMRMSC (0xE14/0xE18), declared in [`regs`](super::regs) after
//! the NVM Express Base Specification (1.4, 2.x: "PMRCAP – Persistent Memory Region
//! Capabilities" and the following properties) and QEMU's `include/block/nvme.h`.
//!
//! - [`probe`] reads CAP.PMRS, PMRCAP and PMREBS and writes nothing. The PMR is the whole BAR
//!   that PMRCAP.BIR names: its size is the BAR's, from the caller's [`BarTable`] (QEMU sizes
//!   BAR4 from the memory backend); PMREBS only says how much an elasticity buffer may hold.
//! - [`enable`] sets PMRCTL.EN, waits for PMRSTS.NRDY = 0 within PMRCAP.PMRTO (a controller
//!   that gives no time, as QEMU's with PMRTO = 0, gets [`PMRTO_ZERO_WAIT_MS`]) and, when
//!   PMRCAP.CMSS is set, writes PMRMSC = CBA | CMSE so that data pointers may name the PMR
//!   (checking PMRSTS.CBAI and reading PMRMSC back).
//! - [`flush`] is the write barrier of PMRWBM bit 1: a read of PMRSTS.
//! - [`PmrPool`] allocates from the mapped BAR, data buffers only as PMRCAP.RDS/WDS allow.
//!
//! # What a flush guarantees
//! The specification (PMRCAP.PMRWBM): with bit 1 (CPMRSTSR) set, "the completion of a read to
//! the PMRSTS property shall ensure that all prior writes to the Persistent Memory Region have
//! completed and are persistent"; with bit 0 (CMR), the completion of a memory read of any PMR
//! address does the same. [`flush`] first issues a full barrier ([`Barrier::Mb`]: `mfence` on
//! x86, which also drains write-combining buffers), so that every store this CPU made to the PMR
//! mapping before the call is performed before the PMRSTS read is issued, then reads PMRSTS.
//! When it returns `Ok`, those writes are persistent — and only those: stores from other CPUs
//! not ordered before the call, and device writes (a Read command's data) whose completion the
//! caller had not seen, are not covered. It then judges the status: not ready, an error
//! (PMRSTS.ERR) or a health other than normal (a read-only or unreliable PMR does not persist
//! writes) is an error.
//!
//! QEMU (`hw/nvme/ctrl.c`, `nvme_init_pmr`) reports PMRWBM = 0x2 (bit 1 only), RDS = WDS =
//! CMSS = 1, PMRTO = 0, BIR = 4, and on a read of PMRSTS calls `memory_region_msync` over the
//! whole backend (`nvme_mmio_read`: "When PMRWBM bit 1 is set then read from from PMRSTS should
//! ensure prior writes made it to persistent media"): the guest's stores are in the backing
//! file (`memory-backend-file,share=on`) when the read returns. PMRCTL.EN = 1 clears PMRSTS at
//! once; EN = 0 sets NRDY and turns CMSE off. A data pointer into the PMR counts only while
//! PMRMSC.CMSE is set, and then, like the CMB, PRP1 decides: a command whose PRP1 is in the CMB
//! or the PMR must have every data pointer there (`nvme_map_addr`).
//!
//! # Example: QEMU's PMR, simulated
//! ```
//! use iomem::backend::{mock::WriteEffect, MockIo};
//! use iomem::nvme::cmb::{BarTable, PciBar};
//! use iomem::nvme::pmr::{self, PmrPool};
//! use iomem::nvme::regs::{offsets, Cc, ControllerRegs};
//! use iomem::IoMem;
//!
//! let bar0 = MockIo::new(0x2000);
//! bar0.poke(offsets::CAP, &(0x20_0a01_0fffu64 | 1 << 56).to_le_bytes()); // PMRS
//! bar0.poke(offsets::VS, &0x0001_0400u32.to_le_bytes());
//! // PMRCAP: CMSS, PMRWBM = 2, BIR = 4, WDS, RDS
//! bar0.poke(offsets::PMRCAP, &(1u32 << 24 | 2 << 10 | 4 << 5 | 1 << 4 | 1 << 3).to_le_bytes());
//! bar0.on_write(offsets::PMRCTL..offsets::PMRCTL + 4, |ram, a| {
//!     ram.set(offsets::PMRSTS, 4, if a.value & 1 == 1 { 0 } else { 1 << 8 });
//!     WriteEffect::Store
//! });
//! let regs = ControllerRegs::new(IoMem::new(&bar0))?;
//! // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
//! let bars = BarTable::new().with(4, unsafe { PciBar::new(0x1_0100_0000, 1 << 20) }?)?;
//!
//! let info = pmr::probe(&regs, &bars)?.expect("a PMR");
//! assert_eq!((info.bir, info.size(), info.bus_addr()), (4, 1 << 20, 0x1_0100_0000));
//! assert_eq!(info.ready_timeout_ms(), pmr::PMRTO_ZERO_WAIT_MS); // PMRTO = 0
//! pmr::enable(&regs, &info)?;                // EN, NRDY = 0, PMRMSC = CBA | CMSE
//! assert_eq!(regs.pmrmsc()?.cba(), 0x1_0100_0000);
//!
//! // The driver maps BAR4 (here a mock), writes through it, and flushes.
//! let pool = PmrPool::new(MockIo::new(1 << 20), info, Cc::default())?;
//! pool.io().subslice(0..5)?.copy_from_slice(b"saved")?;
//! pmr::flush(&regs, &info)?;                 // a PMRSTS read: persistent now
//! let buf = pool.alloc_data_buf(4096)?;      // RDS and WDS: data pointers may name it
//! assert_eq!(buf.bus_addr() % 4096, 0);
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

use core::fmt;

use crate::backend::Backend;
use crate::nvme::cmb::BarTable;
#[cfg(feature = "std")]
use crate::nvme::regs::Pmrctl;
use crate::nvme::regs::{
    Cc, ControllerRegs, PmrHealth, Pmrcap, Pmrebs, Pmrmsc, Pmrsts, MIN_PAGE_SIZE,
};
use crate::nvme::{invalid, Error, Result};
use crate::order::Barrier;
use crate::p2p::{P2pBuf, P2pConfig, P2pPool, P2pStats};

/// How long [`enable`] waits for PMRSTS.NRDY when PMRCAP.PMRTO is 0 (the controller gives no
/// time; QEMU's is ready at once), in milliseconds.
pub const PMRTO_ZERO_WAIT_MS: u64 = 500;

/// What [`probe`] found: where the PMR is and what it supports.
///
/// Made only by [`probe`] and [`decode`], and where the PMR is — [`size`](Self::size),
/// [`bus_addr`](Self::bus_addr) — is read, not set: a [`PmrPool`] hands devices addresses from
/// it.
///
/// # Invariant
/// `[bus_addr, bus_addr + size)` is the [`PciBar`](super::cmb::PciBar) it was decoded against.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PmrInfo {
    /// The BAR that is the PMR (2 to 5).
    pub bir: u8,
    /// Size in bytes: the whole BAR.
    pub(crate) size: u64,
    /// Bus address of the PMR's first byte (the BAR's); the CBA [`enable`] programs.
    pub(crate) bus_addr: u64,
    /// Read data may target the PMR (PMRCAP.RDS).
    pub rds: bool,
    /// Write data may come from the PMR (PMRCAP.WDS).
    pub wds: bool,
    /// Data pointers may name the PMR once PMRMSC.CMSE is set (PMRCAP.CMSS).
    pub cmss: bool,
    /// PMRTO in milliseconds, as reported (0: no time given).
    pub timeout_ms: u64,
    /// Elasticity buffer size in bytes (PMREBS; 0 if none is reported).
    pub elasticity_buffer: u64,
    /// Reads may bypass writes held in the elasticity buffer (PMREBS.RBB).
    pub read_bypass: bool,
    /// The raw PMRCAP read.
    pub pmrcap: Pmrcap,
    /// The raw PMREBS read.
    pub pmrebs: Pmrebs,
}

impl fmt::Debug for PmrInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PmrInfo")
            .field("bir", &self.bir)
            .field("size", &self.size)
            .field("bus_addr", &format_args!("{:#x}", self.bus_addr))
            .field("rds", &self.rds)
            .field("wds", &self.wds)
            .field("cmss", &self.cmss)
            .field("timeout_ms", &self.timeout_ms)
            .field("pmrwbm", &self.pmrcap.pmrwbm())
            .field("elasticity_buffer", &self.elasticity_buffer)
            .finish()
    }
}

impl PmrInfo {
    /// Size in bytes: the whole BAR.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bus address of the PMR's first byte (the BAR's); the CBA [`enable`] programs.
    pub fn bus_addr(&self) -> u64 {
        self.bus_addr
    }

    /// How long [`enable`] and [`disable`] wait for PMRSTS.NRDY: PMRTO, or
    /// [`PMRTO_ZERO_WAIT_MS`] when PMRTO is 0.
    pub fn ready_timeout_ms(&self) -> u64 {
        if self.timeout_ms == 0 {
            PMRTO_ZERO_WAIT_MS
        } else {
            self.timeout_ms
        }
    }

    /// Whether [`flush`] (a PMRSTS read) makes writes persistent on this controller
    /// (PMRWBM bit 1). If not, only a memory read of the PMR does ([`PmrPool::flush`]).
    pub fn flushes_on_pmrsts_read(&self) -> bool {
        self.pmrcap.persists_on_pmrsts_read()
    }
}

/// Finds the controller's PMR. Returns `Ok(None)` if CAP.PMRS is clear. Reads CAP, PMRCAP and
/// PMREBS; writes nothing.
///
/// Errors: a vanished device ([`Error::DeviceGone`]); a PMRCAP the specification does not
/// allow ([`Error::BadRegister`]: reserved PMRTU, no write barrier mechanism, RDS/WDS without
/// CMSS, reserved BIR) or one naming a BAR that is not a memory BAR of `bars`; see [`decode`].
pub fn probe<B: Backend>(regs: &ControllerRegs<'_, B>, bars: &BarTable) -> Result<Option<PmrInfo>> {
    if !regs.cap()?.pmrs() {
        return Ok(None);
    }
    let pmrcap = regs.pmrcap()?;
    let pmrebs = regs.pmrebs()?;
    decode(pmrcap, pmrebs, bars).map(Some)
}

/// Decodes PMRCAP/PMREBS against the BARs (the pure part of [`probe`]).
///
/// Errors ([`Error::BadRegister`] unless said otherwise): BIR reserved (not 2 to 5) or naming
/// a BAR `bars` does not have as a memory BAR; PMREBS.PMRSZU reserved; a PMR that does not fit
/// the address space (InvalidArgument). (A BAR of size 0, or one that wraps, is no `PciBar`:
/// [`PciBar::new`](super::cmb::PciBar::new) refuses it.)
pub fn decode(pmrcap: Pmrcap, pmrebs: Pmrebs, bars: &BarTable) -> Result<PmrInfo> {
    let bir = pmrcap.bir_checked()?;
    let bar = bars.get(usize::from(bir)).ok_or(Error::BadRegister {
        reg: "PMRCAP",
        value: pmrcap.raw().into(),
        why: "BIR names a BAR that is not a memory BAR of this function",
    })?;
    // A `PciBar` is non-empty and does not wrap (its invariant).
    if usize::try_from(bar.size).is_err() {
        return Err(invalid("the PMR does not fit in the address space"));
    }
    Ok(PmrInfo {
        bir,
        size: bar.size,
        bus_addr: bar.bus_addr,
        rds: pmrcap.rds(),
        wds: pmrcap.wds(),
        cmss: pmrcap.cmss(),
        timeout_ms: pmrcap.timeout_ms(),
        elasticity_buffer: pmrebs.buffer_bytes()?,
        read_bypass: pmrebs.rbb(),
        pmrcap,
        pmrebs,
    })
}

/// Enables the PMR and waits until it is ready: PMRCTL.EN = 1, then PMRSTS.NRDY = 0 within
/// [`PmrInfo::ready_timeout_ms`]; then, if PMRCAP.CMSS is set, its controller memory space
/// ([`enable_memory_space`]). Returns PMRSTS as last read (judge its health with [`health`]).
///
/// Errors: [`Error::WaitTimeout`] if NRDY stays set; [`Error::DeviceGone`] on the first read
/// that shows a vanished device (PMRSTS all-ones, or QEMU's zeros confirmed by CAP); those of
/// [`enable_memory_space`].
#[cfg(feature = "std")]
pub fn enable<B: Backend>(regs: &ControllerRegs<'_, B>, info: &PmrInfo) -> Result<Pmrsts> {
    regs.set_pmrctl(Pmrctl::default().with_en(true));
    let sts = wait_nrdy(regs, false, info.ready_timeout_ms())?;
    if info.cmss {
        enable_memory_space(regs, info)?;
    }
    Ok(sts)
}

/// Turns the PMR's controller memory space on: PMRMSC = CBA | CMSE (high dword first, then the
/// low one the controller acts on), then checks PMRSTS.CBAI and reads PMRMSC back. The PMR must
/// be enabled (PMRCTL.EN = 0 turns CMSE off again).
///
/// Errors: [`Error::Unsupported`] if PMRCAP.CMSS is clear; InvalidArgument if the PMR's bus
/// address is not 4 KiB aligned; [`Error::BadRegister`] if the controller sets CBAI or does
/// not keep the value.
pub fn enable_memory_space<B: Backend>(regs: &ControllerRegs<'_, B>, info: &PmrInfo) -> Result<()> {
    if !info.cmss {
        return Err(Error::Unsupported {
            what: "host-supplied addresses in the persistent memory region (PMRCAP.CMSS)",
        });
    }
    if info.bus_addr % MIN_PAGE_SIZE != 0 {
        return Err(invalid(
            "PMR bus address is not 4 KiB aligned, so PMRMSC.CBA cannot hold it",
        ));
    }
    let want = Pmrmsc::new(true, info.bus_addr)?;
    regs.set_pmrmsc(want);
    let sts = regs.pmrsts()?;
    if sts.cbai() {
        return Err(Error::BadRegister {
            reg: "PMRSTS",
            value: sts.raw().into(),
            why: "CBAI: the controller refused the PMR bus address written to PMRMSC.CBA",
        });
    }
    let got = regs.pmrmsc()?;
    if got != want {
        return Err(Error::BadRegister {
            reg: "PMRMSC",
            value: got.raw(),
            why: "did not keep the CMSE/CBA value written",
        });
    }
    Ok(())
}

/// Disables the PMR: PMRMSC = 0 (if CMSS), PMRCTL.EN = 0, then waits for PMRSTS.NRDY = 1
/// within [`PmrInfo::ready_timeout_ms`]. Flush first: disabling is no write barrier.
#[cfg(feature = "std")]
pub fn disable<B: Backend>(regs: &ControllerRegs<'_, B>, info: &PmrInfo) -> Result<()> {
    if info.cmss {
        regs.set_pmrmsc(Pmrmsc::default());
    }
    regs.set_pmrctl(Pmrctl::default());
    wait_nrdy(regs, true, info.ready_timeout_ms()).map(|_| ())
}

/// Waits until PMRSTS.NRDY == `nrdy`, for at most `ms` milliseconds.
#[cfg(feature = "std")]
fn wait_nrdy<B: Backend>(regs: &ControllerRegs<'_, B>, nrdy: bool, ms: u64) -> Result<Pmrsts> {
    use std::time::{Duration, Instant};
    let start = Instant::now();
    let limit = Duration::from_millis(ms);
    loop {
        let sts = regs.pmrsts()?; // all-ones: DeviceGone
        if sts.nrdy() == nrdy {
            present(regs, sts)?;
            return Ok(sts);
        }
        if start.elapsed() > limit {
            regs.cap()?; // a device gone meanwhile is that, not a timeout
            return Err(Error::WaitTimeout {
                what: if nrdy {
                    "PMRSTS.NRDY = 1 after PMRCTL.EN = 0"
                } else {
                    "PMRSTS.NRDY = 0 after PMRCTL.EN = 1"
                },
                ms,
            });
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// A PMRSTS of zero is also what QEMU's vanished device reads: CAP (never zero) tells.
fn present<B: Backend>(regs: &ControllerRegs<'_, B>, sts: Pmrsts) -> Result<()> {
    if sts.raw() == 0 {
        regs.cap()?;
    }
    Ok(())
}

/// Judges a PMRSTS: ready, no error, normal health. Errors are [`Error::BadRegister`] naming
/// the field (NRDY, ERR or HSTS): the PMR cannot make writes persistent now.
pub fn health(sts: Pmrsts) -> Result<PmrHealth> {
    let why = if sts.nrdy() {
        "NRDY: the persistent memory region is not ready"
    } else if sts.err() != 0 {
        "ERR: the persistent memory region reports an error"
    } else {
        match sts.hsts() {
            PmrHealth::Normal => return Ok(PmrHealth::Normal),
            PmrHealth::RestoreError => "HSTS: restore error: the contents were not restored",
            PmrHealth::ReadOnlyMedia => "HSTS: read only: writes are not persistent",
            PmrHealth::Unreliable => "HSTS: unreliable",
        }
    };
    Err(Error::BadRegister {
        reg: "PMRSTS",
        value: sts.raw().into(),
        why,
    })
}

/// The write barrier of PMRWBM bit 1: a full barrier ([`Barrier::Mb`], issued through BAR0's
/// backend: it orders this CPU's earlier stores to every mapping, write-combining ones
/// included), then a read of PMRSTS, judged by [`health`]. See the [module docs](self) for
/// exactly what it guarantees.
///
/// Errors: [`Error::Unsupported`] if PMRWBM bit 1 is clear (flush with [`PmrPool::flush`],
/// which reads the PMR instead); [`Error::DeviceGone`]; those of [`health`].
pub fn flush<B: Backend>(regs: &ControllerRegs<'_, B>, info: &PmrInfo) -> Result<Pmrsts> {
    if !info.flushes_on_pmrsts_read() {
        return Err(Error::Unsupported {
            what: "flushing the persistent memory region by a PMRSTS read (PMRCAP.PMRWBM bit 1)",
        });
    }
    regs.bar0().barrier(Barrier::Mb);
    let sts = regs.pmrsts()?;
    present(regs, sts)?;
    health(sts)?;
    Ok(sts)
}

/// A [`P2pPool`] over the PMR's BAR that hands out data buffers only as PMRCAP.RDS/WDS allow,
/// aligned to the controller's memory page size, and any memory for the CPU's own use.
///
/// Cloning gives another handle on the same pool.
#[derive(Clone)]
pub struct PmrPool<B: Backend> {
    pool: P2pPool<B>,
    info: PmrInfo,
    page_size: u64,
}

impl<B: Backend> fmt::Debug for PmrPool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PmrPool")
            .field("info", &self.info)
            .field("page_size", &self.page_size)
            .field("stats", &self.pool.stats())
            .finish()
    }
}

impl<B: Backend> PmrPool<B> {
    /// A pool over the PMR described by `info`, in `bar`: a mapping of the whole BAR
    /// `info.bir` (the PMR is all of it; the mapping may be longer, not shorter). Buffers are
    /// aligned to the page size of `cc` (CC.MPS), which is also the granularity.
    pub fn new(bar: B, info: PmrInfo, cc: Cc) -> Result<Self> {
        let page_size = cc.page_size();
        let len = usize::try_from(info.size)
            .map_err(|_| invalid("the PMR does not fit in the address space"))?;
        // CAST: CC.MPS is at most 15, so the page size is at most 128 MiB, which fits usize.
        let config = P2pConfig::new(info.bus_addr)
            .range(0..len)
            .granularity(page_size as usize);
        Ok(PmrPool {
            // SAFETY: `info.bus_addr` is where devices reach the PMR, all of BAR `info.bir`
            // (`PmrInfo`'s invariant: decoded against that `PciBar`); `bar` maps that BAR.
            pool: unsafe { P2pPool::with_config(bar, config) }?,
            info,
            page_size,
        })
    }

    /// What the controller reported.
    pub fn info(&self) -> &PmrInfo {
        &self.info
    }

    /// The underlying pool.
    pub fn pool(&self) -> &P2pPool<B> {
        &self.pool
    }

    /// The pool's use.
    pub fn stats(&self) -> P2pStats {
        self.pool.stats()
    }

    /// A handle on the whole PMR, for the CPU's reads and writes (persistent after a flush).
    pub fn io(&self) -> crate::IoMem<'_, [u8], B> {
        self.pool.io()
    }

    fn page_aligned(&self, bytes: usize) -> Result<P2pBuf<B>> {
        // CAST: at most 128 MiB (CC.MPS ≤ 15), which fits usize.
        Ok(self.pool.alloc(bytes, self.page_size as usize)?)
    }

    /// A page-aligned buffer for the CPU's own use (not to be named by a data pointer unless
    /// RDS/WDS allow it: use the `alloc_*_buf` methods for that).
    pub fn alloc(&self, bytes: usize) -> Result<P2pBuf<B>> {
        self.page_aligned(bytes)
    }

    /// A page-aligned buffer if `allowed`, else [`Error::Unsupported`] naming `what`.
    fn gated(&self, allowed: bool, what: &'static str, bytes: usize) -> Result<P2pBuf<B>> {
        if !allowed {
            return Err(Error::Unsupported { what });
        }
        self.page_aligned(bytes)
    }

    /// A page-aligned buffer for the data of Read commands (controller to PMR). Needs
    /// PMRCAP.RDS.
    pub fn alloc_read_buf(&self, bytes: usize) -> Result<P2pBuf<B>> {
        let what = "read data in the persistent memory region (PMRCAP.RDS)";
        self.gated(self.info.rds, what, bytes)
    }

    /// A page-aligned buffer for the data of Write commands (PMR to controller). Needs
    /// PMRCAP.WDS.
    pub fn alloc_write_buf(&self, bytes: usize) -> Result<P2pBuf<B>> {
        let what = "write data in the persistent memory region (PMRCAP.WDS)";
        self.gated(self.info.wds, what, bytes)
    }

    /// A page-aligned buffer for both. Needs PMRCAP.RDS and WDS.
    pub fn alloc_data_buf(&self, bytes: usize) -> Result<P2pBuf<B>> {
        let what = "read and write data in the persistent memory region (PMRCAP.RDS and WDS)";
        self.gated(self.info.rds && self.info.wds, what, bytes)
    }

    /// Makes every earlier write to the PMR persistent by the controller's mechanism: a
    /// PMRSTS read ([`flush`]) if PMRWBM bit 1 is set, else (bit 0) a full barrier and a
    /// 32-bit memory read of the PMR's first dword, and then PMRSTS judged by [`health`].
    pub fn flush<R: Backend>(&self, regs: &ControllerRegs<'_, R>) -> Result<Pmrsts> {
        if self.info.flushes_on_pmrsts_read() {
            return flush(regs, &self.info);
        }
        let io = self.io();
        io.barrier(Barrier::Mb);
        io.try_read32(0)?;
        let sts = regs.pmrsts()?;
        present(regs, sts)?;
        health(sts)?;
        Ok(sts)
    }
}
