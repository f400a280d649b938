//! A submission queue whose ring lives in the Controller Memory Buffer.
//!
//! [`CmbSubmissionQueue::push`] writes a 64-byte [`Command`] into the next slot of a ring in the
//! CMB (device memory, usually mapped write-combining) with `memcpy_toio`;
//! [`CmbSubmissionQueue::ring`] writes the new tail to the queue's doorbell in BAR0 by the rule
//! of a [`Doorbell`](crate::publish::Doorbell), naming the ring as the data it publishes, so the
//! barrier in front of the doorbell write is the one the strategy and the ring's caching need:
//! a write-combining flush
//! (`sfence` on x86_64) when the ring is write-combining — whatever BAR0's own caching — and
//! the `writel` barrier otherwise. Under [`Strategy::Batched`] the entries are written without
//! barriers and that one barrier publishes all of them; under [`Strategy::Conservative`] each
//! entry is a `memcpy_toio` with the kernel's barriers as well.
//!
//! # Example
//! ```
//! use iomem::backend::MockIo;
//! use iomem::nvme::cmb::{self, BarTable, CmbPool, PciBar, ProbeOptions};
//! use iomem::nvme::regs::{offsets, Cc, ControllerRegs, Cmbloc, Cmbsz};
//! use iomem::nvme::cmd::nvm;
//! use iomem::nvme::sq::CmbSubmissionQueue;
//! use iomem::{Caching, IoMem, Strategy};
//!
//! let bar0 = MockIo::new(0x2000);
//! bar0.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
//! let regs = ControllerRegs::new(IoMem::new(&bar0))?;
//! // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
//! let bars = BarTable::new().with(2, unsafe { PciBar::new(0xfd00_0000, 1 << 20) }?)?;
//! let info = cmb::decode(Cmbloc::from_raw(2), Cmbsz::from_raw(1 << 20 | 1 << 8 | 1), &bars,
//!                        cmb::CmbScheme::Legacy, ProbeOptions::default())?;
//! let cmb_bar = MockIo::new(1 << 20).with_caching(Caching::WriteCombining);
//! let pool = CmbPool::new(cmb_bar, info, Cc::default())?;
//!
//! let mut sq = CmbSubmissionQueue::new(pool.alloc_sq(32)?, 32, &bar0, regs.cap()?, 1)?
//!     .with_strategy(Strategy::Batched);
//! let cmd = nvm::flush(1);
//! sq.push(&cmd)?;        // slot 0; the command id is the slot
//! sq.push(&cmd)?;        // slot 1
//! sq.ring()?;            // sfence, then tail = 2 at 0x1008
//! assert_eq!(bar0.writes().last().map(|w| (w.offset, w.value)), Some((0x1008, 2)));
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

use core::mem::ManuallyDrop;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::backend::{Backend, Caching};
use crate::dma::DmaAddr;
use crate::iomem::IoMem;
use crate::nvme::regs::{Cap, SQ_ENTRY_SIZE};
use crate::nvme::{invalid, ring_bytes, Error, Result};
use crate::order::{Barrier, Strategy};
use crate::p2p::P2pBuf;

pub use crate::nvme::cmd::{opcodes, Command};
pub use host::HostSqRing;

pub(crate) mod host;

// The ring copies a command's wire form as plain bytes, one entry per slot.
static_assertions::assert_impl_all!(
    crate::nvme::cmd::WireCommand: FromBytes, IntoBytes, Immutable, KnownLayout
);
static_assertions::assert_eq_size!(crate::nvme::cmd::WireCommand, [u8; SQ_ENTRY_SIZE]);

