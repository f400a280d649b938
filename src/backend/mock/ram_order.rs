//! Host RAM in the weak-ordering model of stores: when a CPU store to RAM becomes visible to the
//! device, relative to the CPU's stores to device memory (a command in RAM and its doorbell).
//!
//! [`device_order`](super::device_order) comes here when one of its mocks is
//! [`Caching::Cacheable`]. The rules are in [`Delivery`]; this file turns them into a partial
//! order on the recorded stores and draws one of its linear extensions from a seed.
//!
//! What is modelled: every pair of stores (earlier, later) in program order is either *ordered*
//! (the device sees the earlier one first) or free. A pair is ordered when
//! - the architecture orders it with no barrier: uncached stores to the device among themselves
//!   on every arch, and on x86_64 (TSO) any two stores of which neither is write-combining;
//! - a barrier between them has an instruction that orders the pair: for two device stores
//!   [`orders_device_stores`] (exactly the windows of the device-only model), otherwise
//!   [`orders_accesses`] for the pair's kinds (a RAM store before a device store is
//!   [`orders_ram_before_device`](crate::order::orders_ram_before_device));
//! - both are RAM stores to overlapping bytes of one mock (coherence).
//!
//! What is not: loads (see [`ram_loads`](super::ram_loads)), a device reading RAM before the
//! doorbell arrives, caches that are not coherent with the device (the model takes RAM to be
//! coherent DMA memory, `dma_alloc_coherent`), and ordering between two CPUs.
//!
//! Drawing an order is quadratic in the number of stores: meant for the few hundred or thousand
//! stores of a submission test, not for a trace of megabytes of copies.

use std::collections::HashMap;
use std::vec::Vec;

use super::weak::{merged, SplitMix};
use super::{Delivery, Dir, Event, MockIo};
use crate::backend::Caching;
use crate::order::{orders_accesses, orders_device_stores, AccessKind, Arch};

/// Where a store goes, for the ordering rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Ram = 0,
    Uncached = 1,
    WriteCombining = 2,
}

const CLASSES: [Class; 3] = [Class::Ram, Class::Uncached, Class::WriteCombining];

impl Class {
    fn of(caching: Caching) -> Class {
        match caching {
            Caching::Cacheable => Class::Ram,
            Caching::Uncached => Class::Uncached,
            Caching::WriteCombining => Class::WriteCombining,
        }
    }
    fn kind(self) -> AccessKind {
        match self {
            Class::Ram => AccessKind::RamStore,
            Class::Uncached | Class::WriteCombining => AccessKind::DeviceStore,
        }
    }
}

/// Whether `arch` keeps a store to `earlier` before a later store to `later` with no barrier.
fn in_order_without_barrier(arch: Arch, earlier: Class, later: Class) -> bool {
    match (earlier, later) {
        // One device, uncached: program order on every simulated arch (see `Delivery`).
        (Class::Uncached, Class::Uncached) => true,
        // Write-combining stores are weakly ordered against everything.
        (Class::WriteCombining, _) | (_, Class::WriteCombining) => false,
        // x86 TSO: write-back and uncached stores are seen in program order (a UC store does
        // not pass an earlier WB store, nor a WB store an earlier UC one). Elsewhere, RAM stores
        // are free against each other and against device stores.
        _ => arch == Arch::X86_64,
    }
}

/// Whether `insn` orders a store to `earlier` before a later store to `later`.
fn barrier_orders(arch: Arch, insn: &str, earlier: Class, later: Class) -> bool {
    if earlier != Class::Ram && later != Class::Ram {
        orders_device_stores(arch, insn)
    } else {
        orders_accesses(arch, insn, earlier.kind(), later.kind())
    }
}

/// One recorded store and what must be delivered before it.
struct Store {
    delivery: Delivery,
    class: Class,
    /// Per earlier class: every store of that class with a smaller index must come first.
    cut: [usize; 3],
    /// Earlier RAM stores to the same bytes of the same mock (coherence).
    after: Vec<usize>,
}

