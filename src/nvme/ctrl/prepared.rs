//! Prepared data commands: a Read or Write checked once against its namespace, the maximum
//! transfer and the data-pointer rules, then pushed many times with only the starting LBA, the
//! offset into a registered buffer and the command identifier varying.

use super::QueuePair;
use crate::backend::Backend;
use crate::nvme::cmd::nvm::{self, Namespace};
use crate::nvme::cmd::{opcodes, Command, Lent, Request};
use crate::nvme::prp::{BufId, PrpBuilder};
use crate::nvme::sq::SqRing;
use crate::nvme::{Error, Result};

/// The data command a [`Prepared`] submits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataOp {
    /// Read: the controller writes the buffer.
    Read,
    /// Write: the controller reads the buffer.
    Write,
}

impl DataOp {
    fn name(self) -> &'static str {
        match self {
            DataOp::Read => "Read",
            DataOp::Write => "Write",
        }
    }

    fn opcode(self) -> u8 {
        match self {
            DataOp::Read => opcodes::nvm::READ,
            DataOp::Write => opcodes::nvm::WRITE,
        }
    }
}

/// A Read or Write of a fixed number of blocks into (or from) a buffer registered with a queue
/// pair, checked once ([`QueuePair::prepare`]) and pushed with a starting LBA and a buffer
/// offset ([`QueuePair::push_prepared`]).
///
/// [`QueuePair::prepare`] checks the template — the block count against the namespace, the
/// transfer length against the maximum transfer, a data pointer into the registered buffer —
/// and [`QueuePair::push_prepared`] then checks only what varies: the range against the
/// namespace's end (one comparison), the buffer range against the registration (two), and the
/// page rule for PRP2 (a transfer spanning more than two pages would need a PRP list). Any
/// command that fails those takes the builder path ([`PrpBuilder::borrow`] +
/// [`nvm::read`]/[`nvm::write`] + [`QueuePair::push`]), so it gets the same typed error as a
/// command built by hand, before anything is submitted.
///
/// ```
/// use std::time::Duration;
/// use iomem::backend::MockIo;
/// use iomem::dma::MockDma;
/// use iomem::nvme::cmd::nvm::Namespace;
/// use iomem::nvme::cq::CompletionQueue;
/// use iomem::nvme::ctrl::{DataOp, QueuePair};
/// use iomem::nvme::prp::{PageSize, PrpBuilder};
/// use iomem::nvme::regs::{offsets, Cap};
/// use iomem::nvme::sq::{HostSqRing, SubmissionQueue};
///
/// let bar = MockIo::new(0x2000);
/// bar.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
/// let cap = Cap::decode(0x20_0a01_0fff)?;
/// let dma = MockDma::new(1 << 20);
/// let sq = SubmissionQueue::new(HostSqRing::new(dma.alloc(16 * 64)?)?, 16, &bar, cap, 1)?;
/// let cq = CompletionQueue::new(dma.alloc(16 * 16)?, 16, &bar, cap, 1)?;
/// let mut qp = QueuePair::new(sq, cq, &bar, Duration::from_secs(1));
/// let buf = dma.alloc(4 * 4096)?;
/// let id = qp.register(&buf);
/// let ns = Namespace::from_parts(1, 512, 1 << 20, None)?;
/// let read = qp.prepare(DataOp::Read, &ns, 8, id, &PrpBuilder::new(PageSize::MIN, None))?;
/// let cid = qp.push_prepared(&read, 64, 4096)?; // 8 blocks from LBA 64 into bytes 4096..8192
/// assert!(qp.push_prepared(&read, (1 << 20) - 4, 0).is_err()); // past the namespace's end
/// assert!(qp.push_prepared(&read, 0, 4 * 4096 - 512).is_err()); // past the buffer's end
/// qp.ring()?;
/// # let _ = cid;
/// # Ok::<(), iomem::nvme::Error>(())
/// ```
///
/// [`PrpBuilder::borrow`]: crate::nvme::prp::PrpBuilder::borrow
/// [`nvm::read`]: crate::nvme::cmd::nvm::read
/// [`nvm::write`]: crate::nvme::cmd::nvm::write
///
/// It names the registered buffer by its [`BufId`]: each push resolves the id in the pair it
/// is pushed to, so the data pointer is always into the buffer registered there now. The
/// checks above are the fast path for a buffer that is one run of device addresses and a
/// builder without a CMB rule; into a scattered buffer, or under a CMB rule, every push takes
/// the builder path (same commands, same errors, the builders' cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prepared {
    op: DataOp,
    /// `op`'s opcode, once.
    opcode: u8,
    /// CDW12: the 0's based block count (the cid, PRPs and SLBA are set per push).
    cdw12: u32,
    ns: Namespace,
    prp: PrpBuilder,
    buf: BufId,
    nlb: u32,
    /// Bytes moved: `nlb` blocks.
    xfer: usize,
    /// The last starting LBA inside the namespace.
    max_slba: u64,
    /// `xfer` when pushes may take the fast path; `usize::MAX` when every push takes the
    /// checked path (a CMB rule, or more than two pages: a PRP list), so the buffer check sends
    /// them there.
    fast_xfer: usize,
    /// The page size minus one.
    page_mask: u64,
}

