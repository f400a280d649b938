//! Report section `copy`: bulk copies between RAM and the real [`Mmio`] backend over a RAM
//! buffer, against plain `copy_nonoverlapping`.
//!
//! Grid: direction (`to_io`, `from_io`) × size × misalignment × variant. Misalignments:
//! - `aligned`: both sides page-aligned;
//! - `d-s+1`, `d-s+8`, `d-s+63`: the io side page-aligned, the RAM side placed so that
//!   `dst - src ≡ k (mod 4096)` — the distance at which loads alias earlier stores in the CPU's
//!   store-forwarding check (4K aliasing), where `rep movsb` based `memcpy`s are known to slow down;
//! - `io+1`, `io+8`: the io side at that offset from a page boundary, the RAM side 2048 bytes
//!   further (no aliasing), so the plan needs a head and the RAM side is misaligned too.
//!
//! Variants: `memcpy` (plain `copy_nonoverlapping`, the reference of every ratio), a per-byte
//! volatile loop, a u64 volatile loop (byte head to 8-byte alignment, u64 body, byte tail — the
//! shape of a generic `iowrite64` loop), and the crate's `memcpy_toio`/`memcpy_fromio` for the
//! width policies U32, U64 and MEMORY_LIKE. Only `memcpy` touches the io side with plain loads
//! and stores; every other variant makes volatile accesses only ("honest" variants).
//!
//! Every variant is checked for a correct result before it is timed. Within a cell, rounds of all
//! variants are interleaved, so a load spike on the machine hits them alike; each round runs
//! enough iterations to last at least the round time, and the value is the median of the rounds.
//! Time is the thread's CPU time (on Linux), so rounds in which the process was descheduled by
//! other work on the machine are not stretched; ratios compare variants of one run.

use std::hint::black_box;
use std::ptr;
use std::time::Duration;

use iomem::{memcpy_fromio, memcpy_toio, Caching, IoMem, Mmio, WidthPolicy};

use crate::ram::{Buf, PAGE};
use crate::{median, Opts, Row};

const SECTION: &str = "copy";
/// The reference variant: every ratio is relative to it.
pub const REFERENCE: &str = "memcpy";

const SIZES: [usize; 5] = [64, 256, 4 << 10, 64 << 10, 1 << 20];

/// How the two sides are placed relative to page boundaries.
#[derive(Clone, Copy)]
enum Misalign {
    /// Both sides page-aligned.
    Aligned,
    /// io side page-aligned; `dst - src ≡ k (mod 4096)`.
    Distance(usize),
    /// io side at `o` past a page boundary; RAM side 2048 further (no aliasing).
    IoOffset(usize),
}

const MISALIGNS: [Misalign; 6] = [
    Misalign::Aligned,
    Misalign::Distance(1),
    Misalign::Distance(8),
    Misalign::Distance(63),
    Misalign::IoOffset(1),
    Misalign::IoOffset(8),
];

impl Misalign {
    fn label(self) -> String {
        match self {
            Misalign::Aligned => "aligned".into(),
            Misalign::Distance(k) => format!("d-s+{k}"),
            Misalign::IoOffset(o) => format!("io+{o}"),
        }
    }

    /// (io offset, RAM offset) from the starts of the two page-aligned buffers.
    fn offsets(self, dir: Direction) -> (usize, usize) {
        match (self, dir) {
            (Misalign::Aligned, _) => (0, 0),
            // dst = io, src = RAM: io - ram ≡ k  ⇒  ram = PAGE - k.
            (Misalign::Distance(k), Direction::ToIo) => (0, PAGE - k),
            // dst = RAM, src = io: ram - io ≡ k  ⇒  ram = k.
            (Misalign::Distance(k), Direction::FromIo) => (0, k),
            (Misalign::IoOffset(o), _) => (o, PAGE / 2),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToIo,
    FromIo,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::ToIo => "to_io",
            Direction::FromIo => "from_io",
        }
    }
}

/// A clock that advances only while this thread runs on a CPU (Linux
/// `CLOCK_THREAD_CPUTIME_ID`), so time spent descheduled on a busy machine does not count;
/// the wall clock elsewhere.
#[derive(Clone, Copy)]
struct Clock(Duration);

impl Clock {
    fn now() -> Self {
        match crate::ram::thread_cpu_ns() {
            Some(ns) => Clock(Duration::from_nanos(ns)),
            None => {
                thread_local!(static START: std::time::Instant = std::time::Instant::now());
                Clock(START.with(|s| s.elapsed()))
            }
        }
    }
    fn elapsed(self) -> Duration {
        Clock::now().0.saturating_sub(self.0)
    }
}

/// One timed thing: runs its copy `iters` times.
type Kernel<'a> = Box<dyn FnMut(u64) + 'a>;

