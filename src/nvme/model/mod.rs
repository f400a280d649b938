//! A model NVMe controller for `cargo test` (feature `model`): the device side that drivers
//! and this crate's tests run against, after QEMU's `hw/nvme/ctrl.c` (7.2 where they differ,
//! unless noted) and the NVM Express Base Specification.
//!
//! [`NvmeModel`] serves BAR0 — the register file and the doorbells — as a [`MockIo`] whose
//! hooks see every access, reaches host memory only through the device side of a [`MockDma`]
//! (so a stray address is refused, as an IOMMU would), and optionally has a Controller Memory
//! Buffer in a second [`MockIo`]. It decodes raw little-endian submission queue entries
//! itself (it shares no command type with the driver side) and posts completion entries with
//! the phase tag.
//!
//! What it does:
//! - registers (`regs.rs`): CAP, VS, CC, CSTS, AQA, ASQ, ACQ, CMBLOC/CMBSZ/CMBMSC/CMBSTS per
//!   [`CmbScheme`](crate::nvme::cmb::CmbScheme), PMRCAP/PMRCTL/PMRSTS/PMRMSC with a
//!   [`PmrConfig`] (PMRSTS reads flush, [`NvmeModel::pmr_persisted`]); any access width, 64-bit registers as one
//!   8-byte or two 4-byte accesses. CC.EN 0 → 1 checks the admin queues and CC like QEMU (a bad
//!   setting sets CSTS.CFS), then CSTS.RDY after [`ModelConfig::ready_delay`]; CC.EN 1 → 0
//!   resets; CC.SHN sets SHST = complete.
//! - queues (`queues.rs`): every tail doorbell fetches the new entries and executes them at
//!   once; a full completion queue holds completions until its head moves; bad doorbell
//!   writes are ignored and recorded ([`ModelStats::ignored_doorbells`]).
//! - admin (`admin.rs`): Identify CNS 0/1/2, Set/Get Features (Number of Queues granted as
//!   `min(requested, max_io_queues)`), Create/Delete I/O CQ/SQ with QEMU's checks and codes.
//! - NVM (`io.rs`): Read, Write, Flush, Write Zeroes on namespace 1, MDTS and bounds checked,
//!   data moved through the PRPs with QEMU's walk and CMB/PMR placement rule (`prp.rs`).
//! - faults ([`Fault`]): a status instead of execution, delayed and lost completions, a fatal
//!   controller, a vanished device (reads 0 or all ones), a controller that never gets ready.
//!
//! Differences from QEMU, on purpose: Set Features Number of Queues grants
//! `min(requested, max)` (QEMU always grants its maximum); a queue created in the CMB needs
//! CMBSZ.SQS/CQS (else Invalid Use of Controller Memory Buffer; QEMU accepts a CQ there);
//! CC.IOSQES/IOCQES are checked at I/O queue creation (as later QEMU does: Invalid Queue
//! Size), not at enable; Create I/O CQ/SQ with PC = 0 is Invalid Field in Command even when
//! [`ModelConfig::cqr`] is false (the model keeps queues contiguous); interrupts are not
//! modelled. A fault's `times` counts matching commands, [`Fault::FOREVER`] for all.
//!
//! # Example: enable, Identify Controller
//! ```
//! use iomem::dma::MockDma;
//! use iomem::nvme::model::{ModelConfig, NvmeModel};
//! use iomem::nvme::regs::{offsets, ControllerRegs};
//! use iomem::IoMem;
//!
//! let dma = MockDma::new(1 << 20);
//! let model = NvmeModel::new(ModelConfig::default(), dma.clone())?;
//! let bar0 = model.bar0();
//! let regs = ControllerRegs::new(IoMem::new(&*bar0))?;
//! let (asq, acq, id) = (dma.alloc(4096)?, dma.alloc(4096)?, dma.alloc(4096)?);
//! let (asq_l, acq_l, id_l) = (asq.lease(), acq.lease(), id.lease());
//! let addr = |l: &iomem::dma::Lease<_>| l.addr(0).map(|a| a.get());
//! regs.try_write32(offsets::AQA, 0x000f_000f)?; // 16 entries each
//! regs.try_write64_hi_lo(offsets::ASQ, addr(&asq_l)?)?;
//! regs.try_write64_hi_lo(offsets::ACQ, addr(&acq_l)?)?;
//! regs.try_write32(offsets::CC, 0x0046_0001)?; // IOCQES 4, IOSQES 6, EN
//! assert_eq!(regs.try_read32(offsets::CSTS)? & 1, 1); // ready at once by default
//!
//! let mut sqe = [0u8; 64]; // Identify (06h), CID 7, CNS 1 (controller)
//! sqe[0] = 0x06;
//! sqe[2] = 7;
//! sqe[24..32].copy_from_slice(&addr(&id_l)?.to_le_bytes());
//! sqe[40] = 1;
//! asq.mem().subslice(0..64)?.copy_from_slice(&sqe)?;
//! regs.try_write32(0x1000, 1)?; // admin SQ tail = 1
//!
//! let mut cqe = [0u8; 16];
//! acq.mem().subslice(0..16)?.copy_to_slice(&mut cqe)?;
//! let dw3 = u32::from_le_bytes([cqe[12], cqe[13], cqe[14], cqe[15]]);
//! assert_eq!((dw3 & 0xffff, dw3 >> 16 & 1, dw3 >> 17), (7, 1, 0)); // CID 7, phase 1, success
//! let mut ident = [0u8; 4096];
//! id.mem().copy_to_slice(&mut ident)?;
//! assert_eq!((ident[512], ident[513]), (0x66, 0x44)); // SQES, CQES
//! assert_eq!(model.log()[0].opcode, 0x06);
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::vec::Vec;

