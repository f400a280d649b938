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
//! volatile loop `volatile_u8`, a u64 volatile loop `volatile_u64` (byte head to 8-byte
//! alignment, u64 body, byte tail — the shape of a generic driver's `iowrite64` loop), the
//! width-limited reference loops `u32_loop` and `u64_loop`, and the crate's
//! `memcpy_toio`/`memcpy_fromio` for the width policies U32, U64 and MEMORY_LIKE. Only `memcpy`
//! touches the io side with plain loads and stores; every other variant makes volatile accesses
//! only ("honest" variants). The loops are in [`loops`].
//!
//! `u32_loop`/`u64_loop` are what a copy limited to width W can reach: `n / W` volatile W-wide
//! io accesses, eight per step, plain unaligned loads/stores on the RAM side, no head and no
//! tail. They copy only `n - n % W` bytes from a W-aligned io start, so they run only in cells
//! where the io side is W-aligned and `n % W == 0` (every cell but `io+1`), where that is `n`.
//!
//! Targets (see [`targets`]), each printed as `MET`/`MISS` with its minimum and the cell:
//! - MEMORY_LIKE vs `memcpy` ≥ 0.9 in every cell of 4 KiB..1 MiB (both directions, aligned and
//!   every misalignment), and per size, aligned and every misalignment;
//! - small copies: MEMORY_LIKE vs `memcpy` ≥ 0.8 at 64 B and at 256 B, every misalignment;
//! - U64 vs `u64_loop` and U32 vs `u32_loop` ≥ 0.9 in every cell of 4 KiB..1 MiB where the loop
//!   runs (the crate's row against the loop's row of the same cell);
//! - MEMORY_LIKE vs the best honest variant of the cell ≥ 0.5 in every cell;
//! - `info` lines: U64 vs `memcpy` (no goal: a width-limited copy is not expected to reach it),
//!   MEMORY_LIKE's access width, and the 4K-aliasing slowdown at `d-s+1`.
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

mod loops;

use loops::{
    volatile_u64_from, volatile_u64_to, volatile_u8_from, volatile_u8_to, width_loop_from,
    width_loop_to, VolatileFn, WIDTH_LOOPS,
};

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

/// One timed variant of a cell.
struct Variant<'a> {
    name: String,
    /// Bytes one call copies: `n`, except for the width-limited reference loops, which copy
    /// whole words only (`n - n % W`; equal to `n` in every cell where they run).
    covered: usize,
    k: Kernel<'a>,
}