/// Where a submission queue's ring lives: a buffer in the CMB ([`P2pBuf`]) or coherent host
/// memory ([`HostSqRing`]). The queue writes entries through it and names its caching to the
/// doorbell, which then issues the barrier that data needs.
pub trait SqRing {
    /// Bytes of ring.
    fn len(&self) -> usize;
    /// Whether the ring has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The ring's address for the controller (ASQ, Create I/O SQ's PRP1).
    fn dma_addr(&self) -> DmaAddr;
    /// How the ring's memory is mapped.
    fn caching(&self) -> Caching;
    /// Whether entries are written as 64-byte direct stores
    /// ([`IoMem::write_direct64`]): weakly ordered on any mapping, so the doorbell flushes
    /// them as it flushes write-combining stores. Default: no.
    fn direct_stores(&self) -> bool {
        false
    }
    /// The strategy a queue over this ring starts with (a CMB buffer's is its pool's).
    fn strategy(&self) -> Strategy;
    /// Writes one 64-byte entry at byte `off` of the ring, with the barriers `strategy` puts
    /// around a copy into that memory (none for host RAM: the doorbell publishes it).
    fn write_entry(&self, off: usize, entry: &[u8], strategy: Strategy) -> crate::Result<()>;
    /// Writes `cmd`'s wire form ([`Command::to_le`]) as the entry at byte `off`, as
    /// [`write_entry`](Self::write_entry) does (a ring may write it without staging bytes).
    #[inline]
    fn write_command(&self, off: usize, cmd: &Command, strategy: Strategy) -> crate::Result<()> {
        self.write_entry(off, cmd.to_le().as_bytes(), strategy)
    }
    /// [`write_command`](Self::write_command) at a slot the caller checked against the ring
    /// (a queue's slots are, once, by its constructor): a ring may skip its own check. The
    /// default checks anyway.
    ///
    /// # Safety
    /// `off % 64 == 0` and `off + 64 <= self.len()`.
    #[inline]
    unsafe fn write_command_in_ring(
        &self,
        off: usize,
        cmd: &Command,
        strategy: Strategy,
    ) -> crate::Result<()> {
        self.write_command(off, cmd, strategy)
    }
    /// Gives the ring's memory back to its owner.
    ///
    /// # Safety
    /// The controller will not read the ring any more (its queue was deleted, or the
    /// controller reset).
    unsafe fn retire(self)
    where
        Self: Sized;
    /// Drops the ring while its queue may still exist on the controller: the memory is kept
    /// from reuse (a host ring's lease quarantines it, a CMB ring stays allocated in its pool).
    fn abandon(self)
    where
        Self: Sized;
}

impl<B: Backend> SqRing for P2pBuf<B> {
    fn len(&self) -> usize {
        P2pBuf::len(self)
    }
    fn dma_addr(&self) -> DmaAddr {
        P2pBuf::dma_addr(self)
    }
    fn caching(&self) -> Caching {
        self.io().caching()
    }
    fn strategy(&self) -> Strategy {
        self.io().strategy()
    }
    fn direct_stores(&self) -> bool {
        self.io().has_direct64()
    }
    fn write_entry(&self, off: usize, entry: &[u8], strategy: Strategy) -> crate::Result<()> {
        let io = self.io().with_strategy(copy_strategy(strategy));
        io.subslice(off..entry_end(off, entry.len())?)?
            .copy_from_slice(entry)
    }
    /// One 64-byte direct store per command where the CPU has `MOVDIR64B` and the slot is
    /// 64-aligned (the entry reaches the controller whole), else the ring handle's copy (its
    /// widest accesses).
    #[inline]
    fn write_command(&self, off: usize, cmd: &Command, strategy: Strategy) -> crate::Result<()> {
        let io = self.io().with_strategy(copy_strategy(strategy));
        let wire = cmd.to_le();
        let bytes: &[u8; SQ_ENTRY_SIZE] = zerocopy::transmute_ref!(&wire);
        if io.has_direct64() && io.backend().base_align() >= 64 && (io.offset() + off) % 64 == 0 {
            io.write_direct64(off, bytes)
        } else {
            io.subslice(off..entry_end(off, SQ_ENTRY_SIZE)?)?
                .copy_from_slice(bytes)
        }
    }
    unsafe fn retire(self) {
        // Freed into its pool: the caller guarantees the controller no longer reads it.
        drop(self);
    }
    fn abandon(self) {
        self.quarantine();
    }
}

