//! The `nvme` section: the driver's CPU cost per command on RAM.
//!
//! Each command: build a 4 KiB Read (data pointer into a 4 KiB buffer), write it
//! into the submission queue, ring the SQ tail doorbell, poll its completion, write the CQ head
//! doorbell. BAR0 is a page-aligned heap buffer (`Mmio`, labelled `Caching::Uncached` as the
//! barrier section does); the rings and the data buffer are heap memory (`RamDma`, 1024-entry
//! queues). A null device pre-posts every completion of a round into the CQ ring before the
//! round is timed (phase tag, SQ head, SQ id, the command identifier the queue will assign), so
//! no device work is timed; after each round the bench asserts (untimed) that every poll found
//! its completion with the expected cid, so a wrong prediction cannot go unnoticed.
//!
//! Modes: `per-command` (push, ring, poll one: two doorbells per command) and `batched 32`
//! (32 pushes, one ring, one poll of 32: one SQ and one CQ doorbell per 32 commands).
//!
//! Variants (same run, same flow, same batching):
//! - `raw queue (ref)`: the shape of a typical user-space driver — a `#[repr(C)]` 64-byte SQE
//!   written with plain stores into the ring, cids from a counter, a cookie per cid,
//!   `write_volatile` doorbells, `read_volatile` phase polling, and a compiler fence where
//!   `dma_rmb` and `writel`'s barrier are on x86_64 (elsewhere the same fence: the reference is
//!   an x86 figure). No checks.
//! - `QueuePair`: the data buffer registered with the queue pair once (`QueuePair::register`,
//!   as SPDK registers its memory and io_uring its fixed buffers), each command's data pointer
//!   from it (`PrpBuilder::borrow` of `QueuePair::registered`: range checked, no reference
//!   count) + `nvm::read` + `QueuePair::{push, ring, poll}`.
//! - `QueuePair (lend per command)`, for information: the same with `PrpBuilder::lend` of a
//!   fresh lease per command (a reference count up and down, the `Lent` carried to the
//!   completion).
//! - `QueuePair prepared`: the same Read checked once (`QueuePair::prepare`: block count,
//!   maximum transfer, data pointer rules) and pushed with `QueuePair::push_prepared` (LBA
//!   range and buffer range checked, cid and PRPs set per command), then `ring` and `poll`.
//!
//! Rows: `ns` per command (best of rounds of 1024 commands: one pass over both rings, so every
//! round wraps them and flips the phase), and doorbell `writes` per command (SQ + CQ). The
//! library's doorbell writes are measured, not asserted: the registered and prepared rounds run
//! (untimed) once more with BAR0 a `MockIo` (the null BAR with a trace), and the 32-bit writes
//! it recorded at the two doorbell offsets are counted. The reference counts its own writes in a
//! separately compiled counting instance (`RawQueue<true>`). `target` rows: `QueuePair` and
//! `QueuePair prepared` ≤ 1.25× the reference in each mode, and the doorbells per command.

use std::hint::black_box;
use std::ptr;
use std::sync::atomic::{compiler_fence, Ordering};
use std::time::{Duration, Instant};

use iomem::backend::MockIo;
use iomem::dma::{DmaProvider, DmaRegion, RamDma};
use iomem::nvme::cmd::nvm::{self, Namespace};
use iomem::nvme::cmd::{Lent, Request};
use iomem::nvme::cq::CompletionQueue;
use iomem::nvme::ctrl::{DataOp, Prepared, QueuePair};
use iomem::nvme::prp::{no_list, BufId, PageSize, PrpBuilder};
use iomem::nvme::regs::{offsets, Cap};
use iomem::nvme::sq::{HostSqRing, SubmissionQueue};
use iomem::{Backend, Caching, IoMem, Mmio};

use crate::ram::Buf;
use crate::{Opts, Row};

