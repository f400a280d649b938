//! An NVMe controller, owned: bring-up, admin commands, I/O queue pairs, shutdown.
//!
//! [`Controller::new`] takes a handle on BAR0 (`D`: `Arc<BarMapping>`, `Arc<MockIo>`, or a
//! borrow) and the DMA memory for its admin queues, and brings the controller up as the
//! specification orders it: reset (CC.EN = 0, then CSTS.RDY = 0 within CAP.TO), admin queues
//! (AQA, ASQ, ACQ), CC (NVM command set, page size, entry sizes), enable (CSTS.RDY = 1 within
//! CAP.TO), Identify Controller. Every wait has a deadline and recognises a vanished device
//! (all-ones, or QEMU's zeros) at once, and a fatal one (CSTS.CFS).
//!
//! I/O queue pairs ([`QueuePair`]) are created with [`Controller::create_io_pair`] over host
//! memory or a ring in the CMB, and then belong to whoever holds them: they own a clone of the
//! BAR0 handle and a share of the controller's health verdict, so each can move to its own
//! thread and submit without locks.
//!
//! No lifetime parameters: a driver keeps a `Controller<Arc<BarMapping>, Mmio>` in a struct.
//!
//! # Example
//! With the controller model (feature `model`):
//! ```
//! # #[cfg(feature = "model")] {
//! use std::sync::Arc;
//! use iomem::dma::MockDma;
//! use iomem::nvme::ctrl::{Config, Controller, QueueMem};
//! use iomem::nvme::model::{ModelConfig, NvmeModel};
//!
//! let dma = MockDma::new(4 << 20);
//! let model = NvmeModel::new(ModelConfig::default(), dma.clone())?;
//! let mut ctrl = Controller::new(
//!     model.bar0(),
//!     QueueMem::host(&dma, 32)?,
//!     dma.alloc(4096)?,
//!     Config::default(),
//! )?;
//! let ns = ctrl.identify_namespace(1)?;
//! let mut qp = ctrl.create_io_pair(QueueMem::host(&dma, 64)?)?;
//! assert_eq!(qp.qid(), 1);
//! # let _ = (&mut qp, ns);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod health;
mod prepared;
mod qpair;
mod reap;
mod slot;

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::dma::{DmaProvider, DmaRegion};
use crate::iomem::IoMem;
use crate::nvme::cmd::{admin, Lent, Request};
use crate::nvme::cq::CompletionQueue;
use crate::nvme::identify::{ActiveNamespaces, IdentifyController, IdentifyNamespace, Namespace};
use crate::nvme::prp::{no_list, CmbRule, PageSize, PrpBuilder};
use crate::nvme::regs::{Aqa, Cap, Cc, ControllerRegs, Csts, QueueBase, Shutdown, CQ_ENTRY_SIZE};
use crate::nvme::sq::{HostSqRing, SqRing, SubmissionQueue};
use crate::nvme::{invalid, Error, Result};

use health::Health;
pub use prepared::{DataOp, Prepared};
pub use qpair::{Done, QueuePair};

/// How a [`Controller`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Deadline of each command (admin and, by default, I/O). Default 5 s.
    pub command_timeout: Duration,
    /// Deadline of CSTS.RDY changes; `None` (the default) uses the controller's CAP.TO.
    pub ready_timeout: Option<Duration>,
    /// Deadline of a normal shutdown (CSTS.SHST = complete). Default 10 s.
    pub shutdown_timeout: Duration,
    /// Memory page size (CC.MPS), within CAP.MPSMIN..=MPSMAX. Default 4 KiB.
    pub page_size: u64,
    /// I/O queue pairs asked for with Set Features Number of Queues before the first
    /// [`create_io_pair`](Controller::create_io_pair). Default 8.
    pub io_queues: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            command_timeout: Duration::from_secs(5),
            ready_timeout: None,
            shutdown_timeout: Duration::from_secs(10),
            page_size: 4096,
            io_queues: 8,
        }
    }
}

/// Memory for one queue pair: a submission ring (`R`: host memory, or a ring in the CMB) and
/// a completion ring in host memory, each one run of device addresses (queues are created
/// physically contiguous), and the number of entries of each.
#[derive(Debug)]
pub struct QueueMem<B: Backend + Send + Sync + 'static, R: SqRing = HostSqRing<B>> {
    sq: R,
    cq: DmaRegion<B>,
    entries: u16,
}

