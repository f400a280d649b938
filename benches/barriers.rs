//! Barrier strategies on this host: a 64-byte command copy plus a doorbell write, per strategy
//! and command-buffer caching, with the real `Mmio` backend over RAM; and one store followed by
//! each x86 fence.
//!
//! ```text
//! cargo bench --bench barriers
//! ```
//!
//! `examples/report/barrier.rs` measures the same submits for the report's CSV (and counts the
//! instructions each simulated architecture would execute).

use std::hint::black_box;
use std::time::Duration;

#[path = "../examples/report/ram.rs"]
mod ram;
use ram::{Buf, PAGE};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use iomem::order::Strategy;
use iomem::publish::Doorbell;
use iomem::{Caching, IoMem, Mmio, WidthPolicy};

const CMD: usize = 64;
const SLOTS: usize = 64;
const BATCH: usize = 32;
const DB: usize = PAGE - 4;

fn submits(c: &mut Criterion) {
    let regs_buf = Buf::new(PAGE);
    let data_buf = Buf::new(SLOTS * CMD);
    let mut g = c.benchmark_group("submit_64B");
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(600))
        .sample_size(20);
    for caching in [Caching::Uncached, Caching::WriteCombining] {
        // SAFETY: both buffers are live, page-aligned RAM allocations that outlive the `Mmio`s
        // (dropped at the end of this function, after them), valid for volatile accesses, with
        // no reference to them anywhere. Claiming write-combining for RAM only adds flushes.
        let (regs, data) = unsafe {
            (
                Mmio::new(regs_buf.ptr, PAGE, Caching::Uncached).unwrap(),
                Mmio::new(data_buf.ptr, SLOTS * CMD, caching).unwrap(),
            )
        };
        let label = match caching {
            Caching::Uncached => "uc",
            Caching::WriteCombining => "wc",
            Caching::Cacheable => "ram",
        };
        for s in Strategy::ALL {
            let db = Doorbell::new(IoMem::new(&regs).cast::<u32>(DB).unwrap()).with_strategy(s);
            // 8-byte accesses for the command: this bench times barrier placement, not widths.
            let sq = IoMem::new(&data).with_policy(WidthPolicy::U64);
            let per_ring = if s == Strategy::Batched { BATCH } else { 1 };
            let cmd = [0x5au8; CMD];
            g.throughput(Throughput::Elements(per_ring as u64));
            g.bench_function(format!("{}/{label}", s.name()), |b| {
                let mut slot = 0;
                b.iter_batched(
                    || (),
                    |()| {
                        let mut sub = db.submission();
                        for _ in 0..per_ring {
                            let dst = sq.subslice(slot * CMD..slot * CMD + CMD).unwrap();
                            sub.copy(&dst, black_box(&cmd)).unwrap();
                            slot = (slot + 1) % SLOTS;
                        }
                        sub.ring(slot as u32);
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

#[cfg(target_arch = "x86_64")]
fn fences(c: &mut Criterion) {
    use std::arch::asm;
    let buf = Buf::new(PAGE);
    let p = buf.ptr.cast::<u64>();
    let mut g = c.benchmark_group("store_fence");
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(500))
        .sample_size(20);
    g.bench_function("write", |b| {
        // SAFETY: `p` points into `buf`, live and aligned, used through raw pointers only.
        b.iter(|| unsafe { p.write_volatile(black_box(1)) })
    });
    g.bench_function("write+mfence", |b| {
        b.iter(|| {
            // SAFETY: as above; `mfence` only orders memory.
            unsafe {
                p.write_volatile(black_box(1));
                asm!("mfence", options(nostack, preserves_flags));
            }
        })
    });
    g.bench_function("write+lock-or", |b| {
        b.iter(|| {
            // SAFETY: as above; `lock or` of 0 leaves the stack word unchanged, clobbers flags.
            unsafe {
                p.write_volatile(black_box(1));
                asm!("lock or dword ptr [rsp], 0");
            }
        })
    });
    g.bench_function("write+sfence", |b| {
        b.iter(|| {
            // SAFETY: as above; `sfence` only orders stores.
            unsafe {
                p.write_volatile(black_box(1));
                asm!("sfence", options(nostack, preserves_flags));
            }
        })
    });
    g.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn fences(_c: &mut Criterion) {}

criterion_group!(benches, submits, fences);
criterion_main!(benches);