const SECTION: &str = "nvme";
const REFERENCE: &str = "raw queue (ref)";
const LIBRARY: &str = "QueuePair";
const LEND: &str = "QueuePair (lend per command)";
const PREPARED: &str = "QueuePair prepared";
/// Entries of each queue.
const ENTRIES: usize = 1024;
/// Commands per timed round: one pass over both rings.
const ROUND: usize = ENTRIES;
const BATCH: usize = 32;
const QID: u16 = 1;
/// CAP: MQES 4095, CQR, TO 5 s, DSTRD 0, NVM command set.
const CAP: u64 = 0x20_0a01_0fff;
/// Doorbells of queue 1 with DSTRD 0.
const SQ_DB: usize = 0x1008;
const CQ_DB: usize = 0x100c;
const BAR_LEN: usize = 0x2000;
const BLOCK: usize = 512;
const XFER: usize = 4096;
/// A made-up device address for the reference's data buffer (it is never given to a device).
const RAW_DATA_ADDR: u64 = 0x2_0000_0000;
const GOAL: f64 = 1.25;

/// The null device: completes every command at once, in submission order, with success.
struct NullDevice {
    tail: usize,
    phase: bool,
    sq_head: usize,
}

impl NullDevice {
    fn new() -> Self {
        NullDevice {
            tail: 0,
            phase: true,
            sq_head: 0,
        }
    }

    /// Posts one completion per cid, in order, through `write(byte offset, dword)`; each entry's
    /// phase dword is written last, as a controller does.
    fn post(&mut self, cids: &[u16], mut write: impl FnMut(usize, u32)) {
        for &cid in cids {
            self.sq_head = (self.sq_head + 1) % ENTRIES;
            let off = self.tail * 16;
            write(off, 0);
            write(off + 4, 0);
            // CAST: the SQ head is a slot, below 1024.
            write(off + 8, self.sq_head as u32 | u32::from(QID) << 16);
            write(off + 12, u32::from(cid) | u32::from(self.phase) << 16);
            self.tail += 1;
            if self.tail == ENTRIES {
                self.tail = 0;
                self.phase = !self.phase;
            }
        }
    }
}

/// The cids a queue pair will assign to the next `n` commands, completed in order: the
/// submission queue slots they are written to (a pair's cid is its slot when that cid is free),
/// from slot `next` on, which moves past them.
fn predict(next: &mut usize, n: usize) -> Vec<u16> {
    // CAST: slots are below 1024.
    let out = (0..n).map(|j| ((*next + j) % ENTRIES) as u16).collect();
    *next = (*next + n) % ENTRIES;
    out
}

/// An `Mmio` over `buf`, holding an enabled, ready controller's CAP, VS and CSTS.
fn bar0(buf: &Buf) -> Mmio {
    // SAFETY: `buf` is a live, page-aligned allocation of `len()` bytes that outlives the
    // `Mmio` (the caller drops it first); it is RAM, valid for volatile accesses of every width,
    // and only raw pointers to it exist.
    let bar = unsafe { Mmio::new(buf.ptr, buf.len(), Caching::Uncached) }.expect("aligned");
    let io = IoMem::new(&bar);
    io.try_write(offsets::CAP, &CAP).expect("CAP");
    io.try_write(offsets::VS, &0x0001_0400u32).expect("VS");
    io.try_write(offsets::CSTS, &1u32).expect("CSTS.RDY");
    bar
}

/// The library's side: a queue pair over host rings and BAR0 `D`, a data buffer, a namespace.
struct Lib<D: Backend> {
    qp: QueuePair<HostSqRing<Mmio>, Mmio, D>,
    data: DmaRegion<Mmio>,
    /// `data`, registered with `qp` (the `QueuePair` variant).
    reg: BufId,
    /// A Read of 8 blocks into `reg`, checked once (the `QueuePair prepared` variant).
    read: Prepared,
    ns: Namespace,
    prp: PrpBuilder,
    dev: NullDevice,
    /// The submission queue slot the next command is written to (its cid).
    next: usize,
}

