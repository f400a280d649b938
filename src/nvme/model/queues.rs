//! Submission and completion queues on the device side: doorbells, fetching entries, posting
//! completions with the phase tag, and holding completions back while a completion queue is
//! full (an unconsumed entry is never overwritten).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use super::command::{Cqe, Sqe};
use super::ctrl::{Ctrl, Delayed};
use super::fault::Action;
use super::log::{IgnoredDoorbell, Processed, Prps};
use crate::nvme::regs::{offsets, CQ_ENTRY_SIZE, SQ_ENTRY_SIZE};

/// A submission queue.
///
/// # Invariant
/// `head < size` and `tail < size`; `size` ≥ 2.
#[derive(Debug, Clone)]
pub(super) struct Sq {
    pub base: u64,
    pub size: u32,
    pub head: u32,
    pub tail: u32,
    pub cqid: u16,
}

/// A completion queue.
///
/// # Invariant
/// `head < size` and `tail < size`; the ring holds at most `size - 1` unconsumed entries;
/// `pending` waits for room, in order.
#[derive(Debug, Clone)]
pub(super) struct Cq {
    pub base: u64,
    pub size: u32,
    pub head: u32,
    pub tail: u32,
    pub phase: bool,
    pub pending: VecDeque<Cqe>,
}

impl Cq {
    pub fn new(base: u64, size: u32) -> Self {
        Cq {
            base,
            size,
            head: 0,
            tail: 0,
            phase: true,
            pending: VecDeque::new(),
        }
    }

    fn full(&self) -> bool {
        (self.tail + 1) % self.size == self.head
    }
}

/// The queues that exist, by identifier (0: admin).
#[derive(Debug, Clone, Default)]
pub(super) struct Queues {
    pub sqs: BTreeMap<u16, Sq>,
    pub cqs: BTreeMap<u16, Cq>,
}

impl Queues {
    /// The admin queues, from ASQ/ACQ and AQA.
    pub fn create_admin(&mut self, asq: u64, sq_entries: u16, acq: u64, cq_entries: u16) {
        self.cqs.insert(0, Cq::new(acq, cq_entries.into()));
        self.sqs.insert(
            0,
            Sq {
                base: asq,
                size: sq_entries.into(),
                head: 0,
                tail: 0,
                cqid: 0,
            },
        );
    }

    /// Whether any I/O queue exists.
    pub fn any_io(&self) -> bool {
        self.sqs.len() > 1 || self.cqs.len() > 1
    }
}

impl Ctrl {
    /// A write at `offset` ≥ 0x1000: a tail or head doorbell, or ignored.
    pub(super) fn doorbell(&mut self, offset: usize, width: usize, value: u128) {
        let rel = offset - offsets::DOORBELLS;
        let stride = self.cfg.stride();
        let index = rel / stride;
        // CAST: a doorbell is 32 bits; a wider write is ignored below.
        let v = value as u32;
        if index % 2 == 0 {
            self.stats.sq_doorbells += 1;
        } else {
            self.stats.cq_doorbells += 1;
        }
        let why = if width != 4 || rel % stride != 0 {
            Some("not a 32-bit write at a doorbell's offset")
        } else if !self.running() {
            Some("controller not ready")
        } else {
            // A doorbell past u16 queue identifiers names no queue.
            let qid = u16::try_from(index / 2).unwrap_or(u16::MAX);
            if index % 2 == 0 {
                self.sq_tail(qid, v)
            } else {
                self.cq_head(qid, v)
            }
        };
        if let Some(why) = why {
            self.stats.ignored_doorbells.push(IgnoredDoorbell {
                offset,
                value: v,
                why,
            });
        }
    }

