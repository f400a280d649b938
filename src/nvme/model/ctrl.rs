//! The controller's state behind one lock, and the entry points the BAR0 hooks call: every
//! access first lets time pass (ready delay, delayed completions), then reads or writes a
//! register or rings a doorbell.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use std::vec::Vec;

use super::command::Cqe;
use super::config::ModelConfig;
use super::fault::Faults;
use super::io::Namespace;
use super::log::{ModelStats, Processed};
use super::queues::Queues;
use super::regs::RegFile;
use crate::backend::MockIo;
use crate::dma::MockDma;
use crate::nvme::regs::offsets;

/// A completion held by a [`Fault::Delay`](super::Fault::Delay).
#[derive(Debug, Clone, Copy)]
pub(super) struct Delayed {
    /// When it is due.
    pub due: Instant,
    /// The completion queue it goes to.
    pub cqid: u16,
    /// The entry.
    pub cqe: Cqe,
}

/// The PMR's BAR and what survives a power loss.
pub(super) struct Pmr {
    /// The BAR (all of it is the PMR).
    pub bar: Arc<MockIo>,
    /// Whether the BAR serves accesses (PMRCTL.EN); its hooks read this, not the lock.
    pub on: Arc<AtomicBool>,
    /// The contents as of the last flush.
    pub persisted: Vec<u8>,
}

/// Set Features state.
#[derive(Debug, Clone, Default)]
pub(super) struct Features {
    /// I/O submission and completion queues granted (1's based); `None` until Set Features
    /// Number of Queues (then the controller's maximum applies).
    pub granted: Option<(u16, u16)>,
    /// Values of the other features set, by FID.
    pub values: std::collections::BTreeMap<u8, u32>,
}

/// The whole device state.
///
/// # Invariant
/// Queues exist only while CC.EN = 1 and the enable was valid; every I/O SQ's CQ exists; a
/// CQ's `pending` entries are posted in order as soon as the ring has room.
pub(super) struct Ctrl {
    pub cfg: ModelConfig,
    pub dma: MockDma,
    pub cmb: Option<Arc<MockIo>>,
    pub pmr: Option<Pmr>,
    pub regs: RegFile,
    pub queues: Queues,
    pub ns: Namespace,
    pub features: Features,
    pub faults: Faults,
    pub delayed: Vec<Delayed>,
    pub stats: ModelStats,
    pub log: Vec<Processed>,
}

impl Ctrl {
    pub fn new(cfg: ModelConfig, dma: MockDma, cmb: Option<Arc<MockIo>>, pmr: Option<Pmr>) -> Self {
        let regs = RegFile::default();
        let ns = Namespace::new(cfg.lba_size, cfg.lba_count);
        Ctrl {
            cfg,
            dma,
            cmb,
            pmr,
            regs,
            queues: Queues::default(),
            ns,
            features: Features::default(),
            faults: Faults::default(),
            delayed: Vec::new(),
            stats: ModelStats::default(),
            log: Vec::new(),
        }
    }

    /// A BAR0 read of `width` bytes at `offset`.
    pub fn mmio_read(&mut self, offset: usize, width: usize) -> u128 {
        if let Some(v) = self.faults.vanish {
            return v.value(width);
        }
        self.tick();
        if offset >= offsets::DOORBELLS {
            return 0; // doorbells read as 0 (QEMU)
        }
        if offset <= offsets::PMRSTS && offsets::PMRSTS < offset + width {
            self.pmr_flush();
        }
        let mut v = 0u128;
        for i in (0..width.min(16)).rev() {
            let at = offset + i;
            let dword = self.reg_read(at & !3);
            // CAST: one byte of the dword, by intent.
            v = v << 8 | u128::from((dword >> (8 * (at & 3))) as u8);
        }
        v
    }

    /// A BAR0 write of the low `width` bytes of `value` at `offset`.
    pub fn mmio_write(&mut self, offset: usize, width: usize, value: u128) {
        if self.faults.vanish.is_some() {
            return;
        }
        self.tick();
        if offset >= offsets::DOORBELLS {
            self.doorbell(offset, width, value);
            return;
        }
        let end = offset + width.min(16);
        // Dwords high to low: a 64-bit register's high half is in place before the low half
        // acts (CMBMSC).
        let first = offset & !3;
        let mut d = (end + 3) & !3;
        while d > first {
            d -= 4;
            let mut dword = self.reg_read(d);
            for at in d.max(offset)..(d + 4).min(end) {
                // CAST: one byte of the value, by intent.
                let byte = (value >> (8 * (at - offset))) as u8;
                let shift = 8 * (at & 3);
                dword = dword & !(0xff << shift) | u32::from(byte) << shift;
            }
            self.reg_write(d, dword);
        }
    }

    /// A PMRSTS read: with PMRWBM bit 1 and the PMR ready, the contents persist (QEMU:
    /// `memory_region_msync` of the backend).
    fn pmr_flush(&mut self) {
        let (Some(cfg), Some(pmr)) = (self.cfg.pmr, self.pmr.as_mut()) else {
            return;
        };
        if cfg.pmrwbm & 2 != 0 && self.regs.pmr.ready() {
            // CAST: the PMR is at most 1 GiB (checked).
            pmr.persisted = pmr.bar.peek(0, cfg.size as usize);
            self.stats.pmr_flushes += 1;
        }
    }

    /// Sets whether the PMR's BAR serves accesses.
    pub fn pmr_on(&self, on: bool) {
        if let Some(p) = &self.pmr {
            p.on.store(on, Ordering::SeqCst);
        }
    }

    /// Lets time pass: CSTS.RDY after the ready delay, delayed completions that are due.
    pub fn tick(&mut self) {
        if self.faults.vanish.is_some() {
            return;
        }
        let now = Instant::now();
        self.regs.tick(now, self.faults.never_ready);
        self.regs.pmr.tick(now);
        if self.delayed.iter().any(|d| d.due <= now) {
            let all = core::mem::take(&mut self.delayed);
            let (due, keep): (Vec<_>, Vec<_>) = all.into_iter().partition(|d| d.due <= now);
            self.delayed = keep;
            for d in due {
                self.post(d.cqid, d.cqe);
            }
        }
    }

    /// Whether the controller processes commands: ready, not failed, not gone.
    pub fn running(&self) -> bool {
        self.regs.rdy() && !self.regs.cfs && !self.faults.fatal && self.faults.vanish.is_none()
    }
}