impl<D: Backend + Copy> Lib<D> {
    fn new(dma: &RamDma, bar: D) -> Self {
        let cap = Cap::decode(CAP).expect("CAP");
        let ring = HostSqRing::new(dma.alloc(ENTRIES * 64).expect("SQ ring")).expect("contiguous");
        // CAST: 1024 entries fit both queue sizes.
        let sq = SubmissionQueue::new(ring, ENTRIES as u32, bar, cap, QID).expect("SQ");
        let cq_ring = dma.alloc(ENTRIES * 16).expect("CQ ring");
        let cq = CompletionQueue::new(cq_ring, ENTRIES as u16, bar, cap, QID).expect("CQ");
        let mut qp = QueuePair::new(sq, cq, bar, Duration::from_secs(30));
        let data = dma.alloc(XFER).expect("data buffer");
        let reg = qp.register(&data);
        let ns = Namespace::from_parts(1, BLOCK, 1 << 20, Some(128 * 1024)).expect("namespace");
        let prp = PrpBuilder::new(PageSize::MIN, None);
        let read = qp.prepare(DataOp::Read, &ns, 8, reg, &prp).expect("a Read");
        Lib {
            reg,
            read,
            qp,
            data,
            ns,
            prp,
            dev: NullDevice::new(),
            next: 0,
        }
    }

    /// Pre-posts the completions of the next round (untimed device work).
    fn post(&mut self) {
        let cids = predict(&mut self.next, ROUND);
        let mem = self.qp.cq().ring().mem();
        self.dev
            .post(&cids, |off, v| mem.try_write(off, &v).expect("in the ring"));
    }

    /// [`round`](Self::round) with data pointers into the registered buffer (`borrow` of
    /// `registered`, `nvm::read`, `push`). Not inlined, as the other variants: a profiler
    /// splits its figures by variant.
    #[inline(never)]
    fn round_registered(&mut self, batch: usize) -> (usize, usize) {
        self.round(batch, |lib, slba| {
            let read = lib
                .qp
                .registered(lib.reg)
                .and_then(|l| lib.prp.borrow(l, 0..XFER, None))
                .and_then(|d| nvm::read(&lib.ns, slba, 8, d))
                .expect("a valid Read");
            // SAFETY: the command names the registered buffer, which the pair's lease keeps.
            lib.qp
                .push(unsafe { Request::new(read, Lent::none()) })
                .expect("a free slot")
        })
    }

    /// [`round`](Self::round) lending a fresh lease per command (`PrpBuilder::lend`).
    #[inline(never)]
    fn round_lend(&mut self, batch: usize) -> (usize, usize) {
        self.round(batch, |lib, slba| {
            let req = lib
                .prp
                .lend(lib.data.lease(), 0..XFER, no_list)
                .and_then(|p| p.into_request(|d| nvm::read(&lib.ns, slba, 8, d)))
                .expect("a valid Read");
            lib.qp.push(req).expect("a free slot")
        })
    }

    /// [`round`](Self::round) with the prepared Read: `push_prepared` of a starting LBA and
    /// offset 0 of the registered buffer.
    #[inline(never)]
    fn round_prepared(&mut self, batch: usize) -> (usize, usize) {
        self.round(batch, |lib, slba| {
            lib.qp
                .push_prepared(&lib.read, slba, 0)
                .expect("a free slot")
        })
    }

    /// One round of commands, `batch` per doorbell, each pushed by `push` (its starting LBA
    /// given; it returns the cid): (completions reaped, wrong completions).
    #[inline(always)]
    fn round(&mut self, batch: usize, push: impl Fn(&mut Self, u64) -> u16) -> (usize, usize) {
        let (mut reaped, mut wrong) = (0, 0);
        let mut cids = [0u16; BATCH];
        for _ in 0..ROUND / batch {
            for (k, cid) in cids.iter_mut().enumerate().take(batch) {
                // CAST: k < 32: 8 blocks apart.
                *cid = push(self, k as u64 * 8);
            }
            self.qp.ring().expect("rung");
            let mut k = 0;
            reaped += self
                .qp
                .poll(batch, |d| {
                    wrong += usize::from(d.cid != cids[k] || !d.status.is_success());
                    k += 1;
                })
                .expect("polled");
        }
        (reaped, wrong)
    }
}

/// A 64-byte submission queue entry as typical user-space drivers declare it.
#[repr(C)]
#[derive(Clone, Copy)]
struct Sqe {
    cdw0: u32,
    nsid: u32,
    rsvd: [u32; 2],
    mptr: u64,
    prp1: u64,
    prp2: u64,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
}

const _: () = assert!(std::mem::size_of::<Sqe>() == 64);