use crate::backend::mock::WriteEffect;
use crate::backend::{Caching, MockIo};
use crate::dma::MockDma;
use crate::nvme::cmb::{BarTable, PciBar};
use crate::nvme::Result;

mod admin;
mod command;
mod config;
mod ctrl;
mod fault;
mod io;
mod log;
mod prp;
mod queues;
mod regs;

pub use config::{CmbConfig, ModelConfig, PmrConfig};
pub use fault::{Fault, Target, Vanish};
pub use log::{IgnoredDoorbell, ModelStats, Processed, Prps};

use ctrl::Ctrl;

static_assertions::assert_impl_all!(NvmeModel: Send, Sync);

/// A model NVMe controller. See the [module docs](self).
///
/// Cloning gives another handle on the same controller.
#[derive(Clone)]
pub struct NvmeModel {
    ctrl: Arc<Mutex<Ctrl>>,
    bar0: Arc<MockIo>,
    cmb: Option<Arc<MockIo>>,
    pmr: Option<Arc<MockIo>>,
    bars: BarTable,
    /// The vanish state the CMB's hooks read (they must not take the controller's lock: the
    /// controller holds it while it reaches the CMB). 0: present, 1: zeros, 2: all ones.
    vanish: Arc<AtomicU8>,
}

impl core::fmt::Debug for NvmeModel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NvmeModel")
            .field("bars", &self.bars)
            .finish_non_exhaustive()
    }
}

