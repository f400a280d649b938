//! A completion queue in coherent host memory.
//!
//! The controller writes 16-byte entries into the ring and flips each entry's phase tag on
//! every pass; the driver reads the phase tag (one volatile 32-bit read of Dword 3), and only
//! when it shows a new entry reads the rest — after `dma_rmb()`, so the payload is not read
//! ahead of the tag (Linux `nvme_cqe_pending` + `nvme_handle_cqe`). Consumed entries are handed
//! back with one head doorbell write per batch ([`CompletionQueue::ring_head`]), not one per
//! entry.
//!
//! ```
//! use iomem::dma::{DmaProvider, MockDma};
//! use iomem::nvme::cq::CompletionQueue;
//! use iomem::nvme::regs::{offsets, ControllerRegs};
//! use iomem::{backend::MockIo, IoMem};
//!
//! let bar0 = MockIo::new(0x2000);
//! bar0.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
//! let regs = ControllerRegs::new(IoMem::new(&bar0))?;
//! let dma = MockDma::new(1 << 20);
//! let mut cq = CompletionQueue::new(dma.alloc_contiguous(4096)?, 16, &bar0, regs.cap()?, 1)?;
//! assert!(cq.pop()?.is_none());
//! // The controller posts command 5's completion: DW2 = SQ head 1, DW3 = cid 5, phase 1.
//! let at = cq.entry_addr(0)?;
//! dma.device_write(at, &[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 5, 0, 1, 0])?;
//! let c = cq.pop()?.expect("posted");
//! assert_eq!((c.cid, c.sq_head, c.sq_id), (5, 1, 1));
//! assert!(c.status.is_success());
//! cq.ring_head(); // head 1 to CQ 1's head doorbell
//! assert_eq!(bar0.writes().last().map(|w| (w.offset, w.value)), Some((0x100c, 1)));
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

use crate::backend::Backend;
use crate::dma::{DmaAddr, DmaRegion, Lease};
use crate::iomem::IoMem;
use crate::nvme::regs::{Cap, CQ_ENTRY_SIZE};
use crate::nvme::sq::write_doorbell;
use crate::nvme::{invalid, ring_bytes, Result, Status};
use crate::order::{Barrier, Op, Strategy};

/// The phase tag in Dword 3 of a completion-queue entry.
const PHASE: u32 = 1 << 16;

/// One completion-queue entry, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Dword 0: command specific result.
    pub result: u32,
    /// SQ Head Pointer: how far the controller has fetched the submission queue.
    pub sq_head: u16,
    /// SQ Identifier the command came from.
    pub sq_id: u16,
    /// Command Identifier.
    pub cid: u16,
    /// The command's status.
    pub status: Status,
}

/// A completion queue ring in coherent host memory, lent to the controller for the ring's life
/// (dropping the queue quarantines the memory: see [`dma::region`](crate::dma::region)), with
/// its head doorbell in BAR0 (`D`: a borrow or shared ownership of the mapping, as for
/// [`SubmissionQueue`](super::sq::SubmissionQueue)). See the [module docs](self).
///
/// # Invariant
/// `doorbell + 4 <= bar.size()`, `doorbell` is 4-aligned and `bar.base_align() >= 4` (checked
/// by the constructor, which makes the doorbell's `IoMem<u32>` once). `base` is the ring's
/// absolute offset in its backend (`DmaRegion::raw_parts`), 4-aligned, with the backend's
/// `base_align() >= 4`; `entries × 16 <= ring.len()` (all checked by the constructor) and
/// `head < entries` (kept by every move of the head). So, with the region's own invariant
/// (`base + ring.len()` inside the backend), the four dwords at `base + head × 16` are aligned,
/// in-bounds targets of `Backend::read::<u32>`.
pub struct CompletionQueue<B: Backend + Send + Sync + 'static, D: Backend> {
    ring: DmaRegion<B>,
    lease: Lease<B>,
    addr: DmaAddr,
    base: usize,
    bar: D,
    doorbell: usize,
    qid: u16,
    entries: u16,
    head: u16,
    /// The phase tag a new entry has, in place: Dword 3's bit 16 ([`PHASE`]) or 0.
    phase: u32,
    /// Entries consumed since the head doorbell was last written.
    pending: u16,
}

impl<B: Backend + Send + Sync + 'static, D: Backend> core::fmt::Debug for CompletionQueue<B, D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CompletionQueue")
            .field("qid", &self.qid)
            .field("entries", &self.entries)
            .field("head", &self.head)
            .field("phase", &(self.phase != 0))
            .field("addr", &self.addr)
            .finish()
    }
}

