//! Report section `sqe`: ns per 64-byte submission queue entry pushed into a ring, on RAM —
//! as one `MOVDIR64B` direct store ([`IoMem::write_direct64`], where the CPU has it), as
//! `memcpy_toio` memory-like (16-byte stores on a default x86_64 build: a 64-byte copy is
//! shorter than `SHORT_COPY`) and with 8-byte stores, and as two 32-byte AVX stores in a
//! function compiled for AVX (where the CPU has it) — against a plain 64-byte
//! `copy_nonoverlapping` (the reference; its length passed at run time, as in the `copy`
//! section, so it is a call of the C library's `memcpy`). The same copy with a constant length,
//! which the compiler turns into a few vector moves, is printed for comparison.
//!
//! The ring is 64 slots of page-aligned RAM behind the real [`Mmio`] backend; each push writes
//! the next slot (as a queue does), with no doorbell, so only the entry write is timed. The
//! value is the best of the rounds (the least disturbed by other work on the machine).
//! Also timed: the typed write of a `[u8; 64]` entry (`IoMem::cast` + `write`), the fixed-size
//! path. Target: the typed write ≥ 0.8× the reference; where the CPU has MOVDIR64B, its row
//! and ratio are printed too.

use std::hint::black_box;
use std::ptr;
use std::time::Instant;

use iomem::backend::has_movdir64b;
use iomem::{memcpy_toio, Caching, IoMem, Mmio, WidthPolicy};

use crate::ram::Buf;
use crate::{Opts, Row};

const SECTION: &str = "sqe";
const REFERENCE: &str = "memcpy 64 B";
/// The same copy with the length a constant: inlined to two or four vector moves.
const INLINED: &str = "memcpy 64 B (constant length: inlined)";
const SLOTS: usize = 64;
const GOAL: f64 = 0.8;

fn row(variant: &str, value: f64, unit: &'static str, ratio: Option<f64>) -> Row {
    Row {
        section: SECTION,
        case: "push".into(),
        bytes: 64,
        misalign: "-".into(),
        variant: variant.into(),
        value,
        unit,
        ratio,
    }
}

/// One way of writing an entry: writes `iters` entries into successive slots.
type Push<'a> = Box<dyn FnMut(usize) + 'a>;

/// Plain 64-byte copies into successive slots of the ring at `base` (RAM): the length hidden from
/// the compiler (`RUNTIME`: a call of the C library's `memcpy`) or a constant (inlined moves).
fn memcpy_push<'a, const RUNTIME: bool>(base: *mut u8, cmds: &'a [[u8; 64]; SLOTS]) -> Push<'a> {
    Box::new(move |n| {
        for i in 0..n {
            let s = i % SLOTS;
            let len = if RUNTIME { black_box(64) } else { 64 };
            // SAFETY: slot `s` is inside the ring at `base` (RAM the caller owns, `SLOTS * 64`
            // bytes); the command is 64 bytes and `len` is 64.
            unsafe {
                ptr::copy_nonoverlapping(
                    black_box(cmds[s].as_ptr()),
                    black_box(base.add(s * 64)),
                    len,
                )
            };
        }
    })
}

/// Writes `src` to `dst` as two aligned 32-byte volatile stores (`vmovdqa`).
///
/// # Safety
/// `dst` is 32-aligned and valid for 64 bytes of writes; the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline(never)]
unsafe fn store_w256(dst: *mut u8, src: &[u8; 64]) {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256};
    let (s, d) = (src.as_ptr().cast::<__m256i>(), dst.cast::<__m256i>());
    // SAFETY: `src` is 64 readable bytes (unaligned loads); `dst` is 32-aligned and valid for
    // 64 bytes (the caller's contract).
    unsafe {
        let (lo, hi) = (_mm256_loadu_si256(s), _mm256_loadu_si256(s.add(1)));
        ptr::write_volatile(d, lo);
        ptr::write_volatile(d.add(1), hi);
    }
}

