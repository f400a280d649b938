//! What the model saw: counters, the ignored doorbell writes, and a record of every command
//! it processed with the data pointers it followed.

use std::vec::Vec;

/// The data pointers a command carried and the PRP list entries the model read for it (chain
/// pointers included), in the order read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prps {
    /// PRP entry 1.
    pub prp1: u64,
    /// PRP entry 2 (a page or a list pointer).
    pub prp2: u64,
    /// Every PRP list entry read.
    pub list: Vec<u64>,
}

impl Prps {
    /// Every address the command's data pointers named: PRP1, PRP2 and the list entries.
    pub fn addresses(&self) -> Vec<u64> {
        let mut v = std::vec![self.prp1, self.prp2];
        v.extend_from_slice(&self.list);
        v
    }
}

/// One command the model processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// The submission queue it came from (0: admin).
    pub qid: u16,
    /// Its command identifier.
    pub cid: u16,
    /// Its opcode.
    pub opcode: u8,
    /// The Status Field it completed with (posted or not).
    pub status: u16,
    /// Dword 0 of its completion.
    pub result: u32,
    /// The data pointers it carried and the list entries followed.
    pub prps: Prps,
}

/// A doorbell write the model ignored, as QEMU does (it would raise an asynchronous event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IgnoredDoorbell {
    /// Byte offset in BAR0.
    pub offset: usize,
    /// The value written.
    pub value: u32,
    /// Why it was ignored.
    pub why: &'static str,
}

/// Counters of what the model did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelStats {
    /// Admin commands fetched.
    pub admin_fetched: u64,
    /// Admin completions posted.
    pub admin_completed: u64,
    /// I/O commands fetched.
    pub io_fetched: u64,
    /// I/O completions posted.
    pub io_completed: u64,
    /// Writes to a submission queue tail doorbell.
    pub sq_doorbells: u64,
    /// Writes to a completion queue head doorbell.
    pub cq_doorbells: u64,
    /// Completions dropped by [`Fault::LoseCompletion`](super::Fault::LoseCompletion).
    pub lost: u64,
    /// Completions held by [`Fault::Delay`](super::Fault::Delay), not yet due.
    pub delayed: u64,
    /// Completions waiting for room in a full completion queue.
    pub held: u64,
    /// Doorbell writes ignored (bad value, no such queue, controller not ready).
    pub ignored_doorbells: Vec<IgnoredDoorbell>,
    /// PMRSTS reads that flushed the PMR (ready, PMRWBM bit 1).
    pub pmr_flushes: u64,
}
