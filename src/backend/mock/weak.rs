//! The weak-ordering model: the orders in which a device may see the writes a mock recorded.

use std::vec::Vec;

use super::{Access, Dir, Event, MockIo};
use crate::backend::Caching;
#[cfg(doc)]
use crate::order::instructions;

/// Weak-ordering mode: the order in which the *device* sees the recorded writes.
///
/// (For the other direction — the CPU reading host RAM the device writes — see
/// [`ram_loads`](super::ram_loads).)
///
/// The trace is program order. A device may see stores in another order, and which reorderings
/// are possible depends on the mapping and on the barriers the CPU executed. The model:
///
/// - Writes are cut into *windows* by barriers: a barrier closes the current window if one of its
///   instructions (from [`instructions`] for the simulated arch) orders stores to device memory
///   ([`orders_device_stores`](crate::order::orders_device_stores): powerpc `sync`/`eieio`;
///   aarch64 `dsb`/`dmb` of a store or full kind; riscv a `fence` with `o` on both sides; x86
///   `sfence`/`mfence`). Writes of an earlier window reach the device before any write of a
///   later one.
/// - Inside a window, writes to **write-combining** mocks, and 64-byte direct stores
///   ([`Access::direct`]) to any mock, may reach the device in any order, relative to each
///   other and to uncached writes.
/// - Writes to **uncached** mocks keep program order among themselves on every simulated arch:
///   x86 UC, aarch64 Device-nGnRE ("non-reordering"), powerpc caching-inhibited guarded storage
///   and riscv I/O regions (strongly ordered per the platform spec) all deliver a CPU's stores
///   to one device in program order. This is why `writel_relaxed` needs no barrier between
///   writes to one device, and why the barrier in `writel` exists for data in *RAM* (below).
///
/// All device mocks given to [`device_order`] are taken to be one device (BARs of one function).
/// Reads are not reordered (they do not appear in the result).
///
/// **Host RAM.** A [`Caching::Cacheable`] mock given to [`device_order`] (such as
/// [`MockDma::ram`](crate::dma::MockDma::ram)) is host RAM, and its writes are delivered too:
/// the place of a RAM write in the order is the moment it becomes visible to the device's DMA
/// reads, so [`replay_ram`](super::replay_ram) gives the RAM a device would read when a doorbell
/// arrives. A RAM store is ordered before a later store only by a barrier between them that
/// orders the pair ([`orders_ram_before_device`](crate::order::orders_ram_before_device) before
/// a device store, [`orders_accesses`](crate::order::orders_accesses) for the other pairs), or by
/// the architecture itself: on x86_64 (TSO) stores to RAM and to uncached memory are seen in
/// program order, while write-combining stores stay weakly ordered against RAM as against
/// everything. Stores to one RAM location keep their order (coherence). Device stores keep
/// exactly the rules above; `window` counts the device-store windows for RAM writes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Index of the mock (in the slice given to [`device_order`]) the write went to.
    pub mock: usize,
    /// Which window the write belongs to (0 before the first store-ordering barrier).
    pub window: usize,
    /// The write.
    pub access: Access,
}

/// A small deterministic generator (SplitMix64) for the model's choices.
pub(super) struct SplitMix(pub(super) u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every trace entry of `mocks` in the shared program order: `(seq, mock index, event)`.
pub(super) fn merged(mocks: &[&MockIo]) -> Vec<(u64, usize, Event)> {
    let mut merged: Vec<(u64, usize, Event)> = Vec::new();
    for (i, m) in mocks.iter().enumerate() {
        let st = m.lock();
        merged.extend(
            st.seqs
                .iter()
                .zip(st.trace.iter())
                .map(|(&seq, &e)| (seq, i, e)),
        );
    }
    merged.sort_by_key(|&(seq, _, _)| seq);
    merged
}

/// Every recorded write of `mocks`, in program order, with its window (see [`Delivery`]).
pub fn windows(mocks: &[&MockIo]) -> Vec<Delivery> {
    let mut window = 0;
    let mut out = Vec::new();
    for (_, i, e) in merged(mocks) {
        match e {
            Event::Barrier { insns, .. } => {
                let arch = mocks[i].arch;
                if insns
                    .iter()
                    .any(|insn| crate::order::orders_device_stores(arch, insn))
                {
                    window += 1;
                }
            }
            Event::Access(access) if access.dir == Dir::Write => out.push(Delivery {
                mock: i,
                window,
                access,
            }),
            Event::Access(_) => {}
        }
    }
    out
}

/// The recorded writes of `mocks` in one order the device may see them under the weak-ordering
/// model (see [`Delivery`]); `seed` picks which. Every order the model allows has a seed that
/// produces it; the same seed always gives the same order. With a
/// [`Caching::Cacheable`] mock among `mocks`, its writes are host RAM's (see [`Delivery`]).
pub fn device_order(mocks: &[&MockIo], seed: u64) -> Vec<Delivery> {
    if mocks.iter().any(|m| m.caching == Caching::Cacheable) {
        return super::ram_order::device_order_with_ram(mocks, seed);
    }
    let all = windows(mocks);
    let mut rng = SplitMix(seed);
    let mut out = Vec::with_capacity(all.len());
    let mut start = 0;
    while start < all.len() {
        let w = all[start].window;
        let end = start + all[start..].iter().take_while(|d| d.window == w).count();
        let mut wc: Vec<Delivery> = Vec::new();
        let mut uc: std::collections::VecDeque<Delivery> = Default::default();
        for d in &all[start..end] {
            if mocks[d.mock].caching == Caching::WriteCombining || d.access.direct {
                wc.push(*d);
            } else {
                uc.push_back(*d);
            }
        }
        while !wc.is_empty() || !uc.is_empty() {
            let k = rng.below(wc.len() + usize::from(!uc.is_empty()));
            if k < wc.len() {
                out.push(wc.swap_remove(k));
            } else if let Some(d) = uc.pop_front() {
                out.push(d);
            }
        }
        start = end;
    }
    out
}

/// Replays `order` (writes of one mock) into a zeroed image of `size` bytes; before applying each
/// write, calls `at(image, write)` with what the device holds when that write arrives.
pub fn replay<'a>(
    size: usize,
    order: impl IntoIterator<Item = &'a Access>,
    mut at: impl FnMut(&[u8], &Access),
) {
    let mut image = std::vec![0u8; size];
    for a in order {
        at(&image, a);
        image[a.range()].copy_from_slice(&a.bytes());
    }
}