/// The reference: an unchecked raw-pointer queue pair. With `COUNT`, it counts its doorbell
/// writes (a separate instance, never timed).
///
/// # Invariant
/// `sq` is valid for `ENTRIES` SQEs, `cq` for `ENTRIES` 16-byte entries, `sq_db` and `cq_db`
/// for 32-bit volatile accesses, all aligned, for the queue's life, with no references to them.
struct RawQueue<const COUNT: bool> {
    sq: *mut Sqe,
    cq: *const u32,
    sq_db: *mut u32,
    cq_db: *mut u32,
    sq_tail: u32,
    sq_head: u32,
    cq_head: u32,
    phase: u32,
    next_cid: u16,
    cookies: Box<[u64; ENTRIES]>,
    dev: NullDevice,
    writes: (u64, u64),
}

impl<const COUNT: bool> RawQueue<COUNT> {
    /// # Safety
    /// `sq`, `cq` and `bar` are as the invariant says: `sq` `ENTRIES × 64` bytes, `cq`
    /// `ENTRIES × 16` bytes, `bar` at least `BAR_LEN` bytes, page-aligned, outliving the queue.
    unsafe fn new(sq: &Buf, cq: &Buf, bar: &Buf) -> Self {
        RawQueue {
            sq: sq.ptr.cast(),
            cq: cq.ptr.cast_const().cast(),
            // SAFETY: inside `bar` (the caller's contract).
            sq_db: unsafe { bar.ptr.add(SQ_DB) }.cast(),
            // SAFETY: as above.
            cq_db: unsafe { bar.ptr.add(CQ_DB) }.cast(),
            sq_tail: 0,
            sq_head: 0,
            cq_head: 0,
            phase: 1,
            next_cid: 0,
            cookies: Box::new([0; ENTRIES]),
            dev: NullDevice::new(),
            writes: (0, 0),
        }
    }

    fn post(&mut self) {
        // CAST: cids are below 1024.
        let cids: Vec<u16> = (0..ROUND)
            .map(|j| ((usize::from(self.next_cid) + j) % ENTRIES) as u16)
            .collect();
        let cq = self.cq.cast_mut().cast::<u8>();
        self.dev.post(&cids, |off, v| {
            // SAFETY: `off` is inside the CQ ring (the device's tail), 4-aligned (invariant).
            unsafe { ptr::write_volatile(cq.add(off).cast::<u32>(), v) }
        });
    }

    #[inline(always)]
    fn submit_read(&mut self, slba: u64, nlb: u32, prp1: u64) -> Option<u16> {
        let next = (self.sq_tail + 1) % ENTRIES as u32;
        if next == self.sq_head {
            return None;
        }
        let cid = self.next_cid;
        self.next_cid = (cid + 1) % ENTRIES as u16;
        self.cookies[usize::from(cid)] = prp1;
        let sqe = Sqe {
            cdw0: 0x02 | u32::from(cid) << 16,
            nsid: 1,
            rsvd: [0; 2],
            mptr: 0,
            prp1,
            prp2: 0,
            // CAST: the halves of SLBA.
            cdw10: slba as u32,
            cdw11: (slba >> 32) as u32,
            cdw12: nlb - 1,
            cdw13: 0,
            cdw14: 0,
            cdw15: 0,
        };
        // SAFETY: slot `sq_tail` < ENTRIES of the ring (invariant); plain store, as drivers do.
        unsafe { self.sq.add(self.sq_tail as usize).write(sqe) };
        self.sq_tail = next;
        Some(cid)
    }

    #[inline(always)]
    fn ring(&mut self) {
        // `writel` on x86_64: the entries' stores before the doorbell's (a compiler fence).
        compiler_fence(Ordering::Release);
        // SAFETY: the doorbell register (invariant).
        unsafe { ptr::write_volatile(self.sq_db, self.sq_tail) };
        if COUNT {
            self.writes.0 += 1;
        }
    }

