//! The `dma` section: the CPU's cost of typed DMA memory.
//!
//! - `cq-poll`: ns per completion-queue poll of a 1024-entry ring (16-byte entries) through
//!   `DmaMem` — read the phase tag, and when the entry is there, `dma_rmb` and the rest of the
//!   entry — with the entry present and absent, against the same poll as a bare `read_volatile`
//!   loop over a plain buffer of the same shape and contents (the reference, ratio 1).
//! - `lease`: ns per lease taken, an address asked for, and completed: the ownership
//!   bookkeeping of one submit/complete pair.

use std::hint::black_box;
use std::ptr;
use std::time::Instant;

use iomem::dma::{DmaMem, DmaProvider, RamDma};
use iomem::Mmio;

use crate::ram::Buf;
use crate::{Opts, Row};

const ENTRIES: usize = 1024;
const ENTRY: usize = 16;

/// What a poll returns when the entry at `head` is there: its command id and SQ head.
type Found = Option<(u16, u16)>;

fn poll_dma(cq: &DmaMem<'_, [u8], Mmio>, head: usize, phase: u32) -> Found {
    let off = head * ENTRY;
    let dw3: u32 = cq.try_read(off + 12).ok()?;
    if (dw3 >> 16) & 1 != phase {
        return None;
    }
    cq.dma_rmb();
    let dw2: u32 = cq.try_read(off + 8).ok()?;
    // CAST: the fields are the low halves of their dwords.
    Some((dw3 as u16, dw2 as u16))
}

/// The same poll with raw pointers.
///
/// # Safety
/// `base` is valid for volatile reads of the whole ring.
unsafe fn poll_raw(base: *const u8, head: usize, phase: u32) -> Found {
    // SAFETY: in the ring by the caller's contract, 4-aligned.
    let dw3 = unsafe { ptr::read_volatile(base.add(head * ENTRY + 12).cast::<u32>()) };
    if (dw3 >> 16) & 1 != phase {
        return None;
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::Acquire);
    // SAFETY: as above.
    let dw2 = unsafe { ptr::read_volatile(base.add(head * ENTRY + 8).cast::<u32>()) };
    Some((dw3 as u16, dw2 as u16))
}

fn best_ns(rounds: usize, iters: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let t = Instant::now();
        f(iters);
        best = best.min(t.elapsed().as_secs_f64() * 1e9 / iters as f64);
    }
    best
}

fn row(case: &str, variant: &str, value: f64, reference: f64) -> Row {
    Row {
        section: "dma",
        case: case.into(),
        bytes: (ENTRIES * ENTRY) as u64,
        misalign: "aligned".into(),
        variant: variant.into(),
        value,
        unit: "ns",
        ratio: Some(value / reference),
    }
}

pub fn run(opts: Opts) -> Vec<Row> {
    let (rounds, iters) = if opts.quick {
        (7, 200_000)
    } else {
        (31, 1_000_000)
    };
    // SAFETY: the regions' made-up addresses are never given to a device: nothing here has one.
    let dma = unsafe { RamDma::new(0x1_0000_0000) };
    let ring = dma.alloc(ENTRIES * ENTRY).expect("heap memory");
    let cq = ring.mem();
    // Every entry posted with phase 1, cid = index.
    for i in 0..ENTRIES {
        let dw3 = (1u32 << 16) | i as u32;
        cq.try_write(i * ENTRY + 12, &dw3).expect("in the ring");
    }
    // The reference polls a plain page-aligned buffer of the same shape and contents: the
    // region hands out no pointer to its memory.
    let plain = Buf::new(ENTRIES * ENTRY);
    for i in 0..ENTRIES {
        let dw3 = (1u32 << 16) | i as u32;
        // SAFETY: inside the buffer, 4-aligned; only raw pointers to it exist.
        unsafe { ptr::write_volatile(plain.ptr.add(i * ENTRY + 12).cast::<u32>(), dw3) };
    }
    let base = plain.ptr.cast_const();
    let mut rows = Vec::new();
    for (case, phase) in [("cq-poll present", 1u32), ("cq-poll absent", 0u32)] {
        let raw = best_ns(rounds, iters, |n| {
            let mut head = 0;
            for _ in 0..n {
                // SAFETY: `base` is the ring's memory, alive for this closure.
                black_box(unsafe { poll_raw(black_box(base), head, phase) });
                head = (head + 1) % ENTRIES;
            }
        });
        let typed = best_ns(rounds, iters, |n| {
            let mut head = 0;
            for _ in 0..n {
                black_box(poll_dma(black_box(&cq), head, phase));
                head = (head + 1) % ENTRIES;
            }
        });
        rows.push(row(case, "read_volatile (ref)", raw, raw));
        rows.push(row(case, "DmaMem", typed, raw));
    }
    let lease = best_ns(rounds, iters / 4, |n| {
        for i in 0..n {
            let l = ring.lease();
            black_box(l.addr((i as usize % ENTRIES) * ENTRY).expect("in the ring"));
            // SAFETY: no device was given the address.
            unsafe { l.complete() };
        }
    });
    let bare = best_ns(rounds, iters / 4, |n| {
        for i in 0..n {
            black_box(black_box(0x1_0000_0000u64) + ((i as usize % ENTRIES) * ENTRY) as u64);
        }
    });
    rows.push(row("lease", "address arithmetic (ref)", bare, bare));
    rows.push(row("lease", "lease+addr+complete", lease, bare));
    rows
}
