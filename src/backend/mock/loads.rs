//! Host RAM in the weak-ordering model of loads: which values the CPU's reads of RAM may return
//! while the device writes it (a completion-queue entry: payload first, then the phase tag).

use std::vec::Vec;

use super::weak::{merged, SplitMix};
use super::{next_seq, Access, Dir, Event, MockIo};
use crate::backend::Caching;
use crate::order::{orders_ram_loads, Arch};

/// A write the device made into the mock's RAM ([`MockIo::device_write`]), with the bytes it
/// replaced: the model of completion reads ([`ram_loads`]) undoes it for a read it lets be
/// satisfied earlier.
pub(super) struct DeviceWrite {
    seq: u64,
    offset: usize,
    old: Vec<u8>,
}

impl MockIo {
    /// The device writes `bytes` at `offset`: a DMA write into host RAM (a completion-queue
    /// entry, read data). RAM changes as with [`poke`](Self::poke) — no hooks, no checks, not an
    /// [`Event`] — and, while tracing, the write is logged at its place in the program order
    /// shared with the CPU's accesses, so that [`ram_loads`] can let a CPU read of these bytes be
    /// satisfied before it. A device that writes a completion's payload and then its phase tag
    /// makes two calls, in that order. The log is emptied with the trace.
    ///
    /// # Panics
    /// If `offset..offset + bytes.len()` is not inside the mock, as for [`peek`](Self::peek).
    pub fn device_write(&self, offset: usize, bytes: &[u8]) {
        let r = self.helper_range("device_write", offset, bytes.len());
        let size = self.size;
        let mut st = self.lock();
        let old = st.ram(size)[r.clone()].to_vec();
        st.ram(size)[r].copy_from_slice(bytes);
        if st.tracing {
            let seq = next_seq();
            st.device_writes.push(DeviceWrite { seq, offset, old });
        }
    }
}

/// One CPU read of host RAM and a value it may return under the weak-ordering model
/// ([`ram_loads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Index of the mock (in the slice given to [`ram_loads`]) the read went to.
    pub mock: usize,
    /// The read, with `value`/`value_hi` replaced by what it returns under the chosen seed.
    pub access: Access,
    /// Whether the read was satisfied before a device write to its bytes that it sees in program
    /// order (its value is then older than the trace's, or equal by chance).
    pub stale: bool,
}