/// Iterations such that one call of `k` takes at least `round`.
fn calibrate(k: &mut Kernel<'_>, round: Duration) -> u64 {
    let mut iters = 1u64;
    loop {
        let t = Clock::now();
        k(iters);
        let e = t.elapsed();
        if e >= round {
            return iters;
        }
        iters = if e * 8 < round {
            iters * 8
        } else {
            let f = round.as_secs_f64() / e.as_secs_f64().max(1e-9);
            ((iters as f64 * f * 1.05).ceil() as u64).max(iters + 1)
        };
    }
}

/// Per-byte volatile loop, RAM → io.
///
/// # Safety
/// `src` readable and `dst` writable for `n` bytes; `dst` is RAM we own (the io buffer).
#[inline(never)]
unsafe fn volatile_u8_to(dst: *mut u8, src: *const u8, n: usize) {
    for i in 0..n {
        // SAFETY: i < n, within both ranges by the caller's contract.
        unsafe { ptr::write_volatile(dst.add(i), *src.add(i)) };
    }
}

/// Per-byte volatile loop, io → RAM.
///
/// # Safety
/// As for [`volatile_u8_to`], with the directions swapped.
#[inline(never)]
unsafe fn volatile_u8_from(dst: *mut u8, src: *const u8, n: usize) {
    for i in 0..n {
        // SAFETY: i < n, within both ranges by the caller's contract.
        unsafe { *dst.add(i) = ptr::read_volatile(src.add(i)) };
    }
}

/// A plain u64 volatile loop, RAM → io: bytes until the io address is 8-aligned, u64 accesses,
/// bytes for the tail.
///
/// # Safety
/// As for [`volatile_u8_to`].
#[inline(never)]
unsafe fn volatile_u64_to(dst: *mut u8, src: *const u8, n: usize) {
    let head = (dst.align_offset(8)).min(n);
    let mut i = 0;
    while i < head {
        // SAFETY: i < n.
        unsafe { ptr::write_volatile(dst.add(i), *src.add(i)) };
        i += 1;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, and `dst + i` is 8-aligned after the head.
        unsafe {
            let v = ptr::read_unaligned(src.add(i).cast::<u64>());
            ptr::write_volatile(dst.add(i).cast::<u64>(), v);
        }
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        unsafe { ptr::write_volatile(dst.add(i), *src.add(i)) };
        i += 1;
    }
}

/// The u64 volatile loop, io → RAM.
///
/// # Safety
/// As for [`volatile_u8_from`].
#[inline(never)]
unsafe fn volatile_u64_from(dst: *mut u8, src: *const u8, n: usize) {
    let head = (src.align_offset(8)).min(n);
    let mut i = 0;
    while i < head {
        // SAFETY: i < n.
        unsafe { *dst.add(i) = ptr::read_volatile(src.add(i)) };
        i += 1;
    }
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, and `src + i` is 8-aligned after the head.
        unsafe {
            let v = ptr::read_volatile(src.add(i).cast::<u64>());
            ptr::write_unaligned(dst.add(i).cast::<u64>(), v);
        }
        i += 8;
    }
    while i < n {
        // SAFETY: i < n.
        unsafe { *dst.add(i) = ptr::read_volatile(src.add(i)) };
        i += 1;
    }
}

const POLICIES: [(&str, WidthPolicy); 3] = [
    ("U32", WidthPolicy::U32),
    ("U64", WidthPolicy::U64),
    ("MEMORY_LIKE", WidthPolicy::MEMORY_LIKE),
];

fn pattern(seed: usize, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i.wrapping_mul(131) ^ seed.wrapping_mul(7) ^ (i >> 8)) as u8)
        .collect()
}