pub fn run(opts: Opts) -> Vec<Row> {
    let (rounds, iters) = if opts.quick {
        (15, 20_000)
    } else {
        (61, 100_000)
    };
    let ring = Buf::new(SLOTS * 64);
    // SAFETY: `ring` is a live, page-aligned allocation of `ring.len()` bytes that outlives
    // `mmio` (declared before it); it is RAM, valid for volatile accesses of every width, and
    // only this backend and the reference's raw-pointer copies (this thread) touch it.
    let mmio =
        unsafe { Mmio::new(ring.ptr, ring.len(), Caching::Uncached) }.expect("page-aligned buffer");
    let io = IoMem::new(&mmio);
    let base = mmio.as_ptr();
    let mut cmds = [[0u8; 64]; SLOTS];
    for (k, c) in cmds.iter_mut().enumerate() {
        c.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (k * 7 + i) as u8);
    }
    let cmds = &cmds;
    let mut variants: Vec<(String, Push<'_>)> = vec![
        (REFERENCE.into(), memcpy_push::<true>(base, cmds)),
        (INLINED.into(), memcpy_push::<false>(base, cmds)),
    ];
    if has_movdir64b() {
        variants.push((
            "movdir64b".into(),
            Box::new(move |n| {
                for i in 0..n {
                    let s = i % SLOTS;
                    black_box(&io)
                        .write_direct64(s * 64, &cmds[s])
                        .expect("aligned slot");
                }
            }),
        ));
    }
    // `memcpy_toio` of the entry: memory-like (for a copy this short, the build's inline width:
    // `WidthPolicy::width_for`) and with 8-byte stores (a device limited to them).
    for (policy, label) in [
        (WidthPolicy::MEMORY_LIKE, " (MEMORY_LIKE)"),
        (WidthPolicy::U64, ""),
    ] {
        let h = io.with_policy(policy);
        let w = h.policy().width_for(64);
        variants.push((
            format!("memcpy_toio {w} B stores{label}"),
            Box::new(move |n| {
                for i in 0..n {
                    let s = i % SLOTS;
                    let slot = black_box(&h).subslice(s * 64..s * 64 + 64).expect("slot");
                    memcpy_toio(&slot, &cmds[s]).expect("64 bytes");
                }
            }),
        ));
    }
    // The entry as two 32-byte stores in a function compiled for AVX: what the copy cost as
    // 32-byte accesses (a call per entry, no checks). `memcpy_toio` makes those only for
    // copies longer than `SHORT_COPY`.
    #[cfg(target_arch = "x86_64")]
    if iomem::backend::has_w256() {
        variants.push((
            "2 x 32 B AVX stores (a call; no checks)".into(),
            Box::new(move |n| {
                for i in 0..n {
                    let s = i % SLOTS;
                    // SAFETY: slot `s` is inside the ring (RAM we own, 64-aligned slots); the
                    // CPU has AVX (checked above).
                    unsafe { store_w256(black_box(base.add(s * 64)), &cmds[s]) };
                }
            }),
        ));
    }
    // The typed write of a 64-byte entry (`IoMem<[u8; 64]>::write`), memory-like.
    let typed = io.with_policy(WidthPolicy::MEMORY_LIKE);
    variants.push((
        "typed write [u8; 64] (MEMORY_LIKE)".into(),
        Box::new(move |n| {
            for i in 0..n {
                let s = i % SLOTS;
                black_box(&typed)
                    .cast::<[u8; 64]>(s * 64)
                    .expect("slot")
                    .write(&cmds[s]);
            }
        }),
    ));
    // Check each variant writes the commands before timing it.
    for (name, v) in variants.iter_mut() {
        // SAFETY: the ring is ours; no reference into it exists.
        unsafe { ptr::write_bytes(base, 0, SLOTS * 64) };
        v(SLOTS);
        // SAFETY: as above; the writes are done.
        let got = unsafe { std::slice::from_raw_parts(base, SLOTS * 64) };
        assert!(
            got.chunks_exact(64).zip(cmds).all(|(a, b)| a == b),
            "{name}: wrong entries"
        );
    }
    let mut best = vec![f64::INFINITY; variants.len()];
    for r in 0..rounds {
        let k = variants.len();
        for j in (0..k).map(|j| (r + j) % k) {
            let t = Instant::now();
            (variants[j].1)(iters);
            best[j] = best[j].min(t.elapsed().as_secs_f64() * 1e9 / iters as f64);
        }
    }
    let reference = best[0];
    let mut rows: Vec<Row> = variants
        .iter()
        .zip(&best)
        .map(|((name, _), &ns)| row(name, ns, "ns", Some(reference / ns)))
        .collect();
    if let Some(ml) = rows.iter().find(|r| r.variant.starts_with("typed write")) {
        let ratio = ml.ratio.unwrap_or(0.0);
        let met = ratio >= GOAL;
        rows.push(Row {
            unit: if met { "MET" } else { "MISS" },
            ..row(
                &format!("typed 64 B write >= {GOAL}x memcpy speed"),
                ratio,
                "",
                None,
            )
        });
    }
    rows
}