    #[inline(always)]
    fn poll(&mut self, max: usize, mut f: impl FnMut(u16, u32, u32, u64)) -> usize {
        let mut n = 0;
        while n < max {
            // SAFETY: entry `cq_head` < ENTRIES of the ring (invariant).
            let e = unsafe { self.cq.add(self.cq_head as usize * 4) };
            // SAFETY: as above; dword 3 of the entry.
            let dw3 = unsafe { ptr::read_volatile(e.add(3)) };
            if (dw3 >> 16) & 1 != self.phase {
                break;
            }
            // `dma_rmb` on x86_64.
            compiler_fence(Ordering::Acquire);
            // SAFETY: as above; dwords 0 and 2.
            let (dw0, dw2) = unsafe { (ptr::read_volatile(e), ptr::read_volatile(e.add(2))) };
            self.cq_head += 1;
            if self.cq_head == ENTRIES as u32 {
                self.cq_head = 0;
                self.phase ^= 1;
            }
            self.sq_head = dw2 & 0xffff;
            // CAST: the cid is the low half of dword 3.
            let cid = dw3 as u16;
            let cookie = self.cookies[usize::from(cid) % ENTRIES];
            f(cid, dw3 >> 17, dw0, cookie);
            n += 1;
        }
        if n > 0 {
            // SAFETY: the doorbell register (invariant).
            unsafe { ptr::write_volatile(self.cq_db, self.cq_head) };
            if COUNT {
                self.writes.1 += 1;
            }
        }
        n
    }

    /// One round, as [`Lib::round`].
    #[inline(never)]
    fn round(&mut self, batch: usize) -> (usize, usize) {
        let (mut reaped, mut wrong) = (0, 0);
        let mut cids = [0u16; BATCH];
        for _ in 0..ROUND / batch {
            for (k, cid) in cids.iter_mut().enumerate().take(batch) {
                // CAST: k < 32.
                let slba = k as u64 * 8;
                *cid = self
                    .submit_read(slba, 8, black_box(RAW_DATA_ADDR))
                    .expect("a free slot");
            }
            self.ring();
            let mut k = 0;
            reaped += self.poll(batch, |cid, status, _, _| {
                wrong += usize::from(cid != cids[k] || status != 0);
                k += 1;
            });
        }
        (reaped, wrong)
    }
}

fn check(what: &str, (reaped, wrong): (usize, usize)) {
    assert_eq!(
        (reaped, wrong),
        (ROUND, 0),
        "{what}: every poll finds its pre-posted completion with the predicted cid"
    );
}

fn row(case: &str, variant: &str, value: f64, unit: &'static str, ratio: Option<f64>) -> Row {
    Row {
        section: SECTION,
        case: case.into(),
        bytes: XFER as u64,
        misalign: "-".into(),
        variant: variant.into(),
        value,
        unit,
        ratio,
    }
}

/// The timed reference (not counting).
type Raw = RawQueue<false>;

/// [`time_mode`] one command per doorbell (not inlined: a profiler, run with
/// `--separate-callers=1`, splits the rounds' figures by mode).
#[inline(never)]
fn time_per_command(rounds: usize, lib: &mut Lib<&Mmio>, raw: &mut Raw) -> [f64; 4] {
    time_mode(rounds, 1, lib, raw)
}

/// [`time_mode`] `BATCH` commands per doorbell (not inlined, as above).
#[inline(never)]
fn time_batched(rounds: usize, lib: &mut Lib<&Mmio>, raw: &mut Raw) -> [f64; 4] {
    time_mode(rounds, BATCH, lib, raw)
}

/// Best ns per command of each variant (reference, registered, lend, prepared) over `rounds`
/// rounds, the variants in turn, starting with another one each round.
#[inline(always)]
fn time_mode(rounds: usize, batch: usize, lib: &mut Lib<&Mmio>, raw: &mut Raw) -> [f64; 4] {
    let mut best = [f64::INFINITY; 4];
    let ns = |t: Instant| t.elapsed().as_secs_f64() * 1e9 / ROUND as f64;
    for r in 0..rounds {
        for v in (0..4).map(|k| (r + k) % 4) {
            // Untimed: the completions the round will reap.
            if v == 0 {
                raw.post();
            } else {
                lib.post();
            }
            let t = Instant::now();
            let (what, got) = match v {
                0 => (REFERENCE, raw.round(batch)),
                1 => (LIBRARY, lib.round_registered(batch)),
                2 => (LEND, lib.round_lend(batch)),
                _ => (PREPARED, lib.round_prepared(batch)),
            };
            best[v] = best[v].min(ns(t));
            check(what, got);
        }
    }
    best
}