/// Builds the variants of one cell. Pointers are the two sides of the copy.
fn kernels<'a>(
    dir: Direction,
    mmio: &'a Mmio,
    io_off: usize,
    ram: *mut u8,
    n: usize,
) -> Vec<(String, Kernel<'a>)> {
    let io = mmio.as_ptr().wrapping_add(io_off);
    let whole = IoMem::new(mmio);
    let handle = whole
        .subslice(io_off..io_off + n)
        .expect("io range inside the buffer");
    let mut v: Vec<(String, Kernel<'a>)> = Vec::new();
    match dir {
        Direction::ToIo => {
            v.push((
                REFERENCE.into(),
                Box::new(move |iters| {
                    for _ in 0..iters {
                        // SAFETY: `ram` and `io` are disjoint buffers we own, valid for `n`
                        // bytes; the io buffer is plain RAM, so a plain copy into it is sound.
                        unsafe { ptr::copy_nonoverlapping(black_box(ram), black_box(io), n) };
                    }
                }),
            ));
            v.push((
                "volatile_u8".into(),
                Box::new(move |iters| {
                    for _ in 0..iters {
                        // SAFETY: as above.
                        unsafe { volatile_u8_to(black_box(io), black_box(ram), n) };
                    }
                }),
            ));
            v.push((
                "volatile_u64".into(),
                Box::new(move |iters| {
                    for _ in 0..iters {
                        // SAFETY: as above.
                        unsafe { volatile_u64_to(black_box(io), black_box(ram), n) };
                    }
                }),
            ));
            for (name, policy) in POLICIES {
                let h = handle.with_policy(policy);
                v.push((
                    format!("memcpy_toio({name})"),
                    Box::new(move |iters| {
                        for _ in 0..iters {
                            // SAFETY: `ram` is valid for `n` bytes and nothing writes it while
                            // this shared slice lives.
                            let src = unsafe { std::slice::from_raw_parts(black_box(ram), n) };
                            memcpy_toio(black_box(&h), src).expect("lengths match");
                        }
                    }),
                ));
            }
        }
        Direction::FromIo => {
            v.push((
                REFERENCE.into(),
                Box::new(move |iters| {
                    for _ in 0..iters {
                        // SAFETY: as for the `to_io` reference.
                        unsafe { ptr::copy_nonoverlapping(black_box(io), black_box(ram), n) };
                    }
                }),
            ));
            v.push((
                "volatile_u8".into(),
                Box::new(move |iters| {
                    for _ in 0..iters {
                        // SAFETY: as above.
                        unsafe { volatile_u8_from(black_box(ram), black_box(io), n) };
                    }
                }),
            ));
            v.push((
                "volatile_u64".into(),
                Box::new(move |iters| {
                    for _ in 0..iters {
                        // SAFETY: as above.
                        unsafe { volatile_u64_from(black_box(ram), black_box(io), n) };
                    }
                }),
            ));
            for (name, policy) in POLICIES {
                let h = handle.with_policy(policy);
                v.push((
                    format!("memcpy_fromio({name})"),
                    Box::new(move |iters| {
                        for _ in 0..iters {
                            // SAFETY: `ram` is valid for `n` bytes and no other slice or
                            // pointer use of it overlaps this one's life.
                            let dst = unsafe { std::slice::from_raw_parts_mut(black_box(ram), n) };
                            memcpy_fromio(dst, black_box(&h)).expect("lengths match");
                        }
                    }),
                ));
            }
        }
    }
    v
}

/// Runs every variant once on fresh data and checks the result; panics on a wrong copy.
fn verify(dir: Direction, io: *mut u8, ram: *mut u8, n: usize, ks: &mut [(String, Kernel<'_>)]) {
    for (i, (name, k)) in ks.iter_mut().enumerate() {
        let data = pattern(i + n, n);
        let (from, to) = match dir {
            Direction::ToIo => (ram, io),
            Direction::FromIo => (io, ram),
        };
        // SAFETY: both buffers are ours and valid for `n` bytes; no reference into them exists.
        unsafe {
            ptr::copy_nonoverlapping(data.as_ptr(), from, n);
            ptr::write_bytes(to, 0, n);
        }
        k(1);
        // SAFETY: as above; the copy is finished.
        let got = unsafe { std::slice::from_raw_parts(to, n) }.to_vec();
        assert!(
            got == data,
            "{} {name}: wrong copy of {n} bytes",
            dir.label()
        );
    }
}

pub fn run(opts: Opts) -> Vec<Row> {
    let (rounds, round) = if opts.quick {
        (7, Duration::from_millis(2))
    } else {
        (21, Duration::from_millis(4))
    };
    let max = *SIZES.iter().max().expect("sizes");
    let io_buf = Buf::new(max + PAGE);
    let ram_buf = Buf::new(max + 2 * PAGE);
    // SAFETY: `io_buf` is a live, page-aligned (so BASE_ALIGN-aligned) allocation of
    // `io_buf.len()` bytes that outlives `mmio` (declared before it, dropped after it); it is
    // ordinary RAM, valid for volatile accesses of every width; this code never creates a Rust
    // reference to it (plain copies into it go through raw pointers, in this thread only); and
    // write-back RAM needs no write-combining flush, which is what `Uncached` promises callers.
    let mmio = unsafe { Mmio::new(io_buf.ptr, io_buf.len(), Caching::Uncached) }
        .expect("page-aligned buffer");
    // Fault the pages in and fill them (untouched zero pages would read from one shared page).
    // SAFETY: both buffers are ours, valid for their lengths.
    unsafe {
        ptr::write_bytes(io_buf.ptr, 0x5a, io_buf.len());
        let p = pattern(1, ram_buf.len());
        ptr::copy_nonoverlapping(p.as_ptr(), ram_buf.ptr, ram_buf.len());
    }

    let mut rows = Vec::new();
    for dir in [Direction::ToIo, Direction::FromIo] {
        for &n in &SIZES {
            for mis in MISALIGNS {
                let (io_off, ram_off) = mis.offsets(dir);
                let io = mmio.as_ptr().wrapping_add(io_off);
                let ram = ram_buf.ptr.wrapping_add(ram_off);
                let mut ks = kernels(dir, &mmio, io_off, ram, n);
                verify(dir, io, ram, n, &mut ks);
                let iters: Vec<u64> = ks.iter_mut().map(|(_, k)| calibrate(k, round)).collect();
                let mut samples = vec![Vec::with_capacity(rounds); ks.len()];
                for _ in 0..rounds {
                    for (j, (_, k)) in ks.iter_mut().enumerate() {
                        let t = Clock::now();
                        k(iters[j]);
                        let s = t.elapsed().as_secs_f64();
                        samples[j].push((n as f64 * iters[j] as f64) / s / 1e9);
                    }
                }
                let meds: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
                let reference = meds[0];
                for ((name, _), gbs) in ks.iter().zip(&meds) {
                    rows.push(Row {
                        section: SECTION,
                        case: dir.label().into(),
                        bytes: n as u64,
                        misalign: mis.label(),
                        variant: name.clone(),
                        value: *gbs,
                        unit: "GB/s",
                        ratio: Some(gbs / reference),
                    });
                }
            }
        }
    }
    rows
}

/// The targets of the copy section, checked on its rows: one line per target.
pub fn targets(rows: &[Row]) -> Vec<String> {
    let copy: Vec<&Row> = rows.iter().filter(|r| r.section == SECTION).collect();
    if copy.is_empty() {
        return Vec::new();
    }
    let honest = |r: &Row| r.variant != REFERENCE;
    // Best honest variant of a cell.
    let best = |r: &Row| {
        copy.iter()
            .filter(|x| {
                x.case == r.case && x.bytes == r.bytes && x.misalign == r.misalign && honest(x)
            })
            .map(|x| x.value)
            .fold(0.0f64, f64::max)
    };
    let mut out = Vec::new();
    let mut check = |what: String, min: Option<(f64, &Row)>, goal: f64| {
        if let Some((v, r)) = min {
            out.push(format!(
                "{:<4} {what}: min {v:.3} (goal {goal}) at {} {} B {} {}",
                if v >= goal { "MET" } else { "MISS" },
                r.case,
                r.bytes,
                r.misalign,
                r.variant
            ));
        }
    };
    let min_of = |f: &dyn Fn(&Row) -> bool, val: &dyn Fn(&Row) -> f64| {
        copy.iter()
            .filter(|r| f(r))
            .map(|r| (val(r), *r))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    };
    let ratio = |r: &Row| r.ratio.unwrap_or(0.0);
    let sizes: Vec<u64> = {
        let mut v: Vec<u64> = copy
            .iter()
            .map(|r| r.bytes)
            .filter(|&b| b >= 4096)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    for (policy, goal) in [("MEMORY_LIKE", 0.9), ("U64", 0.8)] {
        let is = move |r: &Row| r.variant.ends_with(&format!("({policy})"));
        for &n in &sizes {
            check(
                format!("{policy} vs memcpy, {n} B, aligned"),
                min_of(
                    &|r| is(r) && r.bytes == n && r.misalign == "aligned",
                    &ratio,
                ),
                goal,
            );
            check(
                format!("{policy} vs memcpy, {n} B, every misalignment"),
                min_of(&|r| is(r) && r.bytes == n, &ratio),
                goal,
            );
        }
    }
    for policy in ["MEMORY_LIKE", "U64", "U32"] {
        let is = move |r: &Row| r.variant.ends_with(&format!("({policy})"));
        check(
            format!("{policy} vs best honest variant, every cell"),
            min_of(&is, &|r| r.value / best(r)),
            0.5,
        );
    }
    out.push(format!(
        "info MEMORY_LIKE makes {}-byte accesses on this CPU (page-aligned mapping)",
        WidthPolicy::MEMORY_LIKE.max_width()
    ));
    // 4K aliasing: each variant at dst - src ≡ 1 (mod 4096) against itself aligned, at 4 KiB.
    for (case, variant) in [
        ("to_io", REFERENCE),
        ("from_io", REFERENCE),
        ("to_io", "memcpy_toio(MEMORY_LIKE)"),
        ("from_io", "memcpy_fromio(MEMORY_LIKE)"),
    ] {
        let at = |m: &str| {
            copy.iter()
                .find(|r| {
                    r.case == case && r.bytes == 4096 && r.misalign == m && r.variant == variant
                })
                .map(|r| r.value)
        };
        if let (Some(a), Some(d)) = (at("aligned"), at("d-s+1")) {
            out.push(format!(
                "info {case} {variant} at 4096 B: d-s+1 runs at {:.3}x of its aligned speed",
                d / a
            ));
        }
    }
    out
}
