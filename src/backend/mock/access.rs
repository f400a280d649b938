//! What one access to the mock does: the [`Backend`] implementation of [`MockIo`] — read hooks,
//! the trace, the width and alignment checks, write hooks, and the RAM the accesses land in.

use std::ops::Range;

use super::{next_seq, zerocopy_bytes, Access, Dir, Event, MockIo, Ram, State, WriteEffect};
use crate::backend::{Backend, Caching, Word};
use crate::order::{instructions, Arch, Barrier};

impl MockIo {
    /// Records a write, runs the write hooks over it and, unless one discards it, stores its
    /// bytes.
    fn store(&self, access: Access) {
        let size = self.size;
        let mut st = self.lock();
        self.record(&mut st, access);
        let State {
            lines, write_hooks, ..
        } = &mut *st;
        let ram = &mut zerocopy_bytes(lines)[..size];
        let mut effect = WriteEffect::Store;
        for (range, hook) in write_hooks.iter_mut() {
            if overlaps(range, &access) && hook(&mut Ram(ram), &access) == WriteEffect::Discard {
                effect = WriteEffect::Discard;
            }
        }
        if effect == WriteEffect::Store {
            ram[access.range()].copy_from_slice(&access.bytes());
        }
    }
}

fn overlaps(r: &Range<usize>, a: &Access) -> bool {
    r.start < a.offset + a.width && a.offset < r.end
}

// SAFETY: the mock's region is its own RAM of `size` bytes (rounded up to whole 64-byte lines,
// so 64-aligned); accesses copy `W::WIDTH` bytes under the lock and never hand out references to
// the caller. An access past the end panics in the slice index rather than touching memory.
unsafe impl Backend for MockIo {
    fn size(&self) -> usize {
        self.size
    }
    fn base_align(&self) -> usize {
        64
    }
    fn caching(&self) -> Caching {
        self.caching
    }
    fn arch(&self) -> Arch {
        self.arch
    }

    unsafe fn read<W: Word>(&self, off: usize) -> W {
        let size = self.size;
        let mut st = self.lock();
        let mut access = Access {
            dir: Dir::Read,
            offset: off,
            width: W::WIDTH,
            value: 0,
            value_hi: [0; 3],
            direct: false,
        };
        let State {
            lines, read_hooks, ..
        } = &mut *st;
        let ram = &mut zerocopy_bytes(lines)[..size];
        // The bytes are taken from RAM first, then the hooks run: one may replace the value
        // (an access wider than 16 bytes is held as 16-byte lanes; hooks see and replace the
        // low one) or change RAM (clear-on-read), which this read does not see.
        access.value = Ram(ram).get(off, W::WIDTH.min(16));
        for (k, lane) in access.value_hi.iter_mut().enumerate() {
            let at = 16 * (k + 1);
            if at < W::WIDTH {
                *lane = Ram(ram).get(off + at, 16);
            }
        }
        let mut replaced = None;
        for (range, hook) in read_hooks.iter_mut() {
            if overlaps(range, &access) {
                if let Some(v) = hook(&mut Ram(ram), &access) {
                    replaced = Some(v);
                }
            }
        }
        if let Some(v) = replaced {
            // What the read returns: the low lane's width of the replacement (the trace
            // records the value read, zero-extended).
            access.value = match W::WIDTH {
                w @ 1..=15 => v & ((1u128 << (8 * w)) - 1),
                _ => v,
            };
        }
        self.record(&mut st, access);
        W::from_lanes(access.lanes())
    }

    unsafe fn write<W: Word>(&self, off: usize, value: W) {
        let [lo, hi @ ..] = value.to_lanes();
        self.store(Access {
            dir: Dir::Write,
            offset: off,
            width: W::WIDTH,
            value: lo,
            value_hi: hi,
            direct: false,
        });
    }

    fn has_direct64(&self) -> bool {
        self.direct64
    }

    /// One 64-byte write with [`Access::direct`] set (when built `with_direct64(true)`; the
    /// crate asks [`has_direct64`](Backend::has_direct64) first, and without it the trait's
    /// eight `u64` stores are recorded).
    unsafe fn write_direct64(&self, off: usize, src: &[u8; 64]) {
        if !self.direct64 {
            // SAFETY: the caller's aligned, in-bounds 64 bytes.
            return unsafe { crate::backend::direct::as_u64s(self, off, src) };
        }
        let lane = |k: usize| {
            let mut b = [0u8; 16];
            b.copy_from_slice(&src[16 * k..16 * k + 16]);
            u128::from_le_bytes(b)
        };
        self.store(Access {
            dir: Dir::Write,
            offset: off,
            width: 64,
            value: lane(0),
            value_hi: [lane(1), lane(2), lane(3)],
            direct: true,
        });
    }

    fn barrier(&self, barrier: Barrier) {
        let mut st = self.lock();
        if st.tracing {
            st.seqs.push(next_seq());
            st.trace.push(Event::Barrier {
                barrier,
                insns: instructions(self.arch, barrier),
            });
        }
    }

    /// The mock records the barrier; the loaded value only matters to real powerpc code.
    fn barrier_after_read(&self, barrier: Barrier, _loaded: u64) {
        self.barrier(barrier)
    }
}