/// Every recorded read of the host-RAM ([`Caching::Cacheable`]) mocks among `mocks`, in program
/// order, with a value it may return under the weak-ordering model; `seed` picks which. Every
/// outcome the model allows has a seed that produces it; the same seed always gives the same.
///
/// The device's side is [`MockIo::device_write`]: each write is placed in the program order
/// shared with the CPU's accesses (where the test made it). A CPU read is *satisfied* at some
/// point no later than its place in program order, and returns RAM as it was then, so it may
/// miss device writes made before it in program order. It may be satisfied that early unless an
/// earlier read is ordered before it, in which case it is satisfied no earlier than that read:
/// - a barrier between them has an instruction that orders RAM loads before RAM loads
///   ([`orders_ram_loads`]: `dma_rmb()` — powerpc `lwsync`, aarch64 `dmb oshld`, riscv `fence
///   ir,ir` — and `rmb()`, `mb()`);
/// - on x86_64, always: loads are not reordered with other loads (TSO);
/// - the two reads overlap in one mock (coherence: a later read of a location never sees an
///   older value than an earlier one).
///
/// A read is also never satisfied before the CPU's own last write to its bytes. Barriers of every
/// mock in `mocks` count (the CPU executes them wherever a driver issued them); reads of device
/// mocks are not modelled (they are not returned, and do not order RAM reads: an MMIO status read
/// followed by a read of DMA'd data is not checked), nor are read hooks (a read a hook covers is
/// returned as recorded), nor the CPU's stores being seen late by the device (that is
/// [`device_order`](super::device_order)).
///
/// ```
/// use iomem::backend::mock::ram_loads;
/// use iomem::backend::MockIo;
/// use iomem::order::{Arch, Barrier};
/// use iomem::{Caching, IoMem, Strategy};
///
/// let cq = MockIo::new(64).with_arch(Arch::Aarch64).with_caching(Caching::Cacheable);
/// cq.device_write(0, &[0xaa; 12]);                  // the completion's payload
/// cq.device_write(12, &0x0001_0000u32.to_le_bytes()); // then its phase tag
/// let io = IoMem::new(&cq).with_strategy(Strategy::Relaxed);
/// let phase = io.try_read32(12)?;
/// io.barrier(Barrier::DmaRmb);                        // dmb oshld
/// let payload = io.try_read32(0)?;
/// assert_eq!((phase >> 16, payload), (1, 0xaaaa_aaaa));
/// for seed in 0..256 {
///     let loads = ram_loads(&[&cq], seed);
///     let new_phase = loads[0].access.value >> 16 == 1;
///     assert!(!new_phase || !loads[1].stale); // never the new phase with a stale payload
/// }
/// # Ok::<(), iomem::Error>(())
/// ```
pub fn ram_loads(mocks: &[&MockIo], seed: u64) -> Vec<Load> {
    /// A device write: its place, its mock, its offset and the bytes it replaced.
    struct Dev {
        seq: u64,
        mock: usize,
        offset: usize,
        old: Vec<u8>,
    }
    /// A CPU read already placed: its mock, its access, and when it was satisfied.
    struct Placed {
        mock: usize,
        access: Access,
        at: u64,
    }

    let mut events = merged(mocks);
    let mut devs: Vec<Dev> = Vec::new();
    let mut hooked: Vec<(usize, core::ops::Range<usize>)> = Vec::new();
    for (i, m) in mocks.iter().enumerate() {
        if m.caching != Caching::Cacheable {
            continue;
        }
        let st = m.lock();
        devs.extend(st.device_writes.iter().map(|w| Dev {
            seq: w.seq,
            mock: i,
            offset: w.offset,
            old: w.old.clone(),
        }));
        hooked.extend(st.read_hooks.iter().map(|(r, _)| (i, r.clone())));
    }
    devs.sort_by_key(|d| d.seq);
    events.retain(|&(_, i, e)| match e {
        Event::Barrier { .. } => true,
        Event::Access(_) => mocks[i].caching == Caching::Cacheable,
    });

    let mut rng = SplitMix(seed);
    let mut placed: Vec<Placed> = Vec::new();
    // `prefix_max[k]`: the latest satisfaction point among the first `k + 1` reads.
    let mut prefix_max: Vec<u64> = Vec::new();
    // Reads before the last load-ordering barrier: `placed[..ordered]`.
    let mut ordered = 0;
    let mut writes: Vec<(u64, usize, Access)> = Vec::new();
    let mut out = Vec::new();
    for (seq, i, e) in events {
        let arch = mocks[i].arch;
        let a = match e {
            Event::Barrier { insns, .. } => {
                if insns.iter().any(|x| orders_ram_loads(arch, x)) {
                    ordered = placed.len();
                }
                continue;
            }
            Event::Access(a) if a.dir == Dir::Write => {
                writes.push((seq, i, a));
                continue;
            }
            Event::Access(a) => a,
        };
        if hooked
            .iter()
            .any(|(m, r)| *m == i && r.start < a.offset + a.width && a.offset < r.end)
        {
            out.push(Load {
                mock: i,
                access: a,
                stale: false,
            });
            continue;
        }
        // The earliest point the read may be satisfied at.
        let upto = if arch == Arch::X86_64 {
            placed.len()
        } else {
            ordered
        };
        let mut lb = if upto > 0 { prefix_max[upto - 1] } else { 0 };
        for p in &placed {
            if p.mock == i && overlap(&p.access, &a) {
                lb = lb.max(p.at);
            }
        }
        if let Some(&(s, _, _)) = writes
            .iter()
            .rev()
            .find(|(_, m, w)| *m == i && overlap(w, &a))
        {
            lb = lb.max(s);
        }
        // Candidates: `lb`, just before each device write after it, and the read's own place.
        // Only which device writes precede the point matters, so these cover every outcome.
        let first_dev = devs.partition_point(|d| d.seq < lb);
        let last_dev = devs.partition_point(|d| d.seq < seq);
        let choices = 2 + last_dev.saturating_sub(first_dev);
        let k = rng.below(choices);
        let at = match k {
            0 => lb,
            k if k == choices - 1 => seq,
            k => devs[first_dev + k - 1].seq,
        };
        // RAM as it was at `at`: undo, latest first, the device writes since then that overlap.
        let mut bytes = a.bytes();
        let mut stale = false;
        for d in devs[..last_dev].iter().rev().take_while(|d| d.seq >= at) {
            if d.mock != i {
                continue;
            }
            let lo = a.offset.max(d.offset);
            let hi = (a.offset + a.width).min(d.offset + d.old.len());
            if lo < hi {
                bytes[lo - a.offset..hi - a.offset]
                    .copy_from_slice(&d.old[lo - d.offset..hi - d.offset]);
                stale = true;
            }
        }
        let mut access = a;
        (access.value, access.value_hi) = split(&bytes);
        out.push(Load {
            mock: i,
            access,
            stale,
        });
        let m = prefix_max.last().copied().unwrap_or(0).max(at);
        prefix_max.push(m);
        placed.push(Placed {
            mock: i,
            access: a,
            at,
        });
    }
    out
}

