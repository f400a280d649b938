//! `P2pPool`: model test against a reference, threads, stats, errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use iomem::backend::MockIo;
use iomem::p2p::{P2pBuf, P2pConfig, P2pPool};
use iomem::{Backend, Caching, Error, WidthPolicy};
use proptest::prelude::*;

const G: usize = 4096;

fn pool(size: usize, bus: u64, gran: usize) -> P2pPool<MockIo> {
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    unsafe { P2pPool::with_config(MockIo::new(size), P2pConfig::new(bus).granularity(gran)) }
        .unwrap()
}

#[test]
fn alloc_rounds_to_granularity_only() {
    let p = pool(1 << 20, 0x1000_0000, G);
    let a = p.alloc(1, 1).unwrap();
    assert_eq!(a.len(), G);
    let b = p.alloc(5 * G + 1, 1).unwrap();
    assert_eq!(b.len(), 6 * G); // not 8 × 4 KiB: no power-of-two rounding
    let c = p.alloc(3 * G, 1).unwrap();
    assert_eq!(c.len(), 3 * G);
    let s = p.stats();
    assert_eq!(s.free, (1 << 20) - 10 * G);
    assert_eq!(s.allocations, 3);
    assert_eq!(s.total, 1 << 20);
    assert_eq!(s.granularity, G);
    // bus addresses and offsets agree
    for buf in [&a, &b, &c] {
        assert_eq!(buf.bus_addr() - 0x1000_0000, buf.offset() as u64);
        assert_eq!(buf.io().len(), buf.len());
        assert_eq!(buf.io().offset(), buf.offset());
        assert!(p.contains_bus(buf.bus_addr(), buf.len() as u64));
    }
    drop((a, b, c));
    let s = p.stats();
    assert_eq!(
        (s.free, s.largest_free, s.allocations, s.free_blocks),
        (1 << 20, 1 << 20, 0, 1)
    );
}

#[test]
fn alignment_is_of_the_bus_address() {
    // bus address 4 KiB aligned but not 64 KiB aligned
    let p = pool(1 << 20, 0x1_0000_3000, G);
    let a = p.alloc(G, 64 * 1024).unwrap();
    assert_eq!(a.bus_addr() % (64 * 1024), 0);
    assert_eq!(a.bus_addr(), 0x1_0000_3000 + a.offset() as u64);
    let b = p.alloc(G, 1 << 19).unwrap();
    assert_eq!(b.bus_addr() % (1 << 19), 0);
    // the padding in front went back to the free lists
    assert_eq!(p.stats().free, (1 << 20) - 2 * G);
    drop((a, b));
    assert_eq!(p.stats().free_blocks, 1);
}

