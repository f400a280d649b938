//! Allocator throughput: alloc+free pairs at ~50% fill of a 256 MiB region (4 KiB granularity,
//! 4 KiB–1 MiB requests, half powers of two and half arbitrary multiples of 4 KiB), for
//! `P2pPool` and the references a driver author would compare it with: a genalloc-style bitmap
//! first-fit (Linux `lib/genalloc.c`) and a B-tree best fit. The workload and the references are
//! in `examples/report/alloc_workload.rs`, shared with the report's `alloc` section, which also
//! measures fragmentation (largest allocation possible at 50% fill).
//!
//! ```text
//! cargo bench --bench alloc [-- --quick]
//! ```

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

#[path = "../examples/report/ram.rs"]
mod ram;
#[path = "../examples/report/alloc_workload.rs"]
mod workload;

use workload::{p2p_pool, Alloc, BTreeFit, Bitmap, Churn};

fn churn<A: Alloc>(c: &mut Criterion, name: &str, alloc: A) {
    let mut ch = Churn::new(alloc, 1);
    ch.pairs(20_000);
    let mut g = c.benchmark_group("alloc/churn@50%");
    g.throughput(Throughput::Elements(1));
    g.bench_function(name, |b| b.iter(|| ch.pairs(1)));
    g.finish();
}

fn benches(c: &mut Criterion) {
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