fn overlap(x: &Access, y: &Access) -> bool {
    x.offset < y.offset + y.width && y.offset < x.offset + x.width
}

/// Little-endian bytes (at most 64) as an access's `(value, value_hi)`.
fn split(bytes: &[u8]) -> (u128, [u128; 3]) {
    let mut b = [0u8; 64];
    b[..bytes.len()].copy_from_slice(bytes);
    let lane = |k: usize| {
        let mut l = [0u8; 16];
        l.copy_from_slice(&b[16 * k..16 * k + 16]);
        u128::from_le_bytes(l)
    };
    (lane(0), [lane(1), lane(2), lane(3)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Barrier;
    use crate::Backend;

    fn cq(arch: Arch) -> MockIo {
        MockIo::new(64)
            .with_arch(arch)
            .with_caching(Caching::Cacheable)
    }

    fn read(m: &MockIo, off: usize) -> u32 {
        // SAFETY: in range and aligned for the 64-byte mocks of these tests.
        unsafe { m.read::<u32>(off) }
    }

    /// With no device write in the trace, every read returns what it returned.
    #[test]
    fn without_device_writes_reads_are_as_recorded() {
        for arch in Arch::ALL {
            let m = cq(arch);
            m.poke(0, &[5; 64]);
            read(&m, 0);
            read(&m, 8);
            for seed in 0..32 {
                let l = ram_loads(&[&m], seed);
                assert_eq!(l.len(), 2);
                assert!(l.iter().all(|l| !l.stale && l.access.value == 0x0505_0505));
            }
        }
    }

    /// A stale read returns the bytes from before the device's write, and the CPU's own write
    /// is never undone.
    #[test]
    fn stale_values_are_the_old_bytes_and_own_writes_stay() {
        let m = cq(Arch::PowerPc64);
        m.poke(0, &1u32.to_le_bytes());
        m.device_write(0, &2u32.to_le_bytes());
        assert_eq!(read(&m, 0), 2);
        let seen: Vec<u128> = (0..64)
            .map(|s| ram_loads(&[&m], s)[0].access.value)
            .collect();
        assert!(seen.contains(&1) && seen.contains(&2), "{seen:?}");
        m.clear_events();
        m.device_write(0, &3u32.to_le_bytes());
        // SAFETY: in range and aligned.
        unsafe { m.write::<u32>(0, 4) };
        assert_eq!(read(&m, 0), 4);
        assert!((0..64).all(|s| ram_loads(&[&m], s)[0].access.value == 4));
    }

    /// Phase then payload: a barrier that orders RAM loads, or x86, rules out the stale payload;
    /// with none, a weakly ordered arch finds it.
    #[test]
    fn phase_then_payload() {
        for arch in Arch::ALL {
            for barrier in [None, Some(Barrier::DmaRmb), Some(Barrier::Rmb)] {
                let m = cq(arch);
                m.device_write(0, &[0xaa; 12]);
                m.device_write(12, &[0, 0, 1, 0]);
                read(&m, 12);
                if let Some(b) = barrier {
                    m.barrier(b);
                }
                read(&m, 0);
                let caught = (0..256).any(|s| {
                    let l = ram_loads(&[&m], s);
                    l[0].access.value >> 16 == 1 && l[1].stale
                });
                let want = barrier.is_none() && arch != Arch::X86_64;
                assert_eq!(caught, want, "{arch:?} {barrier:?}");
            }
        }
    }
}
