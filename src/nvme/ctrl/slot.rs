//! The per-cid slots of a queue pair, where its registered buffers are, and retiring the
//! command a completion names.

use crate::backend::Backend;
use crate::dma::Lease;
use crate::nvme::cmd::Lent;
use crate::nvme::cq::Completion;
use crate::nvme::{Error, Result};

use super::Done;

/// The slot of one command identifier. A pair's cids are its submission queue's slot indices:
/// a push takes the cid of the slot it writes when that cid is free (one flag test), so slot
/// `cid` of the pair describes the command with that identifier while it is in flight.
/// Plain data: a push writes its opcode and flags (`seen` is only read under [`SEEN`]).
#[derive(Clone, Copy)]
pub(super) struct Slot {
    /// When a check first saw the command (under [`SEEN`]): nanoseconds since the pair's epoch.
    pub(super) seen: u64,
    pub(super) opcode: u8,
    /// [`LIVE`], [`TAKEN`], [`LENDS`], [`DEVICE`], [`SEEN`], [`TIMED_OUT`]; 0 when the cid is
    /// free.
    pub(super) flags: u8,
}

/// A command holds the cid and is in flight.
pub(super) const LIVE: u8 = 1;
/// `lent[cid]` holds what the command lends (else it is empty).
pub(super) const LENDS: u8 = 2;
/// What it lends includes device memory ([`Lent::holds_device_memory`]), or the pair was told
/// its data may be in device memory ([`QueuePair::set_device_data`](super::QueuePair::set_device_data)).
pub(super) const DEVICE: u8 = 4;
/// A check reported it timed out.
pub(super) const TIMED_OUT: u8 = 8;
/// A check stamped `seen`.
pub(super) const SEEN: u8 = 16;
/// The command completed and its completion is kept (by a `wait` for another cid) until it is
/// handed out: the cid is not free yet, so a kept completion is never confused with a later
/// command under the same cid.
pub(super) const TAKEN: u8 = 32;

impl Slot {
    pub(super) const FREE: Slot = Slot {
        seen: 0,
        opcode: 0,
        flags: 0,
    };

    /// Records a command just pushed (`flags` includes [`LIVE`]): two byte stores.
    #[inline(always)]
    pub(super) fn push(&mut self, opcode: u8, flags: u8) {
        self.opcode = opcode;
        self.flags = flags;
    }

    pub(super) fn live(&self) -> bool {
        self.flags & LIVE != 0
    }

    /// Whether no command, in flight or with a kept completion, holds the cid.
    #[inline(always)]
    pub(super) fn free(&self) -> bool {
        self.flags == 0
    }
}

/// Stamps the commands in flight a scan sees for the first time (`now`, in ns since the pair's
/// epoch) and marks the first one stamped `timeout` or longer ago, and not yet reported,
/// [`TIMED_OUT`]: returns its cid. Only a command `only` names (every command for `None`)
/// is marked: the others past their deadline stay unmarked, each for a later scan to report,
/// so every expired command is reported once and none goes unreported. Stops once `taken`
/// cids taken were seen.
pub(super) fn scan(
    slots: &mut [Slot],
    mut taken: usize,
    now: u64,
    timeout: u64,
    only: Option<u16>,
) -> Option<u16> {
    let mut expired = None;
    for (cid, s) in slots.iter_mut().enumerate() {
        if taken == 0 {
            break;
        }
        if s.free() {
            continue;
        }
        taken -= 1;
        if !s.live() {
            continue;
        }
        if s.flags & SEEN == 0 {
            s.seen = now;
            s.flags |= SEEN;
        } else if expired.is_none()
            && s.flags & TIMED_OUT == 0
            && now - s.seen >= timeout
            && only.is_none_or(|c| usize::from(c) == cid)
        {
            s.flags |= TIMED_OUT;
            // CAST: slot indices are cids, below 65536.
            expired = Some(cid as u16);
        }
    }
    expired
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

/// Retires the command completion `c` names: its slot freed (a caller that keeps the
/// completion marks the cid [`TAKEN`] until it hands it out) and what it lent handed back;
/// returns the completion and the command's flags (for the caller to or into the pair's
/// `reaped_flags`: whether its data may be in device memory). The caller notes the SQ head
/// and counts the cid handed back. [`Error::UnknownCid`] for a completion of another queue
/// than `qid` or of no command in flight.
#[inline(always)]
pub(super) fn retire<B: Backend + Send + Sync + 'static>(
    c: Completion,
    qid: u16,
    slots: &mut [Slot],
    lent: &mut [Lent<B>],
) -> Result<(Done, u8)> {
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
    // Free again (the push that reuses it writes the opcode and flags).
    let (opcode, flags) = (s.opcode, s.flags);
    s.flags = 0;
    if flags & LENDS != 0 {
        give_back(lent, i);
    }
    let done = Done {
        qid,
        cid: c.cid,
        opcode,
        result: c.result,
        status: c.status,
    };
    Ok((done, flags))
}

/// Hands back what command `i` lent, on its completion (out of line: registered buffers and
/// prepared commands lend nothing).
#[inline(never)]
fn give_back<B: Backend + Send + Sync + 'static>(lent: &mut [Lent<B>], i: usize) {
    if let Some(l) = lent.get_mut(i) {
        let l = core::mem::take(l);
        // SAFETY: the command completed, so the device is done with what it lent; a command
        // still in flight naming the same memory holds it by other means (queues push only
        // held requests: `Push`), so releasing this holder frees nothing that one uses.
        unsafe { l.complete() };
    }
}
