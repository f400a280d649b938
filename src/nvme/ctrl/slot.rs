//! The per-cid slots of a queue pair, where its registered buffers are, and retiring the
//! command a completion names.

use crate::backend::Backend;
use crate::dma::Lease;
use crate::nvme::cmd::Lent;
use crate::nvme::cq::Completion;
use crate::nvme::sq::{SqRing, SubmissionQueue};
use crate::nvme::{Error, Result};

use super::Done;

/// The slot of one command identifier: whether a command holds it, when a check first saw
/// that command, and whether it lends memory (kept in the pair's `lent` table under its cid).
/// Plain data, written whole by a push (two stores), so a cid's slot is indexed directly.
#[derive(Clone, Copy)]
pub(super) struct Slot {
    /// When a check first saw the command: nanoseconds since the pair's epoch, plus one; 0
    /// until a check sees it.
    pub(super) seen: u64,
    pub(super) opcode: u8,
    /// [`LIVE`], [`LENDS`], [`DEVICE`], [`TIMED_OUT`].
    pub(super) flags: u8,
}

/// A command holds the cid.
pub(super) const LIVE: u8 = 1;
/// `lent[cid]` holds what the command lends (else it is empty).
pub(super) const LENDS: u8 = 2;
/// What it lends includes device memory ([`Lent::holds_device_memory`]), or the pair was told
/// its data may be in device memory ([`QueuePair::set_device_data`](super::QueuePair::set_device_data)).
pub(super) const DEVICE: u8 = 4;
/// A check reported it timed out.
pub(super) const TIMED_OUT: u8 = 8;

impl Slot {
    pub(super) const FREE: Slot = Slot {
        seen: 0,
        opcode: 0,
        flags: 0,
    };

    /// The slot of a command just pushed.
    #[inline(always)]
    pub(super) fn pushed(opcode: u8, flags: u8) -> Slot {
        Slot {
            seen: 0,
            opcode,
            flags: flags | LIVE,
        }
    }

    pub(super) fn live(&self) -> bool {
        self.flags & LIVE != 0
    }
}

/// Where a registered buffer is for the controller: its device address and length when it is
/// one run of device addresses (with room past its end for a page's rounding), else length 0
/// (then prepared commands into it take the checked path).
#[derive(Clone, Copy)]
pub(super) struct Run {
    pub(super) base: u64,
    pub(super) len: usize,
}

impl Run {
    pub(super) const NONE: Run = Run { base: 0, len: 0 };

    pub(super) fn of<B: Backend + Send + Sync + 'static>(lease: &Lease<B>) -> Run {
        let len = lease.len();
        match lease.range(0..len) {
            // CAST: usize is at most 64 bits wide. 2^27: the largest memory page.
            Ok(a) if len > 0 && a.get().checked_add(len as u64 + (1 << 27)).is_some() => {
                Run { base: a.get(), len }
            }
            _ => Run::NONE,
        }
    }
}

/// Retires the command completion `c` names: its slot freed (its cid stays taken until the
/// completion is handed out), the SQ head noted, what it lent handed back, whether its data may
/// be in device memory recorded. [`Error::UnknownCid`] for a completion of another queue or of
/// no outstanding command.
#[inline(always)]
pub(super) fn retire<R: SqRing, B: Backend + Send + Sync + 'static, D: Backend>(
    c: Completion,
    sq: &mut SubmissionQueue<R, D>,
    slots: &mut [Slot],
    lent: &mut [Lent<B>],
    device_reaped: &mut bool,
) -> Result<Done> {
    let qid = sq.qid();
    if c.sq_id != qid {
        return Err(Error::UnknownCid {
            qid: c.sq_id,
            cid: c.cid,
        });
    }
    let i = usize::from(c.cid);
    let Some(s) = slots.get_mut(i).filter(|s| s.live()) else {
        return Err(Error::UnknownCid { qid, cid: c.cid });
    };
    // Free again (the push that reuses it writes the whole slot).
    let (opcode, flags) = (s.opcode, s.flags);
    s.flags = 0;
    // Applied when the ring looks full (an out-of-range head, a controller bug, is dropped
    // then); the command completed either way.
    sq.note_head(c.sq_head);
    if flags & LENDS != 0 {
        if let Some(l) = lent.get_mut(i) {
            let l = core::mem::take(l);
            // SAFETY: the controller posted this command's completion, so it is done with the
            // memory the command was lent (NVMe: a completion means the data transfer ended).
            unsafe { l.complete() };
        }
    }
    *device_reaped |= flags & DEVICE != 0;
    Ok(Done {
        qid,
        cid: c.cid,
        opcode,
        result: c.result,
        status: c.status,
    })
}