impl<B: Backend + Send + Sync + 'static> QueueMem<B> {
    /// Both rings of `entries` entries in host memory from `dma`, contiguous.
    pub fn host<P: DmaProvider<Backend = B>>(dma: &P, entries: u16) -> Result<Self, P::Error> {
        let sq = dma.alloc_contiguous(usize::from(entries) * crate::nvme::regs::SQ_ENTRY_SIZE)?;
        let cq = dma.alloc_contiguous(usize::from(entries) * CQ_ENTRY_SIZE)?;
        let sq = HostSqRing::new(sq).map_err(|e| match e {
            Error::Core(c) => P::Error::from(c),
            _ => P::Error::from(crate::Error::InvalidArgument("submission ring")),
        })?;
        Ok(QueueMem { sq, cq, entries })
    }
}

impl<B: Backend + Send + Sync + 'static, R: SqRing> QueueMem<B, R> {
    /// A submission ring `sq` (host memory or the CMB, e.g.
    /// [`CmbPool::alloc_sq`](crate::nvme::cmb::CmbPool::alloc_sq)) and a completion ring
    /// `cq`, for queues of `entries` entries.
    pub fn new(sq: R, cq: DmaRegion<B>, entries: u16) -> Self {
        QueueMem { sq, cq, entries }
    }
}

/// An NVMe controller brought up and owned by the driver. See the [module docs](self).
pub struct Controller<D: Backend + Clone, B: Backend + Send + Sync + 'static> {
    bar: D,
    cap: Cap,
    cc: Cc,
    config: Config,
    health: Arc<Health>,
    admin: QueuePair<HostSqRing<B>, B, D>,
    scratch: DmaRegion<B>,
    /// Identify Controller, read during bring-up.
    ident: IdentifyController,
    /// The CMB data pointer rule, once a CMB is enabled.
    cmb: Option<CmbRule>,
    /// The PMR's bus range (address, bytes), once enabled with its memory space.
    pmr: Option<(u64, u64)>,
    /// Granted I/O queue pairs (Set Features Number of Queues), once asked.
    granted: Option<u16>,
    /// `qids[q]`: whether I/O queue pair `q` exists.
    qids: Vec<bool>,
    /// Disables the controller when the controller value is dropped (a controller dropped
    /// without [`shutdown`](Controller::shutdown) stops its DMA; the queues' memory is
    /// quarantined by their own drops).
    _disable: DisableOnDrop<D>,
}

/// Writes CC.EN = 0 when dropped, without waiting.
struct DisableOnDrop<D: Backend>(Option<D>);

impl<D: Backend> Drop for DisableOnDrop<D> {
    fn drop(&mut self) {
        let Some(bar) = self.0.take() else { return };
        if let Ok(regs) = ControllerRegs::new(IoMem::new(&bar)) {
            if let Ok(cc) = regs.cc() {
                regs.set_cc(cc.with_en(false));
            }
        }
    }
}

impl<D: Backend + Clone, B: Backend + Send + Sync + 'static> core::fmt::Debug for Controller<D, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Controller")
            .field("cap", &self.cap)
            .field("cc", &self.cc)
            .field("granted", &self.granted)
            .field("admin", &self.admin)
            .finish()
    }
}