/// The end of `len` bytes at `off` of a ring ([`crate::Error::Overflow`] if it overflows).
fn entry_end(off: usize, len: usize) -> crate::Result<usize> {
    off.checked_add(len)
        .ok_or(crate::Error::Overflow { offset: off, len })
}

/// Entries are copied with barriers only under `Conservative` (`memcpy_toio`'s own); `Batched`
/// and `Relaxed` copy bare and leave publishing to the doorbell.
fn copy_strategy(strategy: Strategy) -> Strategy {
    match strategy {
        Strategy::Conservative => Strategy::Conservative,
        Strategy::Batched | Strategy::Relaxed => Strategy::Relaxed,
    }
}

/// Writes `value` to the 32-bit register at byte `off` of `bar` with the barriers `before` and
/// `after` around it: a queue's doorbell, from the offset its constructor checked.
///
/// # Safety
/// `off + 4 <= bar.size()`, `off % 4 == 0` and `bar.base_align() >= 4` (`Backend::write`'s
/// contract for a `u32`; what a queue's invariant holds for its doorbell).
#[inline(always)]
pub(crate) unsafe fn write_doorbell<D: Backend>(
    bar: &D,
    off: usize,
    value: u32,
    before: Option<Barrier>,
    after: Option<Barrier>,
) {
    if let Some(b) = before {
        bar.barrier(b);
    }
    // SAFETY: the caller's contract.
    unsafe { bar.write::<u32>(off, value) };
    if let Some(b) = after {
        bar.barrier(b);
    }
}

/// What `Doorbell::ring` does, naming the ring as the data published: the flush if the ring or
/// BAR0 is write-combining, else `strategy`'s doorbell barrier (then one 32-bit write).
fn doorbell_barrier<R: SqRing, D: Backend>(
    ring: &R,
    bar: &D,
    strategy: Strategy,
) -> Option<Barrier> {
    let wc = ring.caching() == Caching::WriteCombining
        || ring.direct_stores()
        || bar.caching() == Caching::WriteCombining;
    strategy.doorbell_barrier(bar.arch(), wc)
}

/// `SubmissionQueue::noted` when no SQ head is kept (every kept head is below 65536).
const NO_HEAD: u32 = u32::MAX;

/// A submission queue whose ring is in the CMB: the ring is a [`P2pBuf`].
pub type CmbSubmissionQueue<B, D> = SubmissionQueue<P2pBuf<B>, D>;

/// A submission queue whose ring is in coherent host memory.
pub type HostSubmissionQueue<B, D> = SubmissionQueue<HostSqRing<B>, D>;

/// A submission queue: a ring of 64-byte entries ([`SqRing`]) with its tail doorbell in BAR0.
/// See the [module docs](self).
///
/// One slot always stays empty (a full ring differs from an empty one), so a ring of `entries`
/// slots holds `entries - 1` outstanding commands. The controller reports how far it has read
/// in each completion (SQ Head Pointer); pass it to [`CmbSubmissionQueue::update_head`], or to
/// [`note_head`](SubmissionQueue::note_head) to have it applied when the ring looks full.
///
/// The queue holds its BAR0 handle `D`: a borrow (`&B`) or shared ownership (`Arc<B>`, so a
/// queue pair moves to another thread with no lifetime attached).
///
/// # Invariant
/// `doorbell + 4 <= bar.size()`, `doorbell` is 4-aligned and `bar.base_align() >= 4` (checked
/// by the constructor, which makes the doorbell's `IoMem<u32>` once); `entries × 64 <=
/// ring.len()` (checked by the constructor) and `tail < entries` (kept by every move of the
/// tail), so the entry at the tail is inside the ring.
pub struct SubmissionQueue<R: SqRing, D: Backend> {
    /// Taken once: by [`retire`](Self::retire) or by the drop (which abandons it).
    ring: ManuallyDrop<R>,
    bar: D,
    doorbell: usize,
    strategy: Strategy,
    /// The barrier before the doorbell write, from the strategy and both mappings' caching
    /// (fixed for the queue's life), computed when the strategy is set.
    db_barrier: Option<Barrier>,
    /// `db_barrier` is `writel`'s ([`Barrier::IoBeforeWrite`]), the usual one: the ring issues
    /// it as a constant, so the backend's code for it is inlined (a compiler fence on x86_64)
    /// rather than dispatched on the barrier's value.
    db_usual: bool,
    qid: u16,
    entries: u32,
    tail: u32,
    head: u32,
    rung: u32,
    /// The latest SQ head a completion reported ([`note_head`](Self::note_head)), applied
    /// (checked, as [`update_head`](Self::update_head)) when the ring looks full.
    /// [`NO_HEAD`] when none is kept (one word, so noting a head is one store).
    noted: u32,
}