#[test]
fn errors_are_typed() {
    let p = pool(64 * G, 0, G);
    assert!(matches!(p.alloc(0, 1), Err(Error::InvalidArgument(_))));
    assert!(matches!(p.alloc(G, 3), Err(Error::InvalidArgument(_))));
    let big = p.alloc(60 * G, 1).unwrap();
    match p.alloc(8 * G, 1) {
        Err(Error::Exhausted {
            size,
            align,
            free,
            largest,
        }) => {
            assert_eq!((size, align, free, largest), (8 * G, 1, 4 * G, 4 * G));
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    assert!(matches!(
        p.alloc(usize::MAX, 1),
        Err(Error::Exhausted { .. })
    ));
    drop(big);
    // no address of [bus, bus + 256 KiB) is 2^62-aligned
    let q = pool(64 * G, 0x1000_0000, G);
    assert!(matches!(q.alloc(G, 1 << 62), Err(Error::Exhausted { .. })));

    let cfg = |g| P2pConfig::new(0).granularity(g);
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    assert!(unsafe { P2pPool::with_config(MockIo::new(G), cfg(32)) }.is_err());
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    assert!(unsafe { P2pPool::with_config(MockIo::new(G), cfg(3000)) }.is_err());
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    assert!(unsafe { P2pPool::with_config(MockIo::new(G), P2pConfig::new(0x800)) }.is_err());
    assert!(matches!(
        // SAFETY: a mock at a made-up bus address: no device is given its addresses.
        unsafe { P2pPool::with_config(MockIo::new(G), P2pConfig::new(0).range(0..2 * G)) },
        Err(Error::OutOfRange { .. })
    ));
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    assert!(
        unsafe { P2pPool::with_config(MockIo::new(2 * G), P2pConfig::new(0).range(8..G + 8)) }
            .is_err()
    );
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    assert!(unsafe { P2pPool::with_config(MockIo::new(G - 64), P2pConfig::new(0)) }.is_err());
    assert!(matches!(
        // SAFETY: a mock at a made-up bus address: no device is given its addresses.
        unsafe { P2pPool::with_config(MockIo::new(G), P2pConfig::new(u64::MAX - 4095)) },
        Err(Error::Overflow { .. })
    ));
}

#[test]
fn range_and_handles() {
    // a pool over [8 KiB, 24 KiB) of a WC mapping; handles carry the configured policy
    let mock = MockIo::new(32 * 1024).with_caching(Caching::WriteCombining);
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    let p = unsafe {
        P2pPool::with_config(
            mock,
            P2pConfig::new(0xfd00_0000)
                .range(0x2000..0x6000)
                .policy(WidthPolicy::U32),
        )
    }
    .unwrap();
    assert_eq!(p.len(), 0x4000);
    let a = p.alloc(100, 1).unwrap();
    assert!((0x2000..0x6000).contains(&a.offset()));
    assert_eq!(a.bus_addr(), 0xfd00_0000 + (a.offset() - 0x2000) as u64);
    assert_eq!(a.io().policy(), WidthPolicy::U32);
    assert_eq!(a.io().caching(), Caching::WriteCombining);
    a.io()
        .subslice(0..64)
        .unwrap()
        .copy_from_slice(&[7; 64])
        .unwrap();
    assert_eq!(p.backend().peek(a.offset(), 64), vec![7; 64]);
    assert!(p.backend().accesses().iter().all(|x| x.width <= 4));
    assert_eq!(p.io().len(), 0x4000);
}

#[test]
fn buffers_keep_the_pool_alive() {
    let buf = {
        let p = pool(16 * G, 0, G);
        p.alloc(G, 1).unwrap()
    };
    // the pool handle is gone; the buffer still reaches its mapping
    buf.io().fill(0x5a).unwrap();
    assert_eq!(buf.pool().backend().peek(buf.offset(), 4), vec![0x5a; 4]);
    assert_eq!(buf.pool().stats().allocations, 1);
}

#[test]
fn pool_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<P2pPool<MockIo>>();
    check::<P2pBuf<MockIo>>();
    check::<P2pPool<iomem::Mmio>>();
}

#[test]
fn many_threads() {
    use std::sync::Mutex;
    let p = Arc::new(pool(1 << 22, 0x2000_0000, G));
    // every live range, across threads: an overlap is caught when the allocation is made
    let live_all: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::default();
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            let p = p.clone();
            let live_all = live_all.clone();
            std::thread::spawn(move || {
                let mut live: Vec<P2pBuf<MockIo>> = Vec::new();
                let mut x = 0x9e37_79b9u32.wrapping_mul(t + 1);
                let mut allocs = 0;
                for _ in 0..2000 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    if x % 3 == 0 && !live.is_empty() {
                        let b = live.swap_remove(x as usize % live.len());
                        live_all.lock().unwrap().remove(&b.bus_addr());
                        drop(b);
                    } else if let Ok(b) = p.alloc(((x >> 8) as usize % 16 + 1) * G, G) {
                        let mut m = live_all.lock().unwrap();
                        let (a, l) = (b.bus_addr(), b.len() as u64);
                        if let Some((&o, &ol)) = m.range(..=a).next_back() {
                            assert!(o + ol <= a, "overlap {o:#x}+{ol:#x} / {a:#x}");
                        }
                        if let Some((&o, _)) = m.range(a..).next() {
                            assert!(a + l <= o, "overlap {a:#x}+{l:#x} / {o:#x}");
                        }
                        m.insert(a, l);
                        drop(m);
                        live.push(b);
                        allocs += 1;
                    }
                }
                for b in &live {
                    live_all.lock().unwrap().remove(&b.bus_addr());
                }
                allocs
            })
        })
        .collect();
    let allocs: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(allocs > 1000);
    let s = p.stats();
    assert_eq!((s.free, s.allocations, s.free_blocks), (1 << 22, 0, 1));
}

