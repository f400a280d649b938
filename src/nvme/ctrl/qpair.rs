//! A queue pair: one submission queue, its completion queue, and the commands in flight.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::time::{Duration, Instant};

use super::health::{self, Health};
use super::slot::{retire, Run, Slot, DEVICE, LENDS, TIMED_OUT};
use crate::backend::Backend;
use crate::dma::{DmaRegion, Lease};
use crate::iomem::IoMem;
use crate::nvme::cmd::{Lent, Request};
use crate::nvme::cq::CompletionQueue;
use crate::nvme::prp::BufId;
use crate::nvme::regs::ControllerRegs;
use crate::nvme::sq::{SqRing, SubmissionQueue};
use crate::nvme::{Error, Result, Status};
use crate::order::{instructions, orders_accesses, AccessKind, Arch, Barrier};

/// Polls between two health and deadline checks.
const CHECK_EVERY: u32 = 256;

/// One completed command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// Submission queue identifier.
    pub qid: u16,
    /// Command identifier.
    pub cid: u16,
    /// The command's opcode.
    pub opcode: u8,
    /// Dword 0 of the completion: the command-specific result.
    pub result: u32,
    /// The completion's status.
    pub status: Status,
}

impl Done {
    /// The completion if its status is success, else [`Error::CommandFailed`] with the cid,
    /// opcode and status.
    pub fn ok(self) -> Result<Done> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(Error::CommandFailed {
                qid: self.qid,
                cid: self.cid,
                opcode: self.opcode,
                status: self.status,
            })
        }
    }
}

/// Whether `arch`'s `dma_rmb` — issued after every completion's phase tag — already orders that
/// load before later loads from device memory, by the barrier table ([`instructions`]) and the
/// ordering model ([`orders_accesses`]): yes on aarch64 (`dmb oshld`: loads of every memory
/// type) and riscv64 (`fence ir,ir`: `i` is device input); no on powerpc64 (`lwsync` leaves
/// caching-inhibited accesses unordered) and on x86_64, where `dma_rmb` is a compiler fence —
/// TSO keeps loads from write-back and uncached memory in order, but loads from a
/// write-combining mapping (a CMB) are weakly ordered and may be speculated ahead, which is
/// what `rmb()`'s `lfence` is for.
fn dma_rmb_orders_device_loads(arch: Arch) -> bool {
    instructions(arch, Barrier::DmaRmb)
        .iter()
        .any(|i| orders_accesses(arch, i, AccessKind::RamLoad, AccessKind::DeviceLoad))
}

/// A submission queue and its completion queue, with the commands in flight.
///
/// A queue pair: one submission queue, its completion queue, and the commands in flight.
///
/// [`Self::push`] gives a command a free command identifier, records what it lends the
/// device, and writes it into the submission queue; [`Self::ring`] publishes everything
/// pushed since the last ring with one doorbell write (SPDK's `delay_cmd_submit`);
/// [`Self::poll`] reaps completions, hands each command's memory back (its
/// [`Lent`](crate::nvme::cmd::Lent) completes), and writes the completion queue's head
/// doorbell once per batch.
///
/// For repeated data commands, [`Self::prepare`] checks a Read or Write once against its
/// namespace, the maximum transfer and the data-pointer rules, and [`Self::push_prepared`]
/// pushes it with only the starting LBA, the offset into a registered buffer and the cid
/// varying (see [`Prepared`](super::Prepared)).
///
/// A queue pair owns everything it uses (its rings, a handle on BAR0 `D`, a share of the
/// controller's health), so it is `Send` when those are and moves to the thread that uses it;
/// its submit path takes no lock.
///
/// # Deadlines and vanished devices
/// Every 256th poll, and every time [`wait`](Self::wait) spins, the queue pair reads CSTS:
/// a vanished device (all-ones, or zeros as QEMU gives) ends the poll with
/// [`Error::DeviceGone`] at once, a fatal one with [`Error::Fatal`]. The same check stamps each
/// command in flight the first time it sees it, and reports [`Error::Timeout`] (cid, opcode) for
/// one stamped longer ago than the queue pair's command timeout — so no clock is read on the
/// submit path, and a command times out between one and one-plus-a-check-interval timeouts
/// after it was pushed. A timed-out command keeps its memory until the controller is reset.
///
/// `R` is where the submission ring lives (host memory or the CMB), `B` the DMA memory's
/// backend, `D` the handle on BAR0.
pub struct QueuePair<R: SqRing, B: Backend + Send + Sync + 'static, D: Backend> {
    pub(super) sq: SubmissionQueue<R, D>,
    cq: CompletionQueue<B, D>,
    bar: D,
    /// Slot `cid` describes the command with that identifier while it is in flight.
    pub(super) slots: Vec<Slot>,
    /// `lent[cid]`: what command `cid` lends the device, while it is in flight (empty
    /// otherwise, and for commands that lend nothing).
    lent: Vec<Lent<B>>,
    pub(super) free: Vec<u16>,
    ready: VecDeque<Done>,
    /// Buffers registered for the pair's life ([`register`](Self::register)).
    fixed: Vec<Option<Lease<B>>>,
    /// `runs[i]`: where registered buffer `i` is ([`Run::NONE`] when none is registered).
    pub(super) runs: Vec<Run>,
    pub(super) health: Arc<Health>,
    timeout: Duration,
    /// The origin of the slots' `seen` stamps.
    epoch: Instant,
    polls: u32,
    /// Whether data a completion announces may be in device memory and `dma_rmb` does not
    /// order its loads ([`dma_rmb_orders_device_loads`]): then `rmb` follows such completions.
    rmb_for_device: bool,
    /// A completion reaped since the last `rmb` announced device memory.
    device_reaped: bool,
    /// Every command may announce data in device memory ([`set_device_data`]).
    ///
    /// [`set_device_data`]: QueuePair::set_device_data
    pub(super) device_data: bool,
}