impl<R: SqRing, D: Backend> core::fmt::Debug for SubmissionQueue<R, D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SubmissionQueue")
            .field("qid", &self.qid)
            .field("entries", &self.entries)
            .field("head", &self.head)
            .field("tail", &self.tail)
            .field("rung", &self.rung)
            .field("addr", &self.ring.dma_addr())
            .field("strategy", &self.strategy)
            .finish()
    }
}

impl<R: SqRing, D: Backend> SubmissionQueue<R, D> {
    /// A queue `qid` of `entries` slots (2 to CAP.MQES + 1) over `ring` (at least
    /// `entries × 64` bytes, e.g. from [`CmbPool::alloc_sq`](super::cmb::CmbPool::alloc_sq)),
    /// with its tail doorbell at `cap`'s offset for `qid` in BAR0 (`bar`). The strategy is the
    /// ring handle's (the pool's); change it with [`with_strategy`](Self::with_strategy).
    ///
    /// The queue starts empty at slot 0. Creating it on the controller (Create I/O Submission
    /// Queue with PRP1 = [`bus_addr`](Self::bus_addr), or ASQ for the admin queue) is the
    /// caller's job.
    pub fn new(ring: R, entries: u32, bar: D, cap: Cap, qid: u16) -> Result<Self> {
        ring_bytes(
            "submission queue entries must be from 2 to CAP.MQES + 1",
            entries,
            SQ_ENTRY_SIZE,
            ring.len(),
            cap,
        )?;
        let doorbell = cap.sq_tail_doorbell(qid)?;
        IoMem::new(&bar).cast::<u32>(doorbell)?;
        let strategy = ring.strategy();
        let db_barrier = doorbell_barrier(&ring, &bar, strategy);
        Ok(SubmissionQueue {
            db_usual: db_barrier == Some(Barrier::IoBeforeWrite),
            bar,
            doorbell,
            ring: ManuallyDrop::new(ring),
            strategy,
            db_barrier,
            qid,
            entries,
            tail: 0,
            head: 0,
            rung: 0,
            noted: NO_HEAD,
        })
    }

    /// `x mod entries` for `x < 2 × entries` (every slot sum and difference here): a compare
    /// instead of a division on the submit path.
    #[inline(always)]
    fn wrap(&self, x: u32) -> u32 {
        debug_assert!(x < 2 * self.entries);
        if x >= self.entries {
            x - self.entries
        } else {
            x
        }
    }