pub fn run(opts: Opts) -> Vec<Row> {
    let rounds = if opts.quick { 300 } else { 4000 };
    // SAFETY: the regions' made-up addresses are never given to a device: the null device
    // posts completions through the CPU and reads no PRP.
    let dma = unsafe { RamDma::new(0x1_0000_0000) };
    let bar_buf = Buf::new(BAR_LEN);
    let bar = bar0(&bar_buf);
    // The counting run's BAR0: a mock that records every access, holding the same registers.
    let counting = MockIo::new(BAR_LEN);
    counting.poke(offsets::CAP, &CAP.to_le_bytes());
    counting.poke(offsets::VS, &0x0001_0400u32.to_le_bytes());
    counting.poke(offsets::CSTS, &1u32.to_le_bytes());
    let bufs = || {
        (
            Buf::new(ENTRIES * 64),
            Buf::new(ENTRIES * 16),
            Buf::new(BAR_LEN),
        )
    };
    let raw_bufs = [bufs(), bufs()];
    // SAFETY: each buffer triple is as `RawQueue::new` requires and outlives its queue.
    let mut raw = unsafe { RawQueue::<false>::new(&raw_bufs[0].0, &raw_bufs[0].1, &raw_bufs[0].2) };
    // SAFETY: as above.
    let mut raw_count =
        unsafe { RawQueue::<true>::new(&raw_bufs[1].0, &raw_bufs[1].1, &raw_bufs[1].2) };
    let mut lib = Lib::new(&dma, &bar);
    let mut lib_count = Lib::new(&dma, &counting);
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (case, batch) in [("per-command", 1), ("batched 32", BATCH)] {
        let [t_raw, t_lib, t_lend, t_prep] = if batch == 1 {
            time_per_command(rounds, &mut lib, &mut raw)
        } else {
            time_batched(rounds, &mut lib, &mut raw)
        };
        rows.push(row(case, REFERENCE, t_raw, "ns", Some(1.0)));
        rows.push(row(case, LIBRARY, t_lib, "ns", Some(t_lib / t_raw)));
        rows.push(row(case, LEND, t_lend, "ns", Some(t_lend / t_raw)));
        rows.push(row(case, PREPARED, t_prep, "ns", Some(t_prep / t_raw)));
        // The doorbell counts: two untimed rounds of the reference, two of the library's
        // registered and prepared variants each.
        let per = |n: u64| n as f64 / (2 * ROUND) as f64;
        let per_lib = |n: u64| n as f64 / (4 * ROUND) as f64;
        raw_count.writes = (0, 0);
        counting.clear_events();
        for _ in 0..2 {
            raw_count.post();
            check(REFERENCE, raw_count.round(batch));
            lib_count.post();
            check(LIBRARY, lib_count.round_registered(batch));
            lib_count.post();
            check(PREPARED, lib_count.round_prepared(batch));
        }
        let raw_w = per(raw_count.writes.0 + raw_count.writes.1);
        let writes = counting.writes();
        let at = |off: usize| {
            writes
                .iter()
                .filter(|w| w.offset == off && w.width == 4)
                .count()
        };
        // CAST: counts of a few thousand.
        let (lib_sq, lib_cq) = (per_lib(at(SQ_DB) as u64), per_lib(at(CQ_DB) as u64));
        let lib_w = lib_sq + lib_cq;
        rows.push(row(
            case,
            "raw queue SQ+CQ doorbells",
            raw_w,
            "writes",
            Some(1.0),
        ));
        let ratio = Some(lib_w / raw_w);
        rows.push(row(
            case,
            "QueuePair SQ+CQ doorbells",
            lib_w,
            "writes",
            ratio,
        ));
        let want = 1.0 / batch as f64;
        for (what, t) in [(LIBRARY, t_lib), (PREPARED, t_prep)] {
            let ratio = t / t_raw;
            let what = format!("{what} <= {GOAL}x ref ({case})");
            targets.push((what, ratio, ratio <= GOAL));
        }
        for (q, got) in [("SQ", lib_sq), ("CQ", lib_cq)] {
            let what = format!("{q} doorbells/cmd = 1/{batch} ({case})");
            targets.push((what, got, (got - want).abs() < 1e-9));
        }
    }
    for (what, value, met) in targets {
        let unit = if met { "MET" } else { "MISS" };
        rows.push(Row {
            unit,
            ..row("target", &what, value, "", None)
        });
    }
    rows
}
