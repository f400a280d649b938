//! Report section `alloc`: `P2pPool` against the allocators a driver author would compare it
//! with, on the workload of `alloc_workload.rs` (256 MiB, 4 KiB granularity, 4 KiB–1 MiB
//! requests, ~50% fill).
//!
//! Times are the measuring thread's CPU time (`/proc/thread-self/schedstat`), so other load on
//! the machine does not count; elsewhere wall-clock time.
//!
//! Rows (ratios relative to the genalloc-style bitmap first-fit of the same run):
//! - `churn@50%`: alloc+free pairs per second in the steady state;
//! - `largest@50%`: the largest allocation still possible with the region 50% full, in bytes
//!   (median over samples taken as the fill reaches 50% during the churn);
//! - `target`: the section's goals, `value` = the measured ratio, `unit` = MET or MISS.

use crate::{median, Opts, Row};

#[path = "alloc_workload.rs"]
pub mod workload;

use workload::{p2p_pool, Alloc, BTreeFit, Bitmap, Churn, Stopwatch, REGION};

const SECTION: &str = "alloc";
const REFERENCE: &str = "bitmap-first-fit (ref)";

struct Figures {
    pairs_per_s: Vec<f64>,
    largest: Vec<f64>,
}

/// Pairs per second over at least `min_secs` of CPU time, then `samples` largest-free readings
/// taken each time the churn brings the fill back to 50%.
fn measure<A: Alloc>(alloc: A, seed: u64, min_secs: f64, samples: usize) -> (f64, Vec<f64>) {
    let mut c = Churn::new(alloc, seed);
    c.pairs(20_000); // reach the steady state
    let t = Stopwatch::start();
    let mut done = 0u64;
    let mut chunk = 1_000u64;
    let secs = loop {
        c.pairs(chunk);
        done += chunk;
        let s = t.secs();
        if s >= min_secs {
            break s;
        }
        chunk = (chunk * 2).min(1 << 20);
    };
    let rate = done as f64 / secs;
    let mut largest = Vec::new();
    for _ in 0..samples {
        c.pairs(5_000);
        c.fill_to_half();
        largest.push(c.alloc.largest_free() as f64);
    }
    (rate, largest)
}

pub fn run(opts: Opts) -> Vec<Row> {
    let (seeds, min_secs, samples) = if opts.quick {
        (1u64, 0.05, 8)
    } else {
        (5, 0.3, 16)
    };
    let variants = ["p2p-tlsf", REFERENCE, "btree-best-fit"];
    let mut figs: Vec<Figures> = variants
        .iter()
        .map(|_| Figures {
            pairs_per_s: Vec::new(),
            largest: Vec::new(),
        })
        .collect();
    for seed in 1..=seeds {
        // interleaved: every variant runs on every seed, in turn
        let runs = [
            measure(p2p_pool(), seed, min_secs, samples),
            measure(Bitmap::new(), seed, min_secs, samples),
            measure(BTreeFit::new(), seed, min_secs, samples),
        ];
        for (f, (rate, largest)) in figs.iter_mut().zip(runs) {
            f.pairs_per_s.push(rate);
            f.largest.extend(largest);
        }
    }
    let rate: Vec<f64> = figs
        .iter_mut()
        .map(|f| median(&mut f.pairs_per_s))
        .collect();
    let largest: Vec<f64> = figs.iter_mut().map(|f| median(&mut f.largest)).collect();
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
            ratio: Some(rate[i] / rate[ref_i]),
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
    let speed = rate[0] / rate[ref_i];
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
