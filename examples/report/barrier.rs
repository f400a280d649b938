//! Report sections `barrier` and `barrier-count`.
//!
//! - `barrier`: nanoseconds per submit — one 64-byte command copied into a command buffer plus
//!   a doorbell write — on this host, with the real [`Mmio`] backend over RAM, for each
//!   [`Strategy`]. `Batched` rings once per 32 commands; the others ring per command. The command
//!   buffer is claimed uncached (`uc`) or write-combining (`wc`, so the doorbell flushes); the
//!   doorbell register is in a second, uncached mapping, as BAR0 is next to a CMB. Ratio: to
//!   `relaxed/uc` (no barrier at all).
//! - `barrier-count`: barrier instructions per 1,000 submits, from the mock simulating each
//!   architecture (the same barrier table the real backend executes): one row per
//!   architecture × strategy × instruction, for a write-combining (`/wc`) and an uncached
//!   (`/uc`) command buffer.
//! - `barrier`, case `store+fence` (x86_64 hosts): one volatile 8-byte store followed by
//!   `mfence`, a locked `or` of 0 to the stack (the shape of Linux's `smp_mb()`), `sfence`, or
//!   nothing. Ratio: to the bare store.
//!
//! Host rows are the fastest of many interleaved rounds (see `time_kernels`), each round long
//! enough to make timer resolution irrelevant.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use iomem::backend::{Backend, MockIo};
use iomem::order::{Arch, Strategy};
use iomem::publish::Doorbell;
use iomem::{Caching, IoMem, Mmio, WidthPolicy};

use crate::ram::{Buf, PAGE};
use crate::{Opts, Row};

const CMD: usize = 64;
/// Command slots in the buffer (the submission queue depth).
const SLOTS: usize = 64;
/// Commands per doorbell under `Batched`.
const BATCH: usize = 32;
/// The doorbell's offset in its register page.
const DB: usize = 0x1000 - 4;

/// Submits `n` commands (`cmd` each) into `sq`'s slots, ringing `db` per command, or per
/// [`BATCH`] commands under `Batched`. Returns the last doorbell value.
fn submit<B: Backend, D: Backend>(
    db: &Doorbell<'_, B>,
    sq: &IoMem<'_, [u8], D>,
    cmd: &[u8; CMD],
    start: usize,
    n: usize,
) -> u32 {
    let per_ring = if db.strategy() == Strategy::Batched {
        BATCH
    } else {
        1
    };
    let mut i = 0;
    while i < n {
        let mut sub = db.submission();
        for _ in 0..per_ring.min(n - i) {
            let slot = (start + i) % SLOTS;
            let dst = sq
                .subslice(slot * CMD..slot * CMD + CMD)
                .expect("slot inside the queue");
            sub.copy(&dst, cmd).expect("64-byte slot");
            i += 1;
        }
        sub.ring(((start + i) % SLOTS) as u32);
    }
    ((start + n) % SLOTS) as u32
}

fn caching_label(c: Caching) -> &'static str {
    match c {
        Caching::Uncached => "uc",
        Caching::WriteCombining => "wc",
        Caching::Cacheable => "ram",
    }
}