impl NvmeModel {
    /// A controller with `config`, reaching host memory through `dma` (a clone of the
    /// driver's: clones share the arena). A configuration the model cannot be is
    /// [`Error::Core`](crate::nvme::Error::Core) with
    /// [`InvalidArgument`](crate::Error::InvalidArgument) naming the field.
    pub fn new(config: ModelConfig, dma: MockDma) -> Result<Self> {
        config.check()?;
        let bar0_size = config.bar0_size();
        let bar0 = Arc::new(MockIo::new(bar0_size));
        let vanish = Arc::new(AtomicU8::new(0));
        let cmb = config.cmb.map(|c| {
            // CAST: the BAR is at most 1 GiB (checked).
            let io =
                Arc::new(MockIo::new(c.bar_size() as usize).with_caching(Caching::WriteCombining));
            let v = vanish.clone();
            io.on_read(0..c.bar_size() as usize, move |_, a| {
                gone(&v).map(|g| g.value(a.width))
            });
            let v = vanish.clone();
            io.on_write(0..c.bar_size() as usize, move |_, _| match gone(&v) {
                Some(_) => WriteEffect::Discard,
                None => WriteEffect::Store,
            });
            io
        });
        // The model's BARs are made up, and only the model decodes them: addresses of the mock
        // world, as `MockDma`'s are (see `DmaAddr`).
        // CAST: BAR0 is at most a few MiB (at most 1025 queue pairs, stride ≤ 1 KiB).
        // SAFETY: BAR0 of the model function, at its configured bus address.
        let bar0_bar = unsafe { PciBar::new(config.bar0_bus_addr, bar0_size as u64) }?;
        let mut bars = BarTable::new().with(0, bar0_bar)?;
        if let Some(c) = config.cmb {
            // SAFETY: the model's CMB BAR, which the model decodes at `c.bus_addr`.
            let bar = unsafe { PciBar::new(c.bus_addr, c.bar_size()) }?;
            bars = bars.with(usize::from(c.bar), bar)?;
        }
        let pmr = config.pmr.map(|c| pmr_bar(c.size, &vanish));
        if let Some(c) = config.pmr {
            // SAFETY: the model's PMR BAR, which the model decodes at `c.bus_addr`.
            let bar = unsafe { PciBar::new(c.bus_addr, c.size) }?;
            bars = bars.with(usize::from(c.bar), bar)?;
        }
        let pmr_bar = pmr.as_ref().map(|p| p.bar.clone());
        let ctrl = Arc::new(Mutex::new(Ctrl::new(config, dma, cmb.clone(), pmr)));
        let c = ctrl.clone();
        bar0.on_read(0..bar0_size, move |_, a| {
            let v = lock(&c).mmio_read(a.offset, a.width);
            Some(v)
        });
        let c = ctrl.clone();
        bar0.on_write(0..bar0_size, move |_, a| {
            lock(&c).mmio_write(a.offset, a.width, a.value);
            WriteEffect::Discard
        });
        Ok(NvmeModel {
            ctrl,
            bar0,
            cmb,
            pmr: pmr_bar,
            bars,
            vanish,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Ctrl> {
        lock(&self.ctrl)
    }

    /// BAR0: the register file and the doorbells ([`Caching::Uncached`]).
    pub fn bar0(&self) -> Arc<MockIo> {
        self.bar0.clone()
    }

    /// The CMB's BAR ([`Caching::WriteCombining`]), if the controller has a CMB; the CMB is
    /// its first [`CmbConfig::size`] bytes.
    pub fn cmb_bar(&self) -> Option<Arc<MockIo>> {
        self.cmb.clone()
    }

    /// The PMR's BAR ([`Caching::WriteCombining`]: QEMU's is prefetchable), if the controller
    /// has a PMR; all of it is the PMR. It reads 0 and ignores writes while PMRCTL.EN = 0.
    pub fn pmr_bar(&self) -> Option<Arc<MockIo>> {
        self.pmr.clone()
    }

    /// The PMR's contents as of the last flush (a PMRSTS read while ready, PMRWBM bit 1):
    /// what a power loss would leave. Zeros before the first flush; `None` without a PMR.
    pub fn pmr_persisted(&self) -> Option<Vec<u8>> {
        self.lock().pmr.as_ref().map(|p| p.persisted.clone())
    }

    /// BAR0, the CMB's and the PMR's BARs at their bus addresses, for
    /// [`cmb::probe`](crate::nvme::cmb::probe) and [`pmr::probe`](crate::nvme::pmr::probe).
    pub fn bars(&self) -> BarTable {
        self.bars
    }

    /// Injects a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        if let Fault::Vanish(v) = fault {
            let code = match v {
                Vanish::Zeros => 1,
                Vanish::AllOnes => 2,
            };
            self.vanish.store(code, Ordering::SeqCst);
        }
        self.lock().faults.add(fault);
    }

    /// Removes every fault: per-command ones, `Fatal`, `Vanish` (the device is back, its
    /// state as it was) and `NeverReady`.
    pub fn clear_faults(&self) {
        self.vanish.store(0, Ordering::SeqCst);
        self.lock().faults = Default::default();
    }

    /// The bytes of `nlb` blocks from `slba` of namespace 1 (a backdoor: no command, no
    /// check; blocks past the end read as zeros).
    pub fn read_lbas(&self, slba: u64, nlb: u32) -> Vec<u8> {
        self.lock().ns.read(slba, nlb.into())
    }

    /// Stores `data` from block `slba` of namespace 1 (a backdoor; a short last block is
    /// zero-filled, blocks past the end are dropped).
    pub fn write_lbas(&self, slba: u64, data: &[u8]) {
        self.lock().ns.write(slba, data)
    }

    /// Lets time pass: sets CSTS.RDY once the ready delay is over and posts the delayed
    /// completions that are due (a BAR0 access does the same).
    pub fn advance(&self) {
        self.lock().tick()
    }

    /// What the model has done so far.
    pub fn stats(&self) -> ModelStats {
        let c = self.lock();
        let mut s = c.stats.clone();
        s.delayed = c.delayed.len() as u64;
        s.held = c.queues.cqs.values().map(|q| q.pending.len() as u64).sum();
        s
    }

    /// Every command processed, in order.
    pub fn log(&self) -> Vec<Processed> {
        self.lock().log.clone()
    }
}

fn lock(ctrl: &Mutex<Ctrl>) -> MutexGuard<'_, Ctrl> {
    // A panic under the lock leaves a model that is still consistent enough to inspect.
    ctrl.lock().unwrap_or_else(|e| e.into_inner())
}

/// The PMR's BAR: reads 0 and drops writes while disabled, and as the vanish state says.
fn pmr_bar(size: u64, vanish: &Arc<AtomicU8>) -> ctrl::Pmr {
    // CAST: the PMR is at most 1 GiB (checked).
    let len = size as usize;
    let bar = Arc::new(MockIo::new(len).with_caching(Caching::WriteCombining));
    let on = Arc::new(AtomicBool::new(false));
    let (v, o) = (vanish.clone(), on.clone());
    bar.on_read(0..len, move |_, a| match gone(&v) {
        Some(g) => Some(g.value(a.width)),
        None if !o.load(Ordering::SeqCst) => Some(0),
        None => None,
    });
    let (v, o) = (vanish.clone(), on.clone());
    bar.on_write(0..len, move |_, _| {
        if gone(&v).is_some() || !o.load(Ordering::SeqCst) {
            WriteEffect::Discard
        } else {
            WriteEffect::Store
        }
    });
    ctrl::Pmr {
        bar,
        on,
        persisted: std::vec![0; len],
    }
}

fn gone(v: &AtomicU8) -> Option<Vanish> {
    match v.load(Ordering::SeqCst) {
        0 => None,
        1 => Some(Vanish::Zeros),
        _ => Some(Vanish::AllOnes),
    }
}