impl Prepared {
    /// The command it submits.
    pub fn op(&self) -> DataOp {
        self.op
    }
    /// Blocks per command.
    pub fn blocks(&self) -> u32 {
        self.nlb
    }
    /// Bytes per command.
    pub fn bytes(&self) -> usize {
        self.xfer
    }
    /// The registered buffer it moves data to or from.
    pub fn buffer(&self) -> BufId {
        self.buf
    }
}

impl<R: SqRing, B: Backend + Send + Sync + 'static, D: Backend> QueuePair<R, B, D> {
    /// A prepared `op` of `nlb` blocks of `ns` into (or from) registered buffer `buf`, with data
    /// pointers by `prp`'s rules: checked now as [`nvm::read`]/[`nvm::write`] check a command
    /// (block count, namespace size, maximum transfer) and as [`PrpBuilder::borrow`] checks a
    /// data pointer at the buffer's start — with the same typed errors — and
    /// [`Error::Core`] for an id not registered. Pushed with
    /// [`push_prepared`](Self::push_prepared).
    ///
    /// [`nvm::read`]: crate::nvme::cmd::nvm::read
    /// [`nvm::write`]: crate::nvme::cmd::nvm::write
    /// [`PrpBuilder::borrow`]: crate::nvme::prp::PrpBuilder::borrow
    pub fn prepare(
        &self,
        op: DataOp,
        ns: &Namespace,
        nlb: u32,
        buf: BufId,
        prp: &PrpBuilder,
    ) -> Result<Prepared> {
        // CAST: usize fits u64.
        let bytes = u64::from(nlb).saturating_mul(ns.lba_size() as u64);
        let xfer = usize::try_from(bytes).unwrap_or(usize::MAX);
        let [_, _, c12] = nvm::check_data(op.name(), ns, 0, nlb, xfer)?;
        let lease = self.registered(buf)?;
        prp.borrow(lease, 0..xfer, None)?;
        let page = prp.page_size().bytes();
        let fast_xfer = match prp.cmb_rule() {
            None if xfer <= 2 * page => xfer,
            _ => usize::MAX,
        };
        // CAST: usize is at most 64 bits wide.
        let page_mask = page as u64 - 1;
        Ok(Prepared {
            op,
            opcode: op.opcode(),
            cdw12: c12,
            ns: *ns,
            prp: *prp,
            buf,
            nlb,
            xfer,
            // `check_data` checked `nlb <= lba_count`.
            max_slba: ns.lba_count() - u64::from(nlb),
            fast_xfer,
            page_mask,
        })
    }

    /// Writes `p`'s command for blocks `slba..slba + p.blocks()` and bytes
    /// `off..off + p.bytes()` of its registered buffer into the submission queue under a free
    /// command identifier; returns the cid. The controller sees it at the next
    /// [`ring`](Self::ring).
    ///
    /// Checks what varies — the range inside the namespace, the bytes inside the buffer
    /// registered under `p`'s id, a data pointer of at most two pages — and gives a command
    /// that fails them the builder path's typed error ([`Error::LbaRange`], the buffer's range
    /// error, [`Error::Core`] for an id no longer registered, ...), submitting nothing.
    /// [`Error::QueueFull`] when no identifier or slot is free. Nothing is lent: the
    /// registration keeps the buffer. The controller's health is checked by
    /// [`ring`](Self::ring) and [`poll`](Self::poll), not here: a command pushed to a dead
    /// controller is never published.
    #[inline(always)]
    pub fn push_prepared(&mut self, p: &Prepared, slba: u64, off: usize) -> Result<u16> {
        let run = match self.runs.get(p.buf.index()) {
            Some(r) => *r,
            None => return self.push_checked(p, slba, off),
        };
        // The range and the buffer (`run.len` is 0 when the buffer is not one run, or none is
        // registered; `fast_xfer` is `usize::MAX` for the checked path); `max_slba` and `xfer`
        // were checked against the namespace once.
        if slba > p.max_slba || off > run.len || run.len - off < p.fast_xfer {
            return self.push_checked(p, slba, off);
        }
        // CAST: usize is at most 64 bits wide. No overflow: the run has 2^27 bytes to spare.
        let prp1 = run.base + off as u64;
        let end = prp1 + p.xfer as u64;
        // The run has 2^27 bytes to spare past its end: no overflow.
        let second = (prp1 | p.page_mask) + 1;
        if prp1 & 3 != 0 {
            return self.push_checked(p, slba, off);
        }
        // PRP2: none, or the second and last page (a longer transfer needs a PRP list: the
        // checked path's error).
        let prp2 = if end <= second {
            0
        } else if end - second <= p.page_mask + 1 {
            second
        } else {
            return self.push_checked(p, slba, off);
        };
        let cid = self.take_cid(p.opcode, self.push_flags)?;
        // The addresses are inside the buffer registered under `p.buf` (in range of its one
        // run: `second` < `end` ≤ its end), which the pair's lease keeps allocated.
        let cmd = Command::data(p.opcode, p.ns.nsid(), cid, [prp1, prp2], slba, p.cdw12);
        // SAFETY: as above: memory of the registered buffer, which the pair's lease keeps
        // allocated (unregistering hands the lease back, and only its unsafe completion, by a
        // caller vouching that no device uses the memory, or its quarantine ends it).
        if let Err(e) = unsafe { self.sq.push_unchecked(&cmd) } {
            return Err(self.untake(cid, e));
        }
        Ok(cid)
    }

    /// [`push_prepared`](Self::push_prepared) by the builder path: the data pointer from the
    /// registered lease, the command from its builder, then [`push`](Self::push) — a command
    /// outside the prepared path's fast checks, which ends in the builders' typed errors.
    #[cold]
    #[inline(never)]
    fn push_checked(&mut self, p: &Prepared, slba: u64, off: usize) -> Result<u16> {
        let end = off
            .checked_add(p.xfer)
            .ok_or(Error::Core(crate::Error::InvalidArgument(
                "the buffer range of a prepared command overflows",
            )))?;
        let data = p.prp.borrow(self.registered(p.buf)?, off..end, None)?;
        let cmd = match p.op {
            DataOp::Read => nvm::read(&p.ns, slba, p.nlb, data)?,
            DataOp::Write => nvm::write(&p.ns, slba, p.nlb, data)?,
        };
        // SAFETY: the command names bytes of the buffer registered under `p.buf` (no list: the
        // borrow had none), which the pair's lease keeps allocated; `unregister` hands that
        // lease back, and it ends then only by its holder's unsafe `complete` or quarantine.
        self.push(unsafe { Request::new(cmd, Lent::none()) })
    }
}
