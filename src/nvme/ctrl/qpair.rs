//! A queue pair: one submission queue, its completion queue, and the commands in flight.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::time::{Duration, Instant};

use super::health::Health;
use super::slot::{Run, Slot, DEVICE, LENDS, LIVE};
use crate::backend::Backend;
use crate::dma::{DmaRegion, Lease};
use crate::nvme::cmd::{Lent, Push};
use crate::nvme::cq::CompletionQueue;
use crate::nvme::prp::BufId;
use crate::nvme::sq::{SqRing, SubmissionQueue};
use crate::nvme::{Error, Result, Status};
use crate::order::{instructions, orders_accesses, AccessKind, Arch, Barrier};

/// Polls between two health checks.
pub(super) const CHECK_EVERY: u32 = 256;

/// A poll's check scans the deadlines at most this often per command timeout.
pub(super) const SCANS_PER_TIMEOUT: u64 = 8;

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
/// [`Error::DeviceGone`] at once, a fatal one with [`Error::Fatal`]; once a check, a push or a
/// ring found the controller dead, every poll fails at once. The same check stamps each
/// command in flight the first time it sees it, and reports [`Error::Timeout`] (cid, opcode) for
/// one stamped longer ago than the queue pair's command timeout — so no clock is read on the
/// submit path; each such command is reported once, one per check. A `wait` reports only its
/// own command's timeout: another command past its deadline (a lost completion, a long-lived
/// command) is left for the next poll or check. A poll's check scans the commands at most eight times per timeout (a `wait`'s
/// and [`check`](Self::check) every time), so a command times out between one and
/// one-and-a-quarter timeouts (plus a check interval) after it was pushed. A timed-out command
/// keeps its memory until the controller is reset.
///
/// # Command identifiers
/// A command's cid is the submission queue slot it is written to, when that cid is free (a
/// command completing in order frees it long before the ring comes round), else another free
/// cid: completions may come in any order, and a cid is never given to two commands in flight
/// (nor while a completion `wait` kept for it is not handed out yet).
///
/// `R` is where the submission ring lives (host memory or the CMB), `B` the DMA memory's
/// backend, `D` the handle on BAR0.
pub struct QueuePair<R: SqRing, B: Backend + Send + Sync + 'static, D: Backend> {
    pub(super) sq: SubmissionQueue<R, D>,
    pub(super) cq: CompletionQueue<B, D>,
    pub(super) bar: D,
    /// Slot `cid` describes the command with that identifier while it is in flight; one per
    /// submission queue slot (a cid is the slot a push wrote, unless that cid was still taken).
    pub(super) slots: Vec<Slot>,
    /// `lent[cid]`: what command `cid` lends the device, while it is in flight (empty
    /// otherwise, and for commands that lend nothing).
    pub(super) lent: Vec<Lent<B>>,
    /// Cids taken: commands in flight and kept completions.
    pub(super) taken: u32,
    /// The most cids taken at once: `entries - 1` of the smaller queue (the CQ holds every
    /// completion).
    pub(super) limit: u32,
    /// The flags a push records: [`LIVE`], and [`DEVICE`] under
    /// [`set_device_data`](Self::set_device_data).
    pub(super) push_flags: u8,
    pub(super) ready: VecDeque<Done>,
    /// Buffers registered for the pair's life ([`register`](Self::register)).
    fixed: Vec<Option<Lease<B>>>,
    /// `runs[i]`: where registered buffer `i` is ([`Run::NONE`] when none is registered).
    pub(super) runs: Vec<Run>,
    pub(super) health: Arc<Health>,
    pub(super) timeout: Duration,
    /// The origin of the slots' `seen` stamps.
    pub(super) epoch: Instant,
    /// When (since `epoch`, in ns) a poll's check scans the deadlines next.
    pub(super) next_scan: u64,
    /// Polls left before one takes the slow path (one decrement and test per poll): the check
    /// every [`CHECK_EVERY`] polls, kept completions to hand out, a dead controller (then every
    /// poll).
    pub(super) countdown: u32,
    /// What `countdown` was last set to.
    pub(super) armed: u32,
    /// Polls left before the check, as of when `countdown` was last set.
    pub(super) to_check: u32,
    /// [`DEVICE`] when `dma_rmb` does not order loads from device memory
    /// ([`dma_rmb_orders_device_loads`]): then `rmb` follows completions whose data may be
    /// there; else 0.
    pub(super) rmb_for: u8,
    /// The flags of the completions reaped since the last `rmb`, or-ed (one `or` per
    /// completion; [`DEVICE`] among them calls for the `rmb`).
    pub(super) reaped_flags: u8,
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
        let limit = sq.entries().min(u32::from(cq.entries())) - 1;
        // CAST: queue sizes are at most 65536.
        let entries = sq.entries() as usize;
        let rmb_for = if dma_rmb_orders_device_loads(bar.arch()) {
            0
        } else {
            DEVICE
        };
        QueuePair {
            sq,
            cq,
            bar,
            slots: alloc::vec![Slot::FREE; entries],
            lent: (0..entries).map(|_| Lent::none()).collect(),
            taken: 0,
            limit,
            push_flags: LIVE,
            ready: VecDeque::new(),
            fixed: Vec::new(),
            runs: Vec::new(),
            health,
            timeout,
            epoch: Instant::now(),
            next_scan: 0,
            countdown: CHECK_EVERY,
            armed: CHECK_EVERY,
            to_check: CHECK_EVERY,
            rmb_for,
            reaped_flags: 0,
        }
    }

    /// The submission queue's identifier.
    pub fn qid(&self) -> u16 {
        self.sq.qid()
    }

    /// Commands pushed and not yet completed (timed-out ones included).
    pub fn in_flight(&self) -> usize {
        // CAST: at most 65535.
        self.taken as usize
    }

    /// Commands that can be pushed now.
    pub fn free_slots(&self) -> usize {
        // CAST: at most 65535.
        (self.limit - self.taken) as usize
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
        self.push_flags = LIVE | if device_data { DEVICE } else { 0 };
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
    /// [`Error::DeviceGone`]/[`Error::Fatal`] once a check found the controller dead;
    /// [`Error::Core`] with [`InvalidArgument`](crate::Error::InvalidArgument) for a command
    /// that names memory and lends none (see [`Push`]). On error the request is dropped: its
    /// memory is quarantined, never freed under the device.
    #[inline(always)]
    pub fn push(&mut self, request: impl Push<B>) -> Result<u16> {
        if let Err(e) = self.health.get() {
            return Err(self.dead(e));
        }
        if request.names_unheld_memory() {
            return Err(unheld());
        }
        let (mut cmd, lent) = request.into_parts();
        let lends = !lent.is_empty();
        let device = lent.holds_device_memory();
        let flags =
            self.push_flags | if lends { LENDS } else { 0 } | if device { DEVICE } else { 0 };
        let cid = self.take_cid(cmd.opcode(), flags)?;
        cmd.set_cid(cid);
        // SAFETY: what the command names is memory `lent` holds (a request's invariant), kept
        // in `lent[cid]` until its completion, or no memory (refused above otherwise).
        if let Err(e) = unsafe { self.sq.push_unchecked(&cmd) } {
            // The request is dropped.
            return Err(self.untake(cid, e));
        }
        let i = usize::from(cid);
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
        Ok(cid)
    }

    /// Takes the cid for the next push and records the command (`opcode`, `flags` with
    /// [`LIVE`]) in its slot: the slot index the submission queue writes next when that cid is
    /// free — commands completing in order keep it so — else any free cid. One slot access on
    /// the way. [`Error::QueueFull`] when `limit` cids are taken.
    #[inline(always)]
    pub(super) fn take_cid(&mut self, opcode: u8, flags: u8) -> Result<u16> {
        if self.taken >= self.limit {
            return Err(self.full());
        }
        // CAST: the tail is a slot index, below `entries` ≤ 65536.
        let t = self.sq.tail() as u16;
        match self.slots.get_mut(usize::from(t)) {
            Some(s) if s.free() => {
                s.push(opcode, flags);
                self.taken += 1;
                Ok(t)
            }
            _ => self.take_other(opcode, flags),
        }
    }

    /// [`take_cid`](Self::take_cid) when the tail's cid is still taken (by a command completing
    /// out of order, or a kept completion): the first free cid.
    #[cold]
    #[inline(never)]
    fn take_other(&mut self, opcode: u8, flags: u8) -> Result<u16> {
        match self.slots.iter_mut().enumerate().find(|(_, s)| s.free()) {
            Some((i, s)) => {
                s.push(opcode, flags);
                self.taken += 1;
                // CAST: slot indices are below 65536.
                Ok(i as u16)
            }
            None => Err(self.full()),
        }
    }

    /// Gives back the cid [`take_cid`](Self::take_cid) took for a push that failed with `e`.
    #[cold]
    #[inline(never)]
    pub(super) fn untake(&mut self, cid: u16, e: Error) -> Error {
        self.release(cid);
        e
    }

    /// Hands out the cid of a completion handed out (kept or not): free again.
    #[inline(always)]
    pub(super) fn release(&mut self, cid: u16) {
        if let Some(s) = self.slots.get_mut(usize::from(cid)) {
            s.flags = 0;
        }
        self.taken -= 1;
    }

    /// `e`, the verdict on a dead controller, after making every later poll fail at once.
    #[cold]
    #[inline(never)]
    fn dead(&mut self, e: Error) -> Error {
        self.slow_next_poll();
        e
    }

    /// Makes the next poll take the slow path (the polls counted toward the check so far are
    /// kept).
    pub(super) fn slow_next_poll(&mut self) {
        let polled = self.armed - self.countdown;
        self.to_check = self.to_check.saturating_sub(polled);
        self.armed = 1;
        self.countdown = 1;
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
        if let Err(e) = self.health.get() {
            return Err(self.dead(e));
        }
        self.sq.ring()
    }

    /// [`push`](Self::push) then [`ring`](Self::ring).
    pub fn submit(&mut self, request: impl Push<B>) -> Result<u16> {
        let cid = self.push(request)?;
        self.ring()?;
        Ok(cid)
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

/// The error for a command that names memory and lends none.
#[cold]
fn unheld() -> Error {
    crate::nvme::invalid(
        "a command that names memory must lend it: build it with PrpBuilder::lend and \
         Prp::into_request (or, vouching for the memory, with the unsafe Request::new)",
    )
}