/// The stores of `mocks`, device and RAM, in an order the model allows (see [`Delivery`]).
pub(super) fn device_order_with_ram(mocks: &[&MockIo], seed: u64) -> Vec<Delivery> {
    let mut stores: Vec<Store> = Vec::new();
    // `last[e][l]`: stores with an index below it are ordered before later `l` stores, for
    // earlier class `e` (the number of stores before the last barrier that orders the pair).
    let mut last = [[0usize; 3]; 3];
    let mut window = 0;
    let mut last_writer: HashMap<(usize, usize), usize> = HashMap::new();
    for (_, i, e) in merged(mocks) {
        let arch = mocks[i].arch;
        match e {
            Event::Barrier { insns, .. } => {
                if insns.iter().any(|x| orders_device_stores(arch, x)) {
                    window += 1;
                }
                for e in CLASSES {
                    for l in CLASSES {
                        if insns.iter().any(|x| barrier_orders(arch, x, e, l)) {
                            last[e as usize][l as usize] = stores.len();
                        }
                    }
                }
            }
            Event::Access(access) if access.dir == Dir::Write => {
                let j = stores.len();
                // A direct store is weakly ordered like a write-combining one, on any mapping.
                let class = if access.direct {
                    Class::WriteCombining
                } else {
                    Class::of(mocks[i].caching)
                };
                let cut = CLASSES.map(|e| {
                    if in_order_without_barrier(arch, e, class) {
                        j
                    } else {
                        last[e as usize][class as usize]
                    }
                });
                let mut after = Vec::new();
                if class == Class::Ram {
                    for b in access.range() {
                        if let Some(p) = last_writer.insert((i, b), j) {
                            if !after.contains(&p) {
                                after.push(p);
                            }
                        }
                    }
                }
                stores.push(Store {
                    delivery: Delivery {
                        mock: i,
                        window,
                        access,
                    },
                    class,
                    cut,
                    after,
                });
            }
            Event::Access(_) => {}
        }
    }

    // Draw a linear extension: at each step, any store whose predecessors are all delivered.
    // The earliest undelivered store is always ready (everything it waits for is earlier), so
    // every step finds one.
    let n = stores.len();
    let mut delivered = std::vec![false; n];
    let by_class: [Vec<usize>; 3] =
        CLASSES.map(|c| (0..n).filter(|&j| stores[j].class == c).collect());
    let mut next = [0usize; 3]; // per class, position in `by_class` of the first undelivered
    let first_undelivered = |next: &[usize; 3], c: usize| -> usize {
        by_class[c].get(next[c]).copied().unwrap_or(usize::MAX)
    };
    let mut rng = SplitMix(seed);
    let mut out = Vec::with_capacity(n);
    let mut ready = Vec::new();
    for _ in 0..n {
        ready.clear();
        ready.extend((0..n).filter(|&j| {
            let s = &stores[j];
            !delivered[j]
                && (0..3).all(|c| first_undelivered(&next, c) >= s.cut[c])
                && s.after.iter().all(|&p| delivered[p])
        }));
        let j = ready[rng.below(ready.len())];
        delivered[j] = true;
        out.push(stores[j].delivery);
        let c = stores[j].class as usize;
        while next[c] < by_class[c].len() && delivered[by_class[c][next[c]]] {
            next[c] += 1;
        }
    }
    out
}

