//! Bulk copies between RAM and the real `Mmio` backend over a RAM buffer: plain
//! `copy_nonoverlapping` (the reference), per-byte and u64 volatile loops, and `memcpy_toio` /
//! `memcpy_fromio` for each width policy. The same variants as the report's `copy` section
//! (`cargo run --release --example report`), which prints ratios; this gives criterion's
//! statistics for a smaller grid. Times are the benchmark thread's CPU time, so a busy machine
//! stretches them less than wall time would.
//!
//! ```text
//! cargo bench --bench copy [-- FILTER]
//! ```

use std::hint::black_box;
use std::ptr;
use std::time::Duration;

#[path = "../examples/report/ram.rs"]
mod ram;
use ram::{Buf, PAGE};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use iomem::{memcpy_fromio, memcpy_toio, Caching, IoMem, Mmio, WidthPolicy};

const MAX: usize = 1 << 20;

/// The thread's CPU time (Linux `CLOCK_THREAD_CPUTIME_ID`): time spent descheduled while other
/// work runs on the machine is not counted. Values are nanoseconds, as for `WallTime`.
struct CpuTime;

fn thread_cpu_ns() -> u64 {
    ram::thread_cpu_ns().expect("the thread CPU clock (Linux CLOCK_THREAD_CPUTIME_ID)")
}

static WALL: WallTime = WallTime;

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, formatted and scaled exactly like wall time.
        WALL.formatter()
    }
}

/// Per-byte volatile copy; `to_io` says which side is the io buffer.
///
/// # Safety
/// `dst` writable and `src` readable for `n` bytes.
#[inline(never)]
unsafe fn volatile_u8(dst: *mut u8, src: *const u8, n: usize, to_io: bool) {
    for i in 0..n {
        // SAFETY: i < n.
        unsafe {
            if to_io {
                ptr::write_volatile(dst.add(i), *src.add(i))
            } else {
                *dst.add(i) = ptr::read_volatile(src.add(i))
            }
        }
    }
}

/// u64 volatile copy: bytes until the io side is 8-aligned, u64 accesses, bytes for the tail.
///
/// # Safety
/// As for [`volatile_u8`].
#[inline(never)]
unsafe fn volatile_u64(dst: *mut u8, src: *const u8, n: usize, to_io: bool) {
    let io = if to_io { dst as *const u8 } else { src };
    let head = io.align_offset(8).min(n);
    let body_end = head + (n - head) / 8 * 8;
    // SAFETY (whole function): every index stays below `n`; io-side u64 accesses are 8-aligned.
    unsafe {
        volatile_u8(dst, src, head, to_io);
        let mut i = head;
        while i < body_end {
            if to_io {
                let v = ptr::read_unaligned(src.add(i).cast::<u64>());
                ptr::write_volatile(dst.add(i).cast::<u64>(), v);
            } else {
                let v = ptr::read_volatile(src.add(i).cast::<u64>());
                ptr::write_unaligned(dst.add(i).cast::<u64>(), v);
            }
            i += 8;
        }
        volatile_u8(dst.add(body_end), src.add(body_end), n - body_end, to_io);
    }
}

const POLICIES: [(&str, WidthPolicy); 3] = [
    ("U32", WidthPolicy::U32),
    ("U64", WidthPolicy::U64),
    ("MEMORY_LIKE", WidthPolicy::MEMORY_LIKE),
];

/// (label, bytes, io offset, RAM offset) for `to_io`; `from_io` mirrors the distance.
const CELLS: [(&str, usize, usize, usize); 6] = [
    ("aligned", 64, 0, 0),
    ("aligned", 4096, 0, 0),
    ("aligned", 64 << 10, 0, 0),
    ("aligned", MAX, 0, 0),
    // dst - src ≡ 1 (mod 4096): the 4K-aliasing case.
    ("d-s+1", 4096, 0, usize::MAX),
    ("io+1", 4096, 1, PAGE / 2),
];

fn copies(c: &mut Criterion<CpuTime>) {
    let io_buf = Buf::new(MAX + PAGE);
    let ram_buf = Buf::new(MAX + 2 * PAGE);
    // Touch every page so no fault lands inside a measurement.
    // SAFETY: each buffer is `len()` bytes, freshly allocated, reached only through raw pointers.
    unsafe {
        ptr::write_bytes(io_buf.ptr, 0x5a, io_buf.len());
        ptr::write_bytes(ram_buf.ptr, 0xa5, ram_buf.len());
    }
    // SAFETY: `io_buf` is a live, page-aligned allocation of `MAX + PAGE` bytes that outlives
    // `mmio`; it is plain RAM, valid for volatile accesses of every width; no Rust reference to
    // it is ever created (the reference copy uses raw pointers, on this thread only); write-back
    // RAM needs no write-combining flush, as `Uncached` promises.
    let mmio = unsafe { Mmio::new(io_buf.ptr, MAX + PAGE, Caching::Uncached) }.expect("aligned");
    let whole = IoMem::new(&mmio);

    for to_io in [true, false] {
        let dir = if to_io { "to_io" } else { "from_io" };
        for (label, n, io_off, ram_off) in CELLS {
            // d - s ≡ 1: RAM one byte below a page end (to_io) or one byte into a page (from_io).
            let ram_off = match (ram_off, to_io) {
                (usize::MAX, true) => PAGE - 1,
                (usize::MAX, false) => 1,
                (o, _) => o,
            };
            let io = mmio.as_ptr().wrapping_add(io_off);
            let ram = ram_buf.ptr.wrapping_add(ram_off);
            let (dst, src) = if to_io {
                (io, ram as *const u8)
            } else {
                (ram, io as *const u8)
            };
            let handle = whole.subslice(io_off..io_off + n).expect("in range");
            let mut g = c.benchmark_group(format!("copy/{dir}/{label}"));
            g.throughput(Throughput::Bytes(n as u64));
            g.bench_function(BenchmarkId::new("memcpy", n), |b| {
                // SAFETY: disjoint buffers we own, valid for `n` bytes; the io buffer is RAM.
                b.iter(|| unsafe { ptr::copy_nonoverlapping(black_box(src), black_box(dst), n) })
            });
            if n <= 4096 {
                g.bench_function(BenchmarkId::new("volatile_u8", n), |b| {
                    // SAFETY: as above.
                    b.iter(|| unsafe { volatile_u8(black_box(dst), black_box(src), n, to_io) })
                });
            }
            g.bench_function(BenchmarkId::new("volatile_u64", n), |b| {
                // SAFETY: as above.
                b.iter(|| unsafe { volatile_u64(black_box(dst), black_box(src), n, to_io) })
            });
            for (name, policy) in POLICIES {
                let h = handle.with_policy(policy);
                let id = if to_io {
                    format!("memcpy_toio({name})")
                } else {
                    format!("memcpy_fromio({name})")
                };
                g.bench_function(BenchmarkId::new(id, n), |b| {
                    b.iter(|| {
                        if to_io {
                            // SAFETY: `ram` is valid for `n` bytes and not written meanwhile.
                            let s = unsafe { std::slice::from_raw_parts(black_box(ram), n) };
                            memcpy_toio(black_box(&h), s).expect("lengths match")
                        } else {
                            // SAFETY: `ram` is valid for `n` bytes and not otherwise in use.
                            let d = unsafe { std::slice::from_raw_parts_mut(black_box(ram), n) };
                            memcpy_fromio(d, black_box(&h)).expect("lengths match")
                        }
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(CpuTime)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = copies
}
criterion_main!(benches);