/// Builds the variants of one cell. Pointers are the two sides of the copy.
fn kernels<'a>(
    dir: Direction,
    mmio: &'a Mmio,
    io_off: usize,
    ram: *mut u8,
    n: usize,
) -> Vec<Variant<'a>> {
    let io = mmio.as_ptr().wrapping_add(io_off);
    let whole = IoMem::new(mmio);
    let handle = whole
        .subslice(io_off..io_off + n)
        .expect("io range inside the buffer");
    let mut v: Vec<Variant<'a>> = Vec::new();
    let mut push = |name: String, covered: usize, k: Kernel<'a>| {
        v.push(Variant { name, covered, k });
    };
    let (dst, src) = match dir {
        Direction::ToIo => (io, ram.cast_const()),
        Direction::FromIo => (ram, io.cast_const()),
    };
    // SAFETY (for every kernel below): `ram` and `io` are disjoint buffers we own, valid for
    // `n` bytes; the io buffer is plain RAM, so a plain copy into or out of it is sound.
    push(
        REFERENCE.into(),
        n,
        Box::new(move |iters| {
            for _ in 0..iters {
                // SAFETY: `src` and `dst` are disjoint and valid for `n` bytes (see above).
                unsafe { ptr::copy_nonoverlapping(black_box(src), black_box(dst), n) };
            }
        }),
    );
    let (u8_loop, u64_loop): (VolatileFn, VolatileFn) = match dir {
        Direction::ToIo => (volatile_u8_to, volatile_u64_to),
        Direction::FromIo => (volatile_u8_from, volatile_u64_from),
    };
    for (name, f) in [("volatile_u8", u8_loop), ("volatile_u64", u64_loop)] {
        push(
            name.into(),
            n,
            Box::new(move |iters| {
                for _ in 0..iters {
                    // SAFETY: `dst`/`src` are this cell's disjoint io and RAM ranges, valid for
                    // `n` bytes (see above).
                    unsafe { f(black_box(dst), black_box(src), n) };
                }
            }),
        );
    }
    for (name, w) in WIDTH_LOOPS {
        // No head and no tail: timed only where the io side is `w`-aligned and `n` a multiple
        // of `w` (every cell but `io+1` here), where they copy all `n` bytes.
        if io.addr() % w != 0 || n % w != 0 {
            continue;
        }
        let f: VolatileFn = match (dir, w) {
            (Direction::ToIo, 4) => width_loop_to::<u32>,
            (Direction::ToIo, _) => width_loop_to::<u64>,
            (Direction::FromIo, 4) => width_loop_from::<u32>,
            (Direction::FromIo, _) => width_loop_from::<u64>,
        };
        push(
            name.into(),
            n - n % w,
            Box::new(move |iters| {
                for _ in 0..iters {
                    // SAFETY: as for the loops above; the io side is `w`-aligned (checked
                    // above), as the width loops require.
                    unsafe { f(black_box(dst), black_box(src), n) };
                }
            }),
        );
    }
    for (name, policy) in POLICIES {
        let h = handle.with_policy(policy);
        match dir {
            Direction::ToIo => push(
                format!("memcpy_toio({name})"),
                n,
                Box::new(move |iters| {
                    for _ in 0..iters {
                        // SAFETY: `ram` is valid for `n` bytes and nothing writes it while
                        // this shared slice lives.
                        let src = unsafe { std::slice::from_raw_parts(black_box(ram), n) };
                        memcpy_toio(black_box(&h), src).expect("lengths match");
                    }
                }),
            ),
            Direction::FromIo => push(
                format!("memcpy_fromio({name})"),
                n,
                Box::new(move |iters| {
                    for _ in 0..iters {
                        // SAFETY: `ram` is valid for `n` bytes and no other slice or
                        // pointer use of it overlaps this one's life.
                        let dst = unsafe { std::slice::from_raw_parts_mut(black_box(ram), n) };
                        memcpy_fromio(dst, black_box(&h)).expect("lengths match");
                    }
                }),
            ),
        }
    }
    v
}