#[derive(Debug, Clone)]
enum Op {
    Alloc { size: usize, align_log2: u8 },
    Free(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1usize..40_000, 0u8..17).prop_map(|(size, align_log2)| Op::Alloc { size, align_log2 }),
        2 => any::<usize>().prop_map(Op::Free),
    ]
}

/// Whether the model's free gaps can hold `len` bytes at a bus address aligned to `align`.
fn model_fits(
    live: &BTreeMap<usize, usize>,
    total: usize,
    bus: u64,
    len: usize,
    align: usize,
) -> bool {
    let mut cursor = 0usize;
    let gaps = live
        .iter()
        .map(|(&o, &l)| {
            let g = (cursor, o);
            cursor = o + l;
            g
        })
        .collect::<Vec<_>>()
        .into_iter()
        .chain(std::iter::once((cursor, total)));
    for (s, e) in gaps {
        let a = bus + s as u64;
        let pad = (a.wrapping_neg() & (align as u64 - 1)) as usize;
        if s + pad + len <= e {
            return true;
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn model(ops in proptest::collection::vec(op(), 1..200), gran_log2 in 6u32..14, bus_pages in 0u64..64, arenas in 0usize..6) {
        let gran = 1usize << gran_log2;
        let total = 256 * 1024;
        let bus = 0x4000_0000 + bus_pages * gran as u64;
        let config = P2pConfig::new(bus).granularity(gran).arenas(arenas);
        // SAFETY: a mock at a made-up bus address: no device is given its addresses.
        let p = unsafe { P2pPool::with_config(MockIo::new(total), config) }.unwrap();
        prop_assert!(p.arenas() >= 1 && p.arenas() <= arenas.max(1).min(total / gran));
        let mut bufs: Vec<P2pBuf<MockIo>> = Vec::new();
        let mut model: BTreeMap<usize, usize> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Alloc { size, align_log2 } => {
                    let align = 1usize << align_log2;
                    let len = size.div_ceil(gran) * gran;
                    let fits = model_fits(&model, total, bus, len, align);
                    match p.alloc(size, align) {
                        Ok(b) => {
                            prop_assert!(fits, "allocated where the model has no room");
                            prop_assert_eq!(b.len(), len);
                            prop_assert_eq!(b.bus_addr() % align as u64, 0);
                            prop_assert_eq!(b.bus_addr(), bus + b.offset() as u64);
                            prop_assert!(b.offset() + b.len() <= total);
                            // no overlap with any live allocation
                            if let Some((&o, &l)) = model.range(..=b.offset()).next_back() {
                                prop_assert!(o + l <= b.offset());
                            }
                            if let Some((&o, _)) = model.range(b.offset()..).next() {
                                prop_assert!(b.offset() + b.len() <= o);
                            }
                            model.insert(b.offset(), b.len());
                            bufs.push(b);
                        }
                        Err(Error::Exhausted { free, largest, .. }) => {
                            prop_assert!(!fits, "refused {} aligned {} though the model has room", len, align);
                            prop_assert_eq!(free, total - model.values().sum::<usize>());
                            prop_assert!(largest <= free);
                        }
                        Err(e) => prop_assert!(false, "unexpected error {e:?}"),
                    }
                }
                Op::Free(k) => {
                    if !bufs.is_empty() {
                        let b = bufs.swap_remove(k % bufs.len());
                        model.remove(&b.offset());
                    }
                }
            }
            let s = p.stats();
            let used: usize = model.values().sum();
            prop_assert_eq!(s.free, total - used);
            prop_assert_eq!(s.allocations, model.len());
            prop_assert!(s.largest_free <= s.free);
            // largest free block = the model's largest gap; free blocks = its gaps, whatever the
            // arenas
            let mut cursor = 0;
            let mut largest = 0;
            let mut gaps = 0;
            for (&o, &l) in &model {
                largest = largest.max(o - cursor);
                gaps += (o > cursor) as usize;
                cursor = o + l;
            }
            largest = largest.max(total - cursor);
            gaps += (total > cursor) as usize;
            prop_assert_eq!(s.largest_free, largest);
            prop_assert_eq!(s.free_blocks, gaps);
        }
        drop(bufs);
        let s = p.stats();
        prop_assert_eq!((s.free, s.largest_free, s.allocations, s.free_blocks), (total, total, 0, 1));
        let _ = p.backend().size();
    }
}