/// Replays `order` (from [`device_order`](super::device_order)) against an image of the host
/// RAM of mock `ram` (its index in the slice given to `device_order`): `size` zeroed bytes,
/// changed by that mock's writes as they become visible. Before each delivery — of any mock —
/// calls `at(image, delivery)` with what a DMA read of that RAM returns at that moment: at a
/// doorbell, the command the device would fetch.
///
/// Bytes no delivered write covered read as zero (a fresh [`MockDma`](crate::dma::MockDma)
/// allocation is zeroed; compare only what the trace wrote, or clear the trace before writing).
///
/// ```
/// use iomem::backend::mock::{device_order, replay_ram};
/// use iomem::backend::MockIo;
/// use iomem::order::Arch;
/// use iomem::{Caching, IoMem, Strategy};
///
/// let bar0 = MockIo::new(0x1000).with_arch(Arch::PowerPc64);
/// let ram = MockIo::new(0x1000).with_arch(Arch::PowerPc64).with_caching(Caching::Cacheable);
/// IoMem::new(&ram).with_strategy(Strategy::Relaxed).subslice(0..64)?.copy_from_slice(&[7; 64])?;
/// IoMem::new(&bar0).try_write32(0x1000 - 4, 1)?; // writel: `sync`, then the doorbell
/// for seed in 0..64 {
///     let order = device_order(&[&bar0, &ram], seed);
///     replay_ram(&order, 1, 0x1000, |image, d| {
///         if d.mock == 0 {
///             assert_eq!(image[..64], [7; 64]); // the whole command is in RAM at the doorbell
///         }
///     });
/// }
/// # Ok::<(), iomem::Error>(())
/// ```
pub fn replay_ram<'a>(
    order: impl IntoIterator<Item = &'a Delivery>,
    ram: usize,
    size: usize,
    mut at: impl FnMut(&[u8], &Delivery),
) {
    let mut image = std::vec![0u8; size];
    for d in order {
        at(&image, d);
        if d.mock == ram {
            image[d.access.range()].copy_from_slice(&d.access.bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Barrier;
    use crate::Backend;
    use std::vec::Vec;

    fn ram(arch: Arch) -> MockIo {
        MockIo::new(0x100)
            .with_arch(arch)
            .with_caching(Caching::Cacheable)
    }

    fn write(m: &MockIo, off: usize, v: u32) {
        // SAFETY: in range and aligned for the 0x100-byte mocks of these tests.
        unsafe { m.write::<u32>(off, v) }
    }

    /// Device stores keep the device-only model's rules when RAM is present: uncached stores in
    /// program order, windows never go backwards.
    #[test]
    fn device_stores_keep_their_rules_among_ram_stores() {
        for arch in Arch::ALL {
            let bar = MockIo::new(0x100).with_arch(arch);
            let wc = MockIo::new(0x100)
                .with_arch(arch)
                .with_caching(Caching::WriteCombining);
            let r = ram(arch);
            for k in 0..8 {
                write(&r, 4 * k, k as u32);
                write(&wc, 4 * k, k as u32);
                write(&bar, 4 * k, k as u32);
                if k == 4 {
                    bar.barrier(Barrier::Wmb);
                }
            }
            for seed in 0..64 {
                let order = device_order_with_ram(&[&bar, &wc, &r], seed);
                assert_eq!(order.len(), 24);
                let uc: Vec<usize> = order
                    .iter()
                    .filter(|d| d.mock == 0)
                    .map(|d| d.access.offset)
                    .collect();
                assert_eq!(uc, (0..8).map(|k| 4 * k).collect::<Vec<_>>(), "{arch:?}");
                let w: Vec<usize> = order
                    .iter()
                    .filter(|d| d.mock != 2)
                    .map(|d| d.window)
                    .collect();
                assert!(w.windows(2).all(|p| p[0] <= p[1]), "{arch:?}: {w:?}");
            }
        }
    }

    /// Two stores to one RAM location are seen in program order (coherence), on every arch.
    #[test]
    fn ram_stores_to_one_place_keep_their_order() {
        for arch in Arch::ALL {
            let r = ram(arch);
            write(&r, 0, 1);
            write(&r, 4, 9);
            write(&r, 0, 2);
            for seed in 0..64 {
                let v: Vec<u128> = device_order_with_ram(&[&r], seed)
                    .iter()
                    .filter(|d| d.access.offset == 0)
                    .map(|d| d.access.value)
                    .collect();
                assert_eq!(v, [1, 2], "{arch:?}");
            }
        }
    }

    /// Without a barrier, RAM stores to different places are seen in any order on the weakly
    /// ordered archs, in program order on x86; `dma_wmb` orders them everywhere.
    #[test]
    fn ram_stores_among_themselves() {
        for arch in Arch::ALL {
            for barrier in [None, Some(Barrier::DmaWmb)] {
                let r = ram(arch);
                write(&r, 0, 1);
                if let Some(b) = barrier {
                    r.barrier(b);
                }
                write(&r, 4, 2);
                let swapped =
                    (0..64).any(|seed| device_order_with_ram(&[&r], seed)[0].access.offset == 4);
                let want = barrier.is_none() && arch != Arch::X86_64;
                assert_eq!(swapped, want, "{arch:?} {barrier:?}");
            }
        }
    }
}