impl<B: Backend + Send + Sync + 'static, D: Backend> CompletionQueue<B, D> {
    /// Queue `qid` of `entries` slots (2 to CAP.MQES + 1) over `ring` (at least `entries × 16`
    /// bytes, one run of device addresses: the queue is created physically contiguous), with its
    /// head doorbell at `cap`'s offset for `qid` in BAR0 (`bar`). Creating it on the controller
    /// (Create I/O Completion Queue with PRP1 = [`dma_addr`](Self::dma_addr), or ACQ) is the
    /// caller's job.
    ///
    /// [`Misaligned`](crate::Error::Misaligned) if the ring's memory is not 4-aligned.
    pub fn new(ring: DmaRegion<B>, entries: u16, bar: D, cap: Cap, qid: u16) -> Result<Self> {
        let need = ring_bytes(
            "completion queue entries must be from 2 to CAP.MQES + 1",
            entries.into(),
            CQ_ENTRY_SIZE,
            ring.len(),
            cap,
        )?;
        let (backend, base) = ring.raw_parts();
        if base % 4 != 0 || backend.base_align() < 4 {
            return Err(crate::Error::Misaligned {
                offset: base,
                align: 4,
            }
            .into());
        }
        let lease = ring.lease();
        let addr = lease.range(0..need)?;
        let doorbell = cap.cq_head_doorbell(qid)?;
        IoMem::new(&bar).cast::<u32>(doorbell)?;
        Ok(CompletionQueue {
            bar,
            ring,
            lease,
            addr,
            base,
            doorbell,
            qid,
            entries,
            head: 0,
            phase: PHASE,
            pending: 0,
        })
    }

    /// The ring's address for the controller (ACQ, Create I/O CQ's PRP1).
    pub fn dma_addr(&self) -> DmaAddr {
        self.addr
    }

    /// The device address of entry `slot` (for a device model or a test posting entries).
    pub fn entry_addr(&self, slot: u16) -> Result<DmaAddr> {
        if slot >= self.entries {
            return Err(invalid("completion queue slot past the end of the ring"));
        }
        Ok(self.lease.addr(usize::from(slot) * CQ_ENTRY_SIZE)?)
    }

    /// Queue identifier.
    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// Slots in the ring.
    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// The slot the next completion will be read from.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The entry at the head if the controller has posted it, without consuming it: the phase
    /// tag first, then — after `dma_rmb` — the rest of the entry.
    #[inline]
    pub fn peek(&self) -> Result<Option<Completion>> {
        let (backend, _) = self.ring.raw_parts();
        // SAFETY: the entry at the head: `head < entries`, so by the invariant its dwords are
        // aligned and in bounds.
        Ok(unsafe { Self::decode(backend, self.entry(self.head), self.phase) })
    }

    /// The absolute offset of entry `slot` in the ring's backend.
    #[inline(always)]
    fn entry(&self, slot: u16) -> usize {
        self.base + usize::from(slot) * CQ_ENTRY_SIZE
    }

    /// Consumes up to `max` posted entries in order, handing each to `f` (consumed before `f`
    /// sees it); stops at the first entry not posted yet, or at `f`'s first error. Returns how
    /// many were consumed. The slots go back to the controller at the next
    /// [`ring_head`](Self::ring_head). What a queue pair's poll reaps with.
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) fn drain(
        &mut self,
        max: usize,
        mut f: impl FnMut(Completion) -> Result<()>,
    ) -> Result<usize> {
        let (backend, _) = self.ring.raw_parts();
        // The cursor in locals, stored back once (also before an error from `f`).
        let (mut head, mut phase, mut n) = (self.head, self.phase, 0);
        let mut res = Ok(());
        while n < max {
            // SAFETY: `head < entries` (it wraps at `entries` below), so by the invariant the
            // entry's dwords are aligned and in bounds.
            let Some(c) = (unsafe { Self::decode(backend, self.entry(head), phase) }) else {
                break;
            };
            head += 1;
            if head == self.entries {
                head = 0;
                phase ^= PHASE;
            }
            n += 1;
            if let Err(e) = f(c) {
                res = Err(e);
                break;
            }
        }
        self.head = head;
        self.phase = phase;
        // Saturating: a controller posting into slots not handed back, or a caller never ringing
        // the head, could make the count pass `u16::MAX`.
        self.pending = self
            .pending
            .saturating_add(u16::try_from(n).unwrap_or(u16::MAX));
        res.map(|()| n)
    }

    /// The completion in the entry at byte `abs` of `backend` if its phase tag is `phase`
    /// ([`PHASE`] or 0, compared in place): the tag first, then — after `dma_rmb` — the rest of
    /// the entry. Plain 32-bit reads (coherent RAM: no MMIO barriers). The backend is a
    /// parameter, so its base is read once per entry.
    ///
    /// # Safety
    /// `abs % 4 == 0`, `abs + 16 <= backend.size()` and `backend.base_align() >= 4`.
    #[inline(always)]
    unsafe fn decode(backend: &B, abs: usize, phase: u32) -> Option<Completion> {
        // SAFETY: Dword 3 of the caller's aligned, in-bounds entry.
        let dw3 = unsafe { backend.read::<u32>(abs + 12) };
        if dw3 & PHASE != phase {
            return None;
        }
        backend.barrier(Barrier::DmaRmb);
        // SAFETY: Dwords 0 and 2 of the same entry.
        let (dw0, dw2) = unsafe { (backend.read::<u32>(abs), backend.read::<u32>(abs + 8)) };
        Some(Completion {
            result: dw0,
            // CAST: Dword 2 holds SQ head in 15:0 and SQ id in 31:16.
            sq_head: dw2 as u16,
            sq_id: (dw2 >> 16) as u16,
            // CAST: Dword 3 holds the command id in 15:0.
            cid: dw3 as u16,
            status: Status::from_dw3(dw3),
        })
    }

    /// Moves the head past one consumed entry (flipping the phase at the ring's end).
    #[inline(always)]
    fn advance(&mut self) {
        self.head += 1;
        if self.head == self.entries {
            self.head = 0;
            self.phase ^= PHASE;
        }
        // Saturating: as in `drain`.
        self.pending = self.pending.saturating_add(1);
    }

    /// Consumes the entry at the head if the controller has posted it. The slot goes back to
    /// the controller at the next [`ring_head`](Self::ring_head).
    #[inline]
    pub fn pop(&mut self) -> Result<Option<Completion>> {
        let c = self.peek()?;
        if c.is_some() {
            self.advance();
        }
        Ok(c)
    }

    /// Writes the head doorbell if entries were consumed since the last write: one doorbell for
    /// the whole batch. Returns how many entries it handed back (at most `u16::MAX`: more,
    /// which only a controller posting into slots not yet handed back can make, count as that).
    #[inline]
    pub fn ring_head(&mut self) -> u16 {
        let n = self.pending;
        if n > 0 {
            // `writel`: what `IoMem::write32` does through a handle of the default strategy,
            // without building the handle per batch.
            let pl = Strategy::default().placement(self.bar.arch(), Op::Write);
            // SAFETY: the doorbell is a 4-aligned register inside BAR0 whose base is at least
            // 4-aligned (the invariant).
            unsafe {
                write_doorbell(
                    &self.bar,
                    self.doorbell,
                    u32::from(self.head),
                    pl.before,
                    pl.after,
                )
            };
            self.pending = 0;
        }
        n
    }

    /// Ends the queue, giving the ring's memory back to its owner (the region) instead of
    /// quarantining it.
    ///
    /// # Safety
    /// The controller will not write the ring any more (the queue was deleted, or the
    /// controller reset).
    pub unsafe fn retire(self) -> DmaRegion<B> {
        let CompletionQueue { ring, lease, .. } = self;
        // SAFETY: the caller's guarantee.
        unsafe { lease.complete() };
        ring
    }

    /// The ring's memory, for a model or test to post entries through (the CPU side).
    pub fn ring(&self) -> &DmaRegion<B> {
        &self.ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MockIo;
    use crate::nvme::regs::offsets;
    use crate::nvme::sq::host::tests::region_at;

    fn bar() -> MockIo {
        let bar = MockIo::new(0x2000);
        bar.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
        bar
    }

    fn cap() -> Cap {
        Cap::decode(0x20_0a01_0fff).expect("CAP")
    }

    #[test]
    fn a_ring_not_4_aligned_is_refused_once() {
        let (_, region) = region_at(2, 256);
        let bar = bar();
        assert!(matches!(
            CompletionQueue::new(region, 16, &bar, cap(), 1),
            Err(crate::nvme::Error::Core(crate::Error::Misaligned {
                offset: 2,
                align: 4
            }))
        ));
    }

    #[test]
    fn entries_are_read_at_the_rings_offset() {
        let (io, region) = region_at(4, 16 * 4);
        let bar = bar();
        let mut cq = CompletionQueue::new(region, 4, &bar, cap(), 1).expect("4-aligned");
        // Entry 1 (after entry 0): cid 9, phase 1, SQ head 2 of SQ 1.
        io.poke(4 + 12, &(0x1_0003u32).to_le_bytes());
        io.poke(4 + 16 + 8, &(0x1_0002u32).to_le_bytes());
        io.poke(4 + 16 + 12, &(0x1_0009u32).to_le_bytes());
        assert_eq!(cq.pop().expect("read").map(|c| c.cid), Some(3));
        let c = cq.pop().expect("read").expect("posted");
        assert_eq!((c.cid, c.sq_head, c.sq_id), (9, 2, 1));
        assert!(cq.pop().expect("read").is_none());
        assert_eq!(cq.ring_head(), 2);
        // SAFETY: no controller writes this ring (the test posted its entries itself); retiring
        // it gives the memory back instead of quarantining it for the process's life.
        drop(unsafe { cq.retire() });
    }
}