/// Fastest round's ns per iteration of each kernel, rounds of all kernels interleaved.
///
/// The minimum, not the median: these are tens of nanoseconds on a shared machine, where another
/// process taking the core for part of a round inflates that round by more than the barrier
/// being measured; the fastest of many short rounds is the cost without interference.
fn time_kernels(
    kernels: &mut [Box<dyn FnMut(u64) + '_>],
    rounds: usize,
    round: Duration,
) -> Vec<f64> {
    let iters: Vec<u64> = kernels
        .iter_mut()
        .map(|k| {
            let mut iters = 1u64;
            loop {
                let t = Instant::now();
                k(iters);
                let e = t.elapsed();
                if e >= round {
                    break iters;
                }
                let f = round.as_secs_f64() / e.as_secs_f64().max(1e-9);
                iters = (iters as f64 * f.clamp(1.5, 8.0)).ceil() as u64;
            }
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(rounds); kernels.len()];
    for _ in 0..rounds {
        for (j, k) in kernels.iter_mut().enumerate() {
            let t = Instant::now();
            k(iters[j]);
            samples[j].push(t.elapsed().as_secs_f64() * 1e9 / iters[j] as f64);
        }
    }
    samples
        .iter()
        .map(|s| s.iter().copied().fold(f64::INFINITY, f64::min))
        .collect()
}

fn host_rows(rounds: usize, round: Duration) -> Vec<Row> {
    let regs_buf = Buf::new(PAGE);
    let data_bufs = [Buf::new(SLOTS * CMD), Buf::new(SLOTS * CMD)];
    // SAFETY: each buffer is a live, page-aligned allocation of `len()` bytes that outlives the
    // `Mmio` over it (declared earlier, dropped later); it is RAM, valid for volatile accesses of
    // every width, and nothing here creates a reference to it. The second data buffer is
    // claimed write-combining although it is write-back RAM: the claim only adds `sfence`s to
    // doorbells, which is the cost being measured.
    let (regs, data) = unsafe {
        (
            Mmio::new(regs_buf.ptr, regs_buf.len(), Caching::Uncached).expect("aligned"),
            [
                Mmio::new(data_bufs[0].ptr, data_bufs[0].len(), Caching::Uncached)
                    .expect("aligned"),
                Mmio::new(
                    data_bufs[1].ptr,
                    data_bufs[1].len(),
                    Caching::WriteCombining,
                )
                .expect("aligned"),
            ],
        )
    };
    let db_reg = IoMem::new(&regs).cast::<u32>(DB).expect("doorbell in page");
    let cmd = [0xc3u8; CMD];

    let mut names = Vec::new();
    let mut kernels: Vec<Box<dyn FnMut(u64) + '_>> = Vec::new();
    for (ci, mmio) in data.iter().enumerate() {
        for s in Strategy::ALL {
            if s == Strategy::Relaxed && ci == 1 {
                continue; // identical to relaxed/uc: no barrier whatever the caching
            }
            names.push(format!("{}/{}", s.name(), caching_label(mmio.caching())));
            // 8-byte accesses for the command, as before the default became the kernel's own
            // copy (4-byte `movs` on x86): this section times barrier placement, not widths.
            let sq = IoMem::new(mmio).with_policy(WidthPolicy::U64);
            let db = Doorbell::new(db_reg).with_strategy(s);
            let mut start = 0;
            kernels.push(Box::new(move |iters| {
                let n = iters as usize;
                black_box(submit(&db, &sq, black_box(&cmd), start, n));
                start = (start + n) % SLOTS;
            }));
        }
    }
    let ns = time_kernels(&mut kernels, rounds, round);
    drop(kernels);
    // Every variant wrote whole commands: the check keeps the copies from being optimised out
    // in spirit as well as in fact.
    for m in &data {
        let mut got = [0u8; CMD];
        IoMem::new(m)
            .subslice(0..CMD)
            .expect("slot")
            .copy_to_slice(&mut got)
            .expect("slot");
        assert_eq!(got, cmd, "a submit variant did not write its command");
    }
    let reference = ns[0];
    names
        .into_iter()
        .zip(ns)
        .map(|(variant, v)| Row {
            section: "barrier",
            case: "64B+doorbell".into(),
            bytes: CMD as u64,
            misalign: "aligned".into(),
            variant,
            value: v,
            unit: "ns/submit",
            ratio: Some(v / reference),
        })
        .collect()
}

/// Barrier instructions per 1,000 submits for each simulated arch, strategy and command-buffer
/// caching. Commas inside an instruction (`fence ow,ow`) are written as `:` to keep the CSV flat.
pub fn count_rows() -> Vec<Row> {
    const SUBMITS: usize = 1000;
    let mut rows = Vec::new();
    for caching in [Caching::WriteCombining, Caching::Uncached] {
        for arch in Arch::ALL {
            let mut per_strategy = Vec::new();
            let mut all_insns = std::collections::BTreeSet::new();
            for s in Strategy::ALL {
                let regs = MockIo::new(PAGE).with_arch(arch);
                let data = MockIo::new(SLOTS * CMD)
                    .with_arch(arch)
                    .with_caching(caching);
                let db = Doorbell::new(IoMem::new(&regs).cast::<u32>(DB).expect("doorbell"))
                    .with_strategy(s);
                submit(&db, &IoMem::new(&data), &[0x3c; CMD], 0, SUBMITS);
                let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
                for m in [&regs, &data] {
                    for e in m.events() {
                        if let iomem::backend::mock::Event::Barrier { insns, .. } = e {
                            if insns.is_empty() {
                                *counts.entry("compiler-fence").or_default() += 1;
                            }
                            for i in insns {
                                *counts.entry(i).or_default() += 1;
                            }
                        }
                    }
                }
                all_insns.extend(counts.keys().copied());
                per_strategy.push((s, counts));
            }
            for (s, counts) in per_strategy {
                for insn in &all_insns {
                    rows.push(Row {
                        section: "barrier-count",
                        case: format!("64B+doorbell/{}", caching_label(caching)),
                        bytes: CMD as u64,
                        misalign: String::new(),
                        variant: format!("{}/{}/{}", arch.name(), s.name(), insn.replace(',', ":")),
                        value: counts.get(insn).copied().unwrap_or(0) as f64 * 1000.0
                            / SUBMITS as f64,
                        unit: "per 1000 submits",
                        ratio: None,
                    });
                }
            }
        }
    }
    rows
}

#[cfg(target_arch = "x86_64")]
fn fence_rows(rounds: usize, round: Duration) -> Vec<Row> {
    use std::arch::asm;
    let buf = Buf::new(PAGE);
    let p = buf.ptr.cast::<u64>();
    // In every kernel `p` points into `buf`, a live, aligned page used through raw pointers
    // only, for as long as the kernels live (they are dropped before `buf`).
    let mut kernels: Vec<Box<dyn FnMut(u64)>> = vec![
        Box::new(move |n| {
            for i in 0..n {
                // SAFETY: `p` is valid for an aligned 8-byte volatile store (see above).
                unsafe { p.write_volatile(i) };
            }
        }),
        Box::new(move |n| {
            for i in 0..n {
                // SAFETY: as above; `mfence` only orders memory accesses.
                unsafe {
                    p.write_volatile(i);
                    asm!("mfence", options(nostack, preserves_flags));
                }
            }
        }),
        Box::new(move |n| {
            for i in 0..n {
                // SAFETY: as above; `lock or` of 0 leaves the word at the stack pointer
                // unchanged (only this thread uses it) and clobbers only the flags.
                unsafe {
                    p.write_volatile(i);
                    asm!("lock or dword ptr [rsp], 0");
                }
            }
        }),
        Box::new(move |n| {
            for i in 0..n {
                // SAFETY: as above; `sfence` only orders stores.
                unsafe {
                    p.write_volatile(i);
                    asm!("sfence", options(nostack, preserves_flags));
                }
            }
        }),
    ];
    let names = ["write", "write+mfence", "write+lock-or", "write+sfence"];
    let ns = time_kernels(&mut kernels, rounds, round);
    drop(kernels);
    let reference = ns[0];
    names
        .iter()
        .zip(ns)
        .map(|(name, v)| Row {
            section: "barrier",
            case: "store+fence".into(),
            bytes: 8,
            misalign: "aligned".into(),
            variant: (*name).into(),
            value: v,
            unit: "ns",
            ratio: Some(v / reference),
        })
        .collect()
}

#[cfg(not(target_arch = "x86_64"))]
fn fence_rows(_rounds: usize, _round: Duration) -> Vec<Row> {
    Vec::new()
}

pub fn run(opts: Opts) -> Vec<Row> {
    let (rounds, round) = if opts.quick {
        (9, Duration::from_millis(1))
    } else {
        (41, Duration::from_millis(2))
    };
    let mut rows = host_rows(rounds, round);
    rows.extend(count_rows());
    rows.extend(fence_rows(rounds, round));
    rows
}