impl<R: SqRing, B: Backend + Send + Sync + 'static, D: Backend> core::fmt::Debug
    for QueuePair<R, B, D>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QueuePair")
            .field("sq", &self.sq)
            .field("cq", &self.cq)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl<R: SqRing, B: Backend + Send + Sync + 'static, D: Backend> QueuePair<R, B, D> {
    /// A pair over queues already created on the controller (by the caller's own bring-up, or
    /// a benchmark's null device); `sq` completes into `cq`, `bar` is BAR0 (for the health
    /// checks), commands time out after `timeout`.
    /// [`Controller::create_io_pair`](super::Controller::create_io_pair) makes them for a
    /// controller it brought up.
    pub fn new(
        sq: SubmissionQueue<R, D>,
        cq: CompletionQueue<B, D>,
        bar: D,
        timeout: Duration,
    ) -> Self {
        Self::with_health(sq, cq, bar, Arc::new(Health::default()), timeout)
    }

    pub(crate) fn with_health(
        sq: SubmissionQueue<R, D>,
        cq: CompletionQueue<B, D>,
        bar: D,
        health: Arc<Health>,
        timeout: Duration,
    ) -> Self {
        // At most entries - 1 commands are outstanding, and no more than the CQ can hold.
        let n = sq.entries().min(u32::from(cq.entries())) - 1;
        // CAST: `n` < 65536 (queue sizes are at most 65536).
        let n = n as u16;
        let rmb_for_device = !dma_rmb_orders_device_loads(bar.arch());
        QueuePair {
            sq,
            cq,
            bar,
            slots: alloc::vec![Slot::FREE; usize::from(n)],
            lent: (0..n).map(|_| Lent::none()).collect(),
            free: (0..n).rev().collect(),
            ready: VecDeque::new(),
            fixed: Vec::new(),
            runs: Vec::new(),
            health,
            timeout,
            epoch: Instant::now(),
            polls: 0,
            rmb_for_device,
            device_reaped: false,
            device_data: false,
        }
    }

    /// The submission queue's identifier.
    pub fn qid(&self) -> u16 {
        self.sq.qid()
    }

    /// Commands pushed and not yet completed (timed-out ones included).
    pub fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Commands that can be pushed now.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }

    /// How long a command may be in flight before a poll reports [`Error::Timeout`].
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The same pair with another command timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Declares whether commands of this pair may move data in device memory that the caller
    /// keeps itself (a CMB buffer given by [`PrpBuilder::borrow_p2p`], which lends nothing):
    /// then, on architectures whose `dma_rmb` does not order RAM loads before device loads
    /// (x86_64, powerpc64), every poll that reaped issues `rmb`, so the CPU reads that data
    /// only after the completion. Commands that lend device memory ([`Lent::holds_device_memory`])
    /// get it without this. Off by default: data in host RAM needs only the `dma_rmb` after each
    /// phase tag.
    ///
    /// [`PrpBuilder::borrow_p2p`]: crate::nvme::prp::PrpBuilder::borrow_p2p
    pub fn set_device_data(&mut self, device_data: bool) {
        self.device_data = device_data;
    }

    /// Registers `region` with the pair for its life: the pair takes one lease on it, so data
    /// pointers into it ([`PrpBuilder::borrow`] of [`registered`](Self::registered)) cost no
    /// reference count per command, and their requests lend nothing (io_uring's fixed buffers;
    /// SPDK registers its memory up front).
    ///
    /// The lease ends with [`unregister`](Self::unregister), which hands it back; a buffer still
    /// registered when the pair is retired or dropped is quarantined, not freed: a data pointer
    /// made from it may sit in a command of another queue, which the pair cannot see end.
    ///
    /// [`PrpBuilder::borrow`]: crate::nvme::prp::PrpBuilder::borrow
    pub fn register(&mut self, region: &DmaRegion<B>) -> BufId {
        let lease = region.lease();
        let run = Run::of(&lease);
        match self.fixed.iter().position(Option::is_none) {
            Some(i) => {
                self.fixed[i] = Some(lease);
                self.runs[i] = run;
                BufId::new(i)
            }
            None => {
                self.fixed.push(Some(lease));
                self.runs.push(run);
                BufId::new(self.fixed.len() - 1)
            }
        }
    }

    /// The lease of registered buffer `id`, to build data pointers from
    /// ([`PrpBuilder::borrow`](crate::nvme::prp::PrpBuilder::borrow)); [`Error::Core`]
    /// ([`InvalidArgument`](crate::Error::InvalidArgument)) for an id not registered.
    #[inline]
    pub fn registered(&self, id: BufId) -> Result<&Lease<B>> {
        match self.fixed.get(id.index()) {
            Some(Some(l)) => Ok(l),
            _ => Err(unregistered()),
        }
    }

    /// Ends registration `id` and hands its lease back: commands already pushed with data
    /// pointers into it are covered by that lease until the caller completes it (when no
    /// device will use the memory any more) or drops it (quarantine).
    pub fn unregister(&mut self, id: BufId) -> Result<Lease<B>> {
        let lease = self
            .fixed
            .get_mut(id.index())
            .and_then(Option::take)
            .ok_or_else(unregistered)?;
        self.runs[id.index()] = Run::NONE;
        Ok(lease)
    }

    /// The submission queue.
    pub fn sq(&self) -> &SubmissionQueue<R, D> {
        &self.sq
    }

    /// The completion queue.
    pub fn cq(&self) -> &CompletionQueue<B, D> {
        &self.cq
    }

    /// Writes `request`'s command into the submission queue under a free command identifier
    /// and keeps what it lends until its completion; returns the cid. The controller sees it
    /// at the next [`ring`](Self::ring).
    ///
    /// [`Error::QueueFull`] when no identifier or slot is free (reap completions first);
    /// [`Error::DeviceGone`]/[`Error::Fatal`] once a check found the controller dead. On error
    /// the request is dropped: its memory is quarantined, never freed under the device.
    #[inline(always)]
    pub fn push(&mut self, request: impl Into<Request<B>>) -> Result<u16> {
        self.health.get()?;
        let (mut cmd, lent) = request.into().into_parts();
        let Some(cid) = self.free.pop() else {
            return Err(self.full());
        };
        cmd.set_cid(cid);
        if let Err(e) = self.sq.push(&cmd) {
            // The cid goes back where it was (free, and next again); the request is dropped.
            self.free.push(cid);
            return Err(e);
        }
        let i = usize::from(cid);
        let lends = !lent.is_empty();
        let device = self.device_data || lent.holds_device_memory();
        let flags = if lends { LENDS } else { 0 } | if device { DEVICE } else { 0 };
        if lends {
            // A free cid's entry is empty (`reap_one` takes it), so there is nothing to drop;
            // were it not, forgetting it would leak the memory, never free it under the device.
            let old = core::mem::replace(&mut self.lent[i], lent);
            debug_assert!(old.is_empty());
            core::mem::forget(old);
        } else {
            // Nothing lent: no holder to keep or drop.
            core::mem::forget(lent);
        }
        self.slots[i] = Slot::pushed(cmd.opcode(), flags);
        Ok(cid)
    }

    #[cold]
    pub(super) fn full(&self) -> Error {
        Error::QueueFull {
            qid: self.sq.qid(),
            entries: self.sq.entries(),
        }
    }

    /// Publishes every command pushed since the last ring: one barrier and one doorbell write.
    /// Returns how many it published. [`Error::DeviceGone`]/[`Error::Fatal`] once a check
    /// found the controller dead (nothing is published then).
    #[inline]
    pub fn ring(&mut self) -> Result<u32> {
        self.health.get()?;
        self.sq.ring()
    }

    /// [`push`](Self::push) then [`ring`](Self::ring).
    pub fn submit(&mut self, request: impl Into<Request<B>>) -> Result<u16> {
        let cid = self.push(request)?;
        self.ring()?;
        Ok(cid)
    }

    /// Reaps up to `max` completions, calling `f` on each, and writes the completion queue's
    /// head doorbell once for all of them. Returns how many it reaped.
    ///
    /// Each reaped command's memory goes back to its owner. Every 256th call checks the
    /// controller and the deadlines (see the [type docs](QueuePair)). [`Error::UnknownCid`] for a
    /// completion naming no outstanding command (the entry is consumed).
    #[inline]
    pub fn poll(&mut self, max: usize, mut f: impl FnMut(Done)) -> Result<usize> {
        self.health.get()?;
        let mut n = 0;
        while n < max && !self.ready.is_empty() {
            let Some(d) = self.ready.pop_front() else {
                break;
            };
            self.free.push(d.cid);
            f(d);
            n += 1;
        }
        if n + 1 == max {
            // One completion wanted (a poll per command): no batch set up.
            match self.reap_one() {
                Ok(Some(d)) => {
                    self.free.push(d.cid);
                    f(d);
                    n += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    self.cq.ring_head();
                    return Err(e);
                }
            }
        } else if n < max {
            let QueuePair {
                cq,
                sq,
                slots,
                lent,
                free,
                device_reaped,
                ..
            } = self;
            let reaped = cq.drain(max - n, |c| {
                let d = retire(c, sq, slots, lent, device_reaped)?;
                free.push(d.cid);
                f(d);
                Ok(())
            });
            match reaped {
                Ok(k) => n += k,
                Err(e) => {
                    self.cq.ring_head();
                    return Err(e);
                }
            }
        }
        if self.cq.ring_head() > 0 {
            // What the completions announce (data in RAM or in the CMB) is read after them.
            self.cq_barrier();
        }
        self.polls = self.polls.wrapping_add(1);
        if self.polls % CHECK_EVERY == 0 {
            self.check()?;
        }
        Ok(n)
    }

    /// Polls until command `cid` completes and returns it (with [`Done::ok`] applied); other
    /// completions seen meanwhile are kept for the next [`poll`](Self::poll) or `wait` (their
    /// cids stay taken until then). Checks the
    /// controller and the deadlines while it waits: ends with [`Error::Timeout`] after the
    /// command timeout, or [`Error::DeviceGone`] as soon as the device is seen gone.
    pub fn wait(&mut self, cid: u16) -> Result<Done> {
        // Reaped by an earlier wait for another command, and kept.
        if let Some(i) = self.ready.iter().position(|d| d.cid == cid) {
            if let Some(d) = self.ready.remove(i) {
                self.free.push(cid);
                return d.ok();
            }
        }
        if self.slot(cid).is_none() {
            return Err(Error::UnknownCid {
                qid: self.sq.qid(),
                cid,
            });
        }
        let mut spins = 0u32;
        loop {
            let reaped = self.reap_one();
            self.cq.ring_head();
            match reaped? {
                Some(d) if d.cid == cid => {
                    self.free.push(cid);
                    self.cq_barrier();
                    return d.ok();
                }
                Some(d) => self.ready.push_back(d),
                None => {
                    spins += 1;
                    if spins % 16 == 0 {
                        self.check()?;
                        if self.slot(cid).is_none_or(|s| s.flags & TIMED_OUT != 0) {
                            return Err(self.timeout_error(cid));
                        }
                    }
                    if spins > 64 {
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
            }
        }
    }

    /// [`submit`](Self::submit) then [`wait`](Self::wait).
    pub fn execute(&mut self, request: impl Into<Request<B>>) -> Result<Done> {
        let cid = self.submit(request)?;
        self.wait(cid)
    }

    /// Checks the controller (CSTS) and the deadlines now: [`Error::DeviceGone`],
    /// [`Error::Fatal`] or [`Error::NotReady`] for a controller that is gone or broken, then
    /// [`Error::Timeout`] for the first command past its deadline (reported once).
    pub fn check(&mut self) -> Result<()> {
        self.health.get()?;
        let regs = ControllerRegs::new(IoMem::new(&self.bar))?;
        health::check_into(&regs, &self.health)?;
        // Nanoseconds since the epoch, plus one (0 is "not seen"): 2^64 ns is 584 years.
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let now = nanos(self.epoch.elapsed()).saturating_add(1);
        let timeout = nanos(self.timeout);
        let mut expired = None;
        // Stops once every command in flight has been seen.
        let mut left = self.in_flight();
        for (cid, s) in self.slots.iter_mut().enumerate() {
            if left == 0 {
                break;
            }
            if !s.live() {
                continue;
            }
            left -= 1;
            if s.seen == 0 {
                s.seen = now;
            } else if s.flags & TIMED_OUT == 0 && now - s.seen >= timeout {
                s.flags |= TIMED_OUT;
                // CAST: slot indices are cids, below 65536.
                expired.get_or_insert(cid as u16);
            }
        }
        match expired {
            Some(cid) => Err(self.timeout_error(cid)),
            None => Ok(()),
        }
    }

    fn timeout_error(&self, cid: u16) -> Error {
        Error::Timeout {
            qid: self.sq.qid(),
            cid,
            opcode: self.slot(cid).map_or(0, |s| s.opcode),
        }
    }

    fn slot(&self, cid: u16) -> Option<&Slot> {
        self.slots.get(usize::from(cid)).filter(|s| s.live())
    }

    /// One completion from the queue, its command retired. Its cid stays taken until the
    /// completion is handed out (so a kept completion is never confused with a later command
    /// under the same cid).
    #[inline(always)]
    fn reap_one(&mut self) -> Result<Option<Done>> {
        let Some(c) = self.cq.pop()? else {
            return Ok(None);
        };
        retire(
            c,
            &mut self.sq,
            &mut self.slots,
            &mut self.lent,
            &mut self.device_reaped,
        )
        .map(Some)
    }

    /// Orders the completions' loads before the loads of the data they announce. Data in host
    /// RAM is ordered by the `dma_rmb` already issued after each phase tag, on every
    /// architecture ([`orders_ram_loads`](crate::order::orders_ram_loads)). Data in device memory
    /// (a CMB) needs `rmb` where `dma_rmb` does not order device loads
    /// ([`dma_rmb_orders_device_loads`]), and only after a batch with a completion that may
    /// announce it: a command that lent device memory, or any command of a pair told so
    /// ([`set_device_data`](Self::set_device_data)).
    #[inline]
    fn cq_barrier(&mut self) {
        if self.rmb_for_device && core::mem::take(&mut self.device_reaped) {
            // Through BAR0's backend, as `IoMem::barrier` does, without building a handle.
            self.bar.barrier(Barrier::Rmb);
        }
    }

    /// Ends the pair after its queues were deleted on the controller: every command still in
    /// flight and both rings are handed back to their owners.
    ///
    /// # Safety
    /// The controller will not access the rings or any command's memory any more: both queues
    /// were deleted (Delete I/O SQ aborts the commands still in it), or the controller was
    /// reset.
    pub(crate) unsafe fn retire(self) {
        // Registered buffers (`fixed`) are dropped with the rest: quarantined (see `register`).
        let QueuePair { sq, cq, lent, .. } = self;
        for l in lent {
            // SAFETY: the caller's guarantee: the controller is done with this memory.
            unsafe { l.complete() };
        }
        // SAFETY: as above, for the rings.
        unsafe {
            sq.retire();
            cq.retire();
        }
    }
}

#[cold]
fn unregistered() -> Error {
    Error::Core(crate::Error::InvalidArgument(
        "no buffer is registered with the queue pair under this id",
    ))
}