    /// The same queue with another ordering strategy for entry writes and the doorbell.
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self.db_barrier = doorbell_barrier(&*self.ring, &self.bar, strategy);
        self.db_usual = self.db_barrier == Some(Barrier::IoBeforeWrite);
        self
    }

    /// Writes `cmd`, a command that names no memory ([`Command::names_memory`]: no data or
    /// metadata pointer, no queue base, such as a Flush), into the next free slot and returns
    /// the slot index. The command identifier is the caller's;
    /// [`push_with_slot_cid`](Self::push_with_slot_cid) uses the slot.
    ///
    /// The controller does not see it until [`ring`](Self::ring). [`Error::QueueFull`] if
    /// `entries - 1` commands are outstanding; [`Error::Core`] with
    /// [`InvalidArgument`](crate::Error::InvalidArgument) for a command that names memory,
    /// which this queue cannot keep allocated until the command completes: push those through
    /// a [`QueuePair`](crate::nvme::ctrl::QueuePair), which holds what a command lends until
    /// its completion, or vouch for the memory with [`push_unchecked`](Self::push_unchecked).
    #[inline]
    pub fn push(&mut self, cmd: &Command) -> Result<u16> {
        if cmd.names_memory() {
            return Err(invalid(
                "a submission queue pushes a command that names memory only unchecked \
                 (push_unchecked); a queue pair holds what a command lends",
            ));
        }
        // SAFETY: the command names no memory.
        unsafe { self.push_unchecked(cmd) }
    }

    /// Writes `cmd` into the next free slot and returns the slot index, as
    /// [`push`](Self::push) does, whatever memory the command names. What a queue pair
    /// pushes, holding what the command lends.
    ///
    /// # Safety
    /// Every address `cmd` names (PRP1, PRP2, the PRP list and its entries, MPTR, a queue
    /// base) is memory the device may access as the opcode implies, and stays allocated, not
    /// reused and not referenced by Rust for as long as the command is in flight: from the
    /// doorbell to its completion, or a controller reset (a queue base: until the queue is
    /// deleted or the controller reset).
    #[inline]
    pub unsafe fn push_unchecked(&mut self, cmd: &Command) -> Result<u16> {
        let next = if self.tail + 1 == self.entries {
            0
        } else {
            self.tail + 1
        };
        if next == self.head && !self.catch_up(next) {
            return Err(self.full());
        }
        let slot = self.tail;
        // CAST: `slot` < `entries` ≤ 65536 (the constructor's check).
        let off = slot as usize * SQ_ENTRY_SIZE;
        // SAFETY: `slot < entries` and `entries × 64 <= ring.len()` (the invariant), so the
        // 64-aligned entry at `off` is inside the ring.
        unsafe { self.ring.write_command_in_ring(off, cmd, self.strategy)? };
        self.tail = next;
        // CAST: `slot` < `entries` ≤ 65536, so it is at most 65535.
        Ok(slot as u16)
    }

    /// Applies the head [`note_head`](Self::note_head) kept, if any; whether slot `next` is
    /// then free. (A head out of range is dropped: a controller bug, the ring stays as full as
    /// it was.)
    #[cold]
    #[inline(never)]
    fn catch_up(&mut self, next: u32) -> bool {
        let noted = core::mem::replace(&mut self.noted, NO_HEAD);
        // CAST: a kept head came from a `u16` (`note_head`).
        if let Some(h) = (noted != NO_HEAD).then_some(noted as u16) {
            let _ = self.update_head(h);
        }
        next != self.head
    }

    #[cold]
    fn full(&self) -> Error {
        Error::QueueFull {
            qid: self.qid,
            entries: self.entries,
        }
    }

    /// Like [`push`](Self::push) (a command that names no memory), with the command
    /// identifier set to the slot index (unique among outstanding commands of this queue).
    pub fn push_with_slot_cid(&mut self, cmd: &Command) -> Result<u16> {
        let mut c = *cmd;
        // CAST: the tail is a slot: below `entries` ≤ 65536.
        c.set_cid(self.tail as u16);
        self.push(&c)
    }

    /// Writes the tail doorbell if commands were pushed since the last ring: the barrier the
    /// strategy needs for the ring's caching, then one 32-bit write of the tail. Returns the
    /// number of commands published.
    #[inline]
    pub fn ring(&mut self) -> Result<u32> {
        if self.tail == self.rung {
            return Ok(0);
        }
        let n = self.wrap(self.tail + self.entries - self.rung);
        // SAFETY: the doorbell is a 4-aligned register inside BAR0 whose base is at least
        // 4-aligned (the invariant).
        unsafe {
            if self.db_usual {
                write_doorbell(
                    &self.bar,
                    self.doorbell,
                    self.tail,
                    Some(Barrier::IoBeforeWrite),
                    None,
                )
            } else {
                write_doorbell(&self.bar, self.doorbell, self.tail, self.db_barrier, None)
            }
        };
        self.rung = self.tail;
        Ok(n)
    }

    /// [`push`](Self::push) (a command that names no memory) then [`ring`](Self::ring).
    pub fn submit(&mut self, cmd: &Command) -> Result<u16> {
        let slot = self.push(cmd)?;
        self.ring()?;
        Ok(slot)
    }

    /// Keeps the controller's SQ head pointer from a completion entry for later: the next
    /// [`push`](Self::push) that finds the ring full applies it as
    /// [`update_head`](Self::update_head) does (and drops it if it is out of range), so a
    /// queue pair reaping completions pays one store per completion and one check per pass
    /// over the ring. Until then [`head`](Self::head) and [`free_slots`](Self::free_slots) are
    /// as of the last head applied: never more free slots than there are.
    #[inline(always)]
    pub fn note_head(&mut self, head: u16) {
        self.noted = u32::from(head);
    }

    /// Records the controller's SQ head pointer from a completion entry: slots before it are
    /// free again. [`InvalidArgument`](crate::Error::InvalidArgument) if it is not a slot of this queue or lies outside
    /// the commands published so far.
    #[inline]
    pub fn update_head(&mut self, head: u16) -> Result<()> {
        let head = u32::from(head);
        if head >= self.entries {
            return Err(invalid("SQ head pointer past the end of the queue"));
        }
        // The head may only move forward within [head, rung].
        let outstanding = self.wrap(self.rung + self.entries - self.head);
        let advance = self.wrap(head + self.entries - self.head);
        if advance > outstanding {
            return Err(invalid("SQ head pointer beyond the last published command"));
        }
        self.head = head;
        self.noted = NO_HEAD;
        Ok(())
    }

    /// The ring's address for the controller (ASQ, Create I/O SQ's PRP1).
    pub fn dma_addr(&self) -> DmaAddr {
        self.ring.dma_addr()
    }
    /// Queue identifier.
    pub fn qid(&self) -> u16 {
        self.qid
    }
    /// Slots in the ring.
    pub fn entries(&self) -> u32 {
        self.entries
    }
    /// Next slot to fill.
    pub fn tail(&self) -> u32 {
        self.tail
    }
    /// Oldest slot the controller may not have read yet.
    pub fn head(&self) -> u32 {
        self.head
    }
    /// Commands that can be pushed before the queue is full.
    pub fn free_slots(&self) -> u32 {
        self.entries - 1 - self.wrap(self.tail + self.entries - self.head)
    }
    /// The ordering strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }
    /// Ends the queue and gives the ring's memory back to its owner ([`SqRing::retire`]).
    /// (Dropped instead, the queue abandons the ring: [`SqRing::abandon`] keeps it from
    /// reuse, since the controller may still fetch from it.)
    ///
    /// # Safety
    /// The controller will not read the ring any more: the queue was deleted on it, or it was
    /// reset.
    pub unsafe fn retire(self) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the ring is taken here only.
        let ring = unsafe { ManuallyDrop::take(&mut this.ring) };
        // SAFETY: `this` is never dropped or used again, so `bar` is dropped here only; the
        // other fields are plain data.
        unsafe { core::ptr::drop_in_place(&mut this.bar) };
        // SAFETY: the caller's guarantee.
        unsafe { ring.retire() }
    }
}

impl<R: SqRing, D: Backend> Drop for SubmissionQueue<R, D> {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and `retire` never drops the queue, so the ring is taken
        // here only.
        let ring = unsafe { ManuallyDrop::take(&mut self.ring) };
        ring.abandon();
    }
}

impl<B: Backend, D: Backend> SubmissionQueue<P2pBuf<B>, D> {
    /// A handle to the ring in the CMB, with the strategy its entries are copied with.
    pub fn ring_io(&self) -> IoMem<'_, [u8], B> {
        self.ring.io().with_strategy(copy_strategy(self.strategy))
    }

    /// Bus address of the ring, as a number (for printing; the controller is given
    /// [`dma_addr`](Self::dma_addr)).
    pub fn bus_addr(&self) -> u64 {
        self.ring.bus_addr()
    }
}