/// Runs every variant once on fresh data and checks the result; panics on a wrong copy.
///
/// Each variant is checked over the bytes it copies (`covered`): all `n` for every variant but
/// the width-limited reference loops, which have no tail and so copy only their whole words.
/// The bytes past that prefix are not checked for them.
fn verify(dir: Direction, io: *mut u8, ram: *mut u8, n: usize, ks: &mut [Variant<'_>]) {
    for (i, var) in ks.iter_mut().enumerate() {
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
        (var.k)(1);
        // SAFETY: as above; the copy is finished.
        let got = unsafe { std::slice::from_raw_parts(to, n) }.to_vec();
        let c = var.covered;
        assert!(
            got[..c] == data[..c],
            "{} {}: wrong copy of {c} of {n} bytes",
            dir.label(),
            var.name
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
                let iters: Vec<u64> = ks.iter_mut().map(|v| calibrate(&mut v.k, round)).collect();
                let mut samples = vec![Vec::with_capacity(rounds); ks.len()];
                for _ in 0..rounds {
                    for (j, var) in ks.iter_mut().enumerate() {
                        let t = Clock::now();
                        (var.k)(iters[j]);
                        let s = t.elapsed().as_secs_f64();
                        samples[j].push((var.covered as f64 * iters[j] as f64) / s / 1e9);
                    }
                }
                let meds: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
                let reference = meds[0];
                for (var, gbs) in ks.iter().zip(&meds) {
                    rows.push(Row {
                        section: SECTION,
                        case: dir.label().into(),
                        bytes: n as u64,
                        misalign: mis.label(),
                        variant: var.name.clone(),
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

/// Whether `r` is a row of the crate's copy under `policy` (either direction).
fn is_policy(r: &Row, policy: &str) -> bool {
    r.variant
        .strip_suffix(')')
        .and_then(|v| v.rsplit_once('('))
        .is_some_and(|(_, p)| p == policy)
}

/// The targets of the copy section, checked on its rows: one line per target, `MET`/`MISS`
/// with the minimum and the cell (and variant) where it occurs; `info` lines carry no goal.
pub fn targets(rows: &[Row]) -> Vec<String> {
    let copy: Vec<&Row> = rows.iter().filter(|r| r.section == SECTION).collect();
    if copy.is_empty() {
        return Vec::new();
    }
    let same_cell =
        |a: &Row, b: &Row| a.case == b.case && a.bytes == b.bytes && a.misalign == b.misalign;
    let in_cell = |r: &Row, variant: &str| {
        copy.iter()
            .find(|x| same_cell(x, r) && x.variant == variant)
            .map(|x| x.value)
    };
    // Honest variants make volatile accesses only. The width-limited reference loops are left
    // out of "best honest": they copy whole words only, without head or tail, and are the
    // width references of their own targets; "best honest" compares the crate's variants with
    // the other real copy routines.
    let honest =
        |r: &Row| r.variant != REFERENCE && WIDTH_LOOPS.iter().all(|(l, _)| r.variant != *l);
    let best = |r: &Row| {
        copy.iter()
            .filter(|x| same_cell(x, r) && honest(x))
            .map(|x| x.value)
            .fold(0.0f64, f64::max)
    };
    let mut out = Vec::new();
    let mut check = |what: String, min: Option<(f64, &Row)>, goal: Option<f64>| {
        if let Some((v, r)) = min {
            let (tag, goal) = match goal {
                Some(g) => (if v >= g { "MET" } else { "MISS" }, format!(" (goal {g})")),
                None => ("info", String::new()),
            };
            let (c, b, m, var) = (&r.case, r.bytes, &r.misalign, &r.variant);
            out.push(format!(
                "{tag:<4} {what}: min {v:.3}{goal} at {c} {b} B {m} {var}"
            ));
        }
    };
    let min_of = |f: &dyn Fn(&Row) -> bool, val: &dyn Fn(&Row) -> Option<f64>| {
        copy.iter()
            .filter(|r| f(r))
            .filter_map(|r| Some((val(r)?, *r)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
    };
    let ratio = |r: &Row| r.ratio;
    let mut sizes: Vec<u64> = copy.iter().map(|r| r.bytes).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let large: Vec<u64> = sizes.iter().copied().filter(|&b| b >= 4096).collect();
    let ml = |r: &Row| is_policy(r, "MEMORY_LIKE");
    if let (Some(lo), Some(hi)) = (large.first(), large.last()) {
        let big = |r: &Row| (*lo..=*hi).contains(&r.bytes);
        let span = format!("every cell {lo}..{hi} B");
        check(
            format!("MEMORY_LIKE vs memcpy, {span}"),
            min_of(&|r| ml(r) && big(r), &ratio),
            Some(0.9),
        );
        for &n in &large {
            check(
                format!("MEMORY_LIKE vs memcpy, {n} B, aligned"),
                min_of(
                    &|r| ml(r) && r.bytes == n && r.misalign == "aligned",
                    &ratio,
                ),
                Some(0.9),
            );
            check(
                format!("MEMORY_LIKE vs memcpy, {n} B, every misalignment"),
                min_of(&|r| ml(r) && r.bytes == n, &ratio),
                Some(0.9),
            );
        }
        // The crate's width-limited copies against the bare loop of that width in the same
        // cell; cells without the loop (io side not aligned for it) are left out.
        for (policy, reference) in [("U64", "u64_loop"), ("U32", "u32_loop")] {
            check(
                format!("{policy} vs {reference}, {span} where it runs"),
                min_of(&|r| is_policy(r, policy) && big(r), &|r| {
                    Some(r.value / in_cell(r, reference)?)
                }),
                Some(0.9),
            );
        }
        check(
            format!("U64 vs memcpy, {span}"),
            min_of(&|r| is_policy(r, "U64") && big(r), &ratio),
            None,
        );
    }
    for n in [64, 256] {
        check(
            format!("small copies: MEMORY_LIKE vs memcpy at {n} B, every misalignment"),
            min_of(&|r| ml(r) && r.bytes == n, &ratio),
            Some(0.8),
        );
    }
    // Only MEMORY_LIKE is held to the best honest variant: for U64 and U32 that is a wider
    // copy, and their width-reference lines above are the meaningful comparison.
    check(
        "MEMORY_LIKE vs best honest variant, every cell".into(),
        min_of(&ml, &|r| Some(r.value / best(r))),
        Some(0.5),
    );
    let ml = WidthPolicy::MEMORY_LIKE;
    out.push(format!(
        "info MEMORY_LIKE makes {}-byte accesses on this CPU (page-aligned mapping; {}-byte ones \
         in copies of up to {} B)",
        ml.max_width(),
        ml.width_for(iomem::copy::SHORT_COPY),
        iomem::copy::SHORT_COPY
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