fn arena_pool(granules: usize, arenas: usize) -> P2pPool<MockIo> {
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    unsafe {
        P2pPool::with_config(
            MockIo::new(granules * G),
            P2pConfig::new(0x8000_0000).arenas(arenas),
        )
    }
    .unwrap()
}

#[test]
fn arenas_serve_runs_across_their_boundaries() {
    let p = arena_pool(64, 4);
    assert_eq!(p.arenas(), 4);
    // the whole region, across all four arenas
    let whole = p.alloc(64 * G, G).unwrap();
    assert_eq!((whole.offset(), whole.len()), (0, 64 * G));
    let s = p.stats();
    assert_eq!(
        (s.free, s.largest_free, s.allocations, s.free_blocks),
        (0, 0, 1, 0)
    );
    drop(whole);
    let s = p.stats();
    assert_eq!(
        (s.free, s.largest_free, s.allocations, s.free_blocks),
        (64 * G, 64 * G, 0, 1)
    );
    // one buffer per arena (a thread fills its home first, then spills)
    let mut quarters: Vec<_> = (0..4).map(|_| p.alloc(16 * G, G).unwrap()).collect();
    quarters.sort_by_key(|b| b.offset());
    let offs: Vec<_> = quarters.iter().map(|b| b.offset()).collect();
    assert_eq!(offs, [0, 16 * G, 32 * G, 48 * G]);
    assert!(matches!(
        p.alloc(G, 1),
        Err(Error::Exhausted { free: 0, .. })
    ));
    // free the middle two: 32 granules in one run across a boundary
    let b2 = quarters.remove(2);
    let b1 = quarters.remove(1);
    drop((b1, b2));
    let s = p.stats();
    assert_eq!((s.free, s.largest_free, s.free_blocks), (32 * G, 32 * G, 1));
    assert!(
        p.alloc(32 * G, 32 * G).is_err(),
        "16 granules into the region: not 32-aligned"
    );
    let mid = p.alloc(32 * G, 16 * G).unwrap();
    assert_eq!(mid.offset(), 16 * G);
    assert_eq!(p.stats().allocations, 3);
    // quarantined across boundaries: stays allocated, counted once
    let lent = mid.lend();
    drop(lent);
    let s = p.stats();
    assert_eq!((s.quarantined, s.allocations, s.free), (32 * G, 2, 0));
    drop(quarters);
    let s = p.stats();
    assert_eq!(
        (s.free, s.largest_free, s.allocations, s.free_blocks),
        (32 * G, 16 * G, 0, 2)
    );
}

#[test]
fn a_lent_run_across_arenas_comes_back_whole() {
    let p = arena_pool(48, 3);
    let a = p.alloc(40 * G, G).unwrap().lend();
    assert_eq!(p.stats().allocations, 1);
    // SAFETY: no device was given the address.
    let a = unsafe { a.complete() };
    assert_eq!(a.len(), 40 * G);
    drop(a);
    let s = p.stats();
    assert_eq!(
        (s.free, s.largest_free, s.allocations, s.free_blocks),
        (48 * G, 48 * G, 0, 1)
    );
}

/// Live ranges of all threads: an overlap (a block handed out twice) fails at once.
type Ranges = std::sync::Mutex<BTreeMap<usize, usize>>;