impl<D: Backend + Clone, B: Backend + Send + Sync + 'static> Controller<D, B> {
    /// Resets and enables the controller behind `bar` (its BAR0) with admin queues in `admin`
    /// and `scratch` (≥ 4 KiB of DMA memory for Identify data), then identifies it.
    pub fn new(bar: D, admin: QueueMem<B>, scratch: DmaRegion<B>, config: Config) -> Result<Self> {
        check_scratch(&scratch)?;
        let regs = ControllerRegs::new(IoMem::new(&bar))?;
        let cap = regs.cap()?; // zeros or all-ones: DeviceGone
        regs.vs()?;
        let cc = Cc::from_raw(0)
            .with_css(0)?
            .with_page_size(config.page_size)?
            .with_ams(0)?
            .with_queue_entry_sizes(crate::nvme::regs::SQ_ENTRY_SIZE, CQ_ENTRY_SIZE)?;
        cc.check_against(cap)?;
        let ready_ms = ready_ms(&config, cap);

        // Reset.
        let cur = regs.cc()?;
        if cur.en() {
            regs.set_cc(cur.with_en(false));
        }
        wait_ready(&regs, false, ready_ms)?;

        // Admin queues.
        // At most what AQA holds (4096) and CAP.MQES + 1.
        let max = cap.max_queue_entries().min(4096);
        // CAST: `max` ≤ 4096.
        let entries = admin.entries.clamp(2, max as u16);
        let health = Arc::new(Health::default());
        let sq = SubmissionQueue::new(admin.sq, entries.into(), bar.clone(), cap, 0)?;
        let cq = CompletionQueue::new(admin.cq, entries, bar.clone(), cap, 0)?;
        regs.set_aqa(Aqa::new(entries, entries)?);
        regs.set_asq(QueueBase::new(sq.dma_addr())?);
        regs.set_acq(QueueBase::new(cq.dma_addr())?);
        let mut admin =
            QueuePair::with_health(sq, cq, bar.clone(), health.clone(), config.command_timeout);

        // Enable. From here a failed bring-up disables the controller again (the guard's drop):
        // a half-brought-up controller does not keep fetching from rings nobody serves.
        let disable = DisableOnDrop(Some(bar.clone()));
        regs.set_cc(cc);
        regs.set_cc(cc.with_en(true));
        wait_ready(&regs, true, ready_ms)?;
        let page = PageSize::from_cc(cc);
        let data = identify_into(&mut admin, &scratch, page, admin::Cns::Controller, 0)?;
        let ident = IdentifyController::decode(&data)?;

        Ok(Controller {
            bar: bar.clone(),
            cap,
            cc,
            config,
            health,
            admin,
            scratch,
            ident,
            cmb: None,
            pmr: None,
            granted: None,
            qids: vec![false; 1],
            _disable: disable,
        })
    }

    /// The controller's registers, for what this type has no method for.
    pub fn regs(&self) -> Result<ControllerRegs<'_, D>> {
        ControllerRegs::new(IoMem::new(&self.bar))
    }

    /// The BAR0 handle.
    pub fn bar(&self) -> &D {
        &self.bar
    }

    /// Finds the Controller Memory Buffer in `bars` (the device's BARs), enables it (NVMe 1.4+:
    /// CMBMSC), and from then on checks every data pointer [`prp`](Self::prp) builds against
    /// the controller's CMB data pointer rule. `None` for a controller without a CMB. Map the
    /// CMB's BAR and wrap it in a [`CmbPool`](crate::nvme::cmb::CmbPool) to allocate from it.
    pub fn enable_cmb(
        &mut self,
        bars: &crate::nvme::cmb::BarTable,
        options: crate::nvme::cmb::ProbeOptions,
    ) -> Result<Option<crate::nvme::cmb::CmbInfo>> {
        let info = crate::nvme::cmb::probe_and_enable(&self.regs()?, bars, options)?;
        self.cmb = info.as_ref().map(|i| CmbRule::new(i, true));
        Ok(info)
    }

    /// CAP as read at bring-up.
    pub fn cap(&self) -> Cap {
        self.cap
    }

    /// CC as the controller was enabled with.
    pub fn cc(&self) -> Cc {
        self.cc
    }

    /// The memory page size the controller runs with (CC.MPS): what PRPs are built for.
    pub fn page_size(&self) -> PageSize {
        PageSize::from_cc(self.cc)
    }

    /// Identify Controller, as read at bring-up.
    pub fn identify(&self) -> &IdentifyController {
        &self.ident
    }

    /// The largest data transfer of one command (MDTS), if the controller limits it.
    pub fn max_transfer(&self) -> Result<Option<usize>> {
        self.ident.max_transfer(self.cap.mpsmin_bytes())
    }

    /// A PRP builder for this controller: its page size (CC.MPS) and, once a CMB is enabled,
    /// its CMB data pointer rule.
    pub fn prp(&self) -> PrpBuilder {
        let rule = match (self.cmb, self.pmr) {
            (Some(r), Some((addr, size))) => Some(r.with_pmr(addr, size)),
            (Some(r), None) => Some(r),
            (None, Some((addr, size))) => Some(CmbRule::pmr_only(addr, size)),
            (None, None) => None,
        };
        PrpBuilder::new(self.page_size(), rule)
    }

    /// Finds the Persistent Memory Region in `bars` and enables it (PMRCTL.EN, then its memory
    /// space where PMRCAP.CMSS); from then on [`prp`](Self::prp) counts PMR addresses as the
    /// controller's own memory in the data pointer rule (as it does the CMB's). `None` for a
    /// controller without a PMR. Map its BAR and wrap it in a
    /// [`PmrPool`](crate::nvme::pmr::PmrPool) to allocate from it.
    pub fn enable_pmr(
        &mut self,
        bars: &crate::nvme::cmb::BarTable,
    ) -> Result<Option<crate::nvme::pmr::PmrInfo>> {
        let regs = self.regs()?;
        let Some(info) = crate::nvme::pmr::probe(&regs, bars)? else {
            return Ok(None);
        };
        crate::nvme::pmr::enable(&regs, &info)?;
        // Without a controller memory space (CMSS clear) the controller does not treat PMR
        // addresses as its own in data pointers.
        self.pmr = info.cmss.then_some((info.bus_addr, info.size));
        Ok(Some(info))
    }

    /// Sets the CMB data pointer rule [`prp`](Self::prp) applies (after enabling a CMB by hand
    /// with [`cmb::enable`](crate::nvme::cmb::enable); [`enable_cmb`](Self::enable_cmb) does
    /// both).
    pub fn set_cmb_rule(&mut self, rule: Option<CmbRule>) {
        self.cmb = rule;
    }

    /// Whether the controller is still there and well: CSTS read and judged (see
    /// [`Error::DeviceGone`], [`Error::Fatal`], [`Error::NotReady`]).
    pub fn check(&self) -> Result<Csts> {
        self.health.get()?;
        health::check_into(&self.regs()?, &self.health)
    }

    /// The admin queue pair, for commands this type has no method for.
    pub fn admin(&mut self) -> &mut QueuePair<HostSqRing<B>, B, D> {
        &mut self.admin
    }

    /// Hands the controller `scratch` (≥ 4 KiB of DMA memory, lent to nothing) as its page
    /// for Identify data, and returns the page it had. What an Identify that got no completion
    /// leaves the driver to do: its page stays lent to that command (the returned region may
    /// be dropped; the command's lease keeps the memory from reuse), and every Identify until
    /// then fails with [`Error::Busy`]. A region too small ([`Error::Core`] with
    /// [`InvalidArgument`](crate::Error::InvalidArgument)) or lent elsewhere
    /// ([`Error::Busy`]) is refused and handed back.
    pub fn replace_scratch(
        &mut self,
        scratch: DmaRegion<B>,
    ) -> core::result::Result<DmaRegion<B>, (Error, DmaRegion<B>)> {
        match check_scratch(&scratch) {
            Ok(()) => Ok(core::mem::replace(&mut self.scratch, scratch)),
            Err(e) => Err((e, scratch)),
        }
    }

    fn identify_raw(&mut self, cns: admin::Cns, nsid: u32) -> Result<[u8; 4096]> {
        let page = self.page_size();
        identify_into(&mut self.admin, &self.scratch, page, cns, nsid)
    }

    /// Identify Namespace `nsid`, as a [`Namespace`] the NVM command builders check against
    /// (block size, capacity, the controller's MDTS).
    pub fn identify_namespace(&mut self, nsid: u32) -> Result<Namespace> {
        let data = self.identify_raw(admin::Cns::Namespace, nsid)?;
        let id = IdentifyNamespace::decode(&data)?;
        Namespace::new(nsid, &id, &self.ident, self.cap.mpsmin_bytes())
    }

    /// The active namespace IDs (Identify CNS 02h), in increasing order.
    pub fn active_namespaces(&mut self) -> Result<Vec<u32>> {
        let data = self.identify_raw(admin::Cns::ActiveNamespaces, 0)?;
        Ok(ActiveNamespaces::decode(&data)?.ids().to_vec())
    }

    /// Set Features Number of Queues for `n` I/O submission and completion queues; returns
    /// how many pairs the controller granted (it may grant fewer, or more).
    pub fn set_queue_count(&mut self, n: u16) -> Result<u16> {
        let cmd = admin::set_features(admin::Feature::NumberOfQueues { sq: n, cq: n })?;
        let done = self.admin.execute(cmd)?;
        let counts = admin::QueueCounts::from_result(done.result);
        // CAST: at most 65536 pairs; qid 65535 is the largest an I/O queue can have.
        let granted = counts.sq.min(counts.cq).min(u32::from(u16::MAX)) as u16;
        self.granted = Some(granted);
        self.qids.resize(usize::from(granted) + 1, false);
        Ok(granted)
    }

    /// Creates I/O completion queue and submission queue `q` (the lowest free identifier) over
    /// `mem`, both physically contiguous, with `min(mem entries, CAP.MQES + 1)` entries, and
    /// returns the pair. Asks for [`Config::io_queues`] queues first if nobody has.
    pub fn create_io_pair<R: SqRing>(&mut self, mem: QueueMem<B, R>) -> Result<QueuePair<R, B, D>> {
        let granted = match self.granted {
            Some(g) => g,
            None => self.set_queue_count(self.config.io_queues)?,
        };
        let Some(qid) = (1..=granted).find(|&q| !self.qids[usize::from(q)]) else {
            // SAFETY: no command named either ring to the controller: they go back to their
            // owners (a refusal is not a fault, so nothing is quarantined).
            unsafe { mem.sq.retire() };
            return Err(Error::Unsupported {
                what: "more I/O queue pairs than Set Features Number of Queues granted",
            });
        };
        let max = u16::try_from(self.cap.max_queue_entries()).unwrap_or(u16::MAX);
        let entries = mem.entries.min(max);
        let cq = CompletionQueue::new(mem.cq, entries, self.bar.clone(), self.cap, qid)?;
        let sq = SubmissionQueue::new(mem.sq, entries.into(), self.bar.clone(), self.cap, qid)?;
        let create_cq = admin::create_io_cq(qid, entries, cq.dma_addr(), None)?;
        // SAFETY: the command names the CQ ring, which `cq` holds (and the pair after it; a
        // queue dropped unretired quarantines its ring, as a create that fails without a status
        // leaves it), lent to no other command.
        let create_cq = unsafe { Request::new(create_cq.into_command(), Lent::none()) };
        if let Err(e) = self.admin.execute(create_cq) {
            if matches!(e, Error::CommandFailed { .. }) {
                // SAFETY: the controller completed Create I/O CQ with an error status, so it
                // created no queue over the CQ ring, and no command named the SQ ring.
                unsafe { retire_rings(sq, cq) };
            }
            // Otherwise (no completion, a dead controller) both stay quarantined.
            return Err(e);
        }
        let create_sq =
            admin::create_io_sq(qid, entries, sq.dma_addr(), qid, admin::Priority::Medium)?;
        // SAFETY: as for `create_cq`, with the SQ ring, which `sq` holds.
        let create_sq = unsafe { Request::new(create_sq.into_command(), Lent::none()) };
        if let Err(e) = self.admin.execute(create_sq) {
            // Take the CQ down again; the memory stays quarantined unless both the create
            // failed with a status (no SQ exists) and the delete succeeded (no CQ exists).
            let deleted = self.admin.execute(admin::delete_io_cq(qid)?).is_ok();
            if deleted && matches!(e, Error::CommandFailed { .. }) {
                // SAFETY: Create I/O SQ completed with an error (no SQ over the ring) and
                // Delete I/O CQ succeeded: the controller uses neither ring.
                unsafe { retire_rings(sq, cq) };
            }
            return Err(e);
        }
        self.qids[usize::from(qid)] = true;
        Ok(QueuePair::with_health(
            sq,
            cq,
            self.bar.clone(),
            self.health.clone(),
            self.config.command_timeout,
        ))
    }

    /// Deletes queue pair `qp` on the controller (SQ, then CQ) and gives its memory and that of
    /// any command still in it back. If a delete fails the pair's memory stays held
    /// (quarantined, never freed under the device).
    ///
    /// A pair this controller did not create is refused ([`Error::Core`] with
    /// [`InvalidArgument`](crate::Error::InvalidArgument)): deleting its qid here would take
    /// down one of this controller's own pairs, and its memory would be given back while its
    /// own controller still uses it. It is dropped, and so quarantined.
    pub fn delete_io_pair<R: SqRing>(&mut self, qp: QueuePair<R, B, D>) -> Result<()> {
        if !Arc::ptr_eq(&qp.health, &self.health) {
            return Err(invalid(
                "the queue pair belongs to another controller: delete it through that one",
            ));
        }
        let qid = qp.qid();
        self.admin.execute(admin::delete_io_sq(qid)?)?;
        self.admin.execute(admin::delete_io_cq(qid)?)?;
        if let Some(q) = self.qids.get_mut(usize::from(qid)) {
            *q = false;
        }
        // SAFETY: both queues were deleted: the controller aborted what was left in the SQ
        // and no longer reads or writes either ring or any of its commands' memory.
        unsafe { qp.retire() };
        Ok(())
    }

    /// Shuts the controller down (CC.SHN = normal, then CSTS.SHST = complete within the
    /// shutdown deadline), disables it (CC.EN = 0, CSTS.RDY = 0 within CAP.TO), and gives the
    /// admin queues' memory back. I/O queue pairs still held see the controller not ready from
    /// then on.
    pub fn shutdown(self) -> Result<()> {
        let Controller {
            bar,
            cap,
            config,
            admin,
            mut _disable,
            ..
        } = self;
        let regs = ControllerRegs::new(IoMem::new(&bar))?;
        let cc = regs.cc()?;
        regs.set_cc(cc.with_shn(Shutdown::Normal));
        let ms = millis(config.shutdown_timeout);
        let deadline = Instant::now() + config.shutdown_timeout;
        loop {
            let csts = regs.csts()?; // all-ones: DeviceGone
            if csts.is_shut_down() {
                break;
            }
            if csts.raw() == 0 {
                regs.cap()?; // QEMU's vanished device reads 0 everywhere
            }
            if Instant::now() > deadline {
                return Err(Error::WaitTimeout {
                    what: "CSTS.SHST = shutdown complete after CC.SHN = normal",
                    ms,
                });
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        regs.set_cc(cc.with_shn(Shutdown::None).with_en(false));
        wait_ready(&regs, false, ready_ms(&config, cap))?;
        _disable.0 = None;
        // SAFETY: the controller is disabled (CSTS.RDY = 0 after CC.EN = 0): a reset
        // controller accesses no host memory.
        unsafe { admin.retire() };
        Ok(())
    }
}

/// Gives both rings of a queue pair the controller does not use back to their owners.
///
/// # Safety
/// The controller does not access either ring (no queue exists over it, and none will).
unsafe fn retire_rings<R: SqRing, B: Backend + Send + Sync + 'static, D: Backend>(
    sq: SubmissionQueue<R, D>,
    cq: CompletionQueue<B, D>,
) {
    // SAFETY: the caller's guarantee, for each ring.
    unsafe {
        sq.retire();
        drop(cq.retire());
    }
}

