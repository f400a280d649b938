//! Allocator throughput: alloc+free pairs at ~50% fill of a 256 MiB region (4 KiB granularity,
//! 4 KiB–1 MiB requests, half powers of two and half arbitrary multiples of 4 KiB), for
//! `P2pPool` and the references a driver author would compare it with: a genalloc-style bitmap
//! first-fit (Linux `lib/genalloc.c`) and a B-tree best fit. The workload and the references are
//! in `examples/report/alloc_workload.rs`, shared with the report's `alloc` section, which also
//! measures fragmentation (largest allocation possible at 50% fill).
//!
//! `alloc/churn@25%x2`: two threads at once on one pool, each churning its own buffers at 25%
//! fill (50% in all); the time is the wall-clock time of both, so the figure is the pairs per
//! second of the two together (compare with `alloc/churn@25%`, one such churn alone). It needs
//! two idle CPUs to mean anything.
//!
//! ```text
//! cargo bench --bench alloc [-- --quick]
//! ```

use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../examples/report/ram.rs"]
mod ram;
#[path = "../examples/report/alloc_workload.rs"]
mod workload;

use workload::{p2p_pool, Alloc, BTreeFit, Bitmap, Churn, BAND, REGION};

fn churn<A: Alloc>(c: &mut Criterion, name: &str, alloc: A) {
    let mut ch = Churn::new(alloc, 1);
    ch.pairs(20_000);
    let mut g = c.benchmark_group("alloc/churn@50%");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| b.iter(|| ch.pairs(1)));
    g.finish();
}

/// One churn at 25% fill, then two on one pool from two threads at once.
fn churn2(c: &mut Criterion) {
    let pool = p2p_pool();
    let mut chs: Vec<_> = (0..2)
        .map(|w| Churn::with_fill(pool.clone(), 7 + w, REGION / 4, BAND / 2))
        .collect();
    let mut g = c.benchmark_group("alloc/churn@25%");
    g.throughput(Throughput::Elements(1));
    g.bench_function("p2p-tlsf 1 thread", |b| b.iter(|| chs[0].pairs(1)));
    g.finish();
    let mut g = c.benchmark_group("alloc/churn@25%x2");
    g.throughput(Throughput::Elements(1));
    g.bench_function("p2p-tlsf 2 threads", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(2);
            let t = Instant::now();
            std::thread::scope(|s| {
                // The threads take their first buffer in turn, so that their home arenas
                // (handed out in turn) differ, and are the same in every sample.
                let (tx, rx) = mpsc::channel();
                for ch in chs.iter_mut() {
                    let tx = tx.clone();
                    s.spawn(move || {
                        ch.pairs(1);
                        tx.send(()).unwrap();
                        ch.pairs(per - 1);
                    });
                    rx.recv().unwrap();
                }
            });
            t.elapsed()
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    churn2(c);
    churn(c, "p2p-tlsf", p2p_pool());
    churn(c, "bitmap-first-fit (ref)", Bitmap::new());
    churn(c, "btree-best-fit", BTreeFit::new());
}

criterion_group! {
    name = alloc;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(alloc);