fn claim(m: &Ranges, b: &P2pBuf<MockIo>) {
    let mut m = m.lock().unwrap();
    let (a, l) = (b.offset(), b.len());
    if let Some((&o, &ol)) = m.range(..=a).next_back() {
        assert!(o + ol <= a, "overlap {o:#x}+{ol:#x} / {a:#x}");
    }
    if let Some((&o, _)) = m.range(a..).next() {
        assert!(a + l <= o, "overlap {a:#x}+{l:#x} / {o:#x}");
    }
    m.insert(a, l);
}

/// 2-4 threads churn over 1, 2 or 4 arenas, each its own buffers, each buffer tagged in device
/// memory with its owner: no block is handed out twice (overlap, tag overwritten) or lost (stats
/// after the threads join), and at each barrier, with every thread holding its buffers, each size
/// is refused exactly when no gap of the live ranges holds it.
#[test]
fn threads_in_arenas_lose_and_duplicate_nothing() {
    use std::sync::Barrier;
    const GRANULES: usize = 256;
    for threads in 2..=4u64 {
        for arenas in [1, 2, 4] {
            let p = arena_pool(GRANULES, arenas);
            let ranges = Arc::new(Ranges::default());
            let barrier = Arc::new(Barrier::new(threads as usize + 1));
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (p, ranges, barrier) = (p.clone(), ranges.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let mut live: Vec<(P2pBuf<MockIo>, u64)> = Vec::new();
                        let mut x = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(t + 1) | 1;
                        let mut allocs = 0u64;
                        for round in 0..4 {
                            for _ in 0..1500 {
                                x ^= x << 13;
                                x ^= x >> 7;
                                x ^= x << 17;
                                if x % 2 == 0 && !live.is_empty() {
                                    let (b, tag) = live.swap_remove((x >> 8) as usize % live.len());
                                    assert_eq!(b.io().try_read::<u64>(0).unwrap(), tag);
                                    ranges.lock().unwrap().remove(&b.offset());
                                    drop(b);
                                } else if let Ok(b) = p.alloc(((x >> 20) as usize % 24 + 1) * G, G)
                                {
                                    claim(&ranges, &b);
                                    let tag = t << 56 | allocs;
                                    b.io().try_write(0, &tag).unwrap();
                                    live.push((b, tag));
                                    allocs += 1;
                                }
                            }
                            for (b, tag) in &live {
                                assert_eq!(
                                    b.io().try_read::<u64>(0).unwrap(),
                                    *tag,
                                    "round {round}"
                                );
                            }
                            barrier.wait(); // main checks the pool
                            barrier.wait();
                        }
                        for (b, _) in &live {
                            ranges.lock().unwrap().remove(&b.offset());
                        }
                        allocs
                    })
                })
                .collect();
            for _ in 0..4 {
                barrier.wait();
                let live = ranges.lock().unwrap().clone();
                let used: usize = live.values().sum();
                let s = p.stats();
                assert_eq!((s.free, s.allocations), (GRANULES * G - used, live.len()));
                for n in 1..=GRANULES {
                    let fits = model_fits(&live, GRANULES * G, 0x8000_0000, n * G, G);
                    match p.alloc(n * G, G) {
                        Ok(_b) => assert!(fits, "{n} granules allocated with no room"),
                        Err(e) => {
                            assert!(
                                !fits,
                                "{n} granules refused: {e:?} ({threads} threads, {arenas} arenas)"
                            );
                            break;
                        }
                    }
                }
                assert_eq!(p.stats().free, GRANULES * G - used, "a block was lost");
                barrier.wait();
            }
            let allocs: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert!(allocs > 1000, "{allocs}");
            let s = p.stats();
            assert_eq!(
                (
                    s.free,
                    s.largest_free,
                    s.allocations,
                    s.free_blocks,
                    s.quarantined
                ),
                (GRANULES * G, GRANULES * G, 0, 1, 0),
                "{threads} threads, {arenas} arenas"
            );
        }
    }
}