/// A scratch page must hold an Identify structure and be lent to nothing: a lease on it that is
/// still out is a command that has not completed (an Identify that timed out), which may still
/// write it.
fn check_scratch<B: Backend>(scratch: &DmaRegion<B>) -> Result<()> {
    if scratch.len() < 4096 {
        return Err(invalid(
            "the scratch region must hold 4 KiB (one Identify structure)",
        ));
    }
    if scratch.holders() > 0 {
        return Err(Error::Busy {
            what: "the Identify scratch page",
        });
    }
    Ok(())
}

/// Identify with `cns` for `nsid` through `admin` into the scratch page; returns the 4 KiB read.
/// [`Error::Busy`] while the page is lent to an earlier command that has not completed.
fn identify_into<B: Backend + Send + Sync + 'static, D: Backend>(
    admin: &mut QueuePair<HostSqRing<B>, B, D>,
    scratch: &DmaRegion<B>,
    page: PageSize,
    cns: admin::Cns,
    nsid: u32,
) -> Result<[u8; 4096]> {
    check_scratch(scratch)?;
    // The scratch page is host memory (the CMB rule does not apply) and 4 KiB needs no PRP
    // list at pages of 4 KiB or more.
    let prp = PrpBuilder::new(page, None).lend(scratch.lease(), 0..4096, no_list)?;
    let req: Request<B> = prp.into_request(|d| admin::identify(cns, nsid, d))?;
    admin.execute(req)?;
    let mut data = [0u8; 4096];
    scratch.mem().subslice(..4096)?.copy_to_slice(&mut data)?;
    Ok(data)
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

fn ready_ms(config: &Config, cap: Cap) -> u64 {
    config.ready_timeout.map_or(cap.timeout_ms(), millis)
}

/// Waits until CSTS.RDY == `ready`, for at most `ms` milliseconds. A vanished device is
/// [`Error::DeviceGone`] on the first read that shows it; CFS while enabling is
/// [`Error::Fatal`].
fn wait_ready<B: Backend>(regs: &ControllerRegs<'_, B>, ready: bool, ms: u64) -> Result<Csts> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        let csts = regs.csts()?; // all-ones: DeviceGone
        if csts.rdy() == ready {
            return Ok(csts);
        }
        if ready {
            if csts.cfs() {
                return Err(Error::Fatal { csts: csts.raw() });
            }
            if csts.raw() == 0 {
                regs.cap()?; // QEMU's vanished device reads 0 everywhere
            }
        }
        if Instant::now() > deadline {
            regs.cap()?;
            return Err(Error::WaitTimeout {
                what: if ready {
                    "CSTS.RDY = 1 after CC.EN = 1"
                } else {
                    "CSTS.RDY = 0 after CC.EN = 0"
                },
                ms,
            });
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}
