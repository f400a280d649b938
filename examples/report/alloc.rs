//! Report section `alloc`: `P2pPool` against the allocators a driver author would compare it
//! with, on the workload of `alloc_workload.rs` (256 MiB, 4 KiB granularity, 4 KiB–1 MiB
//! requests, ~50% fill).
//!
//! Times are the measuring thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so other load on the
//! machine does not count; elsewhere wall-clock time. The allocators run in turn, in short
//! rounds of equal length, and each ratio is the median over rounds of the ratio within a round:
//! a change in the machine's speed (another job on a sibling CPU, frequency) then touches both
//! sides of a ratio alike.
//!
//! Rows (ratios relative to the genalloc-style bitmap first-fit of the same run):
//! - `churn@50%`: alloc+free pairs per second in the steady state (median over rounds; the
//!   ratio is the median of the per-round ratios);
//! - `largest@50%`: the largest allocation still possible with the region 50% full, in bytes
//!   (median over samples taken as the fill reaches 50% during the churn);
//! - `target`: the section's goals, `value` = the measured ratio, `unit` = MET or MISS.

use crate::{median, Opts, Row};

#[path = "alloc_workload.rs"]
pub mod workload;

use workload::{p2p_pool, Alloc, BTreeFit, Bitmap, Churn, Stopwatch, REGION};

const SECTION: &str = "alloc";
const REFERENCE: &str = "bitmap-first-fit (ref)";

/// Pairs per second of `c` over one round of at least `secs` of CPU time, growing `chunk` (the
/// pairs per timing) until a round is that long.
fn round<A: Alloc>(c: &mut Churn<A>, chunk: &mut u64, secs: f64) -> f64 {
    let t = Stopwatch::start();
    let mut done = 0u64;
    loop {
        c.pairs(*chunk);
        done += *chunk;
        let s = t.secs();
        if s >= secs {
            return done as f64 / s;
        }
        *chunk = (*chunk * 2).min(1 << 20);
    }
}

/// `samples` largest-free readings, taken each time the churn brings the fill back to 50%.
fn largest<A: Alloc>(c: &mut Churn<A>, samples: usize) -> Vec<f64> {
    (0..samples)
        .map(|_| {
            c.pairs(5_000);
            c.fill_to_half();
            c.alloc.largest_free() as f64
        })
        .collect()
}

/// One seed: every allocator churns in turn for `rounds` rounds of `secs`. Returns, per
/// allocator, the per-round rates, and the largest-free samples.
fn seed_run<P: Alloc, R: Alloc, T: Alloc>(
    (p, r, t): (P, R, T),
    seed: u64,
    rounds: usize,
    secs: f64,
    samples: usize,
) -> [(Vec<f64>, Vec<f64>); 3] {
    let (mut p, mut r, mut t) = (
        Churn::new(p, seed),
        Churn::new(r, seed),
        Churn::new(t, seed),
    );
    // reach the steady state
    p.pairs(20_000);
    r.pairs(20_000);
    t.pairs(20_000);
    let mut chunks = [1_000u64; 3];
    let mut rates: [Vec<f64>; 3] = Default::default();
    for _ in 0..rounds {
        rates[0].push(round(&mut p, &mut chunks[0], secs));
        rates[1].push(round(&mut r, &mut chunks[1], secs));
        rates[2].push(round(&mut t, &mut chunks[2], secs));
    }
    let [a, b, c] = rates;
    [
        (a, largest(&mut p, samples)),
        (b, largest(&mut r, samples)),
        (c, largest(&mut t, samples)),
    ]
}

pub fn run(opts: Opts) -> Vec<Row> {
    let (seeds, rounds, secs, samples) = if opts.quick {
        (1u64, 5, 0.01, 8)
    } else {
        (5, 10, 0.03, 16)
    };
    let variants = ["p2p-tlsf", REFERENCE, "btree-best-fit"];
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut ratios: [Vec<f64>; 3] = Default::default();
    let mut largests: [Vec<f64>; 3] = Default::default();
    for seed in 1..=seeds {
        let runs = seed_run(
            (p2p_pool(), Bitmap::new(), BTreeFit::new()),
            seed,
            rounds,
            secs,
            samples,
        );
        for i in 0..3 {
            // paired: the ratio within each round
            for (x, r) in runs[i].0.iter().zip(&runs[1].0) {
                ratios[i].push(x / r);
            }
            rates[i].extend(&runs[i].0);
            largests[i].extend(&runs[i].1);
        }
    }
    let rate: Vec<f64> = rates.iter_mut().map(|v| median(v)).collect();
    let ratio: Vec<f64> = ratios.iter_mut().map(|v| median(v)).collect();
    let largest: Vec<f64> = largests.iter_mut().map(|v| median(v)).collect();
    let ref_i = variants.iter().position(|v| *v == REFERENCE).unwrap();
    let mut rows = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        rows.push(Row {
            section: SECTION,
            case: "churn@50%".into(),
            bytes: REGION as u64,
            misalign: "-".into(),
            variant: v.to_string(),
            value: rate[i],
            unit: "pairs/s",
            ratio: Some(ratio[i]),
        });
    }
    for (i, v) in variants.iter().enumerate() {
        rows.push(Row {
            section: SECTION,
            case: "largest@50%".into(),
            bytes: REGION as u64,
            misalign: "-".into(),
            variant: v.to_string(),
            value: largest[i],
            unit: "bytes",
            ratio: Some(largest[i] / largest[ref_i]),
        });
    }
    let speed = ratio[0];
    let frag = largest[0] / largest[ref_i];
    for (what, ratio, goal) in [
        ("p2p pairs/s >= 10x bitmap", speed, 10.0),
        ("p2p largest@50% >= bitmap", frag, 1.0),
    ] {
        rows.push(Row {
            section: SECTION,
            case: "target".into(),
            bytes: REGION as u64,
            misalign: "-".into(),
            variant: what.into(),
            value: ratio,
            unit: if ratio >= goal { "MET" } else { "MISS" },
            ratio: None,
        });
    }
    rows
}