    fn sq_tail(&mut self, qid: u16, tail: u32) -> Option<&'static str> {
        let Some(sq) = self.queues.sqs.get_mut(&qid) else {
            return Some("no such submission queue");
        };
        if tail >= sq.size {
            return Some("tail beyond the submission queue");
        }
        sq.tail = tail;
        self.process_sq(qid);
        None
    }

    fn cq_head(&mut self, qid: u16, head: u32) -> Option<&'static str> {
        let Some(cq) = self.queues.cqs.get_mut(&qid) else {
            return Some("no such completion queue");
        };
        if head >= cq.size {
            return Some("head beyond the completion queue");
        }
        cq.head = head;
        self.flush_cq(qid);
        None
    }

    /// Fetches and executes every entry between head and tail. A fetch that fails (memory
    /// the device cannot reach) is a fatal controller error, as in QEMU.
    fn process_sq(&mut self, qid: u16) {
        while self.running() {
            let Some(sq) = self.queues.sqs.get_mut(&qid) else {
                return;
            };
            if sq.head == sq.tail {
                return;
            }
            let addr = sq
                .base
                .wrapping_add(u64::from(sq.head) * SQ_ENTRY_SIZE as u64);
            sq.head = (sq.head + 1) % sq.size;
            // CAST: `head < size` ≤ 65536.
            let (head, cqid) = (sq.head as u16, sq.cqid);
            let mut raw = [0u8; SQ_ENTRY_SIZE];
            if self.mem_read(addr, &mut raw).is_err() {
                self.regs.cfs = true;
                return;
            }
            self.execute(qid, head, cqid, &Sqe::parse(&raw));
        }
    }

    /// Runs one command (or its fault) and posts, delays or drops its completion.
    fn execute(&mut self, qid: u16, sq_head: u16, cqid: u16, sqe: &Sqe) {
        let admin = qid == 0;
        if admin {
            self.stats.admin_fetched += 1;
        } else {
            self.stats.io_fetched += 1;
        }
        let action = self.faults.take(admin, sqe.opcode);
        let mut prps = Prps {
            prp1: sqe.prp1,
            prp2: sqe.prp2,
            ..Prps::default()
        };
        let (status, result) = match action {
            Some(Action::Status(s)) => (s, 0),
            _ if admin => self.admin(sqe, &mut prps),
            _ => self.io(sqe, &mut prps),
        };
        self.log.push(Processed {
            qid,
            cid: sqe.cid,
            opcode: sqe.opcode,
            status,
            result,
            prps,
        });
        let cqe = Cqe {
            result,
            sq_head,
            sqid: qid,
            cid: sqe.cid,
            status,
        };
        match action {
            Some(Action::Delay(d)) => match Instant::now().checked_add(d) {
                Some(due) => self.delayed.push(Delayed { due, cqid, cqe }),
                None => self.stats.lost += 1, // a delay past the clock's range never ends
            },
            Some(Action::Lose) => self.stats.lost += 1,
            _ => self.post(cqid, cqe),
        }
    }

    /// Queues a completion on `cqid` and posts what fits (dropped if the queue is gone).
    pub(super) fn post(&mut self, cqid: u16, cqe: Cqe) {
        if let Some(cq) = self.queues.cqs.get_mut(&cqid) {
            cq.pending.push_back(cqe);
            self.flush_cq(cqid);
        }
    }

    /// Posts held completions while the ring has room. A write that fails is a fatal
    /// controller error, as in QEMU.
    fn flush_cq(&mut self, cqid: u16) {
        while self.faults.vanish.is_none() && !self.regs.cfs {
            let Some(cq) = self.queues.cqs.get_mut(&cqid) else {
                return;
            };
            if cq.full() {
                return;
            }
            let Some(cqe) = cq.pending.front().copied() else {
                return;
            };
            let addr = cq
                .base
                .wrapping_add(u64::from(cq.tail) * CQ_ENTRY_SIZE as u64);
            let bytes = cqe.bytes(cq.phase);
            if self.mem_write(addr, &bytes).is_err() {
                self.regs.cfs = true;
                return;
            }
            let Some(cq) = self.queues.cqs.get_mut(&cqid) else {
                return;
            };
            cq.pending.pop_front();
            cq.tail = (cq.tail + 1) % cq.size;
            if cq.tail == 0 {
                cq.phase = !cq.phase;
            }
            if cqe.sqid == 0 {
                self.stats.admin_completed += 1;
            } else {
                self.stats.io_completed += 1;
            }
        }
    }
}
