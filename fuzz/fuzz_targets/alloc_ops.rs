//! `P2pPool` against a model: random alloc/free sequences never overlap, honour alignment and
//! granularity, fail only when no free gap can hold the request, keep the statistics exact, and
//! give all memory back when every buffer is dropped.
#![no_main]

use std::collections::BTreeMap;

use iomem::backend::MockIo;
use iomem::p2p::{P2pBuf, P2pConfig, P2pPool};
use iomem::Error;
use libfuzzer_sys::fuzz_target;

fn fits(live: &BTreeMap<usize, usize>, total: usize, bus: u64, len: usize, align: usize) -> bool {
    let mut cursor = 0;
    let mut gaps: Vec<(usize, usize)> = Vec::new();
    for (&o, &l) in live {
        gaps.push((cursor, o));
        cursor = o + l;
    }
    gaps.push((cursor, total));
    gaps.into_iter().any(|(s, e)| {
        let pad = ((bus + s as u64).wrapping_neg() & (align as u64 - 1)) as usize;
        s + pad + len <= e
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let gran = 64usize << (data[0] % 8);
    let total = gran * (1 + (data[1] as usize % 200));
    let bus = 0x8000_0000 + (data[2] as u64) * gran as u64;
    // A region handle without RAM behind most of it: the allocator never touches device memory.
    let config = P2pConfig::new(bus).granularity(gran);
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    let pool = unsafe { P2pPool::with_config(MockIo::new(total), config) }.unwrap();
    let mut bufs: Vec<P2pBuf<MockIo>> = Vec::new();
    let mut model: BTreeMap<usize, usize> = BTreeMap::new();
    for op in data[3..].chunks(3) {
        if op.len() < 3 {
            break;
        }
        if op[0] & 1 == 0 {
            let size = ((op[1] as usize) << 8 | op[2] as usize) * gran / 64 + (op[0] as usize >> 1);
            let align = 1usize << (op[0] >> 3);
            match pool.alloc(size, align) {
                Ok(b) => {
                    let len = size.div_ceil(gran) * gran;
                    assert!(fits(&model, total, bus, len, align));
                    assert_eq!(b.len(), len);
                    assert_eq!(b.bus_addr() % align as u64, 0);
                    assert_eq!(b.bus_addr(), bus + b.offset() as u64);
                    if let Some((&o, &l)) = model.range(..=b.offset()).next_back() {
                        assert!(o + l <= b.offset(), "overlap");
                    }
                    if let Some((&o, _)) = model.range(b.offset()..).next() {
                        assert!(b.offset() + b.len() <= o, "overlap");
                    }
                    model.insert(b.offset(), b.len());
                    bufs.push(b);
                }
                Err(Error::InvalidArgument(_)) => assert_eq!(size, 0),
                Err(Error::Exhausted { free, largest, .. }) => {
                    let len = size.div_ceil(gran) * gran;
                    assert!(!fits(&model, total, bus, len, align), "refused a request that fits");
                    assert_eq!(free, total - model.values().sum::<usize>());
                    assert!(largest <= free);
                }
                Err(e) => panic!("unexpected error {e:?}"),
            }
        } else if !bufs.is_empty() {
            let b = bufs.swap_remove(op[1] as usize % bufs.len());
            model.remove(&b.offset());
        }
        let s = pool.stats();
        assert_eq!(s.free, total - model.values().sum::<usize>());
        assert_eq!(s.allocations, model.len());
        assert!(s.largest_free <= s.free);
    }
    drop(bufs);
    let s = pool.stats();
    assert_eq!((s.free, s.largest_free, s.allocations, s.free_blocks), (total, total, 0, 1));
});
